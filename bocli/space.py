"""Search spaces: parameter types, loading from YAML/JSON, and the unit-cube encoding.

Every model in bocli sees points in the unit cube ``[0, 1]^d`` (one encoded dimension per parameter).
``Space.encode`` maps parameter dicts to that cube and ``Space.decode`` maps back exactly: floats are
clipped to their bounds, ints stay ints, categories stay their labels.

Encoding per type:
- float: ``(v - low) / (high - low)``, or the same on ``log(v)`` when ``log: true``.
- int: as float (optionally log), decoded by rounding to the nearest integer in range.
- ordinal: index of the value among ``values`` divided by ``len(values) - 1``.
- categorical: index of the choice divided by ``len(choices) - 1``; the optimizer treats the
  dimension as categorical (every choice a neighbour of every other), the GP uses a categorical kernel.

This module is pure Python + numpy, so the CLI can validate a space without importing torch.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import unicodedata
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bocli.errors import UserError

__all__ = [
    "RESERVED_NAMES",
    "CategoricalParam",
    "FloatParam",
    "IntParam",
    "Objective",
    "OrdinalParam",
    "OutcomeConstraint",
    "Param",
    "Space",
    "SpaceError",
]

PARAM_TYPES = ("float", "int", "categorical", "ordinal")

# Limits a space must respect so that every step of a run works (refused up front, one line each):
MAX_PARAMETERS = (
    21201  # scipy's Sobol sequence (the initial design) has at most this many dimensions
)
MAX_INT_VALUES = 100_000  # the mixed optimizer rounds to an int's list of values: n x values memory
MAX_CHOICES = 10_000  # botorch's mixed optimizer enumerates a categorical's choices

# The bookkeeping columns of the files bocli writes (study export, ask CSV, a run's trials.csv), beside
# one column per parameter and one per objective: no parameter or objective may take one of these
# names, in any letter case.
INFO_COLUMNS = (  # the export's columns after status: written by bocli, ignored by `tell`
    "best_so_far",
    "regret",
    "proposed_by",
    "fit_seconds",
    "acq_seconds",
    "eval_seconds",
    "error",
    "created_at",
    "completed_at",
    "predicted_mean",
    "predicted_sd",
    "diagnostics",
)
# the export's columns for several outcomes or outcome constraints (after status)
RESULT_COLUMNS = ("feasible", "pareto", "hypervolume")
_RESERVED_ORDER = (
    "trial_id",
    "status",
    *RESULT_COLUMNS,
    "notes",
    "phase",
    "surrogate",
    "acquisition",
    *INFO_COLUMNS,
)
RESERVED_NAMES: frozenset[str] = frozenset(_RESERVED_ORDER)
"""Column names bocli's files use for bookkeeping; compared case-insensitively (``casefold``)."""


class SpaceError(UserError, ValueError):
    """A search-space definition or a parameter value is invalid; the message names the field."""


def _suggest(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _check_keys(where: str, spec: Mapping[str, Any], allowed: Sequence[str]) -> None:
    for key in spec:
        if key not in allowed:
            raise SpaceError(
                f"{where}: unknown key '{key}'{_suggest(str(key), allowed)}; "
                f"allowed: {', '.join(allowed)}"
            )


def _text_problem(text: str) -> str | None:
    """Why ``text`` (a name or a choice) would not survive a CSV file or a spreadsheet, or None.

    Commas, quotes, semicolons and any letter or symbol are fine (the csv module quotes them). Refused:
    the empty string (an empty cell means "missing"), leading or trailing whitespace (readers strip
    cells, with ``str.strip``'s notion of whitespace), control characters (category Cc: line breaks,
    tabs, ``\\x1c``-``\\x1f``, ``\\x85``), line and paragraph separators, the byte-order mark, and lone
    surrogates (not encodable as UTF-8).
    """
    if not text:
        return "is empty (an empty cell means a missing value)"
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Cc":
            return f"contains the control character {ch!r} (CSV files and spreadsheets mangle it)"
        if category in ("Zl", "Zp"):
            kind = "line" if category == "Zl" else "paragraph"
            return f"contains the {kind} separator {ch!r} (CSV files and spreadsheets mangle it)"
        if ch == "\ufeff":
            return f"contains the byte-order mark {ch!r} (readers drop it)"
        if category == "Cs":
            return f"contains the lone surrogate {ch!r} (it cannot be written as UTF-8)"
    if text != text.strip():
        return "has leading or trailing whitespace (CSV readers and spreadsheets strip it)"
    return None


def _check_name(kind: str, name: Any) -> None:
    """Refuse a parameter or objective name that a CSV header could not hold or that is reserved."""
    if not isinstance(name, str):
        raise SpaceError(f"{kind} {name!r}: the name must be a string")
    problem = _text_problem(name)
    if problem:
        raise SpaceError(f"{kind} {name!r}: the name {problem}")
    if name.casefold() in RESERVED_NAMES:
        raise SpaceError(
            f"{kind} '{name}': the name is reserved for a bookkeeping column; "
            f"reserved names (in any letter case): {', '.join(_RESERVED_ORDER)}"
        )


_LINE_BREAK = re.compile(r"\r\n|[\r\n]")
_OTHER_BREAKS = re.compile("[\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def _one_line(text: str) -> str:
    """``text`` as one line: line breaks become spaces, other line-separating characters escapes."""
    text = _LINE_BREAK.sub(" ", text)
    return _OTHER_BREAKS.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _number(where: str, key: str, value: Any) -> float:
    if isinstance(value, str):
        shown = _one_line(repr(value if len(value) <= 40 else value[:37] + "..."))
        try:
            float(value)
        except ValueError:
            raise SpaceError(f"{where}: '{key}' must be a number, got the text {shown}") from None
        raise SpaceError(
            f"{where}: '{key}' must be a number, got the text {shown} (YAML reads a number "
            "without a dot, like 1e5, as text: write 1.0e+5, or leave out the quotes)"
        )
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpaceError(f"{where}: '{key}' must be a number, got {_one_line(repr(value))[:60]}")
    try:
        f = float(value)
    except OverflowError:  # a JSON integer beyond float range
        raise SpaceError(f"{where}: '{key}' is too large ({str(value)[:20]}...)") from None
    if not math.isfinite(f):
        raise SpaceError(f"{where}: '{key}' must be finite, got {value!r}")
    return f


@dataclass(frozen=True)
class FloatParam:
    """A real-valued parameter in ``[low, high]``, optionally on a log scale."""

    name: str
    low: float
    high: float
    log: bool = False
    type: str = field(default="float", init=False)

    def __post_init__(self) -> None:
        _validate_range(self)

    def encode(self, value: Any) -> float:
        v = self.validate(value)
        if self.log:
            return (math.log(v) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (v - self.low) / (self.high - self.low)

    def decode(self, u: float) -> float:
        u = min(max(float(u), 0.0), 1.0)
        if self.log:
            v = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            v = self.low + u * (self.high - self.low)
        return min(max(v, self.low), self.high)

    def validate(self, value: Any) -> float:
        v = _coerce_number(self.name, value)
        if not (self.low <= v <= self.high):
            raise SpaceError(
                f"parameter '{self.name}': {value!r} is outside [{self.low:g}, {self.high:g}]"
            )
        return v

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "type": "float", "low": self.low, "high": self.high}
        if self.log:
            d["log"] = True
        return d


@dataclass(frozen=True)
class IntParam:
    """An integer parameter in ``[low, high]`` (inclusive), optionally on a log scale."""

    name: str
    low: int
    high: int
    log: bool = False
    type: str = field(default="int", init=False)

    def __post_init__(self) -> None:
        _validate_range(self)

    def _fwd(self, v: float) -> float:
        if self.log:
            return (math.log(v) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (v - self.low) / (self.high - self.low)

    def encode(self, value: Any) -> float:
        return self._fwd(self.validate(value))

    def decode(self, u: float) -> int:
        u = min(max(float(u), 0.0), 1.0)
        if self.log:
            raw = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
            # round in encoded space so the nearest integer is the nearest on the log axis
            lo, hi = math.floor(raw), math.ceil(raw)
            v = (
                lo
                if abs(self._fwd(max(lo, self.low)) - u) <= abs(self._fwd(min(hi, self.high)) - u)
                else hi
            )
        else:
            v = round(self.low + u * (self.high - self.low))
        return int(min(max(v, self.low), self.high))

    def validate(self, value: Any) -> int:
        v = _coerce_number(self.name, value)
        if v != round(v):
            raise SpaceError(f"parameter '{self.name}': {value!r} is not an integer")
        if not (self.low <= v <= self.high):
            raise SpaceError(
                f"parameter '{self.name}': {value!r} is outside [{self.low}, {self.high}]"
            )
        return round(v)

    def grid(self) -> list[float]:
        """Encoded values of every integer in range (ascending, endpoints exactly 0 and 1)."""
        return [self._fwd(v) for v in range(self.low, self.high + 1)]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "type": "int", "low": self.low, "high": self.high}
        if self.log:
            d["log"] = True
        return d


@dataclass(frozen=True)
class CategoricalParam:
    """An unordered choice among labels (strings, numbers or booleans)."""

    name: str
    choices: tuple[Any, ...]
    type: str = field(default="categorical", init=False)

    def __post_init__(self) -> None:
        _check_name("parameter", self.name)
        _validate_choices(
            self.name, "values" if self.type == "ordinal" else "choices", self.choices
        )

    def _index(self, value: Any) -> int:
        # exact first (True is not 1), then a cell's text, then plain equality (1 for 1.0)
        for i, c in enumerate(self.choices):
            if value == c and isinstance(value, bool) == isinstance(c, bool):
                return i
        if isinstance(value, str):
            text = value.strip()
            for i, c in enumerate(self.choices):
                if str(c) == text:
                    return i
        for i, c in enumerate(self.choices):
            if value == c:
                return i
        raise SpaceError(
            f"parameter '{self.name}': unknown category {value!r}"
            f"{_suggest(str(value), [str(c) for c in self.choices])}; "
            f"choices: {', '.join(map(str, self.choices))}"
        )

    def encode(self, value: Any) -> float:
        n = len(self.choices)
        return self._index(value) / (n - 1) if n > 1 else 0.0

    def decode(self, u: float) -> Any:
        n = len(self.choices)
        i = round(min(max(float(u), 0.0), 1.0) * (n - 1))
        return self.choices[i]

    def validate(self, value: Any) -> Any:
        return self.choices[self._index(value)]

    def grid(self) -> list[float]:
        n = len(self.choices)
        return [i / (n - 1) for i in range(n)] if n > 1 else [0.0]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": "categorical", "choices": list(self.choices)}


@dataclass(frozen=True)
class OrdinalParam(CategoricalParam):
    """An ordered choice (e.g. ``[1, 2, 4, 8]`` or ``[low, mid, high]``): neighbours are adjacent."""

    type: str = field(default="ordinal", init=False)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": "ordinal", "values": list(self.choices)}


Param = FloatParam | IntParam | CategoricalParam | OrdinalParam


def _coerce_number(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise SpaceError(f"parameter '{name}': expected a number, got {value!r}")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise SpaceError(f"parameter '{name}': {value!r} is not a number") from None
    if not isinstance(value, int | float | np.integer | np.floating):
        raise SpaceError(f"parameter '{name}': expected a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise SpaceError(f"parameter '{name}': {value!r} is not a finite number")
    return v


def _validate_range(p: FloatParam | IntParam) -> None:
    _check_name("parameter", p.name)
    where = f"parameter '{p.name}'"
    if not p.low < p.high:
        raise SpaceError(f"{where}: 'low' ({p.low}) must be less than 'high' ({p.high})")
    if p.log and p.low <= 0:
        raise SpaceError(f"{where}: a log-scaled parameter needs 'low' > 0, got {p.low}")
    if not math.isfinite(float(p.high) - float(p.low)):
        raise SpaceError(
            f"{where}: the range from {p.low:g} to {p.high:g} is too wide to compute with "
            "('high' - 'low' overflows); narrow it, or use log: true for a positive range"
        )
    if isinstance(p, IntParam) and p.high - p.low + 1 > MAX_INT_VALUES:
        raise SpaceError(
            f"{where}: an int parameter may hold at most {MAX_INT_VALUES} values, this one holds "
            f"{p.high - p.low + 1:.3g}; use type float (and round in your objective) or a "
            "narrower range"
        )


def _choice_cell(choice: str | bool | int | float) -> str:
    """The CSV cell bocli writes for a choice (as ``bocli.csvio.format_cell``)."""
    if isinstance(choice, bool):
        return "true" if choice else "false"
    if isinstance(choice, float):
        return str(int(choice)) if choice.is_integer() and abs(choice) < 1e15 else repr(choice)
    return str(choice)


def _validate_choices(name: str, key: str, choices: Sequence[Any]) -> None:
    if len(choices) < 1:
        raise SpaceError(f"parameter '{name}': '{key}' must list at least one value")
    if len(choices) > MAX_CHOICES:
        raise SpaceError(
            f"parameter '{name}': '{key}' may list at most {MAX_CHOICES} values, got {len(choices)}"
        )
    for c in choices:
        if isinstance(c, str):
            problem = _text_problem(c)
            if problem:
                raise SpaceError(f"parameter '{name}': {key[:-1]} {c!r} {problem}")
        elif not isinstance(c, bool | int | float):
            raise SpaceError(
                f"parameter '{name}': {key[:-1]} {_one_line(repr(c))} must be a string, a number "
                "or true/false"
            )
        elif not math.isfinite(c):
            raise SpaceError(f"parameter '{name}': {key[:-1]} {c!r} must be a finite number")
    if len({str(c) for c in choices}) != len(choices):
        raise SpaceError(f"parameter '{name}': '{key}' has duplicate values")
    # a CSV cell must name one choice: 1 and 1.0 (or 1.0 and "1", true and "true") are one cell
    seen: dict[str, Any] = {}
    for c in choices:
        cell = _choice_cell(c)
        if cell in seen:
            raise SpaceError(
                f"parameter '{name}': {key[:-1]}s {seen[cell]!r} and {c!r} are both written as "
                f"the CSV cell '{cell}'"
            )
        seen[cell] = c


@dataclass(frozen=True)
class Objective:
    """What is measured and whether bigger is better.

    Attributes:
        name: The outcome's name (its CSV column).
        direction: ``minimize`` or ``maximize``.
        threshold: With several objectives, the worst value still worth having (Ax's objective
            threshold); the thresholds form the hypervolume's reference point. None: inferred from
            the data at the first model-based proposal.
    """

    name: str = "objective"
    direction: str = "minimize"
    threshold: float | None = None

    def __post_init__(self) -> None:
        _check_name("objective", self.name)
        if self.direction not in ("minimize", "maximize"):
            raise SpaceError(
                f"objective '{self.name}': 'direction' must be 'minimize' or 'maximize', got "
                f"{self.direction!r}{_suggest(str(self.direction), ('minimize', 'maximize'))}"
            )
        if self.threshold is not None:
            _number(f"objective '{self.name}'", "threshold", self.threshold)

    @property
    def sign(self) -> float:
        """+1 when maximizing, -1 when minimizing: models always maximize ``sign * value``."""
        return 1.0 if self.direction == "maximize" else -1.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "direction": self.direction}
        if self.threshold is not None:
            out["threshold"] = self.threshold
        return out


@dataclass(frozen=True)
class OutcomeConstraint:
    """A bound on a measured outcome: feasible iff ``min <= value <= max`` (either may be absent).

    The outcome is an objective or an outcome measured only for this constraint (its own column).
    """

    name: str
    min: float | None = None
    max: float | None = None

    def __post_init__(self) -> None:
        _check_name("outcome constraint", self.name)
        where = f"outcome_constraints ({self.name})"
        if self.min is None and self.max is None:
            raise SpaceError(f"{where}: give 'min' or 'max' (or both)")
        for key in ("min", "max"):
            if getattr(self, key) is not None:
                _number(where, key, getattr(self, key))
        if self.min is not None and self.max is not None and self.min > self.max:
            raise SpaceError(f"{where}: 'min' ({self.min:g}) is above 'max' ({self.max:g})")

    def bounds(self) -> list[tuple[str, float]]:
        """``[("min", a), ("max", b)]``: one entry per bound given."""
        return [
            (k, float(getattr(self, k))) for k in ("min", "max") if getattr(self, k) is not None
        ]

    def holds(self, value: float) -> bool:
        """Whether a measured value satisfies the constraint."""
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def describe(self) -> str:
        """``purity >= 0.95``, ``cost <= 20`` or ``0 <= ph <= 14``."""
        if self.min is not None and self.max is not None:
            return f"{self.min:g} <= {self.name} <= {self.max:g}"
        if self.min is not None:
            return f"{self.name} >= {self.min:g}"
        return f"{self.name} <= {self.max:g}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        for key, value in self.bounds():
            out[key] = value
        return out


def _objective_from_dict(where: str, spec: Any, with_threshold: bool) -> Objective:
    if not isinstance(spec, Mapping):
        raise SpaceError(f"{where}: expected a mapping with 'name' and 'direction'")
    keys = ("name", "direction", "threshold") if with_threshold else ("name", "direction")
    _check_keys(where, spec, keys)
    name = spec.get("name", "objective")
    if not isinstance(name, str) or not name:
        raise SpaceError(f"{where}: 'name' must be a non-empty string")
    threshold = spec.get("threshold")
    if threshold is not None:
        threshold = _number(f"{where} ({name})", "threshold", threshold)
    return Objective(name, spec.get("direction", "minimize"), threshold)


def _constraint_from_dict(i: int, spec: Any) -> OutcomeConstraint:
    where = f"outcome_constraints[{i}]"
    if not isinstance(spec, Mapping):
        raise SpaceError(f"{where}: expected a mapping like {{name: purity, min: 0.95}}")
    _check_keys(where, spec, ("name", "min", "max"))
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise SpaceError(f"{where}: 'name' is required and must be a non-empty string")
    where = f"{where} ({name})"
    bounds = {}
    for key in ("min", "max"):
        if spec.get(key) is not None:
            bounds[key] = _number(where, key, spec[key])
    if not bounds:
        raise SpaceError(f"{where}: give 'min' or 'max' (or both)")
    return OutcomeConstraint(name, bounds.get("min"), bounds.get("max"))


_PARAM_KEYS = {
    "float": ("name", "type", "low", "high", "log"),
    "int": ("name", "type", "low", "high", "log"),
    "categorical": ("name", "type", "choices"),
    "ordinal": ("name", "type", "values"),
}


def _param_from_dict(i: int, spec: Any) -> Param:
    where = f"parameters[{i}]"
    if not isinstance(spec, Mapping):
        raise SpaceError(f"{where}: expected a mapping with 'name' and 'type', got {spec!r}")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise SpaceError(f"{where}: 'name' is required and must be a non-empty string")
    problem = _text_problem(name)
    if problem:  # before the name is shown as it is
        raise SpaceError(f"{where}: the name {name!r} {problem}")
    where = f"{where} ({name})"
    ptype = spec.get("type")
    if ptype not in PARAM_TYPES:
        raise SpaceError(
            f"{where}: 'type' must be one of {', '.join(PARAM_TYPES)}, got {ptype!r}"
            f"{_suggest(str(ptype), PARAM_TYPES)}"
        )
    _check_keys(where, spec, _PARAM_KEYS[ptype])
    try:
        _check_name("parameter", name)  # a reserved name is refused before its settings
        if ptype in ("float", "int"):
            for key in ("low", "high"):
                if key not in spec:
                    raise SpaceError(f"{where}: '{key}' is required for type {ptype}")
            low, high = _number(where, "low", spec["low"]), _number(where, "high", spec["high"])
            log = spec.get("log", False)
            if not isinstance(log, bool):
                raise SpaceError(f"{where}: 'log' must be true or false, got {log!r}")
            if ptype == "int":
                if low != int(low) or high != int(high):
                    raise SpaceError(f"{where}: 'low' and 'high' must be integers for type int")
                return IntParam(name, int(low), int(high), log)
            return FloatParam(name, low, high, log)
        key = "choices" if ptype == "categorical" else "values"
        values = spec.get(key)
        if not isinstance(values, list):
            raise SpaceError(f"{where}: '{key}' is required and must be a list")
        cls = CategoricalParam if ptype == "categorical" else OrdinalParam
        return cls(name, tuple(values))
    except SpaceError as e:
        msg = str(e).removeprefix(f"parameter '{name}': ")
        raise SpaceError(msg if msg.startswith("parameters[") else f"{where}: {msg}") from None


def _check_metadata(space: Space) -> None:
    """Refuse a ``metadata`` entry that could not be a column of its own: not a string, not
    CSV-safe, reserved (``notes`` is built in), or equal to a parameter, an outcome or another
    metadata column in any letter case (a told CSV maps its header back to one column)."""
    taken = {n.casefold(): "a parameter" for n in space.names}
    taken.update({n.casefold(): "an outcome" for n in space.outcome_names})
    for i, name in enumerate(space.metadata):
        where = f"metadata[{i}]"
        if isinstance(name, str) and name.casefold() == "notes":
            raise SpaceError(
                f"{where} ({name}): 'notes' is built in (every study accepts it); remove it"
            )
        try:
            _check_name("metadata column", name)
        except SpaceError as e:
            raise SpaceError(f"{where}: {e}") from None
        kind = taken.get(name.casefold())
        if kind == "metadata":
            raise SpaceError(f"{where} ({name}): listed twice (names are compared in any case)")
        if kind is not None:
            raise SpaceError(f"{where} ({name}): the name is already used by {kind}")
        taken[name.casefold()] = "metadata"


@dataclass(frozen=True)
class Space:
    """An ordered collection of parameters plus what is measured; encodes to the unit cube.

    Attributes:
        parameters: The parameters, one encoded dimension each, in this order.
        objective: The (first) objective's name and direction. With ``objectives`` given, it is
            ``objectives[0]``.
        objectives: Every objective (one for a single-objective space, the default).
        outcome_constraints: Bounds on measured outcomes (objectives or outcomes of their own).
        metadata: Names of free-text columns a told CSV may carry per trial (besides the
            built-in ``notes``): stored as text, never modeled.
        parameter_constraints: Linear inequalities over float/int parameters
            (``bocli.constraints.LinearConstraint``; strings are parsed), as ``"x + y <= 1"``.
    """

    parameters: tuple[Param, ...]
    objective: Objective = field(default_factory=Objective)
    objectives: tuple[Objective, ...] = ()
    outcome_constraints: tuple[OutcomeConstraint, ...] = ()
    metadata: tuple[str, ...] = ()
    parameter_constraints: tuple[Any, ...] = ()  # LinearConstraint (or its text, parsed here)

    def __post_init__(self) -> None:
        if not self.parameters:
            raise SpaceError("space: 'parameters' must list at least one parameter")
        if len(self.parameters) > MAX_PARAMETERS:
            raise SpaceError(
                f"space: at most {MAX_PARAMETERS} parameters (the Sobol design's limit), got "
                f"{len(self.parameters)}"
            )
        if self.objectives:
            object.__setattr__(self, "objectives", tuple(self.objectives))
            object.__setattr__(self, "objective", self.objectives[0])
        else:
            object.__setattr__(self, "objectives", (self.objective,))
        object.__setattr__(self, "outcome_constraints", tuple(self.outcome_constraints))
        names = [p.name for p in self.parameters]
        for n in names:
            if names.count(n) > 1:
                raise SpaceError(f"space: parameter name '{n}' is used more than once")
        folded = {n.casefold() for n in names}
        seen: set[str] = set()
        for o in self.objectives:
            if o.name in names or o.name.casefold() in folded:
                raise SpaceError(f"space: objective name '{o.name}' clashes with a parameter name")
            if o.name.casefold() in seen:
                raise SpaceError(f"space: objective name '{o.name}' is used more than once")
            seen.add(o.name.casefold())
        if len(self.objectives) == 1 and self.objectives[0].threshold is not None:
            raise SpaceError(
                f"objective '{self.objective.name}': 'threshold' needs two or more objectives "
                "(it forms the hypervolume's reference point); bound a single objective with "
                "outcome_constraints"
            )
        seen_c: set[str] = set()
        for c in self.outcome_constraints:
            if c.name in names or c.name.casefold() in folded:
                raise SpaceError(
                    f"outcome_constraints ({c.name}): the name clashes with a parameter name"
                )
            if c.name.casefold() in seen_c:
                raise SpaceError(
                    f"outcome_constraints ({c.name}): the outcome is constrained twice; give "
                    "'min' and 'max' in one entry"
                )
            seen_c.add(c.name.casefold())
            clash = [o.name for o in self.objectives if o.name.casefold() == c.name.casefold()]
            if clash and clash[0] != c.name:
                raise SpaceError(
                    f"outcome_constraints ({c.name}): differs from objective '{clash[0]}' only in "
                    "letter case; use one spelling"
                )
        object.__setattr__(self, "metadata", tuple(self.metadata))
        _check_metadata(self)
        if self.parameter_constraints:
            from bocli.constraints import check_feasible, parse_constraint

            object.__setattr__(
                self,
                "parameter_constraints",
                tuple(
                    parse_constraint(getattr(c, "text", c), self, f"parameter_constraints[{i}]")
                    for i, c in enumerate(self.parameter_constraints)
                ),
            )
            check_feasible(self)

    # ----- outcomes -----------------------------------------------------------------------
    @property
    def outcome_names(self) -> list[str]:
        """Every measured outcome, one CSV column each: the objectives, then constrained outcomes
        that are not objectives (in the order the space lists them)."""
        out = [o.name for o in self.objectives]
        out += [c.name for c in self.outcome_constraints if c.name not in out]
        return out

    @property
    def is_multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def has_outcome_constraints(self) -> bool:
        return bool(self.outcome_constraints)

    @property
    def is_single_outcome(self) -> bool:
        """One objective and no constraint: a trial has one value (the classic case)."""
        return len(self.objectives) == 1 and not self.outcome_constraints

    def outcome_signs(self) -> np.ndarray:
        """Per outcome (``outcome_names`` order): the objective's sign, 1 for constraint-only
        outcomes. ``signs * values`` is what the models maximize."""
        signs = {o.name: o.sign for o in self.objectives}
        return np.array([signs.get(n, 1.0) for n in self.outcome_names], dtype=np.float64)

    def feasible(self, values: np.ndarray) -> np.ndarray:
        """Whether each row of ``values`` (``n x k``, ``outcome_names`` order; NaN = not measured)
        satisfies every outcome constraint -> ``n`` booleans (NaN rows are infeasible)."""
        values = np.asarray(values, dtype=np.float64).reshape(-1, len(self.outcome_names))
        ok = np.all(np.isfinite(values), axis=1)
        for c in self.outcome_constraints:
            col = values[:, self.outcome_names.index(c.name)]
            with np.errstate(invalid="ignore"):
                if c.min is not None:
                    ok &= col >= c.min
                if c.max is not None:
                    ok &= col <= c.max
        return ok

    def describe_outcomes(self) -> str:
        """``minimize 'cost'`` or ``maximize 'yield' (threshold 0.5), minimize 'cost'``, plus
        ``; subject to purity >= 0.95``."""
        objs = ", ".join(
            f"{o.direction} '{o.name}'"
            + (f" (threshold {o.threshold:g})" if o.threshold is not None else "")
            for o in self.objectives
        )
        if self.outcome_constraints:
            objs += "; subject to " + ", ".join(c.describe() for c in self.outcome_constraints)
        return objs

    def thresholds(self) -> list[float | None]:
        """Each objective's threshold (None where not given)."""
        return [o.threshold for o in self.objectives]

    # ----- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, spec: Any) -> Space:
        """Build a space from the YAML/JSON structure documented in DESIGN.md."""
        if not isinstance(spec, Mapping):
            raise SpaceError("space: expected a mapping with 'parameters' (and 'objective')")
        _check_keys(
            "space",
            spec,
            (
                "parameters",
                "objective",
                "objectives",
                "outcome_constraints",
                "metadata",
                "parameter_constraints",
            ),
        )
        params = spec.get("parameters")
        if not isinstance(params, list):
            raise SpaceError("space: 'parameters' is required and must be a list")
        parsed = tuple(_param_from_dict(i, p) for i, p in enumerate(params))
        if "objective" in spec and "objectives" in spec:
            raise SpaceError("space: give 'objective' (one) or 'objectives' (a list), not both")
        if "objectives" in spec:
            objs = spec["objectives"]
            if not isinstance(objs, list) or not objs:
                raise SpaceError(
                    "objectives: expected a non-empty list of {name, direction, threshold}"
                )
            objectives = tuple(
                _objective_from_dict(f"objectives[{i}]", o, True) for i, o in enumerate(objs)
            )
        else:
            objectives = (_objective_from_dict("objective", spec.get("objective") or {}, False),)
        cons = spec.get("outcome_constraints") or []
        if not isinstance(cons, list):
            raise SpaceError("outcome_constraints: expected a list of {name, min} or {name, max}")
        constraints = tuple(_constraint_from_dict(i, c) for i, c in enumerate(cons))
        metadata = spec.get("metadata") or []
        if not isinstance(metadata, list):
            raise SpaceError("metadata: expected a list of column names, e.g. [operator, batch]")
        linear = spec.get("parameter_constraints") or []
        if not isinstance(linear, list):
            raise SpaceError(
                "parameter_constraints: expected a list of strings, e.g. ['water + ethanol <= 1']"
            )
        return cls(
            parsed,
            objectives[0],
            objectives,
            constraints,
            metadata=tuple(metadata),
            parameter_constraints=tuple(linear),
        )

    @classmethod
    def from_file(cls, path: str | Path) -> Space:
        """Load a YAML (``.yaml``/``.yml``) or JSON space file; errors name the file and field."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise SpaceError(f"{path}: file not found") from None
        except (OSError, UnicodeDecodeError) as e:
            raise SpaceError(f"{path}: cannot read ({e})") from None
        try:
            if path.suffix.lower() == ".json":
                spec = json.loads(text)
            else:
                import yaml

                spec = yaml.safe_load(text)
        except Exception as e:  # yaml.YAMLError / json.JSONDecodeError carry line numbers
            first = _LINE_BREAK.split(str(e).strip())
            raise SpaceError(
                f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: "
                f"{_one_line(' '.join(x.strip() for x in first))}"
            ) from None
        try:
            return cls.from_dict(spec)
        except SpaceError as e:
            raise SpaceError(f"{path}: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"parameters": [p.to_dict() for p in self.parameters]}
        if len(self.objectives) == 1:  # the classic form, as studies before several objectives
            out["objective"] = self.objective.to_dict()
        else:
            out["objectives"] = [o.to_dict() for o in self.objectives]
        if self.outcome_constraints:
            out["outcome_constraints"] = [c.to_dict() for c in self.outcome_constraints]
        if self.metadata:  # absent when empty: older studies' stored spaces read the same
            out["metadata"] = list(self.metadata)
        if self.parameter_constraints:  # absent when empty, as metadata
            out["parameter_constraints"] = [c.text for c in self.parameter_constraints]
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Space:
        return cls.from_dict(json.loads(text))

    # ----- structure ----------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Number of encoded dimensions (one per parameter)."""
        return len(self.parameters)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def cat_dims(self) -> dict[int, list[float]]:
        """Encoded dimension -> its allowed encoded values, for unordered categoricals."""
        return {
            i: p.grid()
            for i, p in enumerate(self.parameters)
            if type(p) is CategoricalParam and len(p.choices) > 1
        }

    def discrete_dims(self) -> dict[int, list[float]]:
        """Encoded dimension -> allowed encoded values, for ints and ordinals (ascending)."""
        return {
            i: p.grid()
            for i, p in enumerate(self.parameters)
            if isinstance(p, IntParam | OrdinalParam) and len(p.grid()) > 1
        }

    def fixed_dims(self) -> dict[int, float]:
        """Dimensions with a single allowed value (one-choice categoricals)."""
        return {
            i: 0.0
            for i, p in enumerate(self.parameters)
            if isinstance(p, CategoricalParam) and len(p.choices) == 1
        }

    def parameter_constraint_violations(self, params: Mapping[str, Any]) -> list[str]:
        """The parameter constraints ``params`` (user units) violates, one line each
        (``water + ethanol <= 1 is violated (water=0.7, ethanol=0.6)``); tolerance 1e-9 relative,
        plus the rounding of stored floats (7 significant digits of the range)."""
        if not self.parameter_constraints:
            return []
        from bocli.constraints import violations

        return violations(self, params)

    def describe_parameter_constraints(self) -> str:
        """The constraints as written, ``; `` between them (empty without any)."""
        return "; ".join(c.text for c in self.parameter_constraints)

    @property
    def is_continuous(self) -> bool:
        return not (self.cat_dims() or self.discrete_dims())

    # ----- encode / decode ----------------------------------------------------------------
    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Check a parameter dict (all names present, values in range); return it normalized."""
        missing = [n for n in self.names if n not in params]
        if missing:
            raise SpaceError(f"missing parameter(s): {', '.join(missing)}")
        extra = [k for k in params if k not in self.names]
        if extra:
            raise SpaceError(f"unknown parameter '{extra[0]}'{_suggest(extra[0], self.names)}")
        return {p.name: p.validate(params[p.name]) for p in self.parameters}

    def encode(self, points: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Map parameter dicts to the unit cube.

        Returns:
            ``n x d`` float64 array in ``[0, 1]``.
        """
        out = np.empty((len(points), self.dim), dtype=np.float64)
        for r, params in enumerate(points):
            for c, p in enumerate(self.parameters):
                if p.name not in params:
                    raise SpaceError(f"missing parameter '{p.name}'")
                out[r, c] = p.encode(params[p.name])
        return out

    def decode(self, X: np.ndarray | Sequence[Sequence[float]]) -> list[dict[str, Any]]:
        """Map unit-cube points (``n x d``) back to parameter dicts; values snap to valid ones."""
        arr = np.asarray(X, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise ValueError(f"expected an n x {self.dim} array, got shape {arr.shape}")
        return [{p.name: p.decode(row[c]) for c, p in enumerate(self.parameters)} for row in arr]

    def round_trip(self, X: np.ndarray) -> np.ndarray:
        """Snap unit-cube points to the nearest valid encoded points (``n x d`` -> ``n x d``)."""
        return self.encode(self.decode(X))

    def sobol(self, n: int, seed: int, skip: int = 0) -> np.ndarray:
        """The first ``n`` points (after ``skip``) of a scrambled Sobol sequence, snapped to valid points.

        Returns:
            ``n x d`` float64 array.
        """
        from scipy.stats import qmc

        if n == 0:
            return np.empty((0, self.dim))
        engine = qmc.Sobol(d=self.dim, scramble=True, seed=seed)
        if skip:
            engine.fast_forward(skip)
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore"
            )  # "balance properties need n = 2^k": we continue a sequence
            return self.round_trip(engine.random(n))
