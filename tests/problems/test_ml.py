"""The scikit-learn tuning tasks: spaces, determinism, and evaluation time."""

from __future__ import annotations

import time

import pytest

from bocli.space import CategoricalParam, IntParam
from problems import get_problem

# the slowest corners of each space (measured: underfitting SVCs, many deep boosted trees)
SLOW_POINTS = {
    "sklearn-svm": {"C": 1e-3, "gamma": 1.0, "kernel": "sigmoid", "degree": 3},
    "sklearn-hgb": {
        "learning_rate": 1e-3,
        "max_iter": 100,
        "max_leaf_nodes": 32,
        "min_samples_leaf": 1,
        "l2_regularization": 1e-6,
    },
}
GOOD_POINTS = {
    "sklearn-svm": {"C": 10.0, "gamma": 0.01, "kernel": "rbf", "degree": 3},
    "sklearn-hgb": {
        "learning_rate": 0.1,
        "max_iter": 100,
        "max_leaf_nodes": 8,
        "min_samples_leaf": 10,
        "l2_regularization": 1e-3,
    },
}


@pytest.mark.parametrize("name", ["sklearn-svm", "sklearn-hgb"])
def test_space(name):
    p = get_problem(name)
    assert p.optimum is None
    assert p.space.objective.name == "cv_error"
    assert p.space.objective.direction == "minimize"
    assert any(isinstance(q, IntParam) for q in p.space.parameters)
    assert p.space.validate(SLOW_POINTS[name]) == SLOW_POINTS[name]
    if name == "sklearn-svm":
        assert isinstance(p.space.parameters[2], CategoricalParam)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sklearn-svm", "sklearn-hgb"])
def test_evaluation_is_deterministic_and_sensible(name):
    p = get_problem(name)
    good = p.evaluate(GOOD_POINTS[name])
    assert 0.0 <= good < 0.06  # both datasets are easy for a tuned model
    assert p.evaluate(GOOD_POINTS[name]) == good
    assert p.evaluate(SLOW_POINTS[name]) > good + 0.2  # the slow corners underfit


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sklearn-svm", "sklearn-hgb"])
def test_evaluation_takes_a_few_seconds_at_most(name):
    import sklearn.ensemble
    import sklearn.svm  # noqa: F401  (the first import in a process is not the evaluation)

    p = get_problem(name)
    start = time.perf_counter()
    p.evaluate(SLOW_POINTS[name])
    assert time.perf_counter() - start < 5.0
