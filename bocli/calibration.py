"""How well a fitted surrogate predicts a known function on held-out points.

Used by ``bocli compare`` after every refit on problems whose function is known and cheap (the
synthetic and mixed benchmarks): a fixed set of held-out points is drawn once per problem (fixed seed)
and evaluated noiselessly; each refit's predictive is scored there with

- ``loglik``: mean Gaussian predictive log density of the held-out values, in the standardized units
  the model was fit in (so numbers are comparable across problems; higher is better);
- ``coverage``: fraction of held-out values inside the central 90% predictive interval (0.9 is ideal);
- ``rmse``: root mean squared error of the predictive mean, standardized units.

Sample-based posteriors (ensembles, HMC, fully Bayesian mixtures) are scored through their first two
moments (a Gaussian moment match), the same view the analytic acquisitions take of them.

Noise convention (one for the whole CLI): the predictive scored here is that of a *noisy
observation*, ``model.posterior(X, observation_noise=True)`` (the latent function's only for a model
that cannot add noise), exactly what ``bocli.engine.predict`` reports as ``ask``'s ``predicted`` and
``status`` scores as coverage. The held-out targets are noiseless, so on a noisy problem the intervals
are wider than the latent function's by the learned noise (coverage errs towards 1).

Device and dtype: the query points are built on the device and in the dtype of the model's training
inputs (the run's ``--device`` / ``--dtype``), never from ``model.parameters()`` (sample-based and
PFN models have none, or float32 ones).

Pure computation: no files, no printing. Imports torch only inside functions.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from botorch.models.model import Model

    from problems.base import Problem

__all__ = [
    "CALIBRATION_SEED",
    "calibration_metrics",
    "engine_standardization",
    "gaussian_scores",
    "has_known_function",
    "held_out_points",
    "model_tensor_kwargs",
    "predictive_moments",
]

CALIBRATION_SEED = 20240531
LEVEL = 0.9

_HELD_OUT: dict[tuple[str, int, int], tuple[np.ndarray, np.ndarray]] = {}


def has_known_function(problem: Problem) -> bool:
    """True for problems whose noiseless function is known and cheap (optimum known, not an ML task
    or a user objective)."""
    return problem.optimum is not None and not ({"ml", "user"} & set(problem.tags))


def held_out_points(
    problem: Problem, n: int, seed: int = CALIBRATION_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """The fixed held-out set of a problem (cached per process).

    Args:
        problem: A problem with a known function.
        n: Number of points.
        seed: Seed of the uniform draw (the same for every cell, so every surrogate is scored on the
            same points).

    Returns:
        ``(X, f)``: ``n x d`` valid points in the unit cube and their ``n`` noiseless values.
    """
    key = (problem.name, n, seed)
    if key not in _HELD_OUT:
        space = problem.space
        rng = np.random.default_rng(seed)
        X = space.round_trip(rng.random((n, space.dim)))
        f = np.array([float(problem.fn(space.validate(p))) for p in space.decode(X)])
        _HELD_OUT[key] = (X, f)
    return _HELD_OUT[key]


def engine_standardization(y_obs: np.ndarray, sign: float) -> tuple[float, float]:
    """The ``(mean, std)`` the engine used to standardize ``sign * y_obs`` for the fit
    (``bocli.engine.suggest``: population std, 1 when the values are constant)."""
    v = sign * np.asarray(y_obs, dtype=np.float64)
    std = float(v.std())
    return float(v.mean()), (std if std > 1e-12 else 1.0)


def gaussian_scores(
    mean: np.ndarray, var: np.ndarray, target: np.ndarray, level: float = LEVEL
) -> dict[str, float]:
    """Score Gaussian predictions ``N(mean, var)`` (each ``n``) against ``target`` (``n``).

    Returns:
        ``loglik`` (mean log density), ``coverage`` (fraction inside the central ``level`` interval)
        and ``rmse``.
    """
    from scipy.stats import norm

    mean, var, target = (np.asarray(a, dtype=np.float64).ravel() for a in (mean, var, target))
    var = np.maximum(var, 1e-12)
    sd = np.sqrt(var)
    r = target - mean
    loglik = -0.5 * (math.log(2 * math.pi) + np.log(var) + r**2 / var)
    half = norm.ppf(0.5 + level / 2) * sd
    return {
        "loglik": float(np.mean(loglik)),
        "coverage": float(np.mean(np.abs(r) <= half)),
        "rmse": float(np.sqrt(np.mean(r**2))),
    }


def model_tensor_kwargs(model: Any) -> dict[str, Any]:
    """``{"dtype", "device"}`` of a fitted model's training inputs (the run's dtype and device).

    Looks at ``train_X`` (sample-ensemble models), ``train_inputs`` (GP, PFN) and, for a
    ``ModelList``, its first model; float64 on the CPU when none is found.
    """
    import torch

    seen: set[int] = set()
    todo = [model]
    while todo:
        m = todo.pop(0)
        if m is None or id(m) in seen:
            continue
        seen.add(id(m))
        for t in (getattr(m, "train_X", None), *(getattr(m, "train_inputs", None) or ())):
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                return {"dtype": t.dtype, "device": t.device}
        todo.extend(getattr(m, "models", None) or ())
    return {"dtype": torch.float64, "device": torch.device("cpu")}


def predictive_moments(model: Model, X: np.ndarray, chunk: int = 128) -> tuple[np.ndarray, ...]:
    """Marginal predictive mean and variance of a noisy observation (see the module docstring).

    Args:
        model: A fitted botorch model (single output).
        X: ``n x d`` points in the unit cube; sent to the device and dtype of the model's training
            inputs (``model_tensor_kwargs``).

    Returns:
        ``(mean, var)``, each ``n`` (float64 numpy), in the model's (standardized) units.
    """
    import torch
    from botorch.posteriors.fully_bayesian import GaussianMixturePosterior

    tkw = model_tensor_kwargs(model)
    means, variances = [], []
    with torch.no_grad():
        for i in range(0, len(X), chunk):
            Xt = torch.as_tensor(np.asarray(X[i : i + chunk]), **tkw)
            try:  # the same convention as bocli.engine.predict
                post: Any = model.posterior(Xt, observation_noise=True)
            except (TypeError, NotImplementedError):
                post = model.posterior(Xt)
            if isinstance(post, GaussianMixturePosterior):
                m, v = post.mixture_mean, post.mixture_variance
            elif hasattr(post, "data_moments"):  # posterior in transformed units (pfn)
                m, v = post.data_moments()
            else:
                m, v = post.mean, post.variance
            means.append(m.detach().double().cpu().numpy().reshape(-1))
            variances.append(v.detach().double().cpu().numpy().reshape(-1))
    return np.concatenate(means), np.concatenate(variances)


def calibration_metrics(
    model: Model,
    X_test: np.ndarray,
    f_test: np.ndarray,
    y_obs: np.ndarray,
    sign: float,
    level: float = LEVEL,
) -> dict[str, float]:
    """Score one refit on held-out points.

    Args:
        model: The fitted model (maximizes ``(sign * y - mean) / std`` of the observations).
        X_test: ``m x d`` held-out points in the unit cube.
        f_test: ``m`` noiseless values there (raw, in the objective's units).
        y_obs: ``n`` observed values the model was fit on (raw), to replicate the standardization.
        sign: +1 to maximize, -1 to minimize.

    Returns:
        ``loglik``, ``coverage``, ``rmse`` in standardized units, and ``scale`` (the std used).
    """
    loc, scale = engine_standardization(y_obs, sign)
    z = (sign * np.asarray(f_test, dtype=np.float64) - loc) / scale
    mean, var = predictive_moments(model, X_test)
    return {**gaussian_scores(mean, var, z, level), "scale": scale}
