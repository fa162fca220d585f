"""The problem contract: a declarative description of an objective bocli can optimize.

A problem is data: a name, a search space (which carries the objective's name and direction), an
objective callable taking a parameter dict, the known optimum (when known, for regret) and the noise
level. ``Problem.evaluate`` validates and adds noise; concrete problems only compute.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bocli.space import Space

__all__ = ["ObjectiveError", "Problem", "outcome_values"]


class ObjectiveError(RuntimeError):
    """An evaluation failed (exception, non-finite value, timeout); the trial is recorded as failed."""


@dataclass(frozen=True)
class Problem:
    """An objective over a search space.

    Attributes:
        name: Registry name (e.g. ``branin``, ``hartmann6``).
        space: Parameters plus the objective's name and direction.
        fn: ``fn(params) -> float``, the noiseless value (or the real measurement for user
            objectives). With several outcomes (objectives and constrained outcomes, see
            ``Space.outcome_names``) it returns a mapping ``{outcome name: value}`` holding every
            outcome, or a sequence in ``outcome_names`` order.
        optimum: Best achievable value in the objective's direction, if known (regret = distance to
            it). Single objective only.
        noise_std: Standard deviation of Gaussian noise added to every outcome by ``evaluate``.
        description: One line for ``bocli problems``.
        timeout: Seconds an evaluation may take before it counts as failed (None = no limit).
        max_hv: With several objectives, the largest hypervolume reachable against the reference
            point formed by the objectives' thresholds, if known (log hypervolume regret).
    """

    name: str
    space: Space
    fn: Callable[[Mapping[str, Any]], float]
    optimum: float | None = None
    noise_std: float = 0.0
    description: str = ""
    timeout: float | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)
    max_hv: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.noise_std) and self.noise_std >= 0):
            raise ValueError(f"problem '{self.name}': noise_std must be >= 0, got {self.noise_std}")
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"problem '{self.name}': timeout must be > 0, got {self.timeout}")
        if not callable(self.fn):
            raise TypeError(f"problem '{self.name}': fn must be callable, got {self.fn!r}")

    def evaluate_outcomes(
        self, params: Mapping[str, Any], rng: np.random.Generator | None = None
    ) -> dict[str, float]:
        """Evaluate one point -> ``{outcome name: value}`` for every outcome of the space.

        Raises:
            ObjectiveError: The objective raised, timed out, returned a non-finite value, or did not
                return every outcome.
        """
        clean = self.space.validate(params)
        try:
            if self.timeout is not None and not getattr(self.fn, "handles_timeout", False):
                result = call_with_timeout(self.fn, clean, self.timeout)
            else:
                result = self.fn(clean)
        except ObjectiveError:
            raise
        except Exception as e:  # a user objective may raise anything
            raise ObjectiveError(f"objective raised {type(e).__name__}: {e}") from e
        values = outcome_values(result, self.space.outcome_names)
        if self.noise_std > 0:
            rng = rng if rng is not None else np.random.default_rng()
            values = {k: v + float(rng.normal(0.0, self.noise_std)) for k, v in values.items()}
        return values

    def evaluate(self, params: Mapping[str, Any], rng: np.random.Generator | None = None) -> float:
        """Evaluate one point of a single-outcome problem -> its value (``evaluate_outcomes``
        for several); raises ObjectiveError for a failure or a non-finite value."""
        if not self.space.is_single_outcome:
            raise TypeError(f"problem '{self.name}' has several outcomes: use evaluate_outcomes")
        return self.evaluate_outcomes(params, rng)[self.space.objective.name]

    def regret(self, best: float | None) -> float | None:
        """Simple regret of a best-so-far value (>= 0), or None when the optimum is unknown.

        With several objectives ``best`` is the hypervolume so far, and the regret is the log10
        hypervolume regret ``log10(max_hv - hv)`` (None without a known ``max_hv``).
        """
        if best is None or not math.isfinite(best):
            return None
        if self.space.is_multi_objective:
            from bocli.pareto import log_hv_regret

            return None if self.max_hv is None else log_hv_regret(best, self.max_hv)
        if self.optimum is None:
            return None
        return max(0.0, self.space.objective.sign * (self.optimum - best))


def outcome_values(result: Any, names: list[str]) -> dict[str, float]:
    """What an objective returned -> ``{name: finite float}`` for every outcome in ``names``.

    Accepted: a number (one outcome only), a mapping holding every name (more keys are ignored), or
    a sequence of numbers in ``names`` order. Anything else is an ``ObjectiveError`` naming what is
    missing or wrong.
    """
    if isinstance(result, Mapping):
        missing = [n for n in names if n not in result]
        if missing:
            keys = ", ".join(map(str, result)) or "none"
            raise ObjectiveError(
                f"objective returned no {', '.join(repr(m) for m in missing)} (keys: {keys})"
            )
        raw = {n: result[n] for n in names}
    elif isinstance(result, list | tuple | np.ndarray) and not isinstance(result, str):
        items = list(np.asarray(result, dtype=object).reshape(-1))
        if len(items) != len(names):
            raise ObjectiveError(
                f"objective returned {len(items)} values, expected {len(names)} "
                f"({', '.join(names)})"
            )
        raw = dict(zip(names, items, strict=True))
    else:
        if len(names) != 1:
            raise ObjectiveError(
                f"objective returned one value, expected {len(names)} ({', '.join(names)}): "
                "return a mapping {name: value}"
            )
        raw = {names[0]: result}
    out: dict[str, float] = {}
    for name, v in raw.items():
        if isinstance(v, bool):
            raise ObjectiveError(f"objective returned {v!r} for '{name}', not a number")
        try:
            f = float(v)
        except (TypeError, ValueError):
            shown = repr(v)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise ObjectiveError(f"objective returned {shown} for '{name}', not a number") from None
        if not math.isfinite(f):
            what = f" for '{name}'" if len(names) > 1 else ""
            raise ObjectiveError(f"objective returned a non-finite value ({f}){what}")
        out[name] = f
    return out


def describe_exit(code: int) -> str:
    """``exited with status 3`` or ``was killed by SIGSEGV``, from a process's exit code."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def _child(fn: Callable[[Mapping[str, Any]], float], params: dict[str, Any], conn: Any) -> None:
    try:
        result = fn(params)
        if isinstance(result, Mapping):
            result = dict(result)
        conn.send(("ok", result))
    except BaseException as e:  # report everything, including SystemExit, to the parent
        conn.send(("error", f"objective raised {type(e).__name__}: {e}"))
    finally:
        conn.close()


def call_with_timeout(
    fn: Callable[[Mapping[str, Any]], Any], params: dict[str, Any], timeout: float
) -> Any:
    """Run ``fn(params)`` in a fresh (spawned) process and kill it after ``timeout`` seconds.

    A Python call cannot be interrupted safely inside its own process, so objectives with a
    timeout pay one process start per evaluation (about a second). Objectives that enforce their
    own timeout (``fn.handles_timeout``: commands, and user Python functions, which run in a
    persistent process) skip this.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(fn, params, child), daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(timeout):
            raise ObjectiveError(f"objective timed out after {timeout:g} s")
        try:
            status, payload = parent.recv()
        except EOFError:
            proc.join(5)
            code = proc.exitcode
            what = "stopped answering" if code is None else describe_exit(code)
            raise ObjectiveError(f"objective process {what}") from None
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        parent.close()
    if status != "ok":
        raise ObjectiveError(payload)
    return payload
