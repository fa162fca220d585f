"""Shared option decorators and parsing helpers (sqlite-utils style), so commands stay thin."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from bocli.errors import UserError

F = TypeVar("F", bound=Callable[..., Any])


def _registry_choice(kind: str) -> click.Choice:
    if kind == "surrogate":
        from surrogates.registry import surrogate_names

        return click.Choice(surrogate_names())
    from bocli.acquisition import acquisition_names

    return click.Choice(acquisition_names())


def parse_key_values(option: str, values: tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` pairs (repeatable) or one JSON object -> dict (values stay strings for the
    surrogate to convert to its field types; JSON values keep their JSON types)."""
    out: dict[str, Any] = {}
    for item in values:
        text = item.strip()
        if text.startswith("{"):
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                raise UserError(f"{option}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(obj, dict):
                raise UserError(f"{option}: JSON must be an object")
            out.update(obj)
            continue
        key, eq, value = text.partition("=")
        if not eq or not key.strip():
            raise UserError(f"{option}: expected key=value or a JSON object, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def model_options(f: F) -> F:
    """``--surrogate``, ``--acquisition``, ``--surrogate-option``, ``--acquisition-option``."""
    f = click.option(
        "--acquisition-option",
        "acquisition_option",
        multiple=True,
        metavar="KEY=VALUE",
        help="Acquisition setting (repeatable), e.g. beta=3 for ucb, num_fantasies=64 for kg.",
    )(f)
    f = click.option(
        "--surrogate-option",
        "surrogate_option",
        multiple=True,
        metavar="KEY=VALUE",
        help="Surrogate setting (repeatable, or one JSON object); see `bocli surrogates`.",
    )(f)
    f = click.option(
        "--acquisition",
        "-a",
        default=None,
        type=_registry_choice("acquisition"),
        help="Acquisition function [default: ei].",
    )(f)
    f = click.option(
        "--surrogate",
        "-s",
        default=None,
        type=_registry_choice("surrogate"),
        help="Surrogate model [default: gp].",
    )(f)
    return f


def init_option(f: F) -> F:
    """``--init``: the Sobol design size (``run``, ``init`` and ``compare`` share it)."""
    return click.option(
        "--init",
        "n_init",
        type=click.IntRange(min=0),
        default=None,
        help="Sobol initial-design size [default: max(4, 2d), at most 20].",
    )(f)


def device_option(f: F) -> F:
    return click.option(
        "--device",
        type=click.Choice(["auto", "cpu", "cuda"]),
        default="cpu",
        show_default=True,
        help="Where every tensor of the model lives.",
    )(f)


def format_option(*choices: str, default: str | None = None) -> Callable[[F], F]:
    def deco(f: F) -> F:
        return click.option(
            "--format",
            "fmt",
            type=click.Choice(list(choices)),
            default=default or choices[0],
            show_default=True,
            help="Output format (json for scripts).",
        )(f)

    return deco


def fix_option(f: F) -> F:
    """``--fix NAME=VALUE`` (repeatable): parameters every proposed point takes."""
    return click.option(
        "--fix",
        "fix",
        multiple=True,
        metavar="NAME=VALUE",
        help="Propose only points with this parameter value (repeatable), e.g. solvent=water.",
    )(f)


def parse_fix(values: tuple[str, ...]) -> dict[str, str]:
    """``--fix`` items -> ``{name: value text}`` (each parameter's ``validate`` converts the text).

    Raises:
        UserError: An item without ``=`` or a name, or a parameter fixed twice (one line).
    """
    out: dict[str, str] = {}
    for item in values:
        name, eq, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not eq or not name or not value:
            raise UserError(f"--fix: expected NAME=VALUE, got {item!r}")
        if name in out and out[name] != value:
            raise UserError(f"--fix {name}: given twice ({out[name]} and {value})")
        out[name] = value
    return out
