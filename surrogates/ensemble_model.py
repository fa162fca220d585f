"""A botorch model for surrogates whose predictive is a finite, weighted set of functions.

Deep ensembles (``surrogates/ensemble.py``) and Bayesian neural networks sampled by HMC
(``surrogates/hmc.py``) both end as ``s`` functions ``f_1 .. f_s`` (members / posterior samples) with
weights ``w`` and a Gaussian observation noise. ``SampleEnsembleModel`` turns such a set into a
botorch ``EnsembleModel`` and adds what botorch does not give an ensemble out of the box:

- **Outcomes.** A member is one function of all ``m`` outcomes (one network with ``m`` outputs, or
  one posterior draw of all its weights), so the model has ``num_outputs == m`` and a member is a
  joint draw of every outcome.
- **Posterior.** ``posterior(X)`` is a ``SampleEnsemblePosterior`` (an ``EnsemblePosterior``) with
  values ``batch x s x q x m``. MC acquisitions draw one member per sample (``IndexSampler``), the
  same member for all q points and all m outcomes, so a draw is one consistent (joint) function. ``mean`` and ``variance`` are the moments of the mixture
  ``sum_i w_i N(f_i(x), noise_i)`` per outcome: between-member variance plus noise (analytic acquisitions see
  this Gaussian moment match). Batched weights are handled correctly (botorch's own ``variance``
  sums ``w^2`` over all batch dimensions).
- **Fantasies** (knowledge gradient). ``fantasize(X, sampler)`` draws fantasy observations
  ``y = f_j(X) + sigma_f * eps`` (member ``j`` drawn from ``w`` by stratified sampling) and
  returns a copy whose weights are the Bayes update
  ``w_i' ∝ w_i prod_q prod_k N(y_qk; f_ik(x_q), sigma_f^2)`` (all outcomes observed at ``X``)
  (shape ``num_fantasies x batch x s``). The fantasy noise ``sigma_f^2`` is a fixed number and the
  draws come from a generator seeded by ``sampler.seed``, so the acquisition is a deterministic,
  differentiable function of ``X`` (one-shot KG optimizes it with L-BFGS).
- **Conditioning** (entropy search). ``condition_on_observations(X, Y)`` is the same reweighting with
  given observations.

Reweighting cannot move a member, only change how much it counts: the fantasy posterior lives on the
``s`` functions already there. With few members (or a tiny fantasy noise) one observation can
identify a member and the weights collapse; ``fantasy_noise_var`` (default: the model noise, at
least ``0.05`` in standardized units) keeps one fantasy observation from being decisive.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from botorch.models.ensemble import EnsembleModel
from botorch.posteriors.ensemble import EnsemblePosterior
from torch import Tensor

__all__ = ["DEFAULT_MIN_FANTASY_NOISE", "SampleEnsembleModel", "SampleEnsemblePosterior"]

DEFAULT_MIN_FANTASY_NOISE = 0.05


class SampleEnsemblePosterior(EnsemblePosterior):
    """An ensemble posterior with (possibly batched) member weights and observation noise.

    Args:
        values: ``batch x s x q x m`` member predictions.
        weights: ``s`` or ``batch' x s`` member weights (broadcastable to ``batch``), or None
            for uniform weights. Need not be normalized.
        noise_var: Observation noise variance: a float, a tensor of shape ``s`` (one per member),
            or ``s x m`` (one per member and outcome).
    """

    def __init__(
        self, values: Tensor, weights: Tensor | None = None, noise_var: Tensor | float = 0.0
    ) -> None:
        s = values.shape[-3]
        if weights is None:
            weights = torch.ones(s, dtype=values.dtype, device=values.device)
        weights = weights.to(values)
        batch = torch.broadcast_shapes(values.shape[:-3], weights.shape[:-1])
        values = values.expand(batch + values.shape[-3:])
        weights = weights.expand((*batch, s))
        super().__init__(values=values, weights=weights)
        self.noise_var = torch.as_tensor(noise_var, dtype=values.dtype, device=values.device)

    @property
    def weights(self) -> Tensor:
        """``batch x s`` normalized weights."""
        return self._normalized_weights

    @property
    def latent_variance(self) -> Tensor:
        """``batch x q x m`` weighted between-member variance (the spread of the functions)."""
        w = self.weights[..., None, None]
        return (w * (self.values - self.mean.unsqueeze(-3)) ** 2).sum(dim=-3)

    @property
    def noise_mean(self) -> Tensor:
        """Weighted mean noise variance: a scalar, ``batch x 1 x 1`` for per-member noise, or
        ``batch x 1 x m`` for per-member-and-outcome noise."""
        if self.noise_var.ndim == 0:
            return self.noise_var
        if self.noise_var.ndim == 2:  # s x m
            return (self.weights[..., None] * self.noise_var).sum(dim=-2).unsqueeze(-2)
        return (self.weights * self.noise_var).sum(dim=-1)[..., None, None]

    @property
    def variance(self) -> Tensor:
        """``batch x q x m`` variance of the mixture ``sum_i w_i N(f_i, noise_i)``."""
        return self.latent_variance + self.noise_mean

    @property
    def covariance_matrix(self) -> Tensor:
        """``batch x q x q`` moment-matched covariance over the q points (single output).

        ``sum_i w_i (f_i - mu)(f_i - mu)^T + noise I``; used by moment-matched entropy searches.
        Raises ``NotImplementedError`` for ``m > 1`` outcomes.
        """
        if self.values.shape[-1] != 1:
            raise NotImplementedError("covariance_matrix is defined for a single output only")
        w = self.weights[..., None]
        dev = (self.values - self.mean.unsqueeze(-3))[..., 0]  # batch x s x q
        cov = (w * dev).transpose(-1, -2) @ dev
        eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
        return cov + self.noise_mean * eye


class SampleEnsembleModel(EnsembleModel):
    """A botorch model over ``s`` weighted functions with Gaussian noise (see the module docstring).

    Args:
        forward_fn: Member predictions of the standardized outcomes, differentiable in ``X``:
            ``X: batch x n x d -> batch x s x n`` for one outcome (``num_outputs == 1``), or
            ``-> batch x s x n x m`` for ``m = num_outputs > 1``. It must accept any number of
            batch dimensions.
        num_members: ``s``.
        noise_var: Observation noise variance in standardized units: a float, an ``s`` tensor
            (per member), or (``m > 1``) an ``s x m`` tensor (per member and outcome).
        train_X: ``n x d`` training inputs (kept for acquisitions that need a baseline).
        train_Y: ``n x m`` training targets.
        weights: ``s`` (or ``batch x s`` for a fantasy model) member weights; uniform if None.
        fantasy_noise_var: Fixed noise of fantasy/conditioning observations (all outcomes); None
            means ``max(mean noise_var, 0.05)``.
        num_outputs: ``m``, the number of outcomes.
    """

    _num_outputs = 1

    def __init__(
        self,
        forward_fn: Callable[[Tensor], Tensor],
        num_members: int,
        noise_var: Tensor | float,
        train_X: Tensor,
        train_Y: Tensor,
        weights: Tensor | None = None,
        fantasy_noise_var: float | None = None,
        num_outputs: int = 1,
    ) -> None:
        if num_outputs < 1:
            raise ValueError(f"num_outputs must be at least 1, got {num_outputs}")
        if weights is not None and weights.shape[-1] != num_members:
            raise ValueError(f"weights have {weights.shape[-1]} members, expected {num_members}")
        super().__init__(weights=None if weights is None else weights.to(train_X))
        self.forward_fn = forward_fn
        self.num_members = int(num_members)
        self._num_outputs = int(num_outputs)
        self.noise_var = torch.as_tensor(noise_var).to(train_X)
        shape = tuple(self.noise_var.shape)
        if shape not in ((), (num_members,)) and not (
            num_outputs > 1 and shape == (num_members, num_outputs)
        ):
            raise ValueError(
                "noise_var must be a scalar, have one entry per member, or (several outputs) "
                "be members x outputs"
            )
        self.train_X = train_X
        self.train_Y = train_Y
        if fantasy_noise_var is None:
            fantasy_noise_var = max(float(self.noise_var.mean()), DEFAULT_MIN_FANTASY_NOISE)
        self.fantasy_noise_var = float(fantasy_noise_var)

    # ----- posterior ------------------------------------------------------------------------
    @property
    def batch_shape(self) -> torch.Size:
        """Empty for a fitted model; ``num_fantasies x batch`` for a fantasy model."""
        w = self.ensemble_weights
        return torch.Size([]) if w is None else w.shape[:-1]

    def forward(self, X: Tensor) -> Tensor:
        """``batch x n x d`` -> ``batch x s x n x m`` member predictions."""
        f = self.forward_fn(X)
        return f.unsqueeze(-1) if self._num_outputs == 1 else f

    def posterior(
        self,
        X: Tensor,
        output_indices: list[int] | None = None,
        observation_noise: bool | Tensor = False,
        posterior_transform: Any = None,
        **kwargs: Any,
    ) -> SampleEnsemblePosterior:
        """The mixture posterior at ``X`` (``batch x q x d``): values ``batch x s x q x m`` (or
        ``batch x s x q x len(output_indices)``).

        ``observation_noise`` is accepted for API compatibility; ``variance`` always includes the
        noise and samples are always member functions (latent draws).
        """
        values = self.forward(X)
        noise_var = self.noise_var
        if output_indices is not None:
            m = self._num_outputs
            if any(not -m <= i < m for i in output_indices):
                raise ValueError(f"output_indices {output_indices} out of range for {m} outputs")
            if list(output_indices) != list(range(m)):
                values = values[..., list(output_indices)]
                if noise_var.ndim == 2:
                    noise_var = noise_var[..., list(output_indices)]
        posterior = SampleEnsemblePosterior(values, self.ensemble_weights, noise_var)
        if posterior_transform is not None:
            return posterior_transform(posterior=posterior, X=X)
        return posterior

    # ----- reweighting ----------------------------------------------------------------------
    def _with_weights(self, weights: Tensor) -> SampleEnsembleModel:
        return SampleEnsembleModel(
            self.forward_fn,
            self.num_members,
            self.noise_var,
            self.train_X,
            self.train_Y,
            weights=weights,
            fantasy_noise_var=self.fantasy_noise_var,
            num_outputs=self._num_outputs,
        )

    def _log_weights(self) -> Tensor:
        w = self.ensemble_weights
        if w is None:
            return torch.full(
                (self.num_members,),
                -math.log(self.num_members),
                dtype=self.train_X.dtype,
                device=self.train_X.device,
            )
        return torch.log(w / w.sum(dim=-1, keepdim=True))

    def _reweight(self, f: Tensor, Y: Tensor, noise_var: Tensor | float) -> Tensor:
        """Posterior weights after observing ``Y`` (``... x q x m``) of members ``f``
        (``... x s x q x m``); ``noise_var`` a scalar or broadcastable to ``m``."""
        noise = torch.as_tensor(noise_var).to(f)
        sq = ((Y.unsqueeze(-3) - f) ** 2 / noise).sum(dim=-1)  # ... x s x q (sum over outcomes)
        loglik = -0.5 * sq.sum(dim=-1)  # ... x s
        logw = self._log_weights().to(f) + loglik
        return torch.softmax(logw, dim=-1)

    def condition_on_observations(
        self, X: Tensor, Y: Tensor, noise: Tensor | None = None, **kwargs: Any
    ) -> SampleEnsembleModel:
        """Condition on observations by Bayes reweighting of the members.

        Args:
            X: ``batch x n x d`` inputs.
            Y: ``batch x n x m`` observations (standardized).
            noise: Observation noise variance (a scalar, or ``batch x n x m``; its mean per
                outcome is used); None uses ``fantasy_noise_var``.

        Returns:
            A model with weights of shape ``batch x s``.
        """
        f = self.forward(X)  # batch x s x n x m
        if noise is None:
            nv: Tensor | float = self.fantasy_noise_var
        elif self._num_outputs == 1 or noise.ndim == 0:
            nv = noise.mean()
        else:
            nv = noise.reshape(-1, noise.shape[-1]).mean(dim=0)  # m
        return self._with_weights(self._reweight(f, Y, nv))

    def fantasize(
        self, X: Tensor, sampler: Any, observation_noise: Tensor | None = None, **kwargs: Any
    ) -> SampleEnsembleModel:
        """A fantasy model: members reweighted by sampled observations at ``X``.

        Args:
            X: ``batch x q x d`` points to fantasize at.
            sampler: Any botorch sampler; only ``sampler.sample_shape`` (the number of fantasies,
                ``nf``) and ``sampler.seed`` are used, since the draws here are member indices and
                fixed-noise normals.
            observation_noise: Ignored; the fixed ``fantasy_noise_var`` is used.

        Returns:
            A model with weights of shape ``nf x batch x s``: its posterior at
            ``nf x batch x q' x d`` has batch shape ``nf x batch``.
        """
        sample_shape = torch.Size(sampler.sample_shape)
        nf = sample_shape.numel()
        f = self.forward(X)  # batch x s x q x m
        batch, s, q, m = f.shape[:-3], f.shape[-3], f.shape[-2], f.shape[-1]
        seed = getattr(sampler, "seed", None)
        gen = torch.Generator().manual_seed(int(seed) if seed is not None else 0)
        # stratified uniforms -> member indices; shared by all t-batches so that the value of one
        # t-batch does not depend on which others are evaluated with it
        u = (
            torch.arange(nf, dtype=torch.float64)
            + torch.rand(nf, generator=gen, dtype=torch.float64)
        ) / nf
        u = u[torch.randperm(nf, generator=gen)]
        eps = torch.randn(nf, q, m, generator=gen, dtype=torch.float64).to(f)
        w = torch.softmax(self._log_weights().to(f), dim=-1).expand((*batch, s))
        cdf = w.cumsum(dim=-1).unsqueeze(0)  # 1 x batch x s
        u = u.to(f).reshape((nf,) + (1,) * (len(batch) + 1))
        j = (u > cdf).sum(dim=-1).clamp_max(s - 1)  # nf x batch
        f_exp = f.expand((nf, *f.shape))  # one member j per fantasy: all q points and outcomes
        f_j = f_exp.gather(-3, j[..., None, None, None].expand((*j.shape, 1, q, m))).squeeze(-3)
        sd = self.fantasy_noise_var**0.5
        y = f_j + sd * eps.reshape((nf,) + (1,) * len(batch) + (q, m))  # nf x batch x q x m
        weights = self._reweight(f.unsqueeze(0), y, self.fantasy_noise_var)  # nf x batch x s
        return self._with_weights(weights.reshape(sample_shape + batch + (s,)))
