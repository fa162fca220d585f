"""Deep kernel learning: an MLP feature extractor feeding an exact GP, trained jointly.

``k(x, x') = RBF_ARD(g(x), g(x'))`` with ``g(x) = x + MLP(x)`` a residual tanh MLP (Wilson et al.
2016; the kernel and priors are the ``gp`` surrogate's, so an untrained DKL is that GP). The network,
the kernel hyperparameters, the constant mean and the noise are trained together with Adam on the
exact marginal likelihood, as in the BNN-surrogate study's DKL (which used more steps and a smaller
learning rate; the defaults here were chosen by held-out NLL and fit time, see
``benchmarks/bench_surrogates.py``). The model is a ``SingleTaskGP`` whose ``forward`` applies ``g``
first, so fantasies, conditioning, and every acquisition that works for ``gp`` work here too.
botorch's pathwise samplers skip ``forward``, so Thompson sampling and JES optima use the discrete
candidate-set route in ``bocli/acquisition.py``.

With ``m > 1`` outcomes each outcome gets its own DKL model (its own network, trained as a single
outcome is), combined into a ``ModelListGP`` (``surrogates/multi_output.py``). The pathwise
samplers ignore the feature network, so ``sample_optimal_points`` would sample the wrong function:
the multi-objective entropy searches need Pareto sets found otherwise.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from botorch.models import SingleTaskGP
from botorch.models.model import Model
from botorch.models.transforms.outcome import Standardize
from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior
from gpytorch.distributions import MultivariateNormal
from gpytorch.mlls import ExactMarginalLogLikelihood
from torch import Tensor, nn

from surrogates.base import Surrogate
from surrogates.multi_output import fit_per_outcome
from surrogates.registry import register_surrogate

__all__ = ["DKL", "DeepKernelGP"]


class DeepKernelGP(SingleTaskGP):
    """SingleTaskGP on learned features: ``forward(x) = GP(g(x))``.

    Args:
        train_X: ``n x d`` inputs in the unit cube.
        train_Y: ``n x 1`` targets.
        feature_extractor: ``... x d -> ... x k`` module.
        feature_dim: ``k``.
    """

    def __init__(
        self, train_X: Tensor, train_Y: Tensor, feature_extractor: nn.Module, feature_dim: int
    ) -> None:
        covar = get_covar_module_with_dim_scaled_prior(ard_num_dims=feature_dim)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            super().__init__(
                train_X, train_Y, covar_module=covar, outcome_transform=Standardize(m=1)
            )
        self.feature_extractor = feature_extractor

    def forward(self, x: Tensor) -> MultivariateNormal:
        """``batch x n x d`` -> the GP prior at ``batch x n`` (features computed first)."""
        if self.training:
            x = self.transform_inputs(x)
        z = self.feature_extractor(x)
        return MultivariateNormal(self.mean_module(z), self.covar_module(z))


class ResidualFeatures(nn.Module):
    """``g(x) = x + MLP(x)`` with a zero-initialized last layer.

    The GP starts as the ``gp`` surrogate's GP on the inputs and the network learns a warping on top;
    plain DKL features (no skip) collapsed and gave badly overconfident predictions in our
    measurements (held-out coverage near 50% on Hartmann6 at n = 60).
    """

    def __init__(self, d: int, width: int, depth: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Linear(d if i == 0 else width, width), nn.Tanh()]
        last = nn.Linear(width if depth else d, d)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*layers, last)

    def forward(self, x: Tensor) -> Tensor:
        """``... x d`` -> ``... x d`` features."""
        return x + self.net(x)


@register_surrogate("dkl")
@dataclass
class DKL(Surrogate):
    """Deep kernel learning: residual tanh-MLP features + ARD RBF exact GP, joint MLL training."""

    description = "deep kernel learning (MLP features + RBF GP, joint marginal-likelihood fit)"
    capabilities = frozenset({"fantasize", "gaussian", "condition"})

    width: int = 32
    depth: int = 2
    steps: int = 200
    lr: float = 0.05
    net_lr: float = 0.0005
    weight_decay: float = 1e-4
    diagnostics: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.width < 1 or self.depth < 0 or self.steps < 1:
            raise ValueError("width and steps must be positive, depth >= 0")
        if not (self.lr > 0 and self.net_lr > 0 and self.weight_decay >= 0):
            raise ValueError("lr and net_lr must be positive, weight_decay >= 0")

    def fit(self, train_X: Tensor, train_Y: Tensor, cat_dims: Sequence[int] = ()) -> Model:
        """``train_X``: ``n x d``; ``train_Y``: ``n x m``. Returns a ``DeepKernelGP`` (``m == 1``) or
        a ``ModelListGP`` of one per outcome (``m > 1``; ``diagnostics`` merged per outcome)."""
        if train_Y.shape[-1] > 1:
            model, self.diagnostics = fit_per_outcome(
                lambda y: self._fit_one(train_X, y), train_Y, gpytorch=True
            )
            return model
        model, self.diagnostics = self._fit_one(train_X, train_Y)
        return model

    def _fit_one(self, train_X: Tensor, train_Y: Tensor) -> tuple[Model, dict[str, Any]]:
        """One outcome (``train_Y``: ``n x 1``): the model and its diagnostics."""
        d = train_X.shape[-1]
        net = ResidualFeatures(d, self.width, self.depth).to(train_X)
        model = DeepKernelGP(train_X, train_Y, net, d)
        noise = model.likelihood.noise_covar
        min_noise = float(noise.raw_noise_constraint.lower_bound)
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        model.train()
        opt = torch.optim.Adam(
            [
                {"params": net.parameters(), "weight_decay": self.weight_decay, "lr": self.net_lr},
                {"params": [p for n, p in model.named_parameters() if "feature" not in n]},
            ],
            lr=self.lr,
        )
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.steps)
        X, y = model.train_inputs[0], model.train_targets
        best, best_state, loss_v = math.inf, None, math.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(self.steps):
                opt.zero_grad(set_to_none=True)
                try:
                    loss = -mll(model(X), y).sum()
                except Exception:  # a numerically singular step: keep the best state so far
                    break
                loss.backward()
                opt.step()
                sched.step()
                with (
                    torch.no_grad()
                ):  # botorch's noise bound is enforced by L-BFGS-B, not a transform
                    noise.raw_noise.clamp_(min=min_noise)
                loss_v = float(loss.detach())
                if loss_v < best:
                    best = loss_v
                    best_state = {n: t.detach().clone() for n, t in model.state_dict().items()}
        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        diagnostics = {
            "final_mll": -loss_v if math.isfinite(loss_v) else None,
            "best_mll": -best if math.isfinite(best) else None,
            "noise": float(model.likelihood.noise.detach().reshape(-1)[0]),
        }
        return model, diagnostics
