"""Held-out calibration of every registered surrogate, through the engine's prediction path.

For each surrogate and test function: fit on ``n_train`` noisy observations exactly as
``bocli.engine.suggest`` does (``OutcomeScaling`` then ``sur.fit``), predict the held-out points with
``bocli.engine.predict`` (objective units, noisy-observation predictive), and report

* ``cov90``: the fraction of held-out noisy observations inside mean +- 1.645 sd,
* ``rmse/c``: RMSE of the predictive mean over RMSE of the constant predictor (the train mean),
* ``nll`` / ``nll_c``: mean held-out Gaussian negative log-likelihood, and the constant Gaussian's.

Run: ``python benchmarks/bench_calibration.py [--seeds 2] [--surrogates gp,ibnn] [--functions ...]``
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bocli.engine import OutcomeScaling, import_botorch_without_jax, predict
from bocli.space import Space

Z90 = 1.6448536269514722

# cheap but still calibrated settings for the expensive surrogates
FAST_OPTIONS: dict[str, dict[str, Any]] = {"hmc": {"num_warmup": 100, "num_samples": 100}}


def _branin(X: np.ndarray) -> np.ndarray:
    x1, x2 = 15 * X[:, 0] - 5, 15 * X[:, 1]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * np.cos(x1) + 10


def _hartmann3(X: np.ndarray) -> np.ndarray:
    from problems import get_problem

    p = get_problem("hartmann3")
    return np.array([p.fn(prm) for prm in p.space.decode(X)], dtype=np.float64)


def _smooth(X: np.ndarray) -> np.ndarray:
    return np.sin(3 * X[:, 0]) + np.cos(4 * X[:, 1]) + 0.5 * X[:, 0] * X[:, 1]


@dataclass(frozen=True)
class Function:
    name: str
    dim: int
    fn: Callable[[np.ndarray], np.ndarray]  # unit cube -> noiseless values
    noise: float  # observation noise sd, as a fraction of the function's sd


FUNCTIONS = {
    # smooth, roughly symmetric values
    "smooth2": Function("smooth2", 2, _smooth, 0.05),
    # smooth, left-skewed values (skewness ~ -1.2: mostly near zero, a deep well)
    "hartmann3": Function("hartmann3", 3, _hartmann3, 0.05),
    # clearly right-skewed (skewness ~1.5): exp of a smooth function
    "expsmooth2": Function("expsmooth2", 2, lambda X: np.exp(1.5 * _smooth(X)), 0.05),
    # Branin: right-skewed (skewness ~1.3), large dynamic range
    "branin": Function("branin", 2, _branin, 0.05),
}


def make_space(dim: int) -> Space:
    return Space.from_dict(
        {
            "parameters": [
                {"name": f"x{i}", "type": "float", "low": 0.0, "high": 1.0} for i in range(dim)
            ],
            "objective": {"name": "y", "direction": "minimize"},
        }
    )


def make_data(
    f: Function, n_train: int, n_test: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Uniform random inputs and noisy observations (noise sd ``f.noise`` x the function's sd)."""
    rng = np.random.default_rng(seed)
    X = rng.random((n_train + n_test, f.dim))
    clean = f.fn(X)
    ref = f.fn(np.random.default_rng(12345).random((4000, f.dim)))
    y = clean + f.noise * float(ref.std()) * rng.standard_normal(len(clean))
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def evaluate(
    surrogate: str,
    f: Function,
    seed: int,
    n_train: int = 36,
    n_test: int = 300,
    options: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Fit ``surrogate`` as ``suggest`` does and score ``predict`` on held-out noisy data."""
    import_botorch_without_jax()
    import torch

    from surrogates import make_surrogate

    X, y, Xt, yt = make_data(f, n_train, n_test, seed)
    space = make_space(f.dim)
    Y = y.reshape(-1, 1)
    scaling = OutcomeScaling.fit(space, Y)
    tkw = {"dtype": torch.float64}
    opts = FAST_OPTIONS.get(surrogate, {}) if options is None else options
    sur = make_surrogate(surrogate, opts)
    t0 = time.perf_counter()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        np.random.seed(seed)
        model = sur.fit(
            torch.as_tensor(X, **tkw),
            torch.as_tensor(scaling.to_model(Y), **tkw),
            cat_dims=sorted(space.cat_dims()),
        )
        preds = predict(model, torch.as_tensor(Xt, **tkw), space, Y)
    seconds = time.perf_counter() - t0
    if preds is None:
        raise RuntimeError(f"{surrogate} on {f.name}: predict returned None")
    m = np.array([p["mean"] for p in preds])
    s = np.array([p["sd"] for p in preds])
    s = np.maximum(s, 1e-12)
    const_m, const_s = float(y.mean()), float(y.std())
    rmse = float(np.sqrt(np.mean((yt - m) ** 2)))
    rmse_c = float(np.sqrt(np.mean((yt - const_m) ** 2)))

    def nll(mu: Any, sd: Any) -> float:
        return float(np.mean(0.5 * np.log(2 * np.pi * sd**2) + 0.5 * ((yt - mu) / sd) ** 2))

    return {
        "coverage": float(np.mean(np.abs(yt - m) <= Z90 * s)),
        "rmse_ratio": rmse / rmse_c,
        "nll": nll(m, s),
        "nll_const": nll(const_m, const_s),
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> None:
    from surrogates import surrogate_names

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--surrogates", default=",".join(surrogate_names()))
    ap.add_argument("--functions", default=",".join(FUNCTIONS))
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--n-train", type=int, default=36)
    ap.add_argument("--n-test", type=int, default=300)
    a = ap.parse_args(argv)
    print(
        f"{'surrogate':10} {'function':11} {'cov90':>6} {'rmse/c':>7} {'nll':>8} {'nll_c':>7}"
        f" {'sec':>6}   per-seed coverage"
    )
    for name in a.surrogates.split(","):
        for fname in a.functions.split(","):
            rows = [
                evaluate(name, FUNCTIONS[fname], s, a.n_train, a.n_test) for s in range(a.seeds)
            ]
            avg = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
            per = " ".join(f"{r['coverage']:.2f}" for r in rows)
            print(
                f"{name:10} {fname:11} {avg['coverage']:6.3f} {avg['rmse_ratio']:7.3f}"
                f" {avg['nll']:8.3f} {avg['nll_const']:7.3f} {avg['seconds']:6.1f}   {per}",
                flush=True,
            )


if __name__ == "__main__":
    main()
