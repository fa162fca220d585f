"""``bocli run``: optimize a registered problem or a user objective, with live progress."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from bocli.commands.options import (
    device_option,
    fix_option,
    format_option,
    init_option,
    model_options,
    parse_fix,
    parse_key_values,
)


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
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0)
@device_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Run directory [default: runs/PROBLEM-SURROGATE-ACQ-sSEED].",
)
@click.option("--resume", is_flag=True, help="Continue the run in --out with its saved settings.")
@click.option(
    "--study",
    "study",
    type=click.Path(dir_okay=False),
    default=None,
    help="Drive an existing ask-tell study instead of a run folder.",
)
@click.option(
    "--retry-failed", is_flag=True, help="Evaluate the study's failed trials once more first."
)
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
@click.option("--quiet", is_flag=True, help="Print only the final summary (no progress, no notes).")
@format_option("table", "json")
@fix_option
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
    study: str | None,
    retry_failed: bool,
    workers: int,
    scheduler: str | None,
    space_file: str | None,
    command: str | None,
    command_mode: str,
    timeout: float | None,
    quiet: bool,
    fmt: str,
    fix: tuple[str, ...],
) -> None:
    """Optimize PROBLEM (a registered name, or module:function with --space).

    The run is a study: --out DIR holds DIR/study.db (every trial, as it is asked and as it
    finishes) and DIR/trials.csv (an export, rewritten after each evaluation). After a crash or
    Ctrl-C, --resume continues with the saved settings (options you pass again explicitly, such as
    a larger --budget, apply and are printed); nothing finished is lost or repeated. --study FILE
    drives an ask-tell study instead, next to people asking and telling by hand.

    Progress goes to stderr: a live line that fits the terminal, or, piped or redirected, one line
    per evaluation. The summary goes to stdout; with --quiet only the summary (and errors).

    \b
    Examples:
      bocli run branin --budget 30
      bocli run hartmann6 -s gp -a kg --budget 60 --batch 2 --out runs/h6
      bocli run --out runs/h6 --resume --budget 80
      bocli run mymodule:objective --space space.yaml --timeout 60
      bocli run --space space.yaml --command "python simulate.py" --command-mode args
      bocli run --study lab.db mymodule:objective --budget 40
    """
    from click.core import ParameterSource

    from bocli.run import optimize, plan_run

    ctx = click.get_current_context()
    given: dict[str, Any] = {
        "surrogate": surrogate or "gp",
        "acquisition": acquisition or "ei",
        "surrogate_options": parse_key_values("--surrogate-option", surrogate_option),
        "acquisition_options": parse_key_values("--acquisition-option", acquisition_option),
        "budget": budget,
        "n_init": n_init,
        "batch": batch,
        "seed": seed,
        "device": device,
        "workers": workers,
        "scheduler": scheduler,
        "space_file": space_file,
        "command": command,
        "command_mode": command_mode,
        "timeout": timeout,
        "fixed": parse_fix(fix),
    }
    params = {
        "surrogate_options": "surrogate_option",
        "acquisition_options": "acquisition_option",
        "fixed": "fix",
    }
    explicit = {
        name
        for name in given
        if ctx.get_parameter_source(params.get(name, name))
        in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    }
    plan = plan_run(problem, given, explicit, out=out_dir, study=study, resume=resume)
    from bocli.errors import set_log_dir

    set_log_dir(plan.study.parent)  # an internal error from here on is logged in the run's folder
    where = str(plan.export.parent) if plan.export is not None else str(plan.study)
    # progress on stderr; --format json keeps the notes there, --quiet only the summary
    from bocli.commands.progress import RunProgress

    progress = RunProgress(
        plan.problem, plan.config.budget, show=not quiet and fmt != "json", notes=not quiet
    )
    try:
        with progress:
            for line in plan.notes:
                progress.note(line)
            if plan.finished:
                progress.resumed(plan.finished)
            trials = optimize(
                plan.problem,
                plan.study,
                plan.config,
                export=plan.export,
                retry_failed=retry_failed,
                on_trial=progress.update,
                on_note=progress.note,
            )
    except KeyboardInterrupt:
        again = f"bocli run --study {plan.study}" if study else f"bocli run --out {where} --resume"
        click.echo(
            f"\ninterrupted: every finished evaluation is saved in {plan.study}; continue with "
            f"`{again}`",
            err=True,
        )
        sys.exit(130)
    _summary(plan.problem, trials, where, fmt, plan.study, quiet=quiet)
    if trials and all(t.status == "failed" for t in trials):
        click.echo(
            f"error: all {len(trials)} evaluations failed; the first: {trials[0].error}", err=True
        )
        sys.exit(1)


def _summary(
    problem: Any, trials: list[Any], out: str, fmt: str, study: Any = None, quiet: bool = False
) -> None:
    """The run's result on stdout: a table, or one JSON object (``fmt == "json"``)."""
    if problem.space.is_multi_objective:
        _summary_multi(problem, trials, out, fmt, study, quiet)
        return
    done = [t for t in trials if t.status == "complete" and t.feasible is not False]
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
        "out": out,
    }
    if fmt == "json":
        click.echo(json.dumps(result, default=str))
        return
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
    _stdout_console().print(table)


def _summary_multi(
    problem: Any, trials: list[Any], out: str, fmt: str, study: Any, quiet: bool = False
) -> None:
    """Several objectives: the hypervolume reached and the feasible Pareto set's size."""
    import numpy as np

    from bocli.pareto import pareto_mask
    from bocli.storage import StudyStorage
    from bocli.study import stored_reference_point

    ref = None
    if study is not None:
        with StudyStorage.open(study) as st:
            ref = stored_reference_point(st)

    done = [t for t in trials if t.status == "complete" and t.outcomes is not None]
    names = [o.name for o in problem.space.objectives]
    feas = [t for t in done if t.feasible]
    Y = np.array([[t.outcomes[n] for n in names] for t in feas], dtype=np.float64)
    dirs = [o.direction for o in problem.space.objectives]
    front = [
        t for t, k in zip(feas, pareto_mask(Y.reshape(-1, len(names)), dirs), strict=True) if k
    ]
    last = trials[-1] if trials else None
    result = {
        "problem": problem.name,
        "evaluations": len(trials),
        "failed": sum(t.status == "failed" for t in trials),
        "feasible": len(feas),
        "pareto_optimal": len(front),
        "hypervolume": None if last is None else last.best_so_far,
        "log_hv_regret": None if last is None else last.regret,
        "reference_point": None if ref is None else ref[0],
        "reference_point_inferred": None if ref is None else ref[1],
        "pareto_set": [{"trial": t.trial, "params": t.params, "values": t.outcomes} for t in front],
        "out": out,
    }
    if fmt == "json":
        click.echo(json.dumps(result, default=str))
        return
    from rich.table import Table

    table = Table(title=f"{problem.name}: {len(trials)} evaluations", show_header=False)
    for key in ("hypervolume", "log_hv_regret", "feasible", "pareto_optimal", "failed", "out"):
        if result[key] is not None:
            v = result[key]
            table.add_row(key, f"{v:.6g}" if isinstance(v, float) else str(v))
    if ref is not None:
        label = " (inferred)" if ref[1] else ""
        table.add_row("reference point", ", ".join(f"{v:.6g}" for v in ref[0]) + label)
    _stdout_console().print(table)
    if not quiet:
        click.echo(f"the Pareto set: bocli best {out}", err=True)


def _stdout_console() -> Any:
    """A rich Console on stdout: the terminal's width, or (a pipe, a file) whole lines, never
    wrapped at rich's default 80 columns."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=1000)
