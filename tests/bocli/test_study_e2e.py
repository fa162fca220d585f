"""The ask -> tell loop as real processes: a Branin run, simultaneous asks, interleaved tells, and a
tell killed with SIGKILL in the middle of its write."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from bocli.space import Space
from bocli.storage import NewTrial, StudyStorage
from bocli.study import init_study
from problems import get_problem

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
SPACE = Space.from_dict(
    {
        "parameters": [
            {"name": "temperature", "type": "float", "low": 20, "high": 80},
            {"name": "conc", "type": "float", "low": 0.001, "high": 1, "log": True},
            {"name": "cycles", "type": "int", "low": 1, "high": 10},
            {"name": "solvent", "type": "categorical", "choices": ["water", "ethanol", "dmso"]},
        ],
        "objective": {"name": "yield", "direction": "maximize"},
    }
)


def bocli(*args: Any, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "bocli", *map(str, args)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=timeout)
    assert out.returncode == 0, f"{cmd}\n{out.stdout}\n{out.stderr}"
    return out


def spawn(*args: Any) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "bocli", *map(str, args)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def finish(p: subprocess.Popen[str], timeout: float = 300) -> str:
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, f"{p.args}\n{out}\n{err}"
    return out


def fill(path: Path, fn: Any, objective: str) -> None:
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    for r in rows:
        r[objective] = repr(fn(r))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)


@pytest.mark.slow
def test_branin_loop_reaches_low_regret(tmp_path: Path) -> None:
    """init, then 15 rounds of ask (n=2) -> evaluate -> tell, each a fresh process."""
    prob = get_problem("branin")
    study = tmp_path / "branin.db"
    bocli("init", study, "--problem", "branin", "--seed", 0)
    batch = tmp_path / "batch.csv"

    def branin(row: dict[str, str]) -> float:
        return prob.evaluate({"x0": float(row["x0"]), "x1": float(row["x1"])})

    for _ in range(15):
        bocli("ask", study, "-n", 2, "-o", batch, "--force")  # replaces the told batch
        fill(batch, branin, "value")
        bocli("tell", study, batch)
    info = json.loads(bocli("status", study, "--format", "json").stdout)
    assert (info["trials"], info["complete"], info["pending"]) == (30, 30, 0)
    best = json.loads(bocli("best", study, "--format", "json").stdout)
    assert best["regret"] < 0.1, best


def _assert_distinct_asks(study: Path, before: int) -> None:
    procs = [spawn("ask", study, "--format", "json") for _ in range(4)]
    items = [json.loads(finish(p))[0] for p in procs]
    assert sorted(i["trial_id"] for i in items) == list(range(before, before + 4))
    with StudyStorage.open(study) as st:
        trials = st.trials()
    assert len(trials) == before + 4
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == before + 4
    assert [t.state for t in trials[before:]] == ["pending"] * 4


@pytest.mark.slow
def test_four_simultaneous_asks_get_four_distinct_trials(tmp_path: Path) -> None:
    study = tmp_path / "s.db"
    init_study(study, problem="branin", n_init=4, check_models=False)
    _assert_distinct_asks(study, 0)  # Sobol design: same seed, so only the re-check separates them
    prob = get_problem("branin")
    history = tmp_path / "history.csv"
    rows = [{"x0": -5 + 15 * (i / 5), "x1": 15 * ((i * 3 % 6) / 5)} for i in range(6)]
    history.write_text(
        "x0,x1,value\n" + "".join(f"{r['x0']},{r['x1']},{prob.evaluate(r)!r}\n" for r in rows)
    )
    bocli("tell", study, history)  # 10 trials issued, 6 complete: the model proposes from now on
    _assert_distinct_asks(study, 10)
    with StudyStorage.open(study) as st:
        assert {t.proposed_by for t in st.trials()[10:]} == {"gp+ei"}


def test_interleaved_tells_lose_nothing(tmp_path: Path) -> None:
    study = tmp_path / "s.db"
    init_study(study, space=SPACE, check_models=False)
    rng = random.Random(0)
    pts = SPACE.decode([[rng.random() for _ in range(4)] for _ in range(48)])
    with StudyStorage.open(study) as st:
        st.reserve([NewTrial(p) for p in pts[:36]])
    header = "trial_id,temperature,conc,cycles,solvent,yield\n"

    def line(tid: int | str, p: dict[str, Any], v: float) -> str:
        return f"{tid},{p['temperature']!r},{p['conc']!r},{p['cycles']},{p['solvent']},{v!r}\n"

    # 4 processes, 3 files each: 9 results for pending trials + 1 historical row per file
    files: list[list[Path]] = [[] for _ in range(4)]
    for k in range(4):
        for j in range(3):
            ids = range(k * 9 + j * 3, k * 9 + j * 3 + 3)
            body = "".join(line(i, pts[i], i + 0.5) for i in ids)
            body += line("", pts[36 + k * 3 + j], 100.0 + k * 3 + j)
            path = tmp_path / f"w{k}-{j}.csv"
            path.write_text(header + body)
            files[k].append(path)
    procs = [
        subprocess.Popen(
            ["sh", "-c", " && ".join(f"{sys.executable} -m bocli tell {study} {f}" for f in fs)],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for fs in files
    ]
    for p in procs:
        finish(p)
    with StudyStorage.open(study) as st:
        trials = st.trials()
        events = st.events()
    assert len(trials) == 48 and len(events) == 48
    assert all(t.state == "complete" for t in trials)
    assert [t.value for t in trials[:36]] == [i + 0.5 for i in range(36)]
    assert sorted(t.value for t in trials[36:]) == [100.0 + i for i in range(12)]


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import bocli.storage as storage
    from bocli.study import tell_file

    study, csv_path, marker = sys.argv[1:4]
    real_insert = storage._Writer.insert
    count = 0

    def slow_insert(self, t, source=None):
        global count
        count += 1
        if count == 50:  # half of the rows are written inside the open transaction
            Path(marker).write_text("mid-write")
            time.sleep(60)
        return real_insert(self, t, source)

    storage._Writer.insert = slow_insert
    tell_file(study, csv_path)
    """
)


def _big_file(tmp_path: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    pts = SPACE.decode([[rng.random() for _ in range(4)] for _ in range(n)])
    body = "".join(
        f",{p['temperature']!r},{p['conc']!r},{p['cycles']},{p['solvent']},{rng.random()!r}\n"
        for p in pts
    )
    path = tmp_path / f"history-{seed}.csv"
    path.write_text("trial_id,temperature,conc,cycles,solvent,yield\n" + body)
    return path


def test_tell_killed_mid_write_stores_all_or_nothing(tmp_path: Path) -> None:
    study = tmp_path / "s.db"
    init_study(study, space=SPACE, check_models=False)
    with StudyStorage.open(study) as st:
        st.reserve([NewTrial(SPACE.decode([[0.5] * 4])[0])])
    (tmp_path / "one.csv").write_text(
        "trial_id,temperature,conc,cycles,solvent,yield\n"
        + "0,50,{},6,ethanol,1.0\n".format(SPACE.decode([[0.5] * 4])[0]["conc"])
    )
    big = _big_file(tmp_path, 100, 0)
    # the pending trial's result and the 100 rows go in one file
    big.write_text(big.read_text() + (tmp_path / "one.csv").read_text().splitlines()[1] + "\n")
    marker = tmp_path / "marker"
    p = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(study), str(big), str(marker)], env=ENV
    )
    deadline = time.time() + 120
    while not marker.exists():
        assert p.poll() is None and time.time() < deadline, "tell ended before the marker"
        time.sleep(0.02)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    with StudyStorage.open(study) as st:  # recovers from the WAL; the lock died with the process
        trials = st.trials()
        assert [(t.state, t.value) for t in trials] == [("pending", None)] and st.events() == []
    # the same file told again, now uninterrupted: every row
    out = bocli("tell", study, big)
    assert "1 completed, 100 imported" in out.stdout
    with StudyStorage.open(study) as st:
        assert len(st.trials()) == 101 and st.trials()[0].state == "complete"


def test_tell_killed_at_random_moments_stores_all_or_nothing(tmp_path: Path) -> None:
    study = tmp_path / "s.db"
    init_study(study, space=SPACE, check_models=False)
    rng = random.Random(1)
    expected = 0
    for k in range(3):
        big = _big_file(tmp_path, 2000, k)
        p = spawn("tell", study, big)
        time.sleep(rng.uniform(0.2, 1.5))
        p.send_signal(signal.SIGKILL)
        p.wait()
        with StudyStorage.open(study) as st:
            n = len(st.trials())
        assert n in (expected, expected + 2000), n
        expected = n
    # telling the three files again, uninterrupted, stores each row exactly once
    for k in range(3):
        bocli("tell", study, tmp_path / f"history-{k}.csv")
    with StudyStorage.open(study) as st:
        assert len(st.trials()) == 6000
