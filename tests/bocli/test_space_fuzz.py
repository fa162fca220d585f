"""Random space files and option values: each either loads/validates or is refused with a UserError
whose message is one line, never another exception."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bocli.acquisition import ACQUISITIONS, check_acquisition_options
from bocli.cli import cli
from bocli.engine import check_models
from bocli.errors import UserError
from bocli.space import Space

PARAM_KEYS = ["name", "type", "low", "high", "log", "choices", "values", "lgo", "hihg", "Type"]
TYPES = ["float", "int", "categorical", "ordinal", "flaot", "integer", "", "cat"]
SPACE_KEYS = ["parameters", "objective", "parameter", "objectives", "metadata"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 5e-324, 0, 1, -1, 10**18, 1e12]),
    st.text(max_size=8),
    st.sampled_from([*TYPES, "1e5", " x", "x ", "trial_id", "status", "maximize", "minimize"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(PARAM_KEYS + SPACE_KEYS), inner, max_size=4),
    ),
    max_leaves=12,
)


@st.composite
def param_specs(draw: st.DrawFn) -> object:
    if draw(st.integers(0, 9)) == 0:
        return draw(values)
    ptype = draw(st.sampled_from(TYPES))
    spec: dict[str, object] = {"name": draw(st.one_of(st.sampled_from(["a", "b", "x"]), scalars))}
    if draw(st.booleans()):
        spec["type"] = ptype
    for key in ("low", "high", "log", "choices", "values"):
        if draw(st.integers(0, 2)):
            if key in ("low", "high"):
                spec[key] = draw(scalars)
            elif key == "log":
                spec[key] = draw(st.one_of(st.booleans(), scalars))
            else:
                spec[key] = draw(st.one_of(st.lists(scalars, max_size=5), scalars))
    if draw(st.integers(0, 5)) == 0:
        spec[draw(st.sampled_from(PARAM_KEYS))] = draw(values)
    return spec


@st.composite
def space_specs(draw: st.DrawFn) -> object:
    if draw(st.integers(0, 9)) == 0:
        return draw(values)
    spec: dict[str, object] = {}
    if draw(st.integers(0, 9)):
        spec["parameters"] = draw(st.one_of(st.lists(param_specs(), max_size=4), values))
    if draw(st.booleans()):
        spec["objective"] = draw(
            st.one_of(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "name": st.one_of(st.sampled_from(["y", "a", "status"]), scalars),
                        "direction": st.one_of(
                            st.sampled_from(["minimize", "maximize", "maximise"]), scalars
                        ),
                    },
                ),
                values,
            )
        )
    if draw(st.integers(0, 5)) == 0:
        spec[draw(st.sampled_from(SPACE_KEYS))] = draw(values)
    return spec


def _one_line(e: BaseException) -> None:
    text = str(e)
    assert text and "\n" not in text and "\r" not in text, repr(text)


@settings(max_examples=200, deadline=None)
@given(space_specs())
def test_space_from_dict_loads_or_refuses_in_one_line(spec: object) -> None:
    try:
        space = Space.from_dict(spec)
    except UserError as e:
        _one_line(e)
        return
    # a space that loads works: its bounds are usable and it round-trips through JSON
    assert Space.from_json(space.to_json()) == space
    for p in space.parameters:
        if hasattr(p, "low"):
            assert math.isfinite(p.high - p.low)
    space.decode(space.sobol(2, seed=0))


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spec=space_specs(), as_json=st.booleans(), garble=st.integers(0, 6))
def test_space_from_file_loads_or_refuses_in_one_line(
    tmp_path: Path, spec: object, as_json: bool, garble: int
) -> None:
    path = tmp_path / ("s.json" if as_json else "s.yaml")
    text = json.dumps(spec, default=str) if as_json else yaml.safe_dump(spec)
    if garble == 0:
        text = text[: len(text) // 2]
    path.write_text(text)
    try:
        Space.from_file(path)
    except UserError as e:
        _one_line(e)
        assert str(path) in str(e)


option_keys = st.one_of(
    st.sampled_from(
        ["beta", "bta", "num_fantasies", "num_mv_samples", "num_optima", "num_candidates", "x", ""]
    ),
    st.text(max_size=6),
)
option_values = st.one_of(
    st.sampled_from(["3", "abc", "nan", "inf", "-1", "0", "1.5", "1e400", "64", " 2 ", "true"]),
    st.text(max_size=6),
    scalars,
    st.lists(scalars, max_size=2),
)


@settings(max_examples=200, deadline=None)
@given(
    acquisition=st.sampled_from([*ACQUISITIONS, "nope"]),
    options=st.dictionaries(option_keys, option_values, max_size=3),
)
def test_acquisition_options_convert_or_refuse(acquisition: str, options: dict) -> None:
    try:
        out = check_acquisition_options(acquisition, options)
    except UserError as e:
        _one_line(e)
        return
    assert set(out) == set(options)
    spec = ACQUISITIONS[acquisition]
    for key, v in out.items():
        o = spec.option(key)
        assert isinstance(v, o.type) and not isinstance(v, bool) and math.isfinite(v)
        assert check_acquisition_options(acquisition, out) == out  # stored values re-check


surrogate_keys = st.sampled_from(
    [
        "min_noise",
        "depth",
        "weight_var",
        "bias_var",
        "width",
        "steps",
        "lr",
        "num_members",
        "subsample",
        "bootstrap",
        "alpha",
        "checkpoint",
        "context",
        "power_transform",
        "activation",
        "prior_scale",
        "mini_noise",
    ]
)


@settings(max_examples=200, deadline=None)
@given(
    surrogate=st.sampled_from(["gp", "ibnn", "ibnn-t", "dkl", "ensemble", "pfn", "nope"]),
    acquisition=st.sampled_from(["ei", "ucb", "kg", "ts", "gibbon"]),
    sur_options=st.dictionaries(surrogate_keys, option_values, max_size=2),
    acq_options=st.dictionaries(option_keys, option_values, max_size=2),
    dim=st.integers(1, 9),
)
def test_check_models_validates_or_refuses_in_one_line(
    surrogate: str, acquisition: str, sur_options: dict, acq_options: dict, dim: int
) -> None:
    space = Space.from_dict(
        {
            "parameters": [
                {"name": f"x{i}", "type": "float", "low": 0, "high": 1} for i in range(dim)
            ]
        }
    )
    try:
        check_models(surrogate, acquisition, sur_options, acq_options, space)
    except UserError as e:
        _one_line(e)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    spec=space_specs(),
    opts=st.lists(
        st.tuples(
            st.sampled_from(["--surrogate-option", "--acquisition-option"]),
            option_keys,
            st.sampled_from(["3", "abc", "nan", "-1", "{", "1e400"]),
        ),
        max_size=2,
    ),
)
def test_init_loads_or_refuses_in_one_line(tmp_path: Path, spec: object, opts: list) -> None:
    work = tmp_path / f"w{len(list(tmp_path.iterdir()))}"
    work.mkdir()
    (work / "s.json").write_text(json.dumps(spec, default=str))
    args = ["init", "s.db", "--space", "s.json", "-a", "ucb"]
    for flag, key, value in opts:
        args += [flag, f"{key}={value}"]
    cwd = os.getcwd()
    os.chdir(work)
    try:
        res = CliRunner().invoke(cli, args)
    finally:
        os.chdir(cwd)
    assert "Traceback" not in res.output
    if res.exit_code == 0:
        assert (work / "s.db").is_file()
        return
    assert res.exit_code == 2, res.output
    assert len(res.stderr.splitlines()) == 1, res.stderr
    assert sorted(p.name for p in work.iterdir()) == ["s.json"]
