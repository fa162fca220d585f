"""Per-evaluation overhead of ``bocli run``'s loop: the study store against an older bocli.

Runs the same thing in this checkout and in an older revision of bocli (default: the last one
whose ``bocli run`` kept its state in ``trials.csv`` + ``config.json``): a 4-D float space, the
``random`` acquisition (so no model is fitted), a trivial objective, 200 evaluations, written to a
run folder, in a fresh process each time. Prints a table of wall seconds per evaluation.

    python benchmarks/bench_run_overhead.py                 # 200 evaluations, 3 repeats
    python benchmarks/bench_run_overhead.py --evals 500 --baseline-rev 154da89
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE_REV = "154da89"  # the CSV-state loop (before `bocli run` drove a study)

SCRIPT = """
import sys, tempfile, time
from pathlib import Path
from bocli.run import RunConfig, run_optimization
from bocli.space import Space
from problems.base import Problem

def trivial(p):
    return sum((v - 0.5) ** 2 for v in p.values())

space = Space.from_dict({
    "parameters": [{"name": f"x{i}", "type": "float", "low": 0, "high": 1} for i in range(4)],
    "objective": {"name": "y", "direction": "minimize"},
})
problem = Problem(name="trivial", space=space, fn=trivial)
n = int(sys.argv[1])
with tempfile.TemporaryDirectory() as tmp:
    run_optimization(problem, RunConfig("trivial", acquisition="random", budget=2, seed=1),
                     Path(tmp) / "warm")  # imports and first-call costs out of the timing
    t0 = time.perf_counter()
    trials = run_optimization(problem, RunConfig("trivial", acquisition="random", budget=n),
                              Path(tmp) / "run")
    wall = time.perf_counter() - t0
assert len(trials) == n
print(wall)
"""


def _time(tree: Path, evals: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(evals)],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def _checkout(rev: str, dest: Path) -> Path:
    data = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--evals", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline-rev", default=BASELINE_REV)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {
            f"csv loop ({args.baseline_rev})": _checkout(args.baseline_rev, Path(tmp)),
            "study loop (this checkout)": ROOT,
        }
        results = {}
        for _ in range(args.repeats):  # interleaved, so machine load hits both alike
            for name, tree in trees.items():
                results.setdefault(name, []).append(_time(tree, args.evals))
    base = statistics.median(next(iter(results.values())))
    print(f"{args.evals} evaluations, random acquisition, trivial 4-D objective, "
          f"median of {args.repeats} runs")  # fmt: skip
    print(f"{'loop':<34} {'total s':>8} {'ms/eval':>8} {'vs csv':>7}")
    for name, walls in results.items():
        med = statistics.median(walls)
        print(f"{name:<34} {med:8.2f} {1000 * med / args.evals:8.2f} {med / base:7.2f}x")


if __name__ == "__main__":
    main()
