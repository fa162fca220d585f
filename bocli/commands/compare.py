"""``bocli compare`` (run a grid of problems x surrogates x acquisitions x seeds) and ``bocli report``."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from bocli.commands.options import device_option, format_option, init_option, parse_key_values
from bocli.errors import UserError


def _split(option: str, text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise UserError(f"{option}: give a comma-separated list, got {text!r}")
    return items


def _per_name(option: str, values: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``NAME.KEY=VALUE`` (repeatable) -> ``{NAME: {KEY: VALUE}}``."""
    out: dict[str, dict[str, Any]] = {}
    for item in values:
        name, dot, rest = item.partition(".")
        if not dot or not name.strip() or "=" not in rest:
            raise UserError(
                f"{option}: expected NAME.KEY=VALUE (e.g. gp.min_noise=1e-3), got {item!r}"
            )
        out.setdefault(name.strip(), {}).update(parse_key_values(option, (rest,)))
    return out


@click.command(context_settings={"show_default": True})
@click.option(
    "--preset",
    type=click.Choice(["quick"]),
    default=None,
    help="Start from a preset grid; other options override it.",
)
@click.option(
    "--problems", default=None, metavar="A,B", help="Registered problems (see `bocli problems`)."
)
@click.option(
    "--surrogates",
    default=None,
    metavar="S1,S2",
    help="Surrogates (see `bocli surrogates`) [default: gp].",
)
@click.option(
    "--acquisitions",
    default=None,
    metavar="A1,A2",
    help="Acquisitions (see `bocli acquisitions`) [default: ei].",
)
@click.option(
    "--seeds", type=click.IntRange(min=1), default=None, help="Seeds 0..N-1 per cell [default: 3]."
)
@click.option(
    "--budget",
    "-b",
    type=click.IntRange(min=1),
    default=None,
    help="Evaluations per cell, initial design included [default: 30].",
)
@init_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    required=True,
    help="Results directory; the same command again resumes it.",
)
@click.option(
    "--workers", type=click.IntRange(min=1), default=1, help="Cells run at once in local processes."
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Dask scheduler tcp://host:port, or local:K for a LocalCluster of K workers.",
)
@device_option
@click.option(
    "--surrogate-option",
    multiple=True,
    metavar="NAME.KEY=VALUE",
    help="Setting of one surrogate in the grid (repeatable), e.g. ibnn.depth=4.",
)
@click.option(
    "--acquisition-option",
    multiple=True,
    metavar="NAME.KEY=VALUE",
    help="Setting of one acquisition in the grid (repeatable), e.g. ucb.beta=3.",
)
@click.option(
    "--calibration-points",
    type=click.IntRange(min=0),
    default=256,
    help="Held-out points for calibration on known functions (0 = off).",
)
@click.option(
    "--table",
    type=click.Choice(["csv", "parquet"]),
    default="csv",
    help="File format of the results tables (parquet needs pyarrow).",
)
@click.option("--retry-failed", is_flag=True, help="Run cells recorded as failed again.")
@format_option("table", "json")
def compare(
    preset: str | None,
    problems: str | None,
    surrogates: str | None,
    acquisitions: str | None,
    seeds: int | None,
    budget: int | None,
    n_init: int | None,
    out_dir: str,
    workers: int,
    scheduler: str | None,
    device: str,
    surrogate_option: tuple[str, ...],
    acquisition_option: tuple[str, ...],
    calibration_points: int,
    table: str,
    retry_failed: bool,
    fmt: str,
) -> None:
    """Run every cell of problems x surrogates x acquisitions x seeds, in parallel.

    Cells of one problem and seed share the initial design. Results are written to --out as cells
    finish; running the same command again skips finished cells (a failed cell is recorded with its
    error and skipped too, unless --retry-failed). Then: bocli report DIR -o report.html.

    \b
    Examples:
      bocli compare --preset quick --out cmp --workers 2
      bocli compare --problems branin,hartmann6 --surrogates gp,ibnn,dkl --acquisitions ei,kg \\
          --seeds 5 --budget 50 --out cmp --scheduler tcp://10.0.0.5:8786
    """
    from bocli.compare import CompareConfig, run_grid
    from bocli.compare import preset as get_preset

    base: dict[str, Any] = get_preset(preset) if preset else {}
    chosen = {
        "problems": _split("--problems", problems),
        "surrogates": _split("--surrogates", surrogates),
        "acquisitions": _split("--acquisitions", acquisitions),
        "seeds": seeds,
        "budget": budget,
        "n_init": n_init,
    }
    settings = {**base, **{k: v for k, v in chosen.items() if v is not None}}
    if not settings.get("problems"):
        raise UserError("--problems: give at least one problem (or --preset quick)")
    n_seeds = settings.pop("seeds", 3)
    config = CompareConfig(
        **settings,
        seeds=list(range(n_seeds)),
        device=device,
        surrogate_options=_per_name("--surrogate-option", surrogate_option),
        acquisition_options=_per_name("--acquisition-option", acquisition_option),
        calibration_points=calibration_points,
        table=table,
    )
    from bocli.commands.progress import CompareProgress

    progress = CompareProgress(show=fmt != "json")
    ctx = click.get_current_context()
    from_console = Path(sys.argv[0]).name == "bocli" and sys.argv[1:2] == ["compare"]
    argv = ["bocli", *sys.argv[1:]] if from_console else ["bocli", "compare", *_reconstruct(ctx)]
    try:
        with progress:
            summary = run_grid(
                config,
                out_dir,
                workers=workers,
                scheduler=scheduler,
                command=argv,
                retry_failed=retry_failed,
                on_start=progress.start,
                on_cell=progress.update,
            )
    except KeyboardInterrupt:
        click.echo(
            f"\ninterrupted: every finished cell is saved in {out_dir}; run the same command "
            "again to continue",
            err=True,
        )
        sys.exit(130)
    result = {
        "out": summary.out,
        "cells": summary.total,
        "already_finished": summary.skipped,
        "ok": summary.ok,
        "failed": summary.failed,
        "seconds": round(summary.seconds, 2),
    }
    if fmt == "json":
        click.echo(json.dumps(result))
    else:
        click.echo(
            f"{summary.ok + summary.failed} cells run ({summary.failed} failed), "
            f"{summary.skipped} already finished, in {summary.seconds:.1f} s; results in {out_dir}\n"
            f"next: bocli report {shlex.quote(out_dir)} -o report.html"
        )


def _reconstruct(ctx: click.Context) -> list[str]:
    """The options as given, for compare.json when not run from the console script (CliRunner)."""
    args: list[str] = []
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name or "")
        value = ctx.params.get(param.name or "")
        if source is None or source.name == "DEFAULT" or not isinstance(param, click.Option):
            continue
        opt = param.opts[0]
        if param.is_flag:
            args.append(opt)
        else:
            for item in value if param.multiple and value else (value,):
                args += [opt, str(item)]
    return args


@click.command(context_settings={"show_default": True})
@click.argument("results_dir", metavar="DIR_OR_STUDY", type=click.Path())
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    default=None,
    help="Report file [default: DIR/report.html (a study file: STUDY.html) for html; stdout "
    "for md].",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "md"]),
    default="html",
    show_default=True,
    help="html: one self-contained file; md: the tables as Markdown.",
)
def report(results_dir: str, output: str | None, fmt: str) -> None:
    """Turn the results of `bocli compare` in DIR, or one study, into a report.

    For a comparison folder the HTML report is one self-contained file (plots embedded, opens
    offline): regret curves, final-regret ranks, time per iteration, calibration, and the
    commands and versions used. For problems with several objectives: hypervolume (or log10
    hypervolume regret) curves, ranks by it, and the Pareto fronts of the final data.
    --format md prints the rank table as Markdown.

    For a study file or a `bocli run --out` folder the page shows that study: its progress,
    measured vs predicted values and each parameter's effect (the plots of `bocli plot`), the
    best trials (several objectives: the feasible Pareto set), the search space and the settings.
    --format md prints those tables as Markdown, without the plots.

    \b
    Examples:
      bocli report cmp -o report.html
      bocli report cmp --format md
      bocli report study.db -o study.html
      bocli report runs/branin --format md
    """
    from bocli.report import write_report

    if output is not None:
        parent = Path(output).parent
        if not parent.is_dir():
            raise UserError(
                f"--output {output}: folder '{parent}' does not exist (create it first)"
            )
        if not os.access(parent, os.W_OK):
            raise UserError(f"--output {output}: folder '{parent}' is not writable")
    source = Path(results_dir)
    if source.is_file() or (source / "study.db").is_file():
        _study_report(source, output, fmt)
        return
    if not (source / "compare.json").exists():
        missing = "" if source.exists() else " (no such file or folder)"
        raise UserError(
            f"{source}: no compare.json and no study.db here{missing}; give a `bocli compare "
            "--out` folder, a `bocli run --out` folder or a study file"
        )
    from bocli.compare import load_results

    results = load_results(results_dir)
    if fmt == "md":
        text = write_report(results, output, "md")
        if output is None:
            click.echo(text, nl=False)
        else:
            click.echo(f"wrote {output}")
        return
    path = output or str(Path(results_dir) / "report.html")
    write_report(results, path, "html")
    click.echo(f"wrote {path}")


def _study_report(source: Path, output: str | None, fmt: str) -> None:
    """``bocli report`` of one study file or run folder."""
    from bocli.report import write_study_report
    from bocli.study import check_overwrite

    study = source / "study.db" if source.is_dir() else source
    if fmt == "md" and output is None:
        click.echo(write_study_report(study, None, "md"), nl=False)
        return
    if output is None:
        output = str(source / "report.html" if source.is_dir() else source.with_suffix(".html"))
    check_overwrite(study, output, force=True)  # never the study itself, a journal or a folder
    write_study_report(study, output, fmt)
    click.echo(f"wrote {output}")
