"""Linear parameter constraints (``parameter_constraints``): parsing, refusal at ``init``, and every
proposed point satisfying them, in user units, after decoding and rounding.

The default run covers the design phase (20 asks, q = 1 and 3), one model-phase proposal per
surrogate family on a mixed space (an int inside a constraint, a categorical outside), the
candidate-set acquisitions, the int repair and the engine's safety net. The sweep of every
registered acquisition on every surrogate (and a multi-objective space) is marked slow.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from bocli.acquisition import ACQUISITIONS
from bocli.cli import cli
from bocli.constraints import feasible_mask, repair, unit_rows
from bocli.engine import suggest
from bocli.space import Space, SpaceError
from bocli.storage import StudyStorage

FAST_SURROGATE = {
    "gp": {},
    "ibnn": {},
    "ibnn-t": {},
    "dkl": {"steps": 30},
    "ensemble": {"steps": 60, "num_members": 6},
    "hmc": {"num_warmup": 30, "num_samples": 40, "thinning": 2, "map_steps": 100},
    "pfn": {},
}
FAST = {"num_restarts": 2, "raw_samples": 32}
SMALL_MC = {"kg": {"num_fantasies": 4}, "jes": {"num_optima": 4}, "mes": {"num_fantasies": 4}}

CONTINUOUS = {
    "parameters": [
        {"name": "water", "type": "float", "low": 0, "high": 1},
        {"name": "ethanol", "type": "float", "low": 0, "high": 1},
        {"name": "temp", "type": "float", "low": 20, "high": 80},
    ],
    "parameter_constraints": ["water + ethanol <= 1", "2*temp - 100*water >= 50"],
    "objective": {"name": "y", "direction": "minimize"},
}
MIXED = {
    "parameters": [
        {"name": "water", "type": "float", "low": 0, "high": 1},
        {"name": "ethanol", "type": "float", "low": 0, "high": 1},
        {"name": "cycles", "type": "int", "low": 1, "high": 10},
        {"name": "solvent", "type": "categorical", "choices": ["a", "b", "c"]},
    ],
    "parameter_constraints": ["water + ethanol <= 1", "0.1*cycles + water <= 1.05"],
    "objective": {"name": "y", "direction": "minimize"},
}


def _objective(p: dict) -> float:
    v = (p["water"] - 0.7) ** 2 + (p["ethanol"] - 0.5) ** 2
    v += 0.01 * p.get("cycles", 0) + 0.001 * p.get("temp", 0)
    return v + (0.3 if p.get("solvent") == "b" else 0.0)


def _assert_feasible(space: Space, params: list[dict]) -> None:
    for p in params:
        assert space.parameter_constraint_violations(p) == [], p
        space.validate(p)


def _data(space: Space, n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    s = suggest(space, np.zeros((0, space.dim)), np.zeros(0), q=n)
    _assert_feasible(space, s.params)
    return s.X, np.array([_objective(p) for p in s.params])


# ----- parsing ----------------------------------------------------------------------------------
def test_parse_forms_and_round_trip() -> None:
    spec = {
        **MIXED,
        "parameter_constraints": ["water + ethanol <= 1", "-2 * water + 3 >= cycles - 4*ethanol"],
    }
    space = Space.from_dict(spec)
    a, b = space.parameter_constraints
    assert dict(a.terms) == {"water": 1.0, "ethanol": 1.0} and a.rhs == 1.0
    # -2 w + 3 >= c - 4 e  <=>  2 w + c - 4 e <= 3
    assert dict(b.terms) == {"water": 2.0, "cycles": 1.0, "ethanol": -4.0} and b.rhs == 3.0
    again = Space.from_json(space.to_json())
    assert again == space
    assert json.loads(space.to_json())["parameter_constraints"] == spec["parameter_constraints"]
    # a space without the key (an older study) reads the same as before
    old = {k: v for k, v in MIXED.items() if k != "parameter_constraints"}
    assert "parameter_constraints" not in Space.from_dict(old).to_dict()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("water * ethanol <= 1", "not linear"),
        ("water ** 2 <= 1", "not linear"),
        ("water / ethanol <= 1", "not linear"),
        ("watr + ethanol <= 1", "did you mean 'water'"),
        ("solvent <= 1", "categorical"),
        ("conc <= 0.5", "log-scaled"),
        ("water < 1", "'<=' or '>='"),
        ("water > 0.2", "'<=' or '>='"),
        ("water == 0.5", "'<=' or '>='"),
        ("1 <= 2", "names no parameter"),
        ("water - water <= 2", "names no parameter"),
        ("__import__('os') <= 1", "not a linear term"),
        ("water + ethanol >= 2.5", "no point within the parameters' bounds"),
    ],
)
def test_refused_constraints(text: str, words: str) -> None:
    spec = {
        **MIXED,
        "parameters": [
            *MIXED["parameters"],
            {"name": "conc", "type": "float", "low": 0.01, "high": 1, "log": True},
        ],
        "parameter_constraints": [text],
    }
    with pytest.raises(SpaceError) as e:
        Space.from_dict(spec)
    msg = str(e.value)
    assert words in msg and "\n" not in msg
    if "no point" not in words:
        assert "parameter_constraints[0]" in msg and text in msg


def test_integer_infeasibility_is_refused() -> None:
    # the relaxation holds cycles in [4/3, 5/3]: no integer fits
    spec = {**MIXED, "parameter_constraints": ["3*cycles >= 4", "3*cycles <= 5"]}
    with pytest.raises(SpaceError, match="no point within"):
        Space.from_dict(spec)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("water + ethanol >= 2.5", "no point within"),
        ("water * ethanol <= 1", "not linear"),
        ("watr <= 1", "did you mean 'water'"),
        ("conc <= 0.5", "log-scaled"),
        ("solvent <= 1", "categorical"),
    ],
)
def test_init_refuses_with_one_line(tmp_path, text: str, words: str) -> None:
    spec = {
        **MIXED,
        "parameters": [
            *MIXED["parameters"],
            {"name": "conc", "type": "float", "low": 0.01, "high": 1, "log": True},
        ],
        "parameter_constraints": [text],
    }
    (tmp_path / "space.json").write_text(json.dumps(spec))
    res = CliRunner().invoke(
        cli, ["init", str(tmp_path / "s.db"), "--space", str(tmp_path / "space.json")]
    )
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "space.json" in lines[0], res.stderr
    assert not (tmp_path / "s.db").exists()


# ----- the unit-cube form and the repair ---------------------------------------------------------
def test_unit_rows_agree_with_user_units() -> None:
    space = Space.from_dict(MIXED)
    U = space.round_trip(np.random.default_rng(0).random((500, space.dim)))
    by_rows = np.ones(len(U), dtype=bool)
    for idx, coef, rhs in unit_rows(space):
        by_rows &= U[:, idx] @ coef <= rhs + 1e-9
    by_params = np.array([not space.parameter_constraint_violations(p) for p in space.decode(U)])
    assert (by_rows == by_params).all() and (feasible_mask(space, U) == by_params).all()
    assert 0 < by_params.sum() < len(U)


def test_rounding_an_int_is_repaired_with_the_nearest_floor_or_ceil() -> None:
    spec = {
        "parameters": [
            {"name": "a", "type": "int", "low": 0, "high": 10},
            {"name": "b", "type": "int", "low": 0, "high": 10},
            {"name": "x", "type": "float", "low": 0, "high": 1},
        ],
        "parameter_constraints": ["a + b <= 7.5"],
    }
    space = Space.from_dict(spec)
    u = np.array([[0.37, 0.37, 0.5]])  # a = b = 3.7: 7.4 holds, rounded 4 + 4 = 8 does not
    assert not feasible_mask(space, space.round_trip(u))[0]
    fixed, ok = repair(space, u)
    assert ok.all()
    p = space.decode(fixed)[0]
    # the nearest feasible floor/ceil combination: one of them rounds down, the float stays
    assert sorted([p["a"], p["b"]]) == [3, 4] and p["x"] == pytest.approx(0.5)


# ----- the design phase --------------------------------------------------------------------------
@pytest.mark.parametrize("spec", [CONTINUOUS, MIXED], ids=["continuous", "mixed"])
@pytest.mark.parametrize("q", [1, 3])
def test_design_points_are_feasible_deterministic_and_new(spec: dict, q: int) -> None:
    space = Space.from_dict(spec)
    seen: list[np.ndarray] = []
    for k in range(20):
        s = suggest(space, np.zeros((0, space.dim)), np.zeros(0), q=q, n_issued=k * q, n_init=100)
        assert s.info["phase"] == "init"
        _assert_feasible(space, s.params)
        again = suggest(space, np.zeros((0, space.dim)), np.zeros(0), q=q, n_issued=k * q)
        assert np.array_equal(again.X, s.X)  # deterministic in (seed, points issued)
        seen.extend(s.X)
    # the continuation never repeats a point of the sequence
    assert len(np.unique(np.round(np.array(seen), 12), axis=0)) == len(seen)


def test_small_feasible_share_falls_back_to_the_polytope() -> None:
    spec = {**CONTINUOUS, "parameter_constraints": ["water + ethanol <= 0.002"]}
    space = Space.from_dict(spec)
    s = suggest(space, np.zeros((0, 3)), np.zeros(0), q=4, n_issued=3)
    _assert_feasible(space, s.params)
    assert len(np.unique(s.X, axis=0)) == 4


# ----- the model phase -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "surrogate",
    ["gp", "ibnn", "ibnn-t", "dkl", "ensemble", "pfn", pytest.param("hmc", marks=pytest.mark.slow)],
)
def test_model_phase_points_are_feasible(surrogate: str) -> None:
    """Each surrogate family on the mixed space, q = 1 (gp also q = 3; every q in the slow sweep)."""
    space = Space.from_dict(MIXED)
    X, y = _data(space)
    for q in (1, 3) if surrogate == "gp" else (1,):
        s = suggest(
            space,
            X,
            y,
            q=q,
            surrogate=surrogate,
            surrogate_options=FAST_SURROGATE[surrogate],
            n_init=4,
            num_restarts=1,
            raw_samples=16,
        )
        assert s.info["phase"] == "model"
        _assert_feasible(space, s.params)


@pytest.mark.parametrize("q", [1, 3])
def test_continuous_gp_ei_keeps_to_the_constraints(q: int) -> None:
    space = Space.from_dict(CONTINUOUS)
    X, y = _data(space)
    s = suggest(space, X, y, q=q, n_init=4, **FAST)
    assert s.info["phase"] == "model"
    _assert_feasible(space, s.params)


@pytest.mark.parametrize("acquisition", ["random", "ts"])
def test_candidate_set_acquisitions_offer_only_feasible_points(acquisition: str) -> None:
    space = Space.from_dict(MIXED)
    X, y = _data(space)
    s = suggest(space, X, y, q=3, acquisition=acquisition, n_init=4, **FAST)
    _assert_feasible(space, s.params)


def test_engine_never_returns_an_infeasible_point(monkeypatch) -> None:
    """A (future) acquisition that ignores the constraints: the engine repairs its proposal."""
    space = Space.from_dict(MIXED)
    X, y = _data(space)
    leaky = dataclasses.replace(
        ACQUISITIONS["random"], propose=lambda ctx: torch.ones(ctx.q, ctx.d, **ctx.tkwargs)
    )
    monkeypatch.setitem(ACQUISITIONS, "random", leaky)
    s = suggest(space, X, y, q=2, acquisition="random", n_init=4)
    _assert_feasible(space, s.params)
    assert all(p["water"] + p["ethanol"] <= 1 for p in s.params)


# ----- tell ----------------------------------------------------------------------------------------
def test_tell_stores_a_violating_row_and_warns_once(tmp_path) -> None:
    (tmp_path / "space.json").write_text(json.dumps(MIXED))
    db = tmp_path / "s.db"
    runner = CliRunner()
    res = runner.invoke(cli, ["init", str(db), "--space", str(tmp_path / "space.json")])
    assert res.exit_code == 0 and "subject to water + ethanol <= 1" in res.output
    (tmp_path / "r.csv").write_text(
        "water,ethanol,cycles,solvent,y\n0.7,0.6,3,a,1.5\n0.1,0.2,3,b,2.0\n"
    )
    res = runner.invoke(cli, ["tell", str(db), str(tmp_path / "r.csv")])
    assert res.exit_code == 0, res.output
    warnings = [line for line in res.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: {tmp_path / 'r.csv'} row 2: water + ethanol <= 1 is violated "
        "(water=0.7, ethanol=0.6)"
    ]
    with StudyStorage.open(db) as st:
        values = sorted(t.value for t in st.trials() if t.state == "complete")
    assert values == [1.5, 2.0]
    status = runner.invoke(cli, ["status", str(db)])
    assert "subject to water + ethanol <= 1; 0.1*cycles + water <= 1.05" in status.output


# ----- the sweep (slow) -----------------------------------------------------------------------------
SINGLE = [a for a in ACQUISITIONS if ACQUISITIONS[a].single_objective]


# the mixed space's distinct paths: botorch's mixed alternating optimizer (ei, greedy mes/gibbon/jes
# batches), one-shot KG's continuous relaxation then snapping, and the candidate sets (ts, random)
MIXED_PATHS = (("ei", 3), ("kg", 1), ("mes", 3), ("ts", 3), ("random", 3))


@pytest.mark.slow
@pytest.mark.parametrize("spec", [CONTINUOUS, MIXED], ids=["continuous", "mixed"])
def test_every_acquisition_keeps_to_the_constraints(spec: dict) -> None:
    """Every single-objective acquisition, q = 1 and 3, on the gp on the continuous space (and each
    distinct optimizer path on the mixed one): the constraints reach each acquisition's optimizer
    or candidate set whatever the model (the surrogates' own sweep below)."""
    space = Space.from_dict(spec)
    X, y = _data(space)
    runs = [(a, q) for a in SINGLE for q in (1, 3)] if spec is CONTINUOUS else MIXED_PATHS
    for acquisition, q in runs:
        s = suggest(
            space,
            X,
            y,
            q=q,
            acquisition=acquisition,
            acquisition_options=SMALL_MC.get(acquisition),
            n_init=4,
            **FAST,
        )
        assert s.info["phase"] == "model"
        _assert_feasible(space, s.params)


@pytest.mark.slow
# hmc's own slow model-phase test above covers it; gp is the sweep over acquisitions
@pytest.mark.parametrize("surrogate", [s for s in FAST_SURROGATE if s not in ("gp", "hmc")])
@pytest.mark.parametrize("spec", [MIXED], ids=["mixed"])
def test_every_surrogate_keeps_to_the_constraints(surrogate: str, spec: dict) -> None:
    """Each surrogate family with a batch (ei, q = 3); the candidate sets are the gp sweep's."""
    space = Space.from_dict(spec)
    X, y = _data(space)
    s = suggest(
        space,
        X,
        y,
        q=3,
        surrogate=surrogate,
        surrogate_options=FAST_SURROGATE[surrogate],
        n_init=4,
        **FAST,
    )
    assert s.info["phase"] == "model"
    _assert_feasible(space, s.params)


@pytest.mark.slow
@pytest.mark.parametrize("acquisition", ["ei", "parego", "ts", "random"])
def test_multi_objective_keeps_to_the_constraints(acquisition: str) -> None:
    spec = {
        **{k: v for k, v in MIXED.items() if k != "objective"},
        "objectives": [
            {"name": "y", "direction": "minimize"},
            {"name": "cost", "direction": "minimize"},
        ],
    }
    space = Space.from_dict(spec)
    X, y = _data(space)
    Y = np.column_stack([y, [p["water"] for p in space.decode(X)]])
    for q in (1, 3):
        s = suggest(space, X, Y, q=q, acquisition=acquisition, n_init=4, **FAST)
        _assert_feasible(space, s.params)


@pytest.mark.slow
@pytest.mark.parametrize("spec", [CONTINUOUS, MIXED], ids=["continuous", "mixed"])
def test_twenty_model_asks_stay_feasible(spec: dict) -> None:
    space = Space.from_dict(spec)
    X, y = _data(space)
    # 20 asks (30 points) on the continuous space; the mixed space's GP fit and alternating
    # optimizer cost ~4x more per ask, so 10 asks (15 points) there
    for k in range(20 if spec is CONTINUOUS else 10):
        s = suggest(space, X, y, q=1 + 2 * (k % 2), n_init=4, seed=k, **FAST)
        _assert_feasible(space, s.params)
        X = np.vstack([X, s.X])
        y = np.concatenate([y, [_objective(p) for p in s.params]])
