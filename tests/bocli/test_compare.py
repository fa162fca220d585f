"""Comparison grids: cells, storage, resume after an interruption or a crash, failures, the CLI."""

from __future__ import annotations

import concurrent.futures as cf
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest
from click.testing import CliRunner

from bocli import compare as cmp
from bocli.cli import cli
from bocli.compare import CompareConfig, load_results, run_grid

TIME_COLUMNS = ["fit_seconds", "acq_seconds", "eval_seconds"]


def tiny(**kw) -> CompareConfig:
    """One 1-d problem, gp with EI (one model iteration) and random search, two seeds."""
    base = dict(
        problems=["forrester"],
        surrogates=["gp"],
        acquisitions=["ei", "random"],
        seeds=[0, 1],
        budget=4,
        n_init=3,
        calibration_points=32,
    )
    return CompareConfig(**{**base, **kw})


def ledger(out: Path) -> list[dict[str, str]]:
    with (out / "cells.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def eval_rows(out: Path) -> list[dict[str, str]]:
    with (out / "evaluations.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_grid_runs_every_cell_and_records_each_evaluation(tmp_path):
    out = tmp_path / "g"
    seen = []
    summary = run_grid(tiny(), out, on_cell=seen.append)
    assert (summary.total, summary.ok, summary.failed, summary.skipped) == (4, 4, 0, 0)
    assert [str(r.cell) for r in seen] == [
        "forrester gp/ei seed 0",
        "forrester gp/random seed 0",
        "forrester gp/ei seed 1",
        "forrester gp/random seed 1",
    ]
    res = load_results(out)
    ev = res["evaluations"]
    assert len(ev) == 4 * 4
    assert set(ev.columns) >= {"value", "best_so_far", "regret", "fit_seconds", "acq_seconds"}
    for _, g in ev.groupby(["acquisition", "seed"]):
        g = g.sort_values("trial")
        assert list(g["trial"]) == [0, 1, 2, 3]
        # best so far is the running minimum (forrester is minimized), regret >= 0
        assert list(g["best_so_far"]) == list(g["value"].cummin())
        assert (g["regret"] >= 0).all()
    # the same initial design for every cell of one problem and seed
    for seed in (0, 1):
        init = ev[(ev["seed"] == seed) & (ev["phase"] == "init")]
        by_acq = {a: list(g.sort_values("trial")["params"]) for a, g in init.groupby("acquisition")}
        assert by_acq["ei"] == by_acq["random"]
    assert ev[ev["seed"] == 0]["params"].iloc[0] != ev[ev["seed"] == 1]["params"].iloc[0]
    # one calibration row per model refit (EI only: random search fits no model)
    cal = res["calibration"]
    assert len(cal) == 2 and set(cal["acquisition"]) == {"ei"}
    assert ((cal["coverage"] >= 0) & (cal["coverage"] <= 1)).all()
    assert cal["loglik"].notna().all() and (cal["n_train"] == 3).all()
    meta = json.loads((out / "compare.json").read_text())
    assert meta["versions"]["botorch"] and meta["versions"]["python"]
    assert meta["problems_info"]["forrester"]["direction"] == "minimize"


def test_rerun_skips_finished_cells(tmp_path):
    out = tmp_path / "g"
    run_grid(tiny(acquisitions=["random"]), out)
    before = (out / "evaluations.csv").read_bytes()
    seen = []
    summary = run_grid(tiny(acquisitions=["random"]), out, on_cell=seen.append)
    assert seen == [] and summary.skipped == 2
    assert (out / "evaluations.csv").read_bytes() == before
    assert len(json.loads((out / "compare.json").read_text())["commands"]) == 2


def test_interrupted_grid_resumes_without_recomputing(tmp_path):
    out = tmp_path / "g"
    first = []

    def stop_after_two(result):
        first.append(result.cell)
        if len(first) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_grid(tiny(), out, on_cell=stop_after_two)
    done_rows = eval_rows(out)
    assert len(ledger(out)) == 2 and len(done_rows) == 2 * 4

    second = []
    summary = run_grid(tiny(), out, on_cell=lambda r: second.append(r.cell))
    assert summary.skipped == 2 and summary.ok == 2
    assert not set(first) & set(second)  # nothing computed twice
    rows = eval_rows(out)
    assert rows[: len(done_rows)] == done_rows  # nothing lost or rewritten
    keys = [(r["problem"], r["surrogate"], r["acquisition"], r["seed"]) for r in ledger(out)]
    assert len(keys) == len(set(keys)) == 4
    per_cell = {}
    for r in rows:
        per_cell.setdefault((r["acquisition"], r["seed"]), []).append(int(r["trial"]))
    assert all(sorted(t) == [0, 1, 2, 3] for t in per_cell.values()) and len(per_cell) == 4


def test_crash_between_rows_and_ledger_reruns_that_cell_once(tmp_path, monkeypatch):
    out = tmp_path / "g"
    real = cmp._append_csv
    calls = {"ledger": 0}

    def crashing(path, fields, rows):
        if path.name == "cells.csv":
            calls["ledger"] += 1
            if calls["ledger"] == 2:  # the 2nd cell's rows are on disk, its ledger row is not
                raise KeyboardInterrupt
        real(path, fields, rows)

    monkeypatch.setattr(cmp, "_append_csv", crashing)
    config = tiny(acquisitions=["random"], seeds=[0, 1, 2])
    with pytest.raises(KeyboardInterrupt):
        run_grid(config, out)
    assert len(eval_rows(out)) == 2 * 4 and len(ledger(out)) == 1
    # and a torn, half-written line at the end of the table
    with (out / "evaluations.csv").open("a") as f:
        f.write("forrester,gp,random,2,0,init,compl")
    monkeypatch.setattr(cmp, "_append_csv", real)
    seen = []
    run_grid(config, out, on_cell=lambda r: seen.append(r.cell.seed))
    assert seen == [1, 2]
    rows = eval_rows(out)
    assert len(rows) == 3 * 4
    assert sorted((r["seed"], r["trial"]) for r in rows) == sorted(
        (str(s), str(t)) for s in range(3) for t in range(4)
    )
    assert len(load_results(out)["evaluations"]) == 12


def test_failing_cell_is_recorded_and_the_grid_goes_on(tmp_path, monkeypatch):
    import bocli.run

    real = bocli.run.run_optimization

    def flaky(problem, config, *a, **kw):
        if config.seed == 0:
            raise RuntimeError("surrogate exploded")
        return real(problem, config, *a, **kw)

    monkeypatch.setattr(bocli.run, "run_optimization", flaky)
    out = tmp_path / "g"
    summary = run_grid(tiny(acquisitions=["random"]), out)
    assert (summary.ok, summary.failed) == (1, 1)
    rows = {r["seed"]: r for r in ledger(out)}
    assert rows["0"]["status"] == "failed"
    assert "RuntimeError: surrogate exploded" in rows["0"]["error"]
    assert rows["1"]["status"] == "ok" and rows["1"]["n_evaluations"] == "4"
    # a failed cell is finished: not rerun, unless asked
    assert run_grid(tiny(acquisitions=["random"]), out).skipped == 2
    monkeypatch.setattr(bocli.run, "run_optimization", real)
    seen = []
    run_grid(tiny(acquisitions=["random"]), out, retry_failed=True, on_cell=seen.append)
    assert [r.cell.seed for r in seen] == [0] and seen[0].status == "ok"
    res = load_results(out)
    assert list(res["cells"]["status"]) == ["ok", "ok"] and len(res["evaluations"]) == 8


class _DyingPool(cf.Executor):
    """Runs the first cell, then behaves like a pool whose worker process was killed."""

    def __init__(self) -> None:
        self.n = 0

    def submit(self, fn, /, *args, **kwargs):
        fut: cf.Future = cf.Future()
        self.n += 1
        if self.n == 1:
            fut.set_result(fn(*args, **kwargs))
        else:
            fut.set_exception(BrokenProcessPool("a child process terminated abruptly"))
        return fut


def test_dead_worker_process_is_not_blamed_on_a_cell(tmp_path):
    out = tmp_path / "g"
    config = tiny(acquisitions=["random"])
    with pytest.raises(cmp.CompareError, match=r"worker process died .* run the same command"):
        run_grid(config, out, executor=_DyingPool())
    assert [r["status"] for r in ledger(out)] == ["ok"]  # the lost cell is not recorded
    assert run_grid(config, out).ok == 1


def test_incompatible_pair_fails_its_cells_without_running(tmp_path, monkeypatch):
    from bocli import acquisition

    def check(surrogate, acq, space=None):
        if acq == "ei":
            raise acquisition.IncompatiblePairError(f"{surrogate} cannot serve {acq}")

    monkeypatch.setattr(acquisition, "check_compatible", check)
    out = tmp_path / "g"
    summary = run_grid(tiny(seeds=[0]), out)
    assert (summary.ok, summary.failed) == (1, 1)
    row = next(r for r in ledger(out) if r["acquisition"] == "ei")
    assert "cannot serve ei" in row["error"] and row["n_evaluations"] == "0"


def test_resume_with_other_settings_is_refused_but_the_grid_may_grow(tmp_path):
    out = tmp_path / "g"
    run_grid(tiny(acquisitions=["random"], seeds=[0]), out)
    with pytest.raises(cmp.CompareError, match="budget=4, not 5"):
        run_grid(tiny(acquisitions=["random"], seeds=[0], budget=5), out)
    summary = run_grid(tiny(acquisitions=["random"], seeds=[0, 1]), out)
    assert (summary.skipped, summary.ok) == (1, 1)
    meta = json.loads((out / "compare.json").read_text())
    assert meta["config"]["seeds"] == [0, 1]


def test_names_are_checked_before_anything_runs(tmp_path):
    with pytest.raises(Exception, match="unknown problem 'nope'"):
        run_grid(tiny(problems=["forrester", "nope"]), tmp_path / "a")
    with pytest.raises(cmp.CompareError, match="unknown acquisition 'eii'"):
        run_grid(tiny(acquisitions=["eii"]), tmp_path / "b")
    with pytest.raises(cmp.CompareError, match="repeated"):
        run_grid(tiny(seeds=[0, 0]), tmp_path / "c")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_parquet_table_needs_pyarrow_or_works(tmp_path):
    import importlib.util

    config = tiny(acquisitions=["random"], seeds=[0], table="parquet")
    if importlib.util.find_spec("pyarrow") is None:
        with pytest.raises(cmp.CompareError, match="pyarrow"):
            run_grid(config, tmp_path / "p")
        return
    run_grid(config, tmp_path / "p")
    assert len(load_results(tmp_path / "p")["evaluations"]) == 4


def test_quick_preset_keeps_installed_surrogates():
    from surrogates.registry import surrogate_names

    p = cmp.preset("quick")
    assert "gp" in p["surrogates"] and set(p["surrogates"]) <= set(surrogate_names())
    with pytest.raises(cmp.CompareError, match="unknown preset"):
        cmp.preset("huge")


# ---------------------------------------------------------------------------------- CLI


def test_cli_compare_then_report(tmp_path):
    out = tmp_path / "c"
    args = [
        "compare", "--problems", "forrester", "--acquisitions", "random", "--seeds", "2",
        "--budget", "3", "--init", "2", "--out", str(out), "--format", "json",
    ]  # fmt: skip
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["ok"] == 2
    meta = json.loads((out / "compare.json").read_text())
    argv = meta["commands"][-1]["argv"]
    assert argv[:2] == ["bocli", "compare"] and "--problems" in argv and "forrester" in argv
    r = CliRunner().invoke(cli, args)
    assert json.loads(r.output.strip().splitlines()[-1])["already_finished"] == 2

    r = CliRunner().invoke(cli, ["report", str(out), "--format", "md"])
    assert r.exit_code == 0, r.output
    assert "| gp/random |" in r.output and "mean rank" in r.output
    r = CliRunner().invoke(cli, ["report", str(out), "-o", str(tmp_path / "r.html")])
    assert r.exit_code == 0 and (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    "args, message",
    [
        (["compare", "--out", "X"], "--problems: give at least one problem"),
        (["compare", "--problems", "nope", "--out", "X"], "unknown problem 'nope'"),
        (["compare", "--problems", "branin", "--surrogates", "zz", "--out", "X"], "unknown surrogate"),
        (["compare", "--problems", "branin", "--surrogate-option", "gp=1", "--out", "X"], "NAME.KEY=VALUE"),
        (["report", "NOWHERE"], "no compare.json"),
    ],
)  # fmt: skip
def test_cli_user_errors_are_one_line(tmp_path, args, message):
    args = [str(tmp_path / a) if a in ("X", "NOWHERE") else a for a in args]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output


# ---------------------------------------------------------------- parallel executors


def _second_surrogate() -> tuple[str, dict]:
    from surrogates.registry import surrogate_names

    if "ensemble" not in surrogate_names():
        pytest.skip("needs a second surrogate (ensemble)")
    return "ensemble", {"num_members": 3, "width": 16, "steps": 60}


def _comparable(out: Path) -> tuple[list, list]:
    res = load_results(out)
    keys = ["problem", "surrogate", "acquisition", "seed", "trial"]
    ev = res["evaluations"].drop(columns=TIME_COLUMNS).sort_values(keys).reset_index(drop=True)
    cal = res["calibration"].sort_values([*keys[:4], "refit"]).reset_index(drop=True)
    # an empty cell (e.g. a single-objective run's hypervolume) reads as NaN, and NaN != NaN
    ev, cal = (df.astype(object).where(df.notna(), None) for df in (ev, cal))
    return ev.to_dict("records"), cal.to_dict("records")


@pytest.mark.slow
def test_local_processes_and_dask_give_identical_results(tmp_path):
    name, opts = _second_surrogate()
    config = CompareConfig(
        problems=["forrester", "branin"],
        surrogates=["gp", name],
        acquisitions=["ei"],
        seeds=[0, 1],
        budget=5,
        n_init=3,
        surrogate_options={name: opts},
        calibration_points=32,
    )
    a = run_grid(config, tmp_path / "proc", workers=2)
    b = run_grid(config, tmp_path / "dask", scheduler="local:2")
    cells_a = load_results(tmp_path / "proc")["cells"].sort_values(cmp.CELL_KEYS)
    cells_b = load_results(tmp_path / "dask")["cells"].sort_values(cmp.CELL_KEYS)
    # a cell that fails (an upstream optimizer error, say) must fail the same way on both
    assert a.ok + a.failed == 8 and a.ok >= 6, cells_a["error"].tolist()
    assert (a.ok, a.failed) == (b.ok, b.failed)
    same = [*cmp.CELL_KEYS, "status", "error", "n_evaluations"]
    assert cells_a[same].to_dict("records") == cells_b[same].to_dict("records")
    workers = set(cells_a["worker"]) | set(cells_b["worker"])
    assert f"{socket.gethostname()}:{os.getpid()}" not in workers  # not inline
    ev_a, cal_a = _comparable(tmp_path / "proc")
    ev_b, cal_b = _comparable(tmp_path / "dask")
    assert len(ev_a) == a.ok * 5 and len(cal_a) >= a.ok * 2
    assert ev_a == ev_b
    assert cal_a == cal_b


@pytest.mark.slow
def test_killed_compare_process_resumes_without_loss_or_recompute(tmp_path):
    out = tmp_path / "k"
    cmd = [
        sys.executable, "-m", "bocli", "compare", "--problems", "forrester,branin",
        "--acquisitions", "ei,random", "--seeds", "2", "--budget", "5", "--init", "3",
        "--calibration-points", "16", "--out", str(out), "--format", "json",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if (out / "cells.csv").exists() and len(ledger(out)) >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.stderr.read().decode()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {(r["problem"], r["acquisition"], r["seed"]): r for r in ledger(out)}
    assert 2 <= len(before) < 8
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["already_finished"] == len(before) and summary["ok"] == 8 - len(before)
    after = ledger(out)
    keys = [(x["problem"], x["acquisition"], x["seed"]) for x in after]
    assert len(keys) == len(set(keys)) == 8
    for x in after:  # cells finished before the kill were not run again
        k = (x["problem"], x["acquisition"], x["seed"])
        if k in before:
            assert (
                x["worker"] == before[k]["worker"] and x["finished_at"] == before[k]["finished_at"]
            )
    ev = load_results(out)["evaluations"]
    assert len(ev) == 8 * 5
    assert not ev.duplicated(["problem", "acquisition", "seed", "trial"]).any()
