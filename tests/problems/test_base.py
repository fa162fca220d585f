"""The Problem contract: validation, failures as ObjectiveError, noise, regret."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bocli.space import FloatParam, Objective, Space, SpaceError
from problems import ObjectiveError, Problem

SPACE = Space((FloatParam("x", 0.0, 1.0),), Objective("loss", "minimize"))


def _const(value):
    return lambda params: value


def _raise(params):
    raise ZeroDivisionError("division by zero in the user's code")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_value_is_an_objective_error(value):
    with pytest.raises(ObjectiveError, match="non-finite"):
        Problem("p", SPACE, _const(value)).evaluate({"x": 0.5})


def test_exception_is_wrapped_and_names_its_type():
    with pytest.raises(ObjectiveError, match="ZeroDivisionError: division by zero") as info:
        Problem("p", SPACE, _raise).evaluate({"x": 0.5})
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_objective_error_passes_through_unchanged():
    def fn(params):
        raise ObjectiveError("command 'train' timed out after 3 s")

    with pytest.raises(ObjectiveError, match=r"^command 'train' timed out after 3 s$"):
        Problem("p", SPACE, fn).evaluate({"x": 0.5})


def test_non_number_is_an_objective_error():
    with pytest.raises(ObjectiveError, match=r"returned .abc. for .*not a number"):
        Problem("p", SPACE, _const("abc")).evaluate({"x": 0.5})


def test_parameters_are_validated_before_the_call():
    calls = []
    p = Problem("p", SPACE, lambda params: calls.append(params) or 0.0)
    with pytest.raises(SpaceError, match="outside"):
        p.evaluate({"x": 2.0})
    with pytest.raises(SpaceError, match="missing"):
        p.evaluate({})
    assert calls == []
    p.evaluate({"x": "0.25"})
    assert calls == [{"x": 0.25}]


def test_noise():
    p = Problem("p", SPACE, _const(1.0), noise_std=0.5)
    values = [p.evaluate({"x": 0.5}, np.random.default_rng(s)) for s in range(200)]
    assert len(set(values)) == 200
    assert np.std(values) == pytest.approx(0.5, rel=0.25)
    assert p.evaluate({"x": 0.5}, np.random.default_rng(3)) == values[3]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"noise_std": -0.1}, "noise_std"),
        ({"noise_std": math.nan}, "noise_std"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1.0}, "timeout"),
    ],
)
def test_settings_are_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Problem("p", SPACE, _const(0.0), **kwargs)


def test_fn_must_be_callable():
    with pytest.raises(TypeError, match="callable"):
        Problem("p", SPACE, 3.0)  # type: ignore[arg-type]


def test_regret():
    p = Problem("p", SPACE, _const(0.0), optimum=1.0)
    assert p.regret(3.0) == 2.0
    assert p.regret(0.5) == 0.0  # noise can beat the optimum; regret stays >= 0
    assert p.regret(None) is None
    assert Problem("p", SPACE, _const(0.0)).regret(3.0) is None
    up = Space(SPACE.parameters, Objective("gain", "maximize"))
    assert Problem("p", up, _const(0.0), optimum=10.0).regret(7.5) == 2.5
