"""Every registered surrogate models ``m > 1`` outcomes: one botorch model with ``m`` outputs whose
columns are the outcomes (not swapped or mixed), joint member draws for ensembles, and the
multi-objective acquisitions built on it."""

from __future__ import annotations

import warnings

import pytest
import torch
from botorch.acquisition.logei import qLogNoisyExpectedImprovement
from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
from botorch.acquisition.multi_objective.parego import qLogNParEGO
from botorch.acquisition.objective import GenericMCObjective
from botorch.sampling.normal import SobolQMCNormalSampler
from scipy.stats import spearmanr

from surrogates import UnknownSurrogateError, get_surrogate_class, make_surrogate, surrogate_names

# small settings so that the file stays fast; hmc: few draws (its fit compiles a sampler)
FAST: dict[str, dict] = {
    "dkl": {"steps": 60},
    "ensemble": {"steps": 200, "num_members": 8},
    "hmc": {"num_samples": 40, "num_warmup": 40, "map_steps": 200, "thinning": 2},
}
DTYPE = torch.float64


def _names() -> list[str]:
    out = []
    for name in surrogate_names():
        try:
            get_surrogate_class(name)
        except UnknownSurrogateError:
            continue
        out.append(name)
    return out


NAMES = _names()


def _truth(X: torch.Tensor) -> torch.Tensor:
    """``n x 2`` -> ``n x 2``: two smooth, different outcomes."""
    return torch.stack(
        [torch.sin(3.0 * X[:, 0]) + 0.5 * X[:, 1], torch.cos(3.0 * X[:, 1]) - 0.5 * X[:, 0]], dim=-1
    )


def _data(n: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 2, generator=g, dtype=DTYPE)
    Y = _truth(X)
    return X, (Y - Y.mean(0)) / Y.std(0)


def _fit(name: str, Y_cols: str = "two"):
    X, Y = _data()
    if Y_cols == "one":
        Y = Y[:, :1]
    elif Y_cols == "same":
        Y = torch.cat([Y[:, :1], Y[:, :1]], dim=-1)
    torch.manual_seed(0)
    sur = make_surrogate(name, FAST.get(name, {}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sur.fit(X, Y)
    return sur, model, X, Y


@pytest.fixture(scope="module", params=NAMES)
def fitted(request):
    return request.param, *_fit(request.param)


def test_shapes_and_columns_follow_the_outcomes(fitted) -> None:
    name, sur, model, _, _ = fitted
    assert model.num_outputs == 2
    for shape in [(5, 2), (3, 1, 2), (2, 3, 2, 2)]:
        Xt = torch.rand(*shape, dtype=DTYPE)
        post = model.posterior(Xt)
        assert post.mean.shape == (*shape[:-1], 2)
        assert post.variance.shape == (*shape[:-1], 2)
        assert post.mean.dtype == DTYPE and post.mean.device == Xt.device
        assert (post.variance > 0).all() and torch.isfinite(post.mean).all()
        assert post.rsample(torch.Size([4])).shape == (4, *shape[:-1], 2)
    # held-out predictions of each column follow that column's function, not the other one
    g = torch.Generator().manual_seed(1)
    X_test = torch.rand(60, 2, generator=g, dtype=DTYPE)
    truth = _truth(X_test)
    with torch.no_grad():
        post = model.posterior(X_test)
        mean = post.data_moments()[0] if hasattr(post, "data_moments") else post.mean
    for i in range(2):
        own = spearmanr(mean[:, i].numpy(), truth[:, i].numpy()).statistic
        other = spearmanr(mean[:, i].numpy(), truth[:, 1 - i].numpy()).statistic
        assert own > 0.5, (name, i, own)
        assert own > other + 0.2, (name, i, own, other)
    assert isinstance(sur.diagnostics, dict)
    if name in ("gp", "ibnn", "ibnn-t", "dkl", "pfn"):  # one model per outcome
        assert sur.diagnostics["num_outcomes"] == 2 and len(sur.diagnostics["outcomes"]) == 2


def test_merged_diagnostics_keep_the_worst_status_and_every_warning() -> None:
    from surrogates.multi_output import merge_outcome_diagnostics

    merged = merge_outcome_diagnostics(
        [
            {"fit_status": "ok", "fit_error": None},
            {"fit_status": "prior", "fit_error": "NotPSDError: x", "warning": "used the prior"},
            {"fit_status": "jitter", "fit_error": "NanError: y", "warning": "needed jitter"},
        ]
    )
    assert merged["fit_status"] == "prior"
    assert merged["fit_error"] == "outcome 1: NotPSDError: x"
    assert merged["warning"] == "outcome 1: used the prior; outcome 2: needed jitter"
    assert merged["num_outcomes"] == 3 and merged["outcomes"][0]["fit_status"] == "ok"


def test_gradients_flow_through_every_output(fitted) -> None:
    _, _, model, _, _ = fitted
    X = torch.rand(3, 2, 2, dtype=DTYPE, requires_grad=True)
    post = model.posterior(X)
    for i in range(2):
        (g,) = torch.autograd.grad(post.mean[..., i].sum(), X, retain_graph=True)
        assert torch.isfinite(g).all() and (g != 0).any()


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n == "hmc" else n for n in NAMES]
)
def test_a_single_outcome_gives_a_single_output_model(name) -> None:
    _, model, _, _ = _fit(name, "one")
    assert model.num_outputs == 1
    post = model.posterior(torch.rand(3, 2, 2, dtype=DTYPE))
    assert post.mean.shape == (3, 2, 1)
    assert post.rsample(torch.Size([2])).shape == (2, 3, 2, 1)


@pytest.mark.parametrize("name", [n for n in ("ensemble", "hmc") if n in NAMES])
def test_ensemble_draws_are_joint_across_outputs(name) -> None:
    """An MC sample is one member's values of every output (never outputs of different members);
    with two identical outcome columns, an ensemble member's two outputs nearly agree, while
    pairing outputs of different members (independent draws per output) would not."""
    _, model, _, _ = _fit(name, "same")
    X = torch.rand(50, 2, dtype=DTYPE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        post = model.posterior(X)
        values = post.values  # s x 50 x 2
        samples = post.rsample(torch.Size([64]))  # 64 x 50 x 2
    s = values.shape[-3]
    if name == "ensemble":
        # MAP members: both output units of a member fit the same targets. (hmc's output units have
        # independent posterior draws of their last-layer weights, so they differ by as much as
        # draws do; its jointness is checked by the member identity below.)
        joint = (values[..., 0] - values[..., 1]).abs().mean()
        mixed = (values[:, None, :, 0] - values[None, :, :, 1]).abs()  # s x s x 50
        off_diag = mixed[~torch.eye(s, dtype=torch.bool)].mean()
        assert joint < 0.5 * off_diag, (float(joint), float(off_diag))
    # every MC sample is one member's values for both outputs
    flat = samples.reshape(64, -1)
    match = (flat[:, None, :] - values.reshape(s, -1)[None]).abs().amax(-1)  # 64 x s
    assert (match.amin(-1) < 1e-12).all()


REF = torch.tensor([-1.5, -1.5], dtype=DTYPE)


def _evaluate(acq, q: int) -> torch.Tensor:
    X = torch.rand(2, q, 2, dtype=DTYPE, requires_grad=True)
    value = acq(X)
    assert value.shape == (2,)
    value.sum().backward()
    assert torch.isfinite(value).all() and torch.isfinite(X.grad).all()
    return value.detach()


def test_log_nehvi_and_parego(fitted) -> None:
    _, _, model, X, _ = fitted
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nehvi = qLogNoisyExpectedHypervolumeImprovement(
            model,
            ref_point=REF,
            X_baseline=X,
            prune_baseline=True,
            sampler=None,
        )
        parego = qLogNParEGO(model, X_baseline=X)
        for q in (1, 2):
            _evaluate(nehvi, q)
            _evaluate(parego, q)


def test_outcome_constraints(fitted) -> None:
    """Outcome 1 as a constraint (feasible where negative): on a scalar objective (qLogNEI of
    outcome 0) and on the hypervolume improvement of both."""
    _, _, model, X, _ = fitted
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nei = qLogNoisyExpectedImprovement(
            model,
            X_baseline=X,
            objective=GenericMCObjective(lambda Z, X=None: Z[..., 0]),
            constraints=[lambda Z: -Z[..., 1]],
        )
        nehvi = qLogNoisyExpectedHypervolumeImprovement(
            model, ref_point=REF, X_baseline=X, constraints=[lambda Z: -Z[..., 1]]
        )
        for q in (1, 2):
            _evaluate(nei, q)
            _evaluate(nehvi, q)


def test_fantasize_all_outcomes(fitted) -> None:
    name, _, model, X, _ = fitted
    if "fantasize" not in get_surrogate_class(name).capabilities:
        pytest.skip("no fantasize capability")
    fant = model.fantasize(X[:2], SobolQMCNormalSampler(torch.Size([3])))
    assert fant.num_outputs == 2
    assert fant.posterior(torch.rand(1, 4, 2, dtype=DTYPE)).mean.shape == (3, 4, 2)


def test_condition_on_all_outcomes(fitted) -> None:
    name, _, model, X, Y = fitted
    if "condition" not in get_surrogate_class(name).capabilities:
        pytest.skip("no condition capability")
    model.posterior(X[:1])  # exact GPs build their caches on the first prediction
    cond = model.condition_on_observations(X[:3], Y[:3])
    assert cond.posterior(torch.rand(4, 2, dtype=DTYPE)).mean.shape == (4, 2)


# ----- GP-only acquisitions ------------------------------------------------------------------
def _pareto_from_samples(model, num_samples: int = 4, num_points: int = 4):
    """Pareto sets/fronts of ``num_samples`` joint posterior draws on a random candidate set
    (for models without Matheron paths): ``num_samples x P x d`` and ``num_samples x P x 2``."""
    from botorch.utils.multi_objective.pareto import is_non_dominated

    cand = torch.rand(256, 2, dtype=DTYPE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        draws = model.posterior(cand).rsample(torch.Size([num_samples]))
    sets, fronts = [], []
    for f in draws:
        idx = is_non_dominated(f).nonzero().squeeze(-1)
        idx = idx[torch.arange(num_points) % len(idx)]  # pad by repeating Pareto points
        sets.append(cand[idx])
        fronts.append(f[idx])
    return torch.stack(sets), torch.stack(fronts)


@pytest.mark.parametrize("name", [n for n in ("gp", "ibnn") if n in NAMES])
def test_hypervolume_kg_and_mo_entropy_search(name) -> None:
    from botorch.acquisition.multi_objective.hypervolume_knowledge_gradient import (
        qHypervolumeKnowledgeGradient,
    )
    from botorch.acquisition.multi_objective.joint_entropy_search import (
        qLowerBoundMultiObjectiveJointEntropySearch,
    )
    from botorch.acquisition.multi_objective.max_value_entropy_search import (
        qLowerBoundMultiObjectiveMaxValueEntropySearch,
    )
    from botorch.acquisition.multi_objective.utils import (
        compute_sample_box_decomposition,
        sample_optimal_points,
    )

    _, model, _, _ = _fit(name)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for q in (1, 2):
            hvkg = qHypervolumeKnowledgeGradient(
                model, ref_point=REF, num_fantasies=4, num_pareto=4
            )
            X = torch.rand(2, hvkg.get_augmented_q_batch_size(q), 2, dtype=DTYPE)
            X.requires_grad_(True)
            value = hvkg(X)
            value.sum().backward()
            assert value.shape == (2,) and torch.isfinite(value).all()
            assert torch.isfinite(X.grad).all()
        if name == "gp":  # Matheron paths: RBF features exist, the I-BNN kernel has none
            bounds = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=DTYPE)
            ps, pf = sample_optimal_points(
                model=model,
                bounds=bounds,
                num_samples=4,
                num_points=4,
                optimizer_kwargs={"pop_size": 200, "max_tries": 5},
            )
        else:
            ps, pf = _pareto_from_samples(model)
        # the sampled fronts carry a graph to the GP's hyperparameters: detach them, or the
        # second backward pass through the acquisition fails
        ps, pf = ps.detach(), pf.detach()
        hb = compute_sample_box_decomposition(pf)
        jes = qLowerBoundMultiObjectiveJointEntropySearch(
            model, pareto_sets=ps, pareto_fronts=pf, hypercell_bounds=hb
        )
        mes = qLowerBoundMultiObjectiveMaxValueEntropySearch(model, hypercell_bounds=hb)
        for q in (1, 2):
            _evaluate(jes, q)
            _evaluate(mes, q)
