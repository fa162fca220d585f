"""The Student-t scale mixture of the NNGP (``ibnn-t``): its math against closed forms and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from botorch.models.kernels import InfiniteWidthBNNKernel
from botorch.sampling import SobolQMCNormalSampler
from scipy import stats

from surrogates import make_surrogate
from surrogates.ibnn_t import StudentTProcessModel, student_t_log_marginal

D = torch.float64


def _data(n: int = 12, d: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, d, generator=g, dtype=D)
    Y = torch.sin(5 * X[:, :1]) + X[:, 1:2]
    return X, (Y - Y.mean()) / Y.std()


def _model(X, Y, alpha=2.0, beta=2.0, tau=0.01, mean=0.0) -> StudentTProcessModel:
    k = InfiniteWidthBNNKernel(depth=3).to(X)
    k.requires_grad_(False)
    noise = torch.full((len(X),), tau, dtype=D)
    return StudentTProcessModel(k, mean, X, Y, noise, alpha, beta, tau)


def test_log_marginal_matches_scipy_multivariate_t() -> None:
    X, Y = _data()
    k = InfiniteWidthBNNKernel(depth=3).to(X)
    K = k.forward(X, X).detach() + 0.01 * torch.eye(len(X), dtype=D)
    alpha, beta = 2.5, 1.5
    ours = float(student_t_log_marginal(Y[:, 0], K, alpha, beta))
    ref = stats.multivariate_t(
        loc=np.zeros(len(X)), shape=(beta / alpha) * K.numpy(), df=2 * alpha
    ).logpdf(Y[:, 0].numpy())
    assert ours == pytest.approx(ref, rel=1e-9)


def test_posterior_is_the_conjugate_student_t() -> None:
    X, Y = _data()
    m = _model(X, Y, alpha=2.0, beta=2.0, tau=0.01)
    Xs = torch.rand(5, 2, dtype=D)
    k = m.kernel.forward
    K = k(X, X) + 0.01 * torch.eye(len(X), dtype=D)
    Ks = k(X, Xs)
    mu = Ks.T @ torch.linalg.solve(K, Y[:, 0])
    cov0 = k(Xs, Xs) - Ks.T @ torch.linalg.solve(K, Ks)
    a_n = 2.0 + len(X) / 2
    b_n = 2.0 + 0.5 * float(Y[:, 0] @ torch.linalg.solve(K, Y[:, 0]))
    post = m.posterior(Xs)
    assert post.df == pytest.approx(2 * a_n)
    torch.testing.assert_close(post.mean[:, 0], mu)
    # the moments of a t_{2 a_n}(mu, (b_n / a_n) cov0): covariance (b_n / (a_n - 1)) cov0
    torch.testing.assert_close(post.distribution.covariance_matrix, b_n / (a_n - 1) * cov0)


def test_samples_are_student_t_not_gaussian() -> None:
    """Few observations: the marginal of the draws at one point is t with 2 alpha_n dof."""
    X, Y = _data(n=3)
    m = _model(X, Y, alpha=1.5, beta=1.0)
    x = torch.tensor([[0.9, 0.1]], dtype=D)
    post = m.posterior(x)
    sampler = SobolQMCNormalSampler(torch.Size([16384]), seed=0)
    draws = sampler(post)[..., 0, 0].numpy()
    scale = math.sqrt(float(post.variance) * (post.df - 2) / post.df)
    ref = stats.t(df=post.df, loc=float(post.mean), scale=scale)
    # quantiles of the stratified-scale draws match the t, and its tails are heavier than normal
    for p in (0.05, 0.25, 0.5, 0.75, 0.95):  # 3 standard errors of the 5% quantile: 0.08 scale
        assert np.quantile(draws, p) == pytest.approx(ref.ppf(p), abs=0.08 * scale)
    assert stats.kurtosis(draws) > 1.0
    # fixed base samples: deterministic
    again = sampler(post)[..., 0, 0].numpy()
    np.testing.assert_array_equal(draws, again)
    # random draws (Thompson sampling) have the same law
    torch.manual_seed(0)
    rnd = post.rsample(torch.Size([20000]))[..., 0, 0].numpy()
    assert stats.kstest(rnd, ref.cdf).pvalue > 1e-3


def test_condition_equals_refit_on_all_data() -> None:
    X, Y = _data(n=10)
    m = _model(X[:7], Y[:7])
    c = m.condition_on_observations(X[7:], Y[7:])
    full = _model(X, Y)
    Xs = torch.rand(4, 2, dtype=D)
    torch.testing.assert_close(c.posterior(Xs).mean, full.posterior(Xs).mean)
    torch.testing.assert_close(c.posterior(Xs).variance, full.posterior(Xs).variance)
    assert float(c.post_beta) == pytest.approx(float(full.post_beta))


def test_fantasies_are_batched_and_differentiable() -> None:
    X, Y = _data()
    m = _model(X, Y)
    Xf = torch.rand(3, 1, 2, dtype=D, requires_grad=True)  # 3 t-batches of q = 1
    fm = m.fantasize(Xf, SobolQMCNormalSampler(torch.Size([5]), seed=0))
    assert fm.batch_shape == torch.Size([5, 3])
    post = fm.posterior(torch.rand(5, 3, 2, 2, dtype=D))
    assert post.mean.shape == torch.Size([5, 3, 2, 1])
    post.mean.sum().backward()
    assert Xf.grad is not None and torch.isfinite(Xf.grad).all()
    # a surprising fantasy value raises the scale posterior of that fantasy model
    big = m.condition_on_observations(X[:1] + 0.01, torch.tensor([[25.0]], dtype=D))
    assert float(big.expected_scale) > float(m.expected_scale)


def test_heavy_prior_limit_is_the_gaussian_process() -> None:
    """alpha -> infinity with E[s] = 1 fixed: the t process becomes the unit-scale GP."""
    X, Y = _data()
    m = _model(X, Y, alpha=1e9, beta=1e9 - 1)
    Xs = torch.rand(3, 2, dtype=D)
    k = m.kernel.forward
    K = k(X, X) + 0.01 * torch.eye(len(X), dtype=D)
    Ks = k(X, Xs)
    var0 = torch.diagonal(k(Xs, Xs) - Ks.T @ torch.linalg.solve(K, Ks))
    torch.testing.assert_close(m.posterior(Xs).variance[:, 0], var0, rtol=1e-5, atol=1e-9)


def test_fit_learns_the_scale_and_records_diagnostics() -> None:
    X, Y = _data(n=30)
    s = make_surrogate("ibnn-t")
    model = s.fit(X, Y)
    assert s.diagnostics["fit_status"] == "ok"
    assert s.diagnostics["df"] == pytest.approx(2 * 2.0 + 30)
    # the NNGP kernel's prior variance is ~10x the data's: the scale posterior shrinks it
    assert 0.0 < s.diagnostics["expected_scale"] < 1.0
    assert model.posterior(X).mean.shape == (30, 1)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="alpha"):
        make_surrogate("ibnn-t", {"alpha": 1.0})
