"""The terminal run loop: suggest -> evaluate -> record, saved as it goes, resumable.

A run directory holds ``config.json`` (what was asked for) and ``trials.csv`` (one row per finished
evaluation, appended and fsynced as each completes). ``resume`` rebuilds the state from those files:
a finished evaluation is never lost nor repeated, and proposals are seeded by the number of points
issued, so a resumed run proposes what the uninterrupted run would have.
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bocli.engine import Suggestion, best_observed, check_models, default_n_init, suggest
from bocli.errors import UserError
from problems.base import ObjectiveError, Problem

__all__ = ["RunConfig", "RunError", "Trial", "load_trials", "run_optimization", "validate_config"]

TRIAL_FIELDS = [
    "trial",
    "status",
    "value",
    "best_so_far",
    "regret",
    "phase",
    "surrogate",
    "acquisition",
    "fit_seconds",
    "acq_seconds",
    "eval_seconds",
    "error",
    "finished_at",
    "predicted_mean",  # the model's predictive mean and sd at the point (absent in older files)
    "predicted_sd",
    "diagnostics",  # the surrogate's fit diagnostics as JSON (absent in older files)
]


class RunError(UserError, ValueError):
    """A run cannot start or resume (bad settings, a run directory that does not match)."""


@dataclass
class RunConfig:
    """Settings of one optimization run (saved as config.json)."""

    problem: str
    surrogate: str = "gp"
    acquisition: str = "ei"
    budget: int = 30
    n_init: int | None = None
    batch: int = 1
    seed: int = 0
    device: str = "cpu"
    workers: int = 1
    scheduler: str | None = None
    surrogate_options: dict[str, Any] = field(default_factory=dict)
    acquisition_options: dict[str, Any] = field(default_factory=dict)

    # settings that must match on --resume (others, like workers or device, may change)
    IDENTITY = (
        "problem",
        "surrogate",
        "acquisition",
        "n_init",
        "batch",
        "seed",
        "surrogate_options",
        "acquisition_options",
    )


@dataclass
class Trial:
    """One finished evaluation (a row of trials.csv)."""

    trial: int
    params: dict[str, Any]
    status: str  # complete | failed
    value: float | None
    best_so_far: float | None
    regret: float | None
    phase: str
    surrogate: str
    acquisition: str
    fit_seconds: float
    acq_seconds: float
    eval_seconds: float
    error: str = ""
    finished_at: float = 0.0
    predicted_mean: float | None = None  # what the model expected (None for the Sobol design)
    predicted_sd: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _evaluate(
    problem: Problem, params: dict[str, Any], seed: int
) -> tuple[float | None, str, float]:
    """Evaluate in whatever process the executor chose; never raises for an objective failure."""
    t0 = time.perf_counter()
    try:
        value = problem.evaluate(params, rng=np.random.default_rng(seed))
        return value, "", time.perf_counter() - t0
    except ObjectiveError as e:
        return None, str(e), time.perf_counter() - t0
    except Exception as e:
        return None, f"{type(e).__name__}: {e}", time.perf_counter() - t0


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ""
    return str(v)


class _TrialLog:
    """Append-only trials.csv; each row is flushed and fsynced before the loop moves on."""

    def __init__(self, path: Path, param_names: list[str]) -> None:
        self.path = path
        self.fields = ["trial", *param_names, *TRIAL_FIELDS[1:]]
        if not path.exists() or path.stat().st_size == 0:
            with path.open("w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerow(self.fields)
        else:  # resuming: keep the file's own columns (an older file may lack newer ones)
            with path.open(newline="", encoding="utf-8") as f:
                self.fields = next(csv.reader(f), self.fields)

    def append(self, t: Trial) -> None:
        row = {
            **{k: _fmt(v) for k, v in t.params.items()},
            **{k: _fmt(getattr(t, k)) for k in TRIAL_FIELDS if k != "diagnostics"},
        }
        diagnostics = t.extra.get("diagnostics")
        row["diagnostics"] = json.dumps(diagnostics, default=str) if diagnostics else ""
        with self.path.open("a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore").writerow(row)
            f.flush()
            os.fsync(f.fileno())


def load_trials(out_dir: Path, problem: Problem) -> list[Trial]:
    """Read trials.csv back (a torn last line from a crash is dropped)."""
    path = Path(out_dir) / "trials.csv"
    if not path.exists():
        return []
    space = problem.space
    trials: list[Trial] = []
    with path.open(newline="", encoding="utf-8") as f:
        lines = f.read().splitlines()
    reader = csv.DictReader(lines)
    for row in reader:
        if None in row or any(v is None for v in row.values()):
            continue  # torn write
        try:
            params = space.validate({n: row[n] for n in space.names})

            def num(k: str, row: dict[str, str] = row) -> float | None:
                return float(row[k]) if row.get(k) not in (None, "") else None

            trials.append(
                Trial(
                    trial=int(row["trial"]),
                    params=params,
                    status=row["status"],
                    value=num("value"),
                    best_so_far=num("best_so_far"),
                    regret=num("regret"),
                    phase=row["phase"],
                    surrogate=row["surrogate"],
                    acquisition=row["acquisition"],
                    fit_seconds=num("fit_seconds") or 0.0,
                    acq_seconds=num("acq_seconds") or 0.0,
                    eval_seconds=num("eval_seconds") or 0.0,
                    error=row.get("error", ""),
                    finished_at=num("finished_at") or 0.0,
                    predicted_mean=num("predicted_mean"),
                    predicted_sd=num("predicted_sd"),
                    extra=(
                        {"diagnostics": json.loads(row["diagnostics"])}
                        if row.get("diagnostics")
                        else {}
                    ),
                )
            )
        except (KeyError, ValueError) as e:
            raise RunError(f"{path}: row {reader.line_num}: cannot read ({e})") from None
    return trials


def _prepare_dir(out_dir: Path, config: RunConfig, resume: bool) -> None:
    cfg_path = out_dir / "config.json"
    if cfg_path.exists():
        saved = json.loads(cfg_path.read_text())
        if not resume:
            if (out_dir / "trials.csv").exists() and (out_dir / "trials.csv").stat().st_size:
                raise RunError(
                    f"--out {out_dir}: already holds a run; pass --resume to continue it "
                    "or choose another --out"
                )
        else:
            mine = asdict(config)
            for key in RunConfig.IDENTITY:
                if saved.get(key) != mine.get(key):
                    raise RunError(
                        f"--resume: {out_dir} was run with {key}={saved.get(key)!r}, "
                        f"not {mine.get(key)!r}"
                    )
    elif resume and not (out_dir / "trials.csv").exists():
        raise RunError(f"--resume: {out_dir} holds no run to resume")
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = cfg_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({**asdict(config), "saved_at": time.time()}, indent=2))
    os.replace(tmp, cfg_path)


def validate_config(config: RunConfig) -> None:
    """Fail at once, before any file is written, on settings that cannot run."""
    if config.budget < 1:
        raise RunError("--budget must be at least 1")
    if config.batch < 1:
        raise RunError("--batch must be at least 1")
    check_models(config.surrogate, config.acquisition, config.surrogate_options)


def run_optimization(
    problem: Problem,
    config: RunConfig,
    out_dir: str | Path | None = None,
    *,
    resume: bool = False,
    executor: cf.Executor | None = None,
    on_trial: Callable[[Trial], None] | None = None,
    on_suggest: Callable[[Suggestion, np.ndarray, np.ndarray], None] | None = None,
    on_resume: Callable[[int], None] | None = None,
) -> list[Trial]:
    """Optimize ``problem`` for ``config.budget`` evaluations; return every trial, oldest first.

    Evaluations run on ``executor`` (inline by default); up to ``max(workers, batch)`` are in flight
    at once and those still running are passed to the acquisition as pending points. A failed
    evaluation is recorded with its error and the run goes on. ``on_suggest(suggestion, X, y)`` sees
    each model-based proposal with the data it was made from (for calibration measurements).
    """
    space = problem.space
    validate_config(config)
    out = Path(out_dir) if out_dir is not None else None
    log: _TrialLog | None = None
    trials: list[Trial] = []
    if out is not None:
        _prepare_dir(out, config, resume)
        if resume:
            trials = load_trials(out, problem)
            if on_resume is not None:
                on_resume(len(trials))
        log = _TrialLog(out / "trials.csv", space.names)
    n_init = config.n_init if config.n_init is not None else default_n_init(space)
    slots = max(config.workers, config.batch, 1)
    own_executor = executor is None
    executor = executor or _default_executor(config)

    in_flight: dict[cf.Future, tuple[int, dict[str, Any], np.ndarray, Suggestion]] = {}
    next_id = len(trials)
    try:
        while True:
            remaining = config.budget - len(trials) - len(in_flight)
            free = slots - len(in_flight)
            if remaining > 0 and free > 0:
                q = min(config.batch, free, remaining)
                done = [t for t in trials if t.status == "complete"]
                X = space.encode([t.params for t in done])
                y = np.array([t.value for t in done], dtype=np.float64)
                pending = np.array([v[2] for v in in_flight.values()]).reshape(-1, space.dim)
                sug = suggest(
                    space,
                    X,
                    y,
                    q=q,
                    pending=pending,
                    surrogate=config.surrogate,
                    acquisition=config.acquisition,
                    surrogate_options=config.surrogate_options,
                    acquisition_options=config.acquisition_options,
                    seed=config.seed,
                    n_init=n_init,
                    n_issued=next_id,
                    device=config.device,
                )
                if on_suggest is not None and sug.info["phase"] == "model":
                    on_suggest(sug, X, y)
                for j, (params, x) in enumerate(zip(sug.params, sug.X, strict=True)):
                    fut = executor.submit(_evaluate, problem, params, config.seed * 7919 + next_id)
                    in_flight[fut] = (next_id, params, x, sug, j)
                    next_id += 1
                continue  # fill every free slot before waiting; running points are pending
            if not in_flight:
                break
            finished, _ = cf.wait(list(in_flight), return_when=cf.FIRST_COMPLETED)
            for fut in sorted(finished, key=lambda f: in_flight[f][0]):
                tid, params, _, sug, j = in_flight.pop(fut)
                try:
                    value, error, seconds = fut.result()
                except Exception as e:
                    value, error, seconds = None, f"{type(e).__name__}: {e}", 0.0
                trial = _record(problem, trials, tid, params, value, error, seconds, sug, j)
                trials.append(trial)
                if log is not None:
                    log.append(trial)
                if on_trial is not None:
                    on_trial(trial)
    finally:
        for fut in in_flight:
            fut.cancel()
        if own_executor:
            executor.shutdown(wait=False, cancel_futures=True)
    return trials


def _record(
    problem: Problem,
    trials: list[Trial],
    tid: int,
    params: dict[str, Any],
    value: float | None,
    error: str,
    seconds: float,
    sug: Suggestion,
    index: int = 0,
) -> Trial:
    values = [t.value for t in trials if t.status == "complete"]
    if value is not None:
        values.append(value)
    best = best_observed(problem.space, values)
    info = sug.info
    pred = (info.get("predictions") or [{}] * (index + 1))[index]
    return Trial(
        trial=tid,
        params=params,
        status="complete" if value is not None else "failed",
        value=value,
        best_so_far=best,
        regret=problem.regret(best),
        phase=info["phase"],
        surrogate=info["surrogate"],
        acquisition=info["acquisition"],
        fit_seconds=float(info.get("fit_seconds", 0.0)) / max(len(sug.params), 1),
        acq_seconds=float(info.get("acq_seconds", 0.0)) / max(len(sug.params), 1),
        eval_seconds=seconds,
        error=error,
        finished_at=time.time(),
        predicted_mean=pred.get("mean"),
        predicted_sd=pred.get("sd"),
        extra={"diagnostics": info.get("diagnostics", {})},
    )


def _default_executor(config: RunConfig) -> cf.Executor:
    from bocli.executors import make_executor

    return make_executor(config.workers, config.scheduler)
