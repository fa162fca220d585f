"""pfn with its default power transform reports predictions in the objective's units: the bar
distribution lives in Yeo-Johnson-transformed units and is mapped back (not read as if it were the
standardized objective)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bocli.engine import _standardize, predict
from bocli.space import Space
from surrogates import make_surrogate
from surrogates.pfn import YeoJohnson


@pytest.mark.parametrize("lmbda", [-1.5, 0.0, 0.5, 1.0, 2.0, 3.5])
def test_yeo_johnson_inverse_round_trips(lmbda: float) -> None:
    y = torch.linspace(-4, 4, 201, dtype=torch.float64)
    m = YeoJohnson(lmbda, 0.3, 1.7)
    assert torch.allclose(m.inverse(m(y)), y, atol=1e-10)


def _skewed(X: np.ndarray) -> np.ndarray:
    return np.exp(4.0 * X[:, 0]) + X[:, 1]  # a long right tail


@pytest.fixture(scope="module")
def fitted():
    space = Space.from_dict(
        {
            "parameters": [{"name": f"x{i}", "type": "float", "low": 0, "high": 1} for i in (0, 1)],
            "objective": {"name": "y", "direction": "minimize"},
        }
    )
    rng = np.random.default_rng(0)
    X, Xt = rng.random((30, 2)), rng.random((300, 2))
    y, yt = _skewed(X), _skewed(Xt)
    train_Y = torch.as_tensor(_standardize(-y)).unsqueeze(-1)  # as the engine fits it
    sur = make_surrogate("pfn", {})
    torch.manual_seed(0)
    model = sur.fit(torch.as_tensor(X), train_Y)
    assert sur.diagnostics["yeo_johnson_lambda"] != 1.0  # the transform is in use
    return space, model, X, y, Xt, yt


def test_moments_in_model_units_match_monte_carlo(fitted) -> None:
    _, model, _, _, Xt, _ = fitted
    with torch.no_grad():
        post = model.posterior(torch.as_tensor(Xt[:40]))
        mean, var = post.data_moments()
        torch.manual_seed(1)
        draws = post.incumbent_map.inverse(post.rsample(torch.Size([20000])))
    n = draws.shape[0]
    se = draws.std(0) / n**0.5  # Monte Carlo standard error of the mean
    assert ((mean - draws.mean(0)).abs() <= 5 * se + 1e-3).all()
    # the sd: midpoint quadrature leaves out the tails beyond the 1/1024 quantiles, which a
    # power transform can stretch far; most points agree closely, none is larger than Monte Carlo's
    ratio = var.sqrt() / draws.std(0)
    assert (ratio - 1).abs().median() < 0.02 and (ratio < 1.05).all()


def test_predictions_are_in_objective_units_and_calibrated(fitted) -> None:
    space, model, _, y, Xt, yt = fitted
    preds = predict(model, torch.as_tensor(Xt), space, y)
    assert preds is not None
    mean = np.array([p["mean"] for p in preds])
    sd = np.array([p["sd"] for p in preds])
    # the transformed-space reading that this replaces (the bug: 41.7 +- 3.7 where truth was 55.6)
    loc, scale = float((-y).mean()), float((-y).std())
    with torch.no_grad():
        post = model.posterior(torch.as_tensor(Xt))
    old = -(post.mean.reshape(-1).numpy() * scale + loc)
    new_err, old_err = np.median(np.abs(mean - yt)), np.median(np.abs(old - yt))
    assert new_err < 0.8 * old_err, (new_err, old_err)
    assert new_err < 0.5 * np.median(np.abs(yt - y.mean()))  # beats a constant predictor
    coverage = np.mean(np.abs(yt - mean) <= 1.6449 * sd)
    assert 0.7 <= coverage <= 1.0, coverage


def test_inverse_transform_stays_finite_past_the_transforms_reach():
    """With lambda < 0 the transform of positive outcomes is bounded, so a bar-distribution
    quantile past that bound has no preimage: it maps to the edge of a padded data range, not to
    1e30 (what made pfn's mean explode on Hartmann3)."""
    from surrogates.pfn import YeoJohnson

    y = torch.tensor([0.0, 0.5, 1.0, 2.0, 40.0], dtype=torch.float64)
    yj = YeoJohnson.fit(-y)  # skewed to the left: a negative-side-heavy fit
    yj = YeoJohnson(-0.5, yj.mean, yj.std, float(y.min()), float(y.max()))
    far = torch.tensor([1e3, -1e3], dtype=torch.float64)
    back = yj.inverse(far)
    assert torch.isfinite(back).all()
    assert back.max() <= 40.0 + 3 * 40.0 and back.min() >= 0.0 - 3 * 40.0
    inside = torch.tensor([0.1, 0.7], dtype=torch.float64)
    assert torch.allclose(yj.inverse(yj(inside)), inside)  # unchanged within the data's range
