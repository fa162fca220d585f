"""``bocli init / ask / tell / status / best / export``: the CSV ask-tell workflow on a study file.

Thin commands over ``bocli.study``. Nothing heavy is imported at module level; ``tell``, ``status``,
``best`` and ``export`` never import torch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
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
from bocli.errors import UserError

STUDY = click.argument("study", type=click.Path())  # a study file, or a `bocli run` folder


@click.command(context_settings={"show_default": True})
@STUDY
@click.option(
    "--space",
    "space_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Space file (YAML or JSON) with parameters and objective.",
)
@click.option("--problem", default=None, metavar="NAME", help="A registered problem's space.")
@click.option(
    "--minimize", "direction", flag_value="minimize", default=None, help="Smaller is better."
)
@click.option("--maximize", "direction", flag_value="maximize", help="Bigger is better.")
@model_options
@click.option("--seed", type=int, default=0, help="Seed of the design and of every proposal.")
@init_option
def init(
    study: str,
    space_file: str | None,
    problem: str | None,
    direction: str | None,
    surrogate: str | None,
    acquisition: str | None,
    surrogate_option: tuple[str, ...],
    acquisition_option: tuple[str, ...],
    seed: int,
    n_init: int | None,
) -> None:
    """Create the study file STUDY from a space file or a registered problem.

    The surrogate and acquisition become the defaults of `bocli ask` (each ask may override them).

    \b
    Examples:
      bocli init study.db --space space.yaml
      bocli init study.db --problem branin --surrogate gp --acquisition ei --seed 1
    """
    from bocli.space import Space
    from bocli.study import init_study

    if (space_file is None) == (problem is None):
        raise UserError("init: give exactly one of --space FILE or --problem NAME")
    settings = init_study(
        study,
        space=Space.from_file(space_file) if space_file else None,
        problem=problem,
        direction=direction,
        surrogate=surrogate or "gp",
        acquisition=acquisition or "ei",
        surrogate_options=parse_key_values("--surrogate-option", surrogate_option),
        acquisition_options=parse_key_values("--acquisition-option", acquisition_option),
        seed=seed,
        n_init=n_init,
    )
    click.echo(
        f"created {study}: {settings.space.dim} parameters ({', '.join(settings.space.names)}), "
        f"{settings.space.describe_outcomes()}, {settings.surrogate}+{settings.acquisition}, "
        f"first {settings.n_init} trials from a Sobol design"
        + (
            f"; subject to {settings.space.describe_parameter_constraints()}"
            if settings.space.parameter_constraints
            else ""
        )
    )


@click.command(context_settings={"show_default": True})
@STUDY
@click.option("-n", "q", type=click.IntRange(min=1), default=1, help="Number of trials to ask for.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the trials to this file (default: print them).",
)
@format_option("csv", "json", "table")
@model_options
@device_option
@click.option(
    "--force", is_flag=True, help="Replace an existing -o FILE (never an SQLite database)."
)
@fix_option
def ask(
    study: str,
    q: int,
    output: str | None,
    fmt: str,
    surrogate: str | None,
    acquisition: str | None,
    surrogate_option: tuple[str, ...],
    acquisition_option: tuple[str, ...],
    device: str,
    force: bool,
    fix: tuple[str, ...],
) -> None:
    """Suggest Q new trials (stored as pending) and write them as CSV, JSON or a table.

    The CSV has the columns trial_id, one per parameter, and the objective (empty): fill in the
    objective and give the file to `bocli tell`. Pending trials are never suggested again, also by
    asks running at the same time. -o never replaces an existing file without --force, and never
    an SQLite database (a study); --format table is for the terminal only.

    \b
    Examples:
      bocli ask study.db -n 4 -o batch.csv
      bocli ask study.db --format json
      bocli ask study.db -n 2 --surrogate ibnn --acquisition ucb --acquisition-option beta=3
      bocli ask study.db -n 3 --fix solvent=water --fix temperature=30
    """
    import warnings

    from bocli.study import ask as ask_study
    from bocli.study import check_overwrite

    # scipy's note that Sobol balance wants powers of 2: true, and no action for the user
    warnings.filterwarnings("ignore", message="The balance properties of Sobol")

    out = Path(output) if output else None
    if out is not None:  # checked before asking: a refused -o leaves the study as it was
        if fmt == "table":
            raise UserError(
                f"-o {out}: --format table is drawn for the terminal; write --format csv (to fill "
                "in and tell) or --format json to a file"
            )
        check_overwrite(study, out, force)
    result = ask_study(
        study,
        q,
        surrogate=surrogate,
        acquisition=acquisition,
        surrogate_options=parse_key_values("--surrogate-option", surrogate_option)
        if surrogate_option
        else None,
        acquisition_options=parse_key_values("--acquisition-option", acquisition_option)
        if acquisition_option
        else None,
        device=device,
        fixed=parse_fix(fix) or None,
    )
    warning = (result.info.get("diagnostics") or {}).get("warning")
    if warning:  # e.g. hmc: many divergent transitions, and which setting to change
        click.echo(f"warning: {result.info['surrogate']}: {warning}", err=True)
    try:
        text = _render_trials(study, result.trials, fmt)
        if out is None:
            click.echo(text, nl=False)
            return
        from bocli.study import write_output

        write_output(study, out, text, force)  # atomic; checks -o again just before
    except BaseException:
        # the user never saw these trials: free their slots rather than leave them pending forever
        from bocli.study import abandon

        abandon(study, [t.trial_id for t in result.trials])
        raise
    ids = [t.trial_id for t in result.trials]
    how = (
        "sobol design"
        if result.info.get("phase") != "model"
        else f"{result.info['surrogate']}+{result.info['acquisition']}"
    )
    span = str(ids[0]) if len(ids) == 1 else f"{ids[0]}-{ids[-1]}"
    click.echo(f"asked trial{'s' if len(ids) > 1 else ''} {span} ({how}) -> {out}", err=True)


def _render_trials(study: str, trials: list[Any], fmt: str) -> str:
    from bocli.csvio import format_cell, to_csv_text
    from bocli.storage import StudyStorage
    from bocli.study import ask_columns, ask_row, text_json

    with StudyStorage.open(study) as st:
        space = st.settings.space
    obj = space.objective.name
    if fmt == "json":
        items = [
            {
                "trial_id": t.trial_id,
                "params": t.params,
                "proposed_by": t.proposed_by,
                "predicted": t.predictions
                if t.predictions
                else None
                if t.predicted_mean is None
                else {"mean": t.predicted_mean, "sd": t.predicted_sd},
                **text_json(space, t),
            }
            for t in trials
        ]
        return json.dumps(items, indent=2) + "\n"
    rows = [ask_row(space, t) for t in trials]
    if fmt == "csv":
        return to_csv_text(ask_columns(space), rows)
    columns = ["trial_id", *space.names]  # the table shows what to run, not what to fill in
    cells = [[format_cell(r[c]) for c in columns] for r in rows]
    if any(t.predictions for t in trials):
        for name in space.outcome_names:
            columns = [*columns, f"predicted {name}"]
            for row, t in zip(cells, trials, strict=True):
                pred = (t.predictions or {}).get(name) or {}
                row.append(_pm(pred.get("mean"), pred.get("sd")))
    elif any(t.predicted_mean is not None for t in trials):
        # what the model expects to measure: mean +- one predictive standard deviation
        columns = [*columns, f"predicted {obj}"]
        for row, t in zip(cells, trials, strict=True):
            row.append(_pm(t.predicted_mean, t.predicted_sd))
    return _table_text(columns, cells)


def _pm(mean: float | None, sd: float | None) -> str:
    if mean is None:
        return ""
    if sd is None:
        return f"{mean:.4g}"
    return f"{mean:.4g} ± {sd:.2g}"


def _table_text(columns: list[str], rows: list[list[str]], title: str | None = None) -> str:
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns, title=title)
    for r in rows:
        table.add_row(*r)
    widths = [
        max([len(c), *(len(r[j]) for r in rows if j < len(r))]) for j, c in enumerate(columns)
    ]
    console = Console(file=None, record=True, width=max(80, sum(w + 3 for w in widths) + 1))
    with console.capture() as cap:
        console.print(table)
    return cap.get()


@click.command(context_settings={"show_default": True})
@STUDY
@click.argument("file", required=False, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--trial", "trial_id", type=click.IntRange(min=0), default=None, help="Trial id.")
@click.option("--value", type=float, default=None, help="The trial's objective value.")
@click.option(
    "--status",
    type=click.Choice(["complete", "failed", "abandoned"]),
    default=None,
    help="Mark the trial failed (evaluated, no usable result) or abandoned (never evaluated).",
)
@click.option(
    "--overwrite", is_flag=True, help="Allow replacing the result of a complete or failed trial."
)
@format_option("text", "json")
def tell(
    study: str,
    file: str | None,
    trial_id: int | None,
    value: float | None,
    status: str | None,
    overwrite: bool,
    fmt: str,
) -> None:
    """Record results from FILE (a CSV from `bocli ask` with the objective filled in), or one
    trial's result with --trial.

    Every row is checked first; one bad row and nothing is recorded (exit code 2, every problem
    listed with its row and column). Telling the same file again changes nothing. Rows without a
    trial_id are results obtained outside bocli (they are added to the study). An optional status
    column marks rows failed or abandoned; a row with an empty objective and no status stays pending.
    FILE '-' reads standard input.

    \b
    Examples:
      bocli tell study.db batch.csv
      bocli tell study.db --trial 3 --value 1.23
      bocli tell study.db --trial 4 --status failed
      bocli tell study.db history.csv      # rows without trial_id: earlier results
    """
    from bocli.study import tell_file, tell_value

    if file is not None and trial_id is not None:
        raise UserError("tell: give FILE or --trial, not both")
    if file is None:
        if trial_id is None:
            if value is not None or status is not None:
                raise UserError("--value/--status need --trial ID")
            raise UserError("tell: give FILE (a filled-in CSV) or --trial ID --value X")
        result = tell_value(study, trial_id, value=value, status=status, overwrite=overwrite)
        source = f"trial {trial_id}"
    else:
        if value is not None or status is not None:
            raise UserError("--value/--status apply to --trial, not to a FILE")
        if file == "-":
            result = tell_file(
                study, None, data=sys.stdin.buffer.read(), label="<stdin>", overwrite=overwrite
            )
        else:
            result = tell_file(study, file, overwrite=overwrite)
        source = "<stdin>" if file == "-" else file
    for line in result.warnings:  # stored all the same; the user may want to know
        click.echo(f"warning: {line}", err=True)
    if fmt == "json":
        from dataclasses import asdict

        click.echo(json.dumps({"source": source, **asdict(result)}))
    else:
        click.echo(f"{source}: {result.summary()}")


@click.command(context_settings={"show_default": True})
@STUDY
@format_option("table", "json")
def status(study: str, fmt: str) -> None:
    """Show a study's trials by state, the best result and what the next ask will use.

    \b
    Examples:
      bocli status study.db
      bocli status study.db --format json
    """
    from bocli.study import study_status

    info = study_status(study)
    if fmt == "json":
        click.echo(json.dumps(info))
        return
    lines = [
        f"study      {info['study']}"
        + (f" (problem {info['problem']})" if info["problem"] else ""),
        f"objective  {_outcomes_text(info)} over {', '.join(info['parameters'])}",
        f"trials     {info['trials']}: {info['complete']} complete, {info['pending']} pending, "
        f"{info['failed']} failed, {info['abandoned']} abandoned",
    ]
    if info.get("parameter_constraints"):
        lines.insert(2, f"subject to {'; '.join(info['parameter_constraints'])}")
    if info["best_value"] is not None:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in info["best_params"].items())
        lines.append(
            f"best       {_fmt(info['best_value'])} (trial {info['best_trial']}: {params})"
        )
        if info["regret"] is not None:
            lines.append(f"regret     {info['regret']:.4g}")
    if "feasible" in info:
        lines.append(f"feasible   {info['feasible']} of {info['complete']} complete trials")
    if "hypervolume" in info:
        lines.append(f"pareto     {info['pareto_optimal']} feasible Pareto-optimal trials")
        ref = info["reference_point"]
        if ref is None:
            lines.append(
                "hypervol.  - (the reference point is inferred at the first model-based ask)"
            )
        else:
            hv = "-" if info["hypervolume"] is None else _fmt(info["hypervolume"])
            label = " (inferred)" if info["reference_point_inferred"] else ""
            lines.append(
                f"hypervol.  {hv} against the reference point "
                f"({', '.join(_fmt(v) for v in ref)}){label}"
            )
            if info.get("log_hv_regret") is not None:
                lines.append(f"regret     log10 hypervolume regret {info['log_hv_regret']:.4g}")
    pc = info["predictions"]
    if pc is not None:
        lines.append(
            f"model      {pc['within_90']} of {pc['checked']} results inside the predicted 90% "
            f"interval; median error {pc['median_abs_error']:.3g} vs predicted sd "
            f"{pc['median_sd']:.3g}"
        )
    lines.append(f"next ask   {info['next_ask']}")
    click.echo("\n".join(lines))


def _fmt(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _outcomes_text(info: dict[str, Any]) -> str:
    """``minimize 'cost'`` or several objectives and constraints, from status's JSON."""
    if "objectives" not in info:
        return f"{info['direction']} '{info['objective']}'"
    from bocli.space import OutcomeConstraint

    objs = ", ".join(
        f"{o['direction']} '{o['name']}'"
        + (f" (threshold {_fmt(o['threshold'])})" if o.get("threshold") is not None else "")
        for o in info["objectives"]
    )
    cons = [OutcomeConstraint(**c).describe() for c in info["outcome_constraints"]]
    return objs + ("; subject to " + ", ".join(cons) if cons else "")


@click.command(context_settings={"show_default": True})
@STUDY
@format_option("table", "json")
def best(study: str, fmt: str) -> None:
    """Print the best complete trial of STUDY (its id, value and parameters).

    \b
    Examples:
      bocli best study.db
      bocli best study.db --format json | jq .params
    """
    from bocli.study import best_trial

    b = best_trial(study)
    if fmt == "json":
        click.echo(json.dumps(b))
        return
    if "pareto_set" in b:
        click.echo(_pareto_text(b), nl=False)
        return
    lines = [f"trial {b['trial_id']}: {b['objective']} = {_fmt(b['value'])} ({b['direction']})"]
    lines += [f"  {k} = {_fmt(v)}" for k, v in b["params"].items()]
    text = {"notes": b.get("notes"), **(b.get("metadata") or {})}
    lines += [f"  {k}: {' '.join(str(v).split())}" for k, v in text.items() if v]
    if "regret" in b:
        lines.append(f"regret {b['regret']:.4g}")
    click.echo("\n".join(lines))


def _pareto_text(b: dict[str, Any]) -> str:
    """The Pareto set as a table: measured values with the model's mean ± sd beside them."""
    from bocli.csvio import format_cell

    names = [o["name"] for o in b["objectives"]]
    names += [c["name"] for c in b["outcome_constraints"] if c["name"] not in names]
    rows = b["pareto_set"]
    if not rows:
        return (
            f"no complete trial satisfies the outcome constraints yet ({b['complete']} complete)\n"
        )
    params = list(rows[0]["params"])
    columns = ["trial", *params, *names]
    cells = []
    for r in rows:
        row = [str(r["trial_id"]), *(format_cell(r["params"][p]) for p in params)]
        for n in names:
            pred = (r.get("predicted") or {}).get(n)
            shown = _fmt(r["values"][n])
            if pred:
                shown += f"  ({_pm(pred['mean'], pred['sd'])})"
            row.append(shown)
        cells.append(row)
    dirs = ", ".join(f"{o['direction']} {o['name']}" for o in b["objectives"])
    title = f"{len(rows)} feasible Pareto-optimal trial(s) of {b['complete']} complete ({dirs})"
    text = _table_text(columns, cells, title=title)
    text += "values measured; in brackets the model's predicted mean ± sd there now\n"
    if b["reference_point"] is not None:
        label = " (inferred)" if b["reference_point_inferred"] else ""
        hv = "-" if b["hypervolume"] is None else _fmt(b["hypervolume"])
        text += (
            f"hypervolume {hv} against the reference point "
            f"({', '.join(_fmt(v) for v in b['reference_point'])}){label}\n"
        )
    return text


@click.command(context_settings={"show_default": True})
@STUDY
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write to this file (default: standard output).",
)
@click.option(
    "--pending",
    is_flag=True,
    help="Only the pending trials, laid out as `bocli ask` writes them (to re-make a lost batch).",
)
@click.option(
    "--force", is_flag=True, help="Replace an existing -o FILE (never an SQLite database)."
)
@format_option("csv", "json")
def export(study: str, output: str | None, pending: bool, force: bool, fmt: str) -> None:
    """Write every trial of STUDY: trial_id, parameters, objective, status and provenance.

    The CSV can be told back (`bocli tell`), which changes nothing, or edited and told with
    --overwrite to correct results. With --pending, only the trials still waiting for a result, in
    the columns `bocli ask` writes: fill in the objective and tell it.

    \b
    Examples:
      bocli export study.db -o all.csv
      bocli export study.db --format json
      bocli export study.db --pending -o batch.csv
    """
    from bocli.csvio import to_csv_text
    from bocli.study import check_overwrite, export_rows, pending_rows, write_output

    if output is not None:  # an existing file only with --force; an SQLite file (a study) never
        check_overwrite(study, output, force)
    columns, rows = pending_rows(study) if pending else export_rows(study)
    text = json.dumps(rows) + "\n" if fmt == "json" else to_csv_text(columns, rows)
    if output is None:
        click.echo(text, nl=False)
        return
    write_output(study, output, text, force)  # atomic: temporary file, then renamed into place
    click.echo(f"wrote {len(rows)} trials to {output}", err=True)
