"""``bocli pfn train`` and ``bocli pfn info``: train and inspect the PFN surrogate's transformer.

torch is imported only inside the command functions (``bocli --help`` stays instant).
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from bocli.errors import UserError


@click.group()
def pfn() -> None:
    """Train and inspect the PFN surrogate's transformer.

    \b
    Examples:
      bocli pfn info
      bocli pfn train --out pfn_run --steps 2000 --max-dim 6 --max-context 80
      bocli pfn train --out pfn_run --resume
      bocli run branin --surrogate pfn --surrogate-option checkpoint=pfn_run/pfn.pt
    """


@pfn.command()
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output directory."
)
@click.option(
    "--steps", default=10_000, show_default=True, type=click.IntRange(1), help="Training steps."
)
@click.option(
    "--batch-size", default=32, show_default=True, type=click.IntRange(1), help="Datasets per step."
)
@click.option(
    "--max-dim",
    default=6,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Largest input dimension.",
)
@click.option(
    "--max-context",
    default=80,
    show_default=True,
    type=click.IntRange(2, 4096),
    help="Largest context size.",
)
@click.option(
    "--emsize", default=96, show_default=True, type=click.IntRange(8), help="Embedding width."
)
@click.option(
    "--layers", default=3, show_default=True, type=click.IntRange(1), help="Transformer layers."
)
@click.option(
    "--heads", default=4, show_default=True, type=click.IntRange(1), help="Attention heads."
)
@click.option(
    "--hidden",
    default=None,
    type=click.IntRange(8),
    help="Feed-forward width [default: 2 x emsize].",
)
@click.option(
    "--buckets", default=256, show_default=True, type=click.IntRange(4), help="Output buckets."
)
@click.option(
    "--lr", default=1e-3, show_default=True, type=float, help="Peak learning rate (AdamW)."
)
@click.option(
    "--seed", default=0, show_default=True, type=int, help="Seed of the prior data stream."
)
@click.option(
    "--max-minutes",
    default=None,
    type=float,
    help="Wall-time budget; the learning-rate schedule follows whichever budget runs out first.",
)
@click.option(
    "--checkpoint-every",
    default=5.0,
    show_default=True,
    type=float,
    help="Minutes between checkpoints.",
)
@click.option("--threads", default=None, type=click.IntRange(1), help="torch CPU threads.")
@click.option("--name", default="pfn", show_default=True, help="Checkpoint file name (NAME.pt).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--resume", is_flag=True, help="Continue the run in --out (its settings are kept).")
@click.option("--no-eval", is_flag=True, help="Skip the held-out NLL comparison with the exact GP.")
def train(
    out_dir: str,
    steps: int,
    batch_size: int,
    max_dim: int,
    max_context: int,
    emsize: int,
    layers: int,
    heads: int,
    hidden: int | None,
    buckets: int,
    lr: float,
    seed: int,
    max_minutes: float | None,
    checkpoint_every: float,
    threads: int | None,
    name: str,
    device: str,
    resume: bool,
    no_eval: bool,
) -> None:
    """Train a PFN on datasets drawn from a GP prior with hyperpriors.

    Writes OUT/NAME.pt (state dict + config), OUT/NAME.json, OUT/NAME.md (the training record)
    and OUT/train_state.pt (for --resume).

    \b
    Example:
      bocli pfn train --out pfn_run --steps 9000 --max-minutes 60 --threads 1
    """
    import math
    import re

    for option, value in (
        ("--lr", lr),
        ("--max-minutes", max_minutes),
        ("--checkpoint-every", checkpoint_every),
    ):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UserError(f"{option}: expected a positive, finite number, got {value!r}")
    if lr > 1:
        raise UserError(f"--lr: expected a learning rate in (0, 1], got {lr!r}")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) or name.endswith(".pt"):
        raise UserError(
            f"--name: expected a plain file name without '.pt' (letters, digits, _ . -), got "
            f"{name!r}"
        )

    import torch

    from surrogates.pfn_net.model import PFNConfig
    from surrogates.pfn_net.prior import PriorConfig
    from surrogates.pfn_net.train import TrainConfig
    from surrogates.pfn_net.train import train as run_training

    if emsize % heads:
        raise UserError(f"--emsize {emsize} must be a multiple of --heads {heads}")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available (use --device cpu)")
    if resume and not (Path(out_dir) / "train_state.pt").is_file():
        raise UserError(f"--resume: no train_state.pt in '{out_dir}'")
    if threads:
        torch.set_num_threads(threads)
    cfg = TrainConfig(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        checkpoint_every_s=checkpoint_every * 60,
        max_seconds=max_minutes * 60 if max_minutes else None,
        name=name,
        model=PFNConfig(
            max_dim=max_dim,
            max_context=max_context,
            emsize=emsize,
            nhead=heads,
            nhid=hidden or 2 * emsize,
            nlayers=layers,
            num_buckets=buckets,
        ),
        prior=PriorConfig(max_dim=max_dim),
    )
    command = (
        "bocli pfn " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 2 else ""
    )
    from rich.console import Console

    console = Console(stderr=True)
    callback, progress = _progress_callback(console, steps)
    try:
        if progress is not None:
            progress.start()
        rec = run_training(
            cfg, out_dir, device=device, resume=resume, callback=callback, evaluate=not no_eval
        )
    finally:
        if progress is not None:
            progress.stop()
    rec["command"] = command
    md = Path(out_dir) / f"{rec['train_config']['name']}.md"
    md.write_text(training_record_markdown(rec))
    click.echo(f"wrote {Path(out_dir) / (rec['train_config']['name'] + '.pt')} and {md}")
    click.echo(_nll_table(rec.get("heldout_nll_vs_gp") or []))


def _progress_callback(console: Any, steps: int) -> tuple[Any, Any]:
    """A rich progress bar on a terminal, else one plain line every 100 steps (logs, nohup)."""
    if console.is_terminal:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        progress = Progress(
            TextColumn("training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  {task.fields[rate]:.2f} steps/s"),
            TimeElapsedColumn(),
            console=console,
        )
        task = progress.add_task("train", total=steps, loss=float("nan"), rate=0.0)

        def cb(info: dict[str, Any]) -> None:
            progress.update(
                task,
                completed=info["step"],
                total=info["steps"],
                loss=info["loss"],
                rate=info["steps_per_s"],
            )

        return cb, progress

    window: list[float] = []

    def plain(info: dict[str, Any]) -> None:
        window.append(info["loss"])
        if info["step"] % 100 == 0 or info["step"] == info["steps"]:
            avg = sum(window) / len(window)
            window.clear()
            print(
                f"step {info['step']}/{info['steps']} loss {avg:.4f} {info['steps_per_s']:.2f} steps/s "
                f"lr {info['lr']:.2e} {info['elapsed'] / 60:.1f} min",
                file=sys.stderr,
                flush=True,
            )

    return plain, None


def _nll_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no held-out evaluation)"
    lines = ["| d | n context | PFN NLL | exact GP NLL | gap (nats) |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['d']} | {r['n']} | {r['pfn_nll']:.3f} | {r['gp_nll']:.3f} | {r['gap']:+.3f} |"
        )
    gaps = [r["gap"] for r in rows]
    lines.append(
        f"\nmean gap {sum(gaps) / len(gaps):+.3f} nats per held-out point (max {max(gaps):+.3f})"
    )
    return "\n".join(lines)


def training_record_markdown(rec: dict[str, Any]) -> str:
    """The human-readable training record written next to a checkpoint."""
    tc = rec["train_config"]
    m = tc["model"]
    lines = [
        f"# PFN checkpoint `{tc['name']}.pt`",
        "",
        f"- command: `{rec.get('command') or '(library call)'}`",
        f"- steps: {rec['steps_done']} of {rec['steps_planned']} planned"
        + ("" if rec["finished"] else " (stopped by the wall-time budget)"),
        f"- wall time: {rec['wall_seconds'] / 60:.1f} min on {rec['device']} "
        f"({rec['threads']} torch thread(s)), torch {rec['torch']}",
        f"- model: emsize {m['emsize']}, {m['nlayers']} layers, {m['nhead']} heads, hidden {m['nhid']}, "
        f"{m['num_buckets']} buckets, {rec['params']:,} parameters",
        f"- limits: d <= {m['max_dim']}, context <= {m['max_context']} points",
        f"- batch {tc['batch_size']}, lr {tc['lr']}, final training loss (mean of last 200 steps): "
        f"{rec['final_loss_avg200']:.4f}",
        "",
        "## Held-out NLL vs the exact GP with the true hyperparameters",
        "",
        "Per held-out point, in nats, on datasets drawn from the training prior "
        f"({tc['eval_datasets']} datasets x 20 queries per row).",
        "",
        _nll_table(rec.get("heldout_nll_vs_gp") or []),
        "",
    ]
    return "\n".join(lines)


@pfn.command()
@click.argument("checkpoint", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def info(checkpoint: str | None, fmt: str) -> None:
    """Print a checkpoint's config, limits and training record (default: the shipped one).

    \b
    Example:
      bocli pfn info pfn_run/pfn.pt --format json
    """
    from surrogates.pfn_net.io import default_checkpoint_path, read_config

    cfg = read_config(checkpoint)
    path = checkpoint or str(default_checkpoint_path())
    if fmt == "json":
        click.echo(json.dumps({"path": path, **cfg}, indent=2))
        return
    m = cfg["model"]
    click.echo(f"checkpoint: {path}")
    click.echo(f"limits: d <= {m['max_dim']}, context <= {m['max_context']} points")
    click.echo(
        f"model: emsize {m['emsize']}, {m['nlayers']} layers, {m['nhead']} heads, hidden {m['nhid']}, "
        f"{m['num_buckets']} buckets"
    )
    click.echo("prior: " + ", ".join(f"{k}={v}" for k, v in cfg.get("prior", {}).items()))
    rec = cfg.get("training") or {}
    if rec:
        click.echo(
            f"training: {rec.get('steps_done')} steps, {rec.get('wall_seconds', 0) / 60:.1f} min on "
            f"{rec.get('device')}, {rec.get('params', 0):,} parameters"
        )
        rows = rec.get("heldout_nll_vs_gp") or []
        if rows:
            click.echo(_nll_table(rows))
