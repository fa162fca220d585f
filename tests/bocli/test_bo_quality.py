"""BO quality with fixed seeds: medians over seeds against random search (slow; CI runs them)."""

from __future__ import annotations

import numpy as np
import pytest

from bocli.run import RunConfig, run_optimization
from problems import get_problem

pytestmark = pytest.mark.slow

SEEDS = (0, 1, 2)


def _final_regret(problem_name: str, **settings) -> list[float]:
    problem = get_problem(problem_name)
    out = []
    for seed in SEEDS:
        trials = run_optimization(problem, RunConfig(problem_name, seed=seed, **settings))
        out.append(trials[-1].regret)
    return out


def test_gp_ei_solves_branin_in_30_evaluations():
    regrets = _final_regret("branin", surrogate="gp", acquisition="ei", budget=30, n_init=6)
    assert np.median(regrets) < 0.05, regrets


@pytest.fixture(scope="module")
def random_hartmann6() -> float:
    return float(
        np.median(_final_regret("hartmann6", acquisition="random", budget=24, n_init=10, batch=2))
    )


@pytest.mark.parametrize("acquisition", ["ei", "ucb", "kg", "mes", "gibbon", "jes", "ts"])
def test_each_acquisition_beats_random_on_hartmann6(acquisition, random_hartmann6):
    regrets = _final_regret(
        "hartmann6", surrogate="gp", acquisition=acquisition, budget=24, n_init=10, batch=2
    )
    assert np.median(regrets) < random_hartmann6, (regrets, random_hartmann6)
