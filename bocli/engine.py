"""The one data path: observations -> surrogate.fit -> acquisition -> candidates.

``suggest`` is the only place bocli proposes points; ``bocli run``, ``bocli ask`` and ``bocli compare``
all call it. It is pure computation: no files, no printing.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bocli.errors import UserError
from bocli.space import Space

__all__ = [
    "Suggestion",
    "check_device",
    "check_models",
    "default_n_init",
    "resolve_device",
    "suggest",
]


@dataclass
class Suggestion:
    """Proposed points and how they were made.

    Attributes:
        X: ``q x d`` proposed points in the unit cube (valid points of the space).
        params: The same points decoded to parameter dicts.
        info: ``phase`` ("init" for the Sobol design, "model" otherwise), ``surrogate``,
            ``acquisition``, ``fit_seconds``, ``acq_seconds``, the surrogate's ``diagnostics``
            and, from a model, ``predictions`` (``predict``: mean and sd per point, raw units).
        model: The fitted botorch model (None during the initial design).
    """

    X: np.ndarray
    params: list[dict[str, Any]]
    info: dict[str, Any] = field(default_factory=dict)
    model: Any = None


def default_n_init(space: Space) -> int:
    """Size of the Sobol initial design: ``max(4, 2 d)`` capped at 20."""
    return int(min(20, max(4, 2 * space.dim)))


def resolve_device(device: str = "cpu") -> Any:
    """``auto`` | ``cpu`` | ``cuda[:k]`` -> torch.device; ``cuda`` without a GPU is a clear error."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    return torch.device(device)


def check_device(device: str) -> None:
    """``resolve_device`` for a command's option check: a device that cannot be had is a
    ``UserError`` (one line naming ``--device``), before any work."""
    try:
        resolve_device(device)
    except ValueError as e:
        raise UserError(str(e)) from None


def import_botorch_without_jax() -> None:
    """Import botorch while hiding JAX, unless botorch or JAX is already loaded.

    botorch imports JAX and numpyro at import time when they are installed (for its SAAS model,
    which bocli does not use); bocli installs them for ``hmc``. That is ~0.9 s of every cold
    ``bocli ask``. Hidden during botorch's import, they stay importable afterwards: ``hmc`` imports
    them itself when it is used.
    """
    import sys

    if "botorch" in sys.modules or "jax" in sys.modules:
        return
    hidden = ("jax", "numpyro")
    saved = {name: sys.modules.get(name) for name in hidden}
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import jax` fail fast
    try:
        import botorch
        import botorch.models.fully_bayesian  # noqa: F401  (binds its JAX flag now, as off)
    finally:
        for name in hidden:
            if saved[name] is None:
                del sys.modules[name]
            else:
                sys.modules[name] = saved[name]


@contextlib.contextmanager
def _quiet_numerics() -> Iterator[None]:
    """Silence what botorch/linear_operator recover from on their own (an optimizer restart, added
    Cholesky jitter): a user of the CLI can do nothing about them, and a real failure still raises."""
    from botorch.exceptions.warnings import OptimizationWarning
    from linear_operator.utils.warnings import NumericalWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=OptimizationWarning)
        warnings.filterwarnings("ignore", category=NumericalWarning)
        warnings.filterwarnings("ignore", message="Optimization failed", category=RuntimeWarning)
        yield


def check_models(
    surrogate: str,
    acquisition: str,
    surrogate_options: dict[str, Any] | None = None,
    acquisition_options: dict[str, Any] | None = None,
    space: Space | None = None,
) -> dict[str, Any]:
    """Fail at once, with one line, on anything that would fail at the first model-based proposal:
    an unusable surrogate/acquisition pair, a bad surrogate option (key or value), a bad
    acquisition option (key or value), or a space beyond the surrogate's limits (e.g. more
    parameters than the PFN checkpoint handles) or a surrogate setting that fails when used (a
    damaged checkpoint). Call it before a run or study writes anything, before the first design
    point or evaluation.

    Returns:
        The acquisition options converted to their types (strings from the command line become
        numbers); callers may store these.
    """
    from bocli.acquisition import check_acquisition_options, check_compatible
    from surrogates import make_surrogate

    check_compatible(surrogate, acquisition)
    sur = make_surrogate(surrogate, surrogate_options)
    acq_options = check_acquisition_options(acquisition, acquisition_options)
    sur.check_space(space)
    return acq_options


def _location_scale(y: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation used to standardize ``y`` (scale 1 for constant ``y``)."""
    std = float(y.std())
    return float(y.mean()), (std if std > 1e-12 else 1.0)


def _standardize(y: np.ndarray) -> np.ndarray:
    loc, scale = _location_scale(y)
    return (y - loc) / scale


def predict(model: Any, X: Any, space: Space, y: np.ndarray) -> list[dict[str, float]] | None:
    """What the fitted model expects to measure at ``X``, in the objective's own units.

    Args:
        model: The fitted botorch model (trained on ``sign * y`` standardized).
        X: ``q x d`` points (a tensor on the model's device).
        space: The space (its objective's direction gives the sign).
        y: ``n`` raw objective values the model was trained on.

    Returns:
        One ``{"mean": m, "sd": s}`` per point: the predictive mean and standard deviation of a
        noisy measurement (the latent function's if the model cannot add noise), or None if the
        model cannot predict there (never an error: a prediction is information, not a product).
    """
    import torch

    loc, scale = _location_scale(space.objective.sign * np.asarray(y, dtype=np.float64))
    try:
        with torch.no_grad():
            try:
                post = model.posterior(X, observation_noise=True)
            except (TypeError, NotImplementedError, RuntimeError):
                post = model.posterior(X)
            # a model whose posterior lives in transformed units maps it back (pfn)
            m, v = (
                post.data_moments() if hasattr(post, "data_moments") else (post.mean, post.variance)
            )
            mean = m.reshape(-1).double().cpu().numpy()
            var = v.reshape(-1).double().cpu().numpy()
    except Exception:  # a model that cannot predict here still proposed its points
        return None
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var))):
        return None
    mean_raw = space.objective.sign * (mean * scale + loc)
    sd_raw = np.sqrt(np.clip(var, 0.0, None)) * scale
    return [{"mean": float(m), "sd": float(s)} for m, s in zip(mean_raw, sd_raw, strict=True)]


def suggest(
    space: Space,
    X: np.ndarray,
    y: np.ndarray,
    *,
    q: int = 1,
    pending: np.ndarray | None = None,
    surrogate: str = "gp",
    acquisition: str = "ei",
    surrogate_options: dict[str, Any] | None = None,
    acquisition_options: dict[str, Any] | None = None,
    seed: int = 0,
    n_init: int | None = None,
    n_issued: int | None = None,
    device: str = "cpu",
    dtype: str = "float64",
    num_restarts: int = 10,
    raw_samples: int = 512,
) -> Suggestion:
    """Propose ``q`` new points given the completed observations.

    Args:
        space: The search space (its objective's direction decides the sign).
        X: ``n x d`` completed points in the unit cube.
        y: ``n`` objective values as measured (raw, in the objective's direction).
        q: Batch size.
        pending: ``p x d`` points issued but not evaluated yet.
        surrogate: Registered surrogate name; ``surrogate_options`` are its settings.
        acquisition: Registered acquisition name; ``acquisition_options`` are its settings.
        seed: Base seed; the proposal's seed is derived from it and ``n_issued`` so a resumed run
            makes the same proposals.
        n_init: Sobol design size (default ``default_n_init(space)``).
        n_issued: Points issued so far, including failed and pending ones (default ``n + p``);
            the Sobol design continues from there, so it never repeats a point.
        device: ``cpu``, ``cuda`` or ``auto``; every tensor lives there.
        dtype: ``float64`` (default) or ``float32``.

    Returns:
        The proposal; ``info["phase"]`` says whether it came from the design or the model.
    """
    import_botorch_without_jax()
    import torch

    from bocli.acquisition import ACQUISITIONS, AcqContext, check_compatible
    from surrogates import make_surrogate

    X = np.asarray(X, dtype=np.float64).reshape(-1, space.dim)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)} values")
    if not np.all(np.isfinite(y)):
        raise ValueError("y contains NaN or inf; failed evaluations must be left out")
    pend = np.zeros((0, space.dim)) if pending is None else np.asarray(pending, np.float64)
    pend = pend.reshape(-1, space.dim)
    n_init = default_n_init(space) if n_init is None else n_init
    n_issued = len(X) + len(pend) if n_issued is None else n_issued
    step_seed = int(seed) * 1_000_003 + int(n_issued)
    check_compatible(surrogate, acquisition)
    spec = ACQUISITIONS[acquisition]
    info: dict[str, Any] = {"surrogate": surrogate, "acquisition": acquisition, "seed": step_seed}

    distinct = len(np.unique(y)) if len(y) else 0
    if n_issued < n_init or len(X) < 2 or distinct < 2:
        # initial design: continue the seeded Sobol sequence from the points issued so far
        pts = space.sobol(q, seed=seed, skip=n_issued)
        info.update(phase="init", fit_seconds=0.0, acq_seconds=0.0)
        return Suggestion(pts, space.decode(pts), info)

    tdevice = resolve_device(device)
    tdtype = {"float64": torch.float64, "float32": torch.float32}[dtype]
    tkw = {"device": tdevice, "dtype": tdtype}
    train_X = torch.as_tensor(X, **tkw)
    train_Y = torch.as_tensor(_standardize(space.objective.sign * y), **tkw).unsqueeze(-1)
    X_pending = torch.as_tensor(pend, **tkw) if len(pend) else None
    cat_dims = sorted(space.cat_dims())

    model = None
    sur = make_surrogate(surrogate, surrogate_options)
    with (
        torch.random.fork_rng(devices=[tdevice] if tdevice.type == "cuda" else []),
        _quiet_numerics(),
    ):
        torch.manual_seed(step_seed)
        np_state = np.random.get_state()
        np.random.seed(step_seed % 2**32)
        try:
            t0 = time.perf_counter()
            if spec.uses_model:
                model = sur.fit(train_X, train_Y, cat_dims=cat_dims)
            t1 = time.perf_counter()
            ctx = AcqContext(
                model=model,
                train_X=train_X,
                train_Y=train_Y,
                X_pending=X_pending,
                q=q,
                space=space,
                seed=step_seed % 2**31,
                options=dict(acquisition_options or {}),
                num_restarts=num_restarts,
                raw_samples=raw_samples,
            )
            cand = spec.propose(ctx)
            t2 = time.perf_counter()
            predictions = predict(model, cand, space, y) if model is not None else None
        finally:
            np.random.set_state(np_state)
    pts = cand.detach().cpu().double().numpy().reshape(q, space.dim)
    info.update(
        phase="model",
        fit_seconds=t1 - t0,
        acq_seconds=t2 - t1,
        diagnostics=dict(getattr(sur, "diagnostics", {}) or {}),
        surrogate_options=sur.settings(),
    )
    if predictions is not None:
        info["predictions"] = predictions
    return Suggestion(pts, space.decode(pts), info, model)


def best_observed(space: Space, y: Sequence[float]) -> float | None:
    """The best value in the objective's direction, or None with no observations."""
    vals = [v for v in y if v is not None and np.isfinite(v)]
    if not vals:
        return None
    return max(vals) if space.objective.direction == "maximize" else min(vals)
