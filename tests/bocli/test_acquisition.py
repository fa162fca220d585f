"""Acquisition conformance: every registered acquisition proposes valid, distinct, seeded batches
that respect pending points, in continuous and mixed spaces (exact GP)."""

from __future__ import annotations

import numpy as np
import pytest

from bocli.acquisition import ACQUISITIONS, IncompatiblePairError, check_compatible
from bocli.engine import suggest
from problems import get_problem

FAST = {"num_restarts": 2, "raw_samples": 64}
# smaller Monte-Carlo sizes keep this conformance check quick; the defaults run in test_bo_quality
SMALL_MC = {"kg": {"num_fantasies": 8}, "jes": {"num_optima": 8}, "mes": {"num_fantasies": 4}}


def _suggest(*args, acquisition, **kwargs):
    opts = SMALL_MC.get(acquisition, {})
    return suggest(*args, acquisition=acquisition, acquisition_options=opts, **kwargs, **FAST)


@pytest.fixture(scope="module")
def data():
    p = get_problem("hartmann6")
    X = p.space.sobol(12, seed=0)
    y = np.array([p.evaluate(x) for x in p.space.decode(X)])
    return p, X, y


@pytest.mark.parametrize(
    "acquisition", [a for a in sorted(ACQUISITIONS) if ACQUISITIONS[a].single_objective]
)
def test_batch_with_pending(acquisition, data):
    p, X, y = data
    pending = p.space.sobol(2, seed=9)
    s = _suggest(p.space, X, y, q=2, pending=pending, acquisition=acquisition, seed=0, n_init=4)
    assert s.X.shape == (2, 6)
    assert ((s.X >= 0) & (s.X <= 1)).all()
    assert np.isfinite(s.X).all()
    # no proposal repeats a pending or an observed point, nor the other proposal
    others = np.concatenate([pending, X])
    assert np.min(np.linalg.norm(s.X[:, None] - others[None], axis=-1)) > 1e-6
    assert np.linalg.norm(s.X[0] - s.X[1]) > 1e-6
    again = _suggest(p.space, X, y, q=2, pending=pending, acquisition=acquisition, seed=0, n_init=4)
    assert np.allclose(s.X, again.X), "same seed must give the same proposal"


@pytest.mark.parametrize(
    "acquisition", [a for a in sorted(ACQUISITIONS) if ACQUISITIONS[a].single_objective]
)
def test_mixed_space(acquisition):
    p = get_problem("mixed-ackley")
    X = p.space.sobol(10, seed=1)
    y = np.array([p.evaluate(x) for x in p.space.decode(X)])
    s = _suggest(p.space, X, y, q=2, acquisition=acquisition, seed=0, n_init=4)
    for params in s.params:
        assert p.space.validate(params) == params
    assert np.allclose(p.space.round_trip(s.X), s.X)


def test_unknown_acquisition_lists_choices():
    with pytest.raises(IncompatiblePairError, match=r"choose from: .*ei"):
        check_compatible("gp", "expected-improvement")


def test_requirements_are_checked_against_capabilities(monkeypatch):
    from surrogates.gp import GP

    monkeypatch.setattr(GP, "capabilities", frozenset())
    with pytest.raises(IncompatiblePairError, match="'kg' needs a model with fantasize"):
        check_compatible("gp", "kg")
    check_compatible("gp", "ei")  # needs nothing beyond a posterior


def test_thompson_fallback_draws_on_a_singular_candidate_set():
    """Exact duplicate candidates: the joint covariance is singular; the eigendecomposition route
    still draws, picks distinct candidates, and follows the posterior (a sharp maximum at 0.3)."""
    import torch

    from bocli.acquisition import _thompson_fallback
    from surrogates import make_surrogate

    X = torch.linspace(0, 1, 25, dtype=torch.float64).unsqueeze(-1)
    Y = -((X - 0.3) ** 2) * 50
    model = make_surrogate("gp").fit(X, (Y - Y.mean()) / Y.std())
    grid = torch.linspace(0, 1, 201, dtype=torch.float64).unsqueeze(-1)
    cand = torch.cat([grid, grid])  # every candidate twice
    torch.manual_seed(0)
    picks = _thompson_fallback(model, cand, 3)
    assert picks.shape == (3, 1)
    assert len({tuple(r.tolist()) for r in picks}) == 3  # distinct points, not only indices
    assert (picks - 0.3).abs().max() < 0.05
