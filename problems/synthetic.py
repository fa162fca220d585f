"""Synthetic benchmark functions (numpy, noiseless values; optima from the literature)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from bocli.space import FloatParam, Objective, Space
from problems.base import Problem
from problems.registry import register_problem


def _box(names: list[str], low: list[float], high: list[float], objective: str = "value") -> Space:
    params = tuple(FloatParam(n, lo, hi) for n, lo, hi in zip(names, low, high, strict=True))
    return Space(params, Objective(objective, "minimize"))


def _vec(params: Mapping[str, Any], n: int) -> np.ndarray:
    return np.array([float(params[f"x{i}"]) for i in range(n)])


def _branin(p: Mapping[str, Any]) -> float:
    x1, x2 = float(p["x0"]), float(p["x1"])
    b, c, r, s, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


@register_problem("branin")
def branin(noise_std: float = 0.0) -> Problem:
    return Problem(
        name="branin",
        space=_box(["x0", "x1"], [-5.0, 0.0], [10.0, 15.0]),
        fn=_branin,
        optimum=0.397887357729738,
        noise_std=noise_std,
        description="Branin-Hoo, 2-D, three global minima",
    )


_H6_A = np.array(
    [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8],
     [17, 8, 0.05, 10, 0.1, 14]]
)
_H6_P = 1e-4 * np.array(
    [[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
     [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]]
)
_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


@register_problem("hartmann6")
def hartmann6(noise_std: float = 0.0) -> Problem:
    def fn(p: Mapping[str, Any]) -> float:
        x = _vec(p, 6)
        return float(-np.sum(_ALPHA * np.exp(-np.sum(_H6_A * (x - _H6_P) ** 2, axis=1))))

    return Problem(
        name="hartmann6",
        space=_box([f"x{i}" for i in range(6)], [0.0] * 6, [1.0] * 6),
        fn=fn,
        optimum=-3.32236801141551,
        noise_std=noise_std,
        description="Hartmann, 6-D, one global minimum, several local ones",
    )
