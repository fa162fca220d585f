"""``bocli run --workers K``: K evaluations of the objective at once, pending points reach the
acquisition, and nothing is proposed twice."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest

from bocli.space import Space
from problems.base import Problem

SPACE = Space.from_dict(
    {
        "parameters": [
            {"name": "x0", "type": "float", "low": 0.0, "high": 1.0},
            {"name": "x1", "type": "float", "low": 0.0, "high": 1.0},
        ],
        "objective": {"name": "y", "direction": "minimize"},
    }
)


@dataclasses.dataclass
class Recorder:
    """An objective that logs (pid, start, end) per call and, for its first ``barrier`` calls, waits
    until that many calls have started: sequential evaluation could never get past it."""

    folder: str
    barrier: int
    hold: float = 0.3

    def __call__(self, params: dict) -> float:
        start = time.time()
        folder = Path(self.folder)
        (folder / f"start-{os.getpid()}-{start!r}").touch()
        deadline = start + 60
        while len(list(folder.glob("start-*"))) < self.barrier and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(self.hold)
        record = {"pid": os.getpid(), "start": start, "end": time.time(), "params": params}
        with (folder / "log.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")
        x0, x1 = params["x0"], params["x1"]
        return (x0 - 0.3) ** 2 + (x1 - 0.7) ** 2 + 0.1 * math.sin(9 * x0)


def _problem(folder: Path, barrier: int) -> Problem:
    return Problem(name="recorded", space=SPACE, fn=Recorder(str(folder), barrier), optimum=None)


def _log(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / "log.jsonl").read_text().splitlines()]


def _max_overlap(records: list[dict]) -> int:
    events = sorted([(r["start"], 1) for r in records] + [(r["end"], -1) for r in records])
    now = best = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


@pytest.fixture
def spy_pending(monkeypatch):
    """Record ``X_pending`` as the EI acquisition receives it (the real acquisition still runs)."""
    from bocli import acquisition

    seen: list[np.ndarray | None] = []
    spec = acquisition.ACQUISITIONS["ei"]

    def propose(ctx):
        pending = ctx.X_pending
        seen.append(None if pending is None else pending.detach().cpu().numpy().copy())
        return spec.propose(ctx)

    monkeypatch.setitem(acquisition.ACQUISITIONS, "ei", dataclasses.replace(spec, propose=propose))
    return seen


def test_workers_evaluate_k_points_at_once_with_pending_points(tmp_path, spy_pending):
    from bocli.run import RunConfig, run_optimization

    k = 3
    problem = _problem(tmp_path, barrier=k)
    config = RunConfig(problem="recorded", budget=8, n_init=3, workers=k, seed=1)
    t0 = time.time()
    trials = run_optimization(problem, config, tmp_path / "run")
    assert time.time() - t0 < 300
    assert len(trials) == 8 and all(t.status == "complete" for t in trials), [
        t.error for t in trials
    ]

    records = _log(tmp_path)
    assert len(records) == 8
    pids = {r["pid"] for r in records}
    assert os.getpid() not in pids and len(pids) == k  # a pool of K processes did the work
    # the first K evaluations all passed the barrier, so they were running at once
    assert _max_overlap(records) == k
    assert all(r["end"] - r["start"] < 60 for r in records)

    # model-based proposals saw the points still running (K - 1 of them while the pool is full);
    # only one made right after every running point finished at once may see none
    n_model = sum(t.phase == "model" for t in trials)
    assert len(spy_pending) == n_model >= 3
    with_pending = [p for p in spy_pending if p is not None]
    assert len(with_pending) >= n_model - 1
    assert any(len(p) == k - 1 for p in with_pending)
    issued = np.array([SPACE.encode([t.params])[0] for t in sorted(trials, key=lambda t: t.trial)])
    for pending in with_pending:
        assert 1 <= len(pending) <= k - 1
        for row in pending:  # each pending point is one already issued
            assert np.min(np.abs(issued - row).max(axis=1)) < 1e-9

    # and no point was proposed twice
    dist = np.abs(issued[:, None, :] - issued[None, :, :]).max(-1) + np.eye(len(issued))
    assert dist.min() > 1e-4

    # trials.csv holds every evaluation once, in trial order
    saved = (tmp_path / "run" / "trials.csv").read_text().splitlines()
    assert len(saved) == 1 + 8
    assert sorted(t.trial for t in trials) == list(range(8))


def test_batch_proposals_fill_the_workers(tmp_path, spy_pending):
    """--batch 2 with --workers 2: the pool is filled by q=2 proposals."""
    from bocli.run import RunConfig, run_optimization

    problem = _problem(tmp_path, barrier=2)
    config = RunConfig(problem="recorded", budget=6, n_init=2, workers=2, batch=2, seed=3)
    trials = run_optimization(problem, config)
    assert len(trials) == 6 and all(t.status == "complete" for t in trials)
    records = _log(tmp_path)
    assert _max_overlap(records) == 2 and len({r["pid"] for r in records}) == 2
    issued = SPACE.encode([t.params for t in trials])
    dist = np.abs(issued[:, None, :] - issued[None, :, :]).max(-1) + np.eye(len(issued))
    assert dist.min() > 1e-4


def test_run_cli_workers_option(tmp_path, monkeypatch):
    """``bocli run --workers 2`` through the CLI (all-Sobol budget, so no model fit is needed)."""
    from click.testing import CliRunner

    from bocli.cli import cli

    r = CliRunner().invoke(
        cli,
        ["run", "branin", "--budget", "4", "--init", "4", "--workers", "2",
         "--out", str(tmp_path / "o"), "--format", "json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["evaluations"] == 4


@pytest.mark.slow
def test_run_on_a_dask_local_cluster(tmp_path):
    pytest.importorskip("distributed")
    from bocli.run import RunConfig, run_optimization

    problem = _problem(tmp_path, barrier=2)
    config = RunConfig(problem="recorded", budget=4, n_init=4, scheduler="local:2", workers=2)
    trials = run_optimization(problem, config)
    assert len(trials) == 4 and all(t.status == "complete" for t in trials)
    records = _log(tmp_path)
    assert _max_overlap(records) == 2 and os.getpid() not in {r["pid"] for r in records}
