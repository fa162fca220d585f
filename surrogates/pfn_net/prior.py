"""The GP prior the PFN is trained on, and the exact GP it is measured against.

Each dataset: a dimension ``d ~ U{1..max_dim}``, inputs ``x ~ U[0,1]^d`` (zero-padded to ``max_dim``),
a zero-mean Matérn-5/2 ARD GP with the HEBO+ hyperpriors of PFNs4BO (lengthscale ~ Gamma(1.2107,
1.5212), outputscale ~ Gamma(0.8452, 0.3994), noise variance ~ LogNormal(-4.63, 0.5)), and each input
unused with probability ``p_unused`` (at least one used). Sampled in float64 by batched Cholesky.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["GPBatch", "PriorConfig", "exact_gp_nll", "matern52", "sample_gp_batch"]


@dataclass(frozen=True)
class PriorConfig:
    """Hyperpriors of the GP prior (all Gamma as concentration/rate; noise as LogNormal(loc, scale))."""

    max_dim: int = 6
    ls_concentration: float = 1.2107
    ls_rate: float = 1.5212
    os_concentration: float = 0.8452
    os_rate: float = 0.3994
    noise_loc: float = -4.63
    noise_scale: float = 0.5
    p_unused: float = 0.3
    min_lengthscale: float = 0.02

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GPBatch:
    """A batch of ``b`` datasets of ``n`` points each.

    Attributes:
        x: ``b x n x max_dim`` inputs; columns ``>= dims[i]`` are zero.
        y: ``b x n`` noisy observations.
        dims: ``b`` number of input dimensions of each dataset.
        lengthscale: ``b x max_dim`` (``inf`` for unused or absent inputs).
        outputscale: ``b``.
        noise: ``b`` noise variances.
    """

    x: Tensor
    y: Tensor
    dims: Tensor
    lengthscale: Tensor
    outputscale: Tensor
    noise: Tensor


def matern52(x1: Tensor, x2: Tensor, lengthscale: Tensor, outputscale: Tensor) -> Tensor:
    """Matérn-5/2 ARD kernel.

    Args:
        x1: ``b x n x D``; x2: ``b x m x D``; lengthscale: ``b x D`` (inf drops an input);
        outputscale: ``b``.

    Returns:
        ``b x n x m`` covariance.
    """
    inv = (1.0 / lengthscale).unsqueeze(-2)
    r2 = torch.cdist(x1 * inv, x2 * inv).square()
    r = (5.0 * r2).clamp_min(1e-30).sqrt()
    return outputscale.view(-1, 1, 1) * (1.0 + r + r.square() / 3.0) * torch.exp(-r)


def sample_gp_batch(
    batch_size: int,
    num_points: int,
    prior: PriorConfig,
    generator: torch.Generator | None = None,
    dims: Tensor | None = None,
    device: torch.device | str = "cpu",
) -> GPBatch:
    """Draw ``batch_size`` datasets of ``num_points`` noisy observations from the GP prior.

    Args:
        dims: Optional ``batch_size`` fixed dimensions (default: uniform in ``1..max_dim``).
    """
    D = prior.max_dim
    kw: dict[str, Any] = {"dtype": torch.float64, "device": device}
    g = generator

    def gamma(conc: float, rate: float, shape: tuple[int, ...]) -> Tensor:
        # torch's Gamma has no generator argument: draw through the standard gamma of a seeded uniform
        # stream instead (Marsaglia-Tsang via torch._standard_gamma is not seedable by a generator)
        u = torch.rand(shape, generator=g, **kw).clamp(1e-12, 1 - 1e-12)
        import scipy.special as sps

        return torch.as_tensor(sps.gammaincinv(conc, u.cpu().numpy()), **kw) / rate

    if dims is None:
        dims = torch.randint(1, D + 1, (batch_size,), generator=g, device=device)
    dims = dims.to(device)
    col = torch.arange(D, device=device).unsqueeze(0)
    present = col < dims.unsqueeze(1)
    used = present & (torch.rand(batch_size, D, generator=g, **kw) >= prior.p_unused)
    # keep at least one input: the first present one if all were dropped
    none_used = ~used.any(dim=1)
    used[none_used, 0] = True
    ls = gamma(prior.ls_concentration, prior.ls_rate, (batch_size, D)).clamp_min(
        prior.min_lengthscale
    )
    ls = torch.where(used, ls, torch.full_like(ls, math.inf))
    os_ = gamma(prior.os_concentration, prior.os_rate, (batch_size,)).clamp_min(1e-3)
    noise = torch.exp(
        prior.noise_loc + prior.noise_scale * torch.randn(batch_size, generator=g, **kw)
    )
    x = torch.rand(batch_size, num_points, D, generator=g, **kw) * present.unsqueeze(1)
    K = matern52(x, x, ls, os_)
    eye = torch.eye(num_points, **kw)
    L, info = torch.linalg.cholesky_ex(K + (1e-8 * os_).view(-1, 1, 1) * eye)
    if bool((info > 0).any()):
        L = torch.linalg.cholesky(K + (1e-6 * os_).view(-1, 1, 1) * eye)
    z = torch.randn(batch_size, num_points, 1, generator=g, **kw)
    f = (L @ z).squeeze(-1)
    y = f + noise.sqrt().unsqueeze(-1) * torch.randn(batch_size, num_points, generator=g, **kw)
    return GPBatch(x=x, y=y, dims=dims, lengthscale=ls, outputscale=os_, noise=noise)


def exact_gp_nll(batch: GPBatch, n_ctx: int) -> Tensor:
    """Negative log predictive density of the noisy held-out targets under the exact GP with the true
    hyperparameters: the first ``n_ctx`` points are the context, the rest are the queries.

    Returns:
        ``b x (n - n_ctx)`` per-point NLL (in the raw units of ``batch.y``).
    """
    x, y = batch.x, batch.y
    xc, yc, xq, yq = x[:, :n_ctx], y[:, :n_ctx], x[:, n_ctx:], y[:, n_ctx:]
    noise = batch.noise.view(-1, 1, 1)
    Kcc = matern52(xc, xc, batch.lengthscale, batch.outputscale)
    Kcc = Kcc + (noise + 1e-8) * torch.eye(n_ctx, dtype=x.dtype, device=x.device)
    Kqc = matern52(xq, xc, batch.lengthscale, batch.outputscale)
    L = torch.linalg.cholesky(Kcc)
    alpha = torch.cholesky_solve(yc.unsqueeze(-1), L)
    mean = (Kqc @ alpha).squeeze(-1)
    v = torch.linalg.solve_triangular(L, Kqc.transpose(-1, -2), upper=False)
    var = batch.outputscale.view(-1, 1) - v.square().sum(-2) + batch.noise.view(-1, 1)
    var = var.clamp_min(1e-10)
    return 0.5 * (math.log(2 * math.pi) + var.log() + (yq - mean).square() / var)
