"""Mixed-type benchmarks: float, integer and categorical parameters with a known optimum."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bocli.space import CategoricalParam, FloatParam, IntParam, Objective, Param, Space
from problems.base import Problem
from problems.registry import register_problem
from problems.synthetic import _ackley, _check_dim, _name

__all__ = ["MixedAckley"]

# per category: where the optimum of the float part sits, and the value added everywhere
_SHIFT = {"red": 0.0, "green": 1.0, "blue": -1.5}
_OFFSET = {"red": 1.0, "green": 0.0, "blue": 0.5}
_N_BEST = 3


@dataclass(frozen=True)
class MixedAckley:
    """Ackley over ``(x - shift[c], n - 3)`` plus ``offset[c]``; the category moves the optimum.

    Parameters: floats ``x0 .. x{dim-1}`` in ``[-5, 10]``, an int ``n`` in ``[0, 10]`` and a
    categorical ``c`` in ``{red, green, blue}``. Minimum 0 at ``x_i = 1``, ``n = 3``, ``c = green``;
    each other category has its own optimum, ``offset[c]`` higher, elsewhere in the box.
    """

    dim: int

    def __call__(self, params: Mapping[str, Any]) -> float:
        c = str(params["c"])
        z = [float(params[f"x{i}"]) - _SHIFT[c] for i in range(self.dim)]
        z.append(float(params["n"]) - _N_BEST)
        return float(_ackley(np.array([z]))[0]) + _OFFSET[c]


@register_problem("mixed-ackley")
def mixed_ackley(dim: int = 4, noise_std: float = 0.0) -> Problem:
    """Mixed Ackley: ``dim`` floats, one int, one categorical (see :class:`MixedAckley`)."""
    dim = _check_dim("mixed-ackley", dim)
    params: tuple[Param, ...] = (
        *(FloatParam(f"x{i}", -5.0, 10.0) for i in range(dim)),
        IntParam("n", 0, 10),
        CategoricalParam("c", tuple(_SHIFT)),
    )
    return Problem(
        name=_name("mixed-ackley", dim, 4),
        space=Space(params, Objective("value", "minimize")),
        fn=MixedAckley(dim),
        optimum=0.0,
        noise_std=noise_std,
        description=f"Ackley with {dim} floats, an int and a categorical that moves the optimum",
        tags=("mixed",),
    )
