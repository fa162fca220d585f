"""The multi-objective forms of the acquisitions: the same idea, with a hypervolume or Pareto set.

With several objectives (``AcqContext.multi``), the registered names mean:

- ``ei``: log noisy expected hypervolume improvement (qLogNEHVI), greedy over the batch;
- ``parego``: qLogNParEGO, a random augmented-Chebyshev scalarization per candidate of a batch;
- ``kg``: the hypervolume knowledge gradient (qHVKG; GP-family models, a ``ModelList``);
- ``jes`` / ``mes``: the lower-bound multi-objective joint / max-value entropy searches, with Pareto
  sets and fronts sampled from the model's pathwise samples (GP family);
- ``ts``: one joint draw per candidate, the most hypervolume-adding point of its Pareto set;
- ``random``: uniform random search.

Outcome constraints (callables, negative = feasible) go to ``ei``, ``parego``, ``ts`` and ``random``.
All values are in model units: objectives maximized and standardized, the reference point likewise.
Imported by ``bocli.acquisition`` (which owns the registry); torch only inside functions.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from bocli.acquisition import (
    AcqContext,
    _cheaper,
    opt,
    optimize,
    register_acquisition,
    register_multi_objective,
    thompson_pick,
)

if TYPE_CHECKING:
    from torch import Tensor

_GP_FAMILY = {"fantasize", "gaussian", "condition"}  # a ModelList of GPs (qHVKG)
_PATHS = {"paths", "condition"}  # Pareto sets from the model's own pathwise samples


def prepare_log_ehvi_kernel() -> None:
    """Build botorch's fused log-EHVI C++ kernel before its first use, saying so in one line.

    botorch compiles ``csrc/logei_fused.cpp`` (with ``-march=native``) the first time a
    qLogNEHVI is built in a Python environment: about 45 s on a 2-core machine, then cached in
    ``~/.cache/torch_extensions`` (``TORCH_EXTENSIONS_DIR``). Without the line, the first
    multi-objective ``ask`` would look hung. Without a compiler, botorch falls back to Python.
    """
    import sys
    import time

    from botorch.acquisition.multi_objective import logei

    if getattr(logei, "_load_attempted", True):
        return
    try:
        from torch.utils.cpp_extension import _get_build_directory

        build = _get_build_directory("logei_fused_ext", verbose=False)
        import os

        cached = (
            any(f.endswith(".so") for f in os.listdir(build)) if os.path.isdir(build) else False
        )
    except (ImportError, AttributeError):  # private helper moved: just build, without the line
        cached, build = True, ""
    if not cached:  # the engine prints nothing else; this wait deserves one line at the moment
        print(
            f"note: compiling botorch's log-EHVI kernel once (about a minute; cached in {build})",
            file=sys.stderr,
            flush=True,
        )
    t0 = time.perf_counter()
    logei._try_load_fused_kernel()
    if not cached:
        print(f"note: kernel ready after {time.perf_counter() - t0:.0f} s", file=sys.stderr)


def _ref(ctx: AcqContext) -> Tensor:
    if ctx.ref_point is None:
        raise ValueError("several objectives need a reference point")
    return ctx.ref_point


def _greedy(ctx: AcqContext, build: object) -> Tensor:
    """``q`` points one at a time, each optimized with the earlier ones pending: ``build(ctx1, i)``
    makes the acquisition for the ``i``-th point, ``ctx1`` a ``q = 1`` context. Returns ``q x d``."""
    import torch

    picks: list[Tensor] = []
    for i in range(ctx.q):
        pend = [p for p in (ctx.X_pending, *picks) if p is not None]
        one = dataclasses.replace(
            ctx, q=1, X_pending=torch.cat(pend) if pend else None, seed=ctx.seed + i
        )
        picks.append(optimize(build(one, i), one))  # type: ignore[operator]
    return torch.cat(picks)


@register_multi_objective(
    "ei",
    "log noisy expected hypervolume improvement (qLogNEHVI), batch and pending aware",
    requires=set(),
    constraints=True,
)
def _ehvi(ctx: AcqContext) -> Tensor:
    from botorch.acquisition.multi_objective.logei import (
        qLogNoisyExpectedHypervolumeImprovement,
    )

    prepare_log_ehvi_kernel()
    acqf = qLogNoisyExpectedHypervolumeImprovement(
        ctx.model,
        ref_point=_ref(ctx),
        X_baseline=ctx.train_X,
        objective=ctx.mc_objective(),
        constraints=ctx.constraints,
        X_pending=ctx.X_pending,
        prune_baseline=True,
    )
    return optimize(acqf, ctx, sequential=True)


def _simplex(m: int, n: int, seed: int, **tkwargs: object) -> Tensor:
    """``n x m`` weights drawn uniformly from the probability simplex (seeded)."""
    import numpy as np
    import torch

    w = np.random.default_rng(seed).dirichlet(np.ones(m), size=n)
    return torch.as_tensor(w, **tkwargs)  # type: ignore[arg-type]


@register_acquisition(
    "parego",
    "ParEGO: log noisy EI of a random Chebyshev scalarization per candidate (qLogNParEGO)",
    single_objective=False,
)
def _parego_single(ctx: AcqContext) -> Tensor:  # pragma: no cover - refused by check_compatible
    raise ValueError("parego needs two or more objectives")


@register_multi_objective(
    "parego",
    "ParEGO: log noisy EI of a random Chebyshev scalarization per candidate (qLogNParEGO)",
    requires=set(),
    constraints=True,
)
def _parego(ctx: AcqContext) -> Tensor:
    from botorch.acquisition.multi_objective.parego import qLogNParEGO

    weights = _simplex(len(ctx.objectives), ctx.q, ctx.seed, **ctx.tkwargs)

    def build(one: AcqContext, i: int) -> object:
        return qLogNParEGO(
            one.model,
            X_baseline=one.train_X,
            scalarization_weights=weights[i],
            objective=one.mc_objective(),
            constraints=one.constraints,
            X_pending=one.X_pending,
            prune_baseline=True,
        )

    return _greedy(ctx, build)


@register_multi_objective(
    "kg", "hypervolume knowledge gradient (qHVKG; GP-family models)", requires=_GP_FAMILY
)
def _hvkg(ctx: AcqContext) -> Tensor:
    import torch
    from botorch.acquisition.multi_objective.hypervolume_knowledge_gradient import (
        qHypervolumeKnowledgeGradient,
    )
    from botorch.models.model import ModelList

    if not isinstance(ctx.model, ModelList):
        raise ValueError("the hypervolume knowledge gradient needs a ModelList of GPs")
    with torch.random.fork_rng():
        torch.manual_seed(ctx.seed)
        acqf = qHypervolumeKnowledgeGradient(
            ctx.model,
            ref_point=_ref(ctx),
            num_fantasies=opt(ctx, "num_fantasies", "kg") if "num_fantasies" in ctx.options else 8,
            num_pareto=10,
            X_pending=ctx.X_pending,
        )
    return optimize(acqf, _cheaper(ctx, num_restarts=2, raw_samples=64))


def _pareto_samples(ctx: AcqContext, num: int) -> tuple[Tensor, Tensor, Tensor]:
    """Sampled Pareto sets (``num x P x d``), fronts (``num x P x m``) and the box decomposition of
    the dominated space of each front, from the model's pathwise samples."""
    import torch
    from botorch.acquisition.multi_objective.utils import (
        compute_sample_box_decomposition,
        random_search_optimizer,
        sample_optimal_points,
    )

    with torch.random.fork_rng():
        torch.manual_seed(ctx.seed)
        ps, pf = sample_optimal_points(
            model=ctx.model,
            bounds=ctx.bounds,
            num_samples=num,
            num_points=10,
            optimizer=random_search_optimizer,
            optimizer_kwargs={"pop_size": 2000, "max_tries": 10},
        )
    ps, pf = ps.detach(), pf.detach()  # samples, not functions of the hyperparameters
    return ps, pf, compute_sample_box_decomposition(pf)


def _entropy_search(ctx: AcqContext, acquisition: str) -> Tensor:
    """The lower-bound multi-objective joint (``jes``) or max-value (``mes``) entropy search, from
    Pareto sets and fronts sampled from the model's pathwise samples."""
    from botorch.acquisition.multi_objective.joint_entropy_search import (
        qLowerBoundMultiObjectiveJointEntropySearch,
    )
    from botorch.acquisition.multi_objective.max_value_entropy_search import (
        qLowerBoundMultiObjectiveMaxValueEntropySearch,
    )

    ps, pf, cells = _pareto_samples(ctx, _num_optima(ctx, acquisition))
    common = {"hypercell_bounds": cells, "X_pending": ctx.X_pending, "estimation_type": "LB"}
    if acquisition == "jes":
        acqf: object = qLowerBoundMultiObjectiveJointEntropySearch(
            ctx.model, pareto_sets=ps, pareto_fronts=pf, **common
        )
    else:
        acqf = qLowerBoundMultiObjectiveMaxValueEntropySearch(ctx.model, **common)
    return optimize(acqf, _cheaper(ctx), sequential=True)  # type: ignore[arg-type]


@register_multi_objective(
    "jes",
    "lower-bound multi-objective joint entropy search (Pareto sets from pathwise samples; gp)",
    requires=_PATHS,
)
def _mo_jes(ctx: AcqContext) -> Tensor:
    return _entropy_search(ctx, "jes")


@register_multi_objective(
    "mes",
    "lower-bound multi-objective max-value entropy search (sampled Pareto fronts; gp)",
    requires=_PATHS,
)
def _mo_mes(ctx: AcqContext) -> Tensor:
    return _entropy_search(ctx, "mes")


def _num_optima(ctx: AcqContext, acquisition: str) -> int:
    """Pareto-front samples: ``num_optima`` (jes) / ``num_mv_samples`` (mes) when given, else 8."""
    key = "num_optima" if acquisition == "jes" else "num_mv_samples"
    return int(opt(ctx, key, acquisition)) if key in ctx.options else 8


@register_multi_objective(
    "ts",
    "Thompson sampling: the most hypervolume-adding point of one joint draw's Pareto set",
    requires=set(),
    constraints=True,
)
def _mo_ts(ctx: AcqContext) -> Tensor:
    from bocli.acquisition import _snap

    cand = ctx.candidate_set(opt(ctx, "num_candidates", "ts"))
    return _snap(thompson_pick(ctx, cand), ctx)


@register_multi_objective(
    "random", "uniform random search (a baseline)", requires=set(), constraints=True
)
def _mo_random(ctx: AcqContext) -> Tensor:
    from bocli.acquisition import ACQUISITIONS

    return ACQUISITIONS["random"].propose(ctx)
