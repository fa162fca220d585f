"""Multi-objective problems against botorch's own test functions; several outcomes from user code."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bocli.space import CategoricalParam, FloatParam, Objective, OutcomeConstraint, Space
from problems import ObjectiveError, UnknownProblemError, get_problem
from problems.multiobjective import dtlz1_max_hv, dtlz5_max_hv
from problems.user import command_problem, python_problem

torch = pytest.importorskip("torch")
mo = pytest.importorskip("botorch.test_functions.multi_objective")

# registered name (or spec) -> botorch's problem, built independently
CASES = {
    "branincurrin": lambda: mo.BraninCurrin(),
    "constrainedbranincurrin": lambda: mo.ConstrainedBraninCurrin(),
    "dtlz1": lambda: mo.DTLZ1(dim=6, num_objectives=2),
    "dtlz1_5_2": lambda: mo.DTLZ1(dim=5, num_objectives=2),
    "dtlz1:dim=7,num_objectives=4": lambda: mo.DTLZ1(dim=7, num_objectives=4),
    "dtlz2": lambda: mo.DTLZ2(dim=6, num_objectives=2),
    "dtlz2_5_3": lambda: mo.DTLZ2(dim=5, num_objectives=3),
    "dtlz5": lambda: mo.DTLZ5(dim=6, num_objectives=2),
    "dtlz5_20_3": lambda: mo.DTLZ5(dim=20, num_objectives=3),
    "dtlz5_8_4": lambda: mo.DTLZ5(dim=8, num_objectives=4),
    "c2dtlz2": lambda: mo.C2DTLZ2(dim=6, num_objectives=2),
    "c2dtlz2_7_3": lambda: mo.C2DTLZ2(dim=7, num_objectives=3),
    "zdt1": lambda: mo.ZDT1(dim=4),
    "zdt1_10": lambda: mo.ZDT1(dim=10),
    "vehiclesafety": lambda: mo.VehicleSafety(),
    "penicillin": lambda: mo.Penicillin(),
    "discbrake": lambda: mo.DiscBrake(),
}


def _bounds(p) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.array([q.low for q in p.space.parameters]),
        np.array([q.high for q in p.space.parameters]),
    )


def _points(p, n: int, seed: int = 0) -> np.ndarray:
    lo, hi = _bounds(p)
    return lo + p.space.sobol(n, seed=seed) * (hi - lo)


def _botorch_outcomes(bp, X: np.ndarray) -> np.ndarray:
    """botorch's objectives, then its slacks (>= 0 when feasible), n x k."""
    Xt = torch.tensor(X, dtype=torch.float64)
    Y = bp.evaluate_true(Xt)
    if hasattr(bp, "evaluate_slack_true"):
        Y = torch.cat([Y, bp.evaluate_slack_true(Xt)], dim=-1)
    return Y.numpy()


@pytest.mark.parametrize("spec", sorted(CASES))
def test_matches_botorch(spec):
    p, bp = get_problem(spec), CASES[spec]()
    m = bp.num_objectives
    k = m + getattr(bp, "num_constraints", 0)
    # the declaration: bounds, directions, the reference point, the constraints
    lo, hi = _bounds(p)
    np.testing.assert_array_equal(lo, bp.bounds[0].numpy())
    np.testing.assert_array_equal(hi, bp.bounds[1].numpy())
    assert len(p.space.objectives) == m and len(p.space.outcome_names) == k
    assert all(o.direction == "minimize" for o in p.space.objectives)
    assert p.space.thresholds() == bp.ref_point.tolist()  # the reference point, exactly
    assert all(c.min == 0 and c.max is None for c in p.space.outcome_constraints)
    assert ("constrained" in p.tags) == bool(p.space.outcome_constraints)
    assert "multi-objective" in p.tags
    # the values: a few points one by one (the registered fn), many in a batch
    X = _points(p, 64, seed=1)
    expected = _botorch_outcomes(bp, X)
    for x, want in zip(X[:6], expected[:6], strict=True):
        params = dict(zip([q.name for q in p.space.parameters], x.tolist(), strict=True))
        got = p.evaluate_outcomes(params)
        assert list(got) == p.space.outcome_names
        assert all(type(v) is float for v in got.values())
        np.testing.assert_allclose(list(got.values()), want, rtol=1e-9, atol=1e-12)
    got = p.fn.batch(X)
    assert got.dtype == np.float64 and got.shape == (64, k)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    if hasattr(bp, "is_feasible"):  # the constraints' verdict is botorch's
        want = bp.is_feasible(torch.tensor(X)).numpy()
        np.testing.assert_array_equal(p.space.feasible(got), want)
        assert 0 < want.sum() < len(want) or spec == "c2dtlz2_7_3"  # both kinds are seen


def test_penicillin_stops_when_botorch_does():
    p, bp = get_problem("penicillin"), mo.Penicillin()
    X = _points(p, 256, seed=3)
    got, want = p.fn.batch(X), _botorch_outcomes(bp, X)
    np.testing.assert_array_equal(got[:, 2], want[:, 2])  # the number of steps, exactly
    assert len(np.unique(got[:, 2])) > 10  # the runs really end at many different times


@pytest.mark.parametrize("spec", sorted(CASES))
def test_max_hv_is_botorchs_where_both_know_it(spec):
    p, bp = get_problem(spec), CASES[spec]()
    theirs = getattr(bp, "_max_hv", None)
    if spec.startswith("dtlz1"):  # botorch subtracts 0.5^m, not the simplex's 0.5^m / m!
        assert p.max_hv == dtlz1_max_hv(bp.num_objectives)
        assert p.max_hv > theirs
    elif spec.startswith("dtlz5"):
        assert theirs is None
        assert p.max_hv == dtlz5_max_hv(bp.num_objectives)
    elif spec.startswith("c2dtlz2") and bp.num_objectives > 2:
        assert p.max_hv is None  # botorch's value is for two objectives
    elif theirs is None:
        assert p.max_hv is None
    else:
        assert p.max_hv == pytest.approx(theirs, rel=1e-12)


def _hypervolume(p, Y: np.ndarray) -> float:
    """The hypervolume of the feasible rows of ``Y`` (outcome order) against the thresholds."""
    from botorch.utils.multi_objective.hypervolume import Hypervolume
    from botorch.utils.multi_objective.pareto import is_non_dominated

    m = len(p.space.objectives)
    # botorch maximizes: negate the (minimized) objectives and the reference point
    Yt = -torch.tensor(Y[p.space.feasible(Y), :m], dtype=torch.float64)
    ref = -torch.tensor(p.space.thresholds(), dtype=torch.float64)
    Yt = Yt[(Yt > ref).all(dim=-1)]
    return float(Hypervolume(ref).compute(Yt[is_non_dominated(Yt)])) if len(Yt) else 0.0


# the fraction of max_hv that 2000 Sobol points reach (measured: 0.69 - 0.999)
@pytest.mark.parametrize(
    ("name", "least"),
    [
        ("branincurrin", 0.85),
        ("constrainedbranincurrin", 0.9),
        ("dtlz1", 0.95),
        ("dtlz1_5_2", 0.95),
        ("dtlz2", 0.6),
        ("dtlz2_6_3", 0.6),
        ("dtlz5", 0.95),
        ("dtlz5_20_3", 0.95),
        ("c2dtlz2", 0.6),
        ("zdt1", 0.9),
        ("vehiclesafety", 0.75),
        ("penicillin", 0.75),
    ],
)
def test_sobol_hypervolume_is_below_max_hv(name, least):
    p = get_problem(name)
    hv = _hypervolume(p, p.fn.batch(_points(p, 2000)))
    assert least * p.max_hv < hv < p.max_hv


def _front(dim: int, n: int) -> np.ndarray:
    """``n`` inputs whose last inputs are 0.5 (g = 0: on the front), the first one on a grid."""
    X = np.full((n, dim), 0.5)
    X[:, 0] = np.linspace(0, 1, n)
    return X


def test_max_hv_of_dtlz_fronts():
    """Points along the known fronts approach max_hv from below (checks the closed forms)."""
    # two objectives: the fronts are segments, 2001 points leave a gap of about 1e-4
    for name in ("dtlz1_5_2", "dtlz5_5_2", "dtlz2_5_2"):
        p = get_problem(name)
        hv = _hypervolume(p, p.fn.batch(_front(5, 2001)))
        assert 0 < p.max_hv - hv < 1e-3, name
    p = get_problem("dtlz1_5_2")
    assert _hypervolume(p, p.fn.batch(_front(5, 2001))) > 400.0**2 - 0.5**2  # botorch's _max_hv
    # DTLZ5, three objectives: the front is a curve; the staircase's gap shrinks like 1/n, so
    # Richardson's extrapolation from 151 and 301 points lands on the closed form
    p = get_problem("dtlz5_6_3")
    hv151, hv301 = (_hypervolume(p, p.fn.batch(_front(6, n))) for n in (151, 301))
    assert hv151 < hv301 < p.max_hv
    assert abs(2 * hv301 - hv151 - p.max_hv) < 5e-4


# ----- names and settings ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "name", "dim", "m"),
    [
        ("dtlz1_5_2", "dtlz1_5_2", 5, 2),
        ("dtlz5_20_3", "dtlz5_20_3", 20, 3),
        ("dtlz2:dim=4,num_objectives=2", "dtlz2_4_2", 4, 2),
        ("dtlz2", "dtlz2", 6, 2),
        ("dtlz2:dim=6", "dtlz2", 6, 2),
        ("dtlz2_4_3", "dtlz2_4_3", 4, 3),
        ("dtlz2_8", "dtlz2_8_2", 8, 2),
        ("dtlz1:dim=5,num_objectives=2", "dtlz1_5_2", 5, 2),
        ("dtlz2_4_3:noise_std=0.1", "dtlz2_4_3", 4, 3),
        ("c2dtlz2_5_3", "c2dtlz2_5_3", 5, 3),
        ("zdt1", "zdt1", 4, 2),
        ("zdt1_10", "zdt1_10", 10, 2),
        ("zdt1:dim=10", "zdt1_10", 10, 2),
    ],
)
def test_names_and_settings(spec, name, dim, m):
    p = get_problem(spec)
    assert (p.name, p.space.dim, len(p.space.objectives)) == (name, dim, m)
    again = get_problem(p.name)  # the name builds the problem again
    assert again.name == p.name and again.space == p.space and again.max_hv == p.max_hv
    assert get_problem("ackley10").space.dim == 10  # the NAME<dim> rule still works


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("dtlz2_4_3:dim=5", "the name says dim=4 but the settings say dim=5"),
        ("dtlz2_4_3:num_objectives=2", "the name says num_objectives=3"),
        ("dtlz2:dim=2,num_objectives=2", r"bad settings .*dim must be > num_objectives"),
        ("dtlz2:num_objectives=1", "num_objectives must be an integer >= 2"),
        ("zdt1_10_2", "unknown setting 'num_objectives'"),
        ("dtlz1_5_2:dim=6", "unknown setting 'dim'"),
        ("zdt1:dim=1", "dim must be an integer >= 2"),
        ("dtlz9_4_2", "unknown problem 'dtlz9_4_2'"),
    ],
)
def test_bad_names_and_settings(spec, match):
    with pytest.raises(UnknownProblemError, match=match):
        get_problem(spec)


def test_evaluating_does_not_load_torch():
    code = (
        "import sys; from problems import get_problem\n"
        "for n in ('branincurrin', 'dtlz5_20_3', 'c2dtlz2', 'penicillin', 'discbrake'):\n"
        "    p = get_problem(n)\n"
        "    p.evaluate_outcomes({q.name: q.low for q in p.space.parameters})\n"
        "print(sorted(m for m in ('torch', 'botorch', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
    )
    assert out.stdout.strip() == "[]"


# ----- user objectives with several outcomes -----------------------------------------------------
SPACE = Space(
    (FloatParam("x", 0.0, 1.0), CategoricalParam("mode", ("dict", "list", "tuple", "array"))),
    objectives=(Objective("cost", "minimize", 10.0), Objective("quality", "maximize", 0.0)),
    outcome_constraints=(OutcomeConstraint("purity", min=0.9), OutcomeConstraint("cost", max=5)),
)
EXPECTED = {"cost": 1.5, "quality": 1.0, "purity": 0.95}  # at x = 0.5

OBJECTIVES = """
import math
import numpy as np

def f(p):
    x, mode = p["x"], p["mode"]
    values = [x + 1, 2 * x, 0.95]
    if mode == "dict":
        return {"purity": 0.95, "quality": 2 * x, "cost": x + 1, "seconds": 3.0}
    if mode == "list":
        return values
    if mode == "tuple":
        return tuple(values)
    return np.array(values)

def missing(p):
    return {"cost": 1.0, "quality": 2.0}

def nan_quality(p):
    return {"cost": 1.0, "quality": math.nan, "purity": 1.0}

def too_short(p):
    return [1.0, 2.0]

def one_number(p):
    return 1.5

def text(p):
    return {"cost": "cheap", "quality": 2.0, "purity": 1.0}
"""


@pytest.fixture
def objdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # python_problem may add the cwd
    (tmp_path / "bocli_mo_objectives.py").write_text(textwrap.dedent(OBJECTIVES))
    yield tmp_path
    sys.modules.pop("bocli_mo_objectives", None)


def test_python_function_returns_several_outcomes(objdir):
    p = python_problem("bocli_mo_objectives:f", SPACE)
    assert SPACE.outcome_names == ["cost", "quality", "purity"]
    for mode in ("dict", "list", "tuple", "array"):
        values = p.evaluate_outcomes({"x": 0.5, "mode": mode})
        assert values == EXPECTED, mode
        assert list(values) == SPACE.outcome_names
        assert all(type(v) is float for v in values.values())


@pytest.mark.parametrize(
    ("func", "match"),
    [
        ("missing", r"^objective 'bocli_mo_objectives:missing' returned no 'purity' "),
        ("nan_quality", r"^objective returned a non-finite value \(nan\) for 'quality'$"),
        ("too_short", r"returned 2 values, expected 3 \(cost, quality, purity\)$"),
        ("one_number", r"returned 1.5, expected 3 outcomes \(cost, quality, purity\) as a mapping"),
        ("text", r"returned 'cheap' as 'cost', expected a number$"),
    ],
)
def test_python_function_outcome_errors(objdir, func, match):
    p = python_problem(f"bocli_mo_objectives:{func}", SPACE)
    with pytest.raises(ObjectiveError, match=match) as info:
        p.evaluate_outcomes({"x": 0.5, "mode": "dict"})
    assert "\n" not in str(info.value)
    if func == "missing":
        assert str(info.value).endswith("(keys: cost, quality)")


COMMAND = """
import json, sys
p = json.load(sys.stdin)
x = p["x"]
print("training ...")
print(json.dumps({"cost": x + 1, "quality": 2 * x, "purity": 0.95}, indent=%s))
"""


@pytest.mark.parametrize("indent", ["None", "2"])
def test_command_prints_several_outcomes(tmp_path, indent):
    script = tmp_path / "obj.py"
    script.write_text(textwrap.dedent(COMMAND % indent))
    p = command_problem([sys.executable, str(script)], SPACE, timeout=30)
    assert p.evaluate_outcomes({"x": 0.5, "mode": "dict"}) == EXPECTED


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ('{"cost": 1, "quality": 2}', r"returned no 'purity' \(keys: cost, quality\)$"),
        ('{"cost": 1, "quality": NaN, "purity": 1}', r"non-finite value \(nan\) for 'quality'$"),
        ("[1, 2, 3]", r"expected 3 outcomes \(cost, quality, purity\) as a JSON object like"),
        ("1.5", r"returned 1.5, expected 3 outcomes"),
        ("done", r"cannot read the outcomes from the last line of stdout 'done'"),
        ('{"cost": null, "quality": 1, "purity": 1}', r"returned None as 'cost', expected a num"),
    ],
)
def test_command_outcome_errors(tmp_path, line, match):
    script = tmp_path / "obj.py"
    script.write_text(f"print({line!r})\n")
    p = command_problem([sys.executable, str(script)], SPACE, timeout=30)
    with pytest.raises(ObjectiveError, match=match) as info:
        p.evaluate_outcomes({"x": 0.5, "mode": "dict"})
    assert "\n" not in str(info.value)


def test_single_outcome_user_objectives_still_return_a_float(objdir):
    space = Space((FloatParam("x", 0.0, 1.0),), Objective("cost"))
    script = objdir / "one.py"
    script.write_text('print(\'{"cost": 2.5, "other": 1}\')\n')
    p = command_problem([sys.executable, str(script)], space, timeout=30)
    assert p.fn({"x": 0.5}) == 2.5 and p.evaluate({"x": 0.5}) == 2.5
    assert math.isclose(p.evaluate_outcomes({"x": 0.5})["cost"], 2.5)


# ----- `bocli problems` --------------------------------------------------------------------------
def test_bocli_problems_lists_objectives_constraints_and_reference_points():
    import json

    from click.testing import CliRunner

    from bocli.cli import cli

    res = CliRunner().invoke(cli, ["problems", "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.output)}
    bc = rows["constrainedbranincurrin"]
    assert bc["objectives"] == [
        {"name": "branin", "direction": "minimize", "threshold": 80.0},
        {"name": "currin", "direction": "minimize", "threshold": 12.0},
    ]
    assert bc["outcome_constraints"] == [{"name": "c1", "min": 0.0}]
    assert bc["reference_point"] == [80.0, 12.0] and bc["max_hv"] == pytest.approx(608.4004)
    assert rows["dtlz5_20_3"]["reference_point"] == [10.0] * 3
    assert (
        rows["discbrake"]["max_hv"] is None and len(rows["discbrake"]["outcome_constraints"]) == 4
    )
    single = rows["branin"]
    assert single["objectives"] == [{"name": "value", "direction": "minimize", "threshold": None}]
    assert single["reference_point"] is None and single["max_hv"] is None
    assert single["outcome_constraints"] == [] and single["optimum"] == pytest.approx(0.397887)
    table = CliRunner().invoke(cli, ["problems"], env={"COLUMNS": "250"})
    assert table.exit_code == 0, table.output
    line = next(ln for ln in table.output.splitlines() if " discbrake " in ln)
    assert "2 (minimize mass, stopping_time)" in line and " 4 " in line
