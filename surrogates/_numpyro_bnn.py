"""NUTS over the weights of a small MLP, in JAX/numpyro (the maths behind the ``hmc`` surrogate).

Nothing here knows about torch, botorch or the CLI: ``sample_posterior`` takes numpy arrays and
returns numpy arrays. JAX is imported on first use only (it is slow to import and must not load at
``bocli`` start-up), with 64-bit floats enabled and GPU memory preallocation switched off so that it
can share a GPU with torch.

The model (inputs ``x`` in ``[0, 1]^d`` are centred to ``[-1, 1]^d`` first)::

    h_0 = 2 x - 1
    h_l = act(h_{l-1} W_l + b_l),         W_l ~ N(0, s^2 / fan_in),  b_l ~ N(0, s^2)
    f   = h_L w_out + b_out,              w_out ~ N(0, s^2 / width), b_out ~ N(0, 1)
    y   ~ N(f, sigma^2 + min_noise),      log sigma ~ N(log 0.1, 1)

With ``m > 1`` outcomes (``num_outputs``) the output layer has ``m`` units (``f`` is ``n x m``) and
each outcome has its own noise ``sigma_k`` (same prior); one draw is one network, a joint draw of all
outcomes.

The prior scale ``s`` is fixed, or inferred with ``log s ~ N(0, 0.5^2)``. The sampler sees every
weight in non-centred form (``W = s / sqrt(fan_in) * W_raw`` with ``W_raw ~ N(0, 1)``), which keeps
the posterior free of the funnel an inferred scale would otherwise create.

Compilation is the expensive part of a fit (seconds), and the BO loop refits every iteration with one
more observation. So the data are padded to a bucket size (the next power of two) with a mask that
removes the padding from the likelihood, and one jitted function (MAP warm start, NUTS warm-up,
sampling) is kept per configuration: every fit in the same bucket reuses the compiled code. JAX's
persistent compilation cache (``~/.cache/bocli/jax``, or ``$BOCLI_JAX_CACHE``; empty disables it)
carries compiled code across processes too, which is what ``bocli ask`` (one process per ask) needs.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "ACTIVATIONS",
    "BNNConfig",
    "BNNSamples",
    "bucket_size",
    "jax_backend",
    "jax_device",
    "sample_posterior",
]

ACTIVATIONS = ("tanh", "relu", "elu", "silu")
_LOG_SIGMA_PRIOR = (math.log(0.1), 1.0)  # mean, std of log noise std (standardized outcomes)
_LOG_SCALE_PRIOR = (0.0, 0.5)  # mean, std of log prior scale when it is inferred


@dataclass(frozen=True)
class BNNConfig:
    """Static settings of one sampler; each distinct value compiles once per data bucket."""

    d: int
    width: int = 32
    depth: int = 2
    activation: str = "tanh"
    infer_scale: bool = True
    num_warmup: int = 200
    num_samples: int = 200
    num_chains: int = 1
    target_accept: float = 0.8
    max_tree_depth: int = 6
    map_steps: int = 300
    min_noise: float = 1e-4
    num_outputs: int = 1


@dataclass
class BNNSamples:
    """Posterior draws and how they were obtained.

    Attributes:
        weights: Per layer, ``(W, b)`` with ``W: c x S x fan_in x fan_out`` and ``b: c x S x fan_out``
            (``c`` chains, ``S`` kept draws per chain), already scaled: the network is a plain MLP
            (the last ``fan_out`` is the number of outcomes ``m``).
        noise_var: ``c x S`` observation noise variances (standardized units); ``c x S x m`` for
            ``m > 1`` outcomes.
        prior_scale: ``c x S`` prior scales (constant when fixed).
        f_train: ``c x num_samples x n`` (``x m`` for ``m > 1``) network outputs at the training
            inputs for every post-warm-up draw, thinned or not (for function-space r-hat/ESS).
        log_noise_all: ``c x num_samples`` (``x m``) log noise variances of every post-warm-up draw.
        log_scale_all: ``c x num_samples`` log prior scales of every post-warm-up draw.
        diverging: Number of divergent post-warm-up transitions, per chain.
        num_steps: Mean leapfrog steps per transition.
        accept_prob: Mean acceptance probability after warm-up.
        step_size: Adapted step size, per chain.
        seconds: Wall time of this call; ``compiled``: whether it compiled new code.
    """

    weights: list[tuple[np.ndarray, np.ndarray]]
    noise_var: np.ndarray
    prior_scale: np.ndarray
    f_train: np.ndarray
    log_noise_all: np.ndarray
    log_scale_all: np.ndarray
    diverging: np.ndarray
    num_steps: float
    accept_prob: float
    step_size: np.ndarray
    seconds: float
    compiled: bool
    backend: str


def bucket_size(n: int) -> int:
    """Padded data size: the next power of two, at least 32.

    Compiling the sampler takes longer than running it at small ``n`` (tens of seconds on a loaded
    CPU), while a padded row costs little next to NUTS's own per-step work; so a BO run of a few
    hundred evaluations compiles only a handful of times.
    """
    return max(32, 1 << max(0, n - 1).bit_length())


@functools.cache
def _jax() -> Any:
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import jax

    jax.config.update("jax_enable_x64", True)
    cache = os.environ.get("BOCLI_JAX_CACHE", os.path.expanduser("~/.cache/bocli/jax"))
    if cache:
        try:
            os.makedirs(cache, exist_ok=True)
            jax.config.update("jax_compilation_cache_dir", cache)
        except OSError:
            pass  # read-only home: compile in every process
    return jax


def jax_backend() -> str:
    """``"gpu"`` when a CUDA-enabled JAX sees a GPU, else ``"cpu"`` (imports JAX)."""
    return str(_jax().default_backend())


def jax_device(platform: str, index: int = 0) -> Any | None:
    """JAX's device ``index`` of ``platform`` (``"gpu"`` or ``"cpu"``), or None when this JAX has
    no such backend (a CPU-only JAX asked for ``"gpu"``) or fewer devices."""
    try:
        devices = _jax().devices(platform)
    except RuntimeError:  # "Unknown backend" / "Backend 'gpu' failed to initialize"
        return None
    return devices[index] if 0 <= index < len(devices) else None


def _layer_dims(cfg: BNNConfig) -> list[tuple[int, int]]:
    dims = [cfg.d] + [cfg.width] * cfg.depth + [cfg.num_outputs]
    return list(itertools.pairwise(dims))


def _activation(name: str) -> Any:
    jax = _jax()
    return {
        "tanh": jax.numpy.tanh,
        "relu": jax.nn.relu,
        "elu": jax.nn.elu,
        "silu": jax.nn.silu,
    }[name]


def _effective_weights(cfg: BNNConfig, z: dict[str, Any], fixed_scale: Any) -> list[tuple]:
    """Raw (standard normal) parameters -> the network's scaled weights (non-centred form)."""
    jnp = _jax().numpy
    s = jnp.exp(z["log_scale"]) if cfg.infer_scale else fixed_scale
    layers = []
    for i, (fan_in, _) in enumerate(_layer_dims(cfg)):
        W = z[f"W{i}"] * (s / jnp.sqrt(fan_in))
        last = i == cfg.depth
        b = z[f"b{i}"] * (1.0 if last else s)
        layers.append((W, b))
    return layers


def _forward(cfg: BNNConfig, layers: list[tuple], X: Any) -> Any:
    """``n x d`` inputs in the unit cube -> ``n`` outputs (``n x m`` for ``m > 1`` outcomes)."""
    act = _activation(cfg.activation)
    h = 2.0 * X - 1.0
    for i, (W, b) in enumerate(layers):
        h = h @ W + b
        if i < len(layers) - 1:
            h = act(h)
    return h[..., 0] if cfg.num_outputs == 1 else h


def _noise_var(cfg: BNNConfig, z: dict[str, Any]) -> Any:
    return _jax().numpy.exp(2.0 * z["log_sigma"]) + cfg.min_noise


def _potential_fn_gen(cfg: BNNConfig) -> Any:
    jnp = _jax().numpy

    def gen(X: Any, y: Any, mask: Any, fixed_scale: Any) -> Any:
        def potential(z: dict[str, Any]) -> Any:
            f = _forward(cfg, _effective_weights(cfg, z, fixed_scale), X)
            var = _noise_var(cfg, z)  # scalar, or m (one per outcome)
            w = mask if cfg.num_outputs == 1 else mask[:, None]
            nll = 0.5 * jnp.sum(w * ((y - f) ** 2 / var + jnp.log(var)))
            prior = 0.5 * sum(
                jnp.sum(v**2) for k, v in z.items() if k not in ("log_sigma", "log_scale")
            )
            m, sd = _LOG_SIGMA_PRIOR
            prior = prior + 0.5 * jnp.sum(((z["log_sigma"] - m) / sd) ** 2)
            if cfg.infer_scale:
                m, sd = _LOG_SCALE_PRIOR
                prior = prior + 0.5 * ((z["log_scale"] - m) / sd) ** 2
            return nll + prior

        return potential

    return gen


def _init_params(cfg: BNNConfig, key: Any) -> dict[str, Any]:
    jax = _jax()
    jnp = jax.numpy
    z: dict[str, Any] = {}
    for i, (fan_in, fan_out) in enumerate(_layer_dims(cfg)):
        key, k1, k2 = jax.random.split(key, 3)
        z[f"W{i}"] = jax.random.normal(k1, (fan_in, fan_out))
        z[f"b{i}"] = 0.1 * jax.random.normal(k2, (fan_out,))
    if cfg.num_outputs == 1:
        z["log_sigma"] = jnp.asarray(math.log(0.3))
    else:
        z["log_sigma"] = jnp.full((cfg.num_outputs,), math.log(0.3))
    if cfg.infer_scale:
        z["log_scale"] = jnp.asarray(0.0)
    return z


def _adam_map(potential: Any, z: dict[str, Any], steps: int, lr: float = 1e-2) -> dict[str, Any]:
    """A few hundred Adam steps towards a posterior mode: NUTS then starts in the typical set's
    neighbourhood instead of spending its warm-up walking there from a prior draw."""
    jax = _jax()
    jnp = jax.numpy
    grad = jax.grad(potential)
    b1, b2, eps = 0.9, 0.999, 1e-8

    def step(carry: tuple, t: Any) -> tuple:
        z, m, v = carry
        g = grad(z)
        m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, m, g)
        v = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, v, g)
        c1, c2 = 1 - b1 ** (t + 1.0), 1 - b2 ** (t + 1.0)
        z = jax.tree.map(lambda z, m, v: z - lr * (m / c1) / (jnp.sqrt(v / c2) + eps), z, m, v)
        return (z, m, v), None

    zeros = jax.tree.map(jnp.zeros_like, z)
    (z, _, _), _ = jax.lax.scan(step, (z, zeros, zeros), jnp.arange(steps))
    return z


@functools.cache
def _runner(cfg: BNNConfig) -> Any:
    """One jitted ``(keys, X, y, mask, scale) -> draws`` per configuration; jax caches it per shape.

    The sampler works on one flat parameter vector (numpyro's tree builder does less bookkeeping
    than on a dict of arrays, measured ~25% faster per leapfrog step), and warm-up and sampling share
    one ``scan`` so the NUTS graph is compiled once, not twice.
    """
    jax = _jax()
    jnp = jax.numpy
    from jax.flatten_util import ravel_pytree
    from numpyro.infer.hmc import hmc

    gen = _potential_fn_gen(cfg)
    _, unravel = ravel_pytree(_init_params(cfg, jax.random.key(0)))

    def flat_gen(*args: Any) -> Any:
        potential = gen(*args)
        return lambda v: potential(unravel(v))

    def one_chain(key: Any, X: Any, y: Any, mask: Any, scale: Any) -> dict[str, Any]:
        init_kernel, sample_kernel = hmc(potential_fn_gen=flat_gen, algo="NUTS")
        k_init, k_nuts = jax.random.split(key)
        args = (X, y, mask, scale)
        z0 = _init_params(cfg, k_init)
        if cfg.map_steps > 0:
            z0 = _adam_map(gen(*args), z0, cfg.map_steps)
        state = init_kernel(
            ravel_pytree(z0)[0],
            num_warmup=cfg.num_warmup,
            step_size=1e-2,
            target_accept_prob=cfg.target_accept,
            max_tree_depth=cfg.max_tree_depth,
            find_heuristic_step_size=True,
            model_args=args,
            rng_key=k_nuts,
        )

        def step(state: Any, _: Any) -> tuple:
            state = sample_kernel(state, model_args=args)
            return state, (state.z, state.diverging, state.num_steps, state.accept_prob)

        total = cfg.num_warmup + cfg.num_samples
        state, (z, div, steps, acc) = jax.lax.scan(step, state, None, length=total)
        z, div, steps, acc = (a[cfg.num_warmup :] for a in (z, div, steps, acc))

        def describe(v: Any) -> dict[str, Any]:
            zd = unravel(v)
            layers = _effective_weights(cfg, zd, scale)
            return {
                "layers": layers,
                "noise_var": _noise_var(cfg, zd),
                "prior_scale": jnp.exp(zd["log_scale"]) if cfg.infer_scale else scale,
                "f_train": _forward(cfg, layers, X),
            }

        out = jax.vmap(describe)(z)
        out.update(diverging=div, num_steps=steps, accept_prob=acc)
        out["step_size"] = state.adapt_state.step_size
        return out

    def run(keys: Any, X: Any, y: Any, mask: Any, scale: Any) -> dict[str, Any]:
        if cfg.num_chains == 1:  # a vmapped NUTS turns its while loops into selects: avoid it
            return jax.tree.map(lambda a: a[None], one_chain(keys[0], X, y, mask, scale))
        return jax.vmap(one_chain, in_axes=(0, None, None, None, None))(keys, X, y, mask, scale)

    return jax.jit(run)


_COMPILED: set[tuple[BNNConfig, int, str]] = set()


def sample_posterior(
    X: np.ndarray,
    y: np.ndarray,
    cfg: BNNConfig,
    *,
    prior_scale: float = 1.0,
    thinning: int = 1,
    seed: int = 0,
    device: Any = None,
) -> BNNSamples:
    """Run NUTS (after a short MAP warm start) on the BNN posterior given ``n`` observations.

    Args:
        X: ``n x d`` inputs in the unit cube.
        y: ``n`` standardized outcomes, or ``n x m`` when ``cfg.num_outputs == m > 1``.
        cfg: Architecture and sampler settings (``cfg.d`` must equal ``d``).
        prior_scale: The prior scale ``s`` when ``cfg.infer_scale`` is False.
        thinning: Keep every ``thinning``-th post-warm-up draw.
        seed: Seed of the sampler.
        device: The JAX device to sample on (``jax_device``); None: JAX's default backend.

    Returns:
        The kept draws (``c`` chains x ``num_samples // thinning``) and sampler statistics.
    """
    jax = _jax()
    jnp = jax.numpy
    X = np.asarray(X, dtype=np.float64)
    k = cfg.num_outputs
    y = np.asarray(y, dtype=np.float64).reshape(-1) if k == 1 else np.asarray(y, np.float64)
    n, d = X.shape
    if d != cfg.d:
        raise ValueError(f"X has {d} columns but the network expects {cfg.d}")
    if k > 1 and y.shape != (n, k):
        raise ValueError(f"y has shape {y.shape}, expected ({n}, {k})")
    m = bucket_size(n)
    Xp = np.full((m, d), 0.5)
    yp = np.zeros(m) if k == 1 else np.zeros((m, k))
    mask = np.zeros(m)
    Xp[:n], yp[:n], mask[:n] = X, y, 1.0
    if device is None:
        device = jax.devices()[0]
    t0 = time.perf_counter()
    with jax.default_device(device):
        # committed inputs: the jitted sampler runs where its arguments live
        keys = jax.device_put(jax.random.split(jax.random.key(seed), cfg.num_chains), device)
        args = [jax.device_put(jnp.asarray(a), device) for a in (Xp, yp, mask, prior_scale)]
        out = _runner(cfg)(keys, *args)
        out = jax.tree.map(np.array, out)  # writable copies; blocks until the sampler is done
    seconds = time.perf_counter() - t0
    compiled = (cfg, m, str(device)) not in _COMPILED
    _COMPILED.add((cfg, m, str(device)))

    keep = slice(thinning - 1, None, max(1, thinning))
    draws = out["noise_var"].shape[:2]  # c x num_samples
    return BNNSamples(
        weights=[(W[:, keep], b[:, keep]) for W, b in out["layers"]],
        noise_var=out["noise_var"][:, keep],
        prior_scale=np.broadcast_to(out["prior_scale"], draws)[:, keep],
        f_train=out["f_train"][:, :, :n],
        log_noise_all=np.log(out["noise_var"]),
        log_scale_all=np.log(np.broadcast_to(out["prior_scale"], draws)),
        diverging=out["diverging"].sum(axis=1),
        num_steps=float(out["num_steps"].mean()),
        accept_prob=float(out["accept_prob"].mean()),
        step_size=out["step_size"],
        seconds=seconds,
        compiled=compiled,
        backend=str(device.platform),
    )
