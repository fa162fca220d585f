"""Pareto fronts and hypervolume for multi-objective studies, in pure numpy.

Every function here takes values in the user's units and directions: ``Y`` is ``n x m`` (one row per
trial, one column per objective, in ``Space.objectives`` order), ``directions`` is a length-``m``
sequence of ``"minimize"`` / ``"maximize"``, and a reference point is ``m`` values in the same units.
Internally every objective is turned into a minimization (``z = y`` when minimizing, ``z = -y`` when
maximizing), so "better" means smaller ``z``.

Conventions:
- A row containing NaN is never on the front and never dominates anything (it is ignored); so is a row
  marked infeasible when a ``feasible`` mask (``n`` booleans) is given.
- ``a`` dominates ``b`` when ``a`` is at least as good in every objective and better in one. Exact
  duplicates do not dominate each other: all copies of a non-dominated point are on the front (like
  botorch's ``is_non_dominated(Y, deduplicate=False)``).
- The hypervolume counts only points strictly better than the reference point in every objective
  (a point on the reference point's boundary adds zero volume anyway).

Costs (``n`` points, ``k`` of them on the front):
- ``pareto_mask``: m <= 3 sort-and-sweep O(n log n); m >= 4 vectorized culling O(n k m).
- ``hypervolume``: m = 2 sort-and-sweep O(n log n); m = 3 sweep over the 3rd objective keeping the 2-D
  staircase of the slice (O(n log n) comparisons plus list moves); m >= 4 slicing along the last
  objective down to the 3-D case, O(n^(m-2) log n) worst case: exact, meant for small fronts (m = 4,
  n = 200 takes about a second).
- ``HypervolumeTracker.add``: dominated / infeasible point O(k m); for m = 2 a new front point costs
  O(log k + removed points) (its added area); for m >= 3 the front's hypervolume is recomputed, only
  when the point enters the front.

This module imports neither torch nor botorch, so ``status`` / ``best`` / ``export`` stay cheap.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "MIN_Y_RANGE",
    "HypervolumeTracker",
    "hypervolume",
    "hypervolume_trace",
    "infer_reference_point",
    "log_hv_regret",
    "pareto_mask",
]

MIN_Y_RANGE = 1e-7
"""Smallest per-objective range ``infer_reference_point`` uses (botorch's ``MIN_Y_RANGE``)."""

REGRET_FLOOR = 1e-12
"""``log_hv_regret`` floors the regret at ``REGRET_FLOOR * max(|max_hv|, 1)``."""

_DIRECTIONS = ("minimize", "maximize")


# ----- conversions ------------------------------------------------------------------------------


def _min_signs(directions: Sequence[str]) -> np.ndarray:
    """``m`` multipliers turning user values into minimized ones: +1 minimize, -1 maximize."""
    if isinstance(directions, str):
        raise ValueError("directions must be a sequence of 'minimize' / 'maximize', not one string")
    signs = []
    for d in directions:
        if d not in _DIRECTIONS:
            raise ValueError(f"direction must be 'minimize' or 'maximize', got {d!r}")
        signs.append(1.0 if d == "minimize" else -1.0)
    if not signs:
        raise ValueError("directions: need at least one objective")
    return np.array(signs, dtype=np.float64)


def _as_matrix(Y: object, m: int) -> np.ndarray:
    """``Y`` as a float ``n x m`` array (an empty input gives ``0 x m``)."""
    arr = np.asarray(Y, dtype=np.float64)
    if arr.size == 0:
        return np.empty((0, m), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != m:
        raise ValueError(f"Y must be n x {m} (one column per direction), got shape {arr.shape}")
    return arr


def _as_point(y: object, m: int, what: str) -> np.ndarray:
    arr = np.asarray(y, dtype=np.float64).reshape(-1)
    if arr.shape != (m,):
        raise ValueError(f"{what} must have {m} values (one per direction), got shape {arr.shape}")
    return arr


def _valid_rows(Y: np.ndarray, feasible: object | None) -> np.ndarray:
    """``n`` booleans: rows without NaN that are feasible."""
    ok = ~np.isnan(Y).any(axis=1)
    if feasible is not None:
        f = np.asarray(feasible, dtype=bool).reshape(-1)
        if f.shape[0] != Y.shape[0]:
            raise ValueError(f"feasible has {f.shape[0]} entries for {Y.shape[0]} rows")
        ok &= f
    return ok


# ----- Pareto front -----------------------------------------------------------------------------


def _nondominated_min(Z: np.ndarray) -> np.ndarray:
    """Non-dominated rows of ``Z`` (``n x m``, minimized, no NaN) -> ``n`` booleans; duplicates kept."""
    n, m = Z.shape
    if n == 0:
        return np.zeros(0, dtype=bool)
    Z = Z + 0.0  # -0.0 -> 0.0, so equal values compare and deduplicate alike
    if m == 1:
        return Z[:, 0] == Z[:, 0].min()
    if m == 2:
        # Unique rows come sorted by z0 then z1; a row is dominated iff an earlier unique row has
        # z1 <= its z1 (that row is no worse in z0 and differs from it).
        U, inverse = np.unique(Z, axis=0, return_inverse=True)
        prev_min = np.empty(U.shape[0])
        prev_min[0] = np.inf
        prev_min[1:] = np.minimum.accumulate(U[:-1, 1])
        return (U[:, 1] < prev_min)[np.asarray(inverse).reshape(-1)]
    if m == 3:
        # Sweep the unique rows in (z0, z1, z2) order: a row is dominated iff an earlier one is no
        # worse in z1 and z2, i.e. iff the 2-D staircase of the earlier (z1, z2) weakly dominates it.
        U, inverse = np.unique(Z, axis=0, return_inverse=True)
        stairs = _Staircase(math.inf, math.inf)
        keep_u = np.zeros(U.shape[0], dtype=bool)
        for i, (a, b) in enumerate(zip(U[:, 1].tolist(), U[:, 2].tolist(), strict=True)):
            keep_u[i] = stairs.add(a, b)
        return keep_u[np.asarray(inverse).reshape(-1)]
    # m >= 3: take the point with the smallest sum still unprocessed (nothing left can dominate it,
    # rounding aside) and drop every point it dominates; each survivor was compared with every other
    # survivor, so the result does not depend on that order, only the speed does.
    order = np.argsort(Z.sum(axis=1), kind="stable")
    P = Z[order]
    idx = order
    i = 0
    while i < P.shape[0]:
        z = P[i]
        dominated = (z <= P).all(axis=1) & (z < P).any(axis=1)
        if dominated.any():
            keep = ~dominated
            i = int(keep[:i].sum())
            P = P[keep]
            idx = idx[keep]
        i += 1
    mask = np.zeros(n, dtype=bool)
    mask[idx] = True
    return mask


def pareto_mask(Y: object, directions: Sequence[str], feasible: object | None = None) -> np.ndarray:
    """Which rows of ``Y`` are Pareto-optimal.

    Args:
        Y: ``n x m`` values in user units (``m = len(directions)``); empty input is fine.
        directions: ``m`` strings, ``"minimize"`` or ``"maximize"``.
        feasible: Optional ``n`` booleans; infeasible rows are never Pareto and dominate nothing.

    Returns:
        ``n`` booleans. Rows with NaN are False. All copies of a duplicated non-dominated row are True.
    """
    signs = _min_signs(directions)
    Y = _as_matrix(Y, len(signs))
    ok = _valid_rows(Y, feasible)
    mask = np.zeros(Y.shape[0], dtype=bool)
    rows = np.flatnonzero(ok)
    mask[rows] = _nondominated_min(Y[rows] * signs)
    return mask


# ----- hypervolume (minimization, internal) -----------------------------------------------------


class _Staircase:
    """The 2-D non-dominated front of minimized points below the reference ``(r0, r1)`` and its area.

    ``xs`` ascend and ``ys`` strictly descend. ``insert`` costs O(log k + removed points) comparisons.
    """

    __slots__ = ("area", "r0", "r1", "xs", "ys")

    def __init__(self, r0: float, r1: float) -> None:
        self.r0, self.r1 = float(r0), float(r1)
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.area = 0.0

    def add(self, x: float, y: float) -> bool:
        """Add ``(x, y)`` without tracking the area -> whether it was not weakly dominated."""
        xs, ys = self.xs, self.ys
        i = bisect.bisect_right(xs, x)
        if i > 0 and ys[i - 1] <= y:
            return False
        j = bisect.bisect_left(xs, x)
        e = j
        while e < len(ys) and ys[e] >= y:
            e += 1
        xs[j:e] = [x]
        ys[j:e] = [y]
        return True

    def insert(self, x: float, y: float) -> float:
        """Add ``(x, y)`` (strictly below the reference in both) -> the area it adds (0 if dominated)."""
        xs, ys = self.xs, self.ys
        i = bisect.bisect_right(xs, x)
        if i > 0 and ys[i - 1] <= y:  # a point with x' <= x and y' <= y: weakly dominated
            return 0.0
        j = bisect.bisect_left(xs, x)
        e = j  # points j..e-1 have x' >= x and y' >= y: the new point dominates them
        while e < len(ys) and ys[e] >= y:
            e += 1
        # Added area: over [x, next x), the old staircase height minus y.
        height = ys[j - 1] if j > 0 else self.r1
        cur = x
        added = 0.0
        for k in range(j, e):
            added += (xs[k] - cur) * (height - y)
            cur, height = xs[k], ys[k]
        nxt = xs[e] if e < len(xs) else self.r0
        added += (nxt - cur) * (height - y)
        xs[j:e] = [x]
        ys[j:e] = [y]
        self.area += added
        return added


def _hv2(Z: np.ndarray, r: np.ndarray) -> float:
    """Area dominated by ``Z`` (``n x 2``, every row strictly below ``r``), minimization."""
    order = np.lexsort((Z[:, 1], Z[:, 0]))
    z0, z1 = Z[order, 0], Z[order, 1]
    prev_min = np.empty_like(z1)
    prev_min[0] = r[1]
    prev_min[1:] = np.minimum(np.minimum.accumulate(z1[:-1]), r[1])
    # The horizontal strip [z1, prev_min) is dominated from z0 to r0.
    return float(np.sum(np.clip(prev_min - z1, 0.0, None) * (r[0] - z0)))


def _hv3(Z: np.ndarray, r: np.ndarray) -> float:
    """Volume dominated by ``Z`` (``n x 3``, rows strictly below ``r``): sweep over z2, 2-D slices."""
    order = np.argsort(Z[:, 2], kind="stable")
    x, y, z = (Z[order, c].tolist() for c in range(3))
    stairs = _Staircase(r[0], r[1])
    total = 0.0
    n = len(z)
    for i in range(n):
        stairs.insert(x[i], y[i])
        nxt = z[i + 1] if i + 1 < n else float(r[2])
        total += stairs.area * (nxt - z[i])
    return total


def _hv_min(Z: np.ndarray, r: np.ndarray) -> float:
    """Hypervolume of ``Z`` (``n x m``, every row strictly below ``r``) w.r.t. ``r``, minimization."""
    n, m = Z.shape
    if n == 0:
        return 0.0
    if np.isneginf(Z).any():
        return math.inf
    if m == 1:
        return float(r[0] - Z[:, 0].min())
    if m == 2:
        return _hv2(Z, r)
    if m == 3:
        return _hv3(Z, r)
    # m >= 4: slice along the last objective; between consecutive levels the dominated set is the
    # (m-1)-D hypervolume of the points at or below the level, recomputed only when their front changes.
    Z = Z[_nondominated_min(Z)]
    Z = Z[np.argsort(Z[:, -1], kind="stable")]
    n = Z.shape[0]
    proj = np.empty((0, m - 1))
    vol = 0.0
    dirty = False
    total = 0.0
    for i in range(n):
        p = Z[i, :-1]
        if not (proj <= p).all(axis=1).any():
            proj = np.vstack([proj[~(p <= proj).all(axis=1)], p])
            dirty = True
        nxt = Z[i + 1, -1] if i + 1 < n else r[-1]
        width = nxt - Z[i, -1]
        if width > 0:
            if dirty:
                vol = _hv_min(proj, r[:-1])
                dirty = False
            total += vol * width
    return float(total)


def hypervolume(
    Y: object,
    directions: Sequence[str],
    ref_point: object,
    feasible: object | None = None,
) -> float:
    """Exact hypervolume dominated by the rows of ``Y`` and bounded by ``ref_point``.

    Args:
        Y: ``n x m`` values in user units; rows with NaN (and infeasible rows) are ignored.
        directions: ``m`` strings, ``"minimize"`` or ``"maximize"``.
        ref_point: ``m`` values in user units: the worst corner of the measured region.
        feasible: Optional ``n`` booleans.

    Returns:
        The volume (a float >= 0; 0 when no row is strictly better than ``ref_point`` in every
        objective; ``inf`` when such a row is infinitely good in some objective).
    """
    signs = _min_signs(directions)
    m = len(signs)
    Y = _as_matrix(Y, m)
    r = _as_point(ref_point, m, "ref_point") * signs
    if not np.isfinite(r).all():
        raise ValueError("ref_point must be finite")
    Z = Y[_valid_rows(Y, feasible)] * signs
    Z = Z[(r > Z).all(axis=1)]
    return _hv_min(Z, r)


# ----- incremental hypervolume ------------------------------------------------------------------


class HypervolumeTracker:
    """Hypervolume of the points seen so far, updated as each point arrives.

    Keeps the current Pareto front (of the points strictly better than the reference point) and its
    hypervolume. A point that is infeasible, has NaN, is not better than the reference point or is
    (weakly) dominated by the front costs O(k m) and leaves the volume unchanged. For m = 2 a new
    front point adds its exclusive area in O(log k + removed); for m >= 3 the front's hypervolume is
    recomputed (only then).

    Args:
        directions: ``m`` strings, ``"minimize"`` or ``"maximize"``.
        ref_point: ``m`` values in user units.
    """

    def __init__(self, directions: Sequence[str], ref_point: object) -> None:
        self._signs = _min_signs(directions)
        self.directions = tuple(directions)
        self.m = len(self._signs)
        self.ref_point = _as_point(ref_point, self.m, "ref_point").copy()
        if not np.isfinite(self.ref_point).all():
            raise ValueError("ref_point must be finite")
        self._r = self.ref_point * self._signs
        self._front = np.empty((0, self.m))  # minimized values, m != 2
        self._stairs = _Staircase(self._r[0], self._r[1]) if self.m == 2 else None
        self.hv = 0.0
        self.n_seen = 0

    @property
    def front(self) -> np.ndarray:
        """The current Pareto front, ``k x m`` in user units (weakly dominated copies dropped)."""
        if self._stairs is not None:
            F = np.column_stack([self._stairs.xs, self._stairs.ys]).reshape(-1, 2)
        else:
            F = self._front
        return F * self._signs

    def add(self, y: object, feasible: bool = True) -> float:
        """Add one point (``m`` values, user units) -> the hypervolume after adding it."""
        z = _as_point(y, self.m, "y") * self._signs
        self.n_seen += 1
        if not feasible or np.isnan(z).any() or not (z < self._r).all():
            return self.hv
        if self._stairs is not None:
            if math.isinf(z[0]) or math.isinf(z[1]):
                self.hv = math.inf  # an infinitely good value: infinite from now on
            elif self.hv != math.inf:
                self._stairs.insert(float(z[0]), float(z[1]))
                self.hv = self._stairs.area
            return self.hv
        F = self._front
        if F.shape[0] and (z >= F).all(axis=1).any():
            return self.hv
        self._front = np.vstack([F[~(z <= F).all(axis=1)], z])
        self.hv = _hv_min(self._front, self._r)
        return self.hv

    def trace(self, Y: object, feasible: object | None = None) -> np.ndarray:
        """Add the rows of ``Y`` (``n x m``) in order -> ``n`` hypervolumes, one after each row.

        ``feasible``: optional ``n`` booleans (False rows leave the volume unchanged).
        """
        Y = _as_matrix(Y, self.m)
        flags = (
            np.ones(Y.shape[0], dtype=bool)
            if feasible is None
            else np.asarray(feasible, dtype=bool).reshape(-1)
        )
        if flags.shape[0] != Y.shape[0]:
            raise ValueError(f"feasible has {flags.shape[0]} entries for {Y.shape[0]} rows")
        return np.array([self.add(row, bool(f)) for row, f in zip(Y, flags, strict=True)])


def hypervolume_trace(
    Y: object,
    directions: Sequence[str],
    ref_point: object,
    feasible: object | None = None,
) -> np.ndarray:
    """Hypervolume after each prefix of ``Y`` (``n x m``, user units) -> ``n`` floats (a fresh
    ``HypervolumeTracker``'s ``trace``)."""
    return HypervolumeTracker(directions, ref_point).trace(Y, feasible)


# ----- reference point and regret ---------------------------------------------------------------


def infer_reference_point(
    Y: object,
    directions: Sequence[str],
    scale: float = 0.1,
    feasible: object | None = None,
    thresholds: Sequence[float | None] | None = None,
) -> np.ndarray:
    """A reference point from the data, as botorch's ``infer_reference_point`` (no max_ref_point).

    From the Pareto front of the valid rows: ``nadir - scale * range`` per objective, moved in the
    direction of "worse" (down when maximizing, up when minimizing), where ``nadir`` is the front's
    worst value and ``range`` its ideal-to-nadir span, floored at ``MIN_Y_RANGE`` (so an objective whose
    front values are all equal still gets a reference strictly worse than them). With a single front
    point (all front rows equal), ``range`` is ``max(|value|, MIN_Y_RANGE)`` instead, as in botorch.

    Args:
        Y: ``n x m`` values in user units.
        directions: ``m`` strings, ``"minimize"`` or ``"maximize"``.
        scale: Fraction of the range to step past the nadir.
        feasible: Optional ``n`` booleans; infeasible rows are left out.
        thresholds: Optional ``m`` values or None: given entries are returned as they are (the user's
            thresholds), only the None entries are inferred.

    Returns:
        ``m`` floats in user units.

    Raises:
        ValueError: No valid row and some entry left to infer.
    """
    signs = _min_signs(directions)
    m = len(signs)
    fixed = [None] * m if thresholds is None else list(thresholds)
    if len(fixed) != m:
        raise ValueError(f"thresholds must have {m} entries, got {len(fixed)}")
    out = np.array([np.nan if t is None else float(t) for t in fixed], dtype=np.float64)
    missing = np.isnan(out)
    if not missing.any():
        return out
    Y = _as_matrix(Y, m)
    Z = Y[_valid_rows(Y, feasible)] * signs
    if Z.shape[0] == 0:
        raise ValueError("cannot infer a reference point without any valid (non-NaN, feasible) row")
    W = np.unique(-Z[_nondominated_min(Z)], axis=0)  # the front, maximized, duplicates merged
    if W.shape[0] == 1:
        span = np.maximum(np.abs(W[0]), MIN_Y_RANGE)
        ref = W[0] - scale * span
    else:
        nadir, ideal = W.min(axis=0), W.max(axis=0)
        ref = nadir - scale * np.maximum(ideal - nadir, MIN_Y_RANGE)
    inferred = -ref * signs  # maximized -> user units
    out[missing] = inferred[missing]
    return out


def log_hv_regret(hv: float | None, max_hv: float | None) -> float | None:
    """``log10`` of ``max_hv - hv``, floored at ``REGRET_FLOOR * max(|max_hv|, 1)`` (so reaching or
    passing an approximate optimum gives a finite value) -> None when ``max_hv`` (or ``hv``) is
    unknown (None or NaN)."""
    if max_hv is None or hv is None:
        return None
    max_hv, hv = float(max_hv), float(hv)
    if math.isnan(max_hv) or math.isnan(hv):
        return None
    floor = REGRET_FLOOR * max(abs(max_hv), 1.0)
    return math.log10(max(max_hv - hv, floor))
