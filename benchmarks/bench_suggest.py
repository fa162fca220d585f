"""Wall time of one `suggest` (fit + acquisition optimization) per acquisition, the overhead of bocli
over a hand-written botorch loop doing the same work, and `bocli --help` start-up time.

    python benchmarks/bench_suggest.py [--sizes 20,100,500] [--acquisitions ei,kg,...] [--repeats 3]

Targets on a 2-core machine: `--help` < 0.5 s; gp + ei `suggest` at n = 100 within 1.2x of the plain
botorch loop (measured side by side, same data, same settings, best of `--repeats`).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _data(n: int, seed: int = 0) -> tuple[object, np.ndarray, np.ndarray]:
    from problems import get_problem

    problem = get_problem("hartmann6")
    rng = np.random.default_rng(seed)
    X = rng.random((n, 6))
    y = np.array([problem.evaluate(p) for p in problem.space.decode(X)])
    return problem, X, y


def time_suggest(acquisition: str, n: int, repeats: int) -> float:
    from bocli.engine import suggest

    problem, X, y = _data(n)
    best = float("inf")
    for r in range(repeats):
        t0 = time.perf_counter()
        suggest(problem.space, X, y, acquisition=acquisition, seed=r, n_init=1)
        best = min(best, time.perf_counter() - t0)
    return best


def time_plain_botorch(n: int, repeats: int) -> float:
    """The same work written directly against botorch: standardize, SingleTaskGP, fit_gpytorch_mll,
    qLogNEI, optimize_acqf with bocli's optimizer settings."""
    import torch
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms.outcome import Standardize
    from botorch.optim import optimize_acqf
    from gpytorch.mlls import ExactMarginalLogLikelihood

    _, X, y = _data(n)
    best = float("inf")
    for r in range(repeats):
        torch.manual_seed(r)
        t0 = time.perf_counter()
        train_X = torch.as_tensor(X, dtype=torch.float64)
        yy = -y
        train_Y = torch.as_tensor((yy - yy.mean()) / yy.std(), dtype=torch.float64).unsqueeze(-1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = SingleTaskGP(train_X, train_Y, outcome_transform=Standardize(m=1))
            fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        acqf = qLogNoisyExpectedImprovement(model, X_baseline=train_X, prune_baseline=True)
        bounds = torch.stack([torch.zeros(6), torch.ones(6)]).double()
        optimize_acqf(
            acqf,
            bounds=bounds,
            q=1,
            num_restarts=10,
            raw_samples=512,
            options={"batch_limit": 8, "maxiter": 200},
        )
        best = min(best, time.perf_counter() - t0)
    return best


def time_help(repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "bocli", "--help"], check=True, capture_output=True, cwd=ROOT
        )
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20,100,500")
    parser.add_argument("--acquisitions", default="ei,ucb,kg,mes,gibbon,jes,ts,random")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    acqs = args.acquisitions.split(",")

    print(f"bocli --help start-up: {time_help(args.repeats):.3f} s (target < 0.5 s)\n")
    time_suggest("random", 20, 1)  # warm imports
    print("suggest wall time (s), gp surrogate, Hartmann6 (6-D), q = 1, best of", args.repeats)
    print(f"{'acquisition':<12}" + "".join(f"{'n=' + str(n):>10}" for n in sizes))
    for a in acqs:
        row = [time_suggest(a, n, 1 if n >= 500 else args.repeats) for n in sizes]
        print(f"{a:<12}" + "".join(f"{t:>10.2f}" for t in row), flush=True)
    plain = time_plain_botorch(100, args.repeats)
    ours = time_suggest("ei", 100, args.repeats)
    print(
        f"\ngp + ei at n = 100: bocli {ours:.2f} s, plain botorch {plain:.2f} s, "
        f"ratio {ours / plain:.2f} (target <= 1.2)"
    )


if __name__ == "__main__":
    main()
