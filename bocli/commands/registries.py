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
    console = Console()
    if not console.is_terminal:  # a pipe or a file: whole lines, never wrapped at 80 columns
        console = Console(width=1000)
    console.print(table)


def _objectives_text(objectives: list[Any]) -> str:
    """``minimize value`` or ``2 (minimize f1, f2)``, ``3 (minimize f1, maximize f2, f3)``."""
    groups: list[tuple[str, list[str]]] = []
    for o in objectives:
        if groups and groups[-1][0] == o.direction:
            groups[-1][1].append(o.name)
        else:
            groups.append((o.direction, [o.name]))
    text = ", ".join(f"{d} {', '.join(names)}" for d, names in groups)
    return text if len(objectives) == 1 else f"{len(objectives)} ({text})"


@click.command()
@format_option("table", "json")
def problems(fmt: str) -> None:
    """List the registered problems (name, dimension, objectives, constraints, known optimum).

    With several objectives, the objectives' thresholds form the hypervolume's reference point
    (reference_point in JSON), and the optimum column shows the largest hypervolume reachable
    (max_hv in JSON), when known.

    \b
    Example:
      bocli problems --format json
    """
    from problems import list_problems

    rows = []
    for name, p in list_problems().items():
        space = p.space
        thresholds = space.thresholds()
        row: dict[str, Any] = {
            "name": name,
            "dim": space.dim,
            "types": ",".join(sorted({prm.type for prm in space.parameters})),
        }
        if fmt == "json":
            row["objectives"] = [
                {"name": o.name, "direction": o.direction, "threshold": o.threshold}
                for o in space.objectives
            ]
            row["outcome_constraints"] = [c.to_dict() for c in space.outcome_constraints]
            row["reference_point"] = None if None in thresholds else thresholds
            row["optimum"] = p.optimum
            row["max_hv"] = p.max_hv
            row["tags"] = list(p.tags)
        else:
            row["objectives"] = _objectives_text(list(space.objectives))
            row["constraints"] = len(space.outcome_constraints) or None
            row["optimum"] = p.optimum if p.max_hv is None else f"HV {p.max_hv:.6g}"
        row["noise_std"] = p.noise_std
        row["description"] = p.description
        rows.append(row)
    columns = ["name", "dim", "types", "objectives", "constraints", "optimum", "noise_std"]
    _emit(rows, [*columns, "description"], "problems", fmt)


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

    Each surrogate column says whether the pair runs and what it computes: ``exact`` (the method
    as published on that model's posterior, up to Monte-Carlo error), ``approx`` (a stand-in; the
    JSON's ``exactness`` says which) or ``-`` (refused). JSON: ``<surrogate>`` is true for a
    supported pair, ``exactness.<surrogate>`` is ``{"supported", "exact", "note"}``.

    \b
    Example:
      bocli acquisitions --format json
    """
    from bocli.acquisition import ACQUISITIONS, exactness
    from surrogates import get_surrogate_class, surrogate_names

    names = surrogate_names()
    caps = {s: get_surrogate_class(s).capabilities for s in names}
    rows = []
    for a, spec in ACQUISITIONS.items():
        for multi in (False, True):
            form = spec.multi if multi else (spec if spec.single_objective else None)
            if form is None:
                continue
            row: dict[str, Any] = {
                "name": a,
                "objectives": "several" if multi else "one",
                "outcome_constraints": form.constraints,
                "description": form.description,
                "requires": form.requirement_text(),
            }
            detail: dict[str, dict[str, Any]] = {}
            for s in names:
                row[s] = form.supports(caps[s])
                kind, note = exactness(a, s, multi=multi)
                detail[s] = {
                    "supported": row[s],
                    "exact": kind == "exact" if row[s] else None,
                    "note": note if row[s] else "",
                }
            row["exactness"] = detail
            rows.append(row)
    if fmt == "json":
        _emit(rows, [], "", fmt)
        return
    for r in rows:
        for s in names:
            r[s] = ("exact" if r["exactness"][s]["exact"] else "approx") if r[s] else "-"
        r["constraints"] = "yes" if r["outcome_constraints"] else "-"
    _emit(
        rows,
        ["name", "objectives", "constraints", *names, "description"],
        "acquisitions (columns: surrogates, exact / approx(imate) / - unsupported; constraints: "
        "takes outcome constraints)",
        fmt,
    )
