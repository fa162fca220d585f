"""Helpers for surrogates that model ``m > 1`` outcomes with one single-output model per outcome.

The GP family (``gp``, ``ibnn``, ``ibnn-t``, ``dkl``) and ``pfn`` fit each column of an ``n x m``
``train_Y`` with exactly the code path of the single-output case and combine the ``m`` models into
one botorch model with ``num_outputs == m``:

- exact GPs (gpytorch models) into an ``OutcomeModelListGP``, a botorch ``ModelListGP`` (fantasize,
  condition, Matheron paths, hypervolume knowledge gradient, multi-objective entropy searches) that
  also accepts one ``X`` tensor for all outcomes in ``condition_on_observations``;
- other models into an ``OutcomeModelList`` (a botorch ``ModelList`` that also conditions on
  ``n' x m`` observations, one column per outcome model).

Each outcome's fit diagnostics are kept, and merged by ``merge_outcome_diagnostics``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from botorch.models import ModelListGP
from botorch.models.model import Model, ModelList
from torch import Tensor

__all__ = [
    "OutcomeModelList",
    "OutcomeModelListGP",
    "fit_per_outcome",
    "merge_outcome_diagnostics",
]

# fit_status values, best first (gp: fit_mll_robustly; ibnn-t: its own fit)
_STATUS_ORDER = ("ok", "jitter", "prior")


def merge_outcome_diagnostics(diagnostics: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One JSON-able dict for ``m`` per-outcome fit diagnostics.

    Returns:
        ``{"num_outcomes": m, "outcomes": [d_0, ..., d_{m-1}]}`` plus, when the outcomes report
        them, ``fit_status`` (the worst one), ``fit_error`` (the first error, prefixed with its
        outcome) and ``warning`` (every outcome's warning, prefixed ``outcome i:``, joined by
        ``"; "``).
    """
    out: dict[str, Any] = {
        "num_outcomes": len(diagnostics),
        "outcomes": [dict(d) for d in diagnostics],
    }
    statuses = [d["fit_status"] for d in diagnostics if d.get("fit_status") is not None]
    if statuses:
        rank = {s: i for i, s in enumerate(_STATUS_ORDER)}
        out["fit_status"] = max(statuses, key=lambda s: rank.get(s, len(rank)))
    if any("fit_error" in d for d in diagnostics):
        errors = [
            f"outcome {i}: {d['fit_error']}"
            for i, d in enumerate(diagnostics)
            if d.get("fit_error")
        ]
        out["fit_error"] = errors[0] if errors else None
    warnings = [
        f"outcome {i}: {d['warning']}" for i, d in enumerate(diagnostics) if d.get("warning")
    ]
    if warnings:
        out["warning"] = "; ".join(warnings)
    return out


class OutcomeModelList(ModelList):
    """A ``ModelList`` of single-output models, one per outcome, that can also be conditioned.

    ``posterior(X)`` (``batch x q x d``) is a ``PosteriorList`` over ``batch x q x m``; ``fantasize``
    is botorch's (each outcome's model fantasizes at ``X``).
    """

    def condition_on_observations(self, X: Tensor, Y: Tensor, **kwargs: Any) -> OutcomeModelList:
        """Condition outcome ``i``'s model on ``Y[..., i:i+1]``.

        Args:
            X: ``batch x n' x d`` inputs.
            Y: ``batch x n' x m`` observations (standardized units).
            noise: Optional ``batch x n' x m`` observation noise variances (keyword).

        Returns:
            An ``OutcomeModelList`` of the conditioned models.
        """
        return self.__class__(*_condition_each(self.models, X, Y, kwargs))


def _condition_each(models: Any, X: Tensor, Y: Tensor, kwargs: dict[str, Any]) -> list[Model]:
    """Outcome ``i``'s model conditioned on ``(X, Y[..., i:i+1])`` (and its column of an optional
    ``noise`` keyword), for each ``i``."""
    noise = kwargs.pop("noise", None)
    out = []
    for i, model in enumerate(models):
        kw = dict(kwargs)
        if noise is not None:
            kw["noise"] = noise[..., i : i + 1]
        out.append(model.condition_on_observations(X, Y[..., i : i + 1], **kw))
    return out


class OutcomeModelListGP(ModelListGP):
    """A ``ModelListGP`` of single-output GPs, one per outcome, all observed at the same inputs.

    ``condition_on_observations(X, Y)`` also takes ``X`` as one ``batch x n' x d`` tensor (the
    inputs of every outcome; botorch's ``ModelListGP`` wants an ``m``-list of tensors).
    """

    def condition_on_observations(
        self, X: Tensor | list[Tensor], Y: Tensor, **kwargs: Any
    ) -> ModelListGP:
        """Condition outcome ``i``'s GP on ``(X, Y[..., i:i+1])``.

        Args:
            X: ``batch x n' x d`` inputs (or an ``m``-list of them: botorch's ``ModelListGP``).
            Y: ``batch x n' x m`` observations (standardized units).
            noise: Optional ``batch x n' x m`` observation noise variances (keyword).

        Returns:
            An ``OutcomeModelListGP`` of the conditioned GPs (with a tensor ``X``, each conditioned
            exactly as the single-output GP would be).
        """
        if not isinstance(X, Tensor):
            return super().condition_on_observations(X, Y, **kwargs)
        return self.__class__(*_condition_each(self.models, X, Y, kwargs))


def fit_per_outcome(
    fit_one: Callable[[Tensor], tuple[Model, dict[str, Any]]], train_Y: Tensor, *, gpytorch: bool
) -> tuple[Model, dict[str, Any]]:
    """Fit one model per column of ``train_Y`` (``n x m``) and combine them; with ``m == 1``, the
    single model and its diagnostics as ``fit_one`` returns them.

    Args:
        fit_one: ``Y_i`` (``n x 1``) -> (single-output model, its diagnostics).
        train_Y: ``n x m`` standardized outcomes.
        gpytorch: Whether the models are gpytorch exact GPs (combined into an
            ``OutcomeModelListGP``); otherwise they are combined into an ``OutcomeModelList``.

    Returns:
        The ``m``-output model and the merged diagnostics (``merge_outcome_diagnostics``).
    """
    if train_Y.shape[-1] == 1:
        return fit_one(train_Y)
    models, diags = [], []
    for i in range(train_Y.shape[-1]):
        model, diag = fit_one(train_Y[..., i : i + 1])
        models.append(model)
        diags.append(diag)
    if gpytorch:
        combined: Model = OutcomeModelListGP(*models)
    else:
        combined = OutcomeModelList(*models)
    combined.eval()
    return combined, merge_outcome_diagnostics(diags)
