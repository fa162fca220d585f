"""The ``hmc`` surrogate: NUTS over a BNN's weights (numpyro), evaluated as a torch ensemble."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from surrogates import SurrogateOptionError, get_surrogate_class, make_surrogate
from surrogates._numpyro_bnn import BNNSamples, bucket_size
from surrogates.ensemble_model import SampleEnsembleModel
from surrogates.hmc import HMCBNN, bnn_forward, sampler_diagnostics

# small, still real, settings for the slow sampling tests (compile time dominates at this size)
SMALL = {"width": 16, "num_warmup": 150, "num_samples": 100, "thinning": 2, "map_steps": 200}


# ----- settings and plumbing (fast) ---------------------------------------------------------------
def test_registered_with_the_ensemble_capabilities() -> None:
    cls = get_surrogate_class("hmc")
    assert cls is HMCBNN
    # both end as a SampleEnsembleModel, so they promise the same things
    assert cls.capabilities == get_surrogate_class("ensemble").capabilities
    assert "fantasize" in cls.capabilities and "gaussian" not in cls.capabilities


def test_options_from_the_command_line() -> None:
    s = make_surrogate(
        "hmc",
        {"width": "16", "prior_scale": "0.5", "target_accept": "0.9", "activation": "relu"},
    )
    assert (s.width, s.prior_scale, s.target_accept, s.activation) == (16, 0.5, 0.9, "relu")
    assert make_surrogate("hmc", {"prior_scale": "none"}).prior_scale is None
    assert "num_warmup" in HMCBNN.option_names() and "diagnostics" not in HMCBNN.option_names()


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"activation": "sigmoid"}, "activation"),
        ({"thinning": "500"}, "thinning"),
        ({"target_accept": "1.5"}, "target_accept"),
        ({"prior_scale": "-1"}, "prior_scale"),
        ({"num_warmups": "10"}, "num_warmup"),  # typo: the message suggests the right name
        ({"width": "wide"}, "width"),
    ],
)
def test_bad_options_name_the_option(options: dict, named: str) -> None:
    with pytest.raises(SurrogateOptionError, match=named):
        make_surrogate("hmc", options)


def test_importing_the_surrogate_does_not_import_jax() -> None:
    code = "import sys, surrogates.hmc; assert 'jax' not in sys.modules, 'jax imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_batched_forward_matches_member_by_member() -> None:
    g = torch.Generator().manual_seed(0)
    s, dims = 5, [3, 7, 7, 1]
    layers = [
        (
            torch.randn(s, a, b, generator=g, dtype=torch.float64),
            torch.randn(s, b, generator=g, dtype=torch.float64),
        )
        for a, b in itertools.pairwise(dims)
    ]
    X = torch.rand(4, 2, 6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    out = bnn_forward(X, layers, "tanh")
    assert out.shape == (4, 2, s, 6)
    for i in range(s):
        h = 2 * X - 1
        for k, (W, b) in enumerate(layers):
            h = h @ W[i] + b[i]
            h = torch.tanh(h) if k < len(layers) - 1 else h
        torch.testing.assert_close(out[..., i, :], h[..., 0])
    out.sum().backward()
    assert torch.isfinite(X.grad).all() and (X.grad != 0).any()
    assert bnn_forward(X[0, 0], layers, "relu").shape == (s, 6)  # no batch dimension


def test_buckets_bound_the_number_of_compilations() -> None:
    assert [bucket_size(n) for n in (1, 32, 33, 100, 128, 129, 1000)] == [
        32,
        32,
        64,
        128,
        128,
        256,
        1024,
    ]
    # a 300-evaluation BO run touches at most 5 shapes
    assert len({bucket_size(n) for n in range(2, 301)}) == 5


def _fake_samples(diverging: int, f_train: np.ndarray) -> BNNSamples:
    chains, draws = f_train.shape[:2]
    return BNNSamples(
        weights=[],
        noise_var=np.full((chains, draws // 2), 0.01),
        prior_scale=np.ones((chains, draws // 2)),
        f_train=f_train,
        log_noise_all=np.log(0.01)
        + 0.1 * np.random.default_rng(1).standard_normal((chains, draws)),
        log_scale_all=np.zeros((chains, draws)),
        diverging=np.array([diverging]),
        num_steps=20.0,
        accept_prob=0.8,
        step_size=np.array([0.01]),
        seconds=1.0,
        compiled=False,
        backend="cpu",
    )


def test_divergences_warn_naming_the_setting_to_change() -> None:
    rng = np.random.default_rng(0)
    healthy = rng.standard_normal((1, 200, 5))  # independent draws: r-hat ~ 1, ESS ~ 200
    diag = sampler_diagnostics(_fake_samples(0, healthy), num_samples=200)
    assert diag["divergences"] == 0 and diag["num_samples"] == 100
    assert diag["r_hat_max"] < 1.1 and diag["ess_min"] > 100
    assert HMCBNN()._warning(diag) == ""
    json.dumps(diag, allow_nan=False)  # stored in trials.csv / the study as JSON

    diag = sampler_diagnostics(_fake_samples(30, healthy), num_samples=200)
    assert diag["divergences"] == 30
    msg = HMCBNN()._warning(diag)
    assert "30 of 200" in msg and "--surrogate-option target_accept=0.95" in msg
    assert "target_accept=0.99" in HMCBNN(target_accept=0.95)._warning(diag)
    assert "num_warmup=400" in HMCBNN(target_accept=0.99)._warning(diag)

    stuck = np.cumsum(rng.standard_normal((1, 200, 5)), axis=1)  # a random walk: not mixed
    diag = sampler_diagnostics(_fake_samples(0, stuck), num_samples=200)
    assert diag["r_hat_max"] > 1.5 and diag["ess_min"] < 20  # recorded, but no warning
    assert HMCBNN()._warning(diag) == ""


def test_run_export_keeps_diagnostics(tmp_path) -> None:
    """A run's trials.csv (the study's export) carries each trial's fit diagnostics as JSON."""
    import json

    import pandas as pd

    from bocli.storage import NewTrial, StudySettings, StudyStorage
    from bocli.study import export_rows
    from problems import get_problem

    problem = get_problem("branin")
    params = problem.space.decode(np.array([[0.2, 0.3]]))[0]
    diag = {"divergences": 3, "r_hat_max": 1.02, "ess_min": 40.0, "warning": "hmc: x"}
    settings = StudySettings(problem.space, "branin", "hmc", "ei", {}, {}, 0, 4)
    with StudyStorage.create(tmp_path / "study.db", settings) as st:
        st.reserve([NewTrial(params, "complete", 1.0, "model", "hmc", "ei", diagnostics=diag)])
    columns, rows = export_rows(tmp_path / "study.db")
    from bocli.csvio import to_csv_text

    (tmp_path / "trials.csv").write_text(to_csv_text(columns, rows))
    back = pd.read_csv(tmp_path / "trials.csv")
    assert json.loads(back["diagnostics"][0]) == diag
    assert back["proposed_by"][0] == "hmc+ei"


# ----- sampling (slow: NUTS compiles and runs) ----------------------------------------------------
@pytest.fixture(scope="module")
def fit_1d():
    """NUTS on 12 points of sin(8x) in [0.25, 0.75], then a refit with one more point."""
    g = torch.Generator().manual_seed(0)
    X = 0.25 + 0.5 * torch.rand(13, 1, generator=g, dtype=torch.float64)
    Y = torch.sin(8 * X)
    Y = (Y - Y.mean()) / Y.std()
    torch.manual_seed(0)
    sur = make_surrogate("hmc", SMALL)
    model = sur.fit(X[:12], Y[:12])
    first = dict(sur.diagnostics)
    sur.fit(X, Y)  # same padded shape: must reuse the compiled sampler
    return X[:12], Y[:12], model, first, dict(sur.diagnostics)


@pytest.mark.slow
def test_1d_posterior_fits_the_data_and_widens_away_from_it(fit_1d) -> None:
    X, Y, model, _, _ = fit_1d
    assert isinstance(model, SampleEnsembleModel) and model.num_members == 50
    post = model.posterior(X)
    rmse = (post.mean - Y).pow(2).mean().sqrt()
    assert rmse < 0.2, rmse
    inside = model.posterior(torch.linspace(0.35, 0.7, 8, dtype=torch.float64)[:, None])
    outside = model.posterior(torch.tensor([[0.0], [1.0]], dtype=torch.float64))
    sd_in, sd_out = inside.variance.sqrt().max(), outside.variance.sqrt().min()
    assert sd_out > 3 * sd_in, (sd_in, sd_out)
    # MC acquisitions: samples are whole member functions, differentiable in X
    from botorch.acquisition import qLogNoisyExpectedImprovement

    Xq = torch.rand(4, 2, 1, dtype=torch.float64, requires_grad=True)
    qLogNoisyExpectedImprovement(model, X).forward(Xq).sum().backward()
    assert torch.isfinite(Xq.grad).all() and (Xq.grad != 0).any()


@pytest.mark.slow
def test_diagnostics_are_recorded_and_compiled_code_is_reused(fit_1d) -> None:
    _, _, _, first, second = fit_1d
    for diag in (first, second):
        assert {"divergences", "r_hat_max", "ess_min", "num_samples"} <= set(diag)
        assert isinstance(diag["divergences"], int) and diag["num_samples"] == 50
        assert diag["r_hat_max"] > 0.9 and diag["ess_min"] > 0
        json.dumps(diag, allow_nan=False)
    assert second["compiled"] is False  # n = 12 and n = 13 share one padded shape


@pytest.mark.slow
def test_fixed_prior_scale_and_several_chains() -> None:
    g = torch.Generator().manual_seed(1)
    X = torch.rand(10, 2, generator=g, dtype=torch.float64)
    Y = (X.sum(-1, keepdim=True) - 1.0) * 2
    sur = make_surrogate(
        "hmc",
        {"width": 8, "depth": 1, "prior_scale": 1.5, "num_chains": 2, "num_warmup": 60}
        | {"num_samples": 40, "thinning": 4, "map_steps": 50},
    )
    model = sur.fit(X, Y)
    assert model.num_members == 20 and sur.diagnostics["num_chains"] == 2
    assert sur.diagnostics["prior_scale_median"] == 1.5
    assert model.posterior(X).mean.shape == (10, 1)


@pytest.mark.slow
def test_bo_with_hmc_beats_random_on_branin() -> None:
    from bocli.run import RunConfig, run_optimization
    from problems import get_problem

    problem = get_problem("branin")
    # measured final regrets 0.078, 0.062, 0.008 (random search: ~0.5-1 after 30 evaluations)
    options = {**SMALL, "num_warmup": 100, "max_tree_depth": 5}
    hmc, rnd = [], []
    for seed in (0, 1, 2):
        common = {"budget": 30, "n_init": 6, "seed": seed}
        trials = run_optimization(
            problem, RunConfig("branin", "hmc", "ei", surrogate_options=options, **common)
        )
        hmc.append(trials[-1].regret)
        assert all("r_hat_max" in t.extra["diagnostics"] for t in trials if t.phase == "model")
        trials = run_optimization(problem, RunConfig("branin", acquisition="random", **common))
        rnd.append(trials[-1].regret)
    assert np.median(hmc) < np.median(rnd), (hmc, rnd)


@pytest.mark.gpu
def test_runs_on_the_gpu_when_cuda_jax_is_present() -> None:
    from surrogates._numpyro_bnn import jax_backend

    if not torch.cuda.is_available() or jax_backend() != "gpu":
        pytest.skip("needs CUDA for torch and a CUDA-enabled JAX")
    X = torch.rand(20, 3, dtype=torch.float64, device="cuda")
    Y = X.sum(-1, keepdim=True) - 1.5
    sur = make_surrogate("hmc", {**SMALL, "num_warmup": 50, "num_samples": 50})
    model = sur.fit(X, Y)
    assert sur.diagnostics["backend"] == "gpu"
    assert model.posterior(X).mean.device.type == "cuda"
