"""Several objectives and outcome constraints through a study: the space file, the CSV round trip,
bad input (one line, nothing changed), status/best/export numbers checked against independent
computations (botorch's hypervolume, brute-force dominance), the frozen reference point, and every
acquisition's multi-objective form on a real model."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from bocli.acquisition import IncompatiblePairError, check_compatible
from bocli.cli import cli
from bocli.engine import suggest
from bocli.space import Space, SpaceError
from bocli.storage import StudyStorage
from bocli.study import ask, best_trial, init_study, study_status

SPACE_YAML = """\
parameters:
  - {name: x1, type: float, low: 0, high: 1}
  - {name: x2, type: float, low: 0, high: 1}
objectives:
  - {name: cost, direction: minimize, threshold: 3}
  - {name: yield, direction: maximize, threshold: -2}
outcome_constraints:
  - {name: purity, min: 0.3}
"""
SPACE = Space.from_dict(yaml.safe_load(SPACE_YAML))


def truth(x1: float, x2: float) -> dict[str, float]:
    return {
        "cost": (x1 - 0.3) ** 2 + x2,
        "yield": -((x1 - 0.8) ** 2) - x2**2,
        "purity": 1.0 - x1 * x2 - 0.5 * x1,
    }


def run(*args: Any, ok: bool = True) -> Any:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def fill(path: Path, drop: str | None = None) -> None:
    """Fill an ask CSV with the true outcomes (``drop`` leaves one column empty in row 2)."""
    rows = list(csv.DictReader(path.open()))
    for i, r in enumerate(rows):
        r.update(truth(float(r["x1"]), float(r["x2"])))
        if drop is not None and i == 0:
            r[drop] = ""
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def dump(path: Path) -> list[Any]:
    with StudyStorage.open(path) as st:
        return [(t.trial_id, t.state, t.value, t.outcomes) for t in st.trials()]


@pytest.fixture
def told(tmp_path: Path) -> Path:
    """A study with 8 told Sobol trials."""
    study = tmp_path / "s.db"
    init_study(study, space=SPACE, seed=1, check_models=False)
    batch = tmp_path / "b.csv"
    run("ask", study, "-n", 8, "-o", batch)
    fill(batch)
    run("tell", study, batch)
    return study


# ----- the space file ------------------------------------------------------------------------------
def test_space_lists_every_outcome_once_in_order() -> None:
    assert SPACE.outcome_names == ["cost", "yield", "purity"]
    assert SPACE.is_multi_objective and SPACE.has_outcome_constraints
    assert list(SPACE.outcome_signs()) == [-1.0, 1.0, 1.0]
    assert Space.from_json(SPACE.to_json()) == SPACE
    single = Space.from_dict({"parameters": [{"name": "x", "type": "float", "low": 0, "high": 1}]})
    assert "objectives" not in single.to_dict()  # the classic form stays the stored form


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"objectives": [{"name": "a", "threshold": "high"}, {"name": "b"}]}, "threshold"),
        ({"outcome_constraints": [{"name": "purity"}]}, "give 'min' or 'max'"),
        ({"outcome_constraints": [{"min": 0.5}]}, "'name' is required"),
        ({"outcome_constraints": [{"name": "p", "min": "high"}]}, "'min' must be a number"),
        ({"outcome_constraints": [{"name": "x1", "max": 1}]}, "clashes with a parameter"),
        ({"outcome_constraints": [{"name": "p", "min": 2, "max": 1}]}, "is above 'max'"),
        ({"outcome_constraints": [{"name": "p", "mni": 2}]}, "did you mean 'min'"),
        ({"objectives": [{"name": "a"}, {"name": "a"}]}, "used more than once"),
        ({"objectives": [{"name": "a", "threshold": 1}]}, "needs two or more objectives"),
        ({"objectives": []}, "non-empty list"),
        ({"objective": {"name": "a"}, "objectives": [{"name": "b"}]}, "not both"),
        ({"objectives": [{"name": "a", "direction": "maximise"}, {"name": "b"}]}, "maximize"),
    ],
)
def test_bad_outcome_definitions_are_one_line(change: dict, message: str, tmp_path: Path) -> None:
    spec = yaml.safe_load(SPACE_YAML)
    if "objective" in change:
        spec.pop("objectives")
    spec.update(change)
    with pytest.raises(SpaceError, match=message) as e:
        Space.from_dict(spec)
    assert "\n" not in str(e.value)
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = run("init", tmp_path / "s.db", "--space", path, ok=False)
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "s.db").exists()


# ----- ask / tell / export ---------------------------------------------------------------------------
def test_csv_round_trip_with_two_objectives_and_a_constraint(told: Path, tmp_path: Path) -> None:
    trials = dump(told)
    assert all(state == "complete" for _, state, _, _ in trials)
    for _, _, value, outcomes in trials:
        assert set(outcomes) == {"cost", "yield", "purity"} and value == outcomes["cost"]
    text = run("export", told).output
    header = next(csv.reader(io.StringIO(text)))
    assert header[:8] == ["trial_id", "x1", "x2", "cost", "yield", "purity", "status", "notes"]
    assert header[8:11] == ["feasible", "pareto", "hypervolume"]
    exported = tmp_path / "all.csv"
    exported.write_text(text)
    before = dump(told)
    assert "8 unchanged" in run("tell", told, exported).output  # telling the export changes nothing
    assert dump(told) == before


def test_a_row_missing_one_objective_changes_nothing(told: Path, tmp_path: Path) -> None:
    batch = tmp_path / "c.csv"
    run("ask", told, "-n", 2, "-o", batch)
    fill(batch, drop="yield")
    before = dump(told)
    result = run("tell", told, batch, ok=False)
    assert result.exit_code == 2
    assert "row 2, column 'yield': empty, but 'cost', 'purity' are filled" in result.output
    assert dump(told) == before


def test_value_option_is_refused_with_several_outcomes(told: Path) -> None:
    result = run("tell", told, "--trial", 0, "--value", 1.0, "--overwrite", ok=False)
    assert result.exit_code == 2 and "tell them in a CSV file" in result.output


# ----- results, checked independently ----------------------------------------------------------------
def _brute_pareto(Y: np.ndarray, signs: np.ndarray) -> set[int]:
    Z = Y * signs  # maximize every column
    out = set()
    for i in range(len(Z)):
        if not any(np.all(Z[j] >= Z[i]) and np.any(Z[j] > Z[i]) for j in range(len(Z))):
            out.add(i)
    return out


def test_status_best_and_export_agree_with_independent_computations(told: Path) -> None:
    from botorch.utils.multi_objective.hypervolume import Hypervolume

    with StudyStorage.open(told) as st:
        trials = st.trials()
    Y = np.array([[t.outcomes[n] for n in ("cost", "yield", "purity")] for t in trials])
    feasible = Y[:, 2] >= 0.3
    ids = np.array([t.trial_id for t in trials])
    front = {int(ids[feasible][i]) for i in _brute_pareto(Y[feasible, :2], np.array([-1, 1]))}
    ref = torch.tensor([-3.0, -2.0], dtype=torch.float64)  # maximization form of the thresholds
    pts = torch.as_tensor(Y[feasible, :2] * np.array([-1, 1]))
    expected_hv = Hypervolume(ref).compute(pts[(pts > ref).all(dim=-1)])

    info = study_status(told)
    assert info["feasible"] == int(feasible.sum())
    assert info["pareto_optimal"] == len(front)
    assert info["hypervolume"] == pytest.approx(expected_hv, rel=1e-9)
    assert info["reference_point"] == [3.0, -2.0] and info["reference_point_inferred"] is False

    best = best_trial(told)
    assert {r["trial_id"] for r in best["pareto_set"]} == front
    for r in best["pareto_set"]:
        assert set(r["predicted"]) == {"cost", "yield", "purity"}  # the model's mean ± sd there
        for name, pred in r["predicted"].items():
            assert abs(pred["mean"] - r["values"][name]) < 5 * pred["sd"] + 0.05

    rows = list(csv.DictReader(io.StringIO(run("export", told).output)))
    assert {int(r["trial_id"]) for r in rows if r["pareto"] == "true"} == front
    assert [r["feasible"] == "true" for r in rows] == list(feasible)
    assert float(rows[-1]["hypervolume"]) == pytest.approx(expected_hv, rel=1e-9)
    out = run("best", told).output
    assert "feasible Pareto-optimal" in out and "±" in out


def test_no_feasible_trial_is_said(tmp_path: Path) -> None:
    spec = yaml.safe_load(SPACE_YAML)
    spec["outcome_constraints"] = [{"name": "purity", "min": 5}]
    study = tmp_path / "s.db"
    init_study(study, space=Space.from_dict(spec), seed=1, check_models=False)
    batch = tmp_path / "b.csv"
    run("ask", study, "-n", 3, "-o", batch)
    fill(batch)
    run("tell", study, batch)
    assert "no complete trial satisfies the outcome constraints" in run("best", study).output
    assert best_trial(study)["pareto_set"] == []


def test_inferred_reference_point_is_frozen_and_labelled(tmp_path: Path) -> None:
    spec = yaml.safe_load(SPACE_YAML)
    for o in spec["objectives"]:
        o.pop("threshold")
    study = tmp_path / "s.db"
    init_study(study, space=Space.from_dict(spec), seed=2, n_init=4, check_models=False)
    batch = tmp_path / "b.csv"
    run("ask", study, "-n", 6, "-o", batch)
    fill(batch)
    run("tell", study, batch)
    assert study_status(study)["reference_point"] is None  # not before a model-based ask
    run("ask", study, "-n", 1, "-o", tmp_path / "c.csv")
    first = study_status(study)
    assert first["reference_point_inferred"] is True and len(first["reference_point"]) == 2
    assert "(inferred)" in run("status", study).output
    fill(tmp_path / "c.csv")
    run("tell", study, tmp_path / "c.csv")
    run("ask", study, "-n", 1, "-o", tmp_path / "d.csv")
    assert study_status(study)["reference_point"] == first["reference_point"]


# ----- acquisitions ----------------------------------------------------------------------------------
def _data(n: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    X = np.random.default_rng(seed).random((n, 2))
    Y = np.array([list(truth(*x).values()) for x in X])
    return X, Y


@pytest.mark.parametrize("acquisition", ["ei", "parego", "ts", "random"])
def test_multi_objective_acquisitions_propose_valid_batches_with_pending(acquisition: str) -> None:
    X, Y = _data()
    pending = np.array([[0.5, 0.5]])
    sug = suggest(
        SPACE, X, Y, q=2, pending=pending, acquisition=acquisition, seed=1, n_init=4,
        num_restarts=2, raw_samples=64,
    )  # fmt: skip
    assert sug.X.shape == (2, 2) and np.all((sug.X >= 0) & (sug.X <= 1))
    assert not np.any(np.all(np.isclose(sug.X, pending), axis=1))
    if acquisition != "random":
        assert sug.info["phase"] == "model"
        assert set(sug.info["predictions"][0]) == {"cost", "yield", "purity"}


def test_parego_gives_each_candidate_its_own_weights() -> None:
    X, Y = _data(12)
    sug = suggest(SPACE, X, Y, q=3, acquisition="parego", seed=4, n_init=4, raw_samples=64)
    assert len({tuple(np.round(x, 6)) for x in sug.X}) == 3


def test_constraints_steer_ei_towards_feasible_points() -> None:
    """With purity >= 0.3 binding in one corner, the proposals' predicted purity is feasible."""
    X, Y = _data(16, seed=3)
    sug = suggest(SPACE, X, Y, q=2, acquisition="ei", seed=2, n_init=4, raw_samples=128)
    for pred, x in zip(sug.info["predictions"], sug.X, strict=True):
        assert truth(*x)["purity"] >= 0.3 - 0.1, (x, pred)


def test_unsupported_pairs_fail_at_once_with_what_works() -> None:
    unconstrained = Space.from_dict({**yaml.safe_load(SPACE_YAML), "outcome_constraints": []})
    with pytest.raises(IncompatiblePairError, match=r"'kg' \(several objectives\) needs") as e:
        check_compatible("ensemble", "kg", unconstrained)
    assert "works with: gp" in str(e.value)
    with pytest.raises(IncompatiblePairError, match="has no form for several objectives"):
        check_compatible("gp", "ucb", SPACE)
    single = Space.from_dict({"parameters": [{"name": "x", "type": "float", "low": 0, "high": 1}]})
    with pytest.raises(IncompatiblePairError, match="parego' has no form for one objective"):
        check_compatible("gp", "parego", single)
    constrained = Space.from_dict(
        {
            "parameters": [{"name": "x", "type": "float", "low": 0, "high": 1}],
            "outcome_constraints": [{"name": "p", "min": 0}],
        }
    )
    with pytest.raises(
        IncompatiblePairError, match=r"does not take outcome constraints; .*use: ei"
    ):
        check_compatible("gp", "ucb", constrained)
    with pytest.raises(IncompatiblePairError, match=r"'kg' does not take outcome constraints"):
        check_compatible("gp", "kg", SPACE)


def test_single_objective_with_a_constraint_uses_the_feasible_best(tmp_path: Path) -> None:
    spec = {
        "parameters": [{"name": "x", "type": "float", "low": 0, "high": 1}],
        "objective": {"name": "y", "direction": "maximize"},
        "outcome_constraints": [{"name": "c", "max": 0.5}],
    }
    study = tmp_path / "s.db"
    init_study(study, space=Space.from_dict(spec), seed=0, n_init=4, check_models=False)
    batch = tmp_path / "b.csv"
    run("ask", study, "-n", 6, "-o", batch)
    rows = list(csv.DictReader(batch.open()))
    for r in rows:
        r["y"], r["c"] = float(r["x"]), float(r["x"])  # feasible iff x <= 0.5; y wants x large
    with batch.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    run("tell", study, batch)
    b = best_trial(study)
    assert b["value"] == max(float(r["x"]) for r in rows if float(r["x"]) <= 0.5)
    res = ask(study, 2)
    assert res.info["phase"] == "model"
    for t in res.trials:
        assert t.params["x"] <= 0.5 + 0.1


@pytest.mark.slow
@pytest.mark.parametrize("acquisition", ["kg", "jes", "mes"])
def test_gp_family_acquisitions_with_several_objectives(acquisition: str) -> None:
    space = Space.from_dict({**yaml.safe_load(SPACE_YAML), "outcome_constraints": []})
    X, Y = _data(10)
    sug = suggest(space, X, Y[:, :2], q=1, acquisition=acquisition, seed=0, n_init=4)
    assert sug.info["phase"] == "model" and sug.X.shape == (1, 2)


def test_json_best_is_machine_readable(told: Path) -> None:
    data = json.loads(run("best", told, "--format", "json").output)
    assert data["hypervolume"] > 0 and data["pareto_set"]


def test_a_user_objective_with_several_outcomes_runs_and_resumes(tmp_path: Path) -> None:
    (tmp_path / "lab.py").write_text(
        "def measure(p):\n"
        "    x1, x2 = p['x1'], p['x2']\n"
        "    return {'cost': (x1 - 0.3) ** 2 + x2, 'yield': -((x1 - 0.8) ** 2) - x2 ** 2,\n"
        "            'purity': 1.0 - x1 * x2 - 0.5 * x1}\n"
    )
    space = tmp_path / "space.yaml"
    space.write_text(SPACE_YAML)
    out = tmp_path / "run"
    args = ["run", f"{tmp_path / 'lab.py'}:measure", "--space", space, "--out", out]
    res = run(*args, "--budget", 5, "--init", 4, "--format", "json")
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert summary["evaluations"] == 5 and summary["reference_point"] == [3.0, -2.0]
    res = run("run", "--out", out, "--resume", "--budget", 6, "--format", "json")
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert len(rows) == 6 and all(r["status"] == "complete" for r in rows)
    for r in rows:  # every outcome as measured, in its own column
        want = truth(float(r["x1"]), float(r["x2"]))
        assert all(float(r[k]) == pytest.approx(v, abs=1e-9) for k, v in want.items())
    hv = [float(r["hypervolume"]) for r in rows]
    assert hv == sorted(hv) and hv[-1] == pytest.approx(best_trial(out / "study.db")["hypervolume"])
