"""The registry: registration, name parsing, settings and helpful errors."""

from __future__ import annotations

import pytest

from bocli.space import FloatParam, Space
from problems import (
    PROBLEMS,
    Problem,
    UnknownProblemError,
    get_problem,
    list_problems,
    register_problem,
)

EXPECTED = {
    "forrester",
    "branin",
    "sixhumpcamel",
    "hartmann3",
    "hartmann6",
    "ackley",
    "levy",
    "rosenbrock",
    "griewank",
    "michalewicz",
    "styblinskitang",
    "forrester-noisy",
    "branin-noisy",
    "hartmann6-noisy",
    "ackley-noisy",
    "mixed-ackley",
    "sklearn-svm",
    "sklearn-hgb",
}


def test_list_problems():
    problems = list_problems()
    assert set(problems) >= EXPECTED
    for name, problem in problems.items():
        assert isinstance(problem, Problem)
        assert problem.name == name  # defaults build the registered name
        assert problem.description


def test_duplicate_registration_is_rejected():
    def factory() -> Problem:
        return Problem("tmp-dup", Space((FloatParam("x", 0, 1),)), abs)

    register_problem("tmp-dup")(factory)
    try:
        with pytest.raises(ValueError, match="'tmp-dup' is already registered"):
            register_problem("tmp-dup")(factory)
        assert PROBLEMS["tmp-dup"] is factory
    finally:
        del PROBLEMS["tmp-dup"]
    with pytest.raises(ValueError, match="already registered"):
        register_problem("branin")(factory)


def test_unknown_name_suggests_a_close_one():
    with pytest.raises(UnknownProblemError, match=r"unknown problem 'hartman6' \(did you mean"):
        get_problem("hartman6")
    with pytest.raises(UnknownProblemError) as info:
        get_problem("zzzz")
    assert "did you mean" not in str(info.value)
    assert str(info.value).startswith("unknown problem 'zzzz'")  # no KeyError quotes


@pytest.mark.parametrize(
    "spec", ["ackley10", "ackley:dim=10", "ackley10:noise_std=0.1", " ackley:dim=10 "]
)
def test_dimension_in_name_or_settings(spec):
    p = get_problem(spec)
    assert p.space.dim == 10
    assert p.name == "ackley10"


def test_settings_are_parsed():
    p = get_problem("levy:dim=3,noise_std=0.25")
    assert (p.space.dim, p.noise_std) == (3, 0.25)
    assert get_problem("branin:noise_std=1").noise_std == 1.0
    assert get_problem("ackley10-noisy").name == "ackley10-noisy"
    assert get_problem("mixed-ackley2").space.dim == 4  # two floats + int + categorical


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("ackley10:dim=3", "name says dim=10"),
        ("branin:dim=3", "unknown setting 'dim'; settings: noise_std"),
        ("branin3", "unknown setting 'dim'"),
        ("ackley:dim", "expected key=value"),
        ("ackley:=3", "expected key=value"),
        ("ackley:noise_std=-1", "noise_std must be >= 0"),
        ("ackley:dim=abc", "dim must be an integer"),
    ],
)
def test_bad_settings(spec, match):
    with pytest.raises(UnknownProblemError, match=match):
        get_problem(spec)


@pytest.mark.parametrize("spec", ["ackley:dim=3", "michalewicz7", "ackley-noisy:dim=2", "levy"])
def test_names_build_the_same_problem_again(spec):
    p = get_problem(spec)
    again = get_problem(p.name)
    assert again.name == p.name
    assert again.space == p.space
    assert again.noise_std == p.noise_std
