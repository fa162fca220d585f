"""Fully Bayesian neural network: NUTS (numpyro/JAX) over an MLP's weights, evaluated in torch.

The sampler (``surrogates/_numpyro_bnn.py``) draws the weights, the prior scale (fixed or inferred)
and the observation noise; the kept draws become the members of a ``SampleEnsembleModel``
(``surrogates/ensemble_model.py``). All members are evaluated at once by batched matrix products, so
the posterior is differentiable in ``X`` and every MC acquisition, knowledge gradient (member
reweighting) and the ensemble entropy searches work with it.

Each fit records sampler diagnostics in ``self.diagnostics``: divergences, the largest split r-hat
and the smallest effective sample size. They are computed in function space (the network's outputs
at the training inputs) plus the noise and prior scale: raw weights are not identifiable (hidden
units can be permuted and sign-flipped), so their r-hat says nothing about the predictive. A fit
whose transitions diverge often gets a one-line ``warning`` naming the setting to change.

With ``m > 1`` outcomes the network has ``m`` output units and a noise per outcome: one posterior
draw is one network, a joint draw of all outcomes (``SampleEnsembleModel`` with ``m`` outputs). The
hypervolume knowledge gradient and the multi-objective entropy searches need a ``ModelList`` /
Matheron paths and do not work with it.

Device and dtype: NUTS runs in float64 (JAX with x64) on the GPU when the run's tensors are on CUDA
(``--device cuda``) and a CUDA-enabled JAX is installed (optional: ``pip install 'jax[cuda12]'``);
otherwise on the CPU, and a CUDA run then says so once (a ``HMCDeviceWarning`` and
``diagnostics["note"]``). A CPU run samples on the CPU even where JAX's default backend is a GPU.
The kept draws become torch tensors in the run's dtype on the run's device, so the posterior follows
``--dtype``/``--device`` like every other surrogate's. JAX is imported in ``fit`` only. Defaults: width 32, depth 2, tanh, 300 MAP steps, 200 warm-up + 200 draws, tree depth
<= 6, thinning 4 -> 50 members. Measured with ``benchmarks/bench_hmc.py`` (hartmann6, 2 shared cores
at load ~8): one suggest (fit + qLogNEI) at n = 100 takes 7.8 s once the sampler is compiled for the
padded shape; the first suggest in a process compiles (61 s at n = 100, 38 s at n = 50), unless
JAX's persistent cache already holds that shape. n = 50 / 200 / 1000 warm: 3.8 / 8.5 / 37 s
(gp: 2.4 / 3.6 / 42 s).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from botorch.models.model import Model
from torch import Tensor

from surrogates.base import Surrogate
from surrogates.ensemble_model import SampleEnsembleModel
from surrogates.registry import register_surrogate

__all__ = ["HMCBNN", "HMCDeviceWarning", "bnn_forward", "sampler_device", "sampler_diagnostics"]


class HMCDeviceWarning(UserWarning):
    """A CUDA run whose JAX has no GPU: NUTS samples on the CPU (printed once per process)."""


def sampler_device(device: torch.device) -> tuple[Any, str]:
    """The JAX device to run NUTS on for a run on torch ``device``, and a note ("" if none).

    CUDA: the GPU of the same index when JAX has a GPU backend, else the CPU with a one-line
    note. Anything else: the CPU (never JAX's default backend, which may be a GPU the run did
    not ask for).
    """
    from surrogates._numpyro_bnn import jax_device

    if device.type == "cuda":
        gpu = jax_device("gpu", device.index or 0)
        if gpu is not None:
            return gpu, ""
        return jax_device("cpu"), (
            "hmc: JAX has no GPU backend, so NUTS sampling runs on the CPU (the network is "
            "evaluated on cuda); pip install 'jax[cuda12]' to sample on the GPU"
        )
    return jax_device("cpu"), ""


log = logging.getLogger(__name__)

# A fit warns when more than this share of post-warm-up transitions diverged (biased draws: the
# sampler could not follow the posterior's curvature). Poor mixing is recorded (r-hat, ESS) but does
# not warn: a BNN posterior (permutation-symmetric weights; noise and prior scale coupled to all of
# them) does not reach r-hat 1.01 in the ~25k gradient evaluations a BO step can afford. Measured at
# the defaults (6-D, n = 50..1000): function-space r-hat 1.4-3, ESS 3-6 of 200 draws, on fits whose
# predictions are good; a warning at any fixed r-hat would fire on nearly every fit. Raising
# num_warmup / num_samples / max_tree_depth improves both, at proportional cost.
DIVERGENCE_WARN_FRACTION = 0.01

_TORCH_ACTIVATIONS = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "elu": torch.nn.functional.elu,
    "silu": torch.nn.functional.silu,
}


def bnn_forward(X: Tensor, layers: Sequence[tuple[Tensor, Tensor]], activation: str) -> Tensor:
    """Evaluate all posterior draws at once.

    Args:
        X: ``batch x n x d`` inputs in the unit cube (any number of batch dimensions, or none).
        layers: Per layer ``(W, b)`` with ``W: s x fan_in x fan_out`` and ``b: s x fan_out``.
        activation: Hidden activation (``tanh``, ``relu``, ``elu``, ``silu``).

    Returns:
        ``batch x s x n`` network outputs (``batch x s x n x m`` for ``m > 1`` output units),
        differentiable in ``X``.
    """
    act = _TORCH_ACTIVATIONS[activation]
    h = (2.0 * X - 1.0).unsqueeze(-3)  # batch x 1 x n x d: broadcast over the s draws
    for i, (W, b) in enumerate(layers):
        h = h @ W + b.unsqueeze(-2)
        if i < len(layers) - 1:
            h = act(h)
    return h.squeeze(-1)


def sampler_diagnostics(samples: Any, num_samples: int) -> dict[str, Any]:
    """Divergences, split r-hat and ESS of one posterior run (see the module docstring).

    Args:
        samples: A ``BNNSamples`` from ``sample_posterior``.
        num_samples: Post-warm-up transitions per chain (before thinning).

    Returns:
        A JSON-able dict: ``divergences``, ``r_hat_max``, ``ess_min`` (over all post-warm-up draws,
        before thinning), ``num_samples`` (members kept) and sampler statistics.
    """
    from numpyro.diagnostics import effective_sample_size, split_gelman_rubin

    chains, kept = samples.noise_var.shape[:2]
    c, t = samples.log_noise_all.shape[:2]
    # function-space quantities; with m outcomes each (point, outcome) and each noise is one
    quantities = [samples.f_train.reshape(c, t, -1), samples.log_noise_all.reshape(c, t, -1)]
    if np.ptp(samples.log_scale_all) > 0:
        quantities.append(samples.log_scale_all[..., None])
    x = np.concatenate(quantities, axis=-1)  # chains x draws x k, every post-warm-up draw
    r_hat = ess = None  # too few draws to split (JSON-clean: never NaN)
    if x.shape[1] >= 4:
        with np.errstate(all="ignore"):
            r = split_gelman_rubin(x)
            e = effective_sample_size(x)
        # a constant quantity (e.g. a padded-out output) has r-hat NaN: ignore it
        r_hat = float(np.max(r[np.isfinite(r)])) if np.isfinite(r).any() else None
        ess = float(np.min(e[np.isfinite(e)])) if np.isfinite(e).any() else None
    return {
        "divergences": int(samples.diverging.sum()),
        "transitions": int(num_samples * chains),
        "r_hat_max": r_hat,
        "ess_min": ess,
        "num_samples": int(chains * kept),
        "num_chains": int(chains),
        "accept_prob": samples.accept_prob,
        "mean_tree_steps": samples.num_steps,
        "step_size": float(np.mean(samples.step_size)),
        "noise_var_median": float(np.median(samples.noise_var)),
        "prior_scale_median": float(np.median(samples.prior_scale)),
        "sample_seconds": round(samples.seconds, 3),
        "compiled": bool(samples.compiled),
        "backend": samples.backend,
    }


@register_surrogate("hmc")
@dataclass
class HMCBNN(Surrogate):
    """Bayesian MLP sampled with NUTS; the kept draws form a mixture posterior.

    Settings: ``width``/``depth``/``activation`` of the network; ``prior_scale`` of the Gaussian
    weight prior (default 2; None: inferred under a log-normal hyperprior, which mixes poorly); ``num_warmup``, ``num_samples``,
    ``thinning`` (members = num_chains * num_samples // thinning), ``num_chains``,
    ``target_accept`` and ``max_tree_depth`` of NUTS; ``map_steps`` of Adam towards a mode before
    NUTS starts; ``min_noise`` (noise-variance floor); ``seed``.
    """

    description = "Bayesian MLP, weights sampled with numpyro NUTS (JAX), mixture posterior"
    capabilities = frozenset({"fantasize", "condition", "members"})

    width: int = 32
    depth: int = 2
    activation: str = "tanh"
    # fixed by default: an inferred scale (hierarchical prior) mixed badly in NUTS (r-hat 2-3,
    # ESS ~3 of 200) and was overconfident on held-out Hartmann6 (NLL 4.4 vs 2.0 with scale 2)
    prior_scale: float | None = 2.0
    num_warmup: int = 200
    num_samples: int = 200
    thinning: int = 4
    num_chains: int = 1
    target_accept: float = 0.8
    max_tree_depth: int = 6
    map_steps: int = 300
    min_noise: float = 1e-4
    seed: int = 0
    diagnostics: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        from surrogates._numpyro_bnn import ACTIVATIONS

        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}")
        for name in ("width", "depth", "num_samples", "thinning", "num_chains", "max_tree_depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.num_warmup < 0 or self.map_steps < 0:
            raise ValueError("num_warmup and map_steps must be >= 0")
        if self.thinning > self.num_samples:
            raise ValueError("thinning must not exceed num_samples")
        if not 0.0 < self.target_accept < 1.0:
            raise ValueError("target_accept must be in (0, 1)")
        if self.prior_scale is not None and not self.prior_scale > 0:
            raise ValueError("prior_scale must be positive (or None to infer it)")
        if not self.min_noise > 0:
            raise ValueError("min_noise must be positive")

    def check_space(self, space: Any = None) -> None:
        """NUTS needs JAX and numpyro: refuse now, not after the initial design, without them."""
        import importlib.util

        from bocli.errors import UserError

        missing = [m for m in ("jax", "numpyro") if importlib.util.find_spec(m) is None]
        if missing:
            raise UserError(
                f"surrogate 'hmc' needs {' and '.join(missing)}, which are not installed "
                "(pip install 'jax[cpu]' numpyro), or choose another surrogate"
            )

    def _config(self, d: int, num_outputs: int = 1) -> Any:
        from surrogates._numpyro_bnn import BNNConfig

        return BNNConfig(
            d=d,
            num_outputs=num_outputs,
            width=self.width,
            depth=self.depth,
            activation=self.activation,
            infer_scale=self.prior_scale is None,
            num_warmup=self.num_warmup,
            num_samples=self.num_samples,
            num_chains=self.num_chains,
            target_accept=self.target_accept,
            max_tree_depth=self.max_tree_depth,
            map_steps=self.map_steps,
            min_noise=self.min_noise,
        )

    def fit(self, train_X: Tensor, train_Y: Tensor, cat_dims: Sequence[int] = ()) -> Model:
        # categorical columns are fed as their ordinal codes: the network can still split on them
        from surrogates._numpyro_bnn import sample_posterior

        X = train_X.detach().cpu().double().numpy()
        k = train_Y.shape[-1]  # outcomes: the network's output units
        y = train_Y.detach().cpu().double().numpy()
        y = y.reshape(-1) if k == 1 else y.reshape(-1, k)
        # the engine seeds torch per proposal: derive the sampler's seed from it and ours
        step = int(torch.randint(0, 2**31 - 1, (1,)).item())
        jax_dev, note = sampler_device(train_X.device)
        if note:
            warnings.warn(note, HMCDeviceWarning, stacklevel=2)
        samples = sample_posterior(
            X,
            y,
            self._config(X.shape[1], k),
            prior_scale=1.0 if self.prior_scale is None else float(self.prior_scale),
            thinning=self.thinning,
            seed=(self.seed * 1_000_003 + step) % 2**31,
            device=jax_dev,
        )
        self.diagnostics = sampler_diagnostics(samples, self.num_samples)
        if note:
            self.diagnostics["note"] = note
        warning = self._warning(self.diagnostics)
        if warning:
            self.diagnostics["warning"] = warning
            log.info("hmc: %s", warning)

        tkw = {"dtype": train_X.dtype, "device": train_X.device}
        layers = [
            (
                torch.as_tensor(W.reshape(-1, *W.shape[2:]), **tkw),
                torch.as_tensor(b.reshape(-1, *b.shape[2:]), **tkw),
            )
            for W, b in samples.weights
        ]
        noise_var = torch.as_tensor(
            samples.noise_var.reshape(-1) if k == 1 else samples.noise_var.reshape(-1, k), **tkw
        )
        activation = self.activation

        def forward_fn(X: Tensor) -> Tensor:
            return bnn_forward(X, layers, activation)  # batch x s x n (x m)

        return SampleEnsembleModel(
            forward_fn, len(noise_var), noise_var, train_X, train_Y, num_outputs=k
        )

    def _warning(self, diag: dict[str, Any]) -> str:
        """One line naming the setting to change, or "" for a healthy fit."""
        problems, fixes = [], []
        div, total = diag["divergences"], diag["transitions"]
        if div > DIVERGENCE_WARN_FRACTION * total:
            problems.append(f"{div} of {total} NUTS transitions diverged")
            if self.target_accept < 0.95:
                fixes.append("target_accept=0.95")
            elif self.target_accept < 0.99:
                fixes.append("target_accept=0.99")
            else:
                fixes.append(f"num_warmup={2 * self.num_warmup}")
        if problems and diag["mean_tree_steps"] >= 0.9 * (2**self.max_tree_depth - 1):
            fixes.append(f"max_tree_depth={self.max_tree_depth + 2}")  # steps already at the cap
        if not problems:
            return ""
        seen = list(dict.fromkeys(fixes))
        return f"hmc: {'; '.join(problems)}; try " + " ".join(
            f"--surrogate-option {f}" for f in seen
        )
