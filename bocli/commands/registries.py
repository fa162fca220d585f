"""``bocli problems`` / ``surrogates`` / ``acquisitions``: list the registries."""

from __future__ import annotations

import json
from typing import Any

import click

from bocli.commands.options import format_option


def _emit(rows: list[dict[str, Any]], columns: list[str], title: str, fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(rows, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*["" if r.get(c) is None else str(r.get(c)) for c in columns])
    Console().print(table)


@click.command()
@format_option("table", "json")
def problems(fmt: str) -> None:
    """List the registered problems (name, dimension, known optimum, noise).

    \b
    Example:
      bocli problems --format json
    """
    from problems import list_problems

    rows = []
    for name, p in list_problems().items():
        types = sorted({prm.type for prm in p.space.parameters})
        rows.append(
            {
                "name": name,
                "dim": p.space.dim,
                "types": ",".join(types),
                "optimum": p.optimum,
                "noise_std": p.noise_std,
                "description": p.description,
            }
        )
    _emit(rows, ["name", "dim", "types", "optimum", "noise_std", "description"], "problems", fmt)


@click.command()
@format_option("table", "json")
def surrogates(fmt: str) -> None:
    """List the surrogate models with their settings (for --surrogate-option).

    \b
    Example:
      bocli surrogates
    """
    from surrogates import get_surrogate_class, surrogate_names

    rows = []
    for name in surrogate_names():
        cls = get_surrogate_class(name)
        settings = cls().settings()
        rows.append(
            {
                "name": name,
                "description": cls.description,
                "capabilities": ",".join(sorted(cls.capabilities)) or "posterior",
                "settings": ", ".join(f"{k}={v}" for k, v in settings.items()),
            }
        )
    _emit(rows, ["name", "description", "capabilities", "settings"], "surrogates", fmt)


@click.command()
@format_option("table", "json")
def acquisitions(fmt: str) -> None:
    """List the acquisitions and the surrogate x acquisition matrix as it really is.

    \b
    Example:
      bocli acquisitions --format json
    """
    from bocli.acquisition import ACQUISITIONS
    from surrogates import get_surrogate_class, surrogate_names

    names = surrogate_names()
    caps = {s: get_surrogate_class(s).capabilities for s in names}
    rows = []
    for a, spec in ACQUISITIONS.items():
        row: dict[str, Any] = {
            "name": a,
            "description": spec.description,
            "requires": spec.requirement_text(),
        }
        for s in names:
            row[s] = spec.supports(caps[s])
        rows.append(row)
    if fmt == "json":
        _emit(rows, [], "", fmt)
        return
    for r in rows:
        for s in names:
            r[s] = "yes" if r[s] else "-"
    _emit(rows, ["name", *names, "description"], "acquisitions (columns: surrogates)", fmt)
