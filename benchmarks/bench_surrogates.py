"""Surrogate speed and calibration: fit + suggest wall time at n = 50 and 200 in 6-D, and held-out
NLL / 90%-interval coverage on three problems, printed as one table.

    OMP_NUM_THREADS=1 python benchmarks/bench_surrogates.py [--surrogates gp,ibnn,ibnn-t,dkl,ensemble]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from bocli.engine import suggest
from problems import get_problem
from surrogates import make_surrogate


def heldout_data(problem: str, n: int, n_test: int = 500, seed: int = 0):
    """Uniform random train/test points; y sign-flipped to maximize, standardized by train stats."""
    p = get_problem(problem)
    rng = np.random.default_rng(seed)
    X = rng.random((n + n_test, p.space.dim))
    y = p.space.objective.sign * np.array([p.evaluate(prm) for prm in p.space.decode(X)])
    y = (y - y[:n].mean()) / y[:n].std()
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    return t(X[:n]), t(y[:n, None]), t(X[n:]), t(y[n:])


def nll_coverage(model, Xt: torch.Tensor, yt: torch.Tensor) -> tuple[float, float]:
    """Mean Gaussian predictive NLL and the fraction of ``yt`` inside the central 90% interval."""
    with torch.no_grad():
        post = model.posterior(Xt, observation_noise=True)
        m, v = post.mean.squeeze(-1), post.variance.squeeze(-1).clamp_min(1e-12)
    nll = float((0.5 * torch.log(2 * math.pi * v) + 0.5 * (yt - m) ** 2 / v).mean())
    return nll, float(((yt - m).abs() <= 1.6449 * v.sqrt()).double().mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--surrogates", default="gp,ibnn,ibnn-t,dkl,ensemble")
    ap.add_argument("--problems", default="hartmann6,branin,ackley")
    ap.add_argument("--sizes", default="50,200")
    args = ap.parse_args()
    torch.set_num_threads(1)
    names = args.surrogates.split(",")
    rows = []
    for name in names:
        row = {"surrogate": name}
        for n in map(int, args.sizes.split(",")):
            X, Y, _, _ = heldout_data("hartmann6", n, n_test=0)
            torch.manual_seed(0)
            sur = make_surrogate(name)
            t0, c0 = time.perf_counter(), time.process_time()
            sur.fit(X, Y)
            row[f"fit{n} s (cpu)"] = (
                f"{time.perf_counter() - t0:.1f} ({time.process_time() - c0:.1f})"
            )
            space = get_problem("hartmann6").space
            t0 = time.perf_counter()
            s = suggest(space, X.numpy(), Y.numpy().ravel(), surrogate=name, n_init=2)
            row[f"suggest{n} s"] = f"{time.perf_counter() - t0:.1f}"
            assert s.X.shape == (1, 6)
        for prob in args.problems.split(","):
            X, Y, Xt, yt = heldout_data(prob, 60)
            torch.manual_seed(0)
            nll, cov = nll_coverage(make_surrogate(name).fit(X, Y), Xt, yt)
            const = float((0.5 * math.log(2 * math.pi) + 0.5 * yt**2).mean())
            row[f"{prob} nll/cov"] = f"{nll:.2f}/{cov:.2f} (const {const:.2f})"
        rows.append(row)
        print(row, flush=True)
    cols = list(rows[0])
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r[c]) for c in cols))


if __name__ == "__main__":
    main()
