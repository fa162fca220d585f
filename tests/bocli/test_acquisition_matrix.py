"""Conformance of every surrogate x acquisition pair the registry allows (one objective).

Each surrogate is fitted once (tiny settings) on a 2-d problem; every acquisition it supports then
proposes with two real pending points, and the proposal is checked by value, not only by shape:

- the chosen point scores at least as high under the very acquisition function the proposal
  optimizes (``build_acquisition``) as the best of 64 uniform random points does (an acquisition
  that fell back to random search, or optimized the wrong function, fails this);
- ``ts`` / ``random`` (no acquisition function): the batch avoids the pending points even when the
  pending points are where the model's mean is highest;
- ``exactness`` covers every pair and says "approximate" exactly where the code approximates;
- an exact reference: an ensemble of many GP posterior function draws (a ``SampleEnsembleModel``)
  scored by bocli's ensemble MES matches botorch's qMES on the GP itself (slow part: JES and KG,
  which are approximate by design, are compared by rank correlation).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from bocli.acquisition import (
    ACQUISITIONS,
    AcqContext,
    IncompatiblePairError,
    build_acquisition,
    check_compatible,
    exactness,
)
from bocli.engine import OutcomeScaling
from problems import get_problem
from surrogates import get_surrogate_class, make_surrogate, surrogate_names

# small settings: quality is not the point, but the model must be real (hmc: a short chain)
FAST: dict[str, dict] = {
    "gp": {},
    "ibnn": {},
    "ibnn-t": {},
    "dkl": {"steps": 30},
    "ensemble": {"steps": 60, "num_members": 6},
    "hmc": {"num_warmup": 30, "num_samples": 40, "thinning": 2, "map_steps": 100},
    "pfn": {},
}
# smaller Monte-Carlo sizes (the defaults run in the quality benchmarks)
SMALL_MC = {"kg": {"num_fantasies": 8}, "jes": {"num_optima": 8}, "mes": {"num_fantasies": 4}}
SINGLE = [a for a in ACQUISITIONS if ACQUISITIONS[a].single_objective]
# the default run keeps to the cheap pairs (~90 s on 2 cores); the rest are marked slow
HEAVY_SURROGATES = {"dkl", "hmc", "pfn"}
HEAVY_PAIRS = {("ibnn-t", "jes"), ("ibnn-t", "ts")}


# Pairs whose proposal loses to random points under their own acquisition: known weaknesses,
# measured (KG scored with its inner problem solved, 4 restarts): botorch's one-shot KG optimizer
# ends 15-20% below the best of 16 random points on these models' flat KG surfaces.
KNOWN_WEAK = {
    ("ibnn-t", "kg"): "one-shot KG optimum 1.05 vs best random point 1.20 (spread 0.72)",
    ("dkl", "kg"): "one-shot KG optimum 0.2043 vs best random point 0.2070 (spread 0.020)",
    ("hmc", "kg"): "one-shot KG optimum 0.218 vs best random point 0.251 (spread 0.084)",
}


def _param(s: str, a: str):
    slow = s in HEAVY_SURROGATES or a == "kg" or (s, a) in HEAVY_PAIRS
    marks = [pytest.mark.slow] if slow else []
    if (s, a) in KNOWN_WEAK:
        marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_WEAK[s, a]))
    return pytest.param(s, a, id=f"{s}-{a}", marks=marks)


PAIRS = [_param(s, a) for s in FAST for a in SINGLE]
N_RANDOM = 32


def test_fast_covers_every_surrogate() -> None:
    assert set(FAST) == set(surrogate_names())


@pytest.fixture(scope="module")
def data():
    p = get_problem("branin")
    X = p.space.sobol(10, seed=0)
    y = np.array([p.evaluate(prm) for prm in p.space.decode(X)])
    pending = np.array([[0.55, 0.15], [0.1, 0.85]])
    return p.space, X, y, pending


_MODELS: dict[str, object] = {}


def _model(surrogate: str, data):
    if surrogate not in _MODELS:
        space, X, y, _ = data
        scaling = OutcomeScaling.fit(space, y.reshape(-1, 1))
        tX = torch.as_tensor(X, dtype=torch.float64)
        tY = torch.as_tensor(scaling.to_model(y.reshape(-1, 1)), dtype=torch.float64)
        torch.manual_seed(0)
        np.random.seed(0)
        t0 = time.perf_counter()
        model = make_surrogate(surrogate, FAST[surrogate]).fit(tX, tY, cat_dims=[])
        _MODELS[surrogate] = (model, tX, tY, time.perf_counter() - t0)
    return _MODELS[surrogate]


def _ctx(surrogate: str, acquisition: str, data, q: int, pending: np.ndarray) -> AcqContext:
    space = data[0]
    model, tX, tY, _ = _model(surrogate, data)
    return AcqContext(
        model=model,
        train_X=tX,
        train_Y=tY,
        X_pending=torch.as_tensor(pending, dtype=torch.float64),
        q=q,
        space=space,
        seed=7,
        options=dict(SMALL_MC.get(acquisition, {})),
        num_restarts=2,
        raw_samples=32,
        capabilities=get_surrogate_class(surrogate).capabilities,
    )


def _score(acquisition: str, acqf, X: torch.Tensor, ctx: AcqContext) -> torch.Tensor:
    """``b x 1 x d`` -> ``b`` values of the acquisition (KG: inner problem solved)."""
    if acquisition == "kg":  # the inner optimization needs gradients
        torch.manual_seed(0)
        return acqf.evaluate(X, bounds=ctx.bounds, num_restarts=4, raw_samples=64).detach()
    with torch.no_grad():
        return torch.cat([acqf(Xi) for Xi in X.split(16)])


@pytest.mark.parametrize(("surrogate", "acquisition"), PAIRS)
def test_pair_beats_random_points(data, surrogate: str, acquisition: str) -> None:
    try:
        check_compatible(surrogate, acquisition)
    except IncompatiblePairError as e:
        assert "works with" in str(e)
        assert exactness(acquisition, surrogate) == ("unsupported", "-")
        return
    kind, note = exactness(acquisition, surrogate)
    assert kind in ("exact", "approximate") and note
    spec = ACQUISITIONS[acquisition]
    _, _, _, pending = data
    if build_acquisition(acquisition, _ctx(surrogate, acquisition, data, 1, pending)) is None:
        _check_pending_excluded(surrogate, acquisition, data)
        return
    ctx = _ctx(surrogate, acquisition, data, 1, pending)
    torch.manual_seed(ctx.seed)
    x = spec.run(ctx)
    assert x.shape == (1, 2) and torch.isfinite(x).all()
    assert ((x >= 0) & (x <= 1)).all()
    assert torch.cdist(x, ctx.X_pending).min() > 1e-6, "proposed a pending point"
    torch.manual_seed(ctx.seed)
    acqf = build_acquisition(acquisition, ctx)  # the function the proposal maximized
    n = 16 if acquisition == "kg" else N_RANDOM
    rand = torch.as_tensor(np.random.default_rng(1).random((n, 2)), dtype=torch.float64)
    vals = _score(acquisition, acqf, torch.cat([x, rand]).unsqueeze(-2), ctx)
    chosen, others = float(vals[0]), vals[1:]
    assert np.isfinite(chosen), f"{surrogate}+{acquisition}: value {chosen} at the proposal"
    best = float(others.max())
    spread = float(others.max() - others.min())
    # KG's value comes from an inner optimization (restarts): allow its noise, 10% of the spread
    tol = 1e-9 + (0.10 * spread if acquisition == "kg" else 1e-6 * abs(best))
    assert chosen >= best - tol, (
        f"{surrogate}+{acquisition}: proposal scores {chosen:.6g}, best of {n} random "
        f"points {best:.6g} (spread {spread:.3g})"
    )


def _check_pending_excluded(surrogate: str, acquisition: str, data) -> None:
    """ts / random: with the pending points at the model's most promising candidates, a q = 2
    batch still avoids them (and repeats nothing)."""
    ctx0 = _ctx(surrogate, acquisition, data, 2, np.zeros((0, 2)))
    ctx0.X_pending = None
    cand = ctx0.candidate_set(256)
    with torch.no_grad():
        mean = ctx0.model.posterior(cand).mean.reshape(-1)
    top = cand[torch.argsort(mean, descending=True)[:2]].numpy()
    ctx = _ctx(surrogate, acquisition, data, 2, top)
    X = ACQUISITIONS[acquisition].run(ctx)
    assert X.shape == (2, 2) and torch.isfinite(X).all()
    assert torch.cdist(X, ctx.X_pending).min() > 1e-9, "proposed a pending point"
    assert torch.dist(X[0], X[1]) > 1e-9


def test_random_excludes_pending_in_a_discrete_space() -> None:
    p = get_problem("mixed-ackley")
    ctx = AcqContext(
        model=None,
        train_X=torch.zeros(0, p.space.dim, dtype=torch.float64),
        train_Y=torch.zeros(0, 1, dtype=torch.float64),
        X_pending=None,
        q=3,
        space=p.space,
        seed=3,
    )
    first = ACQUISITIONS["random"].run(ctx)
    ctx.X_pending = first[:2]
    again = ACQUISITIONS["random"].run(ctx)
    assert torch.cdist(again, first[:2]).min() > 1e-9


def test_exactness_names_the_approximations() -> None:
    assert exactness("kg", "ensemble")[0] == "approximate"
    assert "reweight" in exactness("kg", "hmc")[1]
    assert exactness("mes", "hmc")[0] == exactness("jes", "ensemble")[0] == "approximate"
    assert "max constraint" in exactness("jes", "ensemble")[1]
    assert "Student-t" in exactness("mes", "ibnn-t")[1]
    assert "Student-t" in exactness("gibbon", "ibnn-t")[1]
    assert exactness("ei", "pfn")[0] == "exact" and "closed-form" in exactness("ei", "pfn")[1]
    assert exactness("ei", "ensemble") == ("exact", "MC over the posterior's members")
    for a in SINGLE:
        assert exactness(a, "gp")[0] == "exact"
    assert exactness("gibbon", "ensemble") == ("unsupported", "-")


def test_suggest_passes_the_capabilities(data, monkeypatch) -> None:
    """Entropy search draws optima from the scored model: pathwise samples only with ``paths``."""
    import bocli.acquisition as acq
    from bocli.engine import suggest

    seen: list[frozenset[str]] = []
    real = acq.optimal_samples

    def spy(ctx, num):
        seen.append(ctx.capabilities)
        return real(ctx, num)

    monkeypatch.setattr(acq, "optimal_samples", spy)
    space, X, y, pending = data
    for surrogate in ("gp", "ibnn"):
        suggest(
            space, X, y, q=1, pending=pending, surrogate=surrogate, acquisition="jes",
            acquisition_options={"num_optima": 4}, n_init=4, num_restarts=2, raw_samples=16,
        )  # fmt: skip
    assert "paths" in seen[0] and "paths" not in seen[1]


def test_optima_without_paths_come_from_the_model(data, monkeypatch) -> None:
    """Without ``paths`` botorch's pathwise sampler is never called (it would ignore a deep
    kernel's feature network); with it, an out-of-memory error surfaces instead of a fallback."""
    import botorch.acquisition.utils as butils

    from bocli.acquisition import optimal_samples

    def boom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(butils, "get_optimal_samples", boom)
    ctx = _ctx("ibnn", "jes", data, 1, data[3])
    opt_X, opt_Y = optimal_samples(ctx, 16)
    assert opt_X.shape == (16, 2) and opt_Y.shape == (16, 1)
    with torch.no_grad():  # each optimum is the maximum of a posterior draw: above the mean there
        assert (opt_Y.reshape(-1) > ctx.model.posterior(opt_X).mean.reshape(-1) - 1e-9).all()
    ctx = _ctx("gp", "jes", data, 1, data[3])
    with pytest.raises(torch.OutOfMemoryError):
        optimal_samples(ctx, 4)


def test_predict_surfaces_bugs_but_not_unpredictable_models(data) -> None:
    from bocli.engine import predict

    space, _, y, _ = data
    model, tX, _, _ = _model("gp", data)

    class NoMoments:
        def posterior(self, X, observation_noise=False):
            raise NotImplementedError

    class Buggy:
        def posterior(self, X, observation_noise=False):
            raise TypeError("bug")

    assert predict(NoMoments(), tX[:2], space, y) is None
    with pytest.raises(TypeError):
        predict(Buggy(), tX[:2], space, y)
    assert len(predict(model, tX[:2], space, y)) == 2


# ----- exact references: a GP-backed sample ensemble against botorch's own acquisitions -----------
def _gp_ensemble(data, num_members: int):
    """The fitted GP and a ``SampleEnsembleModel`` of ``num_members`` of its posterior function
    draws (Matheron paths) with the GP's noise: the same posterior, as a finite set of members."""
    from botorch.sampling.pathwise import draw_matheron_paths

    from surrogates.ensemble_model import SampleEnsembleModel

    gp, tX, tY, _ = _model("gp", data)
    torch.manual_seed(0)
    paths = draw_matheron_paths(gp, sample_shape=torch.Size([num_members]))
    noise = float(gp.likelihood.noise.mean())

    def members(X: torch.Tensor) -> torch.Tensor:  # batch x n x d -> batch x s x n
        out = paths(X.reshape(-1, X.shape[-1])).reshape(num_members, *X.shape[:-1])
        return out.movedim(0, -2)

    ens = SampleEnsembleModel(members, num_members, noise, tX, tY, fantasy_noise_var=noise)
    return gp, ens


def _reference_ctx(model, data, capabilities, acquisition) -> AcqContext:
    _, tX, tY, _ = _model("gp", data)
    return AcqContext(
        model=model,
        train_X=tX,
        train_Y=tY,
        X_pending=None,
        q=1,
        space=data[0],
        seed=5,
        options=dict(SMALL_MC.get(acquisition, {})),
        capabilities=capabilities,
    )


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(np.corrcoef(a.numpy(), b.numpy())[0, 1])


def test_ensemble_mes_matches_botorch_qmes_on_the_gp(data) -> None:
    """bocli's ensemble MES is the MES formula on the mixture's moments with member maxima. With
    512 draws of the GP posterior as members, the mixture's moments are the GP's (the variance to
    ~sqrt(2/512) = 6%) and member maxima are exact max-value samples, so it must agree with
    botorch's qMES on the GP with exact (non-Gumbel) max values on the same candidate set: MC
    error of 64 / 256 max-value samples is a few percent; we allow 15% (median, relative) and
    need a correlation of 0.95 over 48 points."""
    from botorch.acquisition.max_value_entropy_search import qMaxValueEntropy

    from bocli.acquisition import _ensemble_mes

    gp, ens = _gp_ensemble(data, 512)
    ctx = _reference_ctx(ens, data, get_surrogate_class("ensemble").capabilities, "mes")
    ctx.options = {"num_mv_samples": 256}
    ours = _ensemble_mes(ctx)
    torch.manual_seed(0)
    ref = qMaxValueEntropy(
        gp, candidate_set=ctx.candidate_set(1024), num_mv_samples=256, use_gumbel=False
    )
    Xt = torch.as_tensor(np.random.default_rng(2).random((48, 1, 2)))
    with torch.no_grad():
        a, b = ours(Xt), ref(Xt)
    rel = ((a - b).abs() / b.abs().clamp_min(1e-3)).median()
    assert _corr(a, b) > 0.95 and rel < 0.15, (
        f"ensemble MES vs qMES: corr {_corr(a, b):.3f}, median rel. error {float(rel):.3f}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("acquisition", ["jes", "kg"])
def test_ensemble_approximations_track_the_gp(data, acquisition: str) -> None:
    """JES (moment-matched, max constraint dropped) and KG (member reweighting with a fixed fantasy
    noise) on a GP-backed ensemble are approximations by design (``exactness``); they must still
    rank points as botorch's qJES / qKG on the GP do: correlation > 0.7 over 32 points."""
    from bocli.acquisition import _ensemble_jes

    gp, ens = _gp_ensemble(data, 256)
    Xt = torch.as_tensor(np.random.default_rng(3).random((32, 1, 2)))
    gctx = _reference_ctx(gp, data, get_surrogate_class("gp").capabilities, acquisition)
    ectx = _reference_ctx(ens, data, get_surrogate_class("ensemble").capabilities, acquisition)
    torch.manual_seed(0)
    ref = build_acquisition(acquisition, gctx)
    torch.manual_seed(0)
    ours = _ensemble_jes(ectx) if acquisition == "jes" else build_acquisition(acquisition, ectx)
    a, b = _score(acquisition, ours, Xt, ectx), _score(acquisition, ref, Xt, gctx)
    assert _corr(a, b) > 0.7, f"ensemble {acquisition} vs botorch on the GP: corr {_corr(a, b):.3f}"
