"""``bocli plot``: the data behind the pictures checked against independent computations from the
study's trials, the Figure's panels (count, labels, plotted data), PNG/SVG output, and one-line
errors. Studies are made the way users make them: init + ask + tell, or a short ``bocli run``."""

from __future__ import annotations

import csv
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from bocli.cli import cli
from bocli.pareto import hypervolume, pareto_mask
from bocli.plot import Z90, load_study, progress_figure, study_progress
from bocli.space import Space
from bocli.storage import StudyStorage
from bocli.study import init_study, tell_value

MIXED_YAML = """\
parameters:
  - {name: temperature, type: float, low: 20, high: 80}
  - {name: conc, type: float, low: 0.001, high: 1, log: true}
  - {name: cycles, type: int, low: 1, high: 10}
  - {name: solvent, type: categorical, choices: [water, ethanol, dmso]}
objective: {name: yield, direction: maximize}
"""
CONSTRAINED_YAML = """\
parameters:
  - {name: x, type: float, low: 0, high: 1}
  - {name: y, type: float, low: 0, high: 1}
objective: {name: cost, direction: minimize}
outcome_constraints:
  - {name: purity, min: 0.5}
"""


def run(*args: Any, ok: bool = True) -> Any:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def yield_of(p: dict[str, Any]) -> float:
    bonus = {"water": 0.0, "ethanol": 1.0, "dmso": -0.5}[p["solvent"]]
    return (
        -(((p["temperature"] - 50) / 30) ** 2)
        + math.log10(p["conc"]) / 3
        + p["cycles"] / 10
        + bonus
    )


def trials_of(path: Path) -> list[Any]:
    with StudyStorage.open(path) as st:
        return st.trials()


def make_mixed(tmp_path: Path) -> Path:
    """An ask-tell study (float, log float, int, categorical): 7 Sobol trials asked; 5 told,
    trial 2 failed, trial 6 still pending."""
    path = tmp_path / "mixed.db"
    init_study(path, space=Space.from_dict(yaml.safe_load(MIXED_YAML)), seed=2, check_models=False)
    run("ask", path, "-n", 7, "-o", tmp_path / "batch.csv")
    for t in trials_of(path):
        if t.trial_id == 2:
            tell_value(path, 2, status="failed")
        elif t.trial_id != 6:
            tell_value(path, t.trial_id, value=yield_of(t.params))
    return path


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    return make_mixed(tmp_path)


@pytest.fixture
def constrained(tmp_path: Path) -> Path:
    """Cost and a constrained purity, told from the ask CSV: some trials are infeasible."""
    path = tmp_path / "c.db"
    init_study(path, space=Space.from_dict(yaml.safe_load(CONSTRAINED_YAML)), check_models=False)
    batch = tmp_path / "c.csv"
    run("ask", path, "-n", 8, "-o", batch)
    rows = list(csv.DictReader(batch.open()))
    for r in rows:
        x, y = float(r["x"]), float(r["y"])
        r["cost"], r["purity"] = (x - 0.2) ** 2 + y, 1.0 - x
    with batch.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    run("tell", path, batch)
    return path


def make_branincurrin(tmp_path: Path) -> Path:
    """The registered two-objective problem (thresholds 18, 6 form the reference point): 12 Sobol
    trials told with the problem's own values (trial 10 is the first to beat the reference
    point)."""
    from problems import get_problem

    path = tmp_path / "bc.db"
    run("init", path, "--problem", "branincurrin")
    batch = tmp_path / "bc.csv"
    run("ask", path, "-n", 12, "-o", batch)
    problem = get_problem("branincurrin")
    rows = list(csv.DictReader(batch.open()))
    for r in rows:
        r.update(problem.evaluate_outcomes({n: float(r[n]) for n in problem.space.names}))
    with batch.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    run("tell", path, batch)
    return path


@pytest.fixture
def branincurrin(tmp_path: Path) -> Path:
    return make_branincurrin(tmp_path)


@pytest.fixture(scope="module")
def model_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short `bocli run` whose last trial was proposed by the GP (so it carries a
    prediction); the first 4 are the Sobol design."""
    out = tmp_path_factory.mktemp("run") / "r"
    run("run", "branin", "--budget", 5, "--init", 4, "--out", out)
    return out


def axes_by_label(fig: Any) -> dict[str, Any]:
    return {ax.get_label(): ax for ax in fig.axes}


def line(ax: Any, label: str) -> Any:
    found = [ln for ln in ax.get_lines() if ln.get_label() == label]
    assert len(found) == 1, [ln.get_label() for ln in ax.get_lines()]
    return found[0]


# ----- data ------------------------------------------------------------------------------------
def test_progress_arrays_match_the_trials(mixed: Path) -> None:
    loaded = load_study(mixed)
    trials = loaded.trials
    p = study_progress(loaded.settings.space, trials, loaded.ref_point)
    assert list(p.state) == [t.state for t in trials]
    assert list(p.state).count("failed") == 1 and p.state[6] == "pending"
    # independent: cumulative max over complete values, carried over failed and pending trials
    values = [t.value if t.state == "complete" else -np.inf for t in trials]
    expect = np.maximum.accumulate(values)
    np.testing.assert_allclose(p.best_so_far, expect)
    assert np.flatnonzero(p.best).tolist() == [int(np.argmax(values))]
    assert p.params["solvent"].tolist() == [t.params["solvent"] for t in trials]
    assert np.isnan(p.pred_mean).all()  # the Sobol design predicts nothing


def test_mixed_figure_has_its_panels_and_data(mixed: Path) -> None:
    loaded = load_study(mixed)
    p = study_progress(loaded.settings.space, loaded.trials)
    fig = progress_figure(p)
    ax = axes_by_label(fig)
    names = ["temperature", "conc", "cycles", "solvent"]
    assert list(ax) == ["progress", "prediction:yield", *[f"parameter:yield:{n}" for n in names]]

    prog = ax["progress"]
    assert prog.get_xlabel() == "trial" and prog.get_ylabel() == "yield"
    assert "Best yield so far" in prog.get_title() and "maximize" in prog.get_title()
    told = [t for t in loaded.trials if t.state == "complete"]
    best = line(prog, "best so far")
    expect = [max(t.value for t in told if t.trial_id <= i) for i in best.get_xdata()]
    np.testing.assert_allclose(best.get_ydata(), expect)
    dots = line(prog, "measured")
    assert list(dots.get_xdata()) == [t.trial_id for t in told]
    np.testing.assert_allclose(dots.get_ydata(), [t.value for t in told])
    assert list(line(prog, "failed").get_xdata()) == [2]
    assert list(line(prog, "pending").get_xdata()) == [6]
    star = line(prog, "best trial")
    top = max(told, key=lambda t: t.value)
    assert list(star.get_xdata()) == [top.trial_id] and list(star.get_ydata()) == [top.value]

    # units and names: log axis for the log parameter, a categorical axis for the choices
    assert ax["parameter:yield:conc"].get_xscale() == "log"
    assert ax["parameter:yield:conc"].get_xlabel() == "conc (log scale)"
    assert ax["parameter:yield:temperature"].get_xscale() == "linear"
    cat = ax["parameter:yield:solvent"]
    assert [t.get_text() for t in cat.get_xticklabels()] == ["water", "ethanol", "dmso"]
    choices = ["water", "ethanol", "dmso"]
    pts = line(cat, "measured")
    assert list(pts.get_xdata()) == [choices.index(t.params["solvent"]) for t in told]
    for n in names:
        assert ax[f"parameter:yield:{n}"].get_ylabel() == "yield"
    assert list(line(ax["parameter:yield:cycles"], "best trial").get_xdata()) == [
        top.params["cycles"]
    ]


def test_predictions_panel_shows_the_stored_90_percent_interval(model_run: Path) -> None:
    loaded = load_study(model_run)
    p = study_progress(loaded.settings.space, loaded.trials)
    ax = axes_by_label(progress_figure(p, panels=("predictions",)))
    assert list(ax) == ["prediction:value"]
    pred = ax["prediction:value"]
    model = [t for t in loaded.trials if t.phase == "model"]
    assert len(model) == 1 and all(t.predicted_sd is not None for t in model)
    mean = line(pred, "predicted mean")
    assert list(mean.get_xdata()) == [t.trial_id for t in model]
    np.testing.assert_allclose(mean.get_ydata(), [t.predicted_mean for t in model])
    (bars,) = [c for c in pred.collections if c.get_label() == "predicted 90% interval"]
    segs = np.array([s[:, 1] for s in bars.get_segments()])
    # the stored sd is a Gaussian predictive sd: the central 90% interval is mean +- 1.6449 sd
    m, sd = (np.array([getattr(t, a) for t in model]) for a in ("predicted_mean", "predicted_sd"))
    np.testing.assert_allclose(segs[:, 0], m - 1.6449 * sd, rtol=1e-4)
    np.testing.assert_allclose(segs[:, 1], m + 1.6449 * sd, rtol=1e-4)
    assert abs(Z90 - 1.6449) < 1e-4
    # design trials: measured only
    assert list(line(pred, "measured").get_xdata()) == [t.trial_id for t in loaded.trials]


def test_infeasible_trials_are_drawn_apart(constrained: Path) -> None:
    loaded = load_study(constrained)
    p = study_progress(loaded.settings.space, loaded.trials)
    bad = [t.trial_id for t in loaded.trials if t.outcomes["purity"] < 0.5]
    good = [t for t in loaded.trials if t.outcomes["purity"] >= 0.5]
    assert bad and good
    fig = progress_figure(p)
    ax = axes_by_label(fig)
    # one panel per outcome, the parameters against the one objective
    assert [k for k in ax if k.startswith("prediction:")] == [
        "prediction:cost",
        "prediction:purity",
    ]
    assert [k for k in ax if k.startswith("parameter:")] == ["parameter:cost:x", "parameter:cost:y"]
    assert list(line(ax["progress"], "infeasible").get_xdata()) == bad
    assert list(line(ax["prediction:purity"], "infeasible").get_xdata()) == bad
    xs = [t.params["x"] for t in loaded.trials if t.trial_id in bad]
    np.testing.assert_allclose(line(ax["parameter:cost:x"], "infeasible").get_xdata(), xs)
    assert list(line(ax["progress"], "measured").get_xdata()) == [t.trial_id for t in good]
    # the best so far counts feasible trials only
    best = min(t.outcomes["cost"] for t in good)
    assert line(ax["progress"], "best so far").get_ydata()[-1] == pytest.approx(best)


def test_two_objectives_plot_the_hypervolume_and_the_pareto_set(branincurrin: Path) -> None:
    loaded = load_study(branincurrin)
    assert loaded.ref_point == [18.0, 6.0]
    p = study_progress(loaded.settings.space, loaded.trials, loaded.ref_point)
    ax = axes_by_label(progress_figure(p))
    assert len(ax) == 1 + 2 + 2 * 2
    Y = np.array([[t.outcomes["branin"], t.outcomes["currin"]] for t in loaded.trials])
    dirs = ["minimize", "minimize"]
    # independent: the hypervolume of every prefix, computed from scratch
    expect = [hypervolume(Y[: i + 1], dirs, [18.0, 6.0]) for i in range(len(Y))]
    hv = line(ax["progress"], "hypervolume so far")
    assert expect[0] == 0 and expect[-1] > 0  # the line rises: a real check
    np.testing.assert_allclose(hv.get_ydata(), expect)
    assert ax["progress"].get_ylabel() == "hypervolume" and "18, 6" in ax["progress"].get_title()
    front = pareto_mask(Y, dirs)
    for obj in ("branin", "currin"):
        star = line(ax[f"parameter:{obj}:x1"], "Pareto-optimal")
        on_front = [t.params["x1"] for t, f in zip(loaded.trials, front, strict=True) if f]
        np.testing.assert_allclose(star.get_xdata(), on_front)
        assert ax[f"parameter:{obj}:x2"].get_ylabel() == obj
    # without a reference point (no thresholds, no model-based ask yet): said, not drawn
    bare = axes_by_label(progress_figure(study_progress(p.space, loaded.trials), ("progress",)))
    assert not [ln for ln in bare["progress"].get_lines() if ln.get_label() == "hypervolume so far"]
    assert any("no reference point yet" in t.get_text() for t in bare["progress"].texts)


# ----- the command -----------------------------------------------------------------------------
def test_plot_writes_png_and_valid_svg(mixed: Path, tmp_path: Path) -> None:
    png, svg = tmp_path / "p.png", tmp_path / "p.svg"
    out = run("plot", mixed, "-o", png).output
    assert out.startswith(f"wrote {png}: 5 complete trials")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run("plot", mixed, "-o", svg)
    root = ET.parse(svg).getroot()  # valid XML
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "ethanol" in svg.read_text()  # the categorical axis' labels, as text


def test_plot_of_a_run_folder(model_run: Path, tmp_path: Path) -> None:
    out = run("plot", model_run, "-o", tmp_path / "r.png", "--format", "json").output
    assert '"complete": 5' in out and '"axes": 4' in out


@pytest.mark.parametrize("told", [0, 1])
def test_studies_with_zero_or_one_result_draw_a_sensible_figure(told: int, tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    init_study(path, space=Space.from_dict(yaml.safe_load(MIXED_YAML)), check_models=False)
    if told:
        run("ask", path, "-n", 2, "-o", tmp_path / "b.csv")
        tell_value(path, 0, value=1.5)
    res = run("plot", path, "-o", tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000
    assert ("no complete trials yet" in res.output) == (told == 0)


def test_bad_input_is_one_line_with_exit_2(mixed: Path, tmp_path: Path) -> None:
    before = [(t.trial_id, t.state, t.value) for t in trials_of(mixed)]
    cases = [
        (["plot", mixed, "-o", tmp_path / "p.jpg"], "-o"),
        (["plot", mixed, "-o", tmp_path / "p"], "-o"),
        (["plot", tmp_path, "-o", tmp_path / "p.png"], str(tmp_path)),  # a folder, no study.db
        (["plot", tmp_path / "none.db", "-o", tmp_path / "p.png"], "none.db"),
        (["plot", tmp_path / "batch.csv", "-o", tmp_path / "p.png"], "batch.csv"),  # not a study
        (["plot", mixed, "-o", tmp_path / "missing" / "p.png"], "-o"),
    ]
    for args, named in cases:
        res = run(*args, ok=False)
        assert res.exit_code == 2, res.output
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error:") and named in lines[0], res.output
    assert [(t.trial_id, t.state, t.value) for t in trials_of(mixed)] == before
