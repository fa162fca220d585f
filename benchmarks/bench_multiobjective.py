"""Seconds per multi-objective suggestion: 2 and 3 objectives, n = 50 and 200 observations, the
``gp`` and ``ensemble`` surrogates, ``ei`` (qLogNEHVI) and ``parego`` (qLogNParEGO), q = 1.

Data: Sobol points of DTLZ2 (d = 6) and their true values; every suggestion goes through
``bocli.engine.suggest``, the function ``bocli ask`` uses, in this process (imports and botorch's
one-time log-EHVI kernel build are warmed up first and not timed). Prints a table of the median
(and worst) wall seconds per suggestion over the repeats, with the fit / acquisition split.

    python benchmarks/bench_multiobjective.py                  # the full table, 2 repeats
    python benchmarks/bench_multiobjective.py --sizes 50 --surrogates gp --repeats 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objectives", type=int, nargs="+", default=[2, 3])
    ap.add_argument("--sizes", type=int, nargs="+", default=[50, 200])
    ap.add_argument("--surrogates", nargs="+", default=["gp", "ensemble"])
    ap.add_argument("--acquisitions", nargs="+", default=["ei", "parego"])
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    import torch

    from bocli.engine import suggest
    from problems import get_problem

    torch.set_num_threads(1)  # one thread per suggestion, as a compare cell runs
    rows = []
    for m in args.objectives:
        problem = get_problem(f"dtlz2:dim=6,num_objectives={m}")
        space = problem.space
        for n in args.sizes:
            X = space.sobol(n, seed=0)
            Y = np.array([list(problem.evaluate_outcomes(p).values()) for p in space.decode(X)])
            for sur in args.surrogates:
                for acq in args.acquisitions:
                    suggest(space, X[:12], Y[:12], surrogate=sur, acquisition=acq, n_init=4)
                    times, fits, acqs = [], [], []
                    for r in range(args.repeats):
                        t0 = time.perf_counter()
                        s = suggest(space, X, Y, surrogate=sur, acquisition=acq, seed=r, n_init=4)
                        times.append(time.perf_counter() - t0)
                        fits.append(s.info["fit_seconds"])
                        acqs.append(s.info["acq_seconds"])
                    rows.append((m, n, sur, acq, statistics.median(times), max(times),
                                 statistics.median(fits), statistics.median(acqs)))  # fmt: skip
                    print(_line(rows[-1]), flush=True)
    print()
    print("| objectives | n | surrogate | acquisition | median s | worst s | fit s | acq s |")
    print("|---:|---:|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(_line(r))


def _line(r: tuple) -> str:
    m, n, sur, acq, med, worst, fit, acq_s = r
    return f"| {m} | {n} | {sur} | {acq} | {med:.2f} | {worst:.2f} | {fit:.2f} | {acq_s:.2f} |"


if __name__ == "__main__":
    main()
