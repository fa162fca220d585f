"""bocli.pareto against independent references: botorch (Hypervolume, is_non_dominated,
infer_reference_point), brute-force dominance loops, an exact grid-cell volume, and Monte Carlo."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from botorch.utils.multi_objective.hypervolume import Hypervolume
from botorch.utils.multi_objective.hypervolume import (
    infer_reference_point as bt_infer_reference_point,
)
from botorch.utils.multi_objective.pareto import is_non_dominated
from hypothesis import given, settings
from hypothesis import strategies as st

from bocli.pareto import (
    HypervolumeTracker,
    hypervolume,
    hypervolume_trace,
    infer_reference_point,
    log_hv_regret,
    pareto_mask,
)

DIRS = ("minimize", "maximize", "maximize", "minimize", "maximize")


def dirs(m: int) -> list[str]:
    return list(DIRS[:m])


def max_signs(directions: list[str]) -> np.ndarray:
    """+1 maximize, -1 minimize: ``signs * Y`` is maximized (botorch's convention)."""
    return np.array([1.0 if d == "maximize" else -1.0 for d in directions])


def brute_mask(Y: np.ndarray, directions: list[str]) -> np.ndarray:
    """O(n^2) loop: row i is Pareto iff no NaN and no other valid row dominates it."""
    W = Y * max_signs(directions)
    n = len(W)
    out = np.zeros(n, dtype=bool)
    for i in range(n):
        if np.isnan(W[i]).any():
            continue
        dominated = False
        for j in range(n):
            if j == i or np.isnan(W[j]).any():
                continue
            if all(W[j] >= W[i]) and any(W[j] > W[i]):
                dominated = True
                break
        out[i] = not dominated
    return out


def grid_hv(Y: np.ndarray, directions: list[str], ref: np.ndarray) -> float:
    """Exact volume by cells: split each axis at every coordinate; a cell counts iff its best corner
    is dominated by some point. O(n^m * n): tiny sets only."""
    s = -max_signs(directions)  # minimized
    Z = Y[~np.isnan(Y).any(axis=1)] * s
    r = ref * s
    Z = Z[(r > Z).all(axis=1)]
    if len(Z) == 0:
        return 0.0
    m = Z.shape[1]
    axes = [np.unique(np.append(Z[:, k], r[k])) for k in range(m)]
    total = 0.0
    for cell in itertools.product(*[range(len(a) - 1) for a in axes]):
        lo = np.array([axes[k][c] for k, c in enumerate(cell)])
        if (lo >= Z).all(axis=1).any():
            total += float(np.prod([axes[k][c + 1] - axes[k][c] for k, c in enumerate(cell)]))
    return total


def botorch_hv(Y: np.ndarray, directions: list[str], ref: np.ndarray) -> float:
    s = max_signs(directions)
    Yv = Y[~np.isnan(Y).any(axis=1)]
    W = torch.tensor(Yv * s, dtype=torch.float64).reshape(-1, len(directions))
    if W.shape[0]:
        W = W[is_non_dominated(W)]
    return float(Hypervolume(torch.tensor(ref * s, dtype=torch.float64)).compute(W))


def sphere_front(rng: np.random.Generator, n: int, m: int, directions: list[str]) -> np.ndarray:
    """``n`` mutually non-dominated points (positive orthant of the unit sphere, minimized), in user
    units: maximized objectives are negated and shifted."""
    X = np.abs(rng.standard_normal((n, m)))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X * -max_signs(directions) + 3.0


def ref_for(directions: list[str], worst: float = 1.1) -> np.ndarray:
    """The reference point matching ``sphere_front``: 1.1 in minimized units."""
    return worst * -max_signs(directions) + 3.0


# ----- pareto_mask ------------------------------------------------------------------------------


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_pareto_mask_matches_brute_force_and_botorch(m: int) -> None:
    rng = np.random.default_rng(m)
    d = dirs(m)
    for trial in range(20):
        n = int(rng.integers(1, 60))
        # coarse values: many ties and duplicates
        Y = np.round(rng.random((n, m)) * (3 if trial % 2 else 20)) - 5.0
        if trial % 3 == 0:
            Y[rng.random(n) < 0.2, int(rng.integers(m))] = np.nan
        got = pareto_mask(Y, d)
        np.testing.assert_array_equal(got, brute_mask(Y, d))
        ok = ~np.isnan(Y).any(axis=1)
        W = torch.tensor(Y[ok] * max_signs(d))
        expected = np.zeros(n, dtype=bool)
        expected[ok] = is_non_dominated(W, deduplicate=False).numpy()
        np.testing.assert_array_equal(got, expected)


def test_pareto_mask_large_fronts_and_clouds() -> None:
    rng = np.random.default_rng(0)
    for m in (2, 3, 4):
        d = dirs(m)
        front = sphere_front(rng, 1500, m, d)
        assert pareto_mask(front, d).all()
        cloud = rng.standard_normal((1500, m))
        expected = is_non_dominated(torch.tensor(cloud * max_signs(d)), deduplicate=False).numpy()
        np.testing.assert_array_equal(pareto_mask(cloud, d), expected)


def test_pareto_mask_duplicates_feasible_and_edges() -> None:
    d = ["minimize", "maximize"]
    Y = np.array([[1.0, 5.0], [1.0, 5.0], [2.0, 5.0], [0.0, 0.0], [np.nan, 9.0], [-1.0, 10.0]])
    # (-1, 10) dominates every other valid row
    np.testing.assert_array_equal(pareto_mask(Y, d), [False] * 5 + [True])
    feasible = [True, True, True, True, True, False]
    np.testing.assert_array_equal(
        pareto_mask(Y, d, feasible=feasible), [True, True, False, True, False, False]
    )
    assert pareto_mask(np.empty((0, 2)), d).shape == (0,)
    assert pareto_mask([], d).shape == (0,)
    np.testing.assert_array_equal(pareto_mask(np.full((3, 2), np.nan), d), [False] * 3)
    np.testing.assert_array_equal(pareto_mask([[0.0, -0.0], [-0.0, 0.0]], d), [True, True])
    with pytest.raises(ValueError, match="direction"):
        pareto_mask(Y, ["min", "max"])
    with pytest.raises(ValueError, match="n x 3"):
        pareto_mask(Y, ["minimize"] * 3)
    with pytest.raises(ValueError, match="feasible"):
        pareto_mask(Y, d, feasible=[True])


# ----- hypervolume ------------------------------------------------------------------------------


@pytest.mark.parametrize("m", [2, 3, 4])
def test_hypervolume_matches_botorch(m: int) -> None:
    rng = np.random.default_rng(10 + m)
    d = dirs(m)
    for trial in range(8):
        n = int(rng.integers(1, 40 if m < 4 else 25))
        if trial % 2:
            Y = sphere_front(rng, n, m, d)
        else:
            Y = rng.random((n, m)) * 2.0 * -max_signs(d) + 3.0  # some points worse than ref
        ref = ref_for(d)
        assert hypervolume(Y, d, ref) == pytest.approx(botorch_hv(Y, d, ref), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("m", [2, 3, 4])
def test_hypervolume_matches_exact_grid(m: int) -> None:
    rng = np.random.default_rng(20 + m)
    d = dirs(m)
    for _ in range(10):
        n = int(rng.integers(1, 12 if m < 4 else 7))
        Y = np.round(rng.random((n, m)) * 8) / 4.0
        ref = np.full(m, 1.0)
        assert hypervolume(Y, d, ref) == pytest.approx(grid_hv(Y, d, ref), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("m", [2, 3, 4])
def test_hypervolume_matches_monte_carlo(m: int) -> None:
    rng = np.random.default_rng(30 + m)
    d = dirs(m)
    s = -max_signs(d)
    Y = sphere_front(rng, 30, m, d)
    Y = np.vstack([Y, rng.random((30, m)) * s + 3.0])  # and a dominated cloud
    ref = ref_for(d)
    hv = hypervolume(Y, d, ref)
    # uniform samples in the box [ideal, ref] (minimized units), fraction dominated by some point
    Z, r = Y * s, ref * s
    lo = Z.min(axis=0)
    N = 100_000
    U = lo + rng.random((N, m)) * (r - lo)
    hit = np.zeros(N, dtype=bool)
    for z in Z:
        hit |= (z <= U).all(axis=1)
    box = float(np.prod(r - lo))
    p = hit.mean()
    sd = box * math.sqrt(p * (1 - p) / N)
    assert abs(hv - box * p) < 5 * sd


def test_hypervolume_edges() -> None:
    d = ["minimize", "maximize"]
    ref = np.array([1.0, 0.0])
    assert hypervolume(np.empty((0, 2)), d, ref) == 0.0
    assert hypervolume([], d, ref) == 0.0
    assert hypervolume([[2.0, 1.0], [0.5, -1.0]], d, ref) == 0.0  # each worse in some objective
    assert hypervolume([[1.0, 1.0], [0.0, 0.0]], d, ref) == 0.0  # on the reference boundary
    assert hypervolume([[0.0, 2.0]], d, ref) == pytest.approx(2.0)
    Y = np.array([[0.0, 2.0], [np.nan, 100.0], [-5.0, np.nan]])
    assert hypervolume(Y, d, ref) == pytest.approx(2.0)
    assert hypervolume([[0.0, 2.0], [-9.0, 9.0]], d, ref, feasible=[True, False]) == 2.0
    assert hypervolume([[0.0, 2.0], [0.0, 2.0]], d, ref) == pytest.approx(2.0)
    assert hypervolume([[0.0, math.inf]], d, ref) == math.inf
    assert hypervolume([[-1.0], [0.5]], ["minimize"], [1.0]) == pytest.approx(2.0)
    for m in (3, 5):
        assert hypervolume(np.zeros((1, m)), ["minimize"] * m, np.full(m, 2.0)) == 2.0**m
    with pytest.raises(ValueError, match="ref_point"):
        hypervolume([[0.0, 2.0]], d, [1.0])
    with pytest.raises(ValueError, match="finite"):
        hypervolume([[0.0, 2.0]], d, [np.nan, 0.0])


def test_hypervolume_mixed_directions_is_sign_consistent() -> None:
    """Negating a column and flipping its direction (and reference) leaves the volume alone."""
    rng = np.random.default_rng(4)
    Y = rng.random((50, 3))
    ref = np.array([1.1, 1.1, 1.1])
    base = hypervolume(Y, ["minimize"] * 3, ref)
    flip = np.array([1.0, -1.0, -1.0])
    assert hypervolume(Y * flip, ["minimize", "maximize", "maximize"], ref * flip) == (
        pytest.approx(base, rel=1e-12)
    )


# ----- tracker ----------------------------------------------------------------------------------


@pytest.mark.parametrize("m", [2, 3, 4])
def test_tracker_trace_equals_prefix_hypervolumes(m: int) -> None:
    rng = np.random.default_rng(40 + m)
    d = dirs(m)
    s = -max_signs(d)
    ref = ref_for(d)
    for trial in range(4):
        n = 40 if m < 4 else 25
        # a mix of front points, dominated points, points worse than ref, duplicates, NaN
        Y = np.vstack(
            [sphere_front(rng, n // 2, m, d), rng.random((n - n // 2, m)) * 1.3 * s + 3.0]
        )
        Y = Y[rng.permutation(n)]
        Y[5] = Y[3]
        Y[7, 0] = np.nan
        feasible = rng.random(n) > 0.2 if trial % 2 else None
        trace = hypervolume_trace(Y, d, ref, feasible)
        f = np.ones(n, dtype=bool) if feasible is None else feasible
        for k in range(1, n + 1):
            Yk = Y[:k][f[:k]]
            assert trace[k - 1] == pytest.approx(botorch_hv(Yk, d, ref), rel=1e-9, abs=1e-12)
        assert np.all(np.diff(trace) >= -1e-12)
        # the front it keeps is the Pareto front of what it saw (within the reference box)
        tracker = HypervolumeTracker(d, ref)
        tracker.trace(Y, feasible)
        Yf = Y[f & ~np.isnan(Y).any(axis=1)]
        inside = Yf[((Yf * s) < ref * s).all(axis=1)]
        expected = np.unique(inside[pareto_mask(inside, d)], axis=0)
        np.testing.assert_allclose(np.unique(tracker.front, axis=0), expected)
        assert tracker.n_seen == n


def test_tracker_long_sequence_matches_one_shot() -> None:
    rng = np.random.default_rng(5)
    for m in (2, 3):
        d = dirs(m)
        Y = np.vstack([sphere_front(rng, 300, m, d), rng.random((300, m)) * -max_signs(d) + 3])
        Y = Y[rng.permutation(len(Y))]
        ref = ref_for(d)
        tr = hypervolume_trace(Y, d, ref)
        for k in (1, 10, 99, 300, 600):
            assert tr[k - 1] == pytest.approx(hypervolume(Y[:k], d, ref), rel=1e-10)


def test_tracker_edges() -> None:
    d = ["minimize", "maximize"]
    t = HypervolumeTracker(d, [1.0, 0.0])
    assert t.hv == 0.0 and t.front.shape == (0, 2)
    assert t.trace(np.empty((0, 2))).shape == (0,)
    assert t.add([2.0, 1.0]) == 0.0  # worse than ref in the first objective
    assert t.add([0.0, 2.0], feasible=False) == 0.0
    assert t.add([np.nan, 2.0]) == 0.0
    assert t.add([0.0, 2.0]) == pytest.approx(2.0)
    assert t.add([0.0, 2.0]) == pytest.approx(2.0)  # duplicate
    assert t.add([0.5, 1.0]) == pytest.approx(2.0)  # dominated
    assert t.add([-1.0, 1.0]) == pytest.approx(3.0)  # (2 x 1) strip added
    assert t.add([-1.0, 3.0]) == pytest.approx(6.0)  # dominates the whole front
    np.testing.assert_array_equal(t.front, [[-1.0, 3.0]])
    assert t.n_seen == 8
    with pytest.raises(ValueError, match="y must have 2"):
        t.add([1.0, 2.0, 3.0])
    t3 = HypervolumeTracker(["maximize"] * 3, [0.0, 0.0, 0.0])
    assert t3.add([1.0, 1.0, 1.0]) == pytest.approx(1.0)
    assert t3.add([2.0, 2.0, -1.0]) == pytest.approx(1.0)
    assert t3.add([2.0, 1.0, 1.0]) == pytest.approx(2.0)
    assert t3.trace([[1.0, 1.0, 1.0]], feasible=[False]).tolist() == [pytest.approx(2.0)]
    t1 = HypervolumeTracker(["maximize"], [0.0])
    assert t1.trace([[1.0], [-1.0], [3.0], [2.0]]).tolist() == [1.0, 1.0, 3.0, 3.0]
    for m in (2, 3):
        tinf = HypervolumeTracker(["maximize"] * m, np.zeros(m))
        assert tinf.trace([np.ones(m), np.r_[math.inf, np.ones(m - 1)], 2 * np.ones(m)])[-1] == (
            math.inf
        )


# ----- reference point, regret ------------------------------------------------------------------


def botorch_ref(Y: np.ndarray, d: list[str], scale: float = 0.1) -> np.ndarray:
    s = max_signs(d)
    W = torch.tensor(Y * s, dtype=torch.float64)
    P = W[is_non_dominated(W)]
    return bt_infer_reference_point(P, scale=scale).numpy() * s


@pytest.mark.parametrize("m", [2, 3, 4])
def test_infer_reference_point_matches_botorch(m: int) -> None:
    rng = np.random.default_rng(50 + m)
    d = dirs(m)
    cases = [
        rng.standard_normal((30, m)),
        sphere_front(rng, 10, m, d),
        rng.standard_normal((1, m)),  # a single point
        np.zeros((1, m)),  # a single point at zero
        np.ones((5, m)),  # all equal
        np.column_stack([rng.standard_normal((6, m - 1)), np.full(6, 2.0)]),  # one constant column
    ]
    for Y in cases:
        for scale in (0.1, 0.3):
            got = infer_reference_point(Y, d, scale=scale)
            np.testing.assert_allclose(got, botorch_ref(Y, d, scale), rtol=1e-12, atol=1e-15)
            # strictly worse than every Pareto point: each contributes volume
            assert hypervolume(Y, d, got) > 0


def test_infer_reference_point_options() -> None:
    d = ["minimize", "maximize"]
    Y = np.array([[0.0, 1.0], [1.0, 2.0], [np.nan, 9.0], [-5.0, 9.0]])
    # the NaN row is ignored and the infeasible one left out: front (0, 1), (1, 2)
    got = infer_reference_point(Y, d, feasible=[True, True, True, False])
    np.testing.assert_allclose(got, [1.1, 0.9])
    np.testing.assert_allclose(
        infer_reference_point(Y, d, feasible=[True, True, True, False], thresholds=[5.0, None]),
        [5.0, 0.9],
    )
    np.testing.assert_allclose(infer_reference_point([], d, thresholds=[1.0, 2.0]), [1.0, 2.0])
    with pytest.raises(ValueError, match="valid"):
        infer_reference_point(np.full((2, 2), np.nan), d)
    with pytest.raises(ValueError, match="thresholds"):
        infer_reference_point(Y, d, thresholds=[1.0])


def test_log_hv_regret() -> None:
    assert log_hv_regret(1.0, None) is None
    assert log_hv_regret(1.0, float("nan")) is None
    assert log_hv_regret(None, 2.0) is None
    assert log_hv_regret(1.0, 11.0) == pytest.approx(1.0)
    assert log_hv_regret(0.0, 0.01) == pytest.approx(-2.0)
    assert log_hv_regret(0.5, 0.5) == pytest.approx(-12.0)  # floor: 1e-12 * max(|max_hv|, 1)
    assert log_hv_regret(100.0, 100.0) == pytest.approx(-10.0)
    assert log_hv_regret(2e6, 1e6) == pytest.approx(-6.0)  # past an approximate max_hv


def test_import_is_light() -> None:
    code = "import sys, bocli.pareto; assert 'torch' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


# ----- property tests ---------------------------------------------------------------------------


@st.composite
def small_sets(draw: st.DrawFn) -> tuple[np.ndarray, list[str]]:
    m = draw(st.integers(2, 4))
    n = draw(st.integers(0, 9 if m < 4 else 6))
    cell = st.one_of(st.integers(-3, 3).map(float), st.just(math.nan))
    rows = draw(st.lists(st.lists(cell, min_size=m, max_size=m), min_size=n, max_size=n))
    d = draw(st.lists(st.sampled_from(["minimize", "maximize"]), min_size=m, max_size=m))
    return np.array(rows, dtype=np.float64).reshape(n, m), d


@settings(max_examples=150, deadline=None)
@given(small_sets(), st.randoms(use_true_random=False))
def test_property_mask_and_volume(data: tuple[np.ndarray, list[str]], rnd) -> None:
    Y, d = data
    np.testing.assert_array_equal(pareto_mask(Y, d), brute_mask(Y, d))
    ref = 2.5 * -max_signs(d)  # inside the value range: some points worse than it
    hv = hypervolume(Y, d, ref)
    assert hv == pytest.approx(grid_hv(Y, d, ref), rel=1e-12, abs=1e-12)
    # the front alone has the same volume, and so does any order of the points
    mask = pareto_mask(Y, d)
    assert hypervolume(Y[mask], d, ref) == pytest.approx(hv, rel=1e-12, abs=1e-12)
    perm = list(range(len(Y)))
    rnd.shuffle(perm)
    trace = hypervolume_trace(Y[perm], d, ref)
    assert (trace[-1] if len(trace) else 0.0) == pytest.approx(hv, rel=1e-12, abs=1e-12)
