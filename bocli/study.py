"""Studies: the library behind ``bocli init / ask / tell / status / best / export``.

A study is a SQLite file (``bocli.storage``); CSV files are only the exchange format (``bocli.csvio``).

Semantics:

- ``ask`` proposes through ``bocli.engine.suggest`` (the one data path) with the completed trials as
  data, the pending *and failed* trials as pending points (so nothing issued is proposed again, and a
  point that failed is not retried), and the number of trials ever issued (so the Sobol design
  continues and never repeats). Abandoned trials free their slot. No lock is held while the model fits;
  the new trials are inserted in one transaction that first checks that no trial was added meanwhile,
  and otherwise proposes again with those trials pending. Two asks at once therefore get different
  trials.
- ``tell`` is all-or-nothing and idempotent: every row is validated and matched against the study
  inside one write transaction, and any problem leaves the study untouched. Telling a file twice
  changes nothing; a different value for a complete (or failed) trial is an error unless
  ``overwrite``, and the replaced value stays in the study's change log. Rows without a ``trial_id``
  are results obtained outside bocli; they are added once (a row equal to a stored result is not
  added again).
- Float parameters are issued rounded to about 7 significant digits of their range (a spreadsheet
  shows and saves them exactly); the stored point is the rounded one.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bocli.csvio import (
    INFO_COLUMNS,
    CsvError,
    CsvRow,
    CsvTable,
    read_results,
    text_columns,
    to_csv_text,
    write_csv,
)
from bocli.engine import check_models as validate_models
from bocli.engine import default_n_init
from bocli.errors import UserError
from bocli.space import FloatParam, Objective, Space
from bocli.storage import (
    NewTrial,
    StaleSnapshotError,
    StorageError,
    StudySettings,
    StudyStorage,
    TrialRecord,
    TrialUpdate,
)

__all__ = [
    "AskResult",
    "TellResult",
    "ask",
    "best_trial",
    "export_csv",
    "export_rows",
    "init_study",
    "study_status",
    "tell_file",
    "tell_value",
]

MAX_ASK_ATTEMPTS = 50
FLOAT_DIGITS = 7  # significant digits of a float parameter's range kept when issuing it
PARAM_TOLERANCE = 1e-6  # told vs issued parameter, in unit-cube units


# ----- init -----------------------------------------------------------------------------------
def init_study(
    path: str | Path,
    *,
    space: Space | None = None,
    problem: str | None = None,
    direction: str | None = None,
    surrogate: str = "gp",
    acquisition: str = "ei",
    surrogate_options: dict[str, Any] | None = None,
    acquisition_options: dict[str, Any] | None = None,
    seed: int = 0,
    n_init: int | None = None,
    check_models: bool = True,
) -> StudySettings:
    """Create a study from a space or a registered problem.

    Args:
        path: The study file to create (must not exist).
        space: The search space (with its objective); or give ``problem``.
        problem: A registered problem name; its space (and, for ``bocli best``, optimum) is used.
        direction: ``minimize`` / ``maximize`` to override the space's objective direction.
        surrogate, acquisition: Defaults for ``ask`` (checked to work together).
        seed: Seed of the Sobol design and of every proposal.
        n_init: Sobol design size (default ``max(4, 2 d)``, at most 20).
        check_models: Verify the surrogate/acquisition pair and options (imports torch).
    """
    if (space is None) == (problem is None):
        raise UserError("give exactly one of --space FILE or --problem NAME")
    if problem is not None:
        from problems import get_problem

        space = get_problem(problem).space
    assert space is not None
    if direction is not None:
        space = Space(
            space.parameters,
            Objective(space.objective.name, direction),
            parameter_constraints=space.parameter_constraints,
        )
    if n_init is not None and n_init < 0:
        raise UserError(f"--init must be >= 0, got {n_init}")
    surrogate_options = dict(surrogate_options or {})
    acquisition_options = dict(acquisition_options or {})
    if check_models:  # fail now, not at the first ask (options, and the space's fit to the model)
        validate_models(surrogate, acquisition, surrogate_options, acquisition_options, space)
    settings = StudySettings(
        space=space,
        problem=problem,
        surrogate=surrogate,
        acquisition=acquisition,
        surrogate_options=surrogate_options,
        acquisition_options=acquisition_options,
        seed=int(seed),
        n_init=default_n_init(space) if n_init is None else int(n_init),
    )
    with StudyStorage.create(path, settings) as st:
        return st.settings


# ----- ask ------------------------------------------------------------------------------------
@dataclass
class AskResult:
    """Trials issued by one ``ask`` and how they were proposed."""

    trials: list[TrialRecord]
    info: dict[str, Any] = field(default_factory=dict)
    attempts: int = 1


def ask(
    path: str | Path,
    q: int = 1,
    *,
    surrogate: str | None = None,
    acquisition: str | None = None,
    surrogate_options: dict[str, Any] | None = None,
    acquisition_options: dict[str, Any] | None = None,
    device: str = "cpu",
    suggest_fn: Callable[..., Any] | None = None,
    fixed: dict[str, Any] | None = None,
) -> AskResult:
    """Propose ``q`` new trials and store them as pending.

    Options left as None take the study's defaults (the study's surrogate options apply only when the
    surrogate is the study's). ``suggest_fn`` replaces ``bocli.engine.suggest`` (tests only).
    ``fixed``: parameter values (name -> value, ``--fix``) every new trial takes; checked against
    the space and its parameter constraints before anything is stored.
    """
    if q < 1:
        raise UserError(f"-n must be at least 1, got {q}")
    if suggest_fn is None:
        from bocli.engine import check_device

        check_device(device)
    with StudyStorage.open(path) as st:
        s = st.settings
        sur = surrogate or s.surrogate
        acq = acquisition or s.acquisition
        if surrogate_options is None:
            surrogate_options = s.surrogate_options if sur == s.surrogate else {}
        if acquisition_options is None:
            acquisition_options = s.acquisition_options if acq == s.acquisition else {}
        # a bad pair or option fails now, also while the Sobol design makes no use of the model
        validate_models(sur, acq, surrogate_options, acquisition_options, s.space)
        if fixed:
            from bocli.constraints import check_fixed

            fixed = check_fixed(s.space, fixed)
        st.check_writable()
        return ask_open(
            st,
            q,
            surrogate=sur,
            acquisition=acq,
            surrogate_options=surrogate_options,
            acquisition_options=acquisition_options,
            device=device,
            suggest_fn=suggest_fn,
            fixed=fixed,
        )


def ask_open(
    st: StudyStorage,
    q: int,
    *,
    surrogate: str,
    acquisition: str,
    surrogate_options: dict[str, Any],
    acquisition_options: dict[str, Any],
    device: str = "cpu",
    runner: str | None = None,
    on_suggest: Callable[[Any, np.ndarray, np.ndarray], None] | None = None,
    suggest_fn: Callable[..., Any] | None = None,
    fixed: dict[str, Any] | None = None,
) -> AskResult:
    """The ask step on an open study (``ask`` and ``bocli run`` share it; options already checked).

    ``runner`` marks the new trials as evaluated by that run (``attempts`` = 1: the run starts
    evaluating them at once). ``on_suggest(suggestion, X, y)`` sees each model-based proposal with
    the data it was made from (compare's calibration measurements). ``fixed``: parameter values
    every new trial takes (``engine.suggest``'s ``fixed``).
    """
    if suggest_fn is None:
        from bocli.engine import suggest as suggest_fn
    s = st.settings
    space = s.space
    sur, acq = surrogate, acquisition
    for attempt in range(1, MAX_ASK_ATTEMPTS + 1):
        snap = st.snapshot()
        X, y, pending = observations(space, snap.trials, st.encoded)
        ref = stored_reference_point(st)
        extra = {"ref_point": ref[0]} if space.is_multi_objective and ref is not None else {}
        if fixed:  # only when given: a test's suggest_fn need not know the keyword
            extra["fixed"] = fixed
        sug = suggest_fn(
            space,
            X,
            y,
            q=q,
            pending=pending,
            surrogate=sur,
            acquisition=acq,
            surrogate_options=surrogate_options,
            acquisition_options=acquisition_options,
            seed=s.seed,
            n_init=s.n_init,
            n_issued=snap.n_trials,
            device=device,
            **extra,
        )
        model = sug.info.get("phase") == "model"
        if model and on_suggest is not None:
            on_suggest(sug, X, y)
        preds = sug.info.get("predictions") or [{}] * len(sug.params)
        several = not space.is_single_outcome
        per_point = max(len(sug.params), 1)  # the proposal's cost, shared by its points
        new = [
            NewTrial(
                params=tidy_params(space, p),
                phase="model" if model else "init",
                surrogate=sur if model else None,
                acquisition=acq if model else None,
                predicted_mean=None if several else pred.get("mean"),
                predicted_sd=None if several else pred.get("sd"),
                predictions=pred if several and pred else None,
                diagnostics=sug.info.get("diagnostics") or None,
                fit_seconds=float(sug.info.get("fit_seconds", 0.0)) / per_point,
                acq_seconds=float(sug.info.get("acq_seconds", 0.0)) / per_point,
                runner=runner,
                attempts=1 if runner is not None else 0,
            )
            for p, pred in zip(sug.params, preds, strict=True)
        ]
        try:
            trials = st.reserve(new, expected_n_trials=snap.n_trials)
        except StaleSnapshotError:
            continue  # another process issued trials meanwhile: propose again with them pending
        if sug.info.get("ref_point") is not None and ref is None:
            # frozen at the first model-based proposal: every later number uses this one
            st.set_meta(
                REFERENCE_POINT_KEY,
                json.dumps(
                    {
                        "values": sug.info["ref_point"],
                        "inferred": bool(sug.info.get("ref_point_inferred")),
                    }
                ),
            )
        return AskResult(trials, dict(sug.info), attempt)
    raise StorageError(
        f"{st.path}: other processes kept adding trials; gave up after {MAX_ASK_ATTEMPTS} attempts"
    )


REFERENCE_POINT_KEY = "reference_point"


def stored_reference_point(st: StudyStorage) -> tuple[list[float], bool] | None:
    """A multi-objective study's reference point (user units) and whether it was inferred:
    the objectives' thresholds when all are given, else the one frozen at the first model-based
    proposal, or None before it."""
    space = st.settings.space
    if not space.is_multi_objective:
        return None
    given = space.thresholds()
    if all(t is not None for t in given):
        return [float(t) for t in given], False  # type: ignore[arg-type]
    text = st.meta().get(REFERENCE_POINT_KEY)
    if not text:
        return None
    data = json.loads(text)
    return [float(v) for v in data["values"]], bool(data.get("inferred", True))


def abandon(path: str | Path, trial_ids: Sequence[int]) -> None:
    """Mark pending trials abandoned (an ask whose output could not be written)."""
    with StudyStorage.open(path) as st, st.write() as w:
        trials = w.trials()
        for tid in trial_ids:
            t = trials[tid]
            if t.state == "pending":
                w.update(t, TrialUpdate(tid, "abandoned"), "ask (output not written)")


def observations(
    space: Space,
    trials: Sequence[TrialRecord],
    memo: dict[int, tuple[TrialRecord, np.ndarray]] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The data ``suggest`` needs from a study's trials.

    Args:
        memo: Encoded points by trial id, reused while the record is the same object (a loop
            asking again and again encodes each trial once).

    Returns:
        ``X``: ``n x d`` encoded complete trials; ``y``: their ``n`` values (or with several
        outcomes ``n x k``, ``space.outcome_names`` order); ``pending``: ``p x d`` encoded pending
        and failed trials (points not to propose again).
    """
    done = [t for t in trials if t.state == "complete"]
    busy = [t for t in trials if t.state in ("pending", "failed")]

    def encode(ts: list[TrialRecord]) -> np.ndarray:
        if not ts:
            return np.zeros((0, space.dim))
        if memo is None:
            return space.encode([t.params for t in ts])
        new = [t for t in ts if memo.get(t.trial_id, (None,))[0] is not t]
        if new:
            for t, x in zip(new, space.encode([t.params for t in new]), strict=True):
                memo[t.trial_id] = (t, x)
        return np.stack([memo[t.trial_id][1] for t in ts])

    if space.is_single_outcome:
        y = np.array([t.value for t in done], dtype=np.float64)
    else:
        names = space.outcome_names
        y = np.array([t.values_for(names) for t in done], dtype=np.float64).reshape(-1, len(names))
    return encode(done), y, encode(busy)


def tidy_params(space: Space, params: dict[str, Any]) -> dict[str, Any]:
    """Round float parameters to ``FLOAT_DIGITS`` significant digits of their range (of the value
    itself on a log scale), clipped to the bounds: what a spreadsheet shows is what is stored."""
    out: dict[str, Any] = {}
    for p in space.parameters:
        v = params[p.name]
        if isinstance(p, FloatParam):
            ref = abs(float(v)) if p.log else p.high - p.low
            if ref > 0:
                v = round(float(v), FLOAT_DIGITS - 1 - math.floor(math.log10(ref)))
            v = float(min(max(v, p.low), p.high))
        out[p.name] = v
    return out


# ----- tell -----------------------------------------------------------------------------------
@dataclass
class TellResult:
    """What a ``tell`` changed (counts of rows), and the ids of trials it touched."""

    completed: int = 0
    failed: int = 0
    abandoned: int = 0
    imported: int = 0
    overwritten: int = 0
    unchanged: int = 0
    waiting: int = 0  # rows with neither a value nor a status: still pending
    annotated: int = 0  # rows that changed a trial's notes or metadata (in any state)
    trial_ids: list[int] = field(default_factory=list)
    # one line per recorded row whose point violates a parameter constraint (stored all the same)
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return (
            self.completed
            + self.failed
            + self.abandoned
            + self.imported
            + self.overwritten
            + self.annotated
        )

    def summary(self) -> str:
        parts = [
            f"{n} {label}"
            for n, label in (
                (self.completed, "completed"),
                (self.failed, "failed"),
                (self.abandoned, "abandoned"),
                (self.imported, "imported"),
                (self.overwritten, "overwritten"),
                (self.unchanged, "unchanged"),
                (self.waiting, "still pending"),
                (self.annotated, "with new notes/metadata"),
            )
            if n
        ]
        return ", ".join(parts) if parts else "nothing to record"


@dataclass
class _Plan:
    updates: list[tuple[TrialRecord, TrialUpdate, str]] = field(default_factory=list)
    inserts: list[NewTrial] = field(default_factory=list)
    # (trial as read, its new notes, its new metadata): text merged from what a row told
    texts: list[tuple[TrialRecord, str | None, dict[str, str] | None]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    result: TellResult = field(default_factory=TellResult)


def tell_file(
    path: str | Path,
    csv_file: str | Path | None,
    *,
    data: bytes | None = None,
    label: str | None = None,
    overwrite: bool = False,
) -> TellResult:
    """Record the results in a CSV file, all rows or none.

    Args:
        path: The study.
        csv_file: The results file (or None with ``data``, the file's bytes, named ``label``).
        overwrite: Allow replacing the value or state of complete and failed trials.

    Raises:
        CsvError: Listing every problem (file, row, column); the study is unchanged.
    """
    with StudyStorage.open(path) as st:
        space = st.settings.space
        table = read_results(data if data is not None else csv_file, space, label)  # type: ignore[arg-type]
        if not table.rows and table.problems:
            raise CsvError(table.problems)
        # match and apply under the write lock: no other tell can slip in between
        with st.write() as w:
            trials = w.trials()
            plan = _plan(space, table, trials, overwrite)
            if plan.problems:
                raise CsvError(plan.problems)
            _apply(w, plan, table.label)
        plan.result.warnings = _constraint_warnings(space, table, trials)
        return plan.result


def _constraint_warnings(space: Space, table: CsvTable, trials: list[TrialRecord]) -> list[str]:
    """One line per complete row whose point violates a parameter constraint (Ax stores such
    points too: a result is information, and the model learns from it)."""
    out: list[str] = []
    if not space.parameter_constraints:
        return out
    for r in table.rows:
        if not r.ok or r.status != "complete":
            continue
        params = r.params
        if params is None and r.trial_id is not None and r.trial_id < len(trials):
            params = trials[r.trial_id].params
        if params is None:
            continue
        for v in space.parameter_constraint_violations(params):
            out.append(f"{table.label} row {r.row}: {v}")
    return out


def tell_value(
    path: str | Path,
    trial_id: int,
    *,
    value: float | None = None,
    status: str | None = None,
    overwrite: bool = False,
) -> TellResult:
    """Record one trial's result from a script: a value (complete) or a status (failed/abandoned)."""
    if value is None and status is None:
        raise UserError("--trial needs --value or --status")
    if status is not None and status not in ("complete", "failed", "abandoned"):
        raise UserError(f"--status: must be complete, failed or abandoned, got {status!r}")
    if value is not None and not math.isfinite(value):
        raise UserError(f"--value: {value} is not a result; use --status failed")
    if value is not None and status in ("failed", "abandoned"):
        raise UserError(f"--value: {status} trials have no value; give one or the other")
    if status == "complete" and value is None:
        raise UserError("--status complete needs --value")
    with StudyStorage.open(path) as st:
        space = st.settings.space
        if value is not None and not space.is_single_outcome:
            raise UserError(
                f"--value: this study measures {len(space.outcome_names)} outcomes "
                f"({', '.join(space.outcome_names)}); tell them in a CSV file (bocli tell STUDY "
                "FILE.csv), or use --status failed"
            )
        with st.write() as w:
            trials = w.trials()
            if not 0 <= trial_id < len(trials):
                raise UserError(f"--trial: unknown trial_id {trial_id}{_id_range(len(trials))}")
            t = trials[trial_id]
            row = CsvRow(0, trial_id, None, value, status or "complete")
            plan = _Plan()
            _plan_existing(plan, space, t, row, overwrite, "--trial")
            if plan.problems:
                raise UserError(plan.problems[0])
            _apply(w, plan, "--value")
            return plan.result


def _id_range(n: int) -> str:
    return f" (this study has trials 0-{n - 1})" if n else " (this study has no trials yet)"


def _plan(space: Space, table: CsvTable, trials: list[TrialRecord], overwrite: bool) -> _Plan:
    plan = _Plan(problems=list(table.problems))
    imports: list[CsvRow] = []
    for r in table.rows:
        if not r.ok:
            continue
        where = f"{table.label}: row {r.row}"
        if r.trial_id is None:
            if r.status is None:
                plan.problems.append(
                    f"{where}, column '{space.objective.name}': no trial_id and no value, so "
                    "nothing to record (fill in the value, or set status to failed)"
                )
            else:
                imports.append(r)
            continue
        if r.trial_id >= len(trials):
            plan.problems.append(
                f"{where}, column 'trial_id': unknown trial_id {r.trial_id}{_id_range(len(trials))}"
            )
            continue
        t = trials[r.trial_id]
        if r.params is not None:
            for p in space.parameters:
                if not _same_param(p, r.params[p.name], t.params[p.name]):
                    plan.problems.append(
                        f"{where}, column '{p.name}': {r.params[p.name]!r} differs from the value "
                        f"issued for trial {t.trial_id} ({t.params[p.name]!r}); to record another "
                        "point, clear its trial_id"
                    )
        unchanged = plan.result.unchanged
        _plan_existing(plan, space, t, r, overwrite, where)
        if _plan_text(plan, t, r) and plan.result.unchanged > unchanged:
            plan.result.unchanged -= 1  # the row changed the trial's text after all
    _plan_imports(plan, space, imports, trials)
    return plan


def _merged_text(t: TrialRecord, r: CsvRow) -> tuple[str | None, dict[str, str] | None] | None:
    """The trial's text after row ``r`` (filled cells replace stored text, empty cells keep it),
    or None when the row changes nothing."""
    if not r.has_text:
        return None
    notes = r.notes or t.notes
    metadata = {**(t.metadata or {}), **(r.metadata or {})} or None
    if notes == t.notes and metadata == (t.metadata or None):
        return None
    return notes, metadata


def _plan_text(plan: _Plan, t: TrialRecord, r: CsvRow) -> bool:
    """Plan the text change row ``r`` makes to trial ``t``; whether there is one.

    Text is a person's annotation, never modeled: unlike a result it may change in any state
    without ``--overwrite`` (as Ax's and Optuna's user attributes), and the events table keeps
    the old text."""
    new = _merged_text(t, r)
    if new is None:
        return False
    plan.texts.append((t, *new))
    plan.result.annotated += 1
    if t.trial_id not in plan.result.trial_ids:
        plan.result.trial_ids.append(t.trial_id)
    return True


def _same_param(p: Any, told: Any, issued: Any) -> bool:
    if isinstance(p, FloatParam):
        return abs(p.encode(told) - p.encode(issued)) <= PARAM_TOLERANCE
    return bool(told == issued)


def _same_value(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _plan_existing(
    plan: _Plan, space: Space, t: TrialRecord, r: CsvRow, overwrite: bool, where: str
) -> None:
    res = plan.result
    want = r.status
    if want is None:
        res.waiting += t.state == "pending"
        res.unchanged += t.state != "pending"
        return
    if want == "pending":
        if t.state == "pending":
            res.waiting += 1
        else:
            plan.problems.append(
                f"{where}, column 'status': trial {t.trial_id} is {t.state}; it cannot be set "
                "back to pending"
            )
        return
    if want == t.state and (want != "complete" or _same_result(space, t, r)):
        res.unchanged += 1
        return
    if t.state in ("complete", "failed") and not overwrite:
        col = f"column '{space.objective.name}'" if want == "complete" else "column 'status'"
        was = (
            f"complete with {_shown(space, t.value, t.outcomes)}"
            if t.state == "complete"
            else "failed"
        )
        new = _shown(space, r.value, r.outcomes, bare=True) if want == "complete" else want
        plan.problems.append(
            f"{where}, {col}: trial {t.trial_id} is already {was}; pass --overwrite to replace it "
            f"with {new}"
        )
        return
    if t.state in ("complete", "failed"):
        res.overwritten += 1
    else:
        counter = {"complete": "completed", "failed": "failed", "abandoned": "abandoned"}[want]
        setattr(res, counter, getattr(res, counter) + 1)
    plan.updates.append((t, TrialUpdate(t.trial_id, want, r.value, outcomes=r.outcomes), where))
    res.trial_ids.append(t.trial_id)


def _same_result(space: Space, t: TrialRecord, r: CsvRow) -> bool:
    """Whether a told row repeats a complete trial's stored values."""
    names = space.outcome_names
    told = [r.value] if r.outcomes is None else [r.outcomes.get(n) for n in names]
    stored = t.values_for(names) if r.outcomes is not None else [t.value]
    return all(
        a is not None and b is not None and _same_value(a, b)
        for a, b in zip(stored, told, strict=True)
    )


def _shown(
    space: Space, value: float | None, outcomes: dict[str, float] | None, bare: bool = False
) -> str:
    """A result in a message: ``value 1.5``, or ``yield=0.8, cost=3`` with several outcomes."""
    if outcomes is None:
        return f"{value!r}" if bare else f"value {value!r}"
    return ", ".join(f"{n}={outcomes.get(n)!r}" for n in space.outcome_names)


def _result_key(
    space: Space,
    params: dict[str, Any],
    state: str,
    value: float | None,
    outcomes: dict[str, float] | None = None,
) -> str:
    ordered = [params[n] for n in space.names]
    vals = [value] if outcomes is None else [outcomes.get(n) for n in space.outcome_names]
    return json.dumps([ordered, state, vals])


def _plan_imports(plan: _Plan, space: Space, rows: list[CsvRow], trials: list[TrialRecord]) -> None:
    """Results without a trial_id: add those not already stored (as a multiset, so telling a
    file twice adds nothing, while replicate rows in one file are all kept). A row equal to a
    stored result is matched to that trial (replicates in id order), so a changed note on it
    updates the trial's text."""
    stored: dict[str, list[TrialRecord]] = {}
    for t in trials:
        if t.state in ("complete", "failed"):
            key = _result_key(space, t.params, t.state, t.value, t.outcomes)
            stored.setdefault(key, []).append(t)
    for r in rows:
        assert r.params is not None and r.status in ("complete", "failed")
        key = _result_key(space, r.params, r.status, r.value, r.outcomes)
        if stored.get(key):
            if not _plan_text(plan, stored[key].pop(0), r):
                plan.result.unchanged += 1
            continue
        plan.inserts.append(
            NewTrial(
                r.params,
                r.status,
                r.value,
                phase="import",
                outcomes=r.outcomes,
                notes=r.notes,
                metadata=r.metadata,
            )
        )
        plan.result.imported += 1


def _apply(w: Any, plan: _Plan, source: str) -> None:
    for old, upd, _ in plan.updates:
        w.update(old, upd, source)
    for old, notes, metadata in plan.texts:  # after a state change: its event comes first
        w.annotate(old, notes, metadata, source)
    for t in plan.inserts:
        rec = w.insert(t, source=source)
        plan.result.trial_ids.append(rec.trial_id)


def check_overwrite(path: str | Path, output: str | Path, force: bool = False) -> None:
    """Refuse an ``-o`` file that bocli must not replace (one line, UserError).

    Never, even with ``force``: an SQLite database (a study or any other), the study ``path``
    itself or a journal beside a database (``-wal``, ``-shm``, ``-journal``), or something that is
    not a regular file. Without ``force``: any file that exists.
    """
    import os
    import stat

    out = Path(output)
    label = f"-o {out}"
    if not out.parent.is_dir():
        raise UserError(f"{label}: directory {out.parent} does not exist")
    study = Path(path)
    same = os.path.realpath(out) == os.path.realpath(study)
    if same or (out.exists() and study.exists() and os.path.samefile(out, study)):
        raise UserError(
            f"{label}: is the study itself; bocli never overwrites it, choose another file name"
        )
    for suffix in ("-wal", "-shm", "-journal"):
        if not out.name.endswith(suffix):
            continue
        base = Path(str(out)[: -len(suffix)])
        try:
            is_db = _is_sqlite(base) or os.path.realpath(base) == os.path.realpath(study)
        except OSError:
            is_db = True  # cannot tell: do not risk it
        if is_db:
            raise UserError(
                f"{label}: is the journal of the SQLite database {base}; bocli never overwrites "
                "one, choose another file name"
            )
    if not os.path.lexists(out):
        return
    if out.exists() and not stat.S_ISREG(out.stat().st_mode):
        raise UserError(
            f"{label}: is not a regular file; bocli writes -o files whole (leave out -o to print "
            "to standard output)"
        )
    try:
        sqlite = _is_sqlite(out)
    except OSError as e:
        raise UserError(
            f"{label}: exists and cannot be read to check what it is ({e.strerror or e}); "
            "choose another file name"
        ) from None
    if sqlite:
        raise UserError(
            f"{label}: is an SQLite database (a study?); bocli never overwrites one, choose "
            "another file name"
        )
    if not force:
        raise UserError(
            f"{label}: already exists; pass --force to replace it, or choose another file name"
        )


def _is_sqlite(path: Path) -> bool:
    """Whether ``path`` is a regular file starting with the SQLite header (OSError if unreadable)."""
    from bocli.storage import SQLITE_HEADER

    if not path.is_file():
        return False
    with path.open("rb") as f:
        return f.read(len(SQLITE_HEADER)) == SQLITE_HEADER


def write_output(path: str | Path, output: str | Path, text: str, force: bool = False) -> None:
    """Write ``text`` to the ``-o`` file of a command on study ``path``, atomically.

    The text goes to a temporary file in the same folder, synced, then into place in one step, so
    no reader (and no crash) ever sees half a file. ``check_overwrite`` runs again just before
    (an ask may have taken minutes); without ``force`` the file is linked into place, which fails
    rather than replace a file that appeared meanwhile.
    """
    import errno
    import os
    import uuid

    out = Path(output)
    check_overwrite(path, out, force)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tmp.open("x", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if force:
            check_overwrite(path, out, force)  # still never an SQLite file
            os.replace(tmp, out)
        else:
            try:
                os.link(tmp, out)  # fails if `out` exists: never replaces anything
            except OSError as e:
                if e.errno == errno.EEXIST or os.path.lexists(out):
                    raise
                os.replace(tmp, out)  # a file system without hard links (FAT, some shares)
        try:
            fd = os.open(out.parent, os.O_RDONLY)
            try:
                os.fsync(fd)  # the new name survives a power cut too
            finally:
                os.close(fd)
        except OSError:
            pass
    except FileExistsError:
        raise UserError(
            f"-o {out}: already exists (it appeared meanwhile); pass --force to replace it, or "
            "choose another file name"
        ) from None
    except OSError as e:
        raise UserError(f"-o {out}: cannot write it ({e.strerror or e})") from None
    finally:
        tmp.unlink(missing_ok=True)


# ----- status / best / export ------------------------------------------------------------------
def _best(space: Space, trials: Sequence[TrialRecord]) -> TrialRecord | None:
    """The best complete trial that satisfies the outcome constraints (one objective)."""
    done = [t for t in trials if t.state == "complete" and _feasible(space, t)]
    if not done:
        return None
    sign = space.objective.sign
    return max(done, key=lambda t: (sign * t.value, -t.trial_id))  # type: ignore[operator]


def _feasible(space: Space, t: TrialRecord) -> bool:
    """A complete trial satisfies every outcome constraint."""
    if not space.outcome_constraints:
        return True
    vals = np.array([t.values_for(space.outcome_names)], dtype=np.float64)
    return bool(space.feasible(vals)[0])


def outcome_matrix(space: Space, trials: Sequence[TrialRecord]) -> np.ndarray:
    """``n x k`` raw outcome values of ``trials`` (``outcome_names`` order; NaN unless complete)."""
    names = space.outcome_names
    rows = [
        [np.nan if v is None else v for v in t.values_for(names)]
        if t.state == "complete"
        else [np.nan] * len(names)
        for t in trials
    ]
    return np.array(rows, dtype=np.float64).reshape(-1, len(names))


def pareto_trials(space: Space, trials: Sequence[TrialRecord]) -> list[TrialRecord]:
    """The feasible complete trials that no other feasible complete trial dominates."""
    from bocli.pareto import pareto_mask

    Y = outcome_matrix(space, trials)
    m = len(space.objectives)
    mask = pareto_mask(Y[:, :m], [o.direction for o in space.objectives], space.feasible(Y))
    return [t for t, keep in zip(trials, mask, strict=True) if keep]


def _registered(problem: str | None) -> Any:
    """The registered problem a study was made from (its optimum gives regret), or None."""
    if problem is None:
        return None
    try:
        from problems import get_problem

        return get_problem(problem)
    except UserError:  # a problem no longer registered (or its settings): no regret, not an error
        return None


def _regret(problem: str | None, value: float | None) -> float | None:
    p = _registered(problem)
    return None if p is None or value is None else p.regret(value)


def best_trial(path: str | Path, predict: bool = True) -> dict[str, Any]:
    """The best complete trial: ``trial_id``, ``value``, ``params`` (and ``regret`` for a problem
    with a known optimum). With several objectives, the Pareto set (``pareto_set``); see
    ``pareto_result``. Only trials that satisfy the outcome constraints count."""
    with StudyStorage.open(path) as st:
        s = st.settings
        trials = st.trials()
        ref = stored_reference_point(st)
    if s.space.is_multi_objective:
        return pareto_result(path, s, trials, ref, predict)
    best = _best(s.space, trials)
    if best is None:
        if any(t.state == "complete" for t in trials):
            raise UserError(
                f"{path}: no complete trial satisfies the outcome constraints "
                f"({'; '.join(c.describe() for c in s.space.outcome_constraints)}) yet"
            )
        raise UserError(f"{path}: no complete trials yet; tell some results first")
    out: dict[str, Any] = {
        "trial_id": best.trial_id,
        "objective": s.objective_name,
        "direction": s.direction,
        "value": best.value,
        "params": best.params,
        **text_json(s.space, best),
    }
    if best.outcomes is not None:
        out["outcomes"] = best.outcomes
    regret = _regret(s.problem, best.value)
    if regret is not None:
        out["regret"] = regret
    return out


def pareto_result(
    path: str | Path,
    s: StudySettings,
    trials: list[TrialRecord],
    ref: tuple[list[float], bool] | None,
    predict: bool = True,
) -> dict[str, Any]:
    """A multi-objective study's result: the Pareto set of feasible observed trials (each with
    its measured outcomes and, with ``predict``, the current model's predicted mean and sd of
    each outcome there), the hypervolume against the stored reference point, and counts."""
    from bocli.pareto import hypervolume

    space = s.space
    done = [t for t in trials if t.state == "complete"]
    if not done:
        raise UserError(f"{path}: no complete trials yet; tell some results first")
    feasible = [t for t in done if _feasible(space, t)]
    front = pareto_trials(space, done)
    m = len(space.objectives)
    dirs = [o.direction for o in space.objectives]
    hv = None
    if ref is not None:
        Y = outcome_matrix(space, done)
        hv = hypervolume(Y[:, :m], dirs, ref[0], space.feasible(Y))
    preds = _current_predictions(s, done, front) if predict and front else None
    rows = []
    for i, t in enumerate(front):
        row: dict[str, Any] = {"trial_id": t.trial_id, "params": t.params, "values": t.outcomes}
        row.update(text_json(space, t))
        if preds is not None:
            row["predicted"] = preds[i]
        rows.append(row)
    p = _registered(s.problem)
    return {
        "objectives": [o.to_dict() for o in space.objectives],
        "outcome_constraints": [c.to_dict() for c in space.outcome_constraints],
        "complete": len(done),
        "feasible": len(feasible),
        "pareto_set": rows,
        "reference_point": None if ref is None else ref[0],
        "reference_point_inferred": None if ref is None else ref[1],
        "hypervolume": hv,
        "max_hypervolume": None if p is None else p.max_hv,
        "log_hv_regret": None if p is None or hv is None else p.regret(hv),
    }


def _current_predictions(
    s: StudySettings, done: list[TrialRecord], at: list[TrialRecord]
) -> list[dict[str, Any]] | None:
    """The study's surrogate fitted on every complete trial now, predicting each outcome at the
    trials ``at``: one ``{outcome: {mean, sd}}`` per trial (None if the fit fails)."""
    from bocli.engine import fit_and_predict

    space = s.space
    X = space.encode([t.params for t in done])
    Y = outcome_matrix(space, done)
    Xq = space.encode([t.params for t in at])
    return fit_and_predict(space, X, Y, Xq, s.surrogate, s.surrogate_options, seed=s.seed)


def study_status(path: str | Path) -> dict[str, Any]:
    """Counts by state, the best trial, what the next ask will do, and the study's settings."""
    with StudyStorage.open(path) as st:
        s = st.settings
        trials = st.trials()
        meta = st.meta()
        ref = stored_reference_point(st)
    counts = Counter(t.state for t in trials)
    space = s.space
    best = None if space.is_multi_objective else _best(space, trials)
    n_complete = counts["complete"]
    Y = outcome_matrix(space, [t for t in trials if t.state == "complete"])
    distinct = min((len(np.unique(Y[:, j])) for j in range(Y.shape[1])), default=0)
    next_phase = "init" if len(trials) < s.n_init or n_complete < 2 or distinct < 2 else "model"
    out: dict[str, Any] = {
        "study": str(path),
        "problem": s.problem,
        "objective": s.objective_name,
        "direction": s.direction,
        "parameters": space.names,
        "parameter_constraints": [c.text for c in space.parameter_constraints],
        "trials": len(trials),
        **{state: counts[state] for state in ("pending", "complete", "failed", "abandoned")},
        "best_value": None if best is None else best.value,
        "best_trial": None if best is None else best.trial_id,
        "best_params": None if best is None else best.params,
        "regret": _regret(s.problem, None if best is None else best.value),
        "next_ask": "sobol design" if next_phase == "init" else f"{s.surrogate}+{s.acquisition}",
        "surrogate": s.surrogate,
        "acquisition": s.acquisition,
        "surrogate_options": s.surrogate_options,
        "acquisition_options": s.acquisition_options,
        "seed": s.seed,
        "n_init": s.n_init,
        "created_at": s.created_at,
        "schema_version": int(meta.get("schema_version", 0)),
        "predictions": prediction_check(trials),
    }
    if not space.is_single_outcome:
        out["objectives"] = [o.to_dict() for o in space.objectives]
        out["outcome_constraints"] = [c.to_dict() for c in space.outcome_constraints]
        out["feasible"] = int(space.feasible(Y).sum()) if len(Y) else 0
    if space.is_multi_objective:
        done = [t for t in trials if t.state == "complete"]
        res = pareto_result(path, s, trials, ref, predict=False) if done else None
        out["pareto_optimal"] = 0 if res is None else len(res["pareto_set"])
        out["hypervolume"] = None if res is None else res["hypervolume"]
        out["reference_point"] = None if ref is None else ref[0]
        out["reference_point_inferred"] = None if ref is None else ref[1]
        out["log_hv_regret"] = None if res is None else res["log_hv_regret"]
    return out


def prediction_check(trials: Sequence[TrialRecord]) -> dict[str, Any] | None:
    """How the model's predictions held up against the results told since.

    Over complete trials that carry a prediction: how many results fell inside the central 90%
    interval ``mean +- 1.645 sd`` (about 90% for an honest model; much lower means overconfident),
    and the median absolute error next to the median predicted sd. None when nothing is checkable.
    """
    pairs = [
        (t.value, t.predicted_mean, t.predicted_sd)
        for t in trials
        if t.state == "complete"
        and t.value is not None
        and t.predicted_mean is not None
        and t.predicted_sd is not None
    ]
    if not pairs:
        return None
    errors = [abs(v - m) for v, m, _ in pairs]
    inside = sum(abs(v - m) <= 1.6449 * sd for v, m, sd in pairs)
    return {
        "checked": len(pairs),
        "within_90": inside,
        "median_abs_error": statistics.median(errors),
        "median_sd": statistics.median(sd for _, _, sd in pairs),
    }


def export_columns(space: Space) -> list[str]:
    """The columns of ``bocli export`` and of a run's ``trials.csv`` (the README's table): one per
    parameter and outcome; with outcome constraints ``feasible``, with several objectives
    ``pareto`` and ``hypervolume`` (of the feasible trials up to this one) too. The columns a
    person writes (status, ``notes``, the metadata columns) come before those bocli computes."""
    extra = []
    if not space.is_single_outcome:
        extra.append("feasible")
    if space.is_multi_objective:
        extra += ["pareto", "hypervolume"]
    return [
        "trial_id",
        *space.names,
        *space.outcome_names,
        "status",
        *text_columns(space),
        *extra,
        *INFO_COLUMNS,
    ]


def best_so_far(
    space: Space,
    trials: Sequence[TrialRecord],
    regret: Callable[[float | None], float | None] | None = None,
    ref_point: Sequence[float] | None = None,
) -> Iterator[tuple[TrialRecord, float | None, float | None]]:
    """Each trial with the best complete feasible value among trials with its id or a smaller
    one, and that value's ``regret`` (a problem's ``Problem.regret``; None without one).

    With several objectives the "best value" is the hypervolume of the feasible complete trials
    so far against ``ref_point`` (None without one), updated incrementally; its regret is the
    problem's log hypervolume regret."""
    if space.is_multi_objective:
        yield from _hypervolume_so_far(space, trials, regret, ref_point)
        return
    sign = space.objective.sign
    best: float | None = None
    for t in trials:
        if (
            t.state == "complete"
            and (best is None or sign * t.value > sign * best)  # type: ignore[operator]
            and _feasible(space, t)
        ):
            best = t.value
        yield t, best, None if regret is None else regret(best)


def _hypervolume_so_far(
    space: Space,
    trials: Sequence[TrialRecord],
    regret: Callable[[float | None], float | None] | None,
    ref_point: Sequence[float] | None,
) -> Iterator[tuple[TrialRecord, float | None, float | None]]:
    from bocli.pareto import HypervolumeTracker

    if ref_point is None:
        for t in trials:
            yield t, None, None
        return
    m = len(space.objectives)
    tracker = HypervolumeTracker([o.direction for o in space.objectives], list(ref_point))
    hv: float | None = None
    for t in trials:
        if t.state == "complete":
            y = outcome_matrix(space, [t])
            hv = tracker.add(y[0, :m], feasible=bool(space.feasible(y)[0]))
        yield t, hv, None if regret is None else regret(hv)


def _export_row(
    space: Space,
    t: TrialRecord,
    best: float | None,
    regret: float | None,
    pareto: set[int] | None = None,
) -> dict[str, Any]:
    several = not space.is_single_outcome
    row = {
        "trial_id": t.trial_id,
        **t.params,
        **(
            dict(zip(space.outcome_names, t.values_for(space.outcome_names), strict=True))
            if several
            else {space.objective.name: t.value}
        ),
        "status": t.state,
        **trial_text(space, t),
        "best_so_far": None if space.is_multi_objective else best,
        "regret": regret,
        "proposed_by": t.proposed_by,
        "fit_seconds": t.fit_seconds,
        "acq_seconds": t.acq_seconds,
        "eval_seconds": t.eval_seconds,
        "error": t.error,
        "created_at": t.created_at,
        "completed_at": t.completed_at,
        "predicted_mean": t.predicted_mean,
        "predicted_sd": t.predicted_sd,
        "diagnostics": t.diagnostics,
    }
    if several:
        row["feasible"] = _feasible(space, t) if t.state == "complete" else None
        if t.predictions:
            row["predicted_mean"] = {k: v.get("mean") for k, v in t.predictions.items()}
            row["predicted_sd"] = {k: v.get("sd") for k, v in t.predictions.items()}
    if space.is_multi_objective:
        row["pareto"] = (
            (t.trial_id in pareto) if pareto is not None and t.state == "complete" else None
        )
        row["hypervolume"] = best
    return row


def trial_rows(
    space: Space,
    trials: Sequence[TrialRecord],
    problem: str | None = None,
    ref_point: Sequence[float] | None = None,
) -> list[dict[str, Any]]:
    """Every trial as an export row (columns ``export_columns``), in trial-id order;
    ``best_so_far`` is the best complete value among trials with this id or a smaller one,
    ``regret`` its distance to a registered problem's known optimum (with several objectives:
    ``hypervolume`` so far, ``pareto`` whether the trial is in the final feasible Pareto set)."""
    p = _registered(problem)
    pareto = _pareto_ids(space, trials)
    return [
        _export_row(space, *x, pareto=pareto)
        for x in best_so_far(space, trials, None if p is None else p.regret, ref_point)
    ]


def _pareto_ids(space: Space, trials: Sequence[TrialRecord]) -> set[int] | None:
    if not space.is_multi_objective:
        return None
    return {t.trial_id for t in pareto_trials(space, [t for t in trials if t.state == "complete"])}


class ExportFile:
    """A run's ``trials.csv``: the study's finished trials (complete, failed, abandoned), kept
    current cheaply and never read back by bocli.

    ``rewrite`` replaces the file atomically (at the start and at the end of a run);
    ``append`` adds the row of one trial that just finished, in order of finishing. Rows
    are ``export_columns``; ``best_so_far`` is as of when the row was written, so with several
    workers a row appended before an earlier trial finished may show an older best until the
    end-of-run rewrite. A crash can at worst leave a torn last line, which the next run's first
    rewrite replaces.
    """

    FINISHED = ("complete", "failed", "abandoned")

    def __init__(
        self,
        path: str | Path,
        space: Space,
        problem: str | None = None,
        ref_point: Callable[[], Sequence[float] | None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.space = space
        self.columns = export_columns(space)
        p = _registered(problem)
        self.regret = p.regret if p is not None else None
        self.ref_point = ref_point or (lambda: None)  # several objectives: read when used

    def _lines(self, rows: list[dict[str, Any]]) -> str:
        text = to_csv_text(self.columns, rows)
        return text[text.index("\n") + 1 :]  # without the header (names hold no newline)

    def rewrite(self, trials: Sequence[TrialRecord]) -> None:
        """Replace the file with every finished trial of ``trials`` (all of the study, by id)."""
        pareto = _pareto_ids(self.space, trials)
        rows = [
            _export_row(self.space, *x, pareto=pareto)
            for x in best_so_far(self.space, trials, self.regret, self.ref_point())
            if x[0].state in self.FINISHED
        ]
        write_csv(self.path, to_csv_text(self.columns, rows), durable=False)

    def append(self, t: TrialRecord, best: float | None, regret: float | None) -> None:
        """Add the row of trial ``t``, which just finished, with the best so far (several
        objectives: the hypervolume) and its regret as of now. ``pareto`` is left empty: it is
        a property of the final set, filled in by ``rewrite``."""
        row = [_export_row(self.space, t, best, regret)]
        if not self.path.exists():  # removed mid-run: start it again; the final rewrite fills it
            write_csv(self.path, to_csv_text(self.columns, row), durable=False)
            return
        with self.path.open("a", encoding="utf-8", newline="") as f:
            f.write(self._lines(row))


def export_rows(path: str | Path) -> tuple[list[str], list[dict[str, Any]]]:
    """Every trial as a row (columns: ``export_columns``)."""
    with StudyStorage.open(path) as st:
        s = st.settings
        trials = st.trials()
        ref = stored_reference_point(st)
    return export_columns(s.space), trial_rows(
        s.space, trials, s.problem, None if ref is None else ref[0]
    )


def pending_rows(path: str | Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The pending trials in the layout ``ask`` writes (columns ``ask_columns``, empty objective)."""
    with StudyStorage.open(path) as st:
        space = st.settings.space
        trials = st.trials()
    return ask_columns(space), [ask_row(space, t) for t in trials if t.state == "pending"]


def export_csv(path: str | Path) -> str:
    """The study as CSV text; telling it back to the study changes nothing."""
    columns, rows = export_rows(path)
    return to_csv_text(columns, rows)


def ask_columns(space: Space) -> list[str]:
    """The columns of the CSV ``ask`` writes: id, parameters, outcomes and, when the space declares
    metadata columns, the text columns (``notes``, then the metadata) to fill in next to the
    results. Without declared metadata the file keeps the documented ``trial_id, <params...>,
    <outcomes...>`` layout (a script that appends the value to each row keeps working); ``tell``
    accepts a ``notes`` column added by hand either way."""
    text = text_columns(space) if space.metadata else []
    return ["trial_id", *space.names, *space.outcome_names, *text]


def ask_row(space: Space, t: TrialRecord) -> dict[str, Any]:
    """A trial as ``ask`` writes it: id, parameters, the objective left empty to fill in, and
    any text already told for it."""
    return {
        "trial_id": t.trial_id,
        **t.params,
        **dict.fromkeys(space.outcome_names),
        **(trial_text(space, t) if space.metadata else {}),
    }


def trial_text(space: Space, t: TrialRecord) -> dict[str, str | None]:
    """A trial's text by column (``notes`` and each metadata column; None where none told)."""
    metadata = t.metadata or {}
    return {"notes": t.notes, **{m: metadata.get(m) for m in space.metadata}}


def text_json(space: Space, t: TrialRecord) -> dict[str, Any]:
    """A trial's text for ``--format json`` listings: ``notes`` (None when none told) and, when
    the space declares metadata columns, ``metadata`` (``{column: text or None}``)."""
    out: dict[str, Any] = {"notes": t.notes}
    if space.metadata:
        metadata = t.metadata or {}
        out["metadata"] = {m: metadata.get(m) for m in space.metadata}
    return out
