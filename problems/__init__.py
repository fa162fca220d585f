"""Registry of benchmark and user-defined objectives (see problems/base.py for the contract)."""

from problems.base import ObjectiveError, Problem
from problems.registry import PROBLEMS, UnknownProblemError, get_problem, register_problem


def list_problems() -> dict[str, Problem]:
    """Every registered problem with its default settings, by name."""
    from problems.registry import _load_builtin

    _load_builtin()
    return {name: factory() for name, factory in PROBLEMS.items()}


__all__ = [
    "PROBLEMS",
    "ObjectiveError",
    "Problem",
    "UnknownProblemError",
    "get_problem",
    "list_problems",
    "register_problem",
]
