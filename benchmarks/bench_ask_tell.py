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
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

N_OBS = 50


def cold(cmd: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one fresh process; its CPU seconds (user + sys) go to ``LAST_CPU``."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    LAST_CPU.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    return dt


LAST_CPU: list[float] = []


def timed(fn: Any, reps: int) -> tuple[list[float], list[float]]:
    """Run ``fn`` (which calls ``cold`` once) ``reps`` times: wall and CPU seconds."""
    global LAST_CPU
    LAST_CPU = []
    walls = [fn() for _ in range(reps)]
    return walls, list(LAST_CPU)


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

        floor = timed(lambda: cold([sys.executable, "-c", "import torch, botorch"], env), args.reps)
        helps = timed(lambda: cold([*bocli, "--help"], env), args.reps)

        def ask_once() -> float:
            (work / "b.csv").unlink(missing_ok=True)
            return cold([*bocli, "ask", str(fresh()), "-n", "1", "-o", str(work / "b.csv")], env)

        def tell_once() -> float:
            # one pending trial (as an ask leaves it), its result filled in
            from bocli.storage import NewTrial, StudyStorage

            study = fresh()
            with StudyStorage.open(study) as st:
                params = {n: 0.5 for n in st.settings.space.names}
                st.reserve([NewTrial(params)])
            row = ",".join(["50", *("0.5" for _ in params), "-1.5"])
            (work / "filled.csv").write_text(f"trial_id,{','.join(params)},value\n{row}\n")
            return cold([*bocli, "tell", str(study), str(work / "filled.csv")], env)

        asks = timed(ask_once, args.reps)
        tells = timed(tell_once, args.reps)

        def tell50_once() -> float:
            # telling the 50-row history again: parse, validate and match every row
            return cold([*bocli, "tell", str(fresh()), str(work / "history.csv")], env)

        tells50 = timed(tell50_once, args.reps)
        status = timed(lambda: cold([*bocli, "status", str(fresh())], env), args.reps)

        # the same ask in-process (imports already paid), to separate model time from start-up
        from bocli.storage import StudyStorage
        from bocli.study import ask, observations

        warm, warm_cpu = [], []
        for _ in range(args.reps):
            study = fresh()
            t0, c0 = time.perf_counter(), time.process_time()
            res = ask(study, 1)
            warm.append(time.perf_counter() - t0)
            warm_cpu.append(time.process_time() - c0)
        with StudyStorage.open(study) as st:
            X, _, _ = observations(st.settings.space, st.trials())
        assert len(X) == N_OBS and res.info["phase"] == "model"

    rows = [
        ("python -c 'import torch, botorch' (floor of any ask)", floor, None),
        ("bocli --help", helps, None),
        (f"bocli ask -n 1   (gp+ei, {N_OBS} obs, 6-D)", asks, 4.0),
        ("  ask in-process: fit + optimize only", (warm, warm_cpu), None),
        ("bocli tell        (1 row)", tells, 1.0),
        (f"bocli tell        ({N_OBS} rows, all already stored)", tells50, 1.0),
        ("bocli status", status, 1.0),
    ]
    print(f"\ncold-process times, {args.reps} runs each, OMP_NUM_THREADS={args.threads}, "
          f"{os.cpu_count()} CPUs visible, load average {os.getloadavg()[0]:.1f}\n")  # fmt: skip
    print(f"{'command':<52} {'wall s':>7} {'min s':>6} {'cpu s':>6} {'target':>7}  ok")
    print("-" * 88)
    for name, (walls, cpus), target in rows:
        med = statistics.median(walls)
        ok = "" if target is None else ("yes" if med < target else "NO")
        tgt = "" if target is None else f"< {target:g}"
        cpu = statistics.median(cpus)
        print(f"{name:<52} {med:>7.2f} {min(walls):>6.2f} {cpu:>6.2f} {tgt:>7}  {ok}")
    print("\nwall s: median wall time; cpu s: median user+sys CPU time of the process (on a busy "
          "machine, wall time >> cpu time; on an idle one they are close)")  # fmt: skip


if __name__ == "__main__":
    main()
