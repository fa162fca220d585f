"""``bocli run``'s progress: one full line per evaluation off a terminal, a live line that fits the
terminal on one, nothing but the summary with ``--quiet``, only JSON on stdout with ``--format json``.

The CLI tests run real (cheap) runs through CliRunner, which is not a terminal: the initial design
is the whole budget, so no model is fitted. The terminal tests drive ``_Progress`` with a rich
Console forced to be a terminal and a fake clock.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rich.console import Console

from bocli.cli import cli
from bocli.commands.progress import RunProgress as _Progress
from bocli.run import Trial
from problems import get_problem

# a long objective name: every per-evaluation line is well over 80 characters, and must stay whole
LONG = "yield_of_the_second_reaction_step_in_percent_of_the_theoretical_maximum"
OBJECTIVE = """
def f(p):
    if p["x"] > 0.75:  # one of the 4 stratified design points: a failed evaluation
        raise RuntimeError("reactor [7] overheated")
    return (p["x"] - 0.3) ** 2
"""
SPACE = f"parameters:\n  - {{name: x, type: float, low: 0, high: 1}}\nobjective: {{name: {LONG}}}\n"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def user_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "obj.py").write_text(OBJECTIVE)
    (tmp_path / "space.yaml").write_text(SPACE)
    return ["run", f"{tmp_path / 'obj.py'}:f", "--space", str(tmp_path / "space.yaml")]


def _lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


def test_off_a_terminal_one_full_line_per_evaluation_on_stderr(user_run: list[str]) -> None:
    res = CliRunner().invoke(cli, [*user_run, "--budget", "4", "--init", "4", "--out", "r"])
    assert res.exit_code == 0, res.output
    lines = _lines(res.stderr)
    per_eval = [ln for ln in lines if re.match(r"trial \d+  \d+/4  ", ln)]
    assert [ln.split("  ")[1] for ln in per_eval] == ["1/4", "2/4", "3/4", "4/4"]
    complete = [ln for ln in per_eval if "failed" not in ln.split("  ")[2]]
    assert len(complete) == 3
    for ln in complete:  # whole: the long name, every field, no cut at 80 columns
        assert len(ln) > 100
        assert f"  {LONG} " in ln and "  best " in ln and "  elapsed 0:00:" in ln
        assert "  fit 0.00s  acq 0.00s  eval " in ln
    # the failure keeps its own line, its text as written (brackets are not markup)
    failed = [ln for ln in lines if " failed: " in ln]
    assert len(failed) == 1 and failed[0].endswith("RuntimeError: reactor [7] overheated")
    # the summary is on stdout, progress is not
    assert "trial " not in res.stdout and "best_value" in res.stdout


def test_resume_counts_on_from_the_evaluations_already_finished(user_run: list[str]) -> None:
    first = CliRunner().invoke(cli, [*user_run, "--budget", "2", "--init", "4", "--out", "r"])
    assert first.exit_code == 0, first.output
    res = CliRunner().invoke(cli, ["run", "--out", "r", "--resume", "--budget", "4"])
    assert res.exit_code == 0, res.output
    lines = _lines(res.stderr)
    assert "resuming after 2 finished evaluations" in lines
    counts = [ln.split("  ")[1] for ln in lines if ln.startswith("trial ") and "  " in ln]
    assert counts == ["3/4", "4/4"]


def test_quiet_prints_only_the_summary(user_run: list[str]) -> None:
    res = CliRunner().invoke(cli, [*user_run, "--budget", "2", "--init", "4", "--out", "r"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["run", "--out", "r", "--resume", "--budget", "4", "--quiet"])
    assert res.exit_code == 0, res.output
    assert res.stderr == ""  # no progress, no failure line, no resume notes
    assert "best_value" in res.stdout and "trial " not in res.stdout


@pytest.mark.parametrize("quiet", [[], ["--quiet"]])
def test_format_json_prints_only_the_summary_as_json_on_stdout(
    user_run: list[str], quiet: list[str]
) -> None:
    res = CliRunner().invoke(
        cli, [*user_run, "--budget", "4", "--init", "4", "--out", "r", "--format", "json", *quiet]
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)  # all of stdout is the one JSON object
    assert summary["evaluations"] == 4 and summary["failed"] == 1
    assert "trial " not in res.stderr  # no per-evaluation lines
    if quiet:
        assert res.stderr == ""


def test_multi_objective_quiet_drops_the_pareto_hint_and_lines_name_every_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["run", "branincurrin", "--budget", "3", "--init", "3"])
    assert res.exit_code == 0, res.output
    per_eval = [ln for ln in _lines(res.stderr) if ln.startswith("trial ")]
    assert len(per_eval) == 3
    assert all(re.search(r"  branin \S+, currin \S+  hypervolume ", ln) for ln in per_eval)
    assert "the Pareto set: bocli best" in res.stderr
    out = ["--out", "q"]
    res = CliRunner().invoke(
        cli, ["run", "branincurrin", "--budget", "3", "--init", "3", *out, "--quiet"]
    )
    assert res.exit_code == 0, res.output
    assert res.stderr == "" and "hypervolume" in res.stdout


# ----- the per-evaluation line, field by field ------------------------------------------------------
def _trial(i: int, value: float | None, best: float | None, **kw: Any) -> Trial:
    base: dict[str, Any] = dict(
        trial=i,
        params={"x0": 0.1, "x1": 0.2},
        status="complete",
        value=value,
        best_so_far=best,
        regret=None if best is None else best - 0.397887,
        phase="model",
        surrogate="gp",
        acquisition="ei",
        fit_seconds=1.25,
        acq_seconds=0.5,
        eval_seconds=0.01,
    )
    return Trial(**{**base, **kw})


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_line_shows_prediction_regret_seconds_and_elapsed(capsys: pytest.CaptureFixture) -> None:
    clock = _Clock()
    with _Progress(get_problem("branin"), 10, clock=clock) as p:
        clock.now += 65
        p.update(_trial(7, 3.5, 3.5, predicted_mean=3.1, predicted_sd=0.4))
    assert capsys.readouterr().err == (
        "trial 7  1/10  value 3.5  predicted 3.1 ± 0.4  best 3.5  regret 3.1  fit 1.25s  acq 0.50s"
        "  eval 0.01s  elapsed 0:01:05\n"
    )


def test_show_false_prints_nothing_per_evaluation(capsys: pytest.CaptureFixture) -> None:
    with _Progress(get_problem("branin"), 10, show=False, notes=False) as p:
        p.resumed(3)
        p.update(_trial(3, None, None, status="failed", error="boom"))
    assert capsys.readouterr().err == ""
    assert p.done == 4


# ----- the live line on a terminal -------------------------------------------------------------------
def _terminal(width: int) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=width, record=True), out


def _renders(raw: str) -> tuple[list[str], str]:
    """Every drawing of a one-line live display, and the lines printed above it. Before each
    redraw rich returns to the line's start and erases it (``\\r ESC[2K``); a line printed
    meanwhile comes first; a display that wrapped would move the cursor up instead."""
    assert "\x1b[1A" not in raw, "the live display took more than one line"
    renders, printed = [], ""
    for part in raw.split("\r\x1b[2K"):
        *above, line = ANSI.sub("", part).rstrip("\n").split("\n")
        printed += "".join(f"{ln}\n" for ln in above)
        renders.append(line)
    return renders, printed


def _drive(width: int, problem: str = "branin", budget: int = 10) -> tuple[_Progress, str]:
    console, out = _terminal(width)
    clock = _Clock()
    p = _Progress(get_problem(problem), budget, console=console, clock=clock)
    assert p.is_live
    with p:
        p.resumed(2)
        for i, (v, best) in enumerate([(24.1, 24.1), (3.5, 3.5)]):
            clock.now += 10
            p.update(_trial(2 + i, v, best, predicted_mean=3.1 if i else None, predicted_sd=0.4))
        clock.now += 10
        p.update(_trial(4, None, 3.5, status="failed", error="reactor [7] overheated"))
    return p, out.getvalue()


def test_live_line_shows_count_best_last_times_and_eta() -> None:
    _, raw = _drive(140)
    renders, printed = _renders(raw)
    # the notes and the failure print whole lines above the bar (brackets are not markup)
    assert (
        printed == "resuming after 2 finished evaluations\ntrial 4 failed: reactor [7] overheated\n"
    )
    assert renders[0].startswith("branin  ━") and "0/10" in renders[0] and "eta -" in renders[0]
    # 5 of 10 done, 3 of them by this run in 30 s: 10 s each, 5 to go
    last = renders[-1]
    for field in ("branin", "5/10", "best 3.5", "regret 3.1", "last failed", "fit 1.25s acq 0.50s",
                  "elapsed 0:00:30", "eta 0:00:50", "━"):  # fmt: skip
        assert field in last, (field, last)
    # the evaluation before: its value and what the model predicted
    assert any("4/10" in r and "last 3.5 (predicted 3.1 ± 0.4)" in r for r in renders), renders
    assert all(len(r) <= 140 for r in renders)


@pytest.mark.parametrize("width", [12, 20, 40, 60, 80, 100, 200])
def test_live_line_fits_every_width_without_wrapping(width: int) -> None:
    _, raw = _drive(width)
    renders, _ = _renders(raw)
    assert len(renders) >= 5 and all(len(r) <= width for r in renders), renders
    assert all(re.search(r"\b\d+/10\b", r) for r in renders), renders  # the count always stays
    if width >= 60:  # a narrow terminal keeps what matters most
        assert all("best " in r and "eta " in r for r in renders), renders
        assert any("last 3.5" in r for r in renders) and "━" in renders[-1], renders


def test_live_line_several_objectives_shows_hypervolume_and_outcomes() -> None:
    console, out = _terminal(120)
    p = _Progress(get_problem("branincurrin"), 6, console=console, clock=_Clock())
    with p:
        p.update(_trial(0, 9.2, 5.63, regret=1.73, outcomes={"branin": 9.2, "currin": 11.5}))
    last = _renders(out.getvalue())[0][-1]
    assert "hypervolume 5.63" in last and "log10 hv regret 1.73" in last
    assert "last branin 9.2, currin 11.5" in last


# ----- compare's progress: the same two modes --------------------------------------------------
def _cell(name: str, status: str = "ok", error: str = "", seconds: float = 2.0) -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(cell=name, status=status, error=error, seconds=seconds)


LONG_CELL = "hartmann6 ensemble/ei seed 3 with a deliberately long label to pass eighty columns"


def test_compare_off_a_terminal_prints_one_full_line_per_cell(
    capsys: pytest.CaptureFixture,
) -> None:
    from bocli.commands.progress import CompareProgress

    clock = _Clock()
    with CompareProgress(clock=clock) as p:
        assert not p.is_live  # pytest's streams are not terminals
        p.start(4, 1)
        clock.now += 20
        p.update(_cell(LONG_CELL, seconds=20.0))
        clock.now += 20
        p.update(_cell("branin gp/ei seed 0", "failed", "[/x] bad [Errno 2] markup-like text"))
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "resuming: 1 of 4 cells already finished"
    assert err[1] == f"cell 2/4  {LONG_CELL}  ok  20.0s  elapsed 0:00:20  eta 0:00:40"
    assert len(err[1]) > 80  # never cut to a width
    assert (
        err[2].startswith("cell 3/4  branin gp/ei seed 0  failed") and "1 failed so far" in err[2]
    )
    # an error with brackets is printed as written (rich markup would raise on "[/x]")
    assert err[3] == "failed: branin gp/ei seed 0: [/x] bad [Errno 2] markup-like text"


@pytest.mark.parametrize("width", [12, 40, 80, 160])
def test_compare_live_line_fits_the_terminal(width: int) -> None:
    from bocli.commands.progress import CompareProgress

    console, out = _terminal(width)
    clock = _Clock()
    with CompareProgress(console=console, clock=clock) as p:
        assert p.is_live
        p.start(8, 0)
        for i in range(3):
            clock.now += 10
            p.update(_cell(f"{LONG_CELL} {i}", "failed" if i == 1 else "ok", "[/x] boom"))
    renders, printed = _renders(out.getvalue())
    # on a terminal a long failure line may wrap; its words are all there, brackets included
    assert f"failed: {LONG_CELL} 1: [/x] boom".split() == printed.split()
    assert renders and all(len(r) <= width for r in renders), renders
    assert all(re.search(r"\b\d/8\b", r) for r in renders), renders
    if width >= 80:
        assert "3/8" in renders[-1] and "1 failed" in renders[-1] and "eta 0:00:50" in renders[-1]
