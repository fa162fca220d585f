"""The one data path: observations -> surrogate.fit -> acquisition -> candidates.

``suggest`` is the only place bocli proposes points; ``bocli run``, ``bocli ask`` and ``bocli compare``
all call it. It is pure computation: no files, no printing.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
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

    check_compatible(surrogate, acquisition, space)
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


@dataclass(frozen=True)
class OutcomeScaling:
    """How raw outcome values map to the model's units, per outcome (``outcome_names`` order):
    ``model = (sign * raw - loc) / scale``, so the model maximizes every objective.

    Attributes:
        signs, locs, scales: ``k`` arrays.
    """

    signs: np.ndarray
    locs: np.ndarray
    scales: np.ndarray

    @classmethod
    def fit(cls, space: Space, Y: np.ndarray) -> OutcomeScaling:
        """From ``n x k`` raw values (``k`` = number of outcomes)."""
        signs = space.outcome_signs()
        Y = np.asarray(Y, dtype=np.float64).reshape(-1, len(signs))
        ls = [_location_scale(signs[j] * Y[:, j]) for j in range(len(signs))]
        return cls(signs, np.array([a for a, _ in ls]), np.array([b for _, b in ls]))

    def to_model(self, Y: np.ndarray) -> np.ndarray:
        """``n x k`` raw -> model units."""
        return (self.signs * np.asarray(Y, dtype=np.float64) - self.locs) / self.scales

    def value_to_model(self, j: int, raw: float) -> float:
        return float((self.signs[j] * raw - self.locs[j]) / self.scales[j])

    def value_to_raw(self, j: int, model: float) -> float:
        return float(self.signs[j] * (model * self.scales[j] + self.locs[j]))

    def constraints(self, space: Space) -> list[Any]:
        """The space's outcome constraints as botorch callables on model outputs
        (``... x k -> ...``, negative where feasible, in units of the outcome's spread)."""
        names = space.outcome_names
        out: list[Any] = []
        for c in space.outcome_constraints:
            j = names.index(c.name)
            for kind, bound in c.bounds():
                out.append(
                    _Constraint(
                        j,
                        kind == "min",
                        bound,
                        *(float(a[j]) for a in (self.signs, self.locs, self.scales)),
                    )
                )
        return out


@dataclass(frozen=True)
class _Constraint:
    """One outcome bound on model outputs: ``Z (... x k) -> ...``, negative where feasible, in
    units of the outcome's spread (botorch's ``constraints=`` convention)."""

    j: int
    lower: bool  # a ``min`` bound (else ``max``)
    bound: float
    sign: float
    loc: float
    scale: float

    def __call__(self, Z: Any) -> Any:
        raw = self.sign * (Z[..., self.j] * self.scale + self.loc)
        return (self.bound - raw) / self.scale if self.lower else (raw - self.bound) / self.scale


def reference_point(space: Space, Y: np.ndarray) -> tuple[list[float], bool]:
    """The hypervolume's reference point in the user's units: each objective's threshold, and
    where one is missing, inferred from the (feasible, when any) observed Pareto front as
    botorch's ``infer_reference_point`` does (nadir minus 10% of the front's range).

    Args:
        Y: ``n x k`` raw outcome values (``outcome_names`` order).

    Returns:
        The ``m`` values and whether any was inferred.
    """
    from bocli.pareto import infer_reference_point, pareto_mask

    given = space.thresholds()
    if all(t is not None for t in given):
        return [float(t) for t in given], False  # type: ignore[arg-type]
    m = len(space.objectives)
    Y = np.asarray(Y, dtype=np.float64).reshape(-1, len(space.outcome_names))
    feas = space.feasible(Y)
    pool = Y[feas] if feas.any() else Y
    dirs = [o.direction for o in space.objectives]
    front = pool[:, :m][pareto_mask(pool[:, :m], dirs)]
    inferred = infer_reference_point(front, dirs)
    return [
        float(t) if t is not None else float(r) for t, r in zip(given, inferred, strict=True)
    ], True


def predict(model: Any, X: Any, space: Space, y: np.ndarray) -> list[dict[str, Any]] | None:
    """What the fitted model expects to measure at ``X``, in the outcomes' own units.

    Args:
        model: The fitted botorch model (trained on ``OutcomeScaling`` units).
        X: ``q x d`` points (a tensor on the model's device).
        space: The space (objective directions give the signs).
        y: The raw values the model was trained on: ``n`` (one outcome) or ``n x k``.

    Returns:
        One ``{"mean": m, "sd": s}`` per point (one outcome), or with several outcomes one
        ``{outcome: {"mean": m, "sd": s}}`` per point: the predictive mean and standard deviation
        of a noisy measurement (the latent function's if the model cannot add noise), or None if
        the model cannot predict there (never an error: a prediction is information, not a
        product).
    """
    import torch
    from linear_operator.utils.errors import NotPSDError

    k = len(space.outcome_names)
    scaling = OutcomeScaling.fit(space, np.asarray(y, dtype=np.float64).reshape(-1, k))
    try:
        with torch.no_grad():
            try:
                post = model.posterior(X, observation_noise=True)
            except NotImplementedError:  # a model that cannot add observation noise
                post = model.posterior(X)
            # a model whose posterior lives in transformed units maps it back (pfn)
            m, v = (
                post.data_moments() if hasattr(post, "data_moments") else (post.mean, post.variance)
            )
            mean = m.reshape(-1, k).double().cpu().numpy()
            var = v.reshape(-1, k).double().cpu().numpy()
    except (NotImplementedError, NotPSDError, torch.linalg.LinAlgError):
        # a model without these moments, or a covariance too singular here, still proposed its
        # points; out of memory and bugs (TypeError, ...) surface
        return None
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var))):
        return None
    mean_raw = scaling.signs * (mean * scaling.scales + scaling.locs)
    sd_raw = np.sqrt(np.clip(var, 0.0, None)) * scaling.scales
    if k == 1:
        return [
            {"mean": float(a), "sd": float(b)}
            for a, b in zip(mean_raw[:, 0], sd_raw[:, 0], strict=True)
        ]
    names = space.outcome_names
    return [
        {n: {"mean": float(mean_raw[i, j]), "sd": float(sd_raw[i, j])} for j, n in enumerate(names)}
        for i in range(len(mean_raw))
    ]


def fit_and_predict(
    space: Space,
    X: np.ndarray,
    Y: np.ndarray,
    X_query: np.ndarray,
    surrogate: str = "gp",
    surrogate_options: dict[str, Any] | None = None,
    seed: int = 0,
    device: str = "cpu",
) -> list[dict[str, Any]] | None:
    """Fit the surrogate on every observation now and predict at ``X_query`` (``bocli best``'s
    model predictions beside the observed values).

    Args:
        X: ``n x d`` encoded observations; ``Y``: their raw values, ``n`` or ``n x k``.
        X_query: ``p x d`` encoded points.

    Returns:
        ``predict``'s output at the ``p`` points, or None when there are too few observations or
        the model cannot be fitted or cannot predict.
    """
    import_botorch_without_jax()
    import torch

    from surrogates import make_surrogate

    k = len(space.outcome_names)
    Y = np.asarray(Y, dtype=np.float64).reshape(len(X), k)
    if len(X) < 2:
        return None
    tkw = {"device": resolve_device(device), "dtype": torch.float64}
    scaling = OutcomeScaling.fit(space, Y)
    sur = make_surrogate(surrogate, surrogate_options)
    with torch.random.fork_rng(), _quiet_numerics():
        torch.manual_seed(seed)
        try:
            model = sur.fit(
                torch.as_tensor(X, **tkw),
                torch.as_tensor(scaling.to_model(Y), **tkw),
                cat_dims=sorted(space.cat_dims()),
            )
        except (RuntimeError, ValueError, NotImplementedError):
            return None  # a prediction is information: without a model, the values stand alone
    return predict(model, torch.as_tensor(X_query, **tkw), space, Y)


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
    ref_point: Sequence[float] | None = None,
    fixed: Mapping[str, Any] | None = None,
) -> Suggestion:
    """Propose ``q`` new points given the completed observations.

    Every proposed point satisfies the space's ``parameter_constraints`` (in user units, after
    decoding and rounding) and carries the ``fixed`` values.

    Args:
        space: The search space (its objective's direction decides the sign).
        X: ``n x d`` completed points in the unit cube.
        y: ``n`` objective values as measured (raw), or with several outcomes (objectives and
            constrained outcomes) ``n x k`` in ``space.outcome_names`` order.
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
        ref_point: Several objectives: the frozen reference point (user units, one per
            objective); None infers it from the data (``reference_point``) and reports it in
            ``info["ref_point"]`` with ``info["ref_point_inferred"]``.
        fixed: Parameter values every proposed point takes (user units, name -> value), as Ax's
            fixed features: the model still learns from every observation.

    Returns:
        The proposal; ``info["phase"]`` says whether it came from the design or the model.
    """
    import_botorch_without_jax()
    import torch

    from bocli.acquisition import ACQUISITIONS, AcqContext, check_compatible
    from bocli.constraints import check_fixed, constrained_design, encode_fixed
    from surrogates import make_surrogate

    k = len(space.outcome_names)
    X = np.asarray(X, dtype=np.float64).reshape(-1, space.dim)
    Y = np.asarray(y, dtype=np.float64).reshape(len(X) if k > 1 else -1, k)
    y = Y[:, 0]
    if len(X) != len(Y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)} values")
    if not np.all(np.isfinite(Y)):
        raise ValueError("y contains NaN or inf; failed evaluations must be left out")
    pend = np.zeros((0, space.dim)) if pending is None else np.asarray(pending, np.float64)
    pend = pend.reshape(-1, space.dim)
    n_init = default_n_init(space) if n_init is None else n_init
    n_issued = len(X) + len(pend) if n_issued is None else n_issued
    step_seed = int(seed) * 1_000_003 + int(n_issued)
    check_compatible(surrogate, acquisition, space)
    spec = ACQUISITIONS[acquisition]
    info: dict[str, Any] = {"surrogate": surrogate, "acquisition": acquisition, "seed": step_seed}
    fixed_enc = encode_fixed(space, check_fixed(space, fixed)) if fixed else {}

    distinct = min((len(np.unique(Y[:, j])) for j in range(k)), default=0) if len(Y) else 0
    if n_issued < n_init or len(X) < 2 or distinct < 2:
        # initial design: continue the seeded Sobol sequence from the points issued so far
        if space.parameter_constraints or fixed_enc:
            pts = constrained_design(space, q, seed, n_issued, fixed_enc)
        else:
            pts = space.sobol(q, seed=seed, skip=n_issued)
        pts = _enforce(space, pts, fixed_enc)
        info.update(phase="init", fit_seconds=0.0, acq_seconds=0.0)
        return Suggestion(pts, space.decode(pts), info)

    tdevice = resolve_device(device)
    tdtype = {"float64": torch.float64, "float32": torch.float32}[dtype]
    tkw = {"device": tdevice, "dtype": tdtype}
    train_X = torch.as_tensor(X, **tkw)
    scaling = OutcomeScaling.fit(space, Y)
    train_Y = torch.as_tensor(scaling.to_model(Y), **tkw)  # n x k
    m_obj = len(space.objectives)
    ref_model = None
    if space.is_multi_objective:
        if ref_point is None:
            ref_raw, inferred = reference_point(space, Y)
            info.update(ref_point=ref_raw, ref_point_inferred=inferred)
        else:
            ref_raw = [float(r) for r in ref_point]
        ref_model = torch.as_tensor(
            [scaling.value_to_model(j, r) for j, r in enumerate(ref_raw)], **tkw
        )
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
                objectives=tuple(range(m_obj)),
                constraints=scaling.constraints(space) or None,
                ref_point=ref_model,
                capabilities=frozenset(type(sur).capabilities),
                fixed=fixed_enc,
            )
            cand = spec.run(ctx)
            # the safety net: whatever an acquisition returned, a proposal is valid, carries the
            # fixed values and satisfies the parameter constraints
            cand = torch.as_tensor(
                _enforce(space, cand.detach().cpu().double().numpy(), fixed_enc), **tkw
            )
            t2 = time.perf_counter()
            predictions = predict(model, cand, space, Y) if model is not None else None
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


def _enforce(space: Space, pts: np.ndarray, fixed: Mapping[int, float]) -> np.ndarray:
    """Proposed unit points (``q x d``) snapped to valid points, with the fixed dims' values and
    repaired into the parameter constraints (``q x d``). A point that cannot be repaired is a bug
    in the acquisition, never handed to the user."""
    from bocli.constraints import repair

    pts = np.asarray(pts, dtype=np.float64).reshape(-1, space.dim)
    if not (space.parameter_constraints or fixed):
        return pts
    out, ok = repair(space, pts, fixed)
    if not ok.all():
        raise RuntimeError(
            f"internal error: no point near the proposal {pts[~ok][0].tolist()} satisfies the "
            f"parameter constraints ({space.describe_parameter_constraints()})"
        )
    return out


def best_observed(space: Space, y: Sequence[float]) -> float | None:
    """The best value in the objective's direction, or None with no observations."""
    vals = [v for v in y if v is not None and np.isfinite(v)]
    if not vals:
        return None
    return max(vals) if space.objective.direction == "maximize" else min(vals)
