"""Cold-process wall time of `bocli ask` and `bocli tell` on a study with 50 observations (6-D).

Each measurement starts a fresh Python process, as a user's shell or a lab pipeline does, on a fresh
copy of the same study (so every ask sees exactly 50 complete trials and no pending ones).

    python benchmarks/bench_ask_tell.py [--reps 5] [--threads 1]

Targets: ask (gp + ei) < 4 s, tell < 1 s. The table also shows the floor every ask pays (starting
Python and importing torch + botorch) and the in-process suggest time, to tell the two apart.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_OBS = 50


def cold(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    return dt


def make_study(path: Path, work: Path) -> None:
    """A hartmann6 study (gp + ei) with N_OBS results told as history."""
    from bocli.study import init_study, tell_file
    from problems import get_problem

    prob = get_problem("hartmann6")
    init_study(path, problem="hartmann6", surrogate="gp", acquisition="ei", check_models=False)
    rng = np.random.default_rng(0)
    names = prob.space.names
    lines = [",".join([*names, "value"])]
    for x in rng.random((N_OBS, len(names))):
        params = dict(zip(names, x.tolist(), strict=True))
        lines.append(",".join([*(repr(v) for v in x.tolist()), repr(prob.evaluate(params))]))
    history = work / "history.csv"
    history.write_text("\n".join(lines) + "\n")
    assert tell_file(path, history).imported == N_OBS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    args = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONWARNINGS": "ignore"}
    bocli = [sys.executable, "-m", "bocli"]
    rows: list[tuple[str, list[float], float | None]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = work / "base.db"
        make_study(base, work)

        def fresh() -> Path:
            path = work / "s.db"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            shutil.copy(base, path)
            return path

        floor = [
            cold([sys.executable, "-c", "import torch, botorch"], env) for _ in range(args.reps)
        ]
        helps = [cold([*bocli, "--help"], env) for _ in range(args.reps)]
        asks, tells, tells50, status = [], [], [], []
        for _ in range(args.reps):
            study = fresh()
            batch = work / "batch.csv"
            batch.unlink(missing_ok=True)
            asks.append(cold([*bocli, "ask", str(study), "-n", "1", "-o", str(batch)], env))
            text = batch.read_text().splitlines()
            batch.write_text(f"{text[0]}\n{text[1]}-1.5\n")  # the value column is last
            tells.append(cold([*bocli, "tell", str(study), str(batch)], env))
            study = fresh()
            # telling the 50-row history again: parse, validate and match every row
            tells50.append(cold([*bocli, "tell", str(study), str(work / "history.csv")], env))
            status.append(cold([*bocli, "status", str(study)], env))

        # the same ask in-process (imports already paid), to separate model time from start-up
        from bocli.storage import StudyStorage
        from bocli.study import ask, observations

        warm = []
        for _ in range(args.reps):
            study = fresh()
            t0 = time.perf_counter()
            res = ask(study, 1)
            warm.append(time.perf_counter() - t0)
        with StudyStorage.open(study) as st:
            X, _, _ = observations(st.settings.space, st.trials())
        assert len(X) == N_OBS and res.info["phase"] == "model"

    rows = [
        ("python -c 'import torch, botorch' (floor of any ask)", floor, None),
        ("bocli --help", helps, None),
        (f"bocli ask -n 1   (gp+ei, {N_OBS} obs, 6-D)", asks, 4.0),
        ("  ask in-process: fit + optimize only", warm, None),
        ("bocli tell        (1 row)", tells, 1.0),
        (f"bocli tell        ({N_OBS} rows, all already stored)", tells50, 1.0),
        ("bocli status", status, 1.0),
    ]
    print(f"\ncold-process wall time, {args.reps} runs each, OMP_NUM_THREADS={args.threads}, "
          f"{os.cpu_count()} CPUs visible\n")  # fmt: skip
    print(f"{'command':<52} {'median s':>9} {'min s':>7} {'max s':>7} {'target':>7}  ok")
    print("-" * 90)
    for name, times, target in rows:
        med = statistics.median(times)
        ok = "" if target is None else ("yes" if med < target else "NO")
        tgt = "" if target is None else f"< {target:g}"
        print(f"{name:<52} {med:>9.2f} {min(times):>7.2f} {max(times):>7.2f} {tgt:>7}  {ok}")


if __name__ == "__main__":
    main()
