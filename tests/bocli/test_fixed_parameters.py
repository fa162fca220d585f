"""Fixed parameters at ask time (``bocli ask --fix NAME=VALUE``, ``bocli run --fix``): every asked
point carries the fixed values, in the design and the model phase, for float, int and categorical
parameters, with and without parameter constraints; a bad ``--fix`` is one line and exit code 2;
``run --fix`` is stored in the run's settings and survives ``--resume``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bocli.cli import cli
from bocli.engine import suggest
from bocli.space import Space, SpaceError
from bocli.storage import StudyStorage

ROOT = Path(__file__).resolve().parents[2]
FAST = {"num_restarts": 1, "raw_samples": 16}

SPEC = {
    "parameters": [
        {"name": "water", "type": "float", "low": 0, "high": 1},
        {"name": "ethanol", "type": "float", "low": 0, "high": 1},
        {"name": "cycles", "type": "int", "low": 1, "high": 10},
        {"name": "solvent", "type": "categorical", "choices": ["a", "b", "c"]},
    ],
    "objective": {"name": "y", "direction": "minimize"},
}
CONSTRAINED = {
    **SPEC,
    "parameter_constraints": ["water + ethanol <= 1", "0.1*cycles + water <= 1.05"],
}
FIXES = [
    {"solvent": "b"},
    {"cycles": 7},
    {"water": 0.25},
    {"solvent": "c", "cycles": 3, "water": 0.5},
]


def _objective(p: dict) -> float:
    return (
        (p["water"] - 0.3) ** 2
        + (p["ethanol"] - 0.6) ** 2
        + 0.02 * p["cycles"]
        + (0.5 if p["solvent"] == "a" else 0.0)
    )


def _check(space: Space, params: list[dict], fixed: dict) -> None:
    for p in params:
        space.validate(p)
        assert space.parameter_constraint_violations(p) == [], p
        for name, value in fixed.items():
            assert p[name] == pytest.approx(value) if isinstance(value, float) else p[name] == value


@pytest.mark.parametrize("spec", [SPEC, CONSTRAINED], ids=["free", "constrained"])
@pytest.mark.parametrize("fixed", FIXES, ids=lambda f: "+".join(f))
def test_design_points_carry_the_fixed_values(spec: dict, fixed: dict) -> None:
    space = Space.from_dict(spec)
    seen = []
    for k in range(5):
        s = suggest(space, np.zeros((0, 4)), np.zeros(0), q=3, n_issued=3 * k, fixed=fixed)
        assert s.info["phase"] == "init"
        _check(space, s.params, fixed)
        seen.extend(map(tuple, s.X))
    assert len(set(seen)) == len(seen)


@pytest.mark.parametrize("spec", [SPEC, CONSTRAINED], ids=["free", "constrained"])
@pytest.mark.parametrize("acquisition", ["ei", "ts", "random"])
def test_model_points_carry_the_fixed_values(spec: dict, acquisition: str) -> None:
    space = Space.from_dict(spec)
    first = suggest(space, np.zeros((0, 4)), np.zeros(0), q=8)
    y = np.array([_objective(p) for p in first.params])
    fixed = {"solvent": "c", "cycles": 3}
    # the model trains on every observation (other solvents too); the proposals keep the fix
    s = suggest(space, first.X, y, q=3, acquisition=acquisition, n_init=4, fixed=fixed, **FAST)
    assert s.info["phase"] == "model"
    _check(space, s.params, fixed)


def test_fixed_float_in_a_continuous_space_with_kg() -> None:
    spec = {
        "parameters": [p for p in SPEC["parameters"] if p["type"] == "float"],
        "parameter_constraints": ["water + ethanol <= 1"],
    }
    space = Space.from_dict(spec)
    first = suggest(space, np.zeros((0, 2)), np.zeros(0), q=6)
    y = np.array([(p["water"] - 0.2) ** 2 + p["ethanol"] for p in first.params])
    s = suggest(
        space,
        first.X,
        y,
        q=1,
        acquisition="kg",
        acquisition_options={"num_fantasies": 4},
        n_init=4,
        fixed={"water": 0.8},
        **FAST,
    )
    _check(space, s.params, {"water": 0.8})


def test_fixing_every_parameter_needs_a_feasible_point() -> None:
    space = Space.from_dict(CONSTRAINED)
    ok = {"water": 0.2, "ethanol": 0.3, "cycles": 4, "solvent": "a"}
    s = suggest(space, np.zeros((0, 4)), np.zeros(0), q=2, fixed=ok)
    assert s.params == [ok, ok]
    with pytest.raises(SpaceError, match="no point with these values"):
        suggest(space, np.zeros((0, 4)), np.zeros(0), fixed={**ok, "ethanol": 0.9})


@pytest.fixture
def study(tmp_path: Path) -> Path:
    (tmp_path / "space.json").write_text(json.dumps(CONSTRAINED))
    db = tmp_path / "s.db"
    res = CliRunner().invoke(cli, ["init", str(db), "--space", str(tmp_path / "space.json")])
    assert res.exit_code == 0, res.output
    return db


def test_ask_fix_through_the_cli(study: Path) -> None:
    res = CliRunner().invoke(
        cli,
        [
            "ask",
            str(study),
            "-n",
            "3",
            "--fix",
            "solvent=b",
            "--fix",
            "cycles=2",
            "--format",
            "json",
        ],
    )
    assert res.exit_code == 0, res.output
    items = json.loads(res.stdout)
    assert [(i["params"]["solvent"], i["params"]["cycles"]) for i in items] == [("b", 2)] * 3


@pytest.mark.parametrize(
    ("fix", "words"),
    [
        ("solvnt=b", "did you mean 'solvent'"),
        ("water=1.5", "outside"),
        ("solvent=d", "unknown category"),
        ("cycles=2.5", "not an integer"),
        ("cycles", "expected NAME=VALUE"),
        ("water=0.9", None),  # with cycles=10 below: 0.1*10 + 0.9 > 1.05
    ],
)
def test_bad_fix_is_one_line(study: Path, fix: str, words: str | None) -> None:
    args = ["ask", str(study), "--fix", fix]
    if words is None:
        args += ["--fix", "cycles=10"]
        words = "no point with these values"
    before = study.read_bytes()
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "--fix" in lines[0] and words in lines[0], res.stderr
    assert study.read_bytes() == before


OBJECTIVE = """
def f(p):
    return (p["water"] - 0.3) ** 2 + p["ethanol"] + 0.01 * p["cycles"]
"""


def test_run_fix_is_kept_on_resume(tmp_path: Path) -> None:
    (tmp_path / "obj.py").write_text(OBJECTIVE)
    (tmp_path / "space.json").write_text(json.dumps(CONSTRAINED))
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"}
    out = tmp_path / "run"
    base = [sys.executable, "-m", "bocli", "run"]
    fix = ["--fix", "solvent=b", "--fix", "water=0.4"]
    first = subprocess.run(
        [*base, "obj:f", "--space", "space.json", "--budget", "3", "--init", "6", *fix, "--out", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    again = subprocess.run(
        [*base, "--out", str(out), "--resume", "--budget", "5"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    with StudyStorage.open(out / "study.db") as st:
        trials = st.trials()
        saved = json.loads(st.meta()["run"])
    assert saved["fixed"] == {"solvent": "b", "water": "0.4"}
    assert len(trials) == 5
    assert all(t.params["solvent"] == "b" and t.params["water"] == 0.4 for t in trials)
    bad = subprocess.run(
        [*base, "obj:f", "--space", "space.json", "--fix", "cycle=3", "--out", str(tmp_path / "r2")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert bad.returncode == 2 and "--fix cycle=3" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert not (tmp_path / "r2").exists()
