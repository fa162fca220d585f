"""Training a PFN on the GP prior: resumable, checkpointed, measured against the exact GP.

No printing here: progress goes to a callback (the CLI draws a rich progress bar from it).

Files in the output directory:
    ``NAME.pt`` / ``NAME.json``   the model checkpoint (state dict + config), written every
                                  ``checkpoint_every_s`` seconds and at the end
    ``train_state.pt``            optimizer, schedule and step, for ``resume``
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from surrogates.pfn_net import bar
from surrogates.pfn_net.io import save_checkpoint
from surrogates.pfn_net.model import PFNConfig, PFNTransformer, standardize_context
from surrogates.pfn_net.prior import PriorConfig, exact_gp_nll, sample_gp_batch

__all__ = ["TrainConfig", "evaluate_vs_gp", "train"]


@dataclass
class TrainConfig:
    """Settings of a training run (stored in the checkpoint's config)."""

    steps: int = 10_000
    batch_size: int = 32
    lr: float = 1e-3
    warmup_frac: float = 0.05
    min_lr_frac: float = 0.05
    weight_decay: float = 0.0
    clip: float = 1.0
    extra_points: int = 20
    min_context: int = 2
    seed: int = 0
    checkpoint_every_s: float = 300.0
    max_seconds: float | None = None
    border_batches: int = 200
    eval_datasets: int = 64
    name: str = "pfn"
    model: PFNConfig = field(default_factory=PFNConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"], d["prior"] = self.model.to_dict(), self.prior.to_dict()
        return d


def _gen(seed: int, step: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + step) % (2**63 - 1))
    return g


def _standardized_batch(
    cfg: TrainConfig, step: int, device: torch.device
) -> tuple[Any, int, torch.Tensor, torch.Tensor]:
    """One training batch: datasets, the context size, standardized context and query targets."""
    g = _gen(cfg.seed, step, device)
    n_ctx = int(
        torch.randint(cfg.min_context, cfg.model.max_context + 1, (1,), generator=g, device=device)
    )
    batch = sample_gp_batch(
        cfg.batch_size,
        cfg.model.max_context + cfg.extra_points,
        cfg.prior,
        generator=g,
        device=device,
    )
    loc, scale = standardize_context(batch.y[:, :n_ctx])
    y_std = (batch.y - loc.unsqueeze(-1)) / scale.unsqueeze(-1)
    return batch, n_ctx, y_std[:, :n_ctx], y_std[:, n_ctx:]


def prior_borders(cfg: TrainConfig, device: torch.device) -> torch.Tensor:
    """Bucket borders: equal-frequency quantiles of standardized query targets from the prior."""
    ys = []
    for i in range(cfg.border_batches):
        _, _, _, yq = _standardized_batch(cfg, -1 - i, device)
        ys.append(yq.flatten().cpu())
    return bar.bucket_borders(torch.cat(ys), cfg.model.num_buckets)


def _progress(cfg: TrainConfig, step: int, elapsed: float) -> float:
    """Fraction of the budget used: steps, or wall time when ``max_seconds`` runs out first."""
    p = step / max(1, cfg.steps)
    if cfg.max_seconds:
        p = max(p, elapsed / cfg.max_seconds)
    return min(1.0, p)


def _lr_factor(cfg: TrainConfig, progress: float) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_frac``, over the budget's progress."""
    if progress < cfg.warmup_frac:
        return max(progress / cfg.warmup_frac, 1e-3)
    t = (progress - cfg.warmup_frac) / max(1e-9, 1 - cfg.warmup_frac)
    return cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * t))


@torch.no_grad()
def evaluate_vs_gp(
    model: PFNTransformer,
    prior: PriorConfig,
    dims: tuple[int, ...] = (1, 2, 4, 6),
    contexts: tuple[int, ...] = (5, 20, 50, 80),
    num_datasets: int = 64,
    num_queries: int = 20,
    seed: int = 12345,
) -> list[dict[str, Any]]:
    """Held-out predictive NLL (per point, raw units) of the PFN and of the exact GP with the true
    hyperparameters, on datasets drawn from the prior.

    Returns:
        One row per (d, n): ``{"d", "n", "pfn_nll", "gp_nll", "gap"}`` (gap = PFN - GP, nats).
    """
    model.eval()
    rows = []
    device = next(model.parameters()).device
    for d in dims:
        if d > model.config.max_dim:
            continue
        for n in contexts:
            if n > model.config.max_context:
                continue
            g = _gen(seed, 1000 * d + n, device)
            batch = sample_gp_batch(
                num_datasets,
                n + num_queries,
                prior,
                generator=g,
                dims=torch.full((num_datasets,), d),
                device=device,
            )
            gp = exact_gp_nll(batch, n).mean().item()
            loc, scale = standardize_context(batch.y[:, :n])
            y_std = (batch.y - loc.unsqueeze(-1)) / scale.unsqueeze(-1)
            logits = model(batch.x[:, :n, :d], y_std[:, :n], batch.x[:, n:, :d], d)
            lp = bar.log_prob(model.borders, logits.double(), y_std[:, n:])
            pfn = (-lp + scale.log().unsqueeze(-1)).mean().item()
            rows.append({"d": d, "n": n, "pfn_nll": pfn, "gp_nll": gp, "gap": pfn - gp})
    return rows


def train(
    cfg: TrainConfig,
    out_dir: str | Path,
    device: str | torch.device = "cpu",
    resume: bool = False,
    callback: Callable[[dict[str, Any]], None] | None = None,
    evaluate: bool = True,
) -> dict[str, Any]:
    """Train (or resume) a PFN on the GP prior and write checkpoints to ``out_dir``.

    Args:
        cfg: Model, prior and optimization settings.
        out_dir: Directory for ``{cfg.name}.pt``/``.json`` and ``train_state.pt``.
        device: ``cpu`` or ``cuda``.
        resume: Continue from ``out_dir/train_state.pt`` (its config wins over ``cfg``'s steps etc.).
        callback: Called after every step with ``{"step", "steps", "loss", "steps_per_s", "lr"}``.
        evaluate: Measure held-out NLL against the exact GP at the end.

    Returns:
        The training record (also stored in the checkpoint's config under ``"training"``).
    """
    device = torch.device(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "train_state.pt"
    ckpt_path = out / f"{cfg.name}.pt"
    step, elapsed, losses = 0, 0.0, []
    if resume and state_path.is_file():
        st = torch.load(state_path, map_location=device, weights_only=True)
        saved = st["train_config"]
        # the saved run's settings win (same schedule and data stream); only the time budget and the
        # checkpoint interval come from the caller
        cfg = TrainConfig(
            **{
                **{k: v for k, v in saved.items() if k not in ("model", "prior")},
                "max_seconds": cfg.max_seconds,
                "checkpoint_every_s": cfg.checkpoint_every_s,
            },
            model=PFNConfig(**saved["model"]),
            prior=PriorConfig(**saved["prior"]),
        )
        model = PFNTransformer(cfg.model).to(device)
        model.load_state_dict(st["model"])
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        opt.load_state_dict(st["optimizer"])
        step, elapsed, losses = int(st["step"]), float(st["elapsed"]), list(st["losses"])
    else:
        torch.manual_seed(cfg.seed)
        model = PFNTransformer(cfg.model, borders=prior_borders(cfg, device)).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def record(final: bool) -> dict[str, Any]:
        tail = losses[-200:]
        return {
            "steps_done": step,
            "steps_planned": cfg.steps,
            "wall_seconds": round(elapsed, 1),
            "final_loss_avg200": (sum(tail) / len(tail)) if tail else None,
            "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
            "threads": torch.get_num_threads(),
            "torch": str(torch.__version__),
            "finished": final,
            "params": model.num_parameters(),
            "train_config": cfg.to_dict(),
        }

    def checkpoint(final: bool, eval_rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        rec = record(final)
        if eval_rows is not None:
            rec["heldout_nll_vs_gp"] = eval_rows
        save_checkpoint(
            model,
            ckpt_path,
            {"model": cfg.model.to_dict(), "prior": cfg.prior.to_dict(), "training": rec},
        )
        tmp = state_path.with_suffix(".tmp")
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "step": step,
                "elapsed": elapsed,
                "losses": losses[-2000:],
                "train_config": cfg.to_dict(),
            },
            tmp,
        )
        os.replace(tmp, state_path)
        return rec

    model.train()
    last_ckpt = time.perf_counter()
    t_start = time.perf_counter()
    elapsed0 = elapsed
    rate = 0.0
    while step < cfg.steps:
        t0 = time.perf_counter()
        for grp in opt.param_groups:
            grp["lr"] = cfg.lr * _lr_factor(cfg, _progress(cfg, step, elapsed))
        batch, n_ctx, yc, yq = _standardized_batch(cfg, step, device)
        x = batch.x.float()
        logits = model(x[:, :n_ctx], yc.float(), x[:, n_ctx:], batch.dims)
        loss = -bar.log_prob(model.borders.float(), logits, yq.float()).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        step += 1
        losses.append(float(loss.detach()))
        dt = time.perf_counter() - t0
        rate = 1.0 / dt if rate == 0.0 else 0.95 * rate + 0.05 / dt
        elapsed = elapsed0 + time.perf_counter() - t_start
        if callback is not None:
            callback(
                {
                    "step": step,
                    "steps": cfg.steps,
                    "loss": losses[-1],
                    "steps_per_s": rate,
                    "lr": opt.param_groups[0]["lr"],
                    "elapsed": elapsed,
                }
            )
        if time.perf_counter() - last_ckpt >= cfg.checkpoint_every_s:
            checkpoint(final=False)
            last_ckpt = time.perf_counter()
        if cfg.max_seconds is not None and elapsed >= cfg.max_seconds:
            break
    model.eval()
    rows = evaluate_vs_gp(model, cfg.prior, num_datasets=cfg.eval_datasets) if evaluate else None
    return checkpoint(final=step >= cfg.steps, eval_rows=rows)
