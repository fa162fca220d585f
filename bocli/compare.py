"""Comparison grids: problems x surrogates x acquisitions x seeds, run in parallel, resumable.

Every cell is one call of :func:`bocli.run.run_optimization` (the one BO loop) inside a worker, with
its evaluations inline there. Cells of one problem and seed share the initial design (the engine's
Sobol design depends only on the space and the seed). A results directory holds:

- ``compare.json``: the grid's settings, every command that ran it, and library versions;
- ``evaluations.csv`` (or ``.parquet``): one row per evaluation (value, best so far, regret, fit and
  acquisition seconds, the parameters as JSON). With several objectives ``value`` is the first
  objective's, ``best_so_far``/``regret`` are the hypervolume so far and its log10 regret (as in
  ``bocli.run.Trial``), also under their own names ``hypervolume`` and ``log_hv_regret`` (empty for
  a single objective, and when the problem's maximum hypervolume is unknown), ``outcomes`` holds
  every outcome's value as JSON and ``feasible`` whether the outcome constraints hold (1/0). Results
  written before these columns existed still load (the columns read as empty);
- ``calibration.csv`` (or ``.parquet``): one row per refit on single-outcome problems with a known
  function (held-out log-likelihood, 90% coverage, RMSE; see ``bocli/calibration.py``); problems
  with several outcomes (objectives or constraints) are not scored;
- ``cells.csv``: the ledger, one row per finished cell (``ok`` or ``failed`` with its error).

A cell's rows are written first and its ledger row last, each fsynced, so the ledger says what is
finished: on resume, rows of a cell without a ledger row (a crash between the two writes) are dropped
and the cell runs again; cells in the ledger never run again (``retry_failed`` reruns failed ones).
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import json
import math
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bocli.errors import UserError

__all__ = [
    "CALIBRATION_FIELDS",
    "CELL_FIELDS",
    "EVAL_FIELDS",
    "PRESETS",
    "Cell",
    "CellResult",
    "CompareConfig",
    "CompareError",
    "GridSummary",
    "load_results",
    "run_cell",
    "run_grid",
    "versions",
]

CELL_KEYS = ["problem", "surrogate", "acquisition", "seed"]
EVAL_FIELDS = [
    *CELL_KEYS,
    "trial",
    "phase",
    "status",
    "value",
    "best_so_far",
    "regret",
    "fit_seconds",
    "acq_seconds",
    "eval_seconds",
    "error",
    "params",
    # several objectives (empty otherwise); appended, so results without them still read
    "hypervolume",
    "log_hv_regret",
    "outcomes",
    "feasible",
]
#: the columns of evaluations.csv before several objectives (still accepted when reading)
LEGACY_EVAL_FIELDS = EVAL_FIELDS[: EVAL_FIELDS.index("hypervolume")]
CALIBRATION_FIELDS = [*CELL_KEYS, "refit", "n_train", "loglik", "coverage", "rmse", "scale"]
CELL_FIELDS = [
    *CELL_KEYS,
    "status",
    "error",
    "n_evaluations",
    "seconds",
    "cpu_seconds",
    "worker",
    "finished_at",
]


class CompareError(UserError, ValueError):
    """A grid cannot start or resume (bad names, a results directory of another grid)."""


# --------------------------------------------------------------------------------------------
# the grid
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One run of the grid."""

    problem: str
    surrogate: str
    acquisition: str
    seed: int

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.problem, self.surrogate, self.acquisition, self.seed)

    def __str__(self) -> str:
        return f"{self.problem} {self.surrogate}/{self.acquisition} seed {self.seed}"


@dataclass
class CompareConfig:
    """Settings of a grid (saved in compare.json).

    The lists may grow between invocations on the same directory (new cells are added); the settings
    in ``IDENTITY`` must not change, since they change what every finished cell would have computed.
    """

    problems: list[str]
    surrogates: list[str] = field(default_factory=lambda: ["gp"])
    acquisitions: list[str] = field(default_factory=lambda: ["ei"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    budget: int = 30
    n_init: int | None = None
    device: str = "cpu"
    surrogate_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    acquisition_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    calibration_points: int = 256
    table: str = "csv"
    cell_threads: int = 1

    IDENTITY = (
        "budget",
        "n_init",
        "surrogate_options",
        "acquisition_options",
        "calibration_points",
        "table",
    )

    def cells(self) -> list[Cell]:
        """Every cell, ordered problem, seed, surrogate, acquisition (so the first cells finished
        already cover every method on one problem)."""
        return [
            Cell(p, s, a, seed)
            for p in self.problems
            for seed in self.seeds
            for s in self.surrogates
            for a in self.acquisitions
        ]


PRESETS: dict[str, dict[str, Any]] = {
    # a few minutes on a laptop core: two classic problems, the fast surrogates, EI
    "quick": {
        "problems": ["branin", "hartmann6"],
        "surrogates": ["gp", "ibnn", "ensemble"],
        "acquisitions": ["ei"],
        "seeds": 3,
        "budget": 16,
        "n_init": 8,
    },
}


def preset(name: str) -> dict[str, Any]:
    """A preset's settings, keeping only surrogates that are installed."""
    from surrogates.registry import surrogate_names

    if name not in PRESETS:
        raise CompareError(f"--preset: unknown preset '{name}'; choose from: {', '.join(PRESETS)}")
    out = dict(PRESETS[name])
    have = set(surrogate_names())
    out["surrogates"] = [s for s in out["surrogates"] if s in have]
    return out


@dataclass
class CellSpec:
    """What a worker needs to run one cell (picklable; the problem is rebuilt by name there)."""

    cell: Cell
    budget: int
    n_init: int | None
    device: str
    surrogate_options: dict[str, Any]
    acquisition_options: dict[str, Any]
    calibration_points: int
    threads: int


@dataclass
class CellResult:
    """A finished cell: its evaluation rows, calibration rows, and how it ended."""

    cell: Cell
    status: str  # ok | failed
    error: str = ""
    seconds: float = 0.0
    worker: str = ""
    cpu_seconds: float = 0.0
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    calibration: list[dict[str, Any]] = field(default_factory=list)


def _executor_gave_up(e: BaseException) -> bool:
    """Whether a cell's future failed in the executor rather than in ``run_cell`` (which records
    the cell's own failures): Dask gave up on a cell that killed its workers (``KilledWorker``),
    lost a connection or timed out."""
    return type(e).__module__.split(".")[0] in ("distributed", "dask") or isinstance(
        e, (OSError, TimeoutError, cf.TimeoutError)
    )


def run_cell(spec: CellSpec) -> CellResult:
    """Run one cell to the end in this process (never raises for a failure of the cell itself)."""
    import numpy as np
    import torch

    from bocli.calibration import calibration_metrics, has_known_function, held_out_points
    from bocli.executors import InlineExecutor
    from bocli.run import RunConfig, run_optimization
    from problems import get_problem

    cell = spec.cell
    worker = f"{socket.gethostname()}:{os.getpid()}"
    t0, c0 = time.perf_counter(), time.process_time()
    base: dict[str, Any] = {
        "problem": cell.problem,
        "surrogate": cell.surrogate,
        "acquisition": cell.acquisition,
        "seed": cell.seed,
    }
    calibration: list[dict[str, Any]] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, spec.threads))  # same arithmetic in every executor
    try:
        problem = get_problem(cell.problem)
        held = None
        multi = problem.space.is_multi_objective
        # calibration scores the first objective's single-output model only: a problem with several
        # outcomes (objectives or constrained outcomes) has a multi-output model, so it is skipped
        if (
            spec.calibration_points > 0
            and problem.space.is_single_outcome
            and has_known_function(problem)
        ):
            held = held_out_points(problem, spec.calibration_points)
        sign = problem.space.objective.sign

        def on_suggest(sug: Any, X: np.ndarray, y: np.ndarray) -> None:
            if held is None or sug.model is None:
                return
            scores = calibration_metrics(sug.model, held[0], held[1], y, sign)
            calibration.append(
                {**base, "refit": len(calibration), "n_train": len(y), **scores},
            )

        config = RunConfig(
            problem=cell.problem,
            surrogate=cell.surrogate,
            acquisition=cell.acquisition,
            budget=spec.budget,
            n_init=spec.n_init,
            seed=cell.seed,
            device=spec.device,
            surrogate_options=spec.surrogate_options,
            acquisition_options=spec.acquisition_options,
        )
        trials = run_optimization(
            problem, config, None, executor=InlineExecutor(), on_suggest=on_suggest
        )
    except (UserError, RuntimeError, ValueError, ArithmeticError) as e:
        # the cell's own failure (bad settings, numerics, a model that cannot be fitted) is its
        # result; out of memory and bugs (TypeError, AttributeError, ...) surface
        if isinstance(e, getattr(torch, "OutOfMemoryError", ())):
            raise
        return CellResult(
            cell,
            "failed",
            error=_one_line(e),
            seconds=time.perf_counter() - t0,
            worker=worker,
            cpu_seconds=time.process_time() - c0,
            calibration=calibration,
        )
    finally:
        torch.set_num_threads(threads)
    rows = [
        {
            **base,
            "trial": t.trial,
            "phase": t.phase,
            "status": t.status,
            "value": t.value,
            "best_so_far": t.best_so_far,
            "regret": t.regret,
            "fit_seconds": t.fit_seconds,
            "acq_seconds": t.acq_seconds,
            "eval_seconds": t.eval_seconds,
            "error": t.error,
            "params": json.dumps(t.params, default=str),
            **(_multi_columns(t) if multi else {}),
        }
        for t in trials
    ]
    return CellResult(
        cell,
        "ok",
        seconds=time.perf_counter() - t0,
        worker=worker,
        cpu_seconds=time.process_time() - c0,
        evaluations=rows,
        calibration=calibration,
    )


def _multi_columns(t: Any) -> dict[str, Any]:
    """The multi-objective columns of one trial (see the module docstring)."""
    return {
        "hypervolume": t.best_so_far,
        "log_hv_regret": t.regret,
        "outcomes": json.dumps(t.outcomes) if t.outcomes else None,
        "feasible": None if t.feasible is None else int(bool(t.feasible)),
    }


def _one_line(e: BaseException) -> str:
    tb = traceback.extract_tb(e.__traceback__)
    where = f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
    msg = " ".join(str(e).split())
    return f"{type(e).__name__}: {msg}{where}"[:500]


# --------------------------------------------------------------------------------------------
# storage
# --------------------------------------------------------------------------------------------


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ""
    return str(v)


def _repair_tail(path: Path) -> None:
    """Cut a torn last line (a crash mid-append), so the next append starts on a fresh line."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def _append_csv(path: Path, fields: list[str], rows: Iterable[dict[str, Any]]) -> None:
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new:
            w.writeheader()
        for row in rows:
            w.writerow({k: _fmt(row.get(k)) for k in fields})
        f.flush()
        os.fsync(f.fileno())


def _read_csv(path: Path, fields: list[str]) -> list[dict[str, str]]:
    """The rows of a results table (columns checked; a file of the columns before several
    objectives, ``LEGACY_EVAL_FIELDS``, reads with the new columns empty)."""
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        found = list(reader.fieldnames) if reader.fieldnames is not None else None
        legacy = fields == EVAL_FIELDS and found == LEGACY_EVAL_FIELDS
        if found is not None and found != fields and not legacy:
            raise CompareError(f"{path}: unexpected columns {reader.fieldnames}")
        rows = [r for r in reader if None not in r and all(v is not None for v in r.values())]
    if legacy:
        rows = [{**r, **dict.fromkeys(fields[len(found or []) :], "")} for r in rows]
    return rows


def _csv_header(path: Path) -> list[str] | None:
    if not path.exists() or path.stat().st_size == 0:
        return None
    with path.open(newline="", encoding="utf-8") as f:
        return next(csv.reader(f), None)


def _cell_key(row: dict[str, Any]) -> tuple[str, str, str, int]:
    return (str(row["problem"]), str(row["surrogate"]), str(row["acquisition"]), int(row["seed"]))


def versions() -> dict[str, str]:
    """Versions of Python and of the libraries a result depends on (without importing them)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for pkg in (
        "bocli",
        "torch",
        "botorch",
        "gpytorch",
        "numpyro",
        "jax",
        "numpy",
        "scipy",
        "pandas",
        "distributed",
    ):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


class _Store:
    """The results directory (see the module docstring)."""

    def __init__(self, out: Path, config: CompareConfig) -> None:
        self.out = out
        self.config = config
        ext = config.table
        self.eval_path = out / f"evaluations.{ext}"
        self.cal_path = out / f"calibration.{ext}"
        self.ledger_path = out / "cells.csv"
        self.done: dict[tuple[str, str, str, int], dict[str, str]] = {}
        self._frames: dict[str, list[dict[str, Any]]] = {}

    @classmethod
    def open(
        cls,
        out: Path,
        config: CompareConfig,
        command: Sequence[str] | None,
        problems_info: dict[str, Any],
        retry_failed: bool,
    ) -> _Store:
        meta_path = out / "compare.json"
        meta: dict[str, Any] = {}
        if meta_path.exists():
            meta = _read_meta(meta_path)
            saved = meta.get("config", {})
            mine = asdict(config)
            for key in CompareConfig.IDENTITY:
                if saved.get(key) != mine.get(key):
                    raise CompareError(
                        f"--out {out}: holds a grid run with {key}={saved.get(key)!r}, not "
                        f"{mine.get(key)!r}; use another --out (or the same settings to resume)"
                    )
            # a grid may grow: keep the union of the lists, in first-seen order
            for key in ("problems", "surrogates", "acquisitions", "seeds"):
                merged = list(saved.get(key, []))
                merged += [v for v in getattr(config, key) if v not in merged]
                mine[key] = merged
            meta["config"] = mine
        else:
            out.mkdir(parents=True, exist_ok=True)
            meta = {"config": asdict(config), "commands": [], "created_at": time.time()}
        meta.setdefault("commands", []).append(
            {"argv": list(command) if command else None, "at": time.time(), "cwd": os.getcwd()}
        )
        meta["versions"] = versions()
        meta.setdefault("problems_info", {}).update(problems_info)
        tmp = meta_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(meta, indent=2, default=str))
        os.replace(tmp, meta_path)

        store = cls(out, config)
        store._load(retry_failed)
        return store

    def _load(self, retry_failed: bool) -> None:
        _repair_tail(self.ledger_path)
        for row in _read_csv(self.ledger_path, CELL_FIELDS):
            if row["status"] in ("ok", "failed"):
                self.done[_cell_key(row)] = row
        if retry_failed:
            before = len(self.done)
            self.done = {k: v for k, v in self.done.items() if v["status"] == "ok"}
            if len(self.done) != before:
                _rewrite_csv(self.ledger_path, CELL_FIELDS, self.done.values())
        for name, path, fields in (
            ("evaluations", self.eval_path, EVAL_FIELDS),
            ("calibration", self.cal_path, CALIBRATION_FIELDS),
        ):
            if self.config.table == "parquet":
                rows = _read_parquet(path)
            else:
                _repair_tail(path)
                rows = _read_csv(path, fields)
            kept = [r for r in rows if _cell_key(r) in self.done]
            self._frames[name] = kept
            stale = self.config.table == "csv" and _csv_header(path) not in (None, fields)
            if len(kept) != len(rows) or stale:  # rows of unfinished (or retried) cells, or the
                # columns of an older version (appending rows of the new columns needs its header)
                if self.config.table == "parquet":
                    _write_parquet(path, fields, kept)
                else:
                    _rewrite_csv(path, fields, kept)

    def record(self, result: CellResult) -> None:
        """Write a finished cell: its rows first, then its ledger row (the commit)."""
        if self.config.table == "parquet":
            for name, path, fields, rows in (
                ("evaluations", self.eval_path, EVAL_FIELDS, result.evaluations),
                ("calibration", self.cal_path, CALIBRATION_FIELDS, result.calibration),
            ):
                self._frames.setdefault(name, []).extend(rows)
                _write_parquet(path, fields, self._frames[name])
        else:
            _append_csv(self.eval_path, EVAL_FIELDS, result.evaluations)
            _append_csv(self.cal_path, CALIBRATION_FIELDS, result.calibration)
        c = result.cell
        row = {
            "problem": c.problem,
            "surrogate": c.surrogate,
            "acquisition": c.acquisition,
            "seed": c.seed,
            "status": result.status,
            "error": result.error,
            "n_evaluations": len(result.evaluations),
            "seconds": result.seconds,
            "cpu_seconds": result.cpu_seconds,
            "worker": result.worker,
            "finished_at": time.time(),
        }
        _append_csv(self.ledger_path, CELL_FIELDS, [row])
        self.done[c.key] = {k: _fmt(v) for k, v in row.items()}


def _rewrite_csv(path: Path, fields: list[str], rows: Iterable[dict[str, Any]]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({k: row.get(k) if isinstance(row.get(k), str) else _fmt(row.get(k))
                        for k in fields})  # fmt: skip
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _require_parquet() -> None:
    import importlib.util

    if (
        importlib.util.find_spec("pyarrow") is None
        and importlib.util.find_spec("fastparquet") is None
    ):
        raise CompareError(
            "--table parquet needs pyarrow (pip install pyarrow); or use --table csv"
        )


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    import pandas as pd

    if not path.exists():
        return []
    return pd.read_parquet(path).to_dict("records")


def _write_parquet(path: Path, fields: list[str], rows: list[dict[str, Any]]) -> None:
    import pandas as pd

    tmp = path.with_suffix(path.suffix + ".tmp")
    pd.DataFrame(rows, columns=fields).to_parquet(tmp, index=False)
    os.replace(tmp, path)


def _read_meta(path: Path) -> dict[str, Any]:
    """compare.json, or a CompareError naming it (damaged, not JSON, not a grid's settings)."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise CompareError(f"{path}: cannot be read ({e})") from None
    except json.JSONDecodeError as e:
        raise CompareError(
            f"{path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno}); it is written "
            "by `bocli compare`, use another --out or restore it"
        ) from None
    if not isinstance(meta, dict) or not isinstance(meta.get("config", {}), dict):
        raise CompareError(f"{path}: not the settings of a `bocli compare` grid")
    return meta


def load_results(out_dir: str | Path) -> dict[str, Any]:
    """Read a results directory (finished cells only) for the report.

    Returns:
        ``{"meta": compare.json, "evaluations": DataFrame, "calibration": DataFrame,
        "cells": DataFrame}``.
    """
    import pandas as pd

    out = Path(out_dir)
    meta_path = out / "compare.json"
    if not meta_path.exists():
        raise CompareError(f"{out}: no compare.json here; run `bocli compare --out {out}` first")
    meta = _read_meta(meta_path)
    table = meta.get("config", {}).get("table", "csv")
    if table not in ("csv", "parquet"):
        raise CompareError(f"{meta_path}: config.table must be csv or parquet, got {table!r}")
    cells = pd.DataFrame(_read_csv(out / "cells.csv", CELL_FIELDS), columns=CELL_FIELDS)
    cells = cells[cells["status"].isin(["ok", "failed"])].copy()
    cells["seed"] = cells["seed"].astype(int)
    for col in ("n_evaluations", "seconds", "cpu_seconds", "finished_at"):
        cells[col] = pd.to_numeric(cells[col], errors="coerce")
    cells = cells.drop_duplicates(CELL_KEYS, keep="last")
    done = set(map(tuple, cells[CELL_KEYS].itertuples(index=False, name=None)))

    def read(name: str, fields: list[str]) -> pd.DataFrame:
        path = out / f"{name}.{table}"
        if table == "parquet":
            df = pd.DataFrame(_read_parquet(path), columns=fields)
        else:
            df = pd.DataFrame(_read_csv(path, fields), columns=fields)
        if df.empty:
            return df
        df["seed"] = df["seed"].astype(int)
        keys = list(map(tuple, df[CELL_KEYS].itertuples(index=False, name=None)))
        df = df[[k in done for k in keys]].copy()
        for col in fields:
            if col not in CELL_KEYS and col not in (
                "phase",
                "status",
                "error",
                "params",
                "outcomes",
            ):
                df[col] = pd.to_numeric(df[col], errors="coerce")
        return df

    return {
        "meta": meta,
        "evaluations": read("evaluations", EVAL_FIELDS),
        "calibration": read("calibration", CALIBRATION_FIELDS),
        "cells": cells.reset_index(drop=True),
    }


# --------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------


@dataclass
class GridSummary:
    """What a call of :func:`run_grid` did."""

    total: int
    skipped: int  # already finished before this call
    ok: int = 0
    failed: int = 0
    seconds: float = 0.0
    out: str = ""


def _validate(config: CompareConfig) -> dict[str, Any]:
    """Check every name before anything runs (a typo fails at once, not as a column of failed cells).

    Returns:
        ``problem name -> {dim, direction, optimum, noise_std}`` for the report, plus
        ``objectives`` (``[{name, direction, threshold}]``) and ``max_hv`` with several objectives.
    """
    from bocli.acquisition import ACQUISITIONS
    from problems import get_problem
    from surrogates.registry import get_surrogate_class

    for key in ("problems", "surrogates", "acquisitions", "seeds"):
        values = getattr(config, key)
        if not values:
            raise CompareError(f"--{key}: give at least one")
        if len(set(values)) != len(values):
            raise CompareError(f"--{key}: repeated values in {values}")
    if config.budget < 1:
        raise CompareError("--budget must be at least 1")
    if config.n_init is not None and config.n_init > config.budget:
        raise CompareError(
            f"--budget {config.budget} is smaller than --init {config.n_init}: no cell would "
            f"ever fit a surrogate; give --budget > --init (or a smaller --init)"
        )
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in config.seeds):
        raise CompareError(f"--seeds: expected whole numbers >= 0, got {config.seeds}")
    if config.table not in ("csv", "parquet"):
        raise CompareError(f"--table: expected csv or parquet, got {config.table!r}")
    if config.table == "parquet":
        _require_parquet()
    from bocli.acquisition import check_acquisition_options
    from bocli.engine import check_device

    check_device(config.device)
    info = {}
    spaces = {}
    for name in config.problems:
        try:
            p = get_problem(name)
        except UserError as e:
            raise CompareError(f"--problems: {e}") from None
        spaces[name] = p.space
        info[name] = {
            "dim": p.space.dim,
            "direction": p.space.objective.direction,
            "optimum": p.optimum,
            "noise_std": p.noise_std,
        }
        if p.space.is_multi_objective:
            info[name]["objectives"] = [o.to_dict() for o in p.space.objectives]
            info[name]["max_hv"] = p.max_hv
    for name in config.surrogates:
        try:
            cls = get_surrogate_class(name)
        except UserError as e:
            raise CompareError(f"--surrogates: {e}") from None
        sur = cls.from_options(config.surrogate_options.get(name) or {})
        for problem, space in spaces.items():  # limits such as the pfn checkpoint's dimension
            try:
                sur.check_space(space)
            except UserError as e:
                raise CompareError(f"--surrogates {name} x --problems {problem}: {e}") from None
    for name in config.acquisitions:
        if name not in ACQUISITIONS:
            raise CompareError(
                f"--acquisitions: unknown acquisition '{name}'; choose from: "
                f"{', '.join(ACQUISITIONS)}"
            )
        if config.acquisition_options.get(name):
            check_acquisition_options(name, config.acquisition_options[name])
    for option, names, grid in (
        ("--surrogate-option", config.surrogate_options, config.surrogates),
        ("--acquisition-option", config.acquisition_options, config.acquisitions),
    ):
        for name in names:
            if name not in grid:
                raise CompareError(
                    f"{option} {name}.…: '{name}' is not in the grid "
                    f"(--{option[2:].split('-')[0]}s {','.join(grid)})"
                )
    return info


def run_grid(
    config: CompareConfig,
    out_dir: str | Path,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    executor: cf.Executor | None = None,
    command: Sequence[str] | None = None,
    retry_failed: bool = False,
    on_start: Callable[[int, int], None] | None = None,
    on_cell: Callable[[CellResult], None] | None = None,
) -> GridSummary:
    """Run (or resume) a grid, writing each cell's results to ``out_dir`` as it finishes.

    Args:
        config: The grid.
        out_dir: Results directory; cells already in its ledger are skipped.
        workers: Local worker processes when no ``executor``/``scheduler`` is given (1 = inline).
        scheduler: Dask scheduler address or ``local:K`` (see ``bocli.executors.make_executor``).
        executor: Use this executor instead (not shut down here).
        command: The command line to record in compare.json.
        retry_failed: Run cells recorded as failed again.
        on_start: ``on_start(total_cells, already_finished)`` once, before the first cell.
        on_cell: Called with each finished cell's result, in completion order.
    """
    from bocli.acquisition import IncompatiblePairError, check_compatible
    from bocli.executors import executor_capacity, make_executor

    t_start = time.perf_counter()
    out = Path(out_dir)
    problems_info = _validate(config)
    if scheduler and executor is None:
        from bocli.executors import check_scheduler_reachable

        try:
            check_scheduler_reachable(scheduler)
        except ValueError as e:
            raise CompareError(f"--scheduler {e}") from None
    store = _Store.open(out, config, command, problems_info, retry_failed)
    cells = config.cells()
    todo = [c for c in cells if c.key not in store.done]
    summary = GridSummary(total=len(cells), skipped=len(cells) - len(todo), out=str(out))
    if on_start is not None:
        on_start(len(cells), summary.skipped)

    def finish(result: CellResult) -> None:
        store.record(result)
        if result.status == "ok":
            summary.ok += 1
        else:
            summary.failed += 1
        if on_cell is not None:
            on_cell(result)

    from problems import get_problem

    # the space too: an acquisition without a multi-objective form fails here, not in a worker
    spaces = {p: get_problem(p).space for p in {c.problem for c in todo}}
    runnable: list[Cell] = []
    for c in todo:
        try:
            check_compatible(c.surrogate, c.acquisition, spaces[c.problem])
            runnable.append(c)
        except IncompatiblePairError as e:
            finish(CellResult(c, "failed", error=f"IncompatiblePairError: {e}"))

    def spec(c: Cell) -> CellSpec:
        return CellSpec(
            cell=c,
            budget=config.budget,
            n_init=config.n_init,
            device=config.device,
            surrogate_options=dict(config.surrogate_options.get(c.surrogate, {})),
            acquisition_options=dict(config.acquisition_options.get(c.acquisition, {})),
            calibration_points=config.calibration_points,
            threads=config.cell_threads,
        )

    own = executor is None
    if runnable and executor is None:
        executor = make_executor(workers, scheduler)
    try:
        if runnable:
            assert executor is not None
            window = executor_capacity(executor)
            queue = list(runnable)
            in_flight: dict[cf.Future, Cell] = {}
            while queue or in_flight:
                while queue and (window is None or len(in_flight) < window):
                    c = queue.pop(0)
                    in_flight[executor.submit(run_cell, spec(c))] = c
                finished, _ = cf.wait(list(in_flight), return_when=cf.FIRST_COMPLETED)
                for fut in sorted(finished, key=lambda f: cells.index(in_flight[f])):
                    c = in_flight.pop(fut)
                    try:
                        result = fut.result()
                    except cf.BrokenExecutor as e:
                        # a local worker process died: every cell in flight is lost with it and
                        # none of them can be blamed, so none is recorded; a rerun resumes
                        running = ", ".join(str(x) for x in in_flight.values()) or "-"
                        raise CompareError(
                            f"a worker process died ({type(e).__name__}) while running {c}"
                            f" (also in flight: {running}); finished cells are saved in {out},"
                            " run the same command again to continue"
                        ) from None
                    except cf.CancelledError:
                        continue
                    except Exception as e:
                        if not _executor_gave_up(e):
                            raise  # run_cell records a cell's own failures: this is OOM or a bug
                        result = CellResult(c, "failed", error=_one_line(e))
                    finish(result)
    finally:
        if own and executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
    summary.seconds = time.perf_counter() - t_start
    return summary
