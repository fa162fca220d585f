"""Does ``dkl``'s feature extractor learn, and does it pay? ``dkl`` vs ``gp`` on functions where a
learned warping should help (a sine and a sharp step along a non-axis-aligned direction in 4-D) and
on Hartmann6, at n = 40 and 80 training points, 500 held-out points, several seeds.

Columns: feature shift (mean |g(x) - x| per coordinate over the training inputs, unit-cube units),
held-out predictive log-likelihood per point of noisy observations (standardized units; higher is
better), RMSE of the predictive mean, fit seconds, and how often ``dkl`` kept the network (``used``).

    OMP_NUM_THREADS=1 python benchmarks/bench_dkl.py [--seeds 3] [--sizes 40,80] [--dkl key=val,...]
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from botorch.test_functions import Hartmann

from surrogates import make_surrogate

NOISE_SD = 0.05  # observation noise, in standardized units of the noiseless function
W4 = torch.tensor([1.0, -1.0, 0.5, 0.8], dtype=torch.float64)
W4 = W4 / W4.norm()


def _sin_proj(X: torch.Tensor) -> torch.Tensor:
    return torch.sin(6 * (X @ W4))


def _step_proj(X: torch.Tensor) -> torch.Tensor:
    return torch.tanh(25 * (X @ W4 - 0.3))


def _hartmann6(X: torch.Tensor) -> torch.Tensor:
    return -Hartmann(dim=6)(X)  # maximize


PROBLEMS = {
    "sin-proj4": (_sin_proj, 4),
    "step-proj4": (_step_proj, 4),
    "hartmann6": (_hartmann6, 6),
}


def make_data(problem: str, n: int, n_test: int = 500, seed: int = 0):
    """Uniform train/test inputs; y standardized by the noiseless train stats, plus N(0, NOISE_SD^2)."""
    f, d = PROBLEMS[problem]
    g = torch.Generator().manual_seed(1000 + seed)
    X = torch.rand(n + n_test, d, generator=g, dtype=torch.float64)
    y = f(X)
    y = (y - y[:n].mean()) / y[:n].std()
    y = y + NOISE_SD * torch.randn(y.shape, generator=g, dtype=torch.float64)
    return X[:n], y[:n, None], X[n:], y[n:]


def heldout_ll_rmse(model, Xt: torch.Tensor, yt: torch.Tensor) -> tuple[float, float]:
    """Mean Gaussian predictive log-likelihood of ``yt`` (with observation noise) and RMSE."""
    with torch.no_grad():
        post = model.posterior(Xt, observation_noise=True)
        m, v = post.mean.squeeze(-1), post.variance.squeeze(-1).clamp_min(1e-12)
    ll = -(0.5 * torch.log(2 * math.pi * v) + 0.5 * (yt - m) ** 2 / v).mean()
    return float(ll), float((yt - m).pow(2).mean().sqrt())


def run_one(name: str, opts: dict, problem: str, n: int, seed: int) -> dict:
    X, Y, Xt, yt = make_data(problem, n, seed=seed)
    torch.manual_seed(seed)
    sur = make_surrogate(name, opts)
    t0 = time.perf_counter()
    model = sur.fit(X, Y)
    secs = time.perf_counter() - t0
    ll, rmse = heldout_ll_rmse(model, Xt, yt)
    d = getattr(sur, "diagnostics", {}) or {}
    shift = 0.0
    net = getattr(model, "feature_extractor", None)
    if net is not None:  # measured here, so the number means the same before and after changes
        with torch.no_grad():
            shift = float((net(X) - X).abs().mean())
    return {
        "ll": ll,
        "rmse": rmse,
        "s": secs,
        "shift": shift,
        "used": float(d.get("selected", "dkl") == "dkl") if name == "dkl" else float("nan"),
    }


def _parse(s: str) -> dict:
    out: dict = {}
    for kv in filter(None, s.split(",")):
        k, v = kv.split("=")
        out[k] = v
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--problems", default="sin-proj4,step-proj4,hartmann6")
    ap.add_argument("--sizes", default="40,80")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--dkl", default="", help="dkl options, key=val,key=val")
    ap.add_argument("--surrogates", default="gp,dkl")
    args = ap.parse_args()
    torch.set_num_threads(1)
    dkl_opts = _parse(args.dkl)
    hdr = f"{'problem':<11} {'n':>3} {'model':<5} {'shift':>6} {'LL':>7} {'RMSE':>6} {'fit s':>6} {'used':>5}"
    print(hdr)
    print("-" * len(hdr))
    for problem in args.problems.split(","):
        for n in map(int, args.sizes.split(",")):
            for name in args.surrogates.split(","):
                rs = [
                    run_one(name, dkl_opts if name == "dkl" else {}, problem, n, s)
                    for s in range(args.seeds)
                ]
                avg = {k: sum(r[k] for r in rs) / len(rs) for k in rs[0]}
                used = "" if name != "dkl" else f"{avg['used']:.2f}"
                print(
                    f"{problem:<11} {n:>3} {name:<5} {avg['shift']:>6.3f} {avg['ll']:>7.3f} "
                    f"{avg['rmse']:>6.3f} {avg['s']:>6.2f} {used:>5}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
