"""SampleEnsembleModel: mixture moments, MC acquisitions, and KG by member reweighting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from botorch.acquisition import PosteriorMean, qKnowledgeGradient
from botorch.acquisition.analytic import LogExpectedImprovement
from botorch.acquisition.logei import qLogNoisyExpectedImprovement
from botorch.sampling.normal import SobolQMCNormalSampler

from surrogates.ensemble_model import SampleEnsembleModel, SampleEnsemblePosterior

S = 8


def _toy(weights: torch.Tensor | None = None, noise: float | torch.Tensor = 0.01):
    """``S`` sine functions in 1-D with distinct amplitudes, frequencies and phases."""
    g = torch.Generator().manual_seed(3)
    A = 0.5 + torch.rand(S, generator=g, dtype=torch.float64)
    B = 2.0 + 6.0 * torch.rand(S, generator=g, dtype=torch.float64)
    C = 6.0 * torch.rand(S, generator=g, dtype=torch.float64)

    def forward_fn(X: torch.Tensor) -> torch.Tensor:
        return A[:, None] * torch.sin(B[:, None] * X[..., None, :, 0] + C[:, None])

    X = torch.rand(5, 1, dtype=torch.float64, generator=g)
    Y = forward_fn(X).mean(-2).unsqueeze(-1)
    return SampleEnsembleModel(forward_fn, S, noise, X, Y, weights=weights), forward_fn


def test_posterior_shapes_and_moments() -> None:
    w = torch.arange(1, S + 1, dtype=torch.float64)
    model, fn = _toy(w, noise=0.02)
    X = torch.rand(4, 3, 1, dtype=torch.float64)
    post = model.posterior(X)
    assert isinstance(post, SampleEnsemblePosterior)
    assert post.values.shape == (4, S, 3, 1)
    assert post.mean.shape == post.variance.shape == (4, 3, 1)
    f = fn(X)  # 4 x S x 3
    wn = w / w.sum()
    mean = (wn[:, None] * f).sum(-2)
    var = (wn[:, None] * (f - mean.unsqueeze(-2)) ** 2).sum(-2) + 0.02
    torch.testing.assert_close(post.mean[..., 0], mean)
    torch.testing.assert_close(post.variance[..., 0], var)
    cov = post.covariance_matrix
    assert cov.shape == (4, 3, 3)
    torch.testing.assert_close(torch.diagonal(cov, dim1=-2, dim2=-1), var)


def test_batched_weights_variance_is_per_batch() -> None:
    # botorch's EnsemblePosterior.variance sums w^2 over all batch dims; ours is per batch
    values = torch.randn(2, 5, 3, 1, dtype=torch.float64)
    w = torch.rand(2, 5, dtype=torch.float64)
    post = SampleEnsemblePosterior(values, w, noise_var=0.0)
    for b in range(2):
        wn = w[b] / w[b].sum()
        m = (wn[:, None] * values[b, :, :, 0]).sum(0)
        v = (wn[:, None] * (values[b, :, :, 0] - m) ** 2).sum(0)
        torch.testing.assert_close(post.variance[b, :, 0], v)
        torch.testing.assert_close(post.mean[b, :, 0], m)


def test_per_member_noise() -> None:
    noise = torch.linspace(0.01, 0.1, S, dtype=torch.float64)
    model, _ = _toy(noise=noise)
    post = model.posterior(torch.rand(3, 1, dtype=torch.float64))
    torch.testing.assert_close(
        post.variance - post.latent_variance,
        torch.full((3, 1), float(noise.mean()), dtype=torch.float64),
    )


def test_mc_and_analytic_acquisitions_run_with_gradients() -> None:
    model, _ = _toy()
    X = torch.rand(6, 2, 1, dtype=torch.float64, requires_grad=True)
    acq = qLogNoisyExpectedImprovement(model, X_baseline=model.train_X)
    val = acq(X)
    assert val.shape == (6,) and torch.isfinite(val).all()
    val.sum().backward()
    assert torch.isfinite(X.grad).all() and (X.grad != 0).any()
    lei = LogExpectedImprovement(model, best_f=0.5)
    assert torch.isfinite(lei(torch.rand(6, 1, 1, dtype=torch.float64))).all()


def _kg_discrete_brute_force(fn, x0: float, grid: torch.Tensor, sigma2: float) -> float:
    """KG(x0) = E_y[max_c E[f(c) | y]] - max_c E[f(c)] by quadrature over y (uniform weights)."""
    f0 = fn(torch.tensor([[x0]], dtype=torch.float64))[:, 0].numpy()  # S
    fc = fn(grid).numpy()  # S x m
    sd = math.sqrt(sigma2)
    ys = np.linspace(f0.min() - 10 * sd, f0.max() + 10 * sd, 40001)
    lik = np.exp(-0.5 * (ys[:, None] - f0[None, :]) ** 2 / sigma2) / math.sqrt(2 * math.pi * sigma2)
    p_y = lik.mean(axis=1)  # mixture density, uniform member weights
    post_w = lik / lik.sum(axis=1, keepdims=True)
    best = (post_w @ fc).max(axis=1)
    return float(np.trapezoid(p_y * best, ys) - fc.mean(axis=0).max())


@pytest.mark.parametrize("x0", [0.15, 0.6])
def test_kg_fantasies_match_brute_force(x0: float) -> None:
    model, fn = _toy()
    grid = torch.linspace(0, 1, 201, dtype=torch.float64).unsqueeze(-1)
    nf = 4096
    fm = model.fantasize(
        torch.tensor([[[x0]]], dtype=torch.float64), SobolQMCNormalSampler(torch.Size([nf]), seed=7)
    )
    assert fm.batch_shape == (nf, 1)
    mean = fm.posterior(grid).mean[..., 0]  # nf x 1 x m
    current = model.posterior(grid).mean.max()
    kg = float(mean.max(dim=-1).values.mean() - current)
    exact = _kg_discrete_brute_force(fn, x0, grid, model.fantasy_noise_var)
    assert exact > 0.01
    assert kg == pytest.approx(exact, rel=0.05, abs=0.005)


def test_qkg_is_deterministic_and_differentiable() -> None:
    model, _ = _toy()
    current = PosteriorMean(model)(model.train_X.unsqueeze(-2)).max()
    acq = qKnowledgeGradient(model, num_fantasies=16, current_value=current)
    X = torch.rand(3, 1 + 16, 1, dtype=torch.float64, requires_grad=True)
    v1 = acq(X)
    v2 = acq(X)
    torch.testing.assert_close(v1, v2)
    # evaluating one t-batch alone gives the same value as within the batch
    torch.testing.assert_close(acq(X[:1]), v1[:1])
    v1.sum().backward()
    assert X.grad is not None and torch.isfinite(X.grad).all()
    assert (X.grad[:, 0] != 0).any()  # the actual point gets a gradient


def test_condition_on_observations_reweights_towards_consistent_members() -> None:
    model, fn = _toy()
    X = torch.tensor([[0.3], [0.7]], dtype=torch.float64)
    truth = fn(X)[2]  # member 2's values
    cond = model.condition_on_observations(X, truth.unsqueeze(-1), noise=torch.tensor(1e-4))
    w = cond.ensemble_weights
    assert w.shape == (S,)
    assert int(w.argmax()) == 2 and float(w[2]) > 0.9
