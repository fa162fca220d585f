"""``bocli plot``: a study's progress as a PNG or SVG picture."""

from __future__ import annotations

import json

import click

from bocli.commands.options import format_option


@click.command(context_settings={"show_default": True})
@click.argument("study", type=click.Path())
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    required=True,
    help="Picture file; .png or .svg (an existing picture is replaced).",
)
@format_option("text", "json")
def plot(study: str, output: str, fmt: str) -> None:
    """Draw the progress of STUDY (a study file or a `bocli run --out` folder).

    Panels: the best value so far against trial number (several objectives: the hypervolume so
    far) with every measured value and the failed trials; each measured outcome with the model's
    predicted mean and 90% interval at the time the trial was proposed; the measured objective
    against each parameter, the best trial (several objectives: the Pareto set) starred.
    Infeasible trials (outcome constraints) are grey crosses.

    \b
    Examples:
      bocli plot study.db -o progress.png
      bocli plot runs/branin -o progress.svg
    """
    from bocli.plot import write_figure

    info = write_figure(study, output)
    if fmt == "json":
        click.echo(json.dumps(info))
    else:
        note = "" if info["complete"] else " (no complete trials yet: empty panels)"
        click.echo(f"wrote {info['output']}: {info['complete']} complete trials{note}")
