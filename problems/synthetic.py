"""Synthetic benchmark functions (numpy, noiseless values; optima from the literature).

Every function is minimized over a box, with parameters ``x0 .. x{d-1}`` and the objective ``value``.
The maths is written once, batched over points (``n x d -> n``); :class:`VectorFunction` adapts it to
the ``fn(params) -> float`` contract. Everything here is module level (no closures), so a problem
pickles and reaches worker processes; nothing here imports torch.

Dimension-parametrized functions take ``dim`` (``get_problem("ackley:dim=10")`` or ``"ackley10"``);
their problem name carries the dimension when it differs from the default (``ackley10``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

from bocli.space import FloatParam, Objective, Space
from problems.base import Problem
from problems.registry import register_problem

__all__ = ["VectorFunction", "box_space", "michalewicz_minimizer"]

BatchFn = Callable[[np.ndarray], np.ndarray]


def box_space(
    low: list[float], high: list[float], objective: str = "value", prefix: str = "x"
) -> Space:
    """A box ``[low, high]`` with float parameters ``x0 .. x{d-1}``, minimizing ``objective``."""
    params = tuple(
        FloatParam(f"{prefix}{i}", lo, hi) for i, (lo, hi) in enumerate(zip(low, high, strict=True))
    )
    return Space(params, Objective(objective, "minimize"))


@dataclass(frozen=True)
class VectorFunction:
    """Adapts a batched function ``f(X) -> values`` (``n x d -> n``) to ``fn(params) -> float``.

    Attributes:
        func: A module-level batched function (so the adapter pickles by reference).
        dim: Number of inputs, read from the parameters ``x0 .. x{dim-1}``.
    """

    func: BatchFn
    dim: int

    def __call__(self, params: Mapping[str, Any]) -> float:
        x = np.array([[float(params[f"x{i}"]) for i in range(self.dim)]])
        return float(self.func(x)[0])

    def batch(self, X: np.ndarray) -> np.ndarray:
        """Values at many points: ``n x d`` -> ``n``."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.dim:
            raise ValueError(f"expected an n x {self.dim} array, got shape {X.shape}")
        return np.asarray(self.func(X), dtype=np.float64)


def _check_dim(name: str, dim: int, minimum: int = 1) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < minimum:
        raise ValueError(f"problem '{name}': dim must be an integer >= {minimum}, got {dim!r}")
    return int(dim)


def _name(base: str, dim: int, default: int) -> str:
    return base if dim == default else f"{base}{dim}"


# ----- the functions (batched: X is n x d) -------------------------------------------------------
def _forrester(X: np.ndarray) -> np.ndarray:
    x = X[:, 0]
    return (6 * x - 2) ** 2 * np.sin(12 * x - 4)


def _branin(X: np.ndarray) -> np.ndarray:
    x1, x2 = X[:, 0], X[:, 1]
    b, c, r, s, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * np.cos(x1) + s


def _sixhumpcamel(X: np.ndarray) -> np.ndarray:
    x1, x2 = X[:, 0], X[:, 1]
    return (4 - 2.1 * x1**2 + x1**4 / 3) * x1**2 + x1 * x2 + (4 * x2**2 - 4) * x2**2


_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H3_A = np.array([[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]])
_H3_P = 1e-4 * np.array(
    [[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547], [381, 5743, 8828]]
)
_H6_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)


def _hartmann(X: np.ndarray, A: np.ndarray, P: np.ndarray) -> np.ndarray:
    inner = np.sum(A * (X[:, None, :] - P) ** 2, axis=-1)  # n x 4
    return -np.sum(_ALPHA * np.exp(-inner), axis=-1)


def _hartmann3(X: np.ndarray) -> np.ndarray:
    return _hartmann(X, _H3_A, _H3_P)


def _hartmann6(X: np.ndarray) -> np.ndarray:
    return _hartmann(X, _H6_A, _H6_P)


def _ackley(X: np.ndarray) -> np.ndarray:
    a, b, c = 20.0, 0.2, 2 * math.pi
    rms = np.sqrt(np.mean(X**2, axis=-1))
    return -a * np.exp(-b * rms) - np.exp(np.mean(np.cos(c * X), axis=-1)) + a + math.e


def _levy(X: np.ndarray) -> np.ndarray:
    w = 1 + (X - 1) / 4
    head = np.sin(math.pi * w[:, 0]) ** 2
    mid = np.sum((w[:, :-1] - 1) ** 2 * (1 + 10 * np.sin(math.pi * w[:, :-1] + 1) ** 2), axis=-1)
    tail = (w[:, -1] - 1) ** 2 * (1 + np.sin(2 * math.pi * w[:, -1]) ** 2)
    return head + mid + tail


def _rosenbrock(X: np.ndarray) -> np.ndarray:
    return np.sum(100 * (X[:, 1:] - X[:, :-1] ** 2) ** 2 + (X[:, :-1] - 1) ** 2, axis=-1)


def _griewank(X: np.ndarray) -> np.ndarray:
    i = np.arange(1, X.shape[1] + 1)
    return np.sum(X**2, axis=-1) / 4000 - np.prod(np.cos(X / np.sqrt(i)), axis=-1) + 1


_MICHALEWICZ_M = 10


def _michalewicz_terms(X: np.ndarray, i: np.ndarray) -> np.ndarray:
    return -np.sin(X) * np.sin(i * X**2 / math.pi) ** (2 * _MICHALEWICZ_M)


def _michalewicz(X: np.ndarray) -> np.ndarray:
    return np.sum(_michalewicz_terms(X, np.arange(1, X.shape[1] + 1)), axis=-1)


def _styblinskitang(X: np.ndarray) -> np.ndarray:
    return 0.5 * np.sum(X**4 - 16 * X**2 + 5 * X, axis=-1)


# ----- known optima ------------------------------------------------------------------------------
FORRESTER_MIN = -6.020740055767083  # at x = 0.7572487144081974
BRANIN_MIN = 0.397887357729738
SIXHUMPCAMEL_MIN = -1.031628453489877
HARTMANN3_MIN = -3.86278214782076
HARTMANN6_MIN = -3.32236801141551
STYBLINSKITANG_MIN_1D = -39.16616570377142  # per dimension, at x_i = -2.903534027771178


@lru_cache(maxsize=32)
def _michalewicz_argmin_1d(i: int) -> float:
    """Minimizer on ``[0, pi]`` of the i-th (1-based) Michalewicz term, by grid search + zooming."""
    # the term's peaks narrow like 1/i; the grid keeps several points per peak
    grid = np.linspace(0.0, math.pi, 20_001 + 2_000 * i)
    vals = _michalewicz_terms(grid, np.array(i))
    best_x, best_v = 0.0, math.inf
    # zoom into the few lowest grid points (distinct peaks of near-equal depth are possible)
    for j in np.argsort(vals)[:8]:
        x, h = grid[j], grid[1] - grid[0]
        for _ in range(6):
            zoom = np.clip(np.linspace(x - h, x + h, 201), 0.0, math.pi)
            x = float(zoom[np.argmin(_michalewicz_terms(zoom, np.array(i)))])
            h /= 50
        v = float(_michalewicz_terms(np.array(x), np.array(i)))
        if v < best_v:
            best_x, best_v = x, v
    return best_x


def michalewicz_minimizer(dim: int) -> np.ndarray:
    """The global minimizer of the ``dim``-D Michalewicz function (m = 10) on ``[0, pi]^dim``.

    The function is a sum of one-dimensional terms, so its minimizer is found coordinate by
    coordinate; this reproduces the literature optima (d = 2: -1.8013, 5: -4.687658, 10: -9.66015).

    Returns:
        ``dim`` float64 array.
    """
    return np.array([_michalewicz_argmin_1d(i) for i in range(1, dim + 1)])


# ----- registered problems -----------------------------------------------------------------------
@register_problem("forrester")
def forrester(noise_std: float = 0.0) -> Problem:
    """Forrester et al. (2008), 1-D on [0, 1]."""
    return Problem(
        name="forrester",
        space=box_space([0.0], [1.0]),
        fn=VectorFunction(_forrester, 1),
        optimum=FORRESTER_MIN,
        noise_std=noise_std,
        description="Forrester, 1-D, one local and one global minimum",
        tags=("synthetic",),
    )


@register_problem("branin")
def branin(noise_std: float = 0.0) -> Problem:
    """Branin-Hoo on [-5, 10] x [0, 15]."""
    return Problem(
        name="branin",
        space=box_space([-5.0, 0.0], [10.0, 15.0]),
        fn=VectorFunction(_branin, 2),
        optimum=BRANIN_MIN,
        noise_std=noise_std,
        description="Branin-Hoo, 2-D, three global minima",
        tags=("synthetic",),
    )


@register_problem("sixhumpcamel")
def sixhumpcamel(noise_std: float = 0.0) -> Problem:
    """Six-hump camel on [-3, 3] x [-2, 2]."""
    return Problem(
        name="sixhumpcamel",
        space=box_space([-3.0, -2.0], [3.0, 2.0]),
        fn=VectorFunction(_sixhumpcamel, 2),
        optimum=SIXHUMPCAMEL_MIN,
        noise_std=noise_std,
        description="Six-hump camel, 2-D, two global minima among six local ones",
        tags=("synthetic",),
    )


@register_problem("hartmann3")
def hartmann3(noise_std: float = 0.0) -> Problem:
    """Hartmann 3-D on [0, 1]^3."""
    return Problem(
        name="hartmann3",
        space=box_space([0.0] * 3, [1.0] * 3),
        fn=VectorFunction(_hartmann3, 3),
        optimum=HARTMANN3_MIN,
        noise_std=noise_std,
        description="Hartmann, 3-D, one global minimum, four local ones",
        tags=("synthetic",),
    )


@register_problem("hartmann6")
def hartmann6(noise_std: float = 0.0) -> Problem:
    """Hartmann 6-D on [0, 1]^6."""
    return Problem(
        name="hartmann6",
        space=box_space([0.0] * 6, [1.0] * 6),
        fn=VectorFunction(_hartmann6, 6),
        optimum=HARTMANN6_MIN,
        noise_std=noise_std,
        description="Hartmann, 6-D, one global minimum, several local ones",
        tags=("synthetic",),
    )


@register_problem("ackley")
def ackley(dim: int = 6, noise_std: float = 0.0) -> Problem:
    """Ackley on [-32.768, 32.768]^dim."""
    dim = _check_dim("ackley", dim)
    return Problem(
        name=_name("ackley", dim, 6),
        space=box_space([-32.768] * dim, [32.768] * dim),
        fn=VectorFunction(_ackley, dim),
        optimum=0.0,
        noise_std=noise_std,
        description=f"Ackley, {dim}-D, many local minima around one deep global one at 0",
        tags=("synthetic",),
    )


@register_problem("levy")
def levy(dim: int = 6, noise_std: float = 0.0) -> Problem:
    """Levy on [-10, 10]^dim."""
    dim = _check_dim("levy", dim)
    return Problem(
        name=_name("levy", dim, 6),
        space=box_space([-10.0] * dim, [10.0] * dim),
        fn=VectorFunction(_levy, dim),
        optimum=0.0,
        noise_std=noise_std,
        description=f"Levy, {dim}-D, rugged, global minimum at (1, ..., 1)",
        tags=("synthetic",),
    )


@register_problem("rosenbrock")
def rosenbrock(dim: int = 4, noise_std: float = 0.0) -> Problem:
    """Rosenbrock on [-5, 10]^dim (dim >= 2)."""
    dim = _check_dim("rosenbrock", dim, minimum=2)
    return Problem(
        name=_name("rosenbrock", dim, 4),
        space=box_space([-5.0] * dim, [10.0] * dim),
        fn=VectorFunction(_rosenbrock, dim),
        optimum=0.0,
        noise_std=noise_std,
        description=f"Rosenbrock, {dim}-D, a long curved valley, minimum at (1, ..., 1)",
        tags=("synthetic",),
    )


@register_problem("griewank")
def griewank(dim: int = 6, noise_std: float = 0.0) -> Problem:
    """Griewank on [-600, 600]^dim."""
    dim = _check_dim("griewank", dim)
    return Problem(
        name=_name("griewank", dim, 6),
        space=box_space([-600.0] * dim, [600.0] * dim),
        fn=VectorFunction(_griewank, dim),
        optimum=0.0,
        noise_std=noise_std,
        description=f"Griewank, {dim}-D, regular local minima on a bowl, minimum at 0",
        tags=("synthetic",),
    )


@register_problem("michalewicz")
def michalewicz(dim: int = 5, noise_std: float = 0.0) -> Problem:
    """Michalewicz (m = 10) on [0, pi]^dim; the optimum is computed (the function is separable)."""
    dim = _check_dim("michalewicz", dim)
    optimum = float(_michalewicz(michalewicz_minimizer(dim)[None, :])[0])
    return Problem(
        name=_name("michalewicz", dim, 5),
        space=box_space([0.0] * dim, [math.pi] * dim),
        fn=VectorFunction(_michalewicz, dim),
        optimum=optimum,
        noise_std=noise_std,
        description=f"Michalewicz, {dim}-D, steep narrow valleys, flat elsewhere",
        tags=("synthetic",),
    )


@register_problem("styblinskitang")
def styblinskitang(dim: int = 4, noise_std: float = 0.0) -> Problem:
    """Styblinski-Tang on [-5, 5]^dim."""
    dim = _check_dim("styblinskitang", dim)
    return Problem(
        name=_name("styblinskitang", dim, 4),
        space=box_space([-5.0] * dim, [5.0] * dim),
        fn=VectorFunction(_styblinskitang, dim),
        optimum=STYBLINSKITANG_MIN_1D * dim,
        noise_std=noise_std,
        description=f"Styblinski-Tang, {dim}-D, 2^{dim} local minima, global at x_i = -2.9035",
        tags=("synthetic",),
    )


# ----- named noisy variants: noise std about 0.3-2% of the range of values over the box ---------
def _noisy(problem: Problem) -> Problem:
    return replace(problem, name=f"{problem.name}-noisy", tags=(*problem.tags, "noisy"))


@register_problem("forrester-noisy")
def forrester_noisy(noise_std: float = 0.5) -> Problem:
    """Forrester with Gaussian noise (default std 0.5)."""
    return _noisy(forrester(noise_std=noise_std))


@register_problem("branin-noisy")
def branin_noisy(noise_std: float = 1.0) -> Problem:
    """Branin with Gaussian noise (default std 1.0)."""
    return _noisy(branin(noise_std=noise_std))


@register_problem("hartmann6-noisy")
def hartmann6_noisy(noise_std: float = 0.05) -> Problem:
    """Hartmann 6-D with Gaussian noise (default std 0.05)."""
    return _noisy(hartmann6(noise_std=noise_std))


@register_problem("ackley-noisy")
def ackley_noisy(dim: int = 6, noise_std: float = 0.2) -> Problem:
    """Ackley with Gaussian noise (default std 0.2)."""
    return _noisy(ackley(dim=dim, noise_std=noise_std))
