"""Search space: round-trips (property-based), structure, and named validation errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bocli.space import (
    CategoricalParam,
    FloatParam,
    IntParam,
    Objective,
    OrdinalParam,
    Space,
    SpaceError,
)

DESIGN_SPACE = """
parameters:
  - {name: temperature, type: float, low: 20, high: 80}
  - {name: conc, type: float, low: 0.001, high: 1, log: true}
  - {name: cycles, type: int, low: 1, high: 10}
  - {name: solvent, type: categorical, choices: [water, ethanol, dmso]}
objective: {name: yield, direction: maximize}
"""


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(DESIGN_SPACE)
    return Space.from_file(path)


def test_design_space_loads(space):
    assert space.names == ["temperature", "conc", "cycles", "solvent"]
    assert space.objective == Objective("yield", "maximize")
    assert space.cat_dims() == {3: [0.0, 0.5, 1.0]}
    assert list(space.discrete_dims()) == [2]
    assert not space.is_continuous


def test_json_space_and_serialization_round_trip(tmp_path, space):
    path = tmp_path / "space.json"
    path.write_text(json.dumps(space.to_dict()))
    assert Space.from_file(path) == space
    assert Space.from_json(space.to_json()) == space


def test_encode_decode_exact_types(space):
    pts = [{"temperature": 50.0, "conc": 0.01, "cycles": 7, "solvent": "dmso"}]
    X = space.encode(pts)
    assert X.shape == (1, 4) and X.dtype == np.float64
    assert ((X >= 0) & (X <= 1)).all()
    back = space.decode(X)[0]
    assert isinstance(back["cycles"], int) and back["cycles"] == 7
    assert back["solvent"] == "dmso"
    assert back["temperature"] == pytest.approx(50.0)
    assert back["conc"] == pytest.approx(0.01)


def test_log_float_is_uniform_in_log(space):
    assert space.parameters[1].encode(math.sqrt(0.001 * 1)) == pytest.approx(0.5)


def test_decode_snaps_and_clips(space):
    out = space.decode(np.array([[1.5, -0.2, 0.52, 0.8]]))[0]
    assert out["temperature"] == 80.0
    assert out["conc"] == pytest.approx(0.001)
    assert out["cycles"] == 6  # 1 + 0.52 * 9 = 5.68 -> 6
    assert out["solvent"] == "dmso"


@st.composite
def spaces_and_points(draw):
    params = []
    for i in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["float", "logfloat", "int", "logint", "cat", "ord"]))
        name = f"p{i}"
        if kind in ("float", "logfloat"):
            low = draw(st.floats(1e-3 if kind == "logfloat" else -1e3, 1e3))
            width = draw(st.floats(1e-3, 1e3))
            params.append(FloatParam(name, low, low + width, log=kind == "logfloat"))
        elif kind in ("int", "logint"):
            low = draw(st.integers(1 if kind == "logint" else -50, 50))
            params.append(
                IntParam(name, low, low + draw(st.integers(1, 200)), log=kind == "logint")
            )
        else:
            choices = tuple(
                draw(
                    st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=6, unique_by=str)
                )
            )
            params.append((CategoricalParam if kind == "cat" else OrdinalParam)(name, choices))
    space = Space(tuple(params))
    point = {}
    for p in space.parameters:
        if isinstance(p, FloatParam):
            point[p.name] = draw(st.floats(p.low, p.high))
        elif isinstance(p, IntParam):
            point[p.name] = draw(st.integers(p.low, p.high))
        else:
            point[p.name] = draw(st.sampled_from(p.choices))
    return space, point


@settings(max_examples=300, deadline=None)
@given(spaces_and_points())
def test_round_trip_property(sp):
    space, point = sp
    X = space.encode([point])
    assert ((X >= 0) & (X <= 1)).all()
    back = space.decode(X)[0]
    for p in space.parameters:
        if isinstance(p, FloatParam):
            assert back[p.name] == pytest.approx(
                point[p.name], rel=1e-9, abs=1e-9 * (p.high - p.low)
            )
        else:
            assert back[p.name] == point[p.name]
            assert type(back[p.name]) is type(point[p.name])


@settings(max_examples=200, deadline=None)
@given(spaces_and_points(), st.lists(st.floats(0, 1), min_size=5, max_size=5))
def test_decode_always_valid(sp, u):
    space, _ = sp
    X = np.array([u[: space.dim]])
    params = space.decode(X)[0]
    assert space.validate(params) == params  # decode yields only valid points
    assert np.allclose(space.round_trip(space.round_trip(X)), space.round_trip(X))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "parameters:\n  - {name: a, type: float, low: 1, hgih: 2}",
            "unknown key 'hgih' (did you mean 'high'?)",
        ),
        ("parameters:\n  - {name: a, type: flaot, low: 1, high: 2}", "(did you mean 'float'?)"),
        (
            "parameters:\n  - {name: a, type: float, low: 3, high: 2}",
            "parameters[0] (a): 'low' (3.0) must be less than 'high'",
        ),
        ("parameters:\n  - {name: a, type: float, low: 0, high: 2, log: true}", "needs 'low' > 0"),
        ("parameters:\n  - {name: a, type: int, low: 0.5, high: 2}", "must be integers"),
        ("parameters:\n  - {name: a, type: float, high: 2}", "'low' is required"),
        ("parameters:\n  - {name: a, type: float, low: x, high: 2}", "'low' must be a number"),
        ("parameters:\n  - {name: a, type: categorical, choices: []}", "at least one value"),
        ("parameters:\n  - {name: a, type: categorical, choices: [x, x]}", "duplicate values"),
        (
            "parameters:\n  - {name: a, type: float, low: 0, high: 1}\n  - {name: a, type: int, low: 0, high: 1}",
            "'a' is used more than once",
        ),
        ("parameters:\n  - {type: float, low: 0, high: 1}", "parameters[0]: 'name' is required"),
        ("parameters:\n  - {name: trial_id, type: float, low: 0, high: 1}", "reserved"),
        ("parameters: []", "at least one parameter"),
        ("paramters: []", "unknown key 'paramters' (did you mean 'parameters'?)"),
        (
            "parameters:\n  - {name: a, type: float, low: 0, high: 1}\nobjective: {direction: maximise}",
            "'direction' must be 'minimize' or 'maximize'",
        ),
        ("parameters: [unclosed", "not valid"),
    ],
)
def test_bad_space_files_name_the_field(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpaceError) as err:
        Space.from_file(path)
    assert message in str(err.value)
    assert str(err.value).startswith(str(path))
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(SpaceError, match="file not found"):
        Space.from_file(tmp_path / "nope.yaml")


def test_validate_values(space):
    ok = {"temperature": "50", "conc": 0.5, "cycles": "3", "solvent": "water"}
    assert space.validate(ok)["cycles"] == 3
    with pytest.raises(SpaceError, match=r"'temperature': 95 is outside \[20, 80\]"):
        space.validate({**ok, "temperature": 95})
    with pytest.raises(
        SpaceError, match="unknown category 'etanol' \\(did you mean 'ethanol'\\?\\)"
    ):
        space.validate({**ok, "solvent": "etanol"})
    with pytest.raises(SpaceError, match="is not an integer"):
        space.validate({**ok, "cycles": 2.5})
    with pytest.raises(SpaceError, match="not a number"):
        space.validate({**ok, "conc": "abc"})
    with pytest.raises(SpaceError, match="missing parameter"):
        space.validate({"temperature": 50})


def test_sobol_is_seeded_and_continues(space):
    a = space.sobol(8, seed=3)
    b = np.concatenate([space.sobol(3, seed=3), space.sobol(5, seed=3, skip=3)])
    assert np.allclose(a, b)
    assert not np.allclose(space.sobol(8, seed=4), a)
    assert len({tuple(r) for r in a}) == 8
