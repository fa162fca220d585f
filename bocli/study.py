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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bocli.csvio import CsvError, CsvRow, CsvTable, read_results, to_csv_text
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
        space = Space(space.parameters, Objective(space.objective.name, direction))
    if n_init is not None and n_init < 0:
        raise UserError(f"--init must be >= 0, got {n_init}")
    surrogate_options = dict(surrogate_options or {})
    acquisition_options = dict(acquisition_options or {})
    if check_models:
        validate_models(surrogate, acquisition, surrogate_options)  # fail now, not at the first ask
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
) -> AskResult:
    """Propose ``q`` new trials and store them as pending.

    Options left as None take the study's defaults (the study's surrogate options apply only when the
    surrogate is the study's). ``suggest_fn`` replaces ``bocli.engine.suggest`` (tests only).
    """
    if q < 1:
        raise UserError(f"-n must be at least 1, got {q}")
    if suggest_fn is None:
        from bocli.engine import resolve_device, suggest

        try:
            resolve_device(device)
        except ValueError as e:
            raise UserError(str(e)) from None
        suggest_fn = suggest
    with StudyStorage.open(path) as st:
        s = st.settings
        space = s.space
        sur = surrogate or s.surrogate
        acq = acquisition or s.acquisition
        if surrogate_options is None:
            surrogate_options = s.surrogate_options if sur == s.surrogate else {}
        if acquisition_options is None:
            acquisition_options = s.acquisition_options if acq == s.acquisition else {}
        # a bad pair or option fails now, also while the Sobol design makes no use of the model
        validate_models(sur, acq, surrogate_options)
        for attempt in range(1, MAX_ASK_ATTEMPTS + 1):
            snap = st.snapshot()
            X, y, pending = observations(space, snap.trials)
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
            )
            model = sug.info.get("phase") == "model"
            preds = sug.info.get("predictions") or [{}] * len(sug.params)
            new = [
                NewTrial(
                    params=tidy_params(space, p),
                    phase="model" if model else "init",
                    surrogate=sur if model else None,
                    acquisition=acq if model else None,
                    predicted_mean=pred.get("mean"),
                    predicted_sd=pred.get("sd"),
                    diagnostics=sug.info.get("diagnostics") or None,
                )
                for p, pred in zip(sug.params, preds, strict=True)
            ]
            try:
                trials = st.reserve(new, expected_n_trials=snap.n_trials)
            except StaleSnapshotError:
                continue  # another process issued trials meanwhile: propose again with them pending
            return AskResult(trials, dict(sug.info), attempt)
    raise StorageError(
        f"{path}: other processes kept adding trials; gave up after {MAX_ASK_ATTEMPTS} attempts"
    )


def abandon(path: str | Path, trial_ids: Sequence[int]) -> None:
    """Mark pending trials abandoned (an ask whose output could not be written)."""
    with StudyStorage.open(path) as st, st.write() as w:
        trials = w.trials()
        for tid in trial_ids:
            t = trials[tid]
            if t.state == "pending":
                w.update(t, TrialUpdate(tid, "abandoned"), "ask (output not written)")


def observations(
    space: Space, trials: Sequence[TrialRecord]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The data ``suggest`` needs from a study's trials.

    Returns:
        ``X``: ``n x d`` encoded complete trials; ``y``: their ``n`` values; ``pending``: ``p x d``
        encoded pending and failed trials (points not to propose again).
    """
    done = [t for t in trials if t.state == "complete"]
    busy = [t for t in trials if t.state in ("pending", "failed")]
    X = space.encode([t.params for t in done]) if done else np.zeros((0, space.dim))
    y = np.array([t.value for t in done], dtype=np.float64)
    pending = space.encode([t.params for t in busy]) if busy else np.zeros((0, space.dim))
    return X, y, pending


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
    trial_ids: list[int] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return self.completed + self.failed + self.abandoned + self.imported + self.overwritten

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
            )
            if n
        ]
        return ", ".join(parts) if parts else "nothing to record"


@dataclass
class _Plan:
    updates: list[tuple[TrialRecord, TrialUpdate, str]] = field(default_factory=list)
    inserts: list[NewTrial] = field(default_factory=list)
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
            plan = _plan(space, table, w.trials(), overwrite)
            if plan.problems:
                raise CsvError(plan.problems)
            _apply(w, plan, table.label)
        return plan.result


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
        _plan_existing(plan, space, t, r, overwrite, where)
    _plan_imports(plan, space, imports, trials)
    return plan


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
    if want == t.state and (want != "complete" or _same_value(t.value, r.value)):  # type: ignore[arg-type]
        res.unchanged += 1
        return
    if t.state in ("complete", "failed") and not overwrite:
        col = f"column '{space.objective.name}'" if want == "complete" else "column 'status'"
        was = f"complete with value {t.value!r}" if t.state == "complete" else "failed"
        new = f"{r.value!r}" if want == "complete" else want
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
    plan.updates.append((t, TrialUpdate(t.trial_id, want, r.value), where))
    res.trial_ids.append(t.trial_id)


def _result_key(space: Space, params: dict[str, Any], state: str, value: float | None) -> str:
    ordered = [params[n] for n in space.names]
    return json.dumps([ordered, state, value])


def _plan_imports(plan: _Plan, space: Space, rows: list[CsvRow], trials: list[TrialRecord]) -> None:
    """Results without a trial_id: add those not already stored (as a multiset, so telling a
    file twice adds nothing, while replicate rows in one file are all kept)."""
    stored = Counter(
        _result_key(space, t.params, t.state, t.value)
        for t in trials
        if t.state in ("complete", "failed")
    )
    for r in rows:
        assert r.params is not None and r.status in ("complete", "failed")
        key = _result_key(space, r.params, r.status, r.value)
        if stored[key] > 0:
            stored[key] -= 1
            plan.result.unchanged += 1
            continue
        plan.inserts.append(NewTrial(r.params, r.status, r.value, phase="import"))
        plan.result.imported += 1


def _apply(w: Any, plan: _Plan, source: str) -> None:
    for old, upd, _ in plan.updates:
        w.update(old, upd, source)
    for t in plan.inserts:
        rec = w.insert(t, source=source)
        plan.result.trial_ids.append(rec.trial_id)


def check_overwrite(path: str | Path, output: str | Path) -> None:
    """Refuse to replace ``output`` when it holds results the study has not recorded yet."""
    out = Path(output)
    if not out.exists():
        return
    with StudyStorage.open(path) as st:
        space = st.settings.space
        table = read_results(out, space)
        if table.rows or not table.problems:
            plan = _plan(space, table, st.trials(), overwrite=False)
            if not plan.problems and not plan.inserts and not plan.updates:
                return
            why = "holds results not yet told" if not plan.problems else "does not match the study"
        else:
            why = "is not a results file of this study"
    raise UserError(
        f"-o {out}: the file exists and {why}; tell it first, choose another name, or pass --force"
    )


# ----- status / best / export ------------------------------------------------------------------
def _best(space: Space, trials: Sequence[TrialRecord]) -> TrialRecord | None:
    done = [t for t in trials if t.state == "complete"]
    if not done:
        return None
    sign = space.objective.sign
    return max(done, key=lambda t: (sign * t.value, -t.trial_id))  # type: ignore[operator]


def _regret(problem: str | None, value: float | None) -> float | None:
    if problem is None or value is None:
        return None
    try:
        from problems import get_problem

        return get_problem(problem).regret(value)
    except Exception:  # a problem that is no longer registered: no regret, not an error
        return None


def best_trial(path: str | Path) -> dict[str, Any]:
    """The best complete trial: ``trial_id``, ``value``, ``params`` (and ``regret`` for a problem
    with a known optimum)."""
    with StudyStorage.open(path) as st:
        s = st.settings
        best = _best(s.space, st.trials())
    if best is None:
        raise UserError(f"{path}: no complete trials yet; tell some results first")
    out: dict[str, Any] = {
        "trial_id": best.trial_id,
        "objective": s.objective_name,
        "direction": s.direction,
        "value": best.value,
        "params": best.params,
    }
    regret = _regret(s.problem, best.value)
    if regret is not None:
        out["regret"] = regret
    return out


def study_status(path: str | Path) -> dict[str, Any]:
    """Counts by state, the best trial, what the next ask will do, and the study's settings."""
    with StudyStorage.open(path) as st:
        s = st.settings
        trials = st.trials()
        meta = st.meta()
    counts = Counter(t.state for t in trials)
    best = _best(s.space, trials)
    n_complete = counts["complete"]
    distinct = len({t.value for t in trials if t.state == "complete"})
    next_phase = "init" if len(trials) < s.n_init or n_complete < 2 or distinct < 2 else "model"
    out: dict[str, Any] = {
        "study": str(path),
        "problem": s.problem,
        "objective": s.objective_name,
        "direction": s.direction,
        "parameters": s.space.names,
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
    return ["trial_id", *space.names, space.objective.name, "status", "proposed_by",
            "created_at", "completed_at", "predicted_mean", "predicted_sd",
            "diagnostics"]  # fmt: skip


def trial_row(space: Space, t: TrialRecord) -> dict[str, Any]:
    return {
        "trial_id": t.trial_id,
        **t.params,
        space.objective.name: t.value,
        "status": t.state,
        "proposed_by": t.proposed_by,
        "created_at": t.created_at,
        "completed_at": t.completed_at,
        "predicted_mean": t.predicted_mean,
        "predicted_sd": t.predicted_sd,
        "diagnostics": t.diagnostics,
    }


def export_rows(path: str | Path) -> tuple[list[str], list[dict[str, Any]]]:
    """Every trial as a row (columns: trial_id, parameters, objective, status, provenance)."""
    with StudyStorage.open(path) as st:
        space = st.settings.space
        trials = st.trials()
    return export_columns(space), [trial_row(space, t) for t in trials]


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
    return ["trial_id", *space.names, space.objective.name]


def ask_row(space: Space, t: TrialRecord) -> dict[str, Any]:
    """A trial as ``ask`` writes it: id, parameters, and the objective left empty to fill in."""
    return {"trial_id": t.trial_id, **t.params, space.objective.name: None}
