"""Exact GP: botorch's SingleTaskGP (MixedSingleTaskGP with categorical dimensions), fitted robustly.

With ``m > 1`` outcomes, each outcome gets its own GP, fitted exactly as a single outcome is, and the
fit returns a ``ModelListGP`` of them (``surrogates/multi_output.py``): all capabilities hold, and
the hypervolume knowledge gradient and the multi-objective entropy searches (Matheron paths) work.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from botorch.exceptions.errors import ModelFittingError
from botorch.fit import fit_gpytorch_mll
from botorch.models import MixedSingleTaskGP, SingleTaskGP
from botorch.models.model import Model
from botorch.models.transforms.outcome import Standardize
from gpytorch.mlls import ExactMarginalLogLikelihood
from linear_operator.utils.errors import NanError, NotPSDError
from torch import Tensor

from surrogates.base import Surrogate
from surrogates.multi_output import fit_per_outcome
from surrogates.registry import register_surrogate

log = logging.getLogger(__name__)


def fit_mll_robustly(model: Model, max_attempts: int = 3) -> dict[str, Any]:
    """Fit a GP's hyperparameters by the exact marginal likelihood without ever aborting a run.

    botorch's fitter already restarts from the priors after a failed attempt; on top of that, a
    Cholesky failure retries with more jitter (``max_cholesky_jitter``), and as a last resort the
    model keeps its prior-mode hyperparameters (still a valid GP, just not tuned).

    Returns:
        Diagnostics: ``{"fit_status": "ok" | "jitter" | "prior", "fit_error": str | None}``.
    """
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    import gpytorch

    # a failed attempt may leave the hyperparameters anywhere (NaN included): every retry, and
    # the fallback, starts again from the initial (prior-mode) values
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    last: Exception | None = None
    for attempt, jitter in enumerate((None, 1e-6, 1e-4)[:max_attempts]):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if jitter is None:
                    fit_gpytorch_mll(mll)
                else:
                    with gpytorch.settings.cholesky_jitter(
                        float_value=jitter * 100, double_value=jitter
                    ):
                        fit_gpytorch_mll(mll)
            if attempt == 0:
                return {"fit_status": "ok", "fit_error": None}
            return {
                "fit_status": "jitter",
                "fit_error": f"{type(last).__name__}: {last}",
                "warning": f"the marginal-likelihood fit needed Cholesky jitter {jitter:g} "
                f"after {type(last).__name__}",
            }
        except (ModelFittingError, NotPSDError, NanError, RuntimeError, ValueError) as e:
            last = e
            log.warning("GP fit attempt %d failed: %s", attempt + 1, e)
            model.load_state_dict(initial)
    model.eval()
    return {
        "fit_status": "prior",
        "fit_error": f"{type(last).__name__}: {last}",
        "warning": f"the marginal-likelihood fit failed {max_attempts} times "
        f"({type(last).__name__}); this proposal used the prior's hyperparameters",
    }


@register_surrogate("gp")
@dataclass
class GP(Surrogate):
    """Exact GP with an ARD RBF kernel and dimension-scaled lengthscale prior (botorch defaults).

    Categorical dimensions get botorch's categorical kernel (MixedSingleTaskGP).
    """

    description = "exact GP (botorch SingleTaskGP, ARD RBF, MLL fit with retries)"
    capabilities = frozenset({"fantasize", "gaussian", "condition", "paths"})

    min_noise: float = 1e-4
    diagnostics: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.min_noise <= 1.0:
            raise ValueError(f"min_noise must be in (0, 1], got {self.min_noise}")

    def fit(self, train_X: Tensor, train_Y: Tensor, cat_dims: Sequence[int] = ()) -> Model:
        """``train_X``: ``n x d``; ``train_Y``: ``n x m``. Returns a SingleTaskGP (``m == 1``) or a
        ``ModelListGP`` of one GP per outcome (``m > 1``; ``diagnostics`` merged per outcome)."""
        model, self.diagnostics = fit_per_outcome(
            lambda y: self._fit_one(train_X, y, cat_dims), train_Y, gpytorch=True
        )
        return model

    def _fit_one(
        self, train_X: Tensor, train_Y: Tensor, cat_dims: Sequence[int]
    ) -> tuple[Model, dict[str, Any]]:
        """One outcome: ``train_Y`` is ``n x 1``."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # InputDataWarning for already-standardized Y
            if cat_dims:
                model = MixedSingleTaskGP(
                    train_X, train_Y, cat_dims=list(cat_dims), outcome_transform=Standardize(m=1)
                )
            else:
                model = SingleTaskGP(train_X, train_Y, outcome_transform=Standardize(m=1))
        if self.min_noise != 1e-4:
            from gpytorch.constraints import GreaterThan

            model.likelihood.noise_covar.register_constraint(
                "raw_noise", GreaterThan(self.min_noise)
            )
        diagnostics = fit_mll_robustly(model)
        model.eval()
        return model, diagnostics
