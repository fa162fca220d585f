"""I-BNN-t: the Student-t scale mixture of the infinite-width ReLU network GP.

"Scale Mixtures of Neural Network Gaussian Processes" (Lee et al., ICLR 2022) put an inverse-gamma
prior on the variance of the last layer of an infinitely wide network. The NNGP kernel ``K0`` (the
one ``ibnn`` uses: depth, weight and bias variances) is then scaled by ``s ~ IG(alpha, beta)``, and so
is the observation noise ``tau``::

    y | s ~ N(m 1, s (K0 + tau I)),      s ~ IG(alpha, beta)

This is conjugate. Marginally ``y`` is multivariate Student-t with ``2 alpha`` degrees of freedom;
after ``n`` observations (``r = y - m``)::

    s | y ~ IG(alpha_n, beta_n),   alpha_n = alpha + n / 2,   beta_n = beta + r' K^-1 r / 2
    f(X*) | s, y ~ N(mu0(X*), s Sigma0(X*))      (the unit-scale GP posterior)

so the predictive is Student-t with ``2 alpha_n`` degrees of freedom: the model learns the scale of
the function from the data (with uncertainty), and its predictions are heavy-tailed while data are
few. The constant mean ``m`` and the noise ratio ``tau`` (and, with ``fit_variances=True``, the
kernel's variances) maximize the Student-t marginal likelihood.

How acquisitions see it:
- ``posterior(X)`` is a ``StudentTPosterior``: a ``GPyTorchPosterior`` whose distribution is the
  moment-matched Gaussian ``N(mu0, E[s | y] Sigma0)`` (mean, variance and covariance are exact
  moments of the Student-t; GIBBON and MES read them), while its samples are Student-t draws:
  ``mu0 + sqrt(s_i) L z``. With a sampler's fixed base samples (qLogNEI, qUCB, qKG: sample-average
  approximations) the scale ``s_i`` of MC sample ``i`` is a stratified quantile of ``IG(alpha_n,
  beta_n)``, so the acquisition stays a deterministic, differentiable function of ``X``; plain
  ``rsample`` draws ``s_i`` at random (Thompson sampling).
- ``condition_on_observations`` / ``fantasize`` append data and recompute the posterior exactly
  (the scale posterior too: a fantasy of a surprising value widens the fantasy model), so knowledge
  gradient and joint entropy search work.

With ``m > 1`` outcomes each outcome gets its own Student-t process (fitted as a single outcome is),
combined into an ``OutcomeModelList`` (``surrogates/multi_output.py``; not a ``ModelListGP``: the
model is not a gpytorch GP). Its posterior is a ``PosteriorList`` of the outcomes' Student-t
posteriors (independent outcomes); ``fantasize`` and ``condition_on_observations`` work per outcome.
``gaussian`` then holds per outcome only: the ``PosteriorList`` has no joint ``distribution``. There
are no Matheron paths for it, so ``sample_optimal_points`` and the multi-objective entropy searches
(which also need ``.mvn``) do not work with it.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from botorch.models.kernels import InfiniteWidthBNNKernel
from botorch.models.model import Model
from botorch.posteriors.gpytorch import GPyTorchPosterior
from gpytorch.distributions import MultivariateNormal
from linear_operator import to_linear_operator
from linear_operator.utils.cholesky import psd_safe_cholesky
from torch import Tensor

from surrogates.ibnn import IBNN
from surrogates.multi_output import fit_per_outcome
from surrogates.registry import register_surrogate

__all__ = ["IBNNT", "StudentTPosterior", "StudentTProcessModel", "student_t_log_marginal"]

_MIN_NOISE = 1e-4  # the noise floor of botorch's exact GPs (standardized units)


@functools.lru_cache(maxsize=64)
def _gamma_quantiles_cpu(shape: float, n: int) -> Tensor:
    from scipy.special import gammaincinv

    p = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(n))
    return torch.as_tensor(gammaincinv(shape, p[perm].numpy()))


def _gamma_quantiles(shape: float, n: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """``n`` stratified quantiles of Gamma(shape, 1), in a fixed scrambled order (``n``).

    Computed once per (shape, n): an acquisition optimizer draws from the same posterior shape
    thousands of times."""
    return _gamma_quantiles_cpu(float(shape), int(n)).to(device=device, dtype=dtype)


class StudentTPosterior(GPyTorchPosterior):
    """Student-t posterior: moment-matched Gaussian ``distribution``, Student-t samples.

    Args:
        mvn: The moment-matched Gaussian ``N(mu0, E[s] Sigma0)`` over ``batch x q`` points.
        alpha: Shape of the scale posterior ``IG(alpha, beta)`` (a float; ``alpha > 1``).
        beta: Rate of the scale posterior: a tensor of the model's batch shape (broadcast against
            the posterior's batch shape from the right).
    """

    def __init__(self, mvn: MultivariateNormal, alpha: float, beta: Tensor) -> None:
        super().__init__(distribution=mvn)
        self.alpha = float(alpha)
        self.beta = beta

    @property
    def df(self) -> float:
        """Degrees of freedom of the Student-t predictive, ``2 alpha``."""
        return 2.0 * self.alpha

    def _scale_ratio(self, s: Tensor) -> Tensor:
        """``sqrt(s / E[s])`` for scale draws ``s`` of shape ``N x batch``."""
        mean_s = self.beta / (self.alpha - 1.0)
        return (s / mean_s).sqrt()

    def rsample_from_base_samples(self, sample_shape: torch.Size, base_samples: Tensor) -> Tensor:
        """Student-t draws from fixed normal base samples (``sample_shape x batch x q x 1``).

        The scale of draw ``i`` is the ``i``-th stratified quantile of the scale posterior (fixed
        for a given number of draws), so the result is deterministic in the base samples.
        """
        gauss = super().rsample_from_base_samples(sample_shape, base_samples)
        n = sample_shape.numel()
        g = _gamma_quantiles(self.alpha, n, gauss.device, gauss.dtype)  # n
        batch = self.beta.shape
        s = self.beta.unsqueeze(0) / g.reshape((n,) + (1,) * len(batch))  # n x model batch
        ratio = self._scale_ratio(s).reshape(tuple(sample_shape) + tuple(batch))
        return self._apply_shaped(gauss, ratio, len(sample_shape))

    def rsample(self, sample_shape: torch.Size | None = None) -> Tensor:
        """Random Student-t draws: ``sample_shape x batch x q x 1``."""
        sample_shape = torch.Size([1]) if sample_shape is None else torch.Size(sample_shape)
        gauss = super().rsample(sample_shape)
        batch = self.beta.shape
        conc = torch.full(
            tuple(sample_shape) + tuple(batch), self.alpha, dtype=gauss.dtype, device=gauss.device
        )
        g = torch.distributions.Gamma(conc, torch.ones_like(conc)).sample()
        ratio = self._scale_ratio(self.beta / g)
        return self._apply_shaped(gauss, ratio, len(sample_shape))

    def _apply_shaped(self, gauss: Tensor, ratio: Tensor, n_sample_dims: int) -> Tensor:
        """``ratio`` has ``sample_shape x model batch``; insert the posterior's extra batch dims."""
        extra = gauss.dim() - 2 - ratio.dim()  # batch dims of X beyond the model's batch
        shape = ratio.shape[:n_sample_dims] + (1,) * extra + ratio.shape[n_sample_dims:] + (1, 1)
        return self.mean + (gauss - self.mean) * ratio.reshape(shape)


def student_t_log_marginal(r: Tensor, K: Tensor, alpha: float, beta: float) -> Tensor:
    """Log density of residuals ``r`` (``batch x n``) under ``t_{2 alpha}(0, (beta/alpha) K)``.

    Args:
        r: ``batch x n`` residuals ``y - m``.
        K: ``batch x n x n`` unit-scale covariance ``K0 + tau I``.

    Returns:
        ``batch`` log marginal likelihoods.
    """
    n = r.shape[-1]
    L = psd_safe_cholesky(K)
    v = torch.linalg.solve_triangular(L, r.unsqueeze(-1), upper=False).squeeze(-1)
    quad = (v**2).sum(-1)
    logdet = 2.0 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
    a_n = alpha + n / 2.0
    return (
        math.lgamma(a_n)
        - math.lgamma(alpha)
        - 0.5 * n * math.log(2.0 * math.pi * beta)
        - 0.5 * logdet
        - a_n * torch.log1p(quad / (2.0 * beta))
    )


class StudentTProcessModel(Model):
    """The Student-t process posterior as a botorch model (see the module docstring).

    Args:
        kernel: The NNGP kernel ``K0`` (its parameters are not trained here).
        mean: Constant prior mean ``m``.
        train_X: ``batch x n x d`` (or ``n x d``) inputs.
        train_Y: ``batch x n x 1`` (or ``n x 1``) outcomes.
        noise: ``batch x n`` (or ``n``) noise ratios ``tau_i`` relative to the scale ``s``.
        alpha: Prior shape of ``s``.
        beta: Prior rate of ``s``.
        tau: The fitted noise ratio, used for fantasy observations and ``observation_noise=True``.
    """

    _num_outputs = 1

    def __init__(
        self,
        kernel: InfiniteWidthBNNKernel,
        mean: float,
        train_X: Tensor,
        train_Y: Tensor,
        noise: Tensor,
        alpha: float,
        beta: float,
        tau: float,
    ) -> None:
        super().__init__()
        self.kernel = kernel
        self.mean_constant = float(mean)
        self.train_X = train_X
        self.train_Y = train_Y
        self.noise = noise
        self.prior_alpha = float(alpha)
        self.prior_beta = float(beta)
        self.tau = float(tau)
        K = self._k(train_X, train_X) + torch.diag_embed(noise)
        self._L = psd_safe_cholesky(K)
        r = (train_Y[..., 0] - self.mean_constant).unsqueeze(-1)  # batch x n x 1
        self._alpha_vec = torch.cholesky_solve(r, self._L)  # batch x n x 1: K^-1 r
        quad = (r * self._alpha_vec).sum(dim=(-2, -1))  # batch
        n = train_X.shape[-2]
        self.post_alpha = self.prior_alpha + n / 2.0
        self.post_beta = self.prior_beta + 0.5 * quad  # batch

    def _k(self, x1: Tensor, x2: Tensor) -> Tensor:
        return self.kernel.forward(x1, x2)

    @property
    def num_outputs(self) -> int:
        return 1

    @property
    def batch_shape(self) -> torch.Size:
        """The batch shape of the training data (empty unless conditioned on batched data)."""
        return self.train_X.shape[:-2]

    @property
    def expected_scale(self) -> Tensor:
        """``E[s | y]`` (model batch shape)."""
        return self.post_beta / (self.post_alpha - 1.0)

    def forward(self, X: Tensor) -> MultivariateNormal:
        """The moment-matched latent Gaussian at ``X`` (``batch x q x d``), as gpytorch models give
        (GIBBON reads joint covariances with pending points from ``model(X)``)."""
        return self.posterior(X).distribution

    def posterior(
        self,
        X: Tensor,
        output_indices: list[int] | None = None,
        observation_noise: bool | Tensor = False,
        posterior_transform: Any = None,
        **kwargs: Any,
    ) -> StudentTPosterior:
        """The Student-t posterior at ``X`` (``batch x q x d``) over ``batch x q x 1`` outcomes.

        ``batch`` must broadcast with the model's batch shape (which it extends from the left).
        """
        if output_indices not in (None, [0]):
            raise ValueError("single-output model: output_indices must be None or [0]")
        n, d = self.train_X.shape[-2:]
        bs = torch.broadcast_shapes(X.shape[:-2], self.batch_shape)
        Xt = self.train_X.expand((*bs, n, d))
        L = self._L.expand((*bs, n, n))
        k_star = self._k(Xt, X.expand(bs + X.shape[-2:]))  # bs x n x q
        mean = self.mean_constant + (k_star * self._alpha_vec.expand((*bs, n, 1))).sum(-2)
        v = torch.linalg.solve_triangular(L, k_star, upper=False)  # bs x n x q
        cov0 = self._k(X, X).expand((*bs, X.shape[-2], X.shape[-2])) - v.transpose(-1, -2) @ v
        if observation_noise is not False:
            q = X.shape[-2]
            if isinstance(observation_noise, Tensor):
                extra = observation_noise[..., 0].expand((*bs, q)) / self.expected_scale.reshape(
                    (*self.batch_shape, 1)
                )
            else:
                extra = torch.full((*bs, q), self.tau, dtype=X.dtype, device=X.device)
            cov0 = cov0 + torch.diag_embed(extra)
        # round-off can leave tiny negative variances where X sits on a training point: clamp the
        # diagonal; the (lazy) covariance is factorized with gpytorch's jittered Cholesky
        cov0 = 0.5 * (cov0 + cov0.transpose(-1, -2))
        diag = torch.diagonal(cov0, dim1=-2, dim2=-1)
        cov0 = cov0 + torch.diag_embed(diag.clamp_min(1e-10) - diag)
        scale = self.expected_scale.reshape((*self.batch_shape, 1, 1))
        mvn = MultivariateNormal(mean, to_linear_operator(scale * cov0))
        post = StudentTPosterior(mvn, self.post_alpha, self.post_beta)
        if posterior_transform is not None:
            return posterior_transform(post)
        return post

    def condition_on_observations(
        self, X: Tensor, Y: Tensor, noise: Tensor | None = None, **kwargs: Any
    ) -> StudentTProcessModel:
        """Append observations and recompute the posterior.

        Args:
            X: ``batch x n' x d`` inputs.
            Y: ``batch x n' x 1`` outcomes (standardized units).
            noise: Optional ``batch x n' x 1`` observation noise variances in standardized units
                (divided by ``E[s | y]`` to become noise ratios); None uses the fitted ratio.

        Returns:
            A model with batch shape ``broadcast(batch, self.batch_shape)``.
        """
        n, d = self.train_X.shape[-2:]
        bs = torch.broadcast_shapes(X.shape[:-2], Y.shape[:-2], self.batch_shape)
        X_all = torch.cat([self.train_X.expand((*bs, n, d)), X.expand(bs + X.shape[-2:])], -2)
        Y_all = torch.cat([self.train_Y.expand((*bs, n, 1)), Y.expand(bs + Y.shape[-2:])], -2)
        if noise is None:
            new_noise = torch.full((*bs, X.shape[-2]), self.tau, dtype=X.dtype, device=X.device)
        else:
            scale = self.expected_scale.reshape((*self.batch_shape, 1))
            new_noise = (noise[..., 0] / scale).expand((*bs, X.shape[-2]))
        noise_all = torch.cat([self.noise.expand((*bs, n)), new_noise.clamp_min(_MIN_NOISE)], -1)
        return StudentTProcessModel(
            self.kernel,
            self.mean_constant,
            X_all,
            Y_all,
            noise_all,
            self.prior_alpha,
            self.prior_beta,
            self.tau,
        )

    def fantasize(
        self, X: Tensor, sampler: Any, observation_noise: Tensor | None = None, **kwargs: Any
    ) -> StudentTProcessModel:
        """A fantasy model: Student-t draws of noisy observations at ``X`` appended to the data.

        Args:
            X: ``batch x q x d`` points.
            sampler: A botorch MC sampler; its ``sample_shape`` is the number of fantasies ``nf``.

        Returns:
            A model of batch shape ``nf x batch``.
        """
        post = self.posterior(
            X, observation_noise=True if observation_noise is None else observation_noise
        )
        Y = sampler(post)  # nf x batch x q x 1
        return self.condition_on_observations(X, Y, noise=observation_noise)


@register_surrogate("ibnn-t")
@dataclass
class IBNNT(IBNN):
    """Student-t process with the infinite-width ReLU BNN kernel (scale mixture of the NNGP).

    The kernel settings (depth, variances, ``fit_variances``) and their checks are ``ibnn``'s."""

    description = (
        "Student-t scale mixture of the NNGP (inverse-gamma last-layer scale; heavy-tailed ibnn)"
    )
    capabilities = frozenset({"fantasize", "gaussian", "condition"})

    alpha: float = 2.0
    beta: float = 2.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.alpha <= 1 or self.beta <= 0:
            raise ValueError("alpha must be > 1 (a finite predictive variance) and beta > 0")

    def fit(self, train_X: Tensor, train_Y: Tensor, cat_dims: Sequence[int] = ()) -> Model:
        """Fit the mean and noise ratio (and optionally the variances) by the t marginal likelihood.

        Args:
            train_X: ``n x d`` inputs in the unit cube; categorical columns are treated as ordinal.
            train_Y: ``n x m`` standardized outcomes.

        Returns:
            A ``StudentTProcessModel`` (``m == 1``) or an ``OutcomeModelList`` of one per outcome.
        """
        model, self.diagnostics = fit_per_outcome(
            lambda y: self._fit_one_t(train_X, y), train_Y, gpytorch=False
        )
        return model

    def _fit_one_t(
        self, train_X: Tensor, train_Y: Tensor
    ) -> tuple[StudentTProcessModel, dict[str, Any]]:
        """One outcome (``train_Y``: ``n x 1``): the model and its diagnostics."""
        kernel = self.kernel(train_X)
        y = train_Y[..., 0]
        n = y.shape[-1]
        eye = torch.eye(n, dtype=train_X.dtype, device=train_X.device)
        mean = torch.nn.Parameter(y.mean().detach().clone())
        log_tau = torch.nn.Parameter(torch.tensor(math.log(0.01)).to(train_X))
        params = [mean, log_tau]
        if self.fit_variances:
            params += [kernel.raw_weight_var, kernel.raw_bias_var]

        K0 = None if self.fit_variances else kernel.forward(train_X, train_X).detach()

        def loss() -> Tensor:
            tau = _MIN_NOISE + log_tau.exp()
            K = (kernel.forward(train_X, train_X) if K0 is None else K0) + tau * eye
            return -student_t_log_marginal(y - mean, K, self.alpha, self.beta) / n

        status, error = "ok", None
        opt = torch.optim.LBFGS(params, lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

        def closure() -> Tensor:
            opt.zero_grad()
            value = loss()
            value.backward()
            return value

        start = [p.detach().clone() for p in params]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                opt.step(closure)
            if not torch.isfinite(loss()):
                raise RuntimeError("non-finite marginal likelihood after fitting")
        except RuntimeError as e:  # a Cholesky failure mid-search: keep the starting values
            status, error = "prior", str(e)
            with torch.no_grad():
                for p, s in zip(params, start, strict=True):
                    p.copy_(s)
        with torch.no_grad():
            log_tau.clamp_(max=math.log(10.0))
        tau = float(_MIN_NOISE + log_tau.detach().exp())
        kernel.requires_grad_(False)
        model = StudentTProcessModel(
            kernel,
            float(mean.detach()),
            train_X,
            train_Y,
            torch.full((n,), tau, dtype=train_X.dtype, device=train_X.device),
            self.alpha,
            self.beta,
            tau,
        )
        diagnostics = {
            "fit_status": status,
            "fit_error": error,
            "noise_ratio": tau,
            "mean": float(mean.detach()),
            "df": 2.0 * model.post_alpha,
            "expected_scale": float(model.expected_scale),
            "weight_var": float(kernel.weight_var.reshape(-1)[0]),
            "bias_var": float(kernel.bias_var.reshape(-1)[0]),
        }
        return model, diagnostics
