"""Acquisitions: a registry by name, each a ``propose(ctx) -> q x d`` strategy.

Every acquisition sees only the fitted botorch model (its posterior), never a surrogate type. Each
states what it *requires* of the model (see ``surrogates/base.py`` for the capability names); the
engine checks ``requires <= surrogate.capabilities`` before a run starts, so an unusable pair fails at
once with the list of surrogates that support the acquisition.

Pending points (issued but not yet evaluated) are passed to every acquisition: as ``X_pending`` to the
botorch acquisition functions, and as exclusions for Thompson sampling and random search (whose draws
do not depend on unknown outcomes). This module imports torch only inside functions.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bocli.errors import UserError

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from botorch.acquisition import AcquisitionFunction
    from botorch.models.model import Model
    from torch import Tensor

    from bocli.space import Space

__all__ = [
    "ACQUISITIONS",
    "AcqContext",
    "AcqOption",
    "AcquisitionOptionError",
    "AcquisitionSpec",
    "IncompatiblePairError",
    "acquisition_names",
    "build_acquisition",
    "check_acquisition_options",
    "check_compatible",
    "exactness",
    "register_acquisition",
]


class IncompatiblePairError(UserError, ValueError):
    """A surrogate cannot serve an acquisition; the message lists the pairs that work."""


class AcquisitionOptionError(UserError, ValueError):
    """An ``--acquisition-option`` is unknown or has a bad value; the message names the key."""


@dataclass(frozen=True)
class AcqOption:
    """One setting of an acquisition (``--acquisition-option name=value``).

    Attributes:
        name: The key.
        type: ``int`` or ``float``.
        default: The value used when the option is not given (None: chosen by the model type).
        low: The smallest accepted value (inclusive), or None.
        high: The largest accepted value (inclusive), or None.
        low_open: ``low`` itself is refused (e.g. ``beta > 0``).
        help: What it does (one short phrase).
    """

    name: str
    type: type
    default: int | float | None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    help: str = ""

    def accepted(self) -> str:
        """What this option accepts, in words (``an integer in [1, 4096]``)."""
        kind = "an integer" if self.type is int else "a number"
        if self.low is not None and self.high is not None:
            left = "(" if self.low_open else "["
            return f"{kind} in {left}{self.low:g}, {self.high:g}]"
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{kind} <= {self.high:g}"
        return kind

    def convert(self, acquisition: str, value: Any) -> int | float:
        """A user value (a command-line string or a JSON value) -> this option's type, checked."""
        where = f"--acquisition-option {self.name}={_show(value)} (acquisition '{acquisition}')"
        dflt = "depends on the model" if self.default is None else f"{self.default:g}"
        want = f"; expected {self.accepted()} (default: {dflt})"
        v: float
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise AcquisitionOptionError(f"{where}: not a number{want}")
        if isinstance(value, str):
            text = value.strip()
            try:
                v = int(text) if self.type is int else float(text)
            except ValueError:
                try:
                    v = float(text)
                except ValueError:
                    raise AcquisitionOptionError(f"{where}: not a number{want}") from None
        else:
            v = value
        if isinstance(v, float) and not math.isfinite(v):
            raise AcquisitionOptionError(f"{where}: not a finite number{want}")
        if self.type is int:
            if isinstance(v, float):
                if not v.is_integer():
                    raise AcquisitionOptionError(f"{where}: not an integer{want}")
                v = int(v)
        else:
            v = float(v)
        too_low = self.low is not None and (v <= self.low if self.low_open else v < self.low)
        too_high = self.high is not None and v > self.high
        if too_low or too_high:
            raise AcquisitionOptionError(f"{where}: out of range{want}")
        return v


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=repr)
    text = " ".join(str(text).split())  # one line, whatever the value held
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass
class AcqContext:
    """Everything an acquisition may use to propose ``q`` points.

    Attributes:
        model: The fitted botorch model (maximization, standardized outcomes).
        train_X: ``n x d`` observed inputs in the unit cube.
        train_Y: ``n x 1`` standardized observed outcomes (to maximize).
        X_pending: ``p x d`` points issued but not yet evaluated, or None.
        q: Number of points to propose.
        space: The search space (discrete/categorical structure for the optimizer).
        seed: Seed for every random choice of this proposal.
        options: Acquisition settings (``--acquisition-option``), e.g. ``beta`` for UCB.
        num_restarts: Optimizer restarts.
        raw_samples: Raw samples for the optimizer's initial conditions.
        objectives: Columns of ``train_Y`` (model outputs) that are objectives; the others are
            constrained outcomes. One objective: column 0.
        constraints: botorch outcome constraints, callables ``samples (... x k) -> ...`` that are
            negative where feasible, or None.
        ref_point: With several objectives, the reference point in model units (``m``,
            maximization, standardized like ``train_Y``).
        capabilities: What the model supports (the surrogate class's ``capabilities``, see
            ``surrogates/base.py``); e.g. ``paths`` decides how optima are sampled. Empty: only a
            posterior is assumed.
        fixed: Encoded dimension -> unit value that every proposed point takes (``--fix``).

    Proposals also satisfy ``space.parameter_constraints``: ``optimize`` passes them to botorch,
    ``candidate_set`` offers only feasible points, ``_snap`` repairs rounded ints.
    """

    model: Model
    train_X: Tensor
    train_Y: Tensor
    X_pending: Tensor | None
    q: int
    space: Space
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    num_restarts: int = 10
    raw_samples: int = 512
    objectives: tuple[int, ...] = (0,)
    constraints: list[Callable[[Tensor], Tensor]] | None = None
    ref_point: Tensor | None = None
    capabilities: frozenset[str] = frozenset()
    fixed: dict[int, float] = field(default_factory=dict)

    @property
    def d(self) -> int:
        return self.train_X.shape[-1]

    @property
    def multi(self) -> bool:
        """Several objectives."""
        return len(self.objectives) > 1

    @property
    def n_outcomes(self) -> int:
        return int(self.train_Y.shape[-1])

    def mc_objective(self) -> Any:
        """The botorch MC objective selecting the objective outputs from a model with several
        outputs, or None when the model's only output is the objective."""
        if self.n_outcomes == 1:
            return None
        if self.multi:
            from botorch.acquisition.multi_objective.objective import (
                IdentityMCMultiOutputObjective,
            )

            return IdentityMCMultiOutputObjective(outcomes=list(self.objectives))
        from botorch.acquisition.objective import GenericMCObjective

        j = self.objectives[0]
        return GenericMCObjective(lambda Z, X=None: Z[..., j])

    def feasible_train(self) -> Tensor:
        """``n`` booleans: observed points that satisfy every outcome constraint."""
        import torch

        ok = torch.ones(len(self.train_Y), dtype=torch.bool, device=self.train_Y.device)
        for c in self.constraints or []:
            ok &= c(self.train_Y) <= 0
        return ok

    def good_points(self, k: int = 5) -> Tensor:
        """Up to ``k`` of the best observed points: the top feasible objective values, or with
        several objectives the feasible non-dominated points; while none is feasible, the least
        violating points. ``k' x d``."""
        import torch

        Y = self.train_Y[..., list(self.objectives)]
        feas = self.feasible_train()
        if not feas.any() and self.constraints:  # the least violating points
            violation = sum(c(self.train_Y).clamp_min(0.0) for c in self.constraints)
            return self.train_X[torch.argsort(violation)[: min(k, len(violation))]]
        if self.multi:
            from botorch.utils.multi_objective.pareto import is_non_dominated

            pool = feas if feas.any() else torch.ones_like(feas)
            mask = torch.zeros_like(pool)
            mask[pool] = is_non_dominated(Y[pool], deduplicate=False)
            idx = torch.nonzero(mask).reshape(-1)
            return self.train_X[idx[torch.randperm(len(idx))[:k]]] if len(idx) else self.train_X[:0]
        score = Y[..., 0] + torch.where(feas, 0.0, -1e6)
        return self.train_X[torch.argsort(-score)[: min(k, len(score))]]

    @property
    def tkwargs(self) -> dict[str, Any]:
        return {"dtype": self.train_X.dtype, "device": self.train_X.device}

    @property
    def bounds(self) -> Tensor:
        """``2 x d`` bounds of the unit cube."""
        import torch

        return torch.stack([torch.zeros(self.d), torch.ones(self.d)]).to(**self.tkwargs)

    @property
    def fixed_features(self) -> dict[int, float] | None:
        """botorch's ``fixed_features``: one-choice categoricals and the ``--fix`` values."""
        return {**self.space.fixed_dims(), **self.fixed} or None

    def inequality_constraints(self) -> list[tuple[Tensor, Tensor, float]] | None:
        """The parameter constraints in botorch's form (``sum(coef * x[idx]) >= rhs`` on the unit
        cube), or None without any."""
        import torch

        from bocli.constraints import unit_rows

        rows = unit_rows(self.space)
        if not rows:
            return None
        # botorch's ">=" form of "coef . u <= rhs"; idx must be a long tensor on the device
        return [
            (
                torch.as_tensor(idx, dtype=torch.long, device=self.train_X.device),
                torch.as_tensor(-coef, **self.tkwargs),
                float(-rhs),
            )
            for idx, coef, rhs in rows
        ]

    def restrict(self, X: Any) -> Any:
        """Unit points (``n x d`` numpy) with the fixed dims set, snapped, and only the ones that
        satisfy the parameter constraints kept (``m x d``)."""
        from bocli.constraints import feasible_mask

        X = X.copy()
        for i, v in self.fixed.items():
            X[:, i] = v
        if self.fixed:
            X = self.space.round_trip(X)
        return X[feasible_mask(self.space, X)] if self.space.parameter_constraints else X

    def candidate_set(self, n: int = 1024) -> Tensor:
        """``m x d`` discrete candidates: a scrambled Sobol set plus local perturbations of the best
        observed points (as in TuRBO-style Thompson sampling), snapped to valid points; only points
        with the fixed values that satisfy the parameter constraints."""
        import numpy as np
        import torch

        from bocli.constraints import feasible_points

        rng = np.random.default_rng(self.seed)
        sobol_seed = int(rng.integers(2**31))
        constrained = bool(self.space.parameter_constraints or self.fixed)
        if constrained:
            sobol = feasible_points(self.space, n, sobol_seed, self.fixed)
        else:
            sobol = self.space.sobol(n, seed=sobol_seed)
        top = self.good_points(5).detach().cpu().numpy()
        parts = [sobol]
        if len(top):
            for scale in (0.02, 0.1):
                local = top[rng.integers(len(top), size=n // 4)] + rng.normal(
                    0, scale, size=(n // 4, self.d)
                )
                local = self.space.round_trip(np.clip(local, 0.0, 1.0))
                parts.append(self.restrict(local) if constrained else local)
        cand = torch.as_tensor(np.concatenate(parts), **self.tkwargs)
        return _drop_pending(cand, self.X_pending)


@dataclass(frozen=True)
class AcquisitionSpec:
    """A registered acquisition: how it proposes points and what it needs from the model.

    ``requires`` lists alternatives: the acquisition works with a model whose capabilities include
    every name of at least one of them (e.g. ``mes``: fantasize + gaussian, or fantasize + members).
    """

    name: str
    description: str
    requires: tuple[frozenset[str], ...]
    propose: Callable[[AcqContext], Tensor]
    uses_model: bool = True
    options: tuple[AcqOption, ...] = ()
    single_objective: bool = True
    constraints: bool = False
    multi: MultiObjectiveSpec | None = None

    def run(self, ctx: AcqContext) -> Tensor:
        """Propose with the single- or the multi-objective form, as the context needs. Until
        some observed point satisfies the outcome constraints, a model-based acquisition that
        takes them searches for feasibility first (``feasibility_search``)."""
        if (
            ctx.constraints
            and self.uses_model
            and self.name != "ts"  # Thompson sampling picks the least violating point itself
            and not bool(ctx.feasible_train().any())
        ):
            return feasibility_search(ctx)
        if ctx.multi:
            if self.multi is None:
                raise ValueError(f"acquisition '{self.name}' has no multi-objective form")
            return self.multi.propose(ctx)
        return self.propose(ctx)

    def describe(self, multi: bool = False) -> str:
        if multi:
            return self.multi.description if self.multi is not None else ""
        return self.description

    def option(self, name: str) -> AcqOption:
        for opt in self.options:
            if opt.name == name:
                return opt
        raise KeyError(name)

    def supports(self, capabilities: frozenset[str]) -> bool:
        return any(alt <= capabilities for alt in self.requires)

    def requirement_text(self) -> str:
        return " or ".join("+".join(sorted(alt)) or "-" for alt in self.requires)


@dataclass(frozen=True)
class MultiObjectiveSpec:
    """What an acquisition means with several objectives (the same idea, a hypervolume or Pareto
    form): its own proposal, description, model requirements and whether it takes outcome
    constraints."""

    description: str
    requires: tuple[frozenset[str], ...]
    propose: Callable[[AcqContext], Tensor]
    constraints: bool = False

    def supports(self, capabilities: frozenset[str]) -> bool:
        return any(alt <= capabilities for alt in self.requires)

    def requirement_text(self) -> str:
        return " or ".join("+".join(sorted(alt)) or "-" for alt in self.requires)


ACQUISITIONS: dict[str, AcquisitionSpec] = {}


def register_acquisition(
    name: str,
    description: str,
    requires: set[str] | list[set[str]] = frozenset(),
    uses_model: bool = True,
    options: tuple[AcqOption, ...] = (),
    constraints: bool = False,
    single_objective: bool = True,
) -> Callable[[Callable[[AcqContext], Tensor]], Callable[[AcqContext], Tensor]]:
    """Decorator: register ``propose(ctx) -> q x d`` under ``name``; duplicates are an error.

    ``requires`` is one set of capability names, or a list of alternative sets. ``options``
    declares every ``--acquisition-option`` the acquisition reads (``opt(ctx, name)``), so they are
    checked before any work (``check_acquisition_options``). ``constraints``: it takes outcome
    constraints. ``single_objective`` False: it exists only in a multi-objective form
    (``register_multi_objective``).
    """
    alternatives = (
        tuple(frozenset(a) for a in requires)
        if isinstance(requires, list)
        else (frozenset(requires),)
    )

    def deco(fn: Callable[[AcqContext], Tensor]) -> Callable[[AcqContext], Tensor]:
        if name in ACQUISITIONS:
            raise ValueError(f"acquisition '{name}' is already registered")
        ACQUISITIONS[name] = AcquisitionSpec(
            name,
            description,
            alternatives,
            fn,
            uses_model,
            tuple(options),
            single_objective=single_objective,
            constraints=constraints,
        )
        return fn

    return deco


def register_multi_objective(
    name: str,
    description: str,
    requires: set[str] | list[set[str]] = frozenset(),
    constraints: bool = False,
) -> Callable[[Callable[[AcqContext], Tensor]], Callable[[AcqContext], Tensor]]:
    """Decorator: give the registered acquisition ``name`` its multi-objective form."""
    alternatives = (
        tuple(frozenset(a) for a in requires)
        if isinstance(requires, list)
        else (frozenset(requires),)
    )

    def deco(fn: Callable[[AcqContext], Tensor]) -> Callable[[AcqContext], Tensor]:
        spec = ACQUISITIONS[name]
        if spec.multi is not None:
            raise ValueError(f"acquisition '{name}' already has a multi-objective form")
        multi = MultiObjectiveSpec(description, alternatives, fn, constraints)
        ACQUISITIONS[name] = dataclasses.replace(spec, multi=multi)
        return fn

    return deco


def acquisition_names() -> list[str]:
    return list(ACQUISITIONS)


def check_compatible(surrogate: str, acquisition: str, space: Space | None = None) -> None:
    """Raise IncompatiblePairError (naming what works) if the pair cannot run on ``space``: a
    surrogate without what the acquisition needs, an acquisition without a multi-objective form on
    a space with several objectives (or one that exists only in that form), or outcome constraints
    that the acquisition cannot take."""
    from surrogates import get_surrogate_class, surrogate_names

    if acquisition not in ACQUISITIONS:
        raise IncompatiblePairError(
            f"unknown acquisition '{acquisition}'; choose from: {', '.join(ACQUISITIONS)}"
        )
    spec = ACQUISITIONS[acquisition]
    multi = space is not None and space.is_multi_objective
    constrained = space is not None and space.has_outcome_constraints
    kind = "several objectives" if multi else "one objective"
    usable = [a for a, sp in ACQUISITIONS.items() if _fits(sp, multi, constrained)]
    if not _fits(spec, multi, constrained):
        if (multi and spec.multi is None) or (not multi and not spec.single_objective):
            why = f"has no form for {kind}"
        else:
            why = "does not take outcome constraints"
        raise IncompatiblePairError(
            f"acquisition '{acquisition}' {why}; with {kind}"
            f"{' and outcome constraints' if constrained else ''} use: {', '.join(usable)}"
        )
    caps = get_surrogate_class(surrogate).capabilities
    form: AcquisitionSpec | MultiObjectiveSpec = spec.multi if multi and spec.multi else spec
    if form.supports(caps):
        return
    ok = [
        s
        for s in _loadable(surrogate_names())
        if form.supports(get_surrogate_class(s).capabilities)
    ]
    ok_acq = [
        a
        for a, sp in ACQUISITIONS.items()
        if a in usable and (sp.multi if multi and sp.multi else sp).supports(caps)
    ]
    raise IncompatiblePairError(
        f"acquisition '{acquisition}'{' (several objectives)' if multi else ''} needs a model with "
        f"{form.requirement_text()}, which surrogate '{surrogate}' does not provide; "
        f"'{acquisition}' works with: {', '.join(ok)}; '{surrogate}' works with: {', '.join(ok_acq)}"
    )


def _fits(spec: AcquisitionSpec, multi: bool, constrained: bool) -> bool:
    """Whether an acquisition has a form for this kind of space."""
    if multi:
        return spec.multi is not None and (spec.multi.constraints or not constrained)
    return spec.single_objective and (spec.constraints or not constrained)


def check_acquisition_options(name: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """Check ``--acquisition-option`` settings of acquisition ``name`` before any work.

    String values (from the command line) are converted to the option's type; JSON values must
    already be numbers. Returns the converted options (only those given; the rest keep their
    defaults).

    Raises:
        AcquisitionOptionError: an unknown key (naming the known ones, with a did-you-mean) or a
            bad value (naming the key and what is accepted); one line.
        IncompatiblePairError: an unknown acquisition.
    """
    if name not in ACQUISITIONS:
        raise IncompatiblePairError(
            f"unknown acquisition '{name}'; choose from: {', '.join(ACQUISITIONS)}"
        )
    spec = ACQUISITIONS[name]
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise AcquisitionOptionError(
            f"--acquisition-option: expected key=value settings, got {_show(options)}"
        )
    known = [o.name for o in spec.options]
    out: dict[str, Any] = {}
    for key, value in options.items():
        if not isinstance(key, str) or key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            settings = (
                "settings: " + ", ".join(f"{o.name} ({o.accepted()})" for o in spec.options)
                if known
                else "it has no settings"
            )
            raise AcquisitionOptionError(
                f"--acquisition-option: '{_show(key)}' is not a setting of acquisition "
                f"'{name}'{hint}; {settings}"
            )
        out[key] = spec.option(key).convert(name, value)
    return out


def opt(ctx: AcqContext, name: str, acquisition: str) -> Any:
    """The value of option ``name`` of ``acquisition`` in ``ctx`` (checked and typed), or its
    default when not given."""
    spec_opt = ACQUISITIONS[acquisition].option(name)
    if name not in ctx.options:
        return spec_opt.default
    return spec_opt.convert(acquisition, ctx.options[name])


def _loadable(names: list[str]) -> list[str]:
    """The names whose module really registers them (a listed module may not provide every name)."""
    from surrogates import UnknownSurrogateError, get_surrogate_class

    out = []
    for name in names:
        try:
            get_surrogate_class(name)
        except UnknownSurrogateError:
            continue
        out.append(name)
    return out


# ----- optimization -------------------------------------------------------------------------------
def _drop_pending(cand: Tensor, X_pending: Tensor | None, tol: float = 1e-9) -> Tensor:
    if X_pending is None or len(X_pending) == 0 or len(cand) == 0:
        return cand
    import torch

    # exact distances: the matrix-product form rounds equal points to ~1e-8 apart
    dist = torch.cdist(cand, X_pending.to(cand), compute_mode="donot_use_mm_for_euclid_dist")
    keep = dist.min(dim=-1).values > tol
    return cand[keep] if keep.any() else cand


def optimize(acqf: AcquisitionFunction, ctx: AcqContext, sequential: bool = False) -> Tensor:
    """Maximize ``acqf`` over the space: continuous L-BFGS-B, or botorch's mixed alternating optimizer
    when there are integer/ordinal/categorical dimensions.

    Returns:
        ``q x d`` candidates snapped to valid points of the space.
    """
    import torch
    from botorch.acquisition import OneShotAcquisitionFunction
    from botorch.optim import optimize_acqf
    from botorch.optim.optimize_mixed import optimize_acqf_mixed_alternating

    space = ctx.space
    fixed = ctx.fixed_features
    ineq = ctx.inequality_constraints()
    mixed = not space.is_continuous and not isinstance(acqf, OneShotAcquisitionFunction)
    with torch.random.fork_rng():
        torch.manual_seed(ctx.seed)
        if mixed:

            def mixed_opt(q: int) -> Tensor:
                cand, _ = optimize_acqf_mixed_alternating(
                    acqf,
                    bounds=ctx.bounds,
                    discrete_dims=space.discrete_dims(),
                    cat_dims=space.cat_dims(),
                    q=q,
                    num_restarts=ctx.num_restarts,
                    raw_samples=ctx.raw_samples,
                    fixed_features=fixed,
                    inequality_constraints=ineq,
                )
                return cand

            if sequential and ctx.q > 1:
                # greedy batch, one point at a time with the earlier ones pending: q = 1-only
                # acquisitions (GIBBON, MES, JES) must never see a joint q-batch
                base = acqf.X_pending
                picks: list[Tensor] = []
                for _ in range(ctx.q):
                    picks.append(mixed_opt(1))
                    acqf.set_X_pending(torch.cat([p for p in (base, *picks) if p is not None]))
                acqf.set_X_pending(base)
                cand = torch.cat(picks)
            else:
                cand = mixed_opt(ctx.q)
        else:
            # one-shot KG in a mixed space optimizes the continuous relaxation, then snaps
            cand, _ = optimize_acqf(
                acqf,
                bounds=ctx.bounds,
                q=ctx.q,
                num_restarts=ctx.num_restarts,
                raw_samples=ctx.raw_samples,
                options={"batch_limit": 8, "maxiter": 200},
                sequential=sequential and ctx.q > 1,
                fixed_features=fixed,
                inequality_constraints=ineq,
            )
    return _snap(cand.detach(), ctx)


def _snap(cand: Tensor, ctx: AcqContext) -> Tensor:
    """``q x d`` candidates -> valid points; with parameter constraints or fixed values, rounded
    ints that broke a constraint are repaired (``bocli.constraints.repair``)."""
    import torch

    if ctx.space.parameter_constraints or ctx.fixed:
        from bocli.constraints import repair

        fixed, _ = repair(ctx.space, cand.detach().cpu().double().numpy(), ctx.fixed)
        return torch.as_tensor(fixed, **ctx.tkwargs)
    if ctx.space.is_continuous:
        return cand.clamp(0.0, 1.0)
    snapped = ctx.space.round_trip(cand.cpu().numpy())
    return torch.as_tensor(snapped, **ctx.tkwargs)


def _cheaper(ctx: AcqContext, num_restarts: int = 6, raw_samples: int = 256) -> AcqContext:
    """The same context with a smaller optimizer budget, for acquisitions that cost ~100x more per
    evaluation than EI (one-shot KG, entropy search): their optimum is flatter, so fewer restarts
    lose little while keeping a suggest within seconds."""
    return dataclasses.replace(
        ctx,
        num_restarts=min(ctx.num_restarts, num_restarts),
        raw_samples=min(ctx.raw_samples, raw_samples),
    )


def _best_f(ctx: AcqContext) -> float:
    return float(ctx.train_Y[..., ctx.objectives[0]].max())


# ----- the registry -------------------------------------------------------------------------------
@register_acquisition(
    "ei", "log noisy expected improvement (qLogNEI), batch and pending aware", constraints=True
)
def _ei(ctx: AcqContext) -> Tensor:
    return optimize(_build_ei(ctx), ctx)


def _build_ei(ctx: AcqContext) -> AcquisitionFunction:
    """qLogNEI from posterior samples; at q = 1 without pending points, a model whose posterior has
    a closed-form EI (``model.closed_form_ei`` and ``posterior.log_expected_improvement(best_f)``,
    e.g. the PFN's bar distribution) is scored exactly instead."""
    if (
        ctx.q == 1
        and ctx.X_pending is None
        and ctx.n_outcomes == 1
        and getattr(ctx.model, "closed_form_ei", False)
    ):
        return closed_form_log_ei(ctx.model, best_f=_best_f(ctx))
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement

    return qLogNoisyExpectedImprovement(
        ctx.model,
        X_baseline=ctx.train_X,
        X_pending=ctx.X_pending,
        prune_baseline=True,
        objective=ctx.mc_objective(),
        constraints=ctx.constraints,
    )


def closed_form_log_ei(model: Model, best_f: float) -> AcquisitionFunction:
    """Analytic log EI read off a posterior that provides ``log_expected_improvement(best_f)``."""
    from botorch.acquisition.analytic import AnalyticAcquisitionFunction
    from botorch.utils.transforms import t_batch_mode_transform

    class _ClosedFormLogEI(AnalyticAcquisitionFunction):
        def __init__(self, model: Model, best_f: float) -> None:
            super().__init__(model=model)
            self.best_f = best_f

        @t_batch_mode_transform(expected_q=1)
        def forward(self, X: Tensor) -> Tensor:
            """``b x 1 x d`` -> ``b`` log expected improvement over ``best_f``."""
            return self.model.posterior(X).log_expected_improvement(self.best_f).reshape(-1)

    return _ClosedFormLogEI(model, best_f)


_NUM_FANTASIES_HELP = "fantasy outcomes per point (more: smoother, slower)"


@register_acquisition(
    "ucb",
    "upper confidence bound (qUCB), beta set by --acquisition-option beta=",
    options=(AcqOption("beta", float, 2.0, low=0.0, high=1e6, help="exploration weight (>= 0)"),),
)
def _ucb(ctx: AcqContext) -> Tensor:
    return optimize(_build_ucb(ctx), ctx)


def _build_ucb(ctx: AcqContext) -> AcquisitionFunction:
    from botorch.acquisition.monte_carlo import qUpperConfidenceBound

    return qUpperConfidenceBound(ctx.model, beta=opt(ctx, "beta", "ucb"), X_pending=ctx.X_pending)


@register_acquisition(
    "kg",
    "one-shot knowledge gradient (qKG)",
    requires={"fantasize"},
    options=(AcqOption("num_fantasies", int, 32, low=1, high=1024, help=_NUM_FANTASIES_HELP),),
)
def _kg(ctx: AcqContext) -> Tensor:
    return optimize(_build_kg(ctx), _cheaper(ctx))


def _build_kg(ctx: AcqContext) -> AcquisitionFunction:
    """One-shot qKG; its value at given points is ``acqf.evaluate(X, bounds)`` (inner problem
    solved), its ``forward`` takes the one-shot points with the fantasy solutions appended."""
    import torch
    from botorch.acquisition import PosteriorMean, qKnowledgeGradient

    num_fantasies = opt(ctx, "num_fantasies", "kg")
    with torch.no_grad():
        current = PosteriorMean(ctx.model)(ctx.train_X.unsqueeze(-2)).max()
    return qKnowledgeGradient(
        ctx.model, num_fantasies=num_fantasies, X_pending=ctx.X_pending, current_value=current
    )


@register_acquisition(
    "mes",
    "max-value entropy search (qMES; moment-matched with member maxima for ensembles)",
    requires=[{"fantasize", "gaussian"}, {"fantasize", "members"}],
    options=(
        # None: each variant's own default (Gaussian 8 / ensemble 16 fantasies; 10 / 64 max values)
        AcqOption("num_fantasies", int, None, low=1, high=1024, help=_NUM_FANTASIES_HELP),
        AcqOption("num_mv_samples", int, None, low=1, high=10_000, help="max-value samples"),
    ),
)
def _mes(ctx: AcqContext) -> Tensor:
    return optimize(_build_mes(ctx), _cheaper(ctx), sequential=True)


def _build_mes(ctx: AcqContext) -> AcquisitionFunction:
    """Gaussian posteriors: botorch's qMES (Gumbel max values). Ensemble posteriors: the same MES
    formula on the mixture's moment match, with each drawn member's maximum as a max-value sample.
    Pending points (and q > 1, greedily) are handled by fantasizing, hence ``fantasize``."""
    if _has_ensemble_posterior(ctx):
        return _ensemble_mes(ctx)
    from botorch.acquisition.max_value_entropy_search import qMaxValueEntropy

    return qMaxValueEntropy(
        ctx.model,
        candidate_set=ctx.candidate_set(512),
        X_pending=ctx.X_pending,
        num_fantasies=_opt_or(ctx, "num_fantasies", "mes", 8),
        num_mv_samples=_opt_or(ctx, "num_mv_samples", "mes", 10),
    )


@register_acquisition(
    "gibbon", "GIBBON, the lower bound of max-value entropy search", requires={"gaussian"}
)
def _gibbon(ctx: AcqContext) -> Tensor:
    return optimize(_build_gibbon(ctx), _cheaper(ctx), sequential=True)


def _build_gibbon(ctx: AcqContext) -> AcquisitionFunction:
    from botorch.acquisition.max_value_entropy_search import qLowerBoundMaxValueEntropy

    return qLowerBoundMaxValueEntropy(
        ctx.model, candidate_set=ctx.candidate_set(512), X_pending=ctx.X_pending
    )


def _opt_or(ctx: AcqContext, name: str, acquisition: str, default: int) -> int:
    """Option ``name`` when given, else ``default`` (for options whose default depends on the
    model's posterior, declared with default None)."""
    return opt(ctx, name, acquisition) if name in ctx.options else default


def optimal_samples(ctx: AcqContext, num: int) -> tuple[Tensor, Tensor]:
    """Samples of the maximizer and the maximum of the objective (for joint entropy search).

    With the capability ``paths`` (the model's own functions: ``gp``), botorch's pathwise (Matheron)
    posterior samples, optimized continuously. Otherwise (a deep kernel's paths would skip its
    feature network; the NNGP kernels have none) ``num`` joint draws of the posterior itself on a
    discrete candidate set, so the optima come from the model that the acquisition scores. A
    kernel without pathwise features (categorical) or a numerical failure falls back to the
    latter; anything else (out of memory, a bug) surfaces.

    Returns:
        ``num x d`` optimal inputs and ``num x 1`` optimal outputs.
    """
    import torch

    if "paths" in ctx.capabilities:
        from botorch.acquisition.utils import get_optimal_samples
        from linear_operator.utils.errors import NotPSDError

        try:
            with torch.random.fork_rng():
                torch.manual_seed(ctx.seed)
                return get_optimal_samples(ctx.model, bounds=ctx.bounds, num_optima=num)
        except (NotImplementedError, NotPSDError, torch.linalg.LinAlgError) as e:
            # no pathwise features for this kernel (a categorical one), or a numerical failure
            log.info("optimal_samples: no pathwise draws (%s); using joint draws", e)
    cand = ctx.candidate_set(1024)
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(ctx.seed)
        samples = ctx.model.posterior(cand).rsample(torch.Size([num])).squeeze(-1)  # num x m
    idx = samples.argmax(dim=-1)
    return cand[idx], samples.gather(-1, idx.unsqueeze(-1))


@register_acquisition(
    "jes",
    "joint entropy search (qJES lower bound; moment-matched member optima for ensembles)",
    requires={"condition"},
    options=(
        AcqOption(
            "num_optima", int, 32, low=1, high=1024, help="optimal samples (Gaussian models)"
        ),
    ),
)
def _jes(ctx: AcqContext) -> Tensor:
    """Gaussian posteriors: botorch's qJES with optima from ``optimal_samples``. Ensemble
    posteriors: each member's optimum on the candidate set is one optimal sample, the model is
    conditioned on it by member reweighting, and the entropies are those of the moment-matched
    joint Gaussian over the q points."""
    if _has_ensemble_posterior(ctx):
        return optimize(_ensemble_jes(ctx), _cheaper(ctx))
    return optimize(_build_jes(ctx), _cheaper(ctx), sequential=True)


def _build_jes(ctx: AcqContext) -> AcquisitionFunction:
    if _has_ensemble_posterior(ctx):
        return _ensemble_jes(ctx)
    from botorch.acquisition.joint_entropy_search import qJointEntropySearch

    opt_X, opt_Y = optimal_samples(ctx, opt(ctx, "num_optima", "jes"))
    return qJointEntropySearch(
        ctx.model,
        optimal_inputs=opt_X,
        optimal_outputs=opt_Y,
        estimation_type="LB",
        X_pending=ctx.X_pending,
    )


@register_acquisition(
    "ts",
    "Thompson sampling on a Sobol + local candidate set",
    constraints=True,
    options=(
        AcqOption(
            "num_candidates", int, 2048, low=16, high=100_000, help="Sobol candidates per draw"
        ),
    ),
)
def _ts(ctx: AcqContext) -> Tensor:
    """Each of the q points maximizes one joint posterior draw over the candidates. Pending outcomes
    marginalize out of a Thompson draw, so pending points are only excluded from the candidates."""
    import torch
    from botorch.generation.sampling import MaxPosteriorSampling

    cand = ctx.candidate_set(opt(ctx, "num_candidates", "ts"))
    if ctx.n_outcomes > 1:
        return _snap(thompson_pick(ctx, cand), ctx)
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(ctx.seed)
        try:
            picks = MaxPosteriorSampling(ctx.model, replacement=False)(cand, num_samples=ctx.q)
        except (RuntimeError, ValueError) as e:  # a joint covariance too singular to factor
            if _out_of_memory(e) or not hasattr(ctx.model.posterior(cand[:1]), "distribution"):
                raise
            log.info("ts: joint sampling failed (%s); using an eigendecomposition", e)
            picks = _thompson_fallback(ctx.model, cand, ctx.q)
    return _snap(picks.reshape(ctx.q, ctx.d), ctx)


def feasibility_search(ctx: AcqContext, num_candidates: int = 4096) -> Tensor:
    """``q`` points most likely to satisfy every outcome constraint, while no observed point does.

    The improvement-based acquisitions weigh improvement by the probability of feasibility, which
    has no gradient anywhere a model is sure of infeasibility (an ensemble whose members all
    agree, a PFN's independent samples): they then wander. Here each constraint ``g`` (affine in
    the outcome, negative = feasible) is scored by its Gaussian moment match, ``P(g <= 0) =
    Phi(-E[g] / sd[g])``, the constraints' logs summed, on a Sobol + local candidate set (around
    the least violating observed points); the best ``q`` candidates, each at least 1% of the
    cube's diagonal from those already picked, are returned (``q x d``).
    """
    import torch

    cand = ctx.candidate_set(num_candidates)
    with torch.no_grad():
        post = ctx.model.posterior(cand.unsqueeze(-2))
        mean = post.mean.squeeze(-2)  # c x k
        sd = post.variance.squeeze(-2).clamp_min(1e-12).sqrt()
        log_pf = torch.zeros(len(cand), dtype=mean.dtype, device=mean.device)
        for g in ctx.constraints or []:
            at_mean = g(mean)
            spread = (g(mean + sd) - at_mean).abs().clamp_min(1e-9)  # g is affine in one outcome
            log_pf = log_pf + torch.special.log_ndtr(-at_mean / spread)
    order = torch.argsort(log_pf, descending=True)
    picks: list[int] = []
    min_dist = 0.01 * math.sqrt(ctx.d)
    for i in order.tolist():
        if all(float(torch.dist(cand[i], cand[j])) > min_dist for j in picks):
            picks.append(i)
        if len(picks) == ctx.q:
            break
    return _snap(cand[picks], ctx)


def thompson_pick(ctx: AcqContext, cand: Tensor) -> Tensor:
    """Thompson sampling with several model outputs: each of the ``q`` points comes from its own
    joint draw of every outcome on ``cand`` (``c x d``). One objective: the best feasible
    candidate of the draw (the least violating one when none is). Several objectives: from the
    draw's feasible Pareto set, the candidate adding the most hypervolume (against the reference
    point) to the observed front and the points already picked. Returns ``q x d``."""
    import numpy as np
    import torch

    from bocli.pareto import hypervolume

    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(ctx.seed)
        draws = ctx.model.posterior(cand).rsample(torch.Size([ctx.q]))  # q x c x k
    draws = draws.reshape(ctx.q, len(cand), -1)
    obj = list(ctx.objectives)
    picks: list[int] = []
    chosen_Y: list[np.ndarray] = []
    Y_obs = ctx.train_Y[ctx.feasible_train()][..., obj].detach().cpu().double().numpy()
    for j in range(ctx.q):
        Z = draws[j]
        violation = torch.zeros(len(cand), dtype=Z.dtype, device=Z.device)
        for c in ctx.constraints or []:
            violation = violation + c(Z).clamp_min(0.0)
        feasible = violation <= 0
        free = torch.ones(len(cand), dtype=torch.bool, device=Z.device)
        free[picks] = False
        if not (feasible & free).any():
            order = torch.argsort(violation + torch.where(free, 0.0, float("inf")))
            picks.append(int(order[0]))
            continue
        pool = torch.nonzero(feasible & free).reshape(-1)
        if not ctx.multi:
            picks.append(int(pool[torch.argmax(Z[pool, obj[0]])]))
            continue
        vals = Z[pool][:, obj].detach().cpu().double().numpy()
        ref = ctx.ref_point.detach().cpu().double().numpy()
        dirs = ["maximize"] * len(obj)
        base = np.concatenate([Y_obs, *chosen_Y]) if len(Y_obs) or chosen_Y else vals[:0]
        hv0 = hypervolume(base, dirs, ref)
        gains = np.array([hypervolume(np.vstack([base, v[None]]), dirs, ref) - hv0 for v in vals])
        if gains.max() <= 0:  # nothing beats the front in this draw: the draw's best scalarization
            w = np.random.default_rng(ctx.seed + j).dirichlet(np.ones(len(obj)))
            gains = np.min((vals - ref) / w, axis=1)
        best = int(np.argmax(gains))
        picks.append(int(pool[best]))
        chosen_Y.append(vals[best][None])
    return cand[picks]


def _thompson_fallback(model: Model, cand: Tensor, q: int) -> Tensor:
    """Joint posterior draws on ``cand`` (``m x d``) through a clamped eigendecomposition.

    Near-duplicate candidates make the ``m x m`` posterior covariance singular to working
    precision; a Cholesky factor (even jittered) can then fail, while the symmetric square root
    with negative round-off eigenvalues set to zero always exists. Returns ``q x d`` maximizers of
    ``q`` draws, without repeats.
    """
    import torch

    post = model.posterior(cand.unsqueeze(0))
    mean = post.mean.reshape(-1)
    cov = post.distribution.covariance_matrix.reshape(len(mean), len(mean)).double()
    evals, evecs = torch.linalg.eigh(0.5 * (cov + cov.T))
    root = evecs * evals.clamp_min(0.0).sqrt()
    z = torch.randn(len(mean), q, dtype=root.dtype, device=root.device)
    draws = mean.double().unsqueeze(-1) + root @ z  # m x q
    picks: list[int] = []
    for j in range(q):
        order = torch.argsort(draws[:, j], descending=True)
        # the best candidate of this draw that is not (a copy of) one already picked
        picks.append(
            next(int(i) for i in order if not any(torch.equal(cand[i], cand[k]) for k in picks))
        )
    return cand[picks]


@register_acquisition(
    "random", "uniform random search (a baseline)", uses_model=False, constraints=True
)
def _random(ctx: AcqContext) -> Tensor:
    import numpy as np
    import torch

    rng = np.random.default_rng(ctx.seed)
    # spare draws replace any that repeat a pending point (possible in discrete spaces); the
    # first q rows are the same stream as q draws alone
    X = ctx.space.round_trip(rng.random((ctx.q + 64, ctx.d)))
    if ctx.space.parameter_constraints or ctx.fixed:
        from bocli.constraints import feasible_points

        X = ctx.restrict(X)
        if len(X) < ctx.q + 1:  # a small feasible share: uniform draws from the polytope
            X = np.concatenate([X, feasible_points(ctx.space, 64, ctx.seed, ctx.fixed)])
    cand = torch.as_tensor(X, **ctx.tkwargs)
    kept = _drop_pending(cand, ctx.X_pending)
    return (kept if len(kept) >= ctx.q else cand)[: ctx.q]


# ----- entropy search for ensemble (sample) posteriors ----------------------------------------------
def _has_ensemble_posterior(ctx: AcqContext) -> bool:
    """True when the model's posterior is a finite weighted set of functions (EnsemblePosterior)."""
    import torch
    from botorch.posteriors.ensemble import EnsemblePosterior

    with torch.no_grad():
        return isinstance(ctx.model.posterior(ctx.train_X[:1]), EnsemblePosterior)


def _ensemble_mes(ctx: AcqContext) -> AcquisitionFunction:
    """Max-value entropy search (Wang & Jegelka 2017) for an ensemble posterior, with noisy
    observations as botorch's qMES treats them (Takeno et al. 2020): the information a noisy ``y``
    at ``x`` carries about the maximum ``f*`` of the function, where ``f(x)`` is moment-matched to
    ``N(mu, var_f)`` (the mixture's mean and between-member variance), ``y`` adds the members'
    noise, and each max-value sample is the maximum over the candidate set of one member (drawn by
    the seeded index sampler). Pending points: the model is fantasized there (member reweighting)
    and the value averaged over the fantasies.
    """
    import torch
    from botorch.acquisition import AcquisitionFunction
    from botorch.sampling.index_sampler import IndexSampler
    from botorch.sampling.normal import SobolQMCNormalSampler
    from botorch.utils.transforms import t_batch_mode_transform

    cand = ctx.candidate_set(1024)
    num_mv = _opt_or(ctx, "num_mv_samples", "mes", 64)
    num_fantasies = _opt_or(ctx, "num_fantasies", "mes", 16)

    class _EnsembleMES(AcquisitionFunction):
        def __init__(self, model: Model) -> None:
            super().__init__(model=model)
            self._init_model = model
            self.set_X_pending(ctx.X_pending)

        def set_X_pending(self, X_pending: Tensor | None = None) -> None:
            model = self._init_model
            self.fantasized = X_pending is not None and len(X_pending) > 0
            if self.fantasized:
                sampler = SobolQMCNormalSampler(torch.Size([num_fantasies]), seed=ctx.seed)
                model = model.fantasize(X_pending.detach(), sampler)
            self.model = model
            self.X_pending = X_pending
            # standard normal quantiles for the observation y at X (botorch uses 128 QMC draws)
            u = (torch.arange(128, dtype=torch.float64) + 0.5) / 128
            self.y_quantiles = torch.special.ndtri(u)
            with torch.no_grad():
                post = model.posterior(cand)  # values (nf) x s x m x 1
                draws = IndexSampler(torch.Size([num_mv]), seed=ctx.seed)(post)
                self.max_values = draws.squeeze(-1).max(dim=-1).values  # num_mv x (nf)

        @t_batch_mode_transform(expected_q=1)
        def forward(self, X: Tensor) -> Tensor:
            """``b x 1 x d`` -> ``b`` MES values: the information a noisy observation ``y`` at
            ``X`` carries about the maximum ``f*`` (botorch qMES's noisy estimator, Takeno et
            al. 2020, on the mixture's latent and noisy moments)."""
            Xe = X.unsqueeze(-3) if self.fantasized else X  # b x (1) x 1 x d
            post = self.model.posterior(Xe)
            mu = post.mean[..., 0, 0]  # b x (nf)
            var_f = post.latent_variance[..., 0, 0].clamp_min(1e-12)
            var_y = (post.variance[..., 0, 0]).clamp_min(var_f + 1e-12)
            z = self.y_quantiles.to(mu).view(-1, *([1] * mu.dim()))  # s_y x 1 ...
            y = mu + var_y.sqrt() * z  # s_y x b x (nf)
            mean_new = mu + var_f / var_y * (y - mu)  # f | y
            sd_new = (var_f - var_f**2 / var_y).clamp_min(1e-12).sqrt()
            fstar = self.max_values.view(
                self.max_values.shape[0],
                1,
                *([1] * (mu.dim() - self.max_values.dim() + 1)),
                *self.max_values.shape[1:],
            )  # s_M x 1 x (1 ...) x (nf)
            ndtr = torch.special.ndtr
            cdf_new = ndtr((fstar - mean_new) / sd_new).clamp_min(1e-12)  # s_M x s_y x b x (nf)
            cdf = ndtr((fstar - mu) / var_f.sqrt()).clamp_min(1e-12)  # s_M x 1 x b x (nf)
            log_pdf_y = (
                -0.5 * (y - mu) ** 2 / var_y - 0.5 * torch.log(2 * math.pi * var_y)
            ).unsqueeze(0)  # 1 x s_y x b x (nf)
            h0_exact = 0.5 * torch.log(2 * math.pi * math.e * var_y)
            Zr = cdf_new / cdf
            h1 = -Zr * Zr.log() - Zr * log_pdf_y
            dims = [0, 1]
            h0 = (-log_pdf_y).expand_as(h1)
            H1_bar, H0_bar = h1.mean(dim=dims), h0.mean(dim=dims)
            cov = ((h1 - H1_bar) * (h0 - H0_bar)).mean(dim=dims)
            beta = cov / (h0.var(dim=dims) * h1.var(dim=dims)).clamp_min(1e-24).sqrt()
            ig = h0_exact - (H1_bar - beta * (H0_bar - h0_exact))
            return ig.mean(dim=-1) if self.fantasized else ig

    return _EnsembleMES(ctx.model)


def _ensemble_jes(ctx: AcqContext) -> AcquisitionFunction:
    """Joint entropy search for an ensemble posterior, with moment-matched Gaussian entropies.

    Optimal samples are the members' optima on the candidate set ``(x*_j, f*_j)``; conditioning on
    one reweights the members by the likelihood of ``f*_j`` at ``x*_j`` (the model's fixed fantasy
    noise; the constraint that ``f*_j`` is the maximum is dropped). ``JES(X) = H[y_X] - mean_j
    H[y_X | x*_j, f*_j]`` with ``H`` the entropy of the moment-matched ``q x q`` Gaussian. Pending
    points ``P``: the chain rule ``I(y_X; opt | y_P) = I(y_X, y_P; opt) - I(y_P; opt)``.
    """
    import torch
    from botorch.acquisition import AcquisitionFunction
    from botorch.utils.transforms import t_batch_mode_transform

    cand = ctx.candidate_set(1024)
    model = ctx.model
    with torch.no_grad():
        post = model.posterior(cand)
        vals = post.values.squeeze(-1)  # s x m
        weights = post.weights
        keep = weights > 1e-6 * weights.max()
        idx = vals.argmax(dim=-1)[keep]
        opt_X = cand[idx].unsqueeze(-2)  # J x 1 x d
        opt_Y = vals[keep].max(dim=-1).values.reshape(-1, 1, 1)
        conditioned = model.condition_on_observations(opt_X, opt_Y)  # weights J x s
        opt_w = weights[keep] / weights[keep].sum()
    pending = ctx.X_pending

    def info(X: Tensor) -> Tensor:
        """``b x q x d`` -> ``b`` moment-matched mutual information with the optimum."""
        eye = torch.eye(X.shape[-2], dtype=X.dtype, device=X.device)
        h0 = torch.logdet(model.posterior(X).covariance_matrix + 1e-9 * eye)
        hj = torch.logdet(conditioned.posterior(X.unsqueeze(-3)).covariance_matrix + 1e-9 * eye)
        return 0.5 * (h0 - (hj * opt_w).sum(dim=-1))

    class _EnsembleJES(AcquisitionFunction):
        def __init__(self, model: Model) -> None:
            super().__init__(model=model)
            # botorch's mixed optimizer builds a batch greedily through X_pending
            self.set_X_pending(pending)

        @t_batch_mode_transform()
        def forward(self, X: Tensor) -> Tensor:
            """``b x q x d`` -> ``b`` JES values."""
            P = self.X_pending
            if P is None or len(P) == 0:
                return info(X)
            P = P.to(X).expand(X.shape[:-2] + P.shape)
            return info(torch.cat([X, P], dim=-2)) - info(P)

    return _EnsembleJES(model)


def _out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` is torch's out-of-memory error (a RuntimeError subclass), never a fallback."""
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    return isinstance(e, oom)


# the acquisition functions that the single-objective proposals optimize (ts, random: none)
_BUILDERS: dict[str, Callable[[AcqContext], AcquisitionFunction]] = {
    "ei": _build_ei,
    "ucb": _build_ucb,
    "kg": _build_kg,
    "mes": _build_mes,
    "gibbon": _build_gibbon,
    "jes": _build_jes,
}


def build_acquisition(name: str, ctx: AcqContext) -> AcquisitionFunction | None:
    """The botorch acquisition function that the single-objective ``name`` maximizes in ``ctx``
    (the same object its proposal optimizes), or None for the ones without one (``ts``,
    ``random``). ``kg``'s is one-shot: score points with ``acqf.evaluate(X, bounds)``."""
    builder = _BUILDERS.get(name)
    return None if builder is None else builder(ctx)


# ----- exactness: what each acquisition really computes on each surrogate ---------------------------
_EXACT, _APPROX = "exact", "approximate"
_PFN_BATCH = "q = 1 exact; batch/pending points are sampled independently (PFN marginals)"
_T_MATCH = "Gaussian moment match of a Student-t posterior"


def exactness(acquisition: str, surrogate: str, multi: bool = False) -> tuple[str, str]:
    """Whether ``acquisition`` computes its textbook quantity on ``surrogate``'s posterior.

    "exact" means the method as published, up to Monte-Carlo error (MC acquisitions average over
    posterior draws: ensemble/hmc members are the posterior, so MC over members is exact for it).
    "approximate" means a stand-in: the note says which. Raises IncompatiblePairError for an
    unknown name; an unsupported pair gives ``("unsupported", "-")``.

    Returns:
        ``(kind, note)``: kind ``exact`` / ``approximate`` / ``unsupported``, note a few words.
    """
    from surrogates import get_surrogate_class

    if acquisition not in ACQUISITIONS:
        raise IncompatiblePairError(
            f"unknown acquisition '{acquisition}'; choose from: {', '.join(ACQUISITIONS)}"
        )
    spec = ACQUISITIONS[acquisition]
    caps = get_surrogate_class(surrogate).capabilities
    form: AcquisitionSpec | MultiObjectiveSpec | None = (
        spec.multi if multi else (spec if spec.single_objective else None)
    )
    if form is None or not form.supports(caps):
        return "unsupported", "-"
    a = acquisition
    if a == "random":
        return _EXACT, "uniform random points (no model)"
    members = "members" in caps  # a weighted finite set of functions (ensemble, hmc)
    pfn = surrogate == "pfn"  # marginal predictions: points of a joint sample are independent
    student_t = surrogate == "ibnn-t"
    if multi:
        if a in ("ei", "parego"):
            if pfn:
                return _APPROX, "MC with the q and baseline points sampled independently"
            if members:
                return _EXACT, "MC over the posterior's members"
            return _EXACT, "MC over joint posterior samples"
        if a == "ts":
            if pfn:
                return _APPROX, "independent draws per candidate, not one function"
            return _EXACT, "one joint posterior draw per point"
        if a == "kg":
            return _EXACT, "qHVKG with the model's own fantasies"
        return _EXACT, "Pareto sets from the model's pathwise samples"  # mes, jes: paths only
    if a == "ei":
        if pfn:
            return _EXACT, "closed-form EI of the bar distribution at q = 1; " + _PFN_BATCH
        return _EXACT, "MC over the posterior's members" if members else "qLogNEI, MC"
    if a == "ucb":
        if pfn:
            return _EXACT, "qUCB, MC; " + _PFN_BATCH
        return _EXACT, "MC over the posterior's members" if members else "qUCB, MC"
    if a == "ts":
        if pfn:
            return _APPROX, "independent draws per candidate, not one function"
        if members:
            return _EXACT, "one member per point"
        return _EXACT, "joint posterior draws on a candidate set"
    if a == "kg":
        if members:
            return _APPROX, "fantasies reweight the existing members with a fixed fantasy noise"
        if pfn:
            return _EXACT, "fantasies extend the PFN context; " + _PFN_BATCH
        return _EXACT, "one-shot qKG with the model's own fantasies"
    if a == "mes":
        if members:
            return (
                _APPROX,
                "f moment-matched to a Gaussian (mixture mean, between-member variance), member maxima as max values; noisy MES as botorch qMES",
            )
        if student_t:
            return _APPROX, _T_MATCH
        return _EXACT, "qMES (Gumbel max values on a candidate set)"
    if a == "gibbon":
        if student_t:
            return _APPROX, _T_MATCH
        return _EXACT, "GIBBON lower bound"
    if a == "jes":
        if members:
            return _APPROX, "moment-matched Gaussian; drops the max constraint"
        if student_t:
            return _APPROX, _T_MATCH + "; optima from joint draws on a candidate set"
        if "paths" in caps:
            return _EXACT, "qJES lower bound; optima from pathwise samples"
        return _EXACT, "qJES lower bound; optima from joint posterior draws on a candidate set"
    return _EXACT, ""


# the multi-objective forms register themselves on the names above
from bocli import acquisition_mo  # noqa: E402, F401
