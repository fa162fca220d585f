"""PFN speed: suggest wall time of ``pfn`` vs ``gp`` (n = 50, 200, 1000; CPU) and the training speed of
``bocli pfn train`` (steps/s), printed as tables.

The shipped checkpoint's context limit is 80 points: above it the PFN subsamples its context to 80
(the best 20 plus 60 random others, with a warning), so its n = 200 and n = 1000 rows predict from 80
points while the GP uses all n. The table says so in the "context" column.

    OMP_NUM_THREADS=1 python benchmarks/bench_pfn.py [--sizes 50,200,1000] [--problem hartmann6]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings

import numpy as np
import torch


def time_suggest(problem: str, surrogate: str, n: int, seed: int = 0) -> tuple[float, float, int]:
    """One ``suggest`` (fit + closed-form or qLogNEI EI at q = 1) on ``n`` uniform random points.

    Returns:
        Wall seconds, of which fitting, and the context size the model used.
    """
    from bocli.engine import suggest
    from problems import get_problem

    p = get_problem(problem)
    rng = np.random.default_rng(seed)
    X = rng.random((n, p.space.dim))
    y = np.array([p.evaluate(prm) for prm in p.space.decode(X)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        s = suggest(p.space, X, y, surrogate=surrogate, acquisition="ei", seed=seed, n_init=2)
        wall = time.perf_counter() - t0
    ctx = s.model.train_inputs[0].shape[-2] if s.model is not None else n
    return wall, s.info["fit_seconds"], int(ctx)


def train_speed(steps: int) -> tuple[float, int]:
    """Steps/s of the shipped checkpoint's training configuration (prior sampling included)."""
    from surrogates.pfn_net.io import read_config
    from surrogates.pfn_net.model import PFNConfig
    from surrogates.pfn_net.train import TrainConfig, train

    cfg_model = PFNConfig(**read_config()["model"])
    cfg = TrainConfig(steps=steps, batch_size=32, model=cfg_model, border_batches=20)
    with tempfile.TemporaryDirectory() as d:
        t = []
        train(cfg, d, callback=lambda i: t.append(time.perf_counter()), evaluate=False)
    # skip the first step (allocation warm-up)
    return (len(t) - 2) / (t[-1] - t[1]), cfg.batch_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="50,200,1000")
    ap.add_argument("--problem", default="hartmann6")
    ap.add_argument("--train-steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]

    print(
        f"suggest wall time on {args.problem} (CPU, {args.threads} thread(s), acquisition ei, q = 1)"
    )
    print("| n | gp s | pfn s | pfn context | speed-up |")
    print("|---|---|---|---|---|")
    for n in sizes:
        gp, _, _ = time_suggest(args.problem, "gp", n)
        pf, _, ctx = time_suggest(args.problem, "pfn", n)
        print(
            f"| {n} | {gp:.2f} | {pf:.2f} | {ctx}{' (subsampled)' if ctx < n else ''} | {gp / pf:.1f}x |",
            flush=True,
        )

    rate, b = train_speed(args.train_steps)
    print(
        f"\nbocli pfn train (shipped config, batch {b}, CPU, {args.threads} thread(s)): {rate:.2f} steps/s"
    )


if __name__ == "__main__":
    main()
