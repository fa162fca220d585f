"""GPU check: every surrogate x acquisition pair for a few suggest steps on CUDA, and gp timing.

    python benchmarks/gpu_check.py [--steps 3] [--surrogates gp,ensemble,...] [--acquisitions ei,...]
                                   [--sizes 1024,4096] [--repeats 1] [--skip-timing] [--require-cuda]

Needs a machine with a CUDA GPU; without one it says so in one line and exits (status 0, or 1 with
``--require-cuda``). On CUDA:

1. Every registered surrogate x acquisition pair that ``bocli.acquisition.check_compatible`` accepts
   runs ``--steps`` suggest steps (``device="cuda"``, float64) on a small problem (hartmann6, 10
   initial points, cheap surrogate settings, few optimizer restarts), each proposal evaluated and
   appended. A pair is ``ok`` when every step proposes finite points in the unit cube from a model
   whose training data are on CUDA. The table lists pair, ok/error (the error's first line), seconds
   and, for hmc, where NUTS ran (``backend``) and any note.
2. gp + ei ``suggest`` at n = 1024 and 4096 (d = 6, bocli's default optimizer settings) against the
   same work written directly against botorch (SingleTaskGP + fit_gpytorch_mll + qLogNEI +
   optimize_acqf with the same settings), both on CUDA; best of ``--repeats``.

The script exits 1 if any pair failed. The CPU analogue of the device checks, which runs everywhere,
is ``tests/surrogates/test_dtype_device.py`` (float32 / float64 mismatches).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# cheap settings: the check is about devices and dtypes, not about fit quality
FAST: dict[str, dict[str, Any]] = {
    "dkl": {"steps": 60},
    "ensemble": {"steps": 100, "num_members": 8},
    "hmc": {"num_samples": 40, "num_warmup": 40, "map_steps": 100, "thinning": 2},
}


def _problem_data(n: int, seed: int = 0) -> tuple[Any, np.ndarray, np.ndarray]:
    from problems import get_problem

    problem = get_problem("hartmann6")
    X = np.random.default_rng(seed).random((n, problem.space.dim))
    y = np.array([problem.evaluate(p) for p in problem.space.decode(X)])
    return problem, X, y


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def check_pair(
    surrogate: str, acquisition: str, steps: int, device: str = "cuda"
) -> dict[str, Any]:
    """``steps`` suggest steps of one pair on ``device``; never raises."""
    import torch

    from bocli.calibration import model_tensor_kwargs
    from bocli.engine import suggest

    problem, X, y = _problem_data(10)
    space = problem.space
    row: dict[str, Any] = {"pair": f"{surrogate} x {acquisition}", "ok": True, "error": ""}
    t0 = time.perf_counter()
    try:
        for step in range(steps):
            sug = suggest(
                space,
                X,
                y,
                surrogate=surrogate,
                acquisition=acquisition,
                surrogate_options=FAST.get(surrogate),
                device=device,
                n_init=len(X),
                n_issued=len(X),
                seed=step,
                num_restarts=2,
                raw_samples=64,
            )
            pts = np.asarray(sug.X, dtype=np.float64)
            if not (np.all(np.isfinite(pts)) and np.all((pts >= 0) & (pts <= 1))):
                raise RuntimeError(f"step {step}: proposal outside the unit cube: {pts}")
            if sug.model is not None:
                dev = model_tensor_kwargs(sug.model)["device"]
                if dev.type != torch.device(device).type:
                    raise RuntimeError(f"step {step}: model trained on {dev}, not {device}")
            diag = sug.info.get("diagnostics") or {}
            if "backend" in diag:
                row["backend"] = diag["backend"]
            if diag.get("note") or diag.get("warning"):
                row["note"] = diag.get("note") or diag.get("warning")
            y_new = np.array([problem.evaluate(p) for p in space.decode(pts)])
            X, y = np.vstack([X, pts]), np.concatenate([y, y_new])
        _sync()
    except Exception as e:  # report every failure as one row, keep checking the others
        row["ok"] = False
        text = str(e).strip().splitlines()
        row["error"] = f"{type(e).__name__}: {text[0] if text else ''}"[:160]
    row["seconds"] = time.perf_counter() - t0
    return row


def time_bocli(n: int, repeats: int) -> float:
    import torch

    from bocli.engine import suggest

    problem, X, y = _problem_data(n)
    best = float("inf")
    for r in range(repeats):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        suggest(problem.space, X, y, surrogate="gp", acquisition="ei", seed=r, device="cuda")
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def time_plain_botorch(n: int, repeats: int) -> float:
    """The same work against botorch directly (as ``benchmarks/bench_suggest.py``), on CUDA."""
    import torch
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms.outcome import Standardize
    from botorch.optim import optimize_acqf
    from gpytorch.mlls import ExactMarginalLogLikelihood

    _, X, y = _problem_data(n)
    tkw: dict[str, Any] = {"dtype": torch.float64, "device": torch.device("cuda")}
    best = float("inf")
    for r in range(repeats):
        torch.manual_seed(r)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        train_X = torch.as_tensor(X, **tkw)
        yy = -y  # hartmann6 is minimized
        train_Y = torch.as_tensor((yy - yy.mean()) / yy.std(), **tkw).unsqueeze(-1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = SingleTaskGP(train_X, train_Y, outcome_transform=Standardize(m=1))
            fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
            acqf = qLogNoisyExpectedImprovement(model, X_baseline=train_X, prune_baseline=True)
            bounds = torch.stack([torch.zeros(6, **tkw), torch.ones(6, **tkw)])
            optimize_acqf(
                acqf,
                bounds=bounds,
                q=1,
                num_restarts=10,
                raw_samples=512,
                options={"batch_limit": 8, "maxiter": 200},
            )
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--surrogates", default="", help="comma list (default: all registered)")
    parser.add_argument("--acquisitions", default="", help="comma list (default: all)")
    parser.add_argument("--sizes", default="1024,4096", help="gp timing sizes")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--require-cuda", action="store_true", help="exit 1 without CUDA")
    parser.add_argument(
        "--cpu-dry-run",
        action="store_true",
        help="run the pair table on the CPU (tests the script)",
    )
    args = parser.parse_args()

    import torch

    device = "cpu" if args.cpu_dry_run else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print(
            "gpu_check: no CUDA device (torch.cuda.is_available() is False); nothing to check "
            "here; run it on a machine with a GPU (tests/surrogates/test_dtype_device.py is the "
            "CPU analogue)"
        )
        return 1 if args.require_cuda else 0

    from bocli.acquisition import ACQUISITIONS, check_compatible
    from bocli.errors import UserError
    from problems import get_problem
    from surrogates import surrogate_names

    space = get_problem("hartmann6").space
    surrogates = [s for s in args.surrogates.split(",") if s] or surrogate_names()
    acquisitions = [a for a in args.acquisitions.split(",") if a] or list(ACQUISITIONS)
    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu (dry run)"
    print(f"device: {name}; torch {torch.__version__}")
    try:
        from surrogates._numpyro_bnn import jax_device

        print(f"jax gpu backend: {'yes' if jax_device('gpu') is not None else 'no (hmc on CPU)'}")
    except ImportError:
        print("jax: not installed (hmc pairs fail)")

    rows = []
    for sur in surrogates:
        for acq in acquisitions:
            try:
                check_compatible(sur, acq, space)
            except UserError:
                continue
            row = check_pair(sur, acq, args.steps, device)
            rows.append(row)
            extra = " ".join(f"{k}={row[k]}" for k in ("backend", "note") if row.get(k))
            status = "ok" if row["ok"] else f"error  {row['error']}"
            print(f"{row['pair']:<22} {row['seconds']:7.1f} s  {status}  {extra}".rstrip())
            sys.stdout.flush()
    failed = [r for r in rows if not r["ok"]]
    print(f"\n{len(rows) - len(failed)} of {len(rows)} pairs ok ({args.steps} steps, {device})")
    for r in failed:
        print(f"  FAILED {r['pair']}: {r['error']}")

    if not args.skip_timing and device == "cuda":
        print("\ngp + ei suggest on cuda, d = 6 (seconds, best of", args.repeats, "repeats)")
        print(f"{'n':>6} {'bocli':>9} {'botorch':>9} {'ratio':>6}")
        time_bocli(64, 1)  # CUDA context, kernels and lazy imports outside the timings
        for n in (int(s) for s in args.sizes.split(",") if s):
            try:
                tb = time_bocli(n, args.repeats)
                tp = time_plain_botorch(n, args.repeats)
                print(f"{n:>6} {tb:>9.2f} {tp:>9.2f} {tb / tp:>6.2f}")
            except Exception as e:  # e.g. out of memory at a large n: report it, keep going
                print(f"{n:>6} error: {type(e).__name__}: {str(e).strip()[:120]}")
            sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
