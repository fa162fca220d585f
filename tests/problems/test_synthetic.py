"""Synthetic functions: known optima, literature minimizers, and agreement with botorch."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize

from problems import get_problem
from problems.synthetic import VectorFunction, michalewicz_minimizer

# Minimizers from the literature (Surjanovic & Bingham's library, botorch), written out here so the
# test does not trust the module for them. Values: (problem spec, minimizer, abs tolerance).
LITERATURE_MINIMIZERS = [
    ("forrester", [0.75724876], 1e-7),
    ("branin", [-math.pi, 12.275], 1e-12),
    ("branin", [math.pi, 2.275], 1e-12),
    ("branin", [3 * math.pi, 2.475], 1e-12),
    ("sixhumpcamel", [0.08984201368301331, -0.7126564032704135], 1e-12),
    ("sixhumpcamel", [-0.08984201368301331, 0.7126564032704135], 1e-12),
    ("hartmann3", [0.114614, 0.555649, 0.852547], 1e-5),
    ("hartmann6", [0.20168952, 0.15001069, 0.47687398, 0.27533243, 0.31165162, 0.65730054], 1e-7),
    ("ackley", [0.0] * 6, 1e-12),
    ("ackley:dim=2", [0.0] * 2, 1e-12),
    ("levy", [1.0] * 6, 1e-12),
    ("levy:dim=3", [1.0] * 3, 1e-12),
    ("rosenbrock", [1.0] * 4, 1e-12),
    ("rosenbrock:dim=2", [1.0] * 2, 1e-12),
    ("griewank", [0.0] * 6, 1e-12),
    ("michalewicz:dim=2", [2.20290552, 1.57079633], 1e-7),
    ("styblinskitang", [-2.903534027771178] * 4, 1e-9),
    ("styblinskitang:dim=7", [-2.903534027771178] * 7, 1e-9),
]

LITERATURE_OPTIMA = {
    "forrester": -6.02074,
    "branin": 0.397887,
    "sixhumpcamel": -1.031628,
    "hartmann3": -3.86278,
    "hartmann6": -3.32237,
    "michalewicz:dim=2": -1.8013,
    "michalewicz:dim=5": -4.687658,
    "michalewicz:dim=10": -9.66015,
    "styblinskitang:dim=1": -39.16617,
}

SYNTHETIC = [
    "forrester",
    "branin",
    "sixhumpcamel",
    "hartmann3",
    "hartmann6",
    "ackley",
    "levy",
    "rosenbrock",
    "griewank",
    "michalewicz",
    "styblinskitang",
]


def _bounds(problem) -> tuple[np.ndarray, np.ndarray]:
    low = np.array([p.low for p in problem.space.parameters])
    high = np.array([p.high for p in problem.space.parameters])
    return low, high


def _params(x) -> dict[str, float]:
    return {f"x{i}": float(v) for i, v in enumerate(x)}


@pytest.mark.parametrize(("spec", "x", "tol"), LITERATURE_MINIMIZERS)
def test_value_at_literature_minimizer_is_the_optimum(spec, x, tol):
    problem = get_problem(spec)
    assert problem.evaluate(_params(x)) == pytest.approx(problem.optimum, abs=tol)


@pytest.mark.parametrize(("spec", "value"), LITERATURE_OPTIMA.items())
def test_optimum_matches_literature(spec, value):
    assert get_problem(spec).optimum == pytest.approx(value, abs=1e-5)


@pytest.mark.parametrize("name", SYNTHETIC)
def test_nothing_beats_the_optimum(name):
    """Random points, then a local optimizer from the best of them, never go below the optimum."""
    problem = get_problem(name)
    fn = problem.fn
    assert isinstance(fn, VectorFunction)
    low, high = _bounds(problem)
    X = low + (high - low) * np.random.default_rng(0).random((20_000, len(low)))
    values = fn.batch(X)
    assert values.min() >= problem.optimum - 1e-12
    box = list(zip(low, high, strict=True))
    for start in X[np.argsort(values)[:3]]:
        res = minimize(lambda x: fn.batch(x[None, :])[0], start, bounds=box)
        assert res.fun >= problem.optimum - 1e-9


@pytest.mark.parametrize("dim", [2, 3, 10])
def test_michalewicz_minimizer(dim):
    problem = get_problem(f"michalewicz:dim={dim}")
    x_star = michalewicz_minimizer(dim)
    assert problem.evaluate(_params(x_star)) == problem.optimum
    # coordinate-wise: a fine 1-D grid finds nothing lower in any coordinate
    grid = np.linspace(0, math.pi, 100_001)
    for i in range(dim):
        X = np.tile(x_star, (len(grid), 1))
        X[:, i] = grid
        assert problem.fn.batch(X).min() >= problem.optimum - 1e-12


def test_forrester_closed_form():
    fn = get_problem("forrester").fn
    x = np.linspace(0, 1, 11)
    np.testing.assert_allclose(fn.batch(x[:, None]), (6 * x - 2) ** 2 * np.sin(12 * x - 4))


def test_dimension_and_names():
    p = get_problem("ackley:dim=10")
    assert p.name == "ackley10"
    assert p.space.names == [f"x{i}" for i in range(10)]
    assert p.space.objective.name == "value"
    assert p.space.objective.direction == "minimize"
    assert get_problem("ackley").name == "ackley"
    assert get_problem("ackley").space.dim == 6


def test_batch_rejects_wrong_shape():
    with pytest.raises(ValueError, match="n x 2"):
        get_problem("branin").fn.batch(np.zeros((3, 4)))


@pytest.mark.parametrize("spec", ["ackley:dim=0", "rosenbrock:dim=1", "levy:dim=2.5"])
def test_bad_dimension(spec):
    with pytest.raises(KeyError, match="dim must be an integer"):
        get_problem(spec)


# ----- cross-check against botorch's implementations --------------------------------------------
BOTORCH = [
    ("branin", "Branin", {}),
    ("sixhumpcamel", "SixHumpCamel", {}),
    ("hartmann3", "Hartmann", {"dim": 3}),
    ("hartmann6", "Hartmann", {"dim": 6}),
    ("ackley", "Ackley", {"dim": 6}),
    ("ackley:dim=3", "Ackley", {"dim": 3}),
    ("levy", "Levy", {"dim": 6}),
    ("levy:dim=1", "Levy", {"dim": 1}),
    ("rosenbrock", "Rosenbrock", {"dim": 4}),
    ("griewank", "Griewank", {"dim": 6}),
    ("michalewicz", "Michalewicz", {"dim": 5}),
    ("michalewicz:dim=10", "Michalewicz", {"dim": 10}),
    ("styblinskitang", "StyblinskiTang", {"dim": 4}),
]


@pytest.mark.parametrize(("spec", "cls", "kwargs"), BOTORCH)
def test_agrees_with_botorch(spec, cls, kwargs):
    torch = pytest.importorskip("torch")
    synthetic = pytest.importorskip("botorch.test_functions.synthetic")
    reference = getattr(synthetic, cls)(**kwargs, dtype=torch.float64)
    problem = get_problem(spec)
    low, high = _bounds(problem)
    np.testing.assert_allclose(np.stack([low, high]), reference.bounds.numpy())
    X = low + (high - low) * np.random.default_rng(1).random((500, len(low)))
    expected = reference.evaluate_true(torch.from_numpy(X)).numpy()
    # botorch keeps Hartmann's constants in float32 (0.1 and 1e-4 * P are not exact there)
    tol = 1e-6 if cls == "Hartmann" else 1e-10
    np.testing.assert_allclose(problem.fn.batch(X), expected, rtol=tol, atol=tol)
    # the dict path gives the same numbers
    for x, e in zip(X[:5], expected[:5], strict=True):
        assert problem.evaluate(_params(x)) == pytest.approx(e, rel=tol, abs=tol)
    if reference.optimal_value is not None:  # botorch's optima are rounded
        assert problem.optimum == pytest.approx(reference.optimal_value, abs=1e-4)


# ----- noise ------------------------------------------------------------------------------------
def test_noisy_variants():
    for name in ["forrester-noisy", "branin-noisy", "hartmann6-noisy", "ackley-noisy"]:
        p = get_problem(name)
        assert p.name == name
        assert p.noise_std > 0
        assert "noisy" in p.tags
        assert p.optimum == get_problem(name.removesuffix("-noisy")).optimum
    assert get_problem("branin-noisy:noise_std=2.5").noise_std == 2.5
    assert get_problem("ackley10-noisy").space.dim == 10


def test_noisy_evaluation_is_clean_value_plus_gaussian_noise():
    clean = get_problem("hartmann6")
    noisy = get_problem("hartmann6:noise_std=0.3")
    x = _params([0.5] * 6)
    rng = np.random.default_rng(0)
    draws = np.array([noisy.evaluate(x, rng) for _ in range(4000)])
    residual = draws - clean.evaluate(x)
    assert abs(residual.mean()) < 4 * 0.3 / math.sqrt(len(draws))
    assert residual.std() == pytest.approx(0.3, rel=0.05)
    # reproducible given the generator; noiseless problems ignore it
    a = [noisy.evaluate(x, np.random.default_rng(7)) for _ in range(2)]
    assert a[0] == a[1]
    assert clean.evaluate(x, np.random.default_rng(7)) == clean.evaluate(x)
