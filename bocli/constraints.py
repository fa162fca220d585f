"""Linear parameter constraints (``parameter_constraints`` in a space file) and fixed parameters.

A constraint is a linear inequality over float and int parameters, written as in Ax:
``"water + ethanol <= 1"``, ``"2*temp - pressure >= 10"``. It is parsed with Python's ``ast`` and a
whitelist of nodes (never ``eval``). Log-scaled parameters are refused: their unit-cube encoding is
not linear, so the inequality would not be linear where the optimizer works (Ax refuses them too).

In the unit cube (``u = (v - low) / (high - low)``) a constraint ``sum_i a_i v_i <= b`` is
``sum_i a_i (high_i - low_i) u_i <= b - sum_i a_i low_i``, still linear: ``unit_rows`` gives that
form, and the optimizers, the initial design and the candidate sets keep every proposal inside.
Rounding an int can step outside; ``repair`` moves such a point back (toward an interior point,
then the nearest floor/ceil combination of the involved ints).

Pure numpy + scipy (imported inside functions): the CLI validates a space without torch.
"""

from __future__ import annotations

import ast
import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bocli.space import FloatParam, IntParam, SpaceError, _suggest

if TYPE_CHECKING:
    from bocli.space import Space

__all__ = [
    "LinearConstraint",
    "check_fixed",
    "constrained_design",
    "encode_fixed",
    "feasible_mask",
    "feasible_points",
    "parse_constraint",
    "repair",
    "unit_rows",
    "violations",
]

ALLOWED_OPERATORS = "'<=' or '>='"
# a stored float keeps 7 significant digits of its range (bocli.study.tidy_params): a point on a
# constraint's boundary may move by half a unit in the 7th digit, which must not count as violating
_TIDY = 1e-6
_REL = 1e-9
_MAX_COMBOS = 4096  # floor/ceil combinations of the involved ints tried by ``repair``


@dataclass(frozen=True)
class LinearConstraint:
    """``sum(coefficient * parameter) <= rhs`` (``>=`` constraints are stored negated).

    Attributes:
        text: The constraint as the user wrote it (shown in messages, stored in the study).
        terms: ``(parameter name, coefficient)`` pairs, each name once, non-zero coefficients.
        rhs: The right-hand side of the ``<=`` form.
    """

    text: str
    terms: tuple[tuple[str, float], ...]
    rhs: float

    def lhs(self, params: Mapping[str, Any]) -> float:
        """``sum(coefficient * value)`` at a parameter dict (user units)."""
        return float(sum(c * float(params[n]) for n, c in self.terms))

    def tolerance(self, space: Space) -> float:
        """How far past ``rhs`` still counts as satisfied: 1e-9 relative, plus the rounding of
        stored floats (7 significant digits of their range)."""
        scale = max(1.0, abs(self.rhs), *(abs(c) * _span(space, n) for n, c in self.terms))
        tidy = sum(
            abs(c) * _span(space, n)
            for n, c in self.terms
            if isinstance(_param(space, n), FloatParam)
        )
        return _REL * scale + _TIDY * tidy


def _param(space: Space, name: str) -> Any:
    return space.parameters[space.names.index(name)]


def _span(space: Space, name: str) -> float:
    p = _param(space, name)
    return float(p.high - p.low)


# ----- parsing ------------------------------------------------------------------------------------
class _NotLinear(Exception):
    pass


def _linear(node: ast.AST) -> tuple[dict[str, float], float]:
    """An expression node -> (coefficients by name, constant); raises _NotLinear."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise _NotLinear(f"{node.value!r} is not a number")
        return {}, float(node.value)
    if isinstance(node, ast.Name):
        return {node.id: 1.0}, 0.0
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        coef, const = _linear(node.operand)
        s = -1.0 if isinstance(node.op, ast.USub) else 1.0
        return {k: s * v for k, v in coef.items()}, s * const
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Add | ast.Sub):
            lc, lk = _linear(node.left)
            rc, rk = _linear(node.right)
            s = 1.0 if isinstance(node.op, ast.Add) else -1.0
            out = dict(lc)
            for k, v in rc.items():
                out[k] = out.get(k, 0.0) + s * v
            return out, lk + s * rk
        if isinstance(node.op, ast.Mult):
            lc, lk = _linear(node.left)
            rc, rk = _linear(node.right)
            if lc and rc:
                raise _NotLinear("a product of two parameters is not linear")
            if lc:
                return {k: v * rk for k, v in lc.items()}, lk * rk
            return {k: v * lk for k, v in rc.items()}, lk * rk
        if isinstance(node.op, ast.Div):
            lc, lk = _linear(node.left)
            rc, rk = _linear(node.right)
            if rc:
                raise _NotLinear("dividing by a parameter is not linear")
            if rk == 0:
                raise _NotLinear("division by zero")
            return {k: v / rk for k, v in lc.items()}, lk / rk
        if isinstance(node.op, ast.Pow):
            raise _NotLinear("a power ('**') is not linear")
        raise _NotLinear(f"the operator '{ast.unparse(node)}' is not allowed")
    raise _NotLinear(f"'{ast.unparse(node)}' is not a linear term (write c*name, + and -)")


def parse_constraint(text: Any, space: Space, where: str) -> LinearConstraint:
    """Parse one constraint string against ``space``'s parameters.

    Args:
        text: E.g. ``"water + ethanol <= 1"`` or ``"2*temp - pressure >= 10"``.
        where: How messages name it (``parameter_constraints[0]``).

    Raises:
        SpaceError: One line naming the constraint: not a string, not linear, ``<``/``>``/``==``,
            an unknown parameter (with a did-you-mean), a categorical/ordinal or log-scaled
            parameter, or no parameter at all.
    """
    if not isinstance(text, str):
        raise SpaceError(f"{where}: expected a string like 'x + y <= 1', got {text!r}"[:200])
    at = f"{where} ({text!r})"
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise SpaceError(
            f"{at}: cannot be read as a linear inequality like '2*x - y <= 3' (parameter "
            "names must be identifiers)"
        ) from None
    if not isinstance(tree, ast.Compare):
        raise SpaceError(f"{at}: no comparison; use {ALLOWED_OPERATORS}")
    if len(tree.ops) != 1:
        raise SpaceError(f"{at}: one comparison per constraint (give chained bounds separately)")
    op = tree.ops[0]
    if not isinstance(op, ast.LtE | ast.GtE):
        shown = {ast.Lt: "<", ast.Gt: ">", ast.Eq: "==", ast.NotEq: "!="}.get(type(op), "?")
        raise SpaceError(f"{at}: the operator '{shown}' is not allowed; use {ALLOWED_OPERATORS}")
    try:
        lc, lk = _linear(tree.left)
        rc, rk = _linear(tree.comparators[0])
    except _NotLinear as e:
        raise SpaceError(f"{at}: not linear: {e}") from None
    coef = dict(lc)
    for k, v in rc.items():
        coef[k] = coef.get(k, 0.0) - v
    rhs = rk - lk  # sum coef * v  (op)  rhs
    if isinstance(op, ast.GtE):
        coef = {k: -v for k, v in coef.items()}
        rhs = -rhs
    for name in coef:
        if name not in space.names:
            raise SpaceError(f"{at}: unknown parameter '{name}'{_suggest(name, space.names)}")
        p = _param(space, name)
        if not isinstance(p, FloatParam | IntParam):
            raise SpaceError(
                f"{at}: parameter '{name}' is {p.type}; only float and int parameters may "
                "appear in a linear constraint"
            )
        if p.log:
            raise SpaceError(
                f"{at}: parameter '{name}' is log-scaled; its encoding is not linear, so a "
                "linear constraint on it cannot be kept (Ax refuses these too): drop 'log: true' "
                "or the constraint"
            )
    terms = tuple((n, float(c)) for n, c in coef.items() if c != 0.0)
    if not terms:
        raise SpaceError(f"{at}: names no parameter (or its terms cancel)")
    if not all(math.isfinite(c) for _, c in terms) or not math.isfinite(rhs):
        raise SpaceError(f"{at}: coefficients must be finite numbers")
    return LinearConstraint(text, terms, float(rhs))


# ----- the unit-cube form ---------------------------------------------------------------------------
def unit_rows(space: Space) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Each constraint as ``sum(coef * u[idx]) <= rhs`` on unit-cube points ``u``.

    Rows are scaled so the largest coefficient is 1 (the optimizers' tolerances are absolute).
    Returns a list of ``(idx (k,), coef (k,), rhs)``.
    """
    rows = []
    for c in space.parameter_constraints:
        idx = np.array([space.names.index(n) for n, _ in c.terms])
        lows = np.array([float(_param(space, n).low) for n, _ in c.terms])
        spans = np.array([_span(space, n) for n, _ in c.terms])
        a = np.array([a for _, a in c.terms])
        coef = a * spans
        rhs = c.rhs - float(a @ lows)
        scale = float(np.abs(coef).max())
        rows.append((idx, coef / scale, rhs / scale))
    return rows


def _user_values(space: Space, U: np.ndarray, c: LinearConstraint) -> np.ndarray:
    """``n`` left-hand sides of ``c`` at snapped unit points ``U`` (``n x d``), in user units."""
    lhs = np.zeros(len(U))
    for n, a in c.terms:
        p = _param(space, n)
        v = p.low + U[:, space.names.index(n)] * (p.high - p.low)
        if isinstance(p, IntParam):
            v = np.clip(np.round(v), p.low, p.high)
        lhs += a * v
    return lhs


def feasible_mask(space: Space, U: np.ndarray) -> np.ndarray:
    """Whether each snapped unit point (``n x d``) satisfies every constraint -> ``n`` booleans."""
    U = np.asarray(U, dtype=np.float64).reshape(-1, space.dim)
    ok = np.ones(len(U), dtype=bool)
    for c in space.parameter_constraints:
        ok &= _user_values(space, U, c) <= c.rhs + c.tolerance(space)
    return ok


def violations(space: Space, params: Mapping[str, Any]) -> list[str]:
    """The constraints ``params`` (user units) violates, each as ``text (name=value, ...)``."""
    out = []
    for c in space.parameter_constraints:
        if c.lhs(params) > c.rhs + c.tolerance(space):
            values = ", ".join(f"{n}={params[n]:g}" for n, _ in c.terms)
            out.append(f"{c.text} is violated ({values})")
    return out


# ----- feasibility ------------------------------------------------------------------------------
def _lp_bounds(space: Space, fixed: Mapping[int, float] | None) -> list[tuple[float, float]]:
    fixed = fixed or {}
    return [(fixed[i], fixed[i]) if i in fixed else (0.0, 1.0) for i in range(space.dim)]


def _rows_matrix(space: Space) -> tuple[np.ndarray, np.ndarray]:
    rows = unit_rows(space)
    A = np.zeros((len(rows), space.dim))
    b = np.zeros(len(rows))
    for r, (idx, coef, rhs) in enumerate(rows):
        A[r, idx] = coef
        b[r] = rhs
    return A, b


def find_feasible(space: Space, fixed: Mapping[int, float] | None = None) -> np.ndarray | None:
    """A unit point satisfying every constraint with ints on their grid (``d``), or None.

    An LP over the continuous relaxation; with int parameters in a constraint, scipy's ``milp``
    over the ints' integer values (so rounding cannot be what makes the set empty).
    """
    from scipy.optimize import Bounds, milp
    from scipy.optimize import LinearConstraint as SciLin

    d = space.dim
    A, b = _rows_matrix(space)
    bounds = _lp_bounds(space, fixed)
    # the ints as integer variables k with u = (k - low) / span: substitute u = s * k + t
    s = np.ones(d)
    t = np.zeros(d)
    integrality = np.zeros(d)
    lo = np.array([lb for lb, _ in bounds])
    hi = np.array([ub for _, ub in bounds])
    for i, p in enumerate(space.parameters):
        if isinstance(p, IntParam) and not p.log and np.any(A[:, i] != 0) and lo[i] != hi[i]:
            span = p.high - p.low
            s[i], t[i] = 1.0 / span, -p.low / span
            lo[i], hi[i] = p.low, p.high
            integrality[i] = 1
    A_k = A * s
    b_k = b - A @ t + 1e-9 * np.maximum(1.0, np.abs(b))
    res = milp(
        np.zeros(d),
        constraints=[SciLin(A_k, -np.inf, b_k)] if len(A_k) else [],
        integrality=integrality,
        bounds=Bounds(lo, hi),
    )
    if res.x is None or res.status != 0:
        return None
    x = np.clip(res.x * s + t, 0.0, 1.0)
    return space.round_trip(x[None])[0]


def check_feasible(space: Space) -> None:
    """Refuse a constraint set that leaves no point of the parameter box (one line)."""
    if space.parameter_constraints and find_feasible(space) is None:
        texts = "; ".join(c.text for c in space.parameter_constraints)
        raise SpaceError(
            f"parameter_constraints: no point within the parameters' bounds satisfies them all "
            f"({texts})"
        )


def _interior(space: Space, fixed: Mapping[int, float] | None) -> np.ndarray | None:
    """The Chebyshev centre of the relaxed feasible set (``d``), fixed dims at their values."""
    from scipy.optimize import linprog

    A, b = _rows_matrix(space)
    bounds = _lp_bounds(space, fixed)
    free = np.array([lb != ub for lb, ub in bounds])
    norms = np.linalg.norm(A * free, axis=1)
    # maximize r: A u + r |A_free| <= b, and r <= distance to each free box face
    A_ub = [np.append(A[i], norms[i]) for i in range(len(A))]
    b_ub = list(b)
    for i in np.nonzero(free)[0]:
        for sgn, rhs in ((1.0, 1.0), (-1.0, 0.0)):
            row = np.zeros(space.dim + 1)
            row[i], row[-1] = sgn, 1.0
            A_ub.append(row)
            b_ub.append(rhs)
    cost = np.zeros(space.dim + 1)
    cost[-1] = -1.0
    res = linprog(cost, A_ub=np.array(A_ub), b_ub=np.array(b_ub), bounds=[*bounds, (0, None)])
    return None if res.status != 0 else np.clip(res.x[:-1], 0.0, 1.0)


# ----- fixed parameters -------------------------------------------------------------------------------
def check_fixed(
    space: Space, fixed: Mapping[str, Any] | None, option: str = "--fix"
) -> dict[str, Any]:
    """Validate fixed values (user units) against the space and its constraints.

    Returns:
        The values normalized by each parameter's ``validate`` (name -> value).

    Raises:
        SpaceError: One line naming ``option``: an unknown name (did-you-mean), a value the
            parameter refuses, or values that leave no point satisfying the constraints.
    """
    out: dict[str, Any] = {}
    for name, value in (fixed or {}).items():
        if name not in space.names:
            raise SpaceError(
                f"{option} {name}={value}: unknown parameter '{name}'{_suggest(name, space.names)}"
                f"; parameters: {', '.join(space.names)}"
            )
        try:
            out[name] = _param(space, name).validate(value)
        except SpaceError as e:
            raise SpaceError(f"{option} {name}={value}: {e}") from None
    if out and space.parameter_constraints:
        involved = {n for c in space.parameter_constraints for n, _ in c.terms}
        if involved & set(out) and find_feasible(space, encode_fixed(space, out)) is None:
            shown = " ".join(f"{option} {k}={v}" for k, v in out.items())
            raise SpaceError(
                f"{shown}: no point with these values satisfies the parameter constraints "
                f"({'; '.join(c.text for c in space.parameter_constraints)})"
            )
    return out


def encode_fixed(space: Space, fixed: Mapping[str, Any] | None) -> dict[int, float]:
    """Fixed values (user units, validated) -> ``{encoded dim: unit value}``."""
    return {
        space.names.index(n): float(_param(space, n).encode(v)) for n, v in (fixed or {}).items()
    }


def _with_fixed(U: np.ndarray, fixed: Mapping[int, float] | None) -> np.ndarray:
    U = np.array(U, dtype=np.float64, copy=True)
    for i, v in (fixed or {}).items():
        U[:, i] = v
    return U


# ----- sampling and repair ------------------------------------------------------------------------
def _hit_and_run(
    space: Space, n: int, rng: np.random.Generator, fixed: Mapping[int, float] | None
) -> np.ndarray:
    """``n x d`` points of the relaxed feasible polytope by hit-and-run from its Chebyshev
    centre (fixed dims held), or an empty array when the polytope has no interior point."""
    start = _interior(space, fixed)
    if start is None:
        return np.empty((0, space.dim))
    A, b = _rows_matrix(space)
    bounds = _lp_bounds(space, fixed)
    free = np.array([lb != ub for lb, ub in bounds])
    if not free.any():
        return np.repeat(start[None], n, axis=0)
    x = start.copy()
    out = []
    burn, thin = 50, 5
    for step in range(burn + n * thin):
        d = rng.normal(size=space.dim) * free
        d /= np.linalg.norm(d) or 1.0
        # the chord of x + s d inside the box and every row
        moving = free & (np.abs(d) > 1e-15)
        a, c = -x[moving] / d[moving], (1.0 - x[moving]) / d[moving]
        lo, hi = float(np.max(np.minimum(a, c))), float(np.min(np.maximum(a, c)))
        Ad, slack = A @ d, b - A @ x
        pos, neg = Ad > 1e-12, Ad < -1e-12
        if pos.any():
            hi = min(hi, float(np.min(slack[pos] / Ad[pos])))
        if neg.any():
            lo = max(lo, float(np.max(slack[neg] / Ad[neg])))
        if hi > lo:
            x = np.clip(x + rng.uniform(lo, hi) * d, 0.0, 1.0)
        if step >= burn and (step - burn) % thin == 0:
            out.append(x.copy())
    return np.array(out[:n]).reshape(-1, space.dim)


def repair(
    space: Space, U: np.ndarray, fixed: Mapping[int, float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Snap unit points to valid points that satisfy every constraint, moving as little as it can.

    A violating point moves toward the relaxed set's Chebyshev centre, just far enough, and the
    involved ints then take the nearest floor/ceil combination that satisfies every constraint.

    Args:
        U: ``n x d`` unit points (not necessarily snapped).
        fixed: Encoded dims held at a value.

    Returns:
        ``n x d`` snapped points and ``n`` booleans (False: no feasible point was found nearby).
    """
    U = _with_fixed(np.asarray(U, dtype=np.float64).reshape(-1, space.dim), fixed)
    out = space.round_trip(U) if len(U) else U
    if not space.parameter_constraints or not len(U):
        return out, np.ones(len(U), dtype=bool)
    ok = feasible_mask(space, out)
    if ok.all():
        return out, ok
    centre = _interior(space, fixed)
    if centre is None:
        return out, ok
    centre = _with_fixed(centre[None], fixed)[0]
    A, b = _rows_matrix(space)
    ints = sorted(
        {
            space.names.index(n)
            for c in space.parameter_constraints
            for n, _ in c.terms
            if isinstance(_param(space, n), IntParam)
        }
        - set(fixed or {})
    )
    for r in np.nonzero(~ok)[0]:
        x = U[r]
        # the smallest step toward the centre that satisfies the relaxed rows
        slack_x, slack_c = A @ x - b, A @ centre - b
        t0 = 0.0
        for sx, sc in zip(slack_x, slack_c, strict=True):
            if sx > 0 and sc < sx:
                t0 = max(t0, sx / (sx - sc))
        for t in sorted({min(1.0, t0 + k * 0.05) for k in range(21)} | {min(1.0, t0 * 1.000001)}):
            y = x + t * (centre - x)
            fixed_y = _best_int_combo(space, y, ints)
            if fixed_y is not None:
                out[r], ok[r] = fixed_y, True
                break
    return out, ok


def _best_int_combo(space: Space, y: np.ndarray, ints: Sequence[int]) -> np.ndarray | None:
    """The floor/ceil combination of the ints ``ints`` at ``y`` nearest to ``y`` that satisfies
    every constraint (snapped, ``d``), or None."""
    base = space.round_trip(y[None])[0]
    if feasible_mask(space, base[None])[0]:
        return base
    if not ints:
        return None
    options = []
    for i in ints:
        p = space.parameters[i]
        assert isinstance(p, IntParam)  # ``ints`` holds int parameters only
        v = p.low + y[i] * (p.high - p.low)
        vals = sorted(
            {min(max(math.floor(v), p.low), p.high), min(max(math.ceil(v), p.low), p.high)}
        )
        options.append([(val - p.low) / (p.high - p.low) for val in vals])
    combos = np.array(list(itertools.islice(itertools.product(*options), _MAX_COMBOS)))
    cand = np.repeat(base[None], len(combos), axis=0)
    cand[:, ints] = combos
    dist = np.abs(cand[:, ints] - y[ints]).sum(axis=1)
    feas = feasible_mask(space, cand)
    if not feas.any():
        return None
    return cand[np.argmin(np.where(feas, dist, np.inf))]


def feasible_points(
    space: Space, n: int, seed: int, fixed: Mapping[int, float] | None = None
) -> np.ndarray:
    """About ``n`` distinct valid points that satisfy every constraint, with fixed dims held.

    A scrambled Sobol set of ``4 n`` points (seeded), fixed dims overwritten, snapped, the first
    ``n`` feasible ones kept; when fewer than ``n / 2`` are, hit-and-run samples of the polytope
    fill up. ``m x d`` (``m <= n``).
    """
    from scipy.stats import qmc

    draws = 4 * n if space.parameter_constraints else n
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "balance properties need n = 2^k": any n serves here
        raw = qmc.Sobol(space.dim, scramble=True, seed=seed).random(draws)
    U = _with_fixed(raw, fixed)
    U = space.round_trip(U)
    kept = U[feasible_mask(space, U)][:n]
    if len(kept) < n // 2 and space.parameter_constraints:
        extra = _hit_and_run(space, n - len(kept), np.random.default_rng(seed), fixed)
        extra, ok = repair(space, extra, fixed)
        kept = np.concatenate([kept, extra[ok]])
    if not len(kept):
        return kept
    _, first = np.unique(kept, axis=0, return_index=True)
    return kept[np.sort(first)]  # distinct, in the order drawn


def constrained_design(
    space: Space, n: int, seed: int, skip: int, fixed: Mapping[int, float] | None = None
) -> np.ndarray:
    """Points ``skip .. skip + n - 1`` of the seeded Sobol design restricted to the feasible set.

    The Sobol sequence (as ``Space.sobol``) with fixed dims overwritten, snapped, infeasible points
    dropped: deterministic in ``(seed, skip)`` and never repeating a point of the sequence. Where
    the feasible share is too small to reach ``skip + n`` points within 64 times as many draws,
    hit-and-run samples seeded by ``(seed, skip)`` replace the Sobol points.

    Returns:
        ``n x d`` snapped, feasible points.
    """
    from scipy.stats import qmc

    if n == 0:
        return np.empty((0, space.dim))
    need = skip + n
    cap = max(4096, 64 * need)
    engine = qmc.Sobol(d=space.dim, scramble=True, seed=seed)
    kept: list[np.ndarray] = []
    count = drawn = 0
    while count < need and drawn < cap:
        m = min(1024, cap - drawn)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # we continue a sequence, as Space.sobol
            raw = engine.random(m)
        U = space.round_trip(_with_fixed(raw, fixed))
        drawn += m
        good = U[feasible_mask(space, U)] if space.parameter_constraints else U
        kept.append(good)
        count += len(good)
    if count >= need:
        return np.concatenate(kept)[skip:need]
    rng = np.random.default_rng([int(seed), int(skip)])
    pts = _hit_and_run(space, n, rng, fixed)
    pts, ok = repair(space, pts, fixed)
    if len(pts) < n or not ok.all():
        point = find_feasible(space, fixed)
        if point is None:
            raise SpaceError("parameter_constraints: no feasible point to propose")
        point = _with_fixed(point[None], fixed)
        pts = np.concatenate([pts[ok], np.repeat(point, n, axis=0)])[:n]
    return pts
