"""Multi-objective BO quality with fixed seeds: medians over five seeds against the Sobol design
alone, and feasible Pareto points under every surrogate family on a constrained problem (slow; CI
runs them). The hypervolume is ``Trial.best_so_far`` of a multi-objective run: the feasible
observed front against the problem's reference point."""

from __future__ import annotations

import numpy as np
import pytest

from bocli.run import RunConfig, run_optimization
from problems import get_problem

pytestmark = pytest.mark.slow

SEEDS = (0, 1, 2, 3, 4)


def _final_hypervolumes(name: str, **settings) -> list[float]:
    problem = get_problem(name)
    out = []
    for seed in SEEDS:
        trials = run_optimization(problem, RunConfig(name, seed=seed, **settings))
        out.append(float(trials[-1].best_so_far or 0.0))
    return out


def test_gp_ei_beats_the_sobol_design_on_branincurrin():
    budget = 30
    sobol = _final_hypervolumes("branincurrin", acquisition="random", budget=budget, n_init=budget)
    bo = _final_hypervolumes("branincurrin", surrogate="gp", acquisition="ei", budget=budget,
                             n_init=6, batch=2)  # fmt: skip
    max_hv = get_problem("branincurrin").max_hv
    gap_sobol, gap_bo = max_hv - np.median(sobol), max_hv - np.median(bo)
    # "clearly higher": at least halves the distance to the best reachable hypervolume
    assert gap_bo < 0.5 * gap_sobol, (bo, sobol)


def test_ensemble_parego_beats_the_sobol_design_on_dtlz2():
    budget = 24
    sobol = _final_hypervolumes("dtlz2_4_2", acquisition="random", budget=budget, n_init=budget)
    bo = _final_hypervolumes("dtlz2_4_2", surrogate="ensemble", acquisition="parego",
                             budget=budget, n_init=8, batch=2)  # fmt: skip
    assert np.median(bo) > np.median(sobol), (bo, sobol)


def _constrained_run(name: str, surrogate: str, budget: int, n_init: int) -> list:
    options = {"num_samples": 64, "num_warmup": 64} if surrogate == "hmc" else {}
    return run_optimization(
        get_problem(name),
        RunConfig(name, surrogate=surrogate, acquisition="ei", budget=budget, n_init=n_init,
                  batch=2, seed=0, surrogate_options=options),
    )  # fmt: skip


@pytest.mark.parametrize("surrogate", ["gp", "ibnn", "ensemble", "hmc", "pfn"])
def test_constrained_problem_ends_with_feasible_pareto_points(surrogate):
    """constrainedbranincurrin (70% of the space feasible): every surrogate family keeps most of
    its proposals feasible and ends with feasible Pareto points inside the reference box."""
    trials = _constrained_run("constrainedbranincurrin", surrogate, budget=18, n_init=6)
    model_made = [t for t in trials if t.phase == "model" and t.status == "complete"]
    assert sum(bool(t.feasible) for t in model_made) >= len(model_made) // 2, [
        t.outcomes for t in model_made
    ]
    assert trials[-1].best_so_far > 0  # a feasible point inside the reference box


@pytest.mark.parametrize("surrogate", ["gp", "ibnn"])
def test_gp_family_finds_a_narrow_feasible_region(surrogate):
    """c2dtlz2 (d = 6, about 7% feasible): the GP family's proposals land in the feasible band.
    (The ensemble and pfn do not, at this budget: measured 0 of 12 feasible proposals each.)"""
    trials = _constrained_run("c2dtlz2", surrogate, budget=20, n_init=8)
    model_made = [t for t in trials if t.phase == "model" and t.status == "complete"]
    assert sum(bool(t.feasible) for t in model_made) >= 2, [t.outcomes for t in model_made]
    assert trials[-1].best_so_far > 0
