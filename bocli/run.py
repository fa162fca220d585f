"""The one optimization loop: ask -> evaluate -> tell, over a study.

``bocli run`` and the cells of ``bocli compare`` drive a study (``bocli.storage``) through this loop,
and ``bocli ask`` / ``bocli tell`` are its two halves done by hand. The study is the only state:

- **Asking** is ``bocli.study.ask_open``: completed trials are the data, pending *and failed* trials
  are pending points (so neither is proposed again), and the Sobol design continues from the number
  of trials ever issued. The new trials are stored as pending, marked with this run's id
  (``runner``) and ``attempts = 1``, *before* they are evaluated.
- **Telling** records each finished evaluation in one transaction (``complete`` with its value, or
  ``failed`` with the reason), then rewrites ``trials.csv`` (an export, never read back).
- **Resuming**: a run holds an exclusive lock on its study file while it runs, so a pending trial
  with a runner, found by the next run, was in flight when its run died. It is evaluated again
  under the same trial id and parameters if that was its first attempt, and marked abandoned
  (with a line saying so) if it was already the second: nothing finished is repeated or lost, and
  nothing is evaluated more than twice. Trials asked by a person (no runner) are left to them and
  stay pending points.
- **Budget**: the run stops when the study holds ``budget`` trials that are not abandoned.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import fcntl
import json
import math
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from bocli.engine import Suggestion, check_device, check_models
from bocli.errors import UserError
from bocli.storage import StaleSnapshotError, StudyStorage, TrialRecord, TrialUpdate
from problems.base import ObjectiveError, Problem

__all__ = [
    "RunConfig",
    "RunError",
    "RunPlan",
    "Trial",
    "load_problem",
    "merge_settings",
    "optimize",
    "plan_run",
    "run_optimization",
    "saved_config",
    "validate_config",
]

RUN_META_KEY = "run"  # the study's meta entry holding a run's settings (JSON of RunConfig)
STUDY_FILE = "study.db"
EXPORT_FILE = "trials.csv"
# an evaluation faster than this is cheaper to recompute than its result's fsync: the commits that
# follow it survive any crash or kill, and reach the disk (power-cut safe) at the next slower
# evaluation or at the end of the run (StudyStorage.set_durable)
FAST_EVAL_S = 0.05
MAX_SEED = 2**32 - 1  # what every random generator of a run accepts


class RunError(UserError, ValueError):
    """A run cannot start or resume (bad settings, a run directory that does not match)."""


@dataclass
class RunConfig:
    """Settings of one optimization run (saved in its study, ``meta['run']``)."""

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
    # --fix: parameter values every proposed point takes (name -> value as given)
    fixed: dict[str, Any] = field(default_factory=dict)
    # how to rebuild a user objective on --resume: space_file, command, command_mode, timeout
    objective: dict[str, Any] = field(default_factory=dict)

    # settings a resumed run cannot change (they define the problem and its design)
    FIXED = ("problem", "seed", "n_init")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})


@dataclass
class Trial:
    """One finished evaluation, as the progress display and ``compare`` see it."""

    trial: int  # the study's trial id
    params: dict[str, Any]
    status: str  # complete | failed
    value: float | None  # the (first) objective's value
    best_so_far: float | None  # best feasible value so far; several objectives: the hypervolume
    regret: float | None  # several objectives: log10 hypervolume regret (known max_hv only)
    phase: str
    surrogate: str
    acquisition: str
    fit_seconds: float
    acq_seconds: float
    eval_seconds: float
    error: str = ""
    finished_at: str = ""  # UTC ISO 8601
    predicted_mean: float | None = None  # what the model expected (None for the Sobol design)
    predicted_sd: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    outcomes: dict[str, float] | None = None  # every outcome (several outcomes only)
    feasible: bool | None = None  # satisfies the outcome constraints (complete trials)


def validate_config(config: RunConfig, space: Any = None) -> None:
    """Fail at once, before any file is written, on settings that cannot run: counts, the
    surrogate x acquisition pair and their options (checked against ``space`` when given), the
    device and the scheduler's address (its form; ``plan_run`` also checks that it answers)."""
    if (
        isinstance(config.seed, bool)
        or not isinstance(config.seed, int)
        or not (0 <= config.seed <= MAX_SEED)
    ):
        raise RunError(f"--seed: expected a whole number from 0 to {MAX_SEED}, got {config.seed!r}")
    for name in ("budget", "batch", "workers"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RunError(f"--{name}: expected a whole number >= 1, got {value!r}")
    if config.n_init is not None and (
        isinstance(config.n_init, bool) or not isinstance(config.n_init, int) or config.n_init < 0
    ):
        raise RunError(f"--init: expected a whole number >= 0, got {config.n_init!r}")
    if config.scheduler is not None:
        from bocli.executors import parse_scheduler

        try:
            parse_scheduler(config.scheduler)
        except ValueError as e:
            raise RunError(f"--scheduler {e}") from None
    check_models(
        config.surrogate,
        config.acquisition,
        config.surrogate_options,
        config.acquisition_options,
        space=space,
    )
    if config.fixed and space is not None:  # before the run folder exists
        from bocli.constraints import check_fixed

        check_fixed(space, config.fixed)
    check_device(config.device)


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise RunError(
            f"--timeout: expected a positive, finite number of seconds, got {timeout!r} "
            "(leave it out for no limit)"
        )


def _check_scheduler_answers(config: RunConfig) -> None:
    """A ``tcp://`` scheduler that does not answer fails here, within seconds, not after the
    run folder exists."""
    if config.scheduler:
        from bocli.executors import check_scheduler_reachable

        try:
            check_scheduler_reachable(config.scheduler)
        except ValueError as e:
            raise RunError(f"--scheduler {e}") from None


def saved_config(st: StudyStorage) -> RunConfig | None:
    """The settings the study's last run was started with, or None (an ask-tell study)."""
    text = st.meta().get(RUN_META_KEY)
    return RunConfig.from_json(text) if text else None


def merge_settings(
    saved: RunConfig, given: dict[str, Any], explicit: set[str]
) -> tuple[RunConfig, list[str]]:
    """A resumed run's settings: the saved ones, except those the user passed explicitly.

    Args:
        saved: The settings stored in the study.
        given: The values of this invocation (option name -> value), defaults included.
        explicit: The option names the user typed.

    Returns:
        The merged settings and one line per setting that changed (for the user).

    Raises:
        RunError: An explicit value that cannot apply to a resumed run (problem, seed, design).
    """
    merged = RunConfig(**asdict(saved))
    notes: list[str] = []
    settings = {f.name for f in fields(RunConfig)} - {"objective"}
    for name in sorted(explicit & set(given) & settings):
        new, old = given[name], getattr(saved, name)
        if new == old:
            continue
        if name in RunConfig.FIXED:
            raise RunError(
                f"--{name.replace('_', '-')}: this run was started with {old!r}, which cannot "
                f"change on resume; start a new run (another --out) for {new!r}"
            )
        setattr(merged, name, new)
        notes.append(f"resume: {name.replace('_', ' ')} {_show(old)} -> {_show(new)}")
    for name in sorted(explicit & {"timeout", "command", "command_mode"}):
        new, old = given[name], saved.objective.get(name)
        if new != old:
            merged.objective = {**merged.objective, name: new}
            notes.append(f"resume: {name.replace('_', ' ')} {_show(old)} -> {_show(new)}")
    return merged, notes


def _show(v: Any) -> str:
    if isinstance(v, dict):
        return ",".join(f"{k}={x}" for k, x in v.items()) or "(none)"
    return str(v)


# ----- the loop -----------------------------------------------------------------------------------
def _evaluate(
    problem: Problem, params: dict[str, Any], seed: int
) -> tuple[dict[str, float] | None, str, float]:
    """Evaluate in whatever process the executor chose; never raises for an objective failure.

    Returns:
        Every outcome's value (None when the evaluation failed), why it failed, and seconds.
    """
    t0 = time.perf_counter()
    try:
        values = problem.evaluate_outcomes(params, rng=np.random.default_rng(seed))
        return values, "", time.perf_counter() - t0
    except ObjectiveError as e:
        return None, str(e), time.perf_counter() - t0
    except MemoryError:  # this process is out of memory: not one point's failure, so it surfaces
        raise
    except Exception as e:  # an objective built in code may raise anything: a failed trial
        return None, f"{type(e).__name__}: {e}", time.perf_counter() - t0


@contextlib.contextmanager
def study_lock(path: Path) -> Iterator[None]:
    """Hold the exclusive run lock of a study (an ``flock`` on the file, released by the kernel
    when the process dies): one run at a time drives a study; ``ask``/``tell`` are not blocked."""
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError(
                f"{path}: another `bocli run` is driving this study; wait for it to finish "
                "(ask/tell by hand still work meanwhile)"
            ) from None
        yield
    finally:
        os.close(fd)


def optimize(
    problem: Problem,
    study: str | Path,
    config: RunConfig,
    *,
    export: str | Path | None = None,
    executor: cf.Executor | None = None,
    retry_failed: bool = False,
    on_trial: Callable[[Trial], None] | None = None,
    on_suggest: Callable[[Suggestion, np.ndarray, np.ndarray], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> list[Trial]:
    """Drive ``study`` until it holds ``config.budget`` trials that are not abandoned.

    Evaluations run on ``executor`` (inline by default); up to ``max(workers, batch)`` are in
    flight at once and are pending points of every proposal. A failed evaluation is stored as a
    failed trial with its reason, and the run goes on. ``export`` is rewritten (atomically) after
    each finished evaluation. ``retry_failed`` evaluates every failed trial once more, on purpose.

    Returns:
        Every finished trial of the study (complete or failed), in trial-id order.
    """
    from bocli.study import ExportFile, ask_open, stored_reference_point

    path = Path(study)
    notes = on_note or (lambda msg: None)
    runner = uuid.uuid4().hex[:12]
    slots = max(config.workers, config.batch, 1)
    own_executor = executor is None
    in_flight: dict[cf.Future, TrialRecord] = {}
    starting: list[TrialRecord] = []  # submitted but not yet in flight (an inline evaluation)
    with StudyStorage.open(path) as st, study_lock(path):
        s = st.settings
        space = s.space
        fixed = {}
        if config.fixed:  # --fix: checked against the space (a one-line error, nothing asked)
            from bocli.constraints import check_fixed

            fixed = check_fixed(space, config.fixed)

        def ref_point() -> list[float] | None:
            ref = stored_reference_point(st)
            return None if ref is None else ref[0]

        exporter = ExportFile(export, space, s.problem, ref_point) if export is not None else None

        queue = _recover(st, runner, retry_failed, notes)
        so_far = _SoFar(space, problem, ref_point)
        for r in st.trials():
            if r.state in ("complete", "failed"):
                so_far.add(r)
        if exporter is not None:
            exporter.rewrite(st.trials())
        executor = executor or _default_executor(config)
        try:
            while True:
                free = slots - len(in_flight)
                if free > 0 and queue:
                    starting[:] = [queue.pop(0)]
                    in_flight[_submit(executor, problem, starting[0], config.seed)] = starting[0]
                    starting.clear()
                    continue
                n_counted = sum(t.state != "abandoned" for t in st.trials())
                remaining = config.budget - n_counted
                if free > 0 and remaining > 0:
                    asked = ask_open(
                        st,
                        min(config.batch, free, remaining),
                        surrogate=config.surrogate,
                        acquisition=config.acquisition,
                        surrogate_options=config.surrogate_options,
                        acquisition_options=config.acquisition_options,
                        device=config.device,
                        runner=runner,
                        on_suggest=on_suggest,
                        fixed=fixed or None,
                    )
                    starting[:] = asked.trials
                    while starting:
                        t = starting[0]
                        in_flight[_submit(executor, problem, t, config.seed)] = t
                        starting.pop(0)
                    continue  # fill every free slot before waiting; running points are pending
                if not in_flight:
                    break
                done, _ = cf.wait(list(in_flight), return_when=cf.FIRST_COMPLETED)
                for fut in sorted(done, key=lambda f: in_flight[f].trial_id):
                    t = in_flight.pop(fut)
                    try:
                        value, error, seconds = fut.result()
                    except Exception as e:  # the executor itself failed (a worker died)
                        value, error, seconds = None, f"{type(e).__name__}: {e}", 0.0
                    st.set_durable(seconds >= FAST_EVAL_S)
                    if not _tell(st, space, t, value, error, seconds, notes):
                        continue
                    record = st.trials()[t.trial_id]
                    best, regret = so_far.add(record)
                    if exporter is not None:
                        exporter.append(record, best, regret)
                    if on_trial is not None:
                        on_trial(_trial(space, record, best, regret))
        except BaseException:
            # interrupted (Ctrl-C) or failed: what was running did not finish, so it does not
            # count as an attempt; the next run evaluates it under the same trial id
            _release(st, [*in_flight.values(), *starting])
            raise
        finally:
            for fut in in_flight:
                fut.cancel()
            if own_executor:
                executor.shutdown(wait=False, cancel_futures=True)
            st.set_durable(True)
            st.sync()
            if exporter is not None:  # the canonical file: every finished trial, by id
                exporter.rewrite(st.trials())
        return _finished_trials(space, st.trials(), problem, None, ref_point())


def _submit(executor: cf.Executor, problem: Problem, t: TrialRecord, seed: int) -> cf.Future:
    # the noise of a noisy problem is seeded by the trial id: a re-evaluation measures the same
    return executor.submit(_evaluate, problem, t.params, seed * 7919 + t.trial_id)


def _recover(
    st: StudyStorage, runner: str, retry_failed: bool, notes: Callable[[str], None]
) -> list[TrialRecord]:
    """Claim what an earlier run left in flight (and, with ``retry_failed``, the failed trials);
    return the trials to evaluate first."""
    queue: list[TrialRecord] = []
    resumed: list[int] = []
    retried: list[int] = []
    with st.write() as w:
        for t in w.trials():
            if t.state == "pending" and t.runner is not None:
                if t.attempts >= 2:
                    w.update(t, TrialUpdate(t.trial_id, "abandoned"), "run (resume)")
                    notes(
                        f"trial {t.trial_id} was being evaluated when a run stopped, for the "
                        "second time; marked abandoned (not evaluated a third time)"
                    )
                    continue
                w.claim(t.trial_id, runner, t.attempts + 1)
                queue.append(t)
                resumed.append(t.trial_id)
            elif t.state == "failed" and retry_failed:
                w.update(t, TrialUpdate(t.trial_id, "pending"), "run --retry-failed")
                w.claim(t.trial_id, runner, 1)
                queue.append(TrialRecord(t.trial_id, t.params, "pending", None, t.phase))
                retried.append(t.trial_id)
    if resumed:
        notes(f"evaluating again the trials in flight when the last run stopped: {_ids(resumed)}")
    if retried:
        notes(f"--retry-failed: evaluating failed trials once more: {_ids(retried)}")
    return queue


def _ids(ids: list[int]) -> str:
    return ", ".join(map(str, ids[:20])) + (f" (+{len(ids) - 20} more)" if len(ids) > 20 else "")


def _tell(
    st: StudyStorage,
    space: Any,
    t: TrialRecord,
    values: dict[str, float] | None,
    error: str,
    seconds: float,
    notes: Callable[[str], None],
) -> bool:
    """Record one finished evaluation; False if a person told this trial meanwhile (theirs wins)."""
    state = "complete" if values is not None else "failed"
    value = None if values is None else values[space.objective.name]
    several = values is not None and not space.is_single_outcome
    outcomes = {n: values[n] for n in space.outcome_names} if several else None  # type: ignore[index]
    update = TrialUpdate(t.trial_id, state, value, error or None, seconds, outcomes)
    pending = TrialRecord(t.trial_id, t.params, "pending", None, t.phase)
    try:
        with st.write() as w:
            w.update(pending, update, "run")
    except StaleSnapshotError:
        notes(f"trial {t.trial_id} was told by hand while it ran; kept the told result")
        return False
    return True


def _release(st: StudyStorage, trials: list[TrialRecord]) -> None:
    """Undo the attempt count of evaluations that were stopped before they finished."""
    if not trials:
        return
    with contextlib.suppress(Exception), st.write() as w:
        current = {t.trial_id: t for t in w.trials()}
        for t in trials:
            now = current.get(t.trial_id)
            if now is not None and now.state == "pending" and now.runner is not None:
                w.claim(t.trial_id, now.runner, max(now.attempts - 1, 0))


def _finished_trials(
    space: Any,
    records: list[TrialRecord],
    problem: Problem,
    upto: int | None = None,
    ref_point: list[float] | None = None,
) -> list[Trial]:
    """The finished trials (up to trial id ``upto``) with best-so-far and regret (with several
    objectives: hypervolume against ``ref_point``, and log hypervolume regret)."""
    from bocli.study import best_so_far

    out: list[Trial] = []
    for t, best, regret in best_so_far(space, records, problem.regret, ref_point):
        if upto is not None and t.trial_id > upto:
            break
        if t.state not in ("complete", "failed"):
            continue
        out.append(_trial(space, t, best, regret))
    return out


def _trial(space: Any, t: TrialRecord, best: float | None, regret: float | None) -> Trial:
    from bocli.study import _feasible

    return Trial(
        trial=t.trial_id,
        params=t.params,
        status=t.state,
        value=t.value,
        best_so_far=best,
        regret=regret,
        phase=t.phase,
        surrogate=t.surrogate or "",
        acquisition=t.acquisition or "",
        fit_seconds=t.fit_seconds or 0.0,
        acq_seconds=t.acq_seconds or 0.0,
        eval_seconds=t.eval_seconds or 0.0,
        error=t.error or "",
        finished_at=t.completed_at or "",
        predicted_mean=t.predicted_mean,
        predicted_sd=t.predicted_sd,
        extra={"diagnostics": t.diagnostics or {}},
        outcomes=t.outcomes,
        feasible=_feasible(space, t) if t.state == "complete" else None,
    )


class _SoFar:
    """Best-so-far (several objectives: hypervolume) as trials finish, updated incrementally: one
    comparison, or one ``HypervolumeTracker.add``, per finished trial. With several objectives
    and no reference point yet, nothing is counted; when the point appears (frozen at the first
    model-based proposal), the trials finished so far are added once."""

    def __init__(
        self, space: Any, problem: Problem, ref_point: Callable[[], list[float] | None]
    ) -> None:
        self.space, self.problem, self.ref_point = space, problem, ref_point
        self.best: float | None = None
        self.done: list[TrialRecord] = []
        self.tracker: Any = None

    def add(self, t: TrialRecord) -> tuple[float | None, float | None]:
        """Count one finished trial -> (best so far, its regret)."""
        from bocli.study import _feasible, outcome_matrix

        space = self.space
        if t.state == "complete":
            self.done.append(t)
        if not space.is_multi_objective:
            if t.state == "complete" and _feasible(space, t):
                sign = space.objective.sign
                if self.best is None or sign * t.value > sign * self.best:  # type: ignore[operator]
                    self.best = t.value
            return self.best, self.problem.regret(self.best)
        if self.tracker is None:
            ref = self.ref_point()
            if ref is None:
                return None, None
            from bocli.pareto import HypervolumeTracker

            self.tracker = HypervolumeTracker([o.direction for o in space.objectives], ref)
            pending = self.done  # everything finished so far, once
        else:
            pending = [t] if t.state == "complete" else []
        m = len(space.objectives)
        for r in pending:
            y = outcome_matrix(space, [r])
            self.tracker.add(y[0, :m], feasible=bool(space.feasible(y)[0]))
        self.best = self.tracker.hv
        return self.best, self.problem.regret(self.best)


# ----- a run from settings: new, resumed, or on a temporary study ----------------------------------
def create_run_study(path: Path, problem: Problem, config: RunConfig, registered: bool) -> None:
    """Make the study of a new run and store its settings."""
    from bocli.study import init_study

    init_study(
        path,
        space=None if registered else problem.space,
        problem=config.problem if registered else None,
        surrogate=config.surrogate,
        acquisition=config.acquisition,
        surrogate_options=config.surrogate_options,
        acquisition_options=config.acquisition_options,
        seed=config.seed,
        n_init=config.n_init,
        check_models=False,  # validate_config did
    )
    with StudyStorage.open(path) as st:
        st.set_meta(RUN_META_KEY, config.to_json())


def is_registered(problem: Problem) -> bool:
    """Whether ``problem`` is the registry's problem of that name (then the study records the
    name, and ``status``/``best``/exports know its optimum)."""
    if "user" in problem.tags:
        return False
    from problems import get_problem

    try:
        return get_problem(problem.name).space.to_json() == problem.space.to_json()
    except UserError:  # not registered (a problem built in code): UnknownProblemError
        return False


def check_out_dir(out: Path, resume: bool) -> Path:
    """The study of run folder ``out``; refuses a folder that does not fit ``resume``."""
    study = out / STUDY_FILE
    old_format = (out / "config.json").exists() and not study.exists()
    if old_format:
        raise RunError(
            f"--out {out}: holds a run written by an older bocli (config.json + trials.csv, no "
            f"{STUDY_FILE}), which cannot be resumed safely; start again with another --out "
            "(the old files stay as they are)"
        )
    if resume and not study.exists():
        raise RunError(f"--resume: {out} holds no run to resume (no {STUDY_FILE})")
    if not resume and study.exists():
        raise RunError(
            f"--out {out}: already holds a run; pass --resume to continue it or choose another --out"
        )
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out}: is a file, not a folder")
    return study


def run_optimization(
    problem: Problem,
    config: RunConfig,
    out_dir: str | Path | None = None,
    *,
    executor: cf.Executor | None = None,
    on_trial: Callable[[Trial], None] | None = None,
    on_suggest: Callable[[Suggestion, np.ndarray, np.ndarray], None] | None = None,
) -> list[Trial]:
    """Optimize a registered ``problem`` (or a user one) for ``config.budget`` evaluations.

    With ``out_dir`` (a new folder) the run lives in ``out_dir/study.db`` and
    ``out_dir/trials.csv``; without, in a temporary study that is deleted afterwards
    (``compare``'s cells, tests). Resuming is ``plan_run``'s. Returns every finished trial,
    oldest first.
    """
    validate_config(config, problem.space)
    registered = is_registered(problem)
    if out_dir is None:
        with tempfile.TemporaryDirectory(prefix="bocli-run-") as tmp:
            study = Path(tmp) / STUDY_FILE
            create_run_study(study, problem, config, registered)
            return optimize(
                problem, study, config, executor=executor, on_trial=on_trial, on_suggest=on_suggest
            )
    out = Path(out_dir)
    study = check_out_dir(out, resume=False)
    out.mkdir(parents=True, exist_ok=True)
    create_run_study(study, problem, config, registered)
    return optimize(
        problem,
        study,
        config,
        export=out / EXPORT_FILE,
        executor=executor,
        on_trial=on_trial,
        on_suggest=on_suggest,
    )


@dataclass
class RunPlan:
    """What ``bocli run`` will do: the objective, the study it drives, the settings, and the
    lines to show the user before it starts."""

    problem: Problem
    study: Path
    config: RunConfig
    export: Path | None
    notes: list[str] = field(default_factory=list)
    finished: int = 0  # trials already finished in the study (a resumed run)


def load_problem(
    target: str | None,
    space: Any = None,
    *,
    space_file: str | None = None,
    command: str | None = None,
    command_mode: str = "stdin",
    timeout: float | None = None,
    cwd: str | None = None,
) -> Problem:
    """Resolve ``PROBLEM`` / ``--space`` / ``--command`` to a Problem (user errors name the option).

    ``cwd``: the folder an external command runs in (None: the caller's).

    ``space`` (a Space) is used for user objectives when given (a study's own space); otherwise
    ``space_file`` is read.
    """
    import shlex

    from bocli.space import Space

    _check_timeout(timeout)

    def user_space() -> Any:
        if space is not None:
            return space
        if not space_file:
            raise RunError("a user objective needs --space FILE describing its parameters")
        return Space.from_file(space_file)

    if command is not None:
        from problems.user import command_problem

        try:
            argv = shlex.split(command)
        except ValueError as e:  # an unclosed quote
            raise RunError(f"--command {command!r}: {e} (it is split like a shell would)") from None
        if not argv:
            raise RunError("--command: empty command; give the program to run and its arguments")
        try:
            return command_problem(
                argv, user_space(), timeout=timeout or 600.0, mode=command_mode, cwd=cwd
            )
        except ValueError as e:
            raise RunError(f"--command: {e}") from None
    if target is None:
        raise RunError("give a PROBLEM (see `bocli problems`), or --space with --command")
    if space_file or space is not None or not names_registered_problem(target):
        from problems.user import python_problem

        try:
            return python_problem(target, user_space(), timeout=timeout)
        except ValueError as e:
            raise RunError(str(e)) from None
    from problems import get_problem

    return get_problem(target)


def names_registered_problem(target: str) -> bool:
    """Whether ``target`` names a registered problem (``NAME`` or ``NAME:key=value``), not a user
    objective (``module:function``, ``file.py:function``)."""
    if ":" not in target:
        return True
    from problems.registry import PROBLEMS, _load_builtin

    name, _, rest = target.partition(":")
    _load_builtin()
    return "=" in rest and name.strip() in PROBLEMS


def plan_run(
    target: str | None,
    given: dict[str, Any],
    explicit: set[str],
    *,
    out: str | None = None,
    study: str | None = None,
    resume: bool = False,
) -> RunPlan:
    """Work out a run before anything is evaluated: new, resumed (``--out DIR --resume``), or on an
    existing ask-tell study (``--study FILE``). Every check happens here; the only file written is
    a new run's study (or, for an existing study, its saved settings).

    Args:
        target: ``PROBLEM`` as typed (a registered name, ``module:function``), or None.
        given: This invocation's settings: RunConfig fields plus ``space_file``, ``command``,
            ``command_mode``, ``timeout`` (defaults included).
        explicit: The names in ``given`` that the user typed.
    """
    objective = {k: given[k] for k in ("space_file", "command", "command_mode", "timeout")}
    if objective["command"] is not None and not objective["command"].strip():
        raise RunError("--command: empty command; give the program to run and its arguments")
    if study is not None and out is not None:
        raise RunError("--study and --out: give one (an existing study, or a run folder)")
    if study is None:
        name = target if target else ("command" if objective["command"] else None)
        if out is None:
            if name is None:
                raise RunError("give a PROBLEM (see `bocli problems`), or --space with --command")
            slug = "".join(c if c.isalnum() or c in "_.-" else "_" for c in name)
            out = f"runs/{slug}-{given['surrogate']}-{given['acquisition']}-s{given['seed']}"
        study_path = check_out_dir(Path(out), resume)
        export: Path | None = Path(out) / EXPORT_FILE
        if not resume:
            return _plan_new(target, name, given, objective, Path(out), study_path)
    else:
        study_path, export = Path(study), None
    return _plan_existing(target, given, explicit, objective, study_path, export)


def _config(name: str, given: dict[str, Any], objective: dict[str, Any]) -> RunConfig:
    keep = {f.name for f in fields(RunConfig)} - {"problem", "objective"}
    stored = {k: v for k, v in objective.items() if v is not None}
    if stored.get("space_file"):
        stored["space_file"] = str(Path(stored["space_file"]).resolve())
    stored["cwd"] = os.getcwd()  # where a user objective's module or command is found again
    return RunConfig(problem=name, objective=stored, **{k: given[k] for k in keep})


def _plan_new(
    target: str | None,
    name: str | None,
    given: dict[str, Any],
    objective: dict[str, Any],
    out: Path,
    study: Path,
) -> RunPlan:
    assert name is not None
    config = _config(name, given, objective)
    validate_config(config)  # the cheap checks first: a typo fails before an objective is loaded
    problem = load_problem(target, **objective)
    validate_config(config, problem.space)
    _check_scheduler_answers(config)
    registered = is_registered(problem)
    # everything is checked: only now is anything written, and a failure removes what was made
    made = [p for p in [out, *out.parents] if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        create_run_study(study, problem, config, registered=registered)
    except BaseException:
        _remove_new(out, study, made)
        raise
    return RunPlan(problem, study, config, out / EXPORT_FILE)


def _remove_new(out: Path, study: Path, made: list[Path]) -> None:
    """Undo a new run's folder: the study files written in it, then the folders that were made."""
    for suffix in ("", "-journal", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            Path(f"{study}{suffix}").unlink()
    if out in made:
        shutil.rmtree(out, ignore_errors=True)
    for folder in made[1:]:  # parents made by mkdir(parents=True), innermost first
        with contextlib.suppress(OSError):
            folder.rmdir()


def _plan_existing(
    target: str | None,
    given: dict[str, Any],
    explicit: set[str],
    objective: dict[str, Any],
    path: Path,
    export: Path | None,
) -> RunPlan:
    with StudyStorage.open(path) as st:
        s = st.settings
        saved = saved_config(st)
        trials = st.trials()
    if saved is None:  # an ask-tell study driven by a run for the first time: its own settings
        base = {**given, "surrogate": s.surrogate, "acquisition": s.acquisition,
                "surrogate_options": s.surrogate_options,
                "acquisition_options": s.acquisition_options, "seed": s.seed,
                "n_init": s.n_init}  # fmt: skip
        name = target or s.problem or ("command" if objective["command"] else None)
        if name is None:
            raise RunError(
                f"{path}: this study has no registered problem; give the objective as PROBLEM "
                "(module:function or file.py:function) or --command"
            )
        saved = _config(name, base, objective)
    user_gave_objective = target is not None or "command" in explicit
    given = {**given, "problem": target or ("command" if objective["command"] else saved.problem)}
    if user_gave_objective:
        explicit = explicit | {"problem"}
    config, notes = merge_settings(saved, given, explicit)
    if user_gave_objective:
        stored = _config(config.problem, given, objective).objective
        config.objective = stored
    obj = config.objective
    if "space_file" in explicit and obj.get("space_file"):
        from bocli.space import Space

        if Space.from_file(obj["space_file"]).to_json() != s.space.to_json():
            raise RunError(
                f"--space {obj['space_file']}: differs from the space of {path}; a study's space "
                "cannot change (start a new run for another space)"
            )
    validate_config(config)  # the cheap checks first, before an objective is loaded
    registered = (
        config.problem != "command"
        and not obj.get("space_file")
        and names_registered_problem(config.problem)
    )
    # a run resumed from another folder finds its objective where it was started
    home = obj.get("cwd")
    if registered or user_gave_objective or not home or not Path(home).is_dir():
        home = None
    with contextlib.chdir(home) if home else contextlib.nullcontext():
        problem = load_problem(
            None if config.problem == "command" else config.problem,
            None if registered else s.space,
            command=obj.get("command"),
            command_mode=obj.get("command_mode", "stdin"),
            timeout=obj.get("timeout"),
            cwd=home,
        )
    if registered and problem.space.to_json() != s.space.to_json():
        raise RunError(
            f"{path}: the study's space is not the space of problem {config.problem!r}; give the "
            "study's own objective as PROBLEM (module:function) or --command"
        )
    validate_config(config, s.space)
    _check_scheduler_answers(config)
    with study_lock(path):  # refused now if another run drives it, before anything is written
        pass
    with StudyStorage.open(path) as st:
        st.set_meta(RUN_META_KEY, config.to_json())
    finished = sum(t.state in ("complete", "failed") for t in trials)
    return RunPlan(problem, path, config, export, notes, finished)


def _default_executor(config: RunConfig) -> cf.Executor:
    from bocli.executors import make_executor

    return make_executor(config.workers, config.scheduler)
