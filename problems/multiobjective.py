"""Multi-objective (and constrained) benchmarks from ``botorch.test_functions.multi_objective``.

Re-implemented in numpy (float64, batched ``n x d -> n x k``), so building, listing and evaluating
them never imports torch; tests/problems/test_multiobjective.py checks every one against botorch's
own class. As in botorch, every objective is minimized, and each objective's ``threshold`` is
botorch's ``ref_point`` (the space's thresholds ARE the hypervolume's reference point, in the
problem's own units). A constraint is an extra outcome ``c1 .. ck``, botorch's ``evaluate_slack``,
which is ``>= 0`` when feasible (``OutcomeConstraint(name, min=0)``).

Problems with settings take ``dim`` (and ``num_objectives`` for DTLZ). Their name carries the
settings when they differ from the defaults, as ``NAME_<dim>`` or ``NAME_<dim>_<m>`` (``dtlz2_4_3``),
which ``get_problem`` parses back; ``dtlz1_5_2`` and ``dtlz5_20_3`` (the BNN-BO study's) are also
registered by name, so ``bocli problems`` lists them.

Everything here is module level (no closures), so a problem pickles and reaches worker processes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bocli.space import FloatParam, Objective, OutcomeConstraint, Space
from problems.base import Problem
from problems.registry import register_problem
from problems.synthetic import _branin

__all__ = ["MultiFunction", "dtlz1_max_hv", "dtlz2_max_hv", "dtlz5_max_hv"]

TAGS = ("multi-objective", "synthetic")
CONSTRAINED_TAGS = ("multi-objective", "constrained", "synthetic")


@dataclass(frozen=True)
class MultiFunction:
    """Adapts a batched ``func(X, *args) -> Y`` (``n x d -> n x k``) to ``fn(params) -> dict``.

    Attributes:
        func: A module-level batched function (so the adapter pickles by reference).
        inputs: Parameter names, in the order of ``X``'s columns.
        outputs: Outcome names, in the order of ``Y``'s columns (objectives, then constraints).
        args: Extra positional arguments of ``func`` (e.g. the number of objectives).
    """

    func: Callable[..., np.ndarray]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    args: tuple[Any, ...] = ()

    def __call__(self, params: Mapping[str, Any]) -> dict[str, float]:
        x = np.array([[float(params[name]) for name in self.inputs]], dtype=np.float64)
        y = self.batch(x)[0]
        return {name: float(v) for name, v in zip(self.outputs, y, strict=True)}

    def batch(self, X: np.ndarray) -> np.ndarray:
        """Every outcome at many points: ``n x d`` (the problem's units) -> ``n x k``."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.inputs):
            raise ValueError(f"expected an n x {len(self.inputs)} array, got shape {X.shape}")
        Y = np.asarray(self.func(X, *self.args), dtype=np.float64)
        return Y.reshape(X.shape[0], len(self.outputs))


# ----- the functions (batched: X is n x d, in the problem's units) --------------------------------
def _currin(X: np.ndarray) -> np.ndarray:
    x0, x1 = X[:, 0], X[:, 1]
    with np.errstate(divide="ignore"):  # x1 = 0: exp(-inf) = 0, as in botorch
        factor = 1 - np.exp(-1 / (2 * x1))
    numer = 2300 * x0**3 + 1900 * x0**2 + 2092 * x0 + 60
    denom = 100 * x0**3 + 500 * x0**2 + 4 * x0 + 20
    return factor * numer / denom


def _branin_currin(X: np.ndarray) -> np.ndarray:
    branin = _branin(np.stack([15 * X[:, 0] - 5, 15 * X[:, 1]], axis=-1))
    return np.stack([branin, _currin(X)], axis=-1)


def _constrained_branin_currin(X: np.ndarray) -> np.ndarray:
    # the disk constraint of Gelbart et al. (2014), on Branin's box [-5, 10] x [0, 15]
    slack = 50 - (15 * X[:, 0] - 5 - 2.5) ** 2 - (15 * X[:, 1] - 7.5) ** 2
    return np.concatenate([_branin_currin(X), slack[:, None]], axis=-1)


def _dtlz1(X: np.ndarray, m: int) -> np.ndarray:
    k = X.shape[1] - m + 1
    z = X[:, -k:] - 0.5
    g = 100 * (k + np.sum(z**2 - np.cos(20 * math.pi * z), axis=-1))
    half = 0.5 * (1 + g)
    fs = []
    for i in range(m):
        idx = m - 1 - i
        f = half * np.prod(X[:, :idx], axis=-1)
        if i > 0:
            f = f * (1 - X[:, idx])
        fs.append(f)
    return np.stack(fs, axis=-1)


def _dtlz2(X: np.ndarray, m: int) -> np.ndarray:
    k = X.shape[1] - m + 1
    g1 = 1 + np.sum((X[:, -k:] - 0.5) ** 2, axis=-1)
    fs = []
    for i in range(m):
        idx = m - 1 - i
        f = g1 * np.prod(np.cos(X[:, :idx] * math.pi / 2), axis=-1)
        if i > 0:
            f = f * np.sin(X[:, idx] * math.pi / 2)
        fs.append(f)
    return np.stack(fs, axis=-1)


def _dtlz5(X: np.ndarray, m: int) -> np.ndarray:
    k = X.shape[1] - m + 1
    g = np.sum((X[:, -k:] - 0.5) ** 2, axis=-1)[:, None]
    theta = 1 / (2 * (1 + g)) * (1 + 2 * g * X[:, :-k])  # n x (m - 1)
    theta[:, 0] = X[:, 0]
    fs = []
    for i in range(m):
        idx = m - 1 - i
        f = (1 + g[:, 0]) * np.prod(np.cos(theta[:, :idx] * math.pi / 2), axis=-1)
        if i > 0:
            f = f * np.sin(theta[:, idx] * math.pi / 2)
        fs.append(f)
    return np.stack(fs, axis=-1)


_C2DTLZ2_R = 0.2


def _c2dtlz2(X: np.ndarray, m: int) -> np.ndarray:
    f = _dtlz2(X, m)
    r2 = _C2DTLZ2_R**2
    sq = f**2 - r2
    # per i: (f_i - 1)^2 + sum_{j != i} (f_j^2 - r^2)
    min1 = np.min((f - 1) ** 2 + (np.sum(sq, axis=-1, keepdims=True) - sq), axis=-1)
    # as botorch (r^2 is subtracted once per objective)
    min2 = np.sum((f - 1 / math.sqrt(m)) ** 2 - r2, axis=-1)
    slack = -np.minimum(min1, min2)
    return np.concatenate([f, slack[:, None]], axis=-1)


def _zdt1(X: np.ndarray) -> np.ndarray:
    f0 = X[:, 0]
    g = 1 + 9 * np.mean(X[:, 1:], axis=-1)
    return np.stack([f0, g * (1 - np.sqrt(f0 / g))], axis=-1)


def _vehicle_safety(X: np.ndarray) -> np.ndarray:
    x1, x2, x3, x4, x5 = X.T
    f1 = 1640.2823 + 2.3573285 * x1 + 2.3220035 * x2 + 4.5688768 * x3 + 7.7213633 * x4
    f1 = f1 + 4.4559504 * x5
    f2 = (
        6.5856
        + 1.15 * x1
        - 1.0427 * x2
        + 0.9738 * x3
        + 0.8364 * x4
        - 0.3695 * x1 * x4
        + 0.0861 * x1 * x5
        + 0.3628 * x2 * x4
        - 0.1106 * x1**2
        - 0.3437 * x3**2
        + 0.1764 * x4**2
    )
    f3 = (
        -0.0551
        + 0.0181 * x1
        + 0.1024 * x2
        + 0.0421 * x3
        - 0.0073 * x1 * x2
        + 0.024 * x2 * x3
        - 0.0118 * x2 * x4
        - 0.0204 * x3 * x4
        - 0.008 * x3 * x5
        - 0.0241 * x2**2
        + 0.0109 * x4**2
    )
    return np.stack([f1, f2, f3], axis=-1)


def _disc_brake(X: np.ndarray) -> np.ndarray:
    x1, x2, x3, x4 = X.T
    sq_diff = x2**2 - x1**2
    cub_diff = x2**3 - x1**3
    f1 = 4.9e-5 * sq_diff * (x4 - 1.0)
    f2 = 9.82e6 * sq_diff / (x3 * x4 * cub_diff)
    g1 = x2 - x1 - 20.0
    g2 = 0.4 - x3 / (3.14 * sq_diff)
    g3 = 1.0 - (2.22e-3 * x3 * cub_diff) / sq_diff**2
    g4 = (2.66e-2 * x3 * x4 * cub_diff) / sq_diff - 900.0
    return np.stack([f1, f2, g1, g2, g3, g4], axis=-1)


# Penicillin production (Liang & Lai 2021, as botorch): explicit Euler steps of one time unit until
# the volume exceeds V_MAX, the glucose runs out or production stops, at most 2500 steps.
_PEN = {
    "Y_xs": 0.45,
    "Y_ps": 0.90,
    "K_1": 1e-10,
    "K_2": 7e-5,
    "m_X": 0.014,
    "alpha_1": 0.143,
    "alpha_2": 4e-7,
    "alpha_3": 1e-4,
    "mu_X": 0.092,
    "K_X": 0.15,
    "mu_p": 0.005,
    "K_p": 0.0002,
    "K_I": 0.10,
    "K": 0.04,
    "k_g": 7.0e3,
    "E_g": 5100.0,
    "k_d": 1e33,
    "E_d": 50000.0,
    "lambd": 2.5e-4,
    "T_v": 273.0,
    "T_o": 373.0,
    "R": 1.9872,
    "V_max": 180.0,
}
_PEN_STEPS = 2500


def _penicillin_point(x: np.ndarray) -> tuple[float, float, float]:
    """One point (a plain-float loop: a pipe-sized numpy loop costs far more per step)."""
    c = _PEN
    V, X, T, S, F, s_f, pH = (float(v) for v in x)
    H = 10.0**-pH
    P = CO2 = 0.0
    # constant over the run (temperature and pH are fixed); the products keep botorch's order
    expm1 = math.expm1(5 * ((T - c["T_o"]) / (c["T_v"] - c["T_o"])))
    ph_term = c["mu_X"] / (1 + c["K_1"] / H + H / c["K_2"])
    temp_term = c["k_g"] * math.exp(-c["E_g"] / (c["R"] * T)) - c["k_d"] * math.exp(
        -c["E_d"] / (c["R"] * T)
    )
    lambd, mu_p, K_p, K_I, K_X = c["lambd"], c["mu_p"], c["K_p"], c["K_I"], c["K_X"]
    Y_xs, Y_ps, m_X, K = c["Y_xs"], c["Y_ps"], c["m_X"], c["K"]
    a1, a2, a3, v_max = c["alpha_1"], c["alpha_2"], c["alpha_3"], c["V_max"]
    t_end = _PEN_STEPS
    for t in range(1, _PEN_STEPS + 1):
        dV = F - V * lambd * expm1
        mu = ph_term * (S / (K_X * X + S)) * temp_term
        dX = mu * X - (X / V) * dV
        mu_pp = mu_p * (S / (K_p + S + S**2 / K_I))
        dS = -(mu / Y_xs) * X - (mu_pp / Y_ps) * X - m_X * X + F * s_f / V - (S / V) * dV
        dP = mu_pp * X - K * P - (P / V) * dV
        dCO2 = a1 * dX + a2 * X + a3
        P, V, X, S, CO2 = P + dP, V + dV, X + dX, S + dS, CO2 + dCO2
        if v_max < V or S < 0 or dP < 10e-12:  # botorch's stopping rule (10e-12 = 1e-11)
            t_end = t
            break
    return -P, CO2, float(t_end)


def _penicillin(X: np.ndarray) -> np.ndarray:
    return np.array([_penicillin_point(x) for x in X], dtype=np.float64).reshape(-1, 3)


# ----- known maximal hypervolumes ----------------------------------------------------------------
def dtlz1_max_hv(m: int) -> float:
    """DTLZ1 against the reference point 400: the box minus the simplex ``sum f < 0.5``.

    (botorch's ``_max_hv`` subtracts ``0.5^m`` instead of ``0.5^m / m!``: slightly low.)
    """
    return 400.0**m - 0.5**m / math.factorial(m)


def dtlz2_max_hv(m: int) -> float:
    """DTLZ2 against 1.1: the box minus the positive orthant of the unit ball (as botorch)."""
    ball = math.pi ** (m / 2) / math.gamma(m / 2 + 1) / 2**m
    return 1.1**m - ball


def dtlz5_max_hv(m: int) -> float | None:
    """DTLZ5 against 10, where known: m = 2 is DTLZ2's quarter circle; for m = 3 the front is the
    curve ``f1 = f2 = cos(a) / sqrt(2), f3 = sin(a)`` (integrated in closed form). None beyond."""
    r = 10.0
    if m == 2:
        return r**2 - math.pi / 4
    if m == 3:
        return r**3 - r * math.pi / (2 * math.sqrt(2)) + 1 / 3
    return None


# ----- helpers -----------------------------------------------------------------------------------
def _space(
    bounds: list[tuple[float, float]],
    objectives: list[str],
    ref_point: list[float],
    constraints: int = 0,
    inputs: list[str] | None = None,
) -> Space:
    names = inputs or [f"x{i + 1}" for i in range(len(bounds))]
    params = tuple(FloatParam(n, lo, hi) for n, (lo, hi) in zip(names, bounds, strict=True))
    objs = tuple(
        Objective(n, "minimize", float(r)) for n, r in zip(objectives, ref_point, strict=True)
    )
    cons = tuple(OutcomeConstraint(f"c{i + 1}", min=0.0) for i in range(constraints))
    return Space(params, objs[0], objs, cons)


def _problem(
    name: str,
    func: Callable[..., np.ndarray],
    space: Space,
    description: str,
    noise_std: float,
    max_hv: float | None,
    args: tuple[Any, ...] = (),
) -> Problem:
    fn = MultiFunction(
        func, tuple(p.name for p in space.parameters), tuple(space.outcome_names), args
    )
    constrained = bool(space.outcome_constraints)
    return Problem(
        name=name,
        space=space,
        fn=fn,
        noise_std=noise_std,
        description=description,
        tags=CONSTRAINED_TAGS if constrained else TAGS,
        max_hv=max_hv,
    )


def _int_setting(problem: str, key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(
            f"problem '{problem}': {key} must be an integer >= {minimum}, got {value!r}"
        )
    return int(value)


def _dtlz_settings(base: str, dim: Any, num_objectives: Any) -> tuple[int, int]:
    m = _int_setting(base, "num_objectives", num_objectives, 2)
    d = _int_setting(base, "dim", dim, 2)
    if d <= m:
        raise ValueError(f"problem '{base}': dim must be > num_objectives, got {d} and {m}")
    return d, m


_DTLZ_DIM, _DTLZ_M = 6, 2


def _dtlz_name(base: str, d: int, m: int) -> str:
    return base if (d, m) == (_DTLZ_DIM, _DTLZ_M) else f"{base}_{d}_{m}"


def _f(m: int) -> list[str]:
    return [f"f{i + 1}" for i in range(m)]


# ----- registered problems -----------------------------------------------------------------------
@register_problem("branincurrin")
def branincurrin(noise_std: float = 0.0) -> Problem:
    """Branin (rescaled to [0, 1]^2) and Currin, both minimized."""
    return _problem(
        "branincurrin",
        _branin_currin,
        _space([(0.0, 1.0)] * 2, ["branin", "currin"], [18.0, 6.0]),
        "Branin-Currin, 2-D, 2 objectives, a convex-concave front",
        noise_std,
        59.36011874867746,  # botorch, approximated with NSGA-II
    )


@register_problem("constrainedbranincurrin")
def constrainedbranincurrin(noise_std: float = 0.0) -> Problem:
    """Branin-Currin with a disk constraint (Gelbart et al. 2014): feasible iff ``c1 >= 0``."""
    return _problem(
        "constrainedbranincurrin",
        _constrained_branin_currin,
        _space([(0.0, 1.0)] * 2, ["branin", "currin"], [80.0, 12.0], constraints=1),
        "Branin-Currin, 2-D, 2 objectives, 1 constraint (a disk)",
        noise_std,
        608.4004237022673,  # botorch, NSGA-II with 90k evaluations
    )


def _dtlz(
    base: str,
    func: Callable[..., np.ndarray],
    ref: float,
    settings: tuple[Any, Any, float],
    max_hv: Callable[[int], float | None],
    what: str,
) -> Problem:
    dim, num_objectives, noise = settings
    d, m = _dtlz_settings(base, dim, num_objectives)
    return _problem(
        _dtlz_name(base, d, m),
        func,
        _space([(0.0, 1.0)] * d, _f(m), [ref] * m),
        f"{base.upper()}, {d}-D, {m} objectives, {what}",
        noise,
        max_hv(m),
        (m,),
    )


@register_problem("dtlz1")
def dtlz1(dim: int = _DTLZ_DIM, num_objectives: int = _DTLZ_M, noise_std: float = 0.0) -> Problem:
    """DTLZ1 on [0, 1]^dim: a linear front ``sum f = 0.5`` behind 11^k - 1 local ones."""
    settings = (dim, num_objectives, noise_std)
    return _dtlz("dtlz1", _dtlz1, 400.0, settings, dtlz1_max_hv, "linear front, many local ones")


@register_problem("dtlz2")
def dtlz2(dim: int = _DTLZ_DIM, num_objectives: int = _DTLZ_M, noise_std: float = 0.0) -> Problem:
    """DTLZ2 on [0, 1]^dim: the front is the positive part of the unit sphere."""
    settings = (dim, num_objectives, noise_std)
    return _dtlz("dtlz2", _dtlz2, 1.1, settings, dtlz2_max_hv, "spherical front")


@register_problem("dtlz5")
def dtlz5(dim: int = _DTLZ_DIM, num_objectives: int = _DTLZ_M, noise_std: float = 0.0) -> Problem:
    """DTLZ5 on [0, 1]^dim: a degenerate (curve) front on the unit sphere."""
    settings = (dim, num_objectives, noise_std)
    return _dtlz("dtlz5", _dtlz5, 10.0, settings, dtlz5_max_hv, "degenerate (curve) front")


@register_problem("dtlz1_5_2")
def dtlz1_5_2(noise_std: float = 0.0) -> Problem:
    """DTLZ1 with d = 5, m = 2 (the BNN-BO study's ``dtlz1_5_2``)."""
    return dtlz1(dim=5, num_objectives=2, noise_std=noise_std)


@register_problem("dtlz5_20_3")
def dtlz5_20_3(noise_std: float = 0.0) -> Problem:
    """DTLZ5 with d = 20, m = 3 (the BNN-BO study's ``dtlz5_20_3``)."""
    return dtlz5(dim=20, num_objectives=3, noise_std=noise_std)


@register_problem("c2dtlz2")
def c2dtlz2(dim: int = _DTLZ_DIM, num_objectives: int = _DTLZ_M, noise_std: float = 0.0) -> Problem:
    """C2-DTLZ2: DTLZ2 with one constraint that keeps parts of the sphere (``c1 >= 0``)."""
    d, m = _dtlz_settings("c2dtlz2", dim, num_objectives)
    return _problem(
        _dtlz_name("c2dtlz2", d, m),
        _c2dtlz2,
        _space([(0.0, 1.0)] * d, _f(m), [1.1] * m, constraints=1),
        f"C2-DTLZ2, {d}-D, {m} objectives, 1 constraint, a front in pieces",
        noise_std,
        0.3996406303723544 if m == 2 else None,  # botorch (NSGA-II), m = 2
        (m,),
    )


_ZDT_DIM = 4


@register_problem("zdt1")
def zdt1(dim: int = _ZDT_DIM, noise_std: float = 0.0) -> Problem:
    """ZDT1 on [0, 1]^dim: a convex front ``f2 = 1 - sqrt(f1)``."""
    d = _int_setting("zdt1", "dim", dim, 2)
    return _problem(
        "zdt1" if d == _ZDT_DIM else f"zdt1_{d}",
        _zdt1,
        _space([(0.0, 1.0)] * d, _f(2), [11.0, 11.0]),
        f"ZDT1, {d}-D, 2 objectives, a convex front",
        noise_std,
        120 + 2 / 3,
    )


@register_problem("vehiclesafety")
def vehiclesafety(noise_std: float = 0.0) -> Problem:
    """Vehicle crashworthiness (Tanabe & Ishibuchi 2020): 5 member thicknesses in [1, 3]."""
    return _problem(
        "vehiclesafety",
        _vehicle_safety,
        _space(
            [(1.0, 3.0)] * 5,
            ["mass", "acceleration", "intrusion"],
            [1864.72022, 11.81993945, 0.2903999384],
        ),
        "Vehicle safety, 5-D, 3 objectives (mass, crash acceleration, toe-board intrusion)",
        noise_std,
        246.81607081187002,  # botorch, from Tanabe's approximate front
    )


@register_problem("penicillin")
def penicillin(noise_std: float = 0.0) -> Problem:
    """Penicillin production (Liang & Lai 2021): maximize the yield, minimize CO2 and time.

    The yield is the objective ``neg_yield`` (its negative, minimized), as botorch.
    """
    return _problem(
        "penicillin",
        _penicillin,
        _space(
            [
                (60.0, 120.0),
                (0.05, 18.0),
                (293.0, 303.0),
                (0.05, 18.0),
                (0.01, 0.5),
                (500.0, 700.0),
                (5.0, 6.5),
            ],
            ["neg_yield", "co2", "time"],
            [25.935, 57.612, 935.5],
            inputs=[
                "volume",
                "biomass",
                "temperature",
                "glucose",
                "feed_rate",
                "feed_concentration",
                "ph",
            ],
        ),
        "Penicillin fermentation simulator, 7-D, 3 objectives (-yield, CO2, time)",
        noise_std,
        2183455.909507436,  # botorch, from NSGA-II
    )


@register_problem("discbrake")
def discbrake(noise_std: float = 0.0) -> Problem:
    """Disc brake design (Tanabe & Ishibuchi 2020): inner and outer radius, engaging force and
    number of friction surfaces; mass and stopping time; four constraints ``c1 .. c4 >= 0``."""
    return _problem(
        "discbrake",
        _disc_brake,
        _space(
            [(55.0, 80.0), (75.0, 110.0), (1000.0, 3000.0), (11.0, 20.0)],
            ["mass", "stopping_time"],
            [5.7771, 3.9651],
            constraints=4,
        ),
        "Disc brake design, 4-D, 2 objectives (mass, stopping time), 4 constraints",
        noise_std,
        None,
    )
