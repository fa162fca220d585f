"""suggest(): the one data path (design phase, model phase, pending points, seeding, devices)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bocli.acquisition import IncompatiblePairError
from bocli.engine import default_n_init, resolve_device, suggest
from bocli.space import CategoricalParam, FloatParam, IntParam, Objective, Space
from problems import get_problem


@pytest.fixture(scope="module")
def branin_data():
    p = get_problem("branin")
    X = p.space.sobol(8, seed=0)
    y = np.array([p.evaluate(x) for x in p.space.decode(X)])
    return p, X, y


def test_initial_design_is_sobol_and_continues(branin_data):
    p, _, _ = branin_data
    empty = np.zeros((0, 2))
    s1 = suggest(p.space, empty, np.zeros(0), q=3, seed=5)
    assert s1.info["phase"] == "init" and s1.model is None
    assert np.allclose(s1.X, p.space.sobol(3, seed=5))
    s2 = suggest(p.space, empty, np.zeros(0), q=2, seed=5, n_issued=3)
    assert np.allclose(s2.X, p.space.sobol(5, seed=5)[3:])


def test_model_phase_shapes_and_info(branin_data):
    p, X, y = branin_data
    s = suggest(p.space, X, y, q=2, seed=0, n_init=4)
    assert s.info["phase"] == "model"
    assert s.X.shape == (2, 2) and ((s.X >= 0) & (s.X <= 1)).all()
    assert set(s.params[0]) == {"x0", "x1"}
    assert s.info["fit_seconds"] > 0 and s.info["acq_seconds"] > 0
    assert s.info["diagnostics"]["fit_status"] == "ok"


def test_same_seed_same_suggestion(branin_data):
    p, X, y = branin_data
    a = suggest(p.space, X, y, seed=1, n_init=4)
    b = suggest(p.space, X, y, seed=1, n_init=4)
    assert np.allclose(a.X, b.X)


def test_pending_points_are_not_repeated(branin_data):
    p, X, y = branin_data
    first = suggest(p.space, X, y, seed=2, n_init=4)
    second = suggest(p.space, X, y, seed=2, n_init=4, pending=first.X)
    assert np.linalg.norm(first.X - second.X) > 1e-3


def test_direction_matters():
    # maximizing -f must find the same region as minimizing f
    sp_min = Space((FloatParam("x", 0, 1),), Objective("v", "minimize"))
    sp_max = Space((FloatParam("x", 0, 1),), Objective("v", "maximize"))
    X = np.linspace(0, 1, 7).reshape(-1, 1)
    f = (X.ravel() - 0.3) ** 2
    a = suggest(sp_min, X, f, seed=0, n_init=2)
    b = suggest(sp_max, X, -f, seed=0, n_init=2)
    assert np.allclose(a.X, b.X, atol=1e-6)
    assert abs(a.X[0, 0] - 0.3) < 0.2


def test_mixed_space_suggestions_are_valid():
    space = Space(
        (FloatParam("x", -1, 1), IntParam("k", 1, 5), CategoricalParam("c", ("a", "b", "c"))),
        Objective("v", "minimize"),
    )
    rng = np.random.default_rng(0)
    pts = space.decode(rng.random((8, 3)))
    y = np.array([p["x"] ** 2 + (p["k"] - 3) ** 2 + (p["c"] != "b") for p in pts])
    s = suggest(space, space.encode(pts), y, q=2, seed=0, n_init=4)
    for params in s.params:
        assert space.validate(params) == params
    assert np.allclose(space.round_trip(s.X), s.X)


def test_bad_inputs(branin_data):
    p, X, y = branin_data
    with pytest.raises(ValueError, match="rows"):
        suggest(p.space, X, y[:-1])
    with pytest.raises(ValueError, match="NaN"):
        suggest(p.space, X, np.where(np.arange(len(y)) == 0, np.nan, y))
    with pytest.raises(IncompatiblePairError, match="unknown acquisition"):
        suggest(p.space, X, y, acquisition="nope")


def test_default_n_init():
    assert default_n_init(get_problem("branin").space) == 4
    assert default_n_init(get_problem("hartmann6").space) == 12


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="--device cuda"):
            resolve_device("cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("acquisition", ["ei", "kg", "ts"])
def test_cuda_suggest(branin_data, acquisition):
    p, X, y = branin_data
    s = suggest(p.space, X, y, q=2, seed=0, n_init=4, device="cuda", acquisition=acquisition)
    assert s.model.train_inputs[0].device.type == "cuda"
    assert s.X.shape == (2, 2)


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_predictions_are_in_the_objective_units(direction):
    """The model's prediction at a proposed point is in raw units and the right sign: checked
    against the value measured there, for a smooth function the GP knows well after 30 points."""
    space = Space(
        (FloatParam("a", 0.0, 10.0), FloatParam("b", -5.0, 5.0)), Objective("y", direction)
    )

    def f(x):
        return 100.0 + 3.0 * x[:, 0] - 2.0 * x[:, 1]  # raw units far from 0 and 1

    rng = np.random.default_rng(0)
    X = rng.random((30, 2))
    y = f(np.column_stack([X[:, 0] * 10, X[:, 1] * 10 - 5]))
    s = suggest(space, X, y, q=2, acquisition="ucb", seed=0)
    preds = s.info["predictions"]
    assert len(preds) == 2
    truth = f(np.array([[p["a"], p["b"]] for p in s.params]))
    for p, t in zip(preds, truth, strict=True):
        assert p["sd"] > 0
        assert abs(p["mean"] - t) < max(3 * p["sd"], 0.5), (p, t)
    # the Sobol design makes no predictions
    s0 = suggest(space, X[:2], y[:2], q=1, n_init=10)
    assert "predictions" not in s0.info


def test_model_suggest_does_not_load_jax_and_hmc_still_can():
    """botorch would import JAX + numpyro (~1 s of every cold ask); the engine hides them while
    botorch loads, and hmc (which needs them) still imports them afterwards. A fresh interpreter,
    since this test process may have loaded them already."""
    import subprocess
    import sys

    code = """
import sys
import numpy as np
from bocli.engine import suggest
from problems import get_problem
p = get_problem("branin")
X = np.random.default_rng(0).random((8, 2))
y = np.array([p.evaluate(q) for q in p.space.decode(X)])
s = suggest(p.space, X, y, n_init=4, num_restarts=2, raw_samples=32)
assert s.info["phase"] == "model"
assert "jax" not in sys.modules and "numpyro" not in sys.modules, "jax was imported"
import jax, numpyro  # still importable for hmc
import botorch.models.fully_bayesian
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-2000:]


def test_a_cold_cli_ask_does_not_load_jax(tmp_path):
    """The CLI checks the surrogate (importing its module, hence botorch) before it suggests: that
    import hides JAX too, so a cold `bocli ask` in the model phase never pays for it."""
    import subprocess
    import sys

    code = f"""
import sys
from pathlib import Path
from bocli.study import init_study, tell_file
from bocli.cli import main
study = Path({str(tmp_path)!r}) / "s.db"
init_study(study, problem="branin", n_init=4, check_models=False)
rows = ["x0,x1,value", "1,2,30.1", "-3,7,12.5", "5,1,18.0", "8,12,99.2", "2,3,4.4"]
(study.parent / "h.csv").write_text("\\n".join(rows) + "\\n")
tell_file(study, study.parent / "h.csv")
sys.argv = ["bocli", "ask", str(study), "-o", str(study.parent / "b.csv")]
try:
    main()
except SystemExit as e:
    assert not e.code, e.code
assert "jax" not in sys.modules and "numpyro" not in sys.modules, "jax was imported"
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-2000:]
    assert "(gp+ei)" in r.stderr, r.stderr  # the model phase answered, not the design
