"""Wall time of a comparison grid (the quick preset by default) with 1 vs K local worker processes.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_compare.py            # quick preset, 1 vs 2
    .venv/bin/python benchmarks/bench_compare.py --workers 1,2,4 --keep cmp   # keep the results

Each run starts from an empty results directory. Prints, per worker count: wall seconds, the CPU
seconds spent inside cells (sum over cells, measured in the worker processes), the speed-up over one
worker, whether the results are identical to the one-worker run, and the load average of the machine
(on a shared machine, other work steals cores and the speed-up shrinks). Then the Markdown rank
table of the first run (what `bocli report DIR --format md` prints).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from bocli.compare import CompareConfig, load_results, preset, run_grid
from bocli.report import write_report

TIME_COLUMNS = ["fit_seconds", "acq_seconds", "eval_seconds"]


def _comparable(out: Path) -> list[dict]:
    ev = load_results(out)["evaluations"].drop(columns=TIME_COLUMNS)
    keys = ["problem", "surrogate", "acquisition", "seed", "trial"]
    return ev.sort_values(keys).reset_index(drop=True).to_dict("records")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--keep", default=None, help="keep the results under this folder")
    args = parser.parse_args()

    settings = preset(args.preset)
    seeds = list(range(settings.pop("seeds")))
    config = CompareConfig(**settings, seeds=seeds)
    counts = [int(k) for k in args.workers.split(",")]
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_compare_"))
    print(
        f"grid: {len(config.problems)} problems x {len(config.surrogates)} surrogates "
        f"({','.join(config.surrogates)}) x {len(config.acquisitions)} acquisitions x "
        f"{len(seeds)} seeds = {len(config.cells())} cells, budget {config.budget}, "
        f"init {config.n_init}; {os.cpu_count()} CPUs"
    )
    rows = []
    base_wall = None
    reference = None
    try:
        for k in counts:
            out = root / f"workers{k}"
            shutil.rmtree(out, ignore_errors=True)
            load0 = os.getloadavg()[0]
            t0 = time.perf_counter()
            summary = run_grid(config, out, workers=k)
            wall = time.perf_counter() - t0
            cells = load_results(out)["cells"]
            cpu = float(cells["cpu_seconds"].sum()) if "cpu_seconds" in cells else float("nan")
            same = None
            if reference is None:
                reference = _comparable(out)
            else:
                same = _comparable(out) == reference
            base_wall = base_wall or wall
            rows.append((k, wall, cpu, base_wall / wall, same, summary.failed, load0))
        print()
        print("| workers | wall s | CPU s in cells | speed-up | identical to 1st | failed | load |")
        print("|---:|---:|---:|---:|:---:|---:|---:|")
        for k, wall, cpu, speedup, same, failed, load in rows:
            flag = "-" if same is None else ("yes" if same else "NO")
            print(
                f"| {k} | {wall:.1f} | {cpu:.1f} | {speedup:.2f}x | {flag} | {failed} | {load:.1f} |"
            )
        print()
        print(write_report(load_results(root / f"workers{counts[0]}"), None, "md"))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
