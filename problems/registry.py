"""The problem registry: a plain dict of factories filled by a decorator that rejects duplicates.

A factory takes keyword settings (``dim`` for dimension-parametrized functions, ``noise_std`` ...) and
returns a :class:`~problems.base.Problem`. ``get_problem("ackley")`` uses the defaults;
``get_problem("ackley:dim=10")`` or ``get_problem("ackley10")`` picks a dimension.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from bocli.errors import UserError
from problems.base import Problem

__all__ = ["PROBLEMS", "UnknownProblemError", "get_problem", "register_problem"]

ProblemFactory = Callable[..., Problem]
PROBLEMS: dict[str, ProblemFactory] = {}


class UnknownProblemError(UserError, KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; we want a plain line
        return str(self.args[0])


def register_problem(name: str) -> Callable[[ProblemFactory], ProblemFactory]:
    """Register a problem factory under ``name``; a second registration of a name is an error."""

    def deco(factory: ProblemFactory) -> ProblemFactory:
        if name in PROBLEMS:
            raise ValueError(f"problem '{name}' is already registered")
        PROBLEMS[name] = factory
        return factory

    return deco


def _parse_value(text: str) -> Any:
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def get_problem(spec: str) -> Problem:
    """Build a registered problem from ``NAME``, ``NAME<dim>`` or ``NAME:key=value,key=value``.

    ``NAME<dim>-SUFFIX`` also works for variants (``ackley10-noisy`` is ``ackley-noisy:dim=10``), and
    ``NAME_<dim>`` or ``NAME_<dim>_<m>`` for names that end in a digit or also take
    ``num_objectives`` (``zdt1_10``, ``dtlz2_4_3`` is ``dtlz2:dim=4,num_objectives=3``), so the name
    of every built problem builds it again.
    """
    _load_builtin()
    name, _, opts = spec.strip().partition(":")
    kwargs: dict[str, Any] = {}
    if opts:
        for item in opts.split(","):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise UnknownProblemError(f"problem '{spec}': expected key=value, got '{item}'")
            kwargs[key.strip()] = _parse_value(value.strip())
    if name not in PROBLEMS:
        name = _underscore_settings(spec, name, kwargs)
    if name not in PROBLEMS:
        m = re.fullmatch(r"([a-z_\-]*[a-z_])(\d+)(-[a-z_\-]+)?", name)
        if m and m.group(1) + (m.group(3) or "") in PROBLEMS:
            dim = int(m.group(2))
            if kwargs.get("dim", dim) != dim:
                raise UnknownProblemError(
                    f"problem '{spec}': the name says dim={dim} but the settings say "
                    f"dim={kwargs['dim']}"
                )
            name, kwargs["dim"] = m.group(1) + (m.group(3) or ""), dim
    if name not in PROBLEMS:
        import difflib

        close = difflib.get_close_matches(name, list(PROBLEMS), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise UnknownProblemError(
            f"unknown problem '{name}'{hint}; see `bocli problems` for the list"
        )
    factory = PROBLEMS[name]
    _check_settings(spec, factory, kwargs)
    try:
        return factory(**kwargs)
    except (TypeError, ValueError) as e:
        raise UnknownProblemError(f"problem '{spec}': bad settings ({e})") from None


def _underscore_settings(spec: str, name: str, kwargs: dict[str, Any]) -> str:
    """``dtlz2_4_3`` -> ``dtlz2`` with dim=4, num_objectives=3 in ``kwargs`` (``zdt1_10``: dim only),
    when the base name is registered; else ``name`` unchanged."""
    m = re.fullmatch(r"(.+?)_(\d+)(?:_(\d+))?", name)
    if not m or m.group(1) not in PROBLEMS:
        return name
    said = {"dim": int(m.group(2))}
    if m.group(3) is not None:
        said["num_objectives"] = int(m.group(3))
    for key, value in said.items():
        if kwargs.get(key, value) != value:
            raise UnknownProblemError(
                f"problem '{spec}': the name says {key}={value} but the settings say "
                f"{key}={kwargs[key]}"
            )
    kwargs.update(said)
    return m.group(1)


def _check_settings(spec: str, factory: ProblemFactory, kwargs: dict[str, Any]) -> None:
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):  # not introspectable: let the call itself complain
        return
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    for key in kwargs:
        if key not in sig.parameters:
            known = ", ".join(sig.parameters) or "none"
            raise UnknownProblemError(
                f"problem '{spec}': unknown setting '{key}'; settings: {known}"
            )


def _load_builtin() -> None:
    # importing the modules runs their @register_problem decorators (none imports torch or sklearn)
    from problems import mixed, ml, multiobjective, synthetic  # noqa: F401
