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


@pytest.mark.parametrize("name", NAMES)
def test_evaluates_the_same_after_pickling(name):
    p = PROBLEMS[name](noise_std=0.0)
    copy = pickle.loads(pickle.dumps(p))
    points = p.space.decode(p.space.sobol(2 if name in SLOW else 16, seed=0))
    for params in points:
        value = p.evaluate(params)
        assert isinstance(value, float)
        assert math.isfinite(value)
        assert copy.evaluate(params) == value
        if p.optimum is not None:
            assert p.space.objective.sign * (p.optimum - value) >= -1e-9
            assert p.regret(value) >= 0


@pytest.mark.parametrize("name", sorted(n for n in PROBLEMS if n not in SLOW))
def test_noise_is_a_setting(name):
    p = PROBLEMS[name](noise_std=0.5)
    assert p.noise_std == 0.5
    params = p.space.decode(np.full((1, p.space.dim), 0.3))[0]
    a = p.evaluate(params, np.random.default_rng(0))
    b = p.evaluate(params, np.random.default_rng(1))
    assert a != b


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
