"""The CLI: start-up cost, `bocli run` through CliRunner, user errors, and a real subprocess run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from bocli.cli import cli

ROOT = Path(__file__).resolve().parents[2]
BOCLI = [sys.executable, "-m", "bocli"]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """Commands that write a default runs/ directory write it under tmp_path."""
    monkeypatch.chdir(tmp_path)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_help_does_not_import_torch():
    code = textwrap.dedent(
        """
        import sys
        from bocli.cli import main
        sys.argv = ["bocli", "--help"]
        try:
            main()
        except SystemExit:
            pass
        heavy = [m for m in ("torch", "botorch", "gpytorch", "jax", "numpyro", "pandas") if m in sys.modules]
        assert not heavy, heavy
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env())
    assert out.returncode == 0, out.stderr
    assert "run" in out.stdout and "problems" in out.stdout


def test_every_listed_command_has_help_with_an_example():
    runner = CliRunner()
    for name in cli.list_commands(None):  # type: ignore[arg-type]
        res = runner.invoke(cli, [name, "--help"])
        assert res.exit_code == 0, (name, res.output)
        assert "Example" in res.output, name


def test_registry_listings_json():
    runner = CliRunner()
    probs = json.loads(runner.invoke(cli, ["problems", "--format", "json"]).output)
    assert {"branin", "hartmann6"} <= {p["name"] for p in probs}
    surs = json.loads(runner.invoke(cli, ["surrogates", "--format", "json"]).output)
    assert "gp" in {s["name"] for s in surs}
    acqs = json.loads(runner.invoke(cli, ["acquisitions", "--format", "json"]).output)
    names = {a["name"] for a in acqs}
    assert {"ei", "kg", "mes", "gibbon", "jes", "ucb", "ts", "random"} <= names
    assert all(a["gp"] for a in acqs)  # the exact GP supports every acquisition


def test_run_saves_every_trial_and_resumes(tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    args = ["run", "branin", "--budget", "6", "--init", "4", "--seed", "3", "--out", str(out)]
    res = runner.invoke(cli, [*args, "--format", "json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert summary["evaluations"] == 6 and summary["regret"] >= 0
    trials = pd.read_csv(out / "trials.csv")
    assert list(trials["trial_id"]) == list(range(6))
    assert list(trials["proposed_by"]) == ["sobol"] * 4 + ["gp+ei"] * 2
    assert (trials["status"] == "complete").all()
    from bocli.run import saved_config
    from bocli.storage import StudyStorage

    with StudyStorage.open(out / "study.db") as st:  # the study is the truth; the CSV its export
        config = saved_config(st)
        assert [t.value for t in st.trials()] == list(trials["value"])
    assert config is not None and config.surrogate == "gp" and config.seed == 3

    # the same command again without --resume refuses to overwrite
    res = runner.invoke(cli, [*args])
    assert res.exit_code == 2 and "--resume" in res.output

    # resume with a larger budget continues; the first rows are untouched
    res = runner.invoke(cli, [*args[:3], "8", *args[4:], "--resume", "--format", "json"])
    assert res.exit_code == 0, res.output
    again = pd.read_csv(out / "trials.csv")
    assert list(again["trial_id"]) == list(range(8))
    pd.testing.assert_frame_equal(again.iloc[:6], trials)

    # resuming with other settings is refused, naming the setting
    res = runner.invoke(cli, [*args, "--resume", "--seed", "4"])
    assert res.exit_code == 2 and "seed" in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "brannin"], "unknown problem 'brannin' (did you mean 'branin'?)"),
        (["run", "branin", "--surrogate-option", "min_nosie=0.1"], "'min_nosie' is not a setting"),
        (["run", "branin", "--surrogate-option", "{bad"], "not valid JSON"),
        (["run", "branin", "--resume", "--out", "/nonexistent/x"], "holds no run to resume"),
        (["run", "x:y", "--space", "/nonexistent.yaml"], "file not found"),
        (["run", "--command", "echo 1"], "needs --space FILE"),
    ],
)
def test_user_errors_are_one_line_exit_2(args, message):
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output


def test_bad_choice_exit_2():
    res = CliRunner().invoke(cli, ["run", "branin", "--acquisition", "eii"])
    assert res.exit_code == 2 and "eii" in res.output


OBJECTIVE = """
import math, os, time
def f(p):
    x = p["x"]
    if 0.45 < x < 0.55:
        raise RuntimeError("simulated crash")
    if x < -0.9:
        return float("nan")
    time.sleep(float(os.environ.get("BOCLI_TEST_SLEEP", "0")))
    return (x - 0.3) ** 2
"""
SPACE = "parameters:\n  - {name: x, type: float, low: -1, high: 1}\nobjective: {name: loss}\n"


@pytest.fixture
def user_objective(tmp_path):
    (tmp_path / "obj.py").write_text(OBJECTIVE)
    (tmp_path / "space.yaml").write_text(SPACE)
    return tmp_path


def test_user_objective_with_timeout_through_the_cli(user_objective):
    d = user_objective
    out = d / "run"
    res = CliRunner().invoke(
        cli,
        [
            "run",
            f"{d / 'obj.py'}:f",
            "--space",
            str(d / "space.yaml"),
            "--budget",
            "6",
            "--init",
            "4",
            "--timeout",
            "30",
            "--out",
            str(out),
            "--format",
            "json",
        ],
    )
    assert res.exit_code == 0, res.output
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 6 and set(trials["status"]) <= {"complete", "failed"}
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert summary["best_value"] == trials["loss"].min()


def test_nan_and_crash_are_failed_trials(user_objective):
    from bocli.run import RunConfig, run_optimization
    from bocli.space import Space
    from problems.user import python_problem

    problem = python_problem(
        f"{user_objective / 'obj.py'}:f", Space.from_file(user_objective / "space.yaml")
    )
    from problems.base import ObjectiveError

    with pytest.raises(ObjectiveError, match="non-finite"):
        problem.evaluate({"x": -0.95})
    with pytest.raises(ObjectiveError, match="simulated crash"):
        problem.evaluate({"x": 0.5})
    trials = run_optimization(problem, RunConfig("obj", acquisition="random", budget=40, seed=1))
    failed = [t for t in trials if t.status == "failed"]
    assert failed and all(t.value is None and t.error for t in failed)
    assert len(trials) == 40 and any(t.status == "complete" for t in trials)


def test_ctrl_c_then_resume_loses_and_repeats_nothing(user_objective):
    d = user_objective
    out = d / "run"
    cmd = [
        *BOCLI,
        "run",
        f"{d / 'obj.py'}:f",
        "--space",
        str(d / "space.yaml"),
        "--budget",
        "8",
        "--init",
        "8",
        "--acquisition",
        "random",
        "--out",
        str(out),
    ]
    env = {**_env(), "BOCLI_TEST_SLEEP": "0.6"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if (out / "trials.csv").exists() and len(
            (out / "trials.csv").read_text().splitlines()
        ) >= 3:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    before = pd.read_csv(out / "trials.csv")
    before = before[before["status"] != "pending"]  # the evaluation Ctrl-C stopped is pending
    assert 2 <= len(before) < 8
    res = subprocess.run(
        [*cmd, "--resume"], env=_env(), capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    after = pd.read_csv(out / "trials.csv")
    assert list(after["trial_id"]) == list(range(8))
    pd.testing.assert_frame_equal(after.iloc[: len(before)], before)
    assert after["x"].nunique() == 8  # nothing evaluated twice


def test_end_to_end_subprocess_run(tmp_path):
    res = subprocess.run(
        [
            *BOCLI,
            "run",
            "branin",
            "--budget",
            "7",
            "--init",
            "5",
            "--out",
            str(tmp_path / "r"),
            "--format",
            "json",
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["evaluations"] == 7 and summary["failed"] == 0
