"""Progress on stderr for the long commands (``run``, ``compare``), one design for both.

On a terminal (stdout and stderr both) a live line drawn afresh at the terminal's width: fields are
shortened, then dropped, least important first, so it never wraps. Elsewhere (a pipe, a file, a CI
log) one full line per finished unit of work, never cut to a width. Failures and warnings get lines
of their own, as rich ``Text`` (never markup: an error may hold brackets).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import click


def streams_are_terminals() -> bool:
    """Whether stdout and stderr are both terminals. Not rich's guess: ``FORCE_COLOR`` makes it
    call a CI log a terminal, and a live line redrawn into a log is garbage."""
    return sys.stdout.isatty() and sys.stderr.isatty()


def warn_line(console: Any, head: str, text: str) -> None:
    """``head`` in yellow then ``text``, on ``console``, as plain text (no markup parsing)."""
    from rich.text import Text

    console.print(Text.assemble((head, "yellow"), text))


def render_fields(fields: list[tuple[int, list[str], str]], width: int, fraction: float) -> Any:
    """A live line ``width`` cells wide from ``fields`` (see ``_fit_fields``), the bar (the field
    with no texts) filled to ``fraction``: a rich Text that never wraps."""
    from rich.text import Text

    texts, bar_width = _fit_fields(fields, width)
    line = Text(no_wrap=True, overflow="ellipsis")
    for (_, _, style), text in zip(fields, texts, strict=True):
        if text is None:
            continue
        if line:
            line.append("  ")
        if text == "":  # the bar
            filled = round(bar_width * min(max(fraction, 0.0), 1.0))
            line.append(
                "━" * filled, style="bar.finished" if filled == bar_width else "bar.complete"
            )
            line.append("━" * (bar_width - filled), style="bar.back")
        else:
            line.append(text, style=style)
    line.truncate(width, overflow="ellipsis")  # a width below the most important field's cells
    return line


class RunProgress:
    """A run's progress on stderr, shown as each evaluation finishes.

    On a terminal (stdout and stderr both): one live line that fits the terminal's width, with a
    bar, n/budget, the best so far (the hypervolume with several objectives), its regret, the last
    value, the last proposal's fit and acquisition seconds, the elapsed time and an ETA; on a
    narrow terminal the least useful fields are shortened, then dropped, so the line never wraps.
    Elsewhere (a pipe, a file, a CI log): one full line per evaluation, never cut to a width.
    Failures and model warnings get lines of their own in both.

    Args:
        problem: The run's problem (its name and space label the fields).
        budget: The run's total evaluations.
        show: Show progress, failures and warnings (False for --format json and --quiet).
        notes: Show one-line notes: settings changed on resume, trials recovered (False for
            --quiet).
        console: The rich Console to draw on (tests); by default stderr's, live only when stdout
            and stderr are both terminals.
        clock: Monotonic seconds (tests pass a fake one).
    """

    def __init__(
        self,
        problem: Any,
        budget: int,
        *,
        show: bool = True,
        notes: bool = True,
        console: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.problem, self.budget = problem, budget
        self.show, self.notes, self.clock = show, notes, clock
        if console is None:
            from rich.console import Console

            console = Console(stderr=True)
            tty = streams_are_terminals()
        else:
            tty = console.is_terminal
        self.console = console
        self.is_live = show and tty and not console.is_dumb_terminal
        self.live: Any = None
        self.done = 0  # finished evaluations of the study, an earlier run's included
        self.evaluated = 0  # evaluations this run finished (the ETA's pace)
        self.started = clock()
        self.last: Any = None  # the last finished Trial

    def __enter__(self) -> RunProgress:
        self.started = self.clock()
        if self.is_live:
            from rich.live import Live

            self.live = Live(_LiveLine(self), console=self.console, refresh_per_second=4)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)
            self.live = None

    def resumed(self, n: int) -> None:
        """Start the count at the ``n`` evaluations that earlier runs finished."""
        self.done = min(n, self.budget)
        self.note(f"resuming after {n} finished evaluations")

    def note(self, line: str) -> None:
        """One line for the user (settings applied on resume, trials recovered)."""
        if not self.notes:
            return
        if self.live is not None:
            self.console.print(line, markup=False, highlight=False)
        else:
            click.echo(line, err=True)

    def update(self, t: Any) -> None:
        """Count and show one finished evaluation (a ``bocli.run.Trial``)."""
        # a --retry-failed trial was counted already, as failed: the count stops at the budget
        self.done = min(self.done + 1, self.budget)
        self.evaluated += 1
        self.last = t
        if not self.show:
            return
        if self.live is None:
            click.echo(self.line(t), err=True)
        if t.status == "failed":
            self._warn(f"trial {t.trial} failed: ", t.error)
        diag = t.extra.get("diagnostics") or {}
        if diag.get("warning"):
            self._warn(f"trial {t.trial}: ", str(diag["warning"]))
        if self.live is not None:
            self.live.refresh()

    def _warn(self, head: str, text: str) -> None:
        if self.live is None:
            click.echo(head + text, err=True)
            return
        warn_line(self.console, head, text)

    def eta(self, now: float) -> float | None:
        """Seconds left at this run's mean pace so far (None before its first evaluation)."""
        if self.evaluated == 0:
            return None
        return (now - self.started) / self.evaluated * max(self.budget - self.done, 0)

    def line(self, t: Any) -> str:
        """One finished evaluation as one full line, for logs: trial id, n/budget, value (or every
        outcome), the model's prediction, best so far, regret, seconds, elapsed time."""
        space = self.problem.space
        multi = space.is_multi_objective
        parts = [f"trial {t.trial}", f"{self.done}/{self.budget}"]
        if t.status == "failed":
            parts.append("failed")
        else:
            parts.append(_values_text(space, t, names=True))
            if t.predicted_mean is not None and t.predicted_sd is not None:
                parts.append(f"predicted {t.predicted_mean:.4g} ± {t.predicted_sd:.2g}")
        parts.append(f"{'hypervolume' if multi else 'best'} {_num(t.best_so_far)}")
        if t.regret is not None:
            parts.append(f"{'log10 hv regret' if multi else 'regret'} {t.regret:.3g}")
        parts += [
            f"fit {_secs(t.fit_seconds)}",
            f"acq {_secs(t.acq_seconds)}",
            f"eval {_secs(t.eval_seconds)}",
            f"elapsed {_clock(self.clock() - self.started)}",
        ]
        return "  ".join(parts)

    def fields(self, now: float) -> list[tuple[int, list[str], str]]:
        """The live line's fields in display order: (priority, its texts longest first, style);
        the bar is the field with no texts. The lowest priorities give way first."""
        t, space = self.last, self.problem.space
        multi = space.is_multi_objective
        name = self.problem.name
        best = None if t is None else t.best_so_far
        out = [
            (1, [_clip(name, 24), _clip(name, 12)], "bold"),
            (6, [], ""),
            (10, [f"{self.done}/{self.budget}"], ""),
            (
                9,
                [f"hypervolume {_num(best)}", f"hv {_num(best, 4)}"]
                if multi
                else [f"best {_num(best)}", f"best {_num(best, 4)}"],
                "",
            ),
        ]
        if t is not None and t.regret is not None:
            label = "log10 hv regret" if multi else "regret"
            out.append((5, [f"{label} {t.regret:.3g}"], ""))
        if t is not None:
            if t.status == "failed":
                last = ["last failed"]
            else:
                several = t.outcomes is not None
                last = [f"last {_values_text(space, t, names=several)}"]
                if t.predicted_mean is not None and t.predicted_sd is not None:
                    m, sd = t.predicted_mean, t.predicted_sd
                    last = [
                        f"{last[0]} (predicted {m:.4g} ± {sd:.2g})",
                        f"{last[0]} ({m:.3g} ± {sd:.2g})",
                        *last,
                    ]
                short = f"last {_values_text(space, t, names=False, digits=4)}"
                last += [] if short in last else [short]
            out.append((7, last, ""))
            fit, acq = t.fit_seconds or 0.0, t.acq_seconds or 0.0
            out.append(
                (4, [f"fit {_secs(fit)} acq {_secs(acq)}", f"fit+acq {_secs(fit + acq)}"], "")
            )
        elapsed = now - self.started
        out.append((2, [f"elapsed {_clock(elapsed)}", _clock(elapsed)], "dim"))
        eta = self.eta(now)
        out.append(
            (
                8,
                ["eta -"] if eta is None else [f"eta {_clock(eta)}", f"eta {_clock(eta, True)}"],
                "cyan",
            )
        )
        return out

    def live_text(self, width: int) -> Any:
        """The live line for a terminal ``width`` cells wide: a rich Text that never wraps."""
        return render_fields(self.fields(self.clock()), width, self.done / max(self.budget, 1))


class _LiveLine:
    """The live line as a rich renderable: drawn afresh at each refresh, at the width of the
    terminal then (a resized terminal gets a line that fits)."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        yield self.progress.live_text(options.max_width)


# the live bar's cells: left out below the least, never wider than the most
_BAR_MIN, _BAR_MAX = 10, 30
_DROP_AFTER = 4  # a field is left out this many priority steps after it was shortened


def _fit_fields(
    fields: list[tuple[int, list[str], str]], width: int
) -> tuple[list[str | None], int]:
    """Choose each field's text so that the fields, two spaces apart, fit in ``width`` cells.

    Step by step, least important first, until the line fits: a field of priority ``p`` takes
    its shorter texts at step ``p`` and is left out at step ``p + _DROP_AFTER``, so unimportant
    fields go before important ones are shortened. The most important field always stays.

    Returns:
        Each field's text (None: left out; "" for the bar) and the bar's width (slack up to
        ``_BAR_MAX``).
    """
    from rich.cells import cell_len

    pick = [0] * len(fields)
    keep = [True] * len(fields)

    def need() -> int:
        widths = [
            cell_len(texts[pick[i]]) if texts else _BAR_MIN
            for i, (_, texts, _) in enumerate(fields)
            if keep[i]
        ]
        return sum(widths) + 2 * max(len(widths) - 1, 0)

    top = max(range(len(fields)), key=lambda i: fields[i][0])
    steps = sorted(
        [(p, 0, i) for i, (p, texts, _) in enumerate(fields) for _ in texts[1:]]
        + [(p + _DROP_AFTER, 1, i) for i, (p, _, _) in enumerate(fields) if i != top]
    )
    for _, drop, i in steps:
        if need() <= width:
            break
        if drop:
            keep[i] = False
        elif keep[i]:
            pick[i] += 1
    bar = next((i for i, f in enumerate(fields) if not f[1]), None)
    bar_width = 0
    if bar is not None and keep[bar]:
        bar_width = min(_BAR_MAX, _BAR_MIN + max(width - need(), 0))
    texts = [None if not keep[i] else (f[1][pick[i]] if f[1] else "") for i, f in enumerate(fields)]
    return texts, bar_width


def _values_text(space: Any, t: Any, names: bool, digits: int = 6) -> str:
    """A complete trial's value, or every outcome (several, at most 4 digits each), with the
    outcome names or not."""
    if t.outcomes is not None:
        d = min(digits, 4)
        shown = ", ".join(
            f"{k} {v:.{d}g}" if names else f"{v:.{d}g}" for k, v in t.outcomes.items()
        )
    else:
        value = _num(t.value, digits)
        shown = f"{space.objective.name} {value}" if names else value
    return shown + ("" if t.feasible in (None, True) else " (infeasible)")


def _num(v: float | None, digits: int = 6) -> str:
    return "-" if v is None else f"{v:.{digits}g}"


def _secs(s: float | None) -> str:
    s = s or 0.0
    return f"{s:.2f}s" if s < 100 else f"{s:.0f}s"


def _clock(seconds: float, short: bool = False) -> str:
    """``h:mm:ss`` (``short``: ``m:ss`` under an hour)."""
    s = max(int(seconds), 0)
    if short and s < 3600:
        return f"{s // 60}:{s % 60:02d}"
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


class CompareProgress:
    """A comparison grid's progress on stderr, one update per finished cell (``run_grid``'s
    ``on_start`` / ``on_cell``), in the same two modes as ``RunProgress``: a live line on a
    terminal (bar, cells done/total, failed count, the last cell and its seconds, elapsed, ETA),
    elsewhere one full line per cell.

    Args:
        show: Show anything (False for --format json).
        console: The rich Console to draw on (tests); by default stderr's, live only when stdout
            and stderr are both terminals.
        clock: Monotonic seconds (tests pass a fake one).
    """

    def __init__(
        self,
        show: bool = True,
        *,
        console: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if console is None:
            from rich.console import Console

            console = Console(stderr=True)
            tty = streams_are_terminals()
        else:
            tty = console.is_terminal
        self.console, self.show, self.clock = console, show, clock
        self.is_live = show and tty and not console.is_dumb_terminal
        self.live: Any = None
        self.total = self.done = self.finished_here = self.failed = 0
        self.started = clock()
        self.last: Any = None

    def __enter__(self) -> CompareProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)
            self.live = None

    def start(self, total: int, done: int) -> None:
        """Begin once the grid is validated (so a bad option prints only its error)."""
        self.total, self.done, self.started = total, done, self.clock()
        if not self.show:
            return
        if done:
            click.echo(f"resuming: {done} of {total} cells already finished", err=True)
        if self.is_live:
            from rich.live import Live

            self.live = Live(_LiveLine(self), console=self.console, refresh_per_second=4)
            self.live.__enter__()

    def update(self, result: Any) -> None:
        """Count and show one finished cell (a ``bocli.compare.CellResult``)."""
        self.done = min(self.done + 1, max(self.total, 1))
        self.finished_here += 1
        self.last = result
        failed = result.status == "failed"
        self.failed += failed
        if not self.show:
            return
        if self.live is None:
            click.echo(self.line(result), err=True)
            if failed:
                click.echo(f"failed: {result.cell}: {result.error}", err=True)
            return
        if failed:
            warn_line(self.console, "failed: ", f"{result.cell}: {result.error}")
        self.live.refresh()

    def eta(self, now: float) -> float | None:
        """Seconds left at this invocation's mean pace per cell (None before the first)."""
        if self.finished_here == 0:
            return None
        return (now - self.started) / self.finished_here * max(self.total - self.done, 0)

    def line(self, result: Any) -> str:
        """One finished cell as one full line, for logs."""
        parts = [
            f"cell {self.done}/{self.total}",
            str(result.cell),
            "failed" if result.status == "failed" else "ok",
            f"{result.seconds:.1f}s",
        ]
        if self.failed:
            parts.append(f"{self.failed} failed so far")
        parts.append(f"elapsed {_clock(self.clock() - self.started)}")
        eta = self.eta(self.clock())
        if eta is not None:
            parts.append(f"eta {_clock(eta)}")
        return "  ".join(parts)

    def fields(self, now: float) -> list[tuple[int, list[str], str]]:
        """The live line's fields (priority, texts longest first, style); the bar has no texts."""
        out: list[tuple[int, list[str], str]] = [
            (3, ["cells"], "bold"),
            (6, [], ""),
            (10, [f"{self.done}/{self.total}"], ""),
        ]
        if self.failed:
            out.append((9, [f"{self.failed} failed", f"{self.failed}!"], "yellow"))
        if self.last is not None:
            cell = str(self.last.cell)
            secs = f"({self.last.seconds:.1f} s)"
            out.append((5, [f"last {cell} {secs}", f"last {_clip(cell, 24)}", _clip(cell, 12)], ""))
        out.append((2, [f"elapsed {_clock(now - self.started)}"], "dim"))
        eta = self.eta(now)
        out.append(
            (8, ["eta -"] if eta is None else [f"eta {_clock(eta)}", f"eta {_clock(eta, True)}"],
             "cyan")
        )  # fmt: skip
        return out

    def live_text(self, width: int) -> Any:
        """The live line for a terminal ``width`` cells wide."""
        return render_fields(self.fields(self.clock()), width, self.done / max(self.total, 1))
