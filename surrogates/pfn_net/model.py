"""The PFN transformer: x and y encoders, context-only attention, bar-distribution logits.

Context token ``i`` = enc_x(x_i) + enc_y(y_i); query token = enc_x(x). In every layer, every token
(context or query) attends only to the context tokens, so point order does not matter and queries are
independent of each other: a query's prediction depends on the context and on its own x only. That
makes inference cheap: the per-layer keys and values of a context are computed once
(``encode_context``) and any number of queries, in any batch shape, attend to them.

Pre-norm residual blocks (GELU feed-forward), a final LayerNorm, and a two-layer decoder to ``K``
logits. Inputs: x in the unit cube, zero-padded to ``max_dim`` columns; y standardized by the
context's mean and standard deviation (``standardize_context``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["PFNConfig", "PFNTransformer", "standardize_context"]


@dataclass(frozen=True)
class PFNConfig:
    """Architecture and limits of a PFN transformer (stored in every checkpoint)."""

    max_dim: int = 6
    max_context: int = 80
    emsize: int = 96
    nhead: int = 4
    nhid: int = 192
    nlayers: int = 3
    num_buckets: int = 256

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def standardize_context(y_ctx: Tensor, min_std: float = 1e-6) -> tuple[Tensor, Tensor]:
    """Location and scale of ``... x n`` context targets (population std, clamped).

    Returns:
        ``...`` mean and ``...`` std.
    """
    loc = y_ctx.mean(-1)
    scale = y_ctx.std(-1, unbiased=False).clamp_min(min_std) if y_ctx.shape[-1] > 1 else None
    if scale is None:
        scale = torch.ones_like(loc)
    return loc, scale


class _Block(nn.Module):
    def __init__(self, emsize: int, nhead: int, nhid: int) -> None:
        super().__init__()
        self.nhead = nhead
        self.norm1 = nn.LayerNorm(emsize)
        self.q = nn.Linear(emsize, emsize)
        self.kv = nn.Linear(emsize, 2 * emsize)
        self.out = nn.Linear(emsize, emsize)
        self.norm2 = nn.LayerNorm(emsize)
        self.ff1 = nn.Linear(emsize, nhid)
        self.ff2 = nn.Linear(nhid, emsize)
        # residual branches start at zero (as in PFNs): the network starts as the identity
        for lin in (self.out, self.ff2):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def _heads(self, t: Tensor) -> Tensor:  # b x n x e -> b x h x n x e/h
        b, n, e = t.shape
        return t.view(b, n, self.nhead, e // self.nhead).transpose(1, 2)

    def keys_values(self, h_ctx: Tensor) -> tuple[Tensor, Tensor]:
        """``b x n x e`` context states -> per-head keys and values ``b x h x n x e/h``."""
        k, v = self.kv(self.norm1(h_ctx)).chunk(2, dim=-1)
        return self._heads(k), self._heads(v)

    def forward(self, h: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """``b x m x e`` token states attending to the context's keys/values -> ``b x m x e``."""
        b, m, e = h.shape
        q = self._heads(self.q(self.norm1(h)))
        a = F.scaled_dot_product_attention(q, k, v)
        h = h + self.out(a.transpose(1, 2).reshape(b, m, e))
        return h + self.ff2(F.gelu(self.ff1(self.norm2(h))))


class PFNTransformer(nn.Module):
    """Maps (context x, context y, query x) to bar-distribution logits over standardized y."""

    def __init__(self, config: PFNConfig, borders: Tensor | None = None) -> None:
        super().__init__()
        self.config = config
        E = config.emsize
        self.x_encoder = nn.Linear(config.max_dim, E)
        self.y_encoder = nn.Linear(1, E)
        self.blocks = nn.ModuleList(
            _Block(E, config.nhead, config.nhid) for _ in range(config.nlayers)
        )
        self.norm = nn.LayerNorm(E)
        self.decoder = nn.Sequential(
            nn.Linear(E, config.nhid), nn.GELU(), nn.Linear(config.nhid, config.num_buckets)
        )
        if borders is None:
            borders = torch.linspace(-3, 3, config.num_buckets + 1)
        self.register_buffer("borders", borders.double().clone())

    # ----- encoders --------------------------------------------------------------------------
    def encode_x(self, x: Tensor, dims: Tensor | int) -> Tensor:
        """``... x n x d`` (d <= max_dim) in the unit cube -> ``... x n x E`` embeddings.

        Inputs are centred and scaled to unit variance, zero-padded to ``max_dim`` and scaled by
        ``sqrt(max_dim / d)`` so the input norm does not depend on the dimension.
        """
        D = self.config.max_dim
        d = x.shape[-1]
        z = (x.to(self.x_encoder.weight.dtype) - 0.5) * math.sqrt(12.0)
        if isinstance(dims, int):
            z = z * math.sqrt(D / dims)
            if d < D:
                z = F.pad(z, (0, D - d))
        else:  # training: per-dataset dims, columns beyond each dataset's d are padding
            col = torch.arange(D, device=x.device)
            z = z * (col < dims.view(-1, 1, 1)) * torch.sqrt(D / dims.to(z)).view(-1, 1, 1)
        return self.x_encoder(z)

    def encode_context(
        self, x_ctx: Tensor, y_ctx_std: Tensor, dims: Tensor | int
    ) -> list[tuple[Tensor, Tensor]]:
        """Per-layer keys and values of a context.

        Args:
            x_ctx: ``b x n x d`` context inputs; y_ctx_std: ``b x n`` standardized targets.

        Returns:
            ``nlayers`` pairs of ``b x h x n x E/h`` keys and values.
        """
        h = self.encode_x(x_ctx, dims) + self.y_encoder(
            y_ctx_std.to(self.y_encoder.weight.dtype).unsqueeze(-1)
        )
        kvs = []
        for blk in self.blocks:
            k, v = blk.keys_values(h)
            kvs.append((k, v))
            h = blk(h, k, v)
        return kvs

    def query(self, kvs: list[tuple[Tensor, Tensor]], x_q: Tensor, dims: Tensor | int) -> Tensor:
        """``b x m x d`` query inputs against an encoded context (batch ``b`` or 1) -> ``b x m x K``."""
        h = self.encode_x(x_q, dims)
        for blk, (k, v) in zip(self.blocks, kvs, strict=True):
            if k.shape[0] != h.shape[0]:
                k, v = k.expand(h.shape[0], -1, -1, -1), v.expand(h.shape[0], -1, -1, -1)
            h = blk(h, k, v)
        return self.decoder(self.norm(h))

    def forward(self, x_ctx: Tensor, y_ctx_std: Tensor, x_q: Tensor, dims: Tensor | int) -> Tensor:
        """``b x n x d``, ``b x n``, ``b x m x d`` -> ``b x m x K`` logits over standardized y."""
        return self.query(self.encode_context(x_ctx, y_ctx_std, dims), x_q, dims)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
