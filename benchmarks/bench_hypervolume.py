"""Hypervolume traces: bocli.pareto's incremental tracker vs recomputing every prefix with botorch.

A run's HV trace needs the hypervolume after each of its n points. bocli's ``HypervolumeTracker``
keeps the front and only recomputes when a point enters it; the naive way is botorch's
``Hypervolume(ref).compute(pareto_Y)`` (after ``is_non_dominated``) on every prefix.

    python benchmarks/bench_hypervolume.py [--sizes 50 200 1000] [--exact-upto 200] [--reps 3]

Point sets (all minimized, reference point 1.1 in every objective):
- sphere: n points on the positive orthant of the unit sphere, all mutually non-dominated (the worst
  case: every point enters the front);
- cloud: n standard-normal points shifted into [0, 1]-ish (a small front, most points dominated).

Columns: tracker = ``hypervolume_trace`` (all n prefixes); botorch/prefix = botorch on every prefix,
measured for n <= --exact-upto, otherwise estimated (marked ~) by timing 12 prefix sizes and
integrating the interpolated cost over all n; ours 1-shot / botorch 1-shot = one call on all n points;
|diff| = relative difference of the two final volumes.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from botorch.utils.multi_objective.hypervolume import Hypervolume
from botorch.utils.multi_objective.pareto import is_non_dominated

from bocli.pareto import hypervolume, hypervolume_trace, pareto_mask

REF = 1.1


def make_points(kind: str, n: int, m: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "sphere":
        X = np.abs(rng.standard_normal((n, m)))
        return X / np.linalg.norm(X, axis=1, keepdims=True)
    X = rng.standard_normal((n, m))
    return (X - X.min(axis=0)) / (X.max(axis=0) - X.min(axis=0))


def best_of(fn: Callable[[], Any], reps: int) -> tuple[float, Any]:
    """Smallest wall time of ``reps`` calls, and the last result."""
    best, out = float("inf"), None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def botorch_hv(Y: torch.Tensor, hv: Hypervolume) -> float:
    """botorch convention: maximize, so negate the minimized values (and the reference point)."""
    W = -Y
    return hv.compute(W[is_non_dominated(W)])


def botorch_prefixes(Y: np.ndarray, exact: bool) -> tuple[float, bool]:
    """Seconds to compute botorch's HV of every prefix (measured, or estimated when not ``exact``)."""
    n, m = Y.shape
    T = torch.tensor(Y, dtype=torch.float64)
    hv = Hypervolume(torch.full((m,), -REF, dtype=torch.float64))
    if exact:
        t0 = time.perf_counter()
        for k in range(1, n + 1):
            botorch_hv(T[:k], hv)
        return time.perf_counter() - t0, True
    ks = np.unique(np.linspace(1, n, 12).round().astype(int))
    costs = []
    for k in ks:
        t0 = time.perf_counter()
        botorch_hv(T[:k], hv)
        costs.append(time.perf_counter() - t0)
    return float(np.interp(np.arange(1, n + 1), ks, costs).sum()), False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 1000])
    ap.add_argument("--objectives", type=int, nargs="+", default=[2, 3])
    ap.add_argument("--exact-upto", type=int, default=200)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()

    print(f"torch threads: {torch.get_num_threads()}; times are the best of {args.reps} (s)")
    print()
    print(
        "| m | n | points | front | tracker | botorch/prefix | speed-up | ours 1-shot "
        "| botorch 1-shot | diff |"
    )
    print("|---:|---:|:---|---:|---:|---:|---:|---:|---:|---:|")
    for m in args.objectives:
        directions = ["minimize"] * m
        ref = np.full(m, REF)
        for n in args.sizes:
            for kind in ("sphere", "cloud"):
                Y = make_points(kind, n, m, seed=n + m)
                front = int(pareto_mask(Y, directions).sum())
                t_trace, trace = best_of(
                    lambda Y=Y, d=directions, r=ref: hypervolume_trace(Y, d, r), args.reps
                )
                t_ours, ours = best_of(
                    lambda Y=Y, d=directions, r=ref: hypervolume(Y, d, r), args.reps
                )
                T = torch.tensor(Y, dtype=torch.float64)
                bt = Hypervolume(torch.full((m,), -REF, dtype=torch.float64))
                t_bt1, theirs = best_of(lambda T=T, bt=bt: botorch_hv(T, bt), 1)
                t_pref, exact = botorch_prefixes(Y, n <= args.exact_upto)
                diff = max(abs(trace[-1] - theirs), abs(ours - theirs)) / theirs
                mark = "" if exact else "~"
                print(
                    f"| {m} | {n} | {kind} | {front} | {t_trace:.4f} | {mark}{t_pref:.2f} "
                    f"| {mark}{t_pref / t_trace:.0f}x | {t_ours:.4f} | {t_bt1:.3f} | {diff:.1e} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
