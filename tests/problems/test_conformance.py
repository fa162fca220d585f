"""Every registered problem honours the contract: pickles, evaluates, never beats its optimum."""

from __future__ import annotations

import math
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from problems import PROBLEMS, Problem, list_problems

# ML tasks take about a second per evaluation (and 2 s to import scikit-learn)
SLOW = {"sklearn-svm", "sklearn-hgb"}
list_problems()  # fills PROBLEMS
NAMES = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(PROBLEMS)]


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_declaration(name):
    p = PROBLEMS[name]()
    assert isinstance(p, Problem)
    assert p.name == name
    assert p.description
    assert p.optimum is None or math.isfinite(p.optimum)
    assert p.noise_std >= 0
    copy = pickle.loads(pickle.dumps(p))
    assert copy == p  # the dataclass callables compare by value, so this checks fn too
    if p.space.is_multi_objective:
        assert p.optimum is None  # regret is single-objective; max_hv plays its part
        assert p.max_hv is None or (math.isfinite(p.max_hv) and p.max_hv > 0)
        assert all(o.threshold is not None for o in p.space.objectives)  # a fixed reference point
    else:
        assert p.max_hv is None


def _evaluate(p: Problem, params, rng=None) -> dict[str, float]:
    """Every outcome: ``evaluate`` for a single-outcome problem, else ``evaluate_outcomes``."""
    if p.space.is_single_outcome:
        value = p.evaluate(params, rng)
        assert isinstance(value, float)
        return {p.space.objective.name: value}
    return p.evaluate_outcomes(params, rng)


@pytest.mark.parametrize("name", NAMES)
def test_evaluates_the_same_after_pickling(name):
    p = PROBLEMS[name](noise_std=0.0)
    copy = pickle.loads(pickle.dumps(p))
    points = p.space.decode(p.space.sobol(2 if name in SLOW else 16, seed=0))
    for params in points:
        values = _evaluate(p, params)
        assert list(values) == p.space.outcome_names
        assert all(isinstance(v, float) and math.isfinite(v) for v in values.values())
        assert _evaluate(copy, params) == values
        if p.optimum is not None:
            value = values[p.space.objective.name]
            assert p.space.objective.sign * (p.optimum - value) >= -1e-9
            assert p.regret(value) >= 0


@pytest.mark.parametrize("name", sorted(n for n in PROBLEMS if n not in SLOW))
def test_noise_is_a_setting(name):
    p = PROBLEMS[name](noise_std=0.5)
    assert p.noise_std == 0.5
    params = p.space.decode(np.full((1, p.space.dim), 0.3))[0]
    a = _evaluate(p, params, np.random.default_rng(0))
    b = _evaluate(p, params, np.random.default_rng(1))
    assert all(a[k] != b[k] for k in p.space.outcome_names)  # every outcome is noisy


def test_importing_and_listing_does_not_load_torch_or_sklearn():
    code = (
        "import sys, problems, problems.user; problems.list_problems(); "
        "print(sorted(m for m in ('torch', 'botorch', 'sklearn', 'jax') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=Path(__file__).parents[2],  # the repository root, where the packages are
    )
    assert out.stdout.strip() == "[]"
