"""The discretized ("bar", Riemann) output distribution with full-support half-normal tails.

``K`` buckets are given by ``K + 1`` increasing borders ``b_0 < ... < b_K``. Inner buckets
``1..K-2`` have a uniform density on ``[b_i, b_{i+1}]``. The outer buckets are half-normal tails:
bucket 0 covers ``(-inf, b_1]`` and bucket ``K-1`` covers ``[b_{K-1}, inf)``, each with the scale
that puts half its mass within the bucket's width (``b_1 - b_0`` resp. ``b_K - b_{K-1}``), as in
PFNs' ``FullSupportBarDistribution``. Every function takes logits ``... x K`` and values broadcast
against ``...``, all maths in the logits' dtype; everything assumes maximization.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "bucket_borders",
    "cdf",
    "expected_improvement",
    "icdf",
    "log_expected_improvement",
    "log_prob",
    "mean",
    "variance",
]

_HALF_Q = 0.6744897501960817  # Phi^{-1}(0.75): a half-normal puts half its mass below this * scale
_SQRT_2_PI = math.sqrt(2.0 / math.pi)


def bucket_borders(samples: Tensor, num_buckets: int) -> Tensor:
    """Equal-frequency borders from prior targets: ``num_buckets + 1`` strictly increasing values."""
    s = samples.flatten().double()
    s = s[torch.isfinite(s)]
    qs = torch.linspace(0.0, 1.0, num_buckets + 1, dtype=torch.float64)
    b = torch.quantile(s[:10_000_000], qs)
    # the outer borders only set the tail scales: fit each half-normal tail to the samples beyond the
    # last inner border (half its mass within the width = the median excess), not to the extremes
    hi = s[s > b[-2]] - b[-2]
    lo = b[1] - s[s < b[1]]
    if hi.numel() > 10:
        b[-1] = b[-2] + hi.median().clamp_min(1e-6)
    if lo.numel() > 10:
        b[0] = b[1] - lo.median().clamp_min(1e-6)
    for i in range(1, len(b)):  # enforce strict increase (ties in heavy samples)
        if b[i] <= b[i - 1]:
            b[i] = b[i - 1] + 1e-6
    return b


def _parts(
    borders: Tensor, logits: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    b = borders.to(logits)
    left, right, width = b[:-1], b[1:], b[1:] - b[:-1]
    s_lo = width[0] / _HALF_Q
    s_hi = width[-1] / _HALF_Q
    return b, left, right, width, s_lo, s_hi


def log_prob(borders: Tensor, logits: Tensor, y: Tensor) -> Tensor:
    """Log density of ``y`` (shape ``...``) under the distribution with ``... x K`` logits."""
    b, _left, _right, width, s_lo, s_hi = _parts(borders, logits)
    K = logits.shape[-1]
    y = y.to(logits)
    shape = torch.broadcast_shapes(y.shape, logits.shape[:-1])
    logp = torch.log_softmax(logits, dim=-1).expand(*shape, K)
    y = y.expand(shape)
    idx = torch.searchsorted(b[1:-1].contiguous(), y.detach().contiguous(), right=False).clamp(
        0, K - 1
    )
    lp = logp.gather(-1, idx.unsqueeze(-1)).squeeze(-1)
    inner = lp - width[idx].log()
    half_norm = math.log(2.0) - 0.5 * math.log(2 * math.pi)
    hi_t = (y - b[-2]) / s_hi
    lo_t = (b[1] - y) / s_lo
    tail_hi = lp + half_norm - s_hi.log() - 0.5 * hi_t.square()
    tail_lo = lp + half_norm - s_lo.log() - 0.5 * lo_t.square()
    return torch.where(idx == K - 1, tail_hi, torch.where(idx == 0, tail_lo, inner))


def mean(borders: Tensor, logits: Tensor) -> Tensor:
    """``...`` mean of the distribution."""
    b, left, right, _width, s_lo, s_hi = _parts(borders, logits)
    centers = (left + right) / 2
    centers = torch.cat(
        [(b[1] - s_lo * _SQRT_2_PI).view(1), centers[1:-1], (b[-2] + s_hi * _SQRT_2_PI).view(1)]
    )
    return (torch.softmax(logits, -1) * centers).sum(-1)


def variance(borders: Tensor, logits: Tensor) -> Tensor:
    """``...`` variance (from per-bucket second moments)."""
    b, left, right, _width, s_lo, s_hi = _parts(borders, logits)
    p = torch.softmax(logits, -1)
    m2_inner = (left.square() + left * right + right.square()) / 3
    a_hi, a_lo = b[-2], b[1]
    m2_hi = a_hi.square() + 2 * a_hi * s_hi * _SQRT_2_PI + s_hi.square()
    m2_lo = a_lo.square() - 2 * a_lo * s_lo * _SQRT_2_PI + s_lo.square()
    m2 = torch.cat([m2_lo.view(1), m2_inner[1:-1], m2_hi.view(1)])
    mu = mean(borders, logits)
    return ((p * m2).sum(-1) - mu.square()).clamp_min(1e-12)


def cdf(borders: Tensor, logits: Tensor, y: Tensor) -> Tensor:
    """``...`` P(Y <= y)."""
    b, left, _right, width, s_lo, s_hi = _parts(borders, logits)
    p = torch.softmax(logits, -1)
    y = y.to(logits).unsqueeze(-1)
    frac = ((y - left) / width).clamp(0.0, 1.0)  # inner buckets: linear
    normal = torch.distributions.Normal(0.0, 1.0)
    t_hi = ((y - b[-2]) / s_hi).clamp_min(0.0)
    frac_hi = 2 * normal.cdf(t_hi) - 1
    t_lo = ((b[1] - y) / s_lo).clamp_min(0.0)
    frac_lo = 2 - 2 * normal.cdf(t_lo)
    frac = torch.cat([frac_lo[..., :1], frac[..., 1:-1], frac_hi[..., :1]], dim=-1)
    return (p * frac).sum(-1).clamp(0.0, 1.0)


def icdf(borders: Tensor, logits: Tensor, u: Tensor) -> Tensor:
    """Quantile function: ``...`` values at probabilities ``u`` (broadcast against ``...``);
    differentiable in the logits (the inverse-CDF sampler's reparameterization)."""
    b, left, _right, width, s_lo, s_hi = _parts(borders, logits)
    K = logits.shape[-1]
    p = torch.softmax(logits, -1)
    u = u.to(logits)
    shape = torch.broadcast_shapes(u.shape, logits.shape[:-1])
    p = p.expand(*shape, K)
    u = u.expand(shape).clamp(1e-9, 1 - 1e-9)
    c = p.cumsum(-1)
    idx = torch.searchsorted(c.detach().contiguous(), u.detach().unsqueeze(-1).contiguous())
    idx = idx.clamp(0, K - 1)
    c_hi = c.gather(-1, idx).squeeze(-1)
    p_i = p.gather(-1, idx).squeeze(-1).clamp_min(1e-30)
    idx = idx.squeeze(-1)
    within = ((u - (c_hi - p_i)) / p_i).clamp(0.0, 1.0)  # fraction of the bucket's mass below u
    inner = left[idx] + width[idx] * within
    normal = torch.distributions.Normal(
        torch.zeros((), dtype=p.dtype), torch.ones((), dtype=p.dtype)
    )
    hi = b[-2] + s_hi * normal.icdf((0.5 + within / 2).clamp(max=1 - 1e-12))
    lo = b[1] - s_lo * normal.icdf((1 - within / 2).clamp(max=1 - 1e-12))
    return torch.where(idx == K - 1, hi, torch.where(idx == 0, lo, inner))


def _log_ei_terms(borders: Tensor, logits: Tensor, f: Tensor) -> Tensor:
    """``... x K`` log of each bucket's conditional EI ``E[max(Y - f, 0) | bucket]`` (``-inf`` if 0)."""
    from botorch.acquisition.analytic import _log_ei_helper

    b, left, right, width, s_lo, s_hi = _parts(borders, logits)
    f = f.to(logits).unsqueeze(-1)
    neg_inf = torch.tensor(-math.inf, dtype=logits.dtype, device=logits.device)
    # inner: f <= l -> mid - f; l < f < r -> (r - f)^2 / (2w); f >= r -> 0
    mid = (left + right) / 2
    below = f <= left
    inside = (f > left) & (f < right)
    val = torch.where(below, mid - f, (right - f).clamp_min(0.0).square() / (2 * width))
    safe = torch.where(below | inside, val, torch.ones_like(val)).clamp_min(1e-300)
    inner = torch.where(below | inside, safe.log(), neg_inf)
    # right tail Y = a + s|Z|: f <= a -> a - f + s sqrt(2/pi); else 2 s h(-(f - a)/s)
    a, s = b[-2], s_hi
    f_hi = f[..., 0]
    t = ((f_hi - a) / s).clamp_min(0.0)
    tail_hi = torch.where(
        f_hi <= a,
        (a - f_hi + s * _SQRT_2_PI).clamp_min(1e-300).log(),
        math.log(2.0) + s.log() + _log_ei_helper(-t),
    )
    # left tail Y = a - s|Z|: f >= a -> 0; else s (t (2 Phi(t) - 1) - 2 (phi(0) - phi(t))), t = (a - f)/s
    a, s = b[1], s_lo
    t = ((a - f_hi) / s).clamp_min(0.0)
    normal = torch.distributions.Normal(
        torch.zeros((), dtype=t.dtype), torch.ones((), dtype=t.dtype)
    )
    phi = lambda z: torch.exp(normal.log_prob(z))  # noqa: E731
    lo_val = s * (t * (2 * normal.cdf(t) - 1) - 2 * (phi(torch.zeros_like(t)) - phi(t)))
    tail_lo = torch.where(f_hi < a, lo_val.clamp_min(1e-300).log(), neg_inf.expand_as(f_hi))
    shape = torch.broadcast_shapes(inner.shape, logits.shape)
    inner = inner.expand(shape)
    return torch.cat(
        [
            tail_lo.expand(shape[:-1]).unsqueeze(-1),
            inner[..., 1:-1],
            tail_hi.expand(shape[:-1]).unsqueeze(-1),
        ],
        dim=-1,
    )


def log_expected_improvement(borders: Tensor, logits: Tensor, f: Tensor | float) -> Tensor:
    """``...`` log E[max(Y - f, 0)], stable far beyond the data (the right tail keeps it finite)."""
    f = torch.as_tensor(f, dtype=logits.dtype, device=logits.device)
    terms = _log_ei_terms(borders, logits, f)
    return torch.logsumexp(torch.log_softmax(logits, -1) + terms, dim=-1)


def expected_improvement(borders: Tensor, logits: Tensor, f: Tensor | float) -> Tensor:
    """``...`` E[max(Y - f, 0)]."""
    return log_expected_improvement(borders, logits, f).exp()
