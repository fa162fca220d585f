"""PFN: a prior-data fitted transformer trained by bocli on a GP prior (``bocli pfn train``).

``fit`` does no learning: the transformer reads the observations as its context and predicts, for any
query point, a discretized ("bar") distribution over the outcome with half-normal tails. The returned
botorch model gives, per query point:

- mean, variance, quantiles, CDF and log density of that distribution;
- closed-form (log) EI, PI and UCB (``closed_form_ei`` is set, so ``ei`` at q = 1 scores it exactly);
- samples by the inverse CDF of Sobol/IID normal base samples (pushed through the normal CDF), so MC
  acquisitions and ``ts`` work and are differentiable in X. The PFN predicts *marginals* only: the q
  points of a joint sample are independent given the context (an approximation for q > 1);
- ``fantasize`` by appending fantasy points to the context (a batch of contexts), for ``kg``.

With ``power_transform`` (default), the outcomes are Yeo-Johnson transformed and re-standardized
before they become the context, as in PFNs4BO. The posterior then lives in that transformed space: a
monotone map, so quantile-based UCB and Thompson-sampling rankings are unchanged; closed-form EI maps
the incumbent ``best_f`` into it (EI in the transformed space, as PFNs4BO scores it).

Device and dtype: the transformer runs on the data's device (copied there once per process) in
float32, the precision it was trained in; its logits are cast to the query's dtype, so the posterior
(moments, samples, closed-form EI) and its gradients are in the run's dtype like every other
surrogate's.

The predictive distribution is that of a *noisy* observation (the prior's targets are noisy); the
``observation_noise`` flag of ``posterior`` is accepted and ignored.

Several outcomes (``train_Y``: ``n x m``, ``m > 1``): the transformer is single-output, so each
outcome gets its own context (its own power transform and, beyond the context limit, its own
subsample) and its own ``PFNModel``; they are combined into a ``PFNModelList`` (a botorch
``ModelList``) whose posterior, a ``PFNPosteriorList``, stacks the outcomes (mean ``batch x q x m``,
samples ``sample x batch x q x m``; outcomes independent given their contexts) and maps each back with
``data_moments``. MC acquisitions (hypervolume improvement, ParEGO, outcome constraints) work with it;
``fantasize`` fantasizes every outcome at ``X``. Closed-form EI is single-output only.

Limits (stored in the checkpoint): at most ``max_dim`` inputs (refused beyond, with a one-line
error), at most ``max_context`` observations: with more, the context is subsampled to the limit
(the best quarter by outcome plus a seeded random rest) with a warning, or refused with
``context=error``. Categorical inputs are read as ordinal values.
"""

from __future__ import annotations

import copy
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from botorch.exceptions.errors import UnsupportedError
from botorch.models.model import Model, ModelList
from botorch.posteriors.posterior import Posterior
from botorch.posteriors.posterior_list import PosteriorList
from botorch.sampling.base import MCSampler
from botorch.sampling.get_sampler import GetSampler
from botorch.sampling.normal import IIDNormalSampler, SobolQMCNormalSampler
from torch import Tensor
from torch.quasirandom import SobolEngine

from bocli.errors import UserError
from surrogates.base import Surrogate
from surrogates.pfn_net import bar
from surrogates.pfn_net.io import load_checkpoint
from surrogates.pfn_net.model import PFNTransformer, standardize_context
from surrogates.registry import register_surrogate

__all__ = ["PFN", "PFNLimitError", "PFNModel", "PFNModelList", "PFNPosterior", "PFNPosteriorList"]

log = logging.getLogger(__name__)


class PFNLimitError(UserError, ValueError):
    """The data exceed what the PFN checkpoint was trained for (dimension or context size)."""


class PFNContextWarning(UserWarning):
    """More observations than the checkpoint's context limit: the context was subsampled."""


# ----- posterior ------------------------------------------------------------------------------------
class PFNPosterior(Posterior):
    """Independent bar distributions over ``batch x q`` points, in the model's outcome units.

    Args:
        logits: ``batch x q x K`` bucket logits over the context-standardized outcome.
        borders: ``K + 1`` bucket borders (standardized units).
        loc, scale: the context standardization, broadcastable to ``batch x q``:
            ``y = loc + scale * z``.
    """

    def __init__(
        self,
        logits: Tensor,
        borders: Tensor,
        loc: Tensor,
        scale: Tensor,
        incumbent_map: YeoJohnson | None = None,
    ) -> None:
        self.incumbent_map = incumbent_map
        self.logits = logits
        self.borders = borders.to(device=logits.device, dtype=logits.dtype)
        shape = logits.shape[:-1]
        self.loc = torch.as_tensor(loc).to(logits).expand(shape)
        self.scale = torch.as_tensor(scale).to(logits).expand(shape)

    # --- shapes -------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.logits.device

    @property
    def dtype(self) -> torch.dtype:
        return self.logits.dtype

    @property
    def batch_shape(self) -> torch.Size:
        return self.logits.shape[:-2]

    @property
    def base_sample_shape(self) -> torch.Size:
        return self.logits.shape[:-1] + torch.Size([1])

    @property
    def batch_range(self) -> tuple[int, int]:
        return (0, -2)

    def _extended_shape(self, sample_shape: torch.Size = torch.Size()) -> torch.Size:
        return torch.Size(sample_shape) + self.base_sample_shape

    # --- moments and distribution functions (``batch x q x 1``) ----------------------------------
    @property
    def mean(self) -> Tensor:
        return (self.loc + self.scale * bar.mean(self.borders, self.logits)).unsqueeze(-1)

    @property
    def variance(self) -> Tensor:
        return (self.scale.square() * bar.variance(self.borders, self.logits)).unsqueeze(-1)

    def data_moments(self, points: int = 512) -> tuple[Tensor, Tensor]:
        """Mean and variance (each ``batch x q x 1``) in the units the engine trained the model
        on. ``mean``/``variance`` are those of the model's own outcome, which with a power
        transform is the Yeo-Johnson-transformed one; here the distribution is mapped back
        through the inverse transform (midpoint quadrature over ``points`` quantiles, so the
        tails beyond the ``1 / (2 points)`` quantiles, which the transform may stretch far, are
        left out of the variance)."""
        if self.incumbent_map is None:
            return self.mean, self.variance
        u = (torch.arange(points, dtype=self.dtype, device=self.device) + 0.5) / points
        u = u.view(points, *([1] * (self.logits.dim() - 1))).expand(points, *self.logits.shape[:-1])
        y = self.incumbent_map.inverse(
            self.loc + self.scale * bar.icdf(self.borders, self.logits, u)
        )
        return y.mean(0).unsqueeze(-1), y.var(0, unbiased=False).unsqueeze(-1)

    def _z(self, value: Tensor | float) -> Tensor:
        v = torch.as_tensor(value, dtype=self.dtype, device=self.device)
        return (v - self.loc) / self.scale

    def quantile(self, value: Tensor | float) -> Tensor:
        """Quantiles at probabilities ``value`` (broadcast against ``batch x q``) -> ``batch x q x 1``."""
        u = torch.as_tensor(value, dtype=self.dtype, device=self.device)
        return (self.loc + self.scale * bar.icdf(self.borders, self.logits, u)).unsqueeze(-1)

    def cdf(self, value: Tensor | float) -> Tensor:
        """``batch x q`` P(Y <= value)."""
        return bar.cdf(self.borders, self.logits, self._z(value))

    def log_prob(self, value: Tensor) -> Tensor:
        """``batch x q`` log density of ``value`` (``batch x q`` or ``batch x q x 1``)."""
        if value.dim() == self.logits.dim() and value.shape[-1] == 1:
            value = value.squeeze(-1)
        return bar.log_prob(self.borders, self.logits, self._z(value)) - self.scale.log()

    def density(self, value: Tensor) -> Tensor:
        return self.log_prob(value).exp()

    # --- closed-form acquisitions (maximization), ``batch x q`` --------------------------------
    def log_expected_improvement(self, best_f: Tensor | float) -> Tensor:
        """Stable log E[max(Y - best_f, 0)]. With a power transform, ``best_f`` is given in the
        engine's units and mapped into the model's (PFNs4BO: EI in the transformed space)."""
        if self.incumbent_map is not None:
            best_f = self.incumbent_map(
                torch.as_tensor(best_f, dtype=self.dtype, device=self.device)
            )
        return self.scale.log() + bar.log_expected_improvement(
            self.borders, self.logits, self._z(best_f)
        )

    def expected_improvement(self, best_f: Tensor | float) -> Tensor:
        return self.log_expected_improvement(best_f).exp()

    def probability_of_improvement(self, best_f: Tensor | float) -> Tensor:
        """P(Y > best_f)."""
        return 1.0 - self.cdf(best_f)

    def upper_confidence_bound(self, rest_prob: float = 0.05) -> Tensor:
        """The ``1 - rest_prob`` quantile (PFNs4BO's UCB; 0.159 matches beta = 1 for a normal)."""
        return self.quantile(1.0 - rest_prob).squeeze(-1)

    # --- sampling ------------------------------------------------------------------------------
    def rsample_from_base_samples(self, sample_shape: torch.Size, base_samples: Tensor) -> Tensor:
        """Inverse-CDF samples from standard-normal base samples ``sample_shape x batch x q x 1``;
        differentiable in the logits (hence in X)."""
        u = torch.special.ndtr(base_samples.to(self.logits).squeeze(-1))
        z = bar.icdf(self.borders, self.logits, u)
        return (self.loc + self.scale * z).unsqueeze(-1)

    def rsample(self, sample_shape: torch.Size | None = None) -> Tensor:
        """``sample_shape x batch x q x 1`` samples."""
        sample_shape = torch.Size(sample_shape or torch.Size([1]))
        base = torch.randn(self._extended_shape(sample_shape), dtype=self.dtype, device=self.device)
        return self.rsample_from_base_samples(sample_shape, base)


@GetSampler.register(PFNPosterior)
def _get_pfn_sampler(
    posterior: PFNPosterior, sample_shape: torch.Size, *, seed: int | None = None
) -> MCSampler:
    """Sobol normal base samples (fixed, so SAA optimization is deterministic); IID beyond Sobol's
    dimension limit."""
    sampler = SobolQMCNormalSampler(sample_shape=sample_shape, seed=seed)
    collapsed = sampler._get_collapsed_shape(posterior=posterior)[len(sample_shape) :]
    if collapsed.numel() > SobolEngine.MAXDIM:
        return IIDNormalSampler(sample_shape=sample_shape, seed=seed)
    return sampler


# ----- model ------------------------------------------------------------------------------------------
class PFNModel(Model):
    """A botorch Model whose predictions are the PFN's, conditioned on a (batch of) context(s).

    Args:
        net: The transformer (eval mode, frozen).
        train_X: ``C x n x d`` context inputs (``C`` a possibly empty batch shape).
        train_Y: ``C x n x 1`` context outcomes.
    """

    closed_form_ei = True
    _num_outputs = 1

    def __init__(
        self,
        net: PFNTransformer,
        train_X: Tensor,
        train_Y: Tensor,
        y_transform: YeoJohnson | None = None,
    ) -> None:
        super().__init__()
        self.y_transform = y_transform
        # not a registered submodule: acquisitions call ``.to(X)`` on the model, which must not cast
        # the shared float32 network
        object.__setattr__(self, "net", net)
        self.train_inputs = (train_X,)
        self.train_targets = train_Y.squeeze(-1)
        self._context_shape = train_X.shape[:-2]
        self.loc, self.scale = standardize_context(self.train_targets)
        self._d = train_X.shape[-1]
        flat_X = train_X.reshape(-1, *train_X.shape[-2:])
        z = (self.train_targets - self.loc.unsqueeze(-1)) / self.scale.unsqueeze(-1)
        # per-layer keys/values of the context(s): computed once, attended to by every query
        self._kvs = net.encode_context(flat_X, z.reshape(-1, z.shape[-1]), self._d)

    @property
    def num_outputs(self) -> int:
        return 1

    @property
    def batch_shape(self) -> torch.Size:
        return self._context_shape

    def posterior(
        self,
        X: Tensor,
        output_indices: list[int] | None = None,
        observation_noise: bool | Tensor = False,
        posterior_transform: Any = None,
        **kwargs: Any,
    ) -> PFNPosterior:
        """``batch x q x d`` -> posterior over ``broadcast(batch, model batch) x q x 1`` (noisy
        observations; ``observation_noise`` is ignored)."""
        if posterior_transform is not None:
            raise UnsupportedError(
                "the PFN model has a single output; posterior_transform is not supported"
            )
        if output_indices not in (None, [0]):
            raise UnsupportedError("the PFN model has a single output")
        X = self.transform_inputs(X)
        if X.dim() == 1:
            X = X.unsqueeze(0)
        q, d = X.shape[-2:]
        C = self._context_shape
        if len(C) == 0:
            # one context: every query point of every batch attends to the same keys/values
            logits = self.net.query(self._kvs, X.reshape(1, -1, d), self._d)
            logits = logits.reshape(*X.shape[:-1], -1)
            loc, scale = self.loc, self.scale
        else:
            S = torch.broadcast_shapes(X.shape[:-2], C)
            Xs = X.expand(*S, q, d).reshape(-1, q, d)
            kvs = [
                tuple(
                    t.view(*C, *t.shape[1:]).expand(*S, *t.shape[1:]).reshape(-1, *t.shape[1:])
                    for t in kv
                )
                for kv in self._kvs
            ]
            logits = self.net.query(kvs, Xs, self._d).reshape(*S, q, -1)
            loc = self.loc.view(*C, 1).expand(*S, 1)
            scale = self.scale.view(*C, 1).expand(*S, 1)
        return PFNPosterior(logits.to(X.dtype), self.net.borders, loc, scale, self.y_transform)

    def fantasize(
        self, X: Tensor, sampler: MCSampler, observation_noise: Tensor | None = None, **kwargs: Any
    ) -> PFNModel:
        """Fantasy models: sample outcomes at ``X`` (``batch x q x d``) and append them to the context.

        Returns:
            A model with batch shape ``num_fantasies x broadcast(batch, model batch)``; the fantasy
            outcomes, hence its predictions, are differentiable in ``X``.
        """
        post = self.posterior(X)
        Y_f = sampler(post)  # nf x S x q x 1
        S = post.batch_shape
        nf = Y_f.shape[: Y_f.dim() - len(S) - 2]
        n = self.train_inputs[0].shape[-2]
        base_X = self.train_inputs[0].expand(*nf, *S, n, self._d)
        base_Y = self.train_targets.unsqueeze(-1).expand(*nf, *S, n, 1)
        new_X = torch.cat([base_X, X.expand(*nf, *S, *X.shape[-2:])], dim=-2)
        new_Y = torch.cat([base_Y, Y_f], dim=-2)
        return PFNModel(self.net, new_X, new_Y, self.y_transform)


class PFNPosteriorList(PosteriorList):
    """The posteriors of ``m`` outcomes (one ``PFNPosterior`` each), stacked on the last dim."""

    def data_moments(self, points: int = 512) -> tuple[Tensor, Tensor]:
        """Mean and variance (each ``batch x q x m``) in the units the engine trained the model
        on: each outcome's ``PFNPosterior.data_moments``, concatenated."""
        moments = [p.data_moments(points) for p in self.posteriors]
        return torch.cat([m for m, _ in moments], dim=-1), torch.cat(
            [v for _, v in moments], dim=-1
        )


class PFNModelList(ModelList):
    """``m`` single-output ``PFNModel`` s (one context per outcome) as one ``m``-output model."""

    def posterior(
        self,
        X: Tensor,
        output_indices: list[int] | None = None,
        observation_noise: bool | Tensor = False,
        posterior_transform: Any = None,
        **kwargs: Any,
    ) -> Posterior:
        """``batch x q x d`` -> a ``PFNPosteriorList`` over ``batch x q x m``."""
        post = super().posterior(X, output_indices=output_indices)
        post = PFNPosteriorList(*post.posteriors)
        if posterior_transform is not None:
            return posterior_transform(posterior=post, X=X)
        return post


# ----- surrogate ----------------------------------------------------------------------------------------
@register_surrogate("pfn")
@dataclass
class PFN(Surrogate):
    """Prior-data fitted transformer (see the module docstring).

    Settings:
        checkpoint: Path of a checkpoint from ``bocli pfn train`` (None: the shipped default).
        context: ``subsample`` (default) or ``error`` when there are more observations than the
            checkpoint's context limit.
    """

    description = (
        "prior-data fitted transformer on a GP prior (bar distribution; shipped checkpoint)"
    )
    capabilities = frozenset({"fantasize"})

    checkpoint: str | None = None
    context: str = "subsample"
    power_transform: bool = True
    diagnostics: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.context not in ("subsample", "error"):
            raise ValueError(f"context must be 'subsample' or 'error', got {self.context!r}")

    def check_space(self, space: Any = None) -> None:
        """Load the checkpoint (a missing, damaged or mismatched file is one line now, not at the
        first fit) and refuse a space with more parameters than it handles."""
        try:
            limits = self.limits()
        except UserError:
            raise
        except (KeyError, TypeError, ValueError, OSError) as e:
            # a config without the limits, or with values that are not numbers; a file that
            # vanished or cannot be read between the checks (out-of-memory is not caught)
            where = (
                "the shipped PFN checkpoint"
                if self.checkpoint is None
                else (f"PFN checkpoint '{self.checkpoint}'")
            )
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise PFNLimitError(f"{where} is not usable: {first[:160]}") from None
        if space is not None and space.dim > limits["max_dim"]:
            raise PFNLimitError(
                f"pfn: its checkpoint handles at most {limits['max_dim']} parameters; this space "
                f"has {space.dim}; train one with `bocli pfn train --max-dim {space.dim}` or "
                "choose another surrogate"
            )

    def limits(self) -> dict[str, int]:
        """``{"max_dim", "max_context"}`` of the checkpoint."""
        _, cfg = load_checkpoint(self.checkpoint)
        return {
            "max_dim": int(cfg["model"]["max_dim"]),
            "max_context": int(cfg["model"]["max_context"]),
        }

    def fit(self, train_X: Tensor, train_Y: Tensor, cat_dims: Sequence[int] = ()) -> Model:
        """``train_X``: ``n x d``; ``train_Y``: ``n x m``. Returns a ``PFNModel`` (``m == 1``) or a
        ``PFNModelList`` of one per outcome (``m > 1``; ``diagnostics`` merged per outcome)."""
        if train_Y.shape[-1] > 1:
            from surrogates.multi_output import merge_outcome_diagnostics

            models, diags = [], []
            for i in range(train_Y.shape[-1]):
                models.append(self._fit_one(train_X, train_Y[..., i : i + 1]))
                diags.append(self.diagnostics)
            self.diagnostics = merge_outcome_diagnostics(diags)
            return PFNModelList(*models)
        return self._fit_one(train_X, train_Y)

    def _fit_one(self, train_X: Tensor, train_Y: Tensor) -> PFNModel:
        """One outcome (``train_Y``: ``n x 1``); sets ``self.diagnostics``."""
        net, cfg = load_checkpoint(self.checkpoint)
        max_dim, max_ctx = cfg["model"]["max_dim"], cfg["model"]["max_context"]
        n, d = train_X.shape
        if d > max_dim:
            raise PFNLimitError(
                f"surrogate 'pfn': the checkpoint handles at most {max_dim} inputs, this space has {d} "
                f"(use another surrogate, or train one with `bocli pfn train --max-dim {d}`)"
            )
        self.diagnostics = {"context": n, "max_context": max_ctx}
        if n > max_ctx:
            if self.context == "error":
                raise PFNLimitError(
                    f"surrogate 'pfn': {n} observations exceed the checkpoint's context limit of "
                    f"{max_ctx} (use --surrogate-option context=subsample, or another surrogate)"
                )
            idx = subsample_context(train_Y.squeeze(-1), max_ctx)
            train_X, train_Y = train_X[idx], train_Y[idx]
            self.diagnostics["context_subsampled"] = True
            msg = (
                f"pfn: {n} observations exceed the context limit {max_ctx}; "
                f"using the best {max_ctx // 4} and {max_ctx - max_ctx // 4} random others"
            )
            log.warning(msg)
            warnings.warn(msg, PFNContextWarning, stacklevel=2)
        net = _net_on(net, train_X.device)
        y_map = None
        if self.power_transform:
            y_map = YeoJohnson.fit(train_Y.squeeze(-1))
            train_Y = y_map(train_Y)
            self.diagnostics["yeo_johnson_lambda"] = y_map.lmbda
        return PFNModel(net, train_X, train_Y, y_map)


_ON_DEVICE: dict[tuple[int, str], tuple[PFNTransformer, PFNTransformer]] = {}


def _net_on(net: PFNTransformer, device: torch.device) -> PFNTransformer:
    """The (cached, CPU-loaded) network on ``device``: copied there once per process, not per fit.
    The network stays float32 (its trained precision); its outputs are cast to the query's dtype."""
    if net.borders.device == device:
        return net
    key = (id(net), str(device))
    hit = _ON_DEVICE.get(key)
    if hit is None or hit[0] is not net:
        hit = (net, copy.deepcopy(net).to(device))
        _ON_DEVICE[key] = hit
    return hit[1]


@dataclass(frozen=True)
class YeoJohnson:
    """A Yeo-Johnson power transform followed by standardization (as PFNs4BO applies to y)."""

    lmbda: float
    mean: float
    std: float
    lo: float = -math.inf  # the range of the outcomes it was fitted to (bounds ``inverse``)
    hi: float = math.inf

    @classmethod
    def fit(cls, y: Tensor) -> YeoJohnson:
        """Maximum-likelihood ``lambda`` on ``n`` outcomes (identity if the fit fails)."""
        import numpy as np
        from scipy import stats

        v = y.detach().cpu().double().numpy()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                lmbda = float(np.clip(stats.yeojohnson_normmax(v), -2.0, 4.0))
        except (ValueError, FloatingPointError, RuntimeError):
            lmbda = 1.0
        if not np.isfinite(lmbda):
            lmbda = 1.0
        t = cls._raw(torch.as_tensor(v), lmbda)
        std = float(t.std()) if t.numel() > 1 else 1.0
        lo, hi = (float(v.min()), float(v.max())) if v.size else (-math.inf, math.inf)
        if not math.isfinite(std) or std < 1e-12:
            sd = float(v.std()) if float(v.std()) > 1e-12 else 1.0
            return cls(1.0, float(v.mean()), sd, lo, hi)
        return cls(lmbda, float(t.mean()), std, lo, hi)

    @staticmethod
    def _raw(y: Tensor, lmbda: float) -> Tensor:
        pos = y >= 0
        yp, yn = y.clamp_min(0), y.clamp_max(0)
        tp = torch.log1p(yp) if abs(lmbda) < 1e-08 else ((1 + yp) ** lmbda - 1) / lmbda
        if abs(lmbda - 2) < 1e-8:
            tn = -torch.log1p(-yn)
        else:
            tn = -((1 - yn) ** (2 - lmbda) - 1) / (2 - lmbda)
        return torch.where(pos, tp, tn)

    def __call__(self, y: Tensor) -> Tensor:
        """Transform (any shape, differentiable)."""
        return (self._raw(y, self.lmbda) - self.mean) / self.std

    def inverse(self, t: Tensor) -> Tensor:
        """Back to the outcome's units (any shape): ``inverse(self(y)) == y``. Values beyond
        what the transform can reach (its range is bounded for some lambda) are clamped to it."""
        raw = t * self.std + self.mean
        lm = self.lmbda
        rp, rn = raw.clamp_min(0), raw.clamp_max(0)

        def power(base: Tensor, exponent: float) -> Tensor:
            return base.clamp_min(1e-12) ** exponent

        near_0, near_2 = abs(lm) < 1e-8, abs(lm - 2) < 1e-8
        yp = torch.expm1(rp) if near_0 else power(rp * lm + 1, 1 / lm) - 1
        yn = -torch.expm1(-rn) if near_2 else 1 - power(1 - (2 - lm) * rn, 1 / (2 - lm))
        y = torch.where(raw >= 0, yp, yn)
        # a bar-distribution quantile past what the transform can reach maps to +-inf (or 1e30
        # through the clamp above: pfn's mean on Hartmann3 was 1e30): keep the back-transformed
        # outcome within three times the observed range beyond it
        pad = 3.0 * (self.hi - self.lo) if math.isfinite(self.hi - self.lo) else math.inf
        return y.clamp(self.lo - pad, self.hi + pad) if math.isfinite(pad) else y


def subsample_context(y: Tensor, size: int) -> Tensor:
    """Indices of ``size`` of the ``n`` observations ``y`` (``n``): the best ``size // 4`` by outcome
    and a random (torch RNG, seeded by the engine) sample of the others, in original order."""
    k_top = size // 4
    order = torch.argsort(y, descending=True)
    top, rest = order[:k_top], order[k_top:]
    pick = rest[torch.randperm(rest.numel(), device=y.device)[: size - k_top]]
    return torch.sort(torch.cat([top, pick])).values
