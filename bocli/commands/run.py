"""``bocli run``: optimize a registered problem or a user objective, with live progress."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from bocli.commands.options import (
    device_option,
    format_option,
    init_option,
    model_options,
    parse_key_values,
)
from bocli.errors import UserError


def load_problem(
    problem: str | None,
    space_file: str | None,
    command: str | None,
    timeout: float | None,
    command_mode: str,
) -> Any:
    """Resolve ``PROBLEM`` / ``--space`` / ``--command`` to a Problem (user errors name the option)."""
    from bocli.space import Space

    if command:
        if not space_file:
            raise UserError("--command needs --space FILE describing its parameters")
        from problems.user import command_problem

        argv = shlex.split(command)
        if not argv:
            raise UserError("--command: empty command")
        return command_problem(
            argv, Space.from_file(space_file), timeout=timeout or 600.0, mode=command_mode
        )
    if problem is None:
        raise UserError("give a PROBLEM (see `bocli problems`), or --space with --command")
    if space_file:
        from problems.user import python_problem

        return python_problem(problem, Space.from_file(space_file), timeout=timeout)
    from problems import get_problem

    return get_problem(problem)


@click.command(context_settings={"show_default": True})
@click.argument("problem", required=False)
@model_options
@click.option(
    "--budget",
    "-b",
    type=click.IntRange(min=1),
    default=30,
    help="Total evaluations, initial design included.",
)
@init_option
@click.option(
    "--batch", "-q", type=click.IntRange(min=1), default=1, help="Points proposed per model fit."
)
@click.option("--seed", type=int, default=0)
@device_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Run directory [default: runs/PROBLEM-SURROGATE-ACQ-sSEED].",
)
@click.option("--resume", is_flag=True, help="Continue the run saved in --out.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    help="Evaluate this many points at once (local processes).",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Dask scheduler (tcp://host:port) or local:K for a LocalCluster.",
)
@click.option(
    "--space",
    "space_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Space file for a user objective (PROBLEM is then module:function).",
)
@click.option(
    "--command",
    default=None,
    metavar="CMD",
    help="External objective command (run without a shell; needs --space).",
)
@click.option(
    "--command-mode",
    type=click.Choice(["stdin", "args"]),
    default="stdin",
    help="Pass parameters as JSON on stdin or as --name=value arguments.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds before a user objective's evaluation counts as failed.",
)
@format_option("table", "json")
def run(
    problem: str | None,
    surrogate: str | None,
    acquisition: str | None,
    surrogate_option: tuple[str, ...],
    acquisition_option: tuple[str, ...],
    budget: int,
    n_init: int | None,
    batch: int,
    seed: int,
    device: str,
    out_dir: str | None,
    resume: bool,
    workers: int,
    scheduler: str | None,
    space_file: str | None,
    command: str | None,
    command_mode: str,
    timeout: float | None,
    fmt: str,
) -> None:
    """Optimize PROBLEM (a registered name, or module:function with --space).

    Every evaluation is saved to --out as it completes (trials.csv, config.json); after a crash or
    Ctrl-C, the same command with --resume continues without losing or repeating an evaluation.

    \b
    Examples:
      bocli run branin --budget 30
      bocli run hartmann6 -s gp -a kg --budget 60 --batch 2 --out runs/h6
      bocli run mymodule:objective --space space.yaml --timeout 60
      bocli run --space space.yaml --command "python simulate.py" --command-mode args
    """
    from bocli.run import RunConfig, run_optimization, validate_config

    prob = load_problem(problem, space_file, command, timeout, command_mode)
    surrogate = surrogate or "gp"
    acquisition = acquisition or "ei"
    name = problem if problem and not space_file else (problem or "command")
    config = RunConfig(
        problem=name,
        surrogate=surrogate,
        acquisition=acquisition,
        budget=budget,
        n_init=n_init,
        batch=batch,
        seed=seed,
        device=device,
        workers=workers,
        scheduler=scheduler,
        surrogate_options=parse_key_values("--surrogate-option", surrogate_option),
        acquisition_options=parse_key_values("--acquisition-option", acquisition_option),
    )
    if out_dir is None:
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        out_dir = f"runs/{slug}-{surrogate}-{acquisition}-s{seed}"
    out = Path(out_dir)
    validate_config(config)  # before the progress bar: a bad pair or option is one clean line
    progress = _Progress(prob, budget, quiet=fmt == "json")
    try:
        with progress:
            trials = run_optimization(
                prob,
                config,
                out,
                resume=resume,
                on_trial=progress.update,
                on_resume=progress.resumed,
            )
    except KeyboardInterrupt:
        click.echo(
            f"\ninterrupted: every finished evaluation is saved in {out}; continue with "
            f"the same command plus --resume",
            err=True,
        )
        sys.exit(130)
    _summary(prob, trials, out, fmt)


class _Progress:
    """A rich progress bar with best-so-far and regret (silent for --format json)."""

    def __init__(self, problem: Any, budget: int, quiet: bool) -> None:
        from rich.console import Console

        self.problem, self.budget, self.quiet = problem, budget, quiet
        self.console = Console(stderr=True)
        self.bar: Any = None

    def __enter__(self) -> _Progress:
        if self.quiet:
            return self
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=self.console,
        )
        self.bar.__enter__()
        self.task = self.bar.add_task(self.problem.name, total=self.budget, status="")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def resumed(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=n)
            self.bar.console.print(f"resuming after {n} saved evaluations")

    def update(self, t: Any) -> None:
        if self.bar is None:
            return
        best = "-" if t.best_so_far is None else f"{t.best_so_far:.6g}"
        status = f"best {best}"
        if t.regret is not None:
            status += f"  regret {t.regret:.3g}"
        if t.value is not None and t.predicted_mean is not None and t.predicted_sd is not None:
            # how the model's last prediction fared: honest uncertainty, visible as it runs
            status += (
                f"  last {t.value:.4g} (predicted {t.predicted_mean:.4g} ± {t.predicted_sd:.2g})"
            )
        if t.status == "failed":
            self.bar.console.print(f"[yellow]trial {t.trial} failed:[/] {t.error}")
        diag = t.extra.get("diagnostics") or {}
        if diag.get("warning"):
            self.bar.console.print(f"[yellow]trial {t.trial}:[/] {diag['warning']}")
        self.bar.update(self.task, advance=1, status=status)


def _summary(problem: Any, trials: list[Any], out: Path, fmt: str) -> None:
    done = [t for t in trials if t.status == "complete"]
    best = None
    if done:
        sign = problem.space.objective.sign
        best = max(done, key=lambda t: sign * t.value)
    result = {
        "problem": problem.name,
        "evaluations": len(trials),
        "failed": sum(t.status == "failed" for t in trials),
        "best_value": None if best is None else best.value,
        "best_params": None if best is None else best.params,
        "regret": None if best is None else problem.regret(best.value),
        "out": str(out),
    }
    if fmt == "json":
        click.echo(json.dumps(result, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{problem.name}: best of {len(trials)} evaluations", show_header=False)
    for key in ("best_value", "regret", "failed", "out"):
        if result[key] is not None:
            table.add_row(
                key, f"{result[key]:.6g}" if isinstance(result[key], float) else str(result[key])
            )
    if best is not None:
        for k, v in best.params.items():
            table.add_row(f"  {k}", f"{v:.6g}" if isinstance(v, float) else str(v))
    Console().print(table)
