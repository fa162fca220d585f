"""Every surrogate follows the run's dtype and device: float32 / float64 mismatch suite.

A model whose tensors do not follow the request fails on CUDA ("expected all tensors on the same
device"); the same class of bug shows on the CPU as a float32 / float64 mismatch ("expected scalar
type Double but found Float"). So each surrogate is fitted on float32 and on float64 data, and its
posterior (mean, variance, samples), the calibration scores, an MC acquisition (qLogNEI, with its
gradient) and one ``suggest(..., dtype="float32")`` step must all run and stay in the request's
dtype on the data's device. ``benchmarks/gpu_check.py`` runs the same pairs on CUDA.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bocli.calibration import model_tensor_kwargs, predictive_moments
from surrogates import UnknownSurrogateError, get_surrogate_class, make_surrogate, surrogate_names

# cheap settings: these tests are about dtypes, not about fit quality
FAST: dict[str, dict] = {
    "dkl": {"steps": 40},
    "ensemble": {"steps": 60, "num_members": 4},
    "hmc": {"num_samples": 16, "num_warmup": 16, "map_steps": 20, "thinning": 2, "width": 8},
}
# hmc: its first fit compiles the NUTS sampler (tens of seconds); dkl: slow to train
SLOW = {"hmc", "dkl"}
# a whole suggest step (acquisition optimization) in the default run only for these
FAST_SUGGEST = {"gp", "ensemble"}
# the models that hold one network of all outcomes or one context per outcome; the GP family's
# multi-output models are covered by test_multi_output.py
MULTI = {"ensemble", "pfn", "hmc"}
DTYPES = [torch.float32, torch.float64]


def _names(only: set[str] | None = None, slow: set[str] = SLOW) -> list:
    out = []
    for name in surrogate_names():
        if only is not None and name not in only:
            continue
        try:
            get_surrogate_class(name)
        except UnknownSurrogateError:
            continue
        out.append(pytest.param(name, marks=pytest.mark.slow) if name in slow else name)
    return out


def _data(dtype: torch.dtype, n: int = 14, d: int = 3, m: int = 1, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, d, generator=g, dtype=torch.float64)
    f = torch.sin(4 * X).sum(-1, keepdim=True)
    Y = torch.cat([f * (j + 1) for j in range(m)], dim=-1)
    Y = (Y - Y.mean(0)) / Y.std(0)
    return X.to(dtype), Y.to(dtype)


def _fit(name: str, dtype: torch.dtype, m: int = 1):
    X, Y = _data(dtype, m=m)
    torch.manual_seed(0)
    return make_surrogate(name, FAST.get(name)).fit(X, Y), X, Y


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", _names())
def test_posterior_samples_calibration_and_acquisition_follow_dtype(name, dtype) -> None:
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement
    from botorch.sampling.get_sampler import get_sampler

    model, X, _ = _fit(name, dtype)
    Xq = torch.rand(5, 1, X.shape[-1], dtype=dtype)
    with torch.no_grad():
        post = model.posterior(Xq)
        for t in (post.mean, post.variance):
            assert t.dtype == dtype and t.device == X.device, (name, t.dtype)
        s = post.rsample(torch.Size([3]))
        assert s.dtype == dtype and s.device == X.device
        noisy = model.posterior(Xq, observation_noise=True)
        assert noisy.mean.dtype == dtype

    # calibration builds its query points from the model's training inputs, not its parameters
    assert model_tensor_kwargs(model) == {"dtype": dtype, "device": X.device}
    held = np.random.default_rng(1).random((20, X.shape[-1]))
    mean, var = predictive_moments(model, held, chunk=8)
    assert mean.shape == var.shape == (20,)
    assert np.all(np.isfinite(mean)) and np.all(var > 0)

    with torch.no_grad():  # the sampler botorch picks for this posterior (index / normal)
        sampler = get_sampler(model.posterior(X[:2]), torch.Size([16]), seed=0)
    acq = qLogNoisyExpectedImprovement(model, X_baseline=X, sampler=sampler)
    Xa = torch.rand(4, 2, X.shape[-1], dtype=dtype, requires_grad=True)
    val = acq(Xa)
    assert val.dtype == dtype and val.shape == (4,) and torch.isfinite(val).all()
    val.sum().backward()
    assert Xa.grad is not None and Xa.grad.dtype == dtype and torch.isfinite(Xa.grad).all()


@pytest.mark.parametrize("name", _names(MULTI))
def test_multi_output_model_keeps_the_request_dtype(name) -> None:
    model, X, _ = _fit(name, torch.float32, m=2)
    assert model_tensor_kwargs(model) == {"dtype": torch.float32, "device": X.device}
    with torch.no_grad():
        post = model.posterior(torch.rand(3, 1, X.shape[-1], dtype=torch.float32))
        assert post.mean.dtype == torch.float32 and post.mean.shape[-1] == 2
        assert post.rsample(torch.Size([2])).dtype == torch.float32


@pytest.mark.parametrize("name", _names(slow=set(surrogate_names()) - FAST_SUGGEST))
def test_suggest_float32_end_to_end(name) -> None:
    from bocli.engine import suggest
    from problems import get_problem

    p = get_problem("branin")
    space = p.space
    X = np.random.default_rng(0).random((10, space.dim))
    y = np.array([p.evaluate(prm) for prm in space.decode(X)])
    sug = suggest(
        space,
        X,
        y,
        surrogate=name,
        acquisition="ei",
        surrogate_options=FAST.get(name),
        dtype="float32",
        n_init=4,
        num_restarts=2,
        raw_samples=32,
    )
    assert sug.info["phase"] == "model"
    assert np.all(np.isfinite(sug.X)) and np.all((sug.X >= 0) & (sug.X <= 1))
    assert model_tensor_kwargs(sug.model)["dtype"] == torch.float32
    pred = sug.info.get("predictions")
    assert pred is not None and np.isfinite(pred[0]["mean"]) and pred[0]["sd"] > 0


def test_calibration_ignores_float32_parameters_of_a_float64_model() -> None:
    """A model with float32 internals (the PFN's network) but float64 training data is queried in
    float64: calibration follows the data, not ``model.parameters()``."""
    model, X, _ = _fit("gp", torch.float64)
    model.register_buffer("_float32_probe", torch.zeros(1, dtype=torch.float32))
    assert model_tensor_kwargs(model)["dtype"] == torch.float64
    mean, var = predictive_moments(model, np.random.default_rng(0).random((6, X.shape[-1])))
    assert np.all(np.isfinite(mean)) and np.all(var > 0)


def test_calibration_uses_the_noisy_predictive_like_engine_predict() -> None:
    """One noise convention: calibration's variance is that of a noisy observation, as in
    ``bocli.engine.predict`` (``observation_noise=True``)."""
    model, X, _ = _fit("gp", torch.float64)
    held = np.random.default_rng(0).random((6, X.shape[-1]))
    _, var = predictive_moments(model, held)
    with torch.no_grad():
        Xt = torch.as_tensor(held)
        noisy = model.posterior(Xt, observation_noise=True).variance.reshape(-1).numpy()
        latent = model.posterior(Xt).variance.reshape(-1).numpy()
    np.testing.assert_allclose(var, noisy, rtol=1e-6)
    assert np.all(var > latent)


def test_hmc_samples_where_the_run_asks() -> None:
    """CPU runs sample on JAX's CPU; a CUDA run without a CUDA JAX falls back with one note."""
    pytest.importorskip("jax")
    pytest.importorskip("numpyro")
    from surrogates._numpyro_bnn import jax_device
    from surrogates.hmc import sampler_device

    dev, note = sampler_device(torch.device("cpu"))
    assert dev.platform == "cpu" and note == ""
    dev, note = sampler_device(torch.device("cuda"))
    if jax_device("gpu") is None:
        assert dev.platform == "cpu"
        assert "CPU" in note and "\n" not in note
    else:
        assert dev.platform == "gpu" and note == ""
