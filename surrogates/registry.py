"""The surrogate registry: a plain dict filled by a decorator that rejects duplicates.

Surrogate modules import torch, so they are loaded on first use; ``surrogate_names()`` lists the known
names without importing anything heavy (``bocli --help`` and option choices stay instant).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from typing import Any

from bocli.errors import UserError
from surrogates.base import Surrogate

__all__ = [
    "SURROGATES",
    "UnknownSurrogateError",
    "get_surrogate_class",
    "make_surrogate",
    "register_surrogate",
    "surrogate_names",
]

SURROGATES: dict[str, type[Surrogate]] = {}

# name -> module that registers it when imported (lazy loading only; the decorator is the registry)
_MODULES: dict[str, str] = {
    "gp": "surrogates.gp",
    "ibnn": "surrogates.ibnn",
    "ibnn-t": "surrogates.ibnn_t",
    "dkl": "surrogates.dkl",
    "ensemble": "surrogates.ensemble",
    "hmc": "surrogates.hmc",
    "pfn": "surrogates.pfn",
}


class UnknownSurrogateError(UserError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def register_surrogate(name: str) -> Callable[[type[Surrogate]], type[Surrogate]]:
    """Class decorator: register a surrogate under ``name`` (sets ``cls.name``)."""

    def deco(cls: type[Surrogate]) -> type[Surrogate]:
        if name in SURROGATES:
            raise ValueError(f"surrogate '{name}' is already registered")
        cls.name = name
        SURROGATES[name] = cls
        return cls

    return deco


def surrogate_names() -> list[str]:
    """Names of the surrogates whose module is present, in a stable order (no heavy imports)."""
    return [n for n, m in _MODULES.items() if importlib.util.find_spec(m) is not None]


def get_surrogate_class(name: str) -> type[Surrogate]:
    if name not in SURROGATES:
        module = _MODULES.get(name)
        if module is None or importlib.util.find_spec(module) is None:
            raise UnknownSurrogateError(
                f"unknown surrogate '{name}'; choose from: {', '.join(surrogate_names())}"
            )
        # surrogate modules import botorch at their top: load it without JAX first (~1 s of a
        # cold `bocli ask`, which checks the surrogate before it suggests)
        from bocli.engine import import_botorch_without_jax

        import_botorch_without_jax()
        importlib.import_module(module)
    if name not in SURROGATES:
        raise UnknownSurrogateError(f"surrogate '{name}' is not provided by {_MODULES[name]}")
    return SURROGATES[name]


def make_surrogate(name: str, options: dict[str, Any] | None = None) -> Surrogate:
    """Build a surrogate by name with user options (see ``Surrogate.from_options``)."""
    return get_surrogate_class(name).from_options(options)
