"""The surrogate contract, written once.

A surrogate is a small dataclass: its fields are its settings (set from ``--surrogate-option key=value``
and recorded in run/study configs), and it has one job::

    model = surrogate.fit(train_X, train_Y)   # train_X: n x d in [0, 1]^d, train_Y: n x m standardized

``train_Y`` has ``m >= 1`` columns (outcomes): objectives of a multi-objective run and/or outcomes that
constraints are placed on. ``fit`` returns ONE botorch ``Model`` with ``num_outputs == m`` whose
``posterior(X)`` is differentiable in ``X`` (shape ``batch x q x d`` -> a posterior over
``batch x q x m``; ``rsample(torch.Size([s]))`` gives ``s x batch x q x m``, column ``i`` modelling
outcome ``i``). The model lives on ``train_X``'s device and dtype. The engine maximizes, so every
column of ``train_Y`` is already sign-flipped for minimization and standardized (zero mean, unit
variance); the surrogate never sees raw values. With ``m == 1`` the model is exactly the
single-output one. With ``m > 1``:

- the GP family (``gp``, ``ibnn``, ``dkl``) returns a ``ModelListGP`` of one model per outcome, each
  fitted as a single outcome is; ``ibnn-t`` and ``pfn`` return a ``ModelList`` subclass of them (see
  ``surrogates/multi_output.py``): outcomes are independent given the data;
- ``ensemble`` and ``hmc`` return one ``SampleEnsembleModel`` whose members are networks with ``m``
  outputs: a member is one joint draw of all outcomes, and an MC sample uses the same member for
  every outcome;
- ``diagnostics`` of a per-outcome model hold ``outcomes`` (one dict per outcome) and the worst
  ``fit_status`` / all ``warning`` s (``surrogates.multi_output.merge_outcome_diagnostics``).

``capabilities`` states what the returned model supports beyond ``posterior`` (mean, variance,
``rsample``). Acquisitions state what they require (see ``bocli/acquisition.py``); a pair is usable
iff the requirements are a subset of the capabilities. Acquisitions never look at surrogate types.
For ``m > 1`` a capability means the same of the ``m``-output model (``fantasize`` fantasizes all
outcomes at ``X``; ``condition`` takes ``n' x m`` observations), with the exceptions noted below.

- ``fantasize``: ``model.fantasize(X, sampler)`` gives a batched fantasy model (knowledge gradient;
  max-value entropy search uses it for pending points).
- ``gaussian``: ``posterior(X)`` is a multivariate normal with a full covariance over ``q`` points
  (GIBBON). For ``m > 1``: joint over ``q`` points and ``m`` (independent) outcomes for the
  ``ModelListGP`` s; for ``ibnn-t`` only per outcome (its posterior is a ``PosteriorList`` of
  moment-matched Gaussians, without a joint ``distribution``).
- ``condition``: ``condition_on_observations`` works (joint entropy search).
- ``paths``: botorch's pathwise (Matheron) posterior samples draw the model's own functions
  (``sample_optimal_points``: the multi-objective entropy searches' Pareto sets). Only ``gp``:
  ``dkl``'s paths skip its feature network, the NNGP kernels have no feature map.
- ``members``: the posterior is a weighted finite set of functions (an ``EnsemblePosterior``, see
  ``surrogates/ensemble_model.py``): each member is one function draw, its optimum one optimal
  sample (Thompson sampling, max-value and joint entropy search read them). For ``m > 1`` a member
  is a joint draw of all outcomes; ``SampleEnsemblePosterior.covariance_matrix`` (the
  moment-matched single-objective entropy searches) is single-output only.

Multi-objective acquisitions need more than the capabilities above: the hypervolume knowledge
gradient needs a ``ModelList`` with ``fantasize`` (gp, ibnn, ibnn-t, dkl; pfn evaluates too), and
the multi-objective entropy searches need ``paths``.

Constructors store settings; ``fit`` learns (scikit-learn's rule): never mutate settings in ``fit``.
``fit`` may set ``self.diagnostics`` (a JSON-able dict, e.g. divergences) describing the last fit.
"""

from __future__ import annotations

import dataclasses
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from bocli.errors import UserError

if TYPE_CHECKING:
    from botorch.models.model import Model
    from torch import Tensor

    from bocli.space import Space

__all__ = ["Surrogate", "SurrogateOptionError"]


class SurrogateOptionError(UserError, ValueError):
    """A surrogate setting is unknown or has the wrong type; the message names the option."""


class Surrogate(ABC):
    """Base class of all surrogates (subclasses are dataclasses; see the module docstring)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[str]] = frozenset()
    diagnostics: dict[str, Any]

    @abstractmethod
    def fit(self, train_X: Tensor, train_Y: Tensor, cat_dims: Sequence[int] = ()) -> Model:
        """Fit to data and return a botorch Model.

        Args:
            train_X: ``n x d`` inputs in the unit cube (float64 by default, on the run's device).
            train_Y: ``n x m`` standardized outcomes (``m >= 1``), each to be maximized.
            cat_dims: Columns holding unordered categories (encoded as ``index / (K - 1)``). A
                surrogate without a categorical treatment may treat them as ordinal.

        Returns:
            A botorch Model with ``num_outputs == m`` on ``train_X``'s device and dtype.
        """

    def check_space(self, space: Space | None = None) -> None:
        """Refuse at once, with one line (a ``UserError``), what this surrogate cannot do: a space
        beyond its limits (e.g. more parameters than a PFN checkpoint handles), or a setting that
        only shows its fault when used (a damaged checkpoint file). ``space`` None checks the
        settings only. Called by ``bocli.engine.check_models`` before any evaluation or fit; the
        default accepts everything."""
        return None

    # ----- settings -----------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """The settings as a JSON-able dict (what ``--surrogate-option`` can set)."""
        if not dataclasses.is_dataclass(self):
            return {}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    @classmethod
    def option_names(cls) -> list[str]:
        if not dataclasses.is_dataclass(cls):
            return []
        return [f.name for f in dataclasses.fields(cls) if f.init]

    @classmethod
    def from_options(cls, options: dict[str, Any] | None = None) -> Surrogate:
        """Build from user options; string values are converted to the field's type."""
        options = dict(options or {})
        fields = (
            {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
        )
        kwargs: dict[str, Any] = {}
        for key, value in options.items():
            f = fields.get(key)
            if f is None or not f.init:
                import difflib

                allowed = cls.option_names()
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise SurrogateOptionError(
                    f"--surrogate-option: '{key}' is not a setting of surrogate '{cls.name}'{hint}; "
                    f"settings: {', '.join(allowed) or '(none)'}"
                )
            kwargs[key] = _convert(cls.name, key, value, getattr(cls, key, None), f.type)
        try:
            return cls(**kwargs)
        except (TypeError, ValueError, OverflowError) as e:
            raise SurrogateOptionError(f"--surrogate-option for '{cls.name}': {e}") from None


def _convert(surrogate: str, key: str, value: Any, default: Any, annotation: Any) -> Any:
    """Convert a command-line string to the type of the field's default (or annotation); check a
    JSON value (``--surrogate-option '{...}'``) has that type. Non-finite numbers are refused."""
    ann = str(annotation)
    target = type(default) if default is not None else None
    kind = target.__name__ if target else ann
    if target is None:
        for name in ("bool", "int", "float", "str", "list", "tuple"):
            if ann.startswith(name) or (name == "float" and "float" in ann):
                kind = name
                break
    nullable = "None" in ann or default is None

    def bad(why: str = "") -> SurrogateOptionError:
        shown = " ".join(str(value if isinstance(value, str) else json.dumps(value)).split())
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        return SurrogateOptionError(
            f"--surrogate-option: '{key}' of surrogate '{surrogate}' expects {kind}"
            f"{' or none' if nullable and kind != 'NoneType' else ''}, got {shown!r}{why}"
        )

    if not isinstance(value, str):
        if value is None and nullable:
            return None
        if kind == "bool":
            if isinstance(value, bool):
                return value
            raise bad()
        if isinstance(value, bool):
            raise bad()
        if kind == "int":
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, int):
                return value
            raise bad()
        if kind == "float":
            if not isinstance(value, int | float):
                raise bad()
            if not math.isfinite(value):
                raise bad(" (not a finite number)")
            return float(value)
        if kind in ("list", "tuple"):
            if not isinstance(value, list | tuple):
                raise bad()
            return tuple(value) if kind == "tuple" else list(value)
        if kind == "str":
            raise bad()
        return value
    text = value.strip()
    try:
        if kind == "bool":
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if text.lower() in ("none", "null") and nullable:
            return None
        if kind == "int":
            try:
                return int(text)
            except ValueError:
                f = float(text)
                if not f.is_integer():
                    raise
                return int(f)
        if kind == "float":
            f = float(text)
            if not math.isfinite(f):
                raise bad(" (not a finite number)")
            return f
        if kind in ("list", "tuple"):
            parsed = (
                json.loads(text)
                if text.startswith("[")
                else [float(t) if "." in t or "e" in t.lower() else int(t) for t in text.split(",")]
            )
            if not isinstance(parsed, list):
                raise ValueError
            return tuple(parsed) if kind == "tuple" else list(parsed)
        return text
    except SurrogateOptionError:
        raise
    except (ValueError, OverflowError):
        raise bad() from None
