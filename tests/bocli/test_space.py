"""Search space: round-trips (property-based), structure, and named validation errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bocli.space import (
    RESERVED_NAMES,
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


# Every character a name or a choice may hold: all but the refused classes (control characters, line
# and paragraph separators, lone surrogates, the byte-order mark); no surrounding whitespace.
LEGAL_CHARS = st.characters(
    exclude_categories=("Cc", "Cs", "Zl", "Zp"), exclude_characters="\ufeff"
)
TRICKY_TEXT = (
    "a,b",
    'say "hi"',
    "it's",
    "x;y",
    "1,5",
    "1.5",
    "a\u00a0b",
    "zero\u200bwidth",
    "ünïcödé",
    "日本語",
    "🙂👍🏽",
    "nan",
    "TRUE",
    "#N/A",
    "=1+1",
    '"',
    ",",
    ";",
    "'",
)
legal_text = st.one_of(
    st.sampled_from(TRICKY_TEXT),
    st.text(LEGAL_CHARS, min_size=1, max_size=8).filter(lambda s: s == s.strip()),
)
legal_names = legal_text.filter(lambda s: s.casefold() not in RESERVED_NAMES)


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
            choices = tuple(draw(st.lists(legal_text, min_size=1, max_size=6, unique_by=str)))
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


# ----- names never collide with bookkeeping; names and choices survive CSV files ---------------------
BOOKKEEPING = (
    *("trial_id", "status", "notes", "best_so_far", "regret", "proposed_by", "phase"),
    *("surrogate", "acquisition", "fit_seconds", "acq_seconds", "eval_seconds", "error"),
    *("created_at", "completed_at", "predicted_mean", "predicted_sd", "diagnostics"),
    *("feasible", "pareto", "hypervolume"),  # the export's columns with several outcomes
)


def space_file_error(tmp_path, spec) -> str:
    """The one-line message for a JSON space file holding ``spec``."""
    path = tmp_path / "space.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(SpaceError) as err:
        Space.from_file(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: ")
    assert "\n" not in msg and "\r" not in msg and len(msg.splitlines()) == 1, msg
    # a message that names a refused character shows it escaped
    assert all(ch.isprintable() for ch in msg), msg
    return msg


def test_reserved_names_are_the_bookkeeping_columns():
    assert frozenset(BOOKKEEPING) == RESERVED_NAMES
    assert len(BOOKKEEPING) == 21


@pytest.mark.parametrize("spelling", [str.lower, str.upper, str.title])
@pytest.mark.parametrize("reserved", BOOKKEEPING)
def test_a_reserved_name_is_refused_for_a_parameter_and_an_objective(tmp_path, reserved, spelling):
    name = spelling(reserved)
    float_x = {"name": "x", "type": "float", "low": 0, "high": 1}
    msg = space_file_error(
        tmp_path, {"parameters": [float_x, {"name": name, "type": "float", "low": 0, "high": 1}]}
    )
    assert f"parameters[1] ({name}): the name is reserved for a bookkeeping column" in msg
    assert all(f" {name}" in msg or f"{name}," in msg for name in BOOKKEEPING)  # lists them all
    msg = space_file_error(tmp_path, {"parameters": [float_x], "objective": {"name": name}})
    assert f"objective '{name}': the name is reserved for a bookkeeping column" in msg
    # the constructor refuses them too (so does a study's stored space, read by from_json)
    with pytest.raises(SpaceError, match="reserved for a bookkeeping column"):
        CategoricalParam(name, ("a", "b"))
    with pytest.raises(SpaceError, match="reserved for a bookkeeping column"):
        Space((FloatParam("x", 0, 1),), Objective(name))
    with pytest.raises(SpaceError, match="reserved for a bookkeeping column"):
        Space.from_json(json.dumps({"parameters": [{**float_x, "name": name}]}))


@pytest.mark.parametrize(
    "parameters",
    [
        [{"name": "a", "type": "float", "low": 0, "high": 1}] * 2,
        [{"name": "a", "type": "float", "low": 0, "high": 1}, {"name": "b", "type": "int", "low": 0, "high": 1}],
    ],
)  # fmt: skip
def test_duplicate_names_are_refused(tmp_path, parameters):
    msg = space_file_error(tmp_path, {"parameters": parameters, "objective": {"name": "b"}})
    assert "'a' is used more than once" in msg or "objective name 'b' clashes" in msg


REFUSED_TEXT = [
    pytest.param(" a", "has leading or trailing whitespace", id="leading-space"),
    pytest.param("a ", "has leading or trailing whitespace", id="trailing-space"),
    pytest.param("a\u00a0", "has leading or trailing whitespace", id="trailing-nbsp"),
    pytest.param("\u3000a", "has leading or trailing whitespace", id="ideographic-space"),
    *(
        pytest.param(f"a{ch}b", f"contains the control character {ch!r}", id=f"cc-{ord(ch):#x}")
        for ch in "\n\r\t\x00\x0b\x0c\x1b\x1c\x1d\x1e\x1f\x7f\x85"
    ),
    pytest.param("a\n", "contains the control character '\\n'", id="trailing-newline"),
    pytest.param("a\u2028b", "contains the line separator '\\u2028'", id="line-sep"),
    pytest.param("a\u2029b", "contains the paragraph separator '\\u2029'", id="paragraph-sep"),
    pytest.param("\ufeffa", "contains the byte-order mark '\\ufeff'", id="bom"),
    pytest.param("a\ud800", "contains the lone surrogate '\\ud800'", id="surrogate"),
]


@pytest.mark.parametrize(("text", "reason"), REFUSED_TEXT)
def test_a_refused_choice_is_named_in_one_line(tmp_path, text, reason):
    for ptype, key in (("categorical", "choices"), ("ordinal", "values")):
        param = {"name": "solvent", "type": ptype, key: ["water", text]}
        msg = space_file_error(tmp_path, {"parameters": [param]})
        assert f"parameters[0] (solvent): {key[:-1]} {text!r} {reason}" in msg, msg
    with pytest.raises(SpaceError, match="parameter 'solvent': choice"):
        CategoricalParam("solvent", ("water", text))


@pytest.mark.parametrize(("text", "reason"), REFUSED_TEXT)
def test_a_refused_name_is_named_in_one_line(tmp_path, text, reason):
    param = {"name": text, "type": "float", "low": 0, "high": 1}
    msg = space_file_error(tmp_path, {"parameters": [param]})
    assert f"parameters[0]: the name {text!r} {reason}" in msg, msg
    x = {"name": "x", "type": "float", "low": 0, "high": 1}
    msg = space_file_error(tmp_path, {"parameters": [x], "objective": {"name": text}})
    assert f"objective {text!r}: the name {reason}" in msg, msg
    with pytest.raises(SpaceError, match="the name"):
        FloatParam(text, 0, 1)


def test_empty_choices_and_names_are_refused(tmp_path):
    msg = space_file_error(
        tmp_path, {"parameters": [{"name": "c", "type": "categorical", "choices": ["x", ""]}]}
    )
    assert "parameters[0] (c): choice '' is empty" in msg
    msg = space_file_error(tmp_path, {"parameters": [{"name": "", "type": "float"}]})
    assert "parameters[0]: 'name' is required" in msg
    with pytest.raises(SpaceError, match="is empty"):
        Objective("")


@pytest.mark.parametrize(
    ("choices", "message"),
    [
        ([1, 1.0], "choices 1 and 1.0 are both written as the CSV cell '1'"),
        ([0.0, -0.0], "choices 0.0 and -0.0 are both written as the CSV cell '0'"),
        ([True, "true"], "choices True and 'true' are both written as the CSV cell 'true'"),
        (["2", 2.0], "choices '2' and 2.0 are both written as the CSV cell '2'"),
        ([True, "True"], "has duplicate values"),
        ([1, "1"], "has duplicate values"),
        ([float("nan")], "choice nan must be a finite number"),
        ([float("inf")], "choice inf must be a finite number"),
        ([None, "x"], "choice None must be a string, a number or true/false"),
        ([["a", "b"]], "choice ['a', 'b'] must be a string, a number or true/false"),
    ],
)
def test_choices_that_a_csv_cell_cannot_tell_apart_are_refused(choices, message):
    with pytest.raises(SpaceError) as err:
        CategoricalParam("c", tuple(choices))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_numeric_and_boolean_choices_keep_their_type():
    p = CategoricalParam("c", (True, 1, 2.5, "x", False, 0))
    for value in p.choices:
        back = p.decode(p.encode(value))
        assert back == value and type(back) is type(value)
    assert p.encode(1) != p.encode(True)  # 1 == True in Python, but not as a choice
    assert p.validate("1") == 1 and type(p.validate("1")) is int
    assert p.validate(" x ") == "x"  # a cell's surrounding whitespace is never part of a choice
    assert CategoricalParam("d", (1, 2)).validate(True) == 1  # loose equality still a last resort


def test_yaml_space_with_quoted_names_and_choices(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(
        "parameters:\n"
        "  - {name: 'a,b', type: categorical, choices: ['x;y', '1,5', 'say \"hi\"', \"it's\", ü, 🙂]}\n"
        "  - {name: 'say \"hi\"', type: ordinal, values: [1, 2.5, yes]}\n"
        "objective: {name: Ausbeute %, direction: maximize}\n",
        encoding="utf-8",
    )
    space = Space.from_file(path)
    assert space.names == ["a,b", 'say "hi"']
    assert space.parameters[0].choices == ("x;y", "1,5", 'say "hi"', "it's", "ü", "🙂")
    assert space.parameters[1].choices == (1, 2.5, True)
    assert Space.from_json(space.to_json()) == space


def test_a_yaml_error_is_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("parameters:\r\n  - {name: a\u2028b, type: [unclosed\r\n", encoding="utf-8")
    with pytest.raises(SpaceError) as err:
        Space.from_file(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: not valid yaml") and len(msg.splitlines()) == 1, msg
