"""``bocli run`` drives a study: killed and resumed, nothing finished is lost or repeated.

Every test goes through the real CLI in subprocesses. The objective appends each call (its
parameters and the value it returned) to a side file, so a test can count evaluations.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from bocli.storage import StudyStorage

ROOT = Path(__file__).resolve().parents[2]
BOCLI = [sys.executable, "-m", "bocli"]

OBJECTIVE = """
import json, os, time

def f(p):
    time.sleep(float(os.environ.get("BOCLI_TEST_SLEEP", "0")))
    value = 0.0
    for k in sorted(p):
        v = p[k]
        value += float(v) if isinstance(v, (int, float)) else 0.1 * len(str(v))
    if os.environ.get("BOCLI_TEST_FAIL_ABOVE") and p["x"] > float(os.environ["BOCLI_TEST_FAIL_ABOVE"]):
        with open(os.environ["BOCLI_TEST_LOG"], "a", encoding="utf-8") as log:
            log.write(json.dumps({"params": p, "value": None}) + "\\n")
        raise RuntimeError("too hot")
    with open(os.environ["BOCLI_TEST_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps({"params": p, "value": value}) + "\\n")
    return value
"""

SPACE = """
parameters:
  - {name: x, type: float, low: 0, high: 1}
  - {name: n, type: int, low: 1, high: 5}
  - {name: solvent, type: categorical, choices: ["a,b", 'say "hi"', "x;y", "é ü", "1,5"]}
objective: {name: yield, direction: minimize}
"""


def _env(d: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BOCLI_TEST_LOG": str(d / "calls.jsonl"),
        **extra,
    }


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "obj.py").write_text(OBJECTIVE)
    (tmp_path / "space.yaml").write_text(SPACE, encoding="utf-8")
    return tmp_path


def _run_args(d: Path, *more: str) -> list[str]:
    return ["run", f"{d / 'obj.py'}:f", "--space", str(d / "space.yaml"), *more]


def _bocli(d: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*BOCLI, *args],
        env=env or _env(d),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=d,
    )


def _calls(d: Path) -> list[dict]:
    path = d / "calls.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]


def _key(params: dict) -> str:
    return json.dumps(params, sort_keys=True)


def _one_error_line(res: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in res.stderr.split("\n") if ln.strip()]
    assert res.returncode == 2, res.stderr
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    return lines[0]


def _wait_for_finished(csv: Path, n: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if csv.exists():
            try:
                done = pd.read_csv(csv, keep_default_na=False)["status"].isin(["complete"]).sum()
            except Exception:  # an empty file between runs: try again
                done = 0
            if done >= n:
                return
        time.sleep(0.05)
    raise AssertionError(f"{csv}: fewer than {n} finished evaluations in {timeout} s")


def check_run_is_whole(d: Path, out: Path, budget: int) -> None:
    """Every trial id once, every complete trial evaluated once (twice at most if it was in
    flight at a kill), the export equal to what the objective returned, ``best`` agrees."""
    with StudyStorage.open(out / "study.db") as st:
        trials = st.trials()
        space = st.settings.space
    assert [t.trial_id for t in trials] == list(range(budget))
    assert all(t.state == "complete" for t in trials), [(t.trial_id, t.state) for t in trials]
    calls = Counter(_key(c["params"]) for c in _calls(d))
    returned = {_key(c["params"]): c["value"] for c in _calls(d)}
    for t in trials:
        assert 1 <= calls[_key(t.params)] <= 2, (t.trial_id, calls[_key(t.params)])
        assert t.value == returned[_key(t.params)]
    export = pd.read_csv(out / "trials.csv", keep_default_na=False, dtype=str)
    assert list(export["trial_id"].astype(int)) == list(range(budget))
    for t, (_, row) in zip(trials, export.iterrows(), strict=True):
        assert float(row["yield"]) == t.value
        for p in space.parameters:
            assert space.validate({**t.params, p.name: row[p.name]})[p.name] == t.params[p.name]
    best = json.loads(_bocli(d, "best", str(out / "study.db"), "--format", "json").stdout)
    assert best["value"] == min(t.value for t in trials)


def test_killed_with_two_workers_then_resumed_loses_and_repeats_nothing(folder: Path) -> None:
    d, out = folder, folder / "run"
    args = _run_args(d, "--budget", "10", "--init", "10", "--workers", "2", "--out", str(out))
    env = _env(d, BOCLI_TEST_SLEEP="0.4")
    proc = subprocess.Popen([*BOCLI, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    _wait_for_finished(out / "trials.csv", 3)
    os.killpg(proc.pid, signal.SIGKILL)  # the run, its workers and their objective processes
    proc.wait(timeout=30)
    with StudyStorage.open(out / "study.db") as st:
        in_flight = [t.trial_id for t in st.trials() if t.state == "pending"]
    assert in_flight, "the kill should have caught evaluations in flight"

    res = subprocess.run(
        [*BOCLI, *args, "--resume"], env=env, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    assert "evaluating again the trials in flight" in res.stderr
    check_run_is_whole(d, out, 10)


def test_resume_keeps_the_saved_settings_and_applies_explicit_ones(folder: Path) -> None:
    d, out = folder, folder / "run"
    first = _bocli(d, *_run_args(d, "--budget", "5", "--init", "20", "--out", str(out)))
    assert first.returncode == 0, first.stderr
    # no options: the saved budget (5) holds, not the default (30)
    again = _bocli(d, "run", "--out", str(out), "--resume", "--format", "json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["evaluations"] == 5
    # explicit options that can apply are applied and printed, one line each
    more = _bocli(d, "run", "--out", str(out), "--resume", "--budget", "8", "--batch", "2")
    assert more.returncode == 0, more.stderr
    assert "resume: budget 5 -> 8" in more.stderr and "resume: batch 1 -> 2" in more.stderr
    with StudyStorage.open(out / "study.db") as st:
        assert len(st.trials()) == 8
    # and ones that cannot are refused with one line, changing nothing
    before = (out / "study.db").read_bytes()
    line = _one_error_line(_bocli(d, "run", "branin", "--out", str(out), "--resume"))
    assert "cannot change on resume" in line
    line = _one_error_line(_bocli(d, "run", "--out", str(out), "--resume", "--seed", "7"))
    assert "--seed" in line
    assert (out / "study.db").read_bytes() == before
    check_run_is_whole(d, out, 8)


def test_run_drives_an_ask_tell_study_and_leaves_asked_trials_to_the_person(folder: Path) -> None:
    d = folder
    study = d / "lab.db"
    assert _bocli(d, "init", str(study), "--space", str(d / "space.yaml")).returncode == 0
    asked = _bocli(d, "ask", str(study), "-n", "2", "--format", "json")
    assert asked.returncode == 0, asked.stderr
    res = _bocli(d, "run", f"{d / 'obj.py'}:f", "--study", str(study), "--budget", "6")
    assert res.returncode == 0, res.stderr
    with StudyStorage.open(study) as st:
        trials = st.trials()
    assert [t.state for t in trials] == ["pending"] * 2 + ["complete"] * 4
    assert len(_calls(d)) == 4  # the person's two trials were not evaluated by the run
    assert len({_key(t.params) for t in trials}) == 6  # nor proposed again
    # the person tells theirs later; the run's results are untouched
    for tid, value in ((0, "1.5"), (1, "2.5")):
        told = _bocli(d, "tell", str(study), "--trial", str(tid), "--value", value)
        assert told.returncode == 0, told.stderr
    with StudyStorage.open(study) as st:
        assert [t.state for t in st.trials()] == ["complete"] * 6


def test_failed_points_are_not_proposed_again_and_retry_failed_retries_once(folder: Path) -> None:
    d, out = folder, folder / "run"
    env = _env(d, BOCLI_TEST_FAIL_ABOVE="0.5")
    (d / "floats.yaml").write_text(
        "parameters:\n  - {name: x, type: float, low: 0, high: 1}\n"
        "  - {name: z, type: float, low: -1, high: 1}\nobjective: {name: yield}\n"
    )
    args = ["run", f"{d / 'obj.py'}:f", "--space", str(d / "floats.yaml"), "--budget", "12",
            "--init", "6", "--acquisition", "ei", "--out", str(out)]  # fmt: skip
    res = _bocli(d, *args, env=env)
    assert res.returncode == 0, res.stderr
    with StudyStorage.open(out / "study.db") as st:
        trials, space = st.trials(), st.settings.space
    failed = [t for t in trials if t.state == "failed"]
    assert failed and all("too hot" in (t.error or "") for t in failed)
    X = space.encode([t.params for t in trials])
    bad = {t.trial_id for t in failed}
    gaps = [abs(X[i] - X[j]).max() for i in range(len(X)) for j in range(i) if j in bad]
    assert min(gaps) > 1e-4  # no failed point proposed again (nor one within tolerance of it)
    export = pd.read_csv(out / "trials.csv", keep_default_na=False)
    assert set(export.loc[export["status"] == "failed", "error"]) == {
        "objective raised RuntimeError: too hot"
    } or all("too hot" in e for e in export.loc[export["status"] == "failed", "error"])

    # --retry-failed: each failed trial evaluated once more, under its own id; no new trials
    n_calls = Counter(_key(c["params"]) for c in _calls(d))
    res = _bocli(d, "run", "--out", str(out), "--resume", "--retry-failed", env=_env(d))
    assert res.returncode == 0, res.stderr
    assert "--retry-failed" in res.stderr
    after = Counter(_key(c["params"]) for c in _calls(d))
    with StudyStorage.open(out / "study.db") as st:
        again = st.trials()
    assert len(again) == 12 and all(t.state == "complete" for t in again)
    for t in failed:
        assert after[_key(t.params)] == n_calls[_key(t.params)] + 1
    for t in trials:
        if t.state == "complete":
            assert after[_key(t.params)] == n_calls[_key(t.params)]
            assert again[t.trial_id].value == t.value


def test_a_second_run_on_the_same_study_is_refused(folder: Path) -> None:
    d, out = folder, folder / "run"
    env = _env(d, BOCLI_TEST_SLEEP="0.5")
    proc = subprocess.Popen([*BOCLI, *_run_args(d, "--budget", "30", "--init", "30", "--out", str(out))],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _wait_for_finished(out / "trials.csv", 1)
        res = _bocli(d, "run", "--study", str(out / "study.db"), "--budget", "40", env=env)
        line = _one_error_line(res)
        assert "another `bocli run` is driving this study" in line
    finally:
        proc.kill()
        proc.wait()


def test_a_run_folder_of_the_old_format_is_refused_with_what_to_do(folder: Path) -> None:
    d, out = folder, folder / "old"
    out.mkdir()
    (out / "config.json").write_text('{"problem": "branin"}')
    (out / "trials.csv").write_text("trial,x0,x1,status,value\n0,1,2,complete,3.5\n")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    line = _one_error_line(_bocli(d, "run", "branin", "--out", str(out), "--resume"))
    assert "older bocli" in line and "another --out" in line
    line = _one_error_line(_bocli(d, "run", "branin", "--out", str(out)))
    assert "older bocli" in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_resumed_from_another_folder_finds_its_objective_again(folder: Path) -> None:
    d = folder
    first = _bocli(d, "run", "obj.py:f", "--space", "space.yaml", "--budget", "3", "--out", "run")
    assert first.returncode == 0, first.stderr
    elsewhere = d / "elsewhere"
    elsewhere.mkdir()
    res = subprocess.run([*BOCLI, "run", "--out", "../run", "--resume", "--budget", "5"],
                         env=_env(d), capture_output=True, text=True, timeout=300, cwd=elsewhere)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert not list(elsewhere.iterdir())  # nothing written where it was resumed from
    check_run_is_whole(d, d / "run", 5)


def test_a_registered_problem_with_settings_resumes(folder: Path) -> None:
    """``NAME:key=value`` is a registered problem, not a module:function objective, on resume too."""
    d, out = folder, folder / "run"
    first = _bocli(
        d, "run", "branin:noise_std=0.1", "-a", "random", "--budget", "3", "--out", str(out)
    )
    assert first.returncode == 0, first.stderr
    res = _bocli(d, "run", "--out", str(out), "--resume", "--budget", "4", "--format", "json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["evaluations"] == 4


def test_a_run_in_which_every_evaluation_failed_exits_non_zero(folder: Path) -> None:
    d, out = folder, folder / "run"
    env = _env(d, BOCLI_TEST_FAIL_ABOVE="-1")
    res = _bocli(d, *_run_args(d, "--budget", "3", "--out", str(out)), env=env)
    assert res.returncode == 1
    assert "all 3 evaluations failed" in res.stderr and "too hot" in res.stderr


# ----- property: killed at random moments, resumed until done (slow: many processes) -------------
def check_killed_run(d: Path, out: Path, budget: int) -> None:
    """After any number of kills: dense ids, ``budget`` trials that are not abandoned, all of them
    complete; no trial evaluated more than twice (once more only if it was in flight at a kill);
    the export is exactly what the objective returned, and ``best`` agrees with it."""
    with StudyStorage.open(out / "study.db") as st:
        trials = st.trials()
        space = st.settings.space
    assert [t.trial_id for t in trials] == list(range(len(trials)))
    kept = [t for t in trials if t.state != "abandoned"]
    assert len(kept) == budget and all(t.state == "complete" for t in kept)
    calls = Counter(_key(c["params"]) for c in _calls(d))
    returned = {_key(c["params"]): c["value"] for c in _calls(d)}
    for t in trials:
        assert calls[_key(t.params)] <= 2 and (t.state != "complete" or calls[_key(t.params)])
        assert t.state != "complete" or t.value == returned[_key(t.params)]
    export = pd.read_csv(out / "trials.csv", keep_default_na=False, dtype=str)
    assert list(export["trial_id"].astype(int)) == [t.trial_id for t in trials]
    for t, (_, row) in zip(trials, export.iterrows(), strict=True):
        assert row["status"] == t.state
        if t.state == "complete":
            assert float(row[space.objective.name]) == t.value
        for p in space.parameters:
            assert space.validate({**t.params, p.name: row[p.name]})[p.name] == t.params[p.name]
    best = json.loads(_bocli(d, "best", str(out / "study.db"), "--format", "json").stdout)
    assert best["value"] == min(t.value for t in kept)


def _kill_and_resume(d: Path, space_file: Path, budget: int, workers: int, delays: list[float],
                     *extra: str, sleep: float = 0.5) -> tuple[Path, int]:  # fmt: skip
    """Run, SIGKILL the whole process group after each delay, resume, until the run finishes;
    returns the run folder and how many kills caught evaluations in flight."""
    out = d / "run"
    base = ["run", f"{d / 'obj.py'}:f", "--space", str(space_file), "--budget", str(budget),
            "--init", str(budget), "--workers", str(workers), "--out", str(out), *extra]  # fmt: skip
    env = _env(d, BOCLI_TEST_SLEEP=str(sleep))
    hits = 0
    for delay in [*delays, None]:
        args = [*base, "--resume"] if (out / "study.db").exists() else base
        proc = subprocess.Popen([*BOCLI, *args], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
        try:
            _, err = proc.communicate(timeout=delay if delay is not None else 600)
            assert proc.returncode == 0, err  # it finished before the kill
            break
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            if (out / "study.db").exists():
                with StudyStorage.open(out / "study.db") as st:
                    hits += any(t.state == "pending" for t in st.trials())
    return out, hits


@pytest.mark.slow
def test_killed_at_random_moments_then_resumed_never_loses_or_repeats(tmp_path: Path) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from bocli.space import CategoricalParam, FloatParam, IntParam, Objective, Space
    from tests.bocli.test_space import legal_names, legal_text

    @st.composite
    def spaces(draw: st.DrawFn) -> Space:
        names = draw(st.lists(legal_names, min_size=2, max_size=4, unique_by=str.casefold))
        params: list = [FloatParam("x", 0.0, 1.0)]
        for name in names[1:]:
            if name.casefold() == "x":
                continue
            kind = draw(st.sampled_from(["float", "int", "cat"]))
            if kind == "float":
                params.append(FloatParam(name, -2.0, 3.0))
            elif kind == "int":
                params.append(IntParam(name, 1, 9))
            else:
                choices = draw(st.lists(legal_text, min_size=2, max_size=4, unique=True))
                params.append(CategoricalParam(name, tuple(choices)))
        objective = names[0] if names[0].casefold() != "x" else "yield"
        return Space(tuple(params), Objective(objective, "minimize"))

    counter = iter(range(10**6))
    kills: list[int] = []

    @settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        space=spaces(),
        workers=st.integers(1, 3),
        budget=st.integers(5, 9),
        delays=st.lists(st.floats(3.0, 7.0), min_size=1, max_size=3),
    )
    def check(space: Space, workers: int, budget: int, delays: list[float]) -> None:
        d = tmp_path / f"example{next(counter)}"
        d.mkdir()
        (d / "obj.py").write_text(OBJECTIVE)
        spec = {"parameters": [p.to_dict() for p in space.parameters],
                "objective": {"name": space.objective.name, "direction": "minimize"}}  # fmt: skip
        (d / "space.json").write_text(json.dumps(spec), encoding="utf-8")
        # evaluations of 1.5 s: runs outlast the 3-7 s kill delays however fast bocli starts
        out, hits = _kill_and_resume(d, d / "space.json", budget, workers, delays, sleep=1.5)
        check_killed_run(d, out, budget)
        kills.append(hits)

    check()
    assert sum(kills) >= 2, kills  # the kills did catch evaluations in flight


@pytest.mark.slow
def test_killed_on_a_dask_cluster_then_resumed(folder: Path) -> None:
    d, out = folder, folder / "run"
    args = _run_args(d, "--budget", "8", "--init", "8", "--scheduler", "local:2", "--out", str(out))
    env = _env(d, BOCLI_TEST_SLEEP="1.0")
    proc = subprocess.Popen([*BOCLI, *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    _wait_for_finished(out / "trials.csv", 2, timeout=300)
    os.killpg(proc.pid, signal.SIGKILL)  # the run, the scheduler and the cluster's workers
    proc.wait(timeout=30)
    with StudyStorage.open(out / "study.db") as st:
        assert any(t.state == "pending" for t in st.trials())  # evaluations were in flight
    res = subprocess.run([*BOCLI, *args, "--resume"], env=env, capture_output=True, text=True,
                         timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stderr
    check_killed_run(d, out, 8)
