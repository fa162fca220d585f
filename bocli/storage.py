"""Study storage: one SQLite file per study (stdlib ``sqlite3``, WAL journal).

The storage contract, written once:

- **Every write is one transaction** (``BEGIN IMMEDIATE`` ... ``COMMIT``). A process killed at any
  moment leaves the study as it was before that write or as it is after it, never in between.
  Commits are durable against a power cut too (``synchronous=FULL``), except the commits a
  ``bocli run`` makes right after an evaluation that took under 50 ms (``set_durable``): those are
  cheaper to recompute than to fsync, and become durable at the run's next slow evaluation or end.
- **Many processes may read and write at once.** WAL lets readers work while one writer holds the lock;
  writers wait for each other (``busy_timeout``) rather than fail. Writes that depend on what was read
  (reserving new trials, recording results) re-read inside their write transaction.
- **Trial ids are dense, start at 0 and are never reused**; trials are never deleted, so the number of
  trials is the number of points ever issued (the Sobol design continues from it and never repeats).
- **Trial states:** ``pending`` -> ``complete`` | ``failed`` | ``abandoned``. A complete or failed trial
  never changes silently: changing it needs ``overwrite=True``, and the old state and value stay in the
  ``events`` table. An abandoned trial may still receive a late result.
- **Parameters are stored as JSON** exactly as issued (decoded values), timestamps as UTC ISO-8601.
- **A person's text per trial** (schema 5): ``notes`` (free text) and ``metadata`` (JSON
  ``{column: text}`` for the space's declared metadata columns) are never modeled and may change
  in any state (``_Writer.annotate``); every change is an event with the old and the new text.
- The schema is versioned (``meta.schema_version``); a file from a newer bocli is refused, not guessed at.
- **Runs** (``bocli run``) keep their bookkeeping here too: each trial a run evaluates carries the
  run's id (``runner``) and how many evaluations of it were started (``attempts``), a failed trial
  its ``error``; the run's settings live in ``meta['run']``. Trials asked by a person have no runner.

This module is stdlib + bocli.space only (no torch), so ``bocli tell`` and ``bocli status`` start fast.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bocli.errors import UserError
from bocli.space import Space

__all__ = [
    "SCHEMA_VERSION",
    "STATES",
    "TERMINAL_STATES",
    "StaleSnapshotError",
    "StorageError",
    "StudySettings",
    "StudyStorage",
    "TrialRecord",
    "utc_now",
]

SCHEMA_VERSION = 5
# 2: predicted_mean / predicted_sd / diagnostics; 3: run bookkeeping; 4: outcomes (several
# objectives and outcome constraints); 5: notes and metadata text. Older files are upgraded on
# open (columns are only added).
STATES = ("pending", "complete", "failed", "abandoned")
TERMINAL_STATES = ("complete", "failed")  # changing these needs overwrite
BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE study (
    id                  INTEGER PRIMARY KEY CHECK (id = 1),
    space               TEXT NOT NULL,   -- Space.to_json()
    objective_name      TEXT NOT NULL,
    direction           TEXT NOT NULL CHECK (direction IN ('minimize', 'maximize')),
    problem             TEXT,            -- registered problem name, when made from one
    surrogate           TEXT NOT NULL,
    acquisition         TEXT NOT NULL,
    surrogate_options   TEXT NOT NULL,   -- JSON object
    acquisition_options TEXT NOT NULL,   -- JSON object
    seed                INTEGER NOT NULL,
    n_init              INTEGER NOT NULL,
    created_at          TEXT NOT NULL
);
CREATE TABLE trials (
    trial_id     INTEGER PRIMARY KEY,    -- 0, 1, 2, ... never reused
    params       TEXT NOT NULL,          -- JSON object, parameter name -> value
    state        TEXT NOT NULL CHECK (state IN ('pending', 'complete', 'failed', 'abandoned')),
    value        REAL,                   -- set iff state = 'complete'
    phase        TEXT NOT NULL,          -- init (Sobol) | model | import (told without trial_id)
    surrogate    TEXT,                   -- what proposed it (NULL for init/import)
    acquisition  TEXT,
    created_at   TEXT NOT NULL,
    completed_at TEXT,
    predicted_mean REAL,                 -- what the model expected to measure (objective units)
    predicted_sd   REAL,                 -- and its predictive standard deviation (NULL for init)
    diagnostics    TEXT,                 -- JSON: the proposing model's fit diagnostics (or NULL)
    error          TEXT,                 -- why a failed trial failed (NULL otherwise or unknown)
    fit_seconds    REAL,                 -- model fit and acquisition time of the proposal, per point
    acq_seconds    REAL,
    eval_seconds   REAL,                 -- how long the evaluation took (bocli run only)
    runner         TEXT,                 -- the bocli run that evaluates it (NULL: asked by a person)
    attempts       INTEGER NOT NULL DEFAULT 0,  -- evaluations started by a run (resume retries once)
    outcomes       TEXT,                 -- JSON {outcome: value}, every outcome of a space with
                                         -- several (value = the first objective's), else NULL
    predictions    TEXT,                 -- JSON {outcome: {mean, sd}} (several outcomes only)
    notes          TEXT,                 -- a person's free text (NULL: none told)
    metadata       TEXT,                 -- JSON {metadata column: text} (NULL: none told)
    CHECK ((state = 'complete') = (value IS NOT NULL))
);
CREATE TABLE events (
    event_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    trial_id   INTEGER NOT NULL REFERENCES trials(trial_id),
    at         TEXT NOT NULL,
    old_state  TEXT,
    new_state  TEXT NOT NULL,
    old_value  REAL,
    new_value  REAL,
    source     TEXT NOT NULL,            -- the file told, '--value', or 'ask'
    old_outcomes TEXT,                   -- JSON {outcome: value} (several outcomes only)
    new_outcomes TEXT,
    old_notes    TEXT,                   -- a text change (notes, metadata JSON): NULL
    new_notes    TEXT,                   -- on both sides means that text was untouched
    old_metadata TEXT,
    new_metadata TEXT
);
CREATE INDEX trials_state ON trials(state);
"""


class StorageError(UserError, ValueError):
    """A study file is missing, unreadable, from a newer bocli, or locked for too long."""


class StaleSnapshotError(RuntimeError):
    """New trials appeared between reading a study and reserving trials; recompute and retry."""


def utc_now() -> str:
    """The current time as UTC ISO-8601 with milliseconds (``2025-01-31T12:00:00.123+00:00``)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class StudySettings:
    """What a study was created with (the ``study`` row)."""

    space: Space
    problem: str | None
    surrogate: str
    acquisition: str
    surrogate_options: dict[str, Any]
    acquisition_options: dict[str, Any]
    seed: int
    n_init: int
    created_at: str = ""

    @property
    def objective_name(self) -> str:
        return self.space.objective.name

    @property
    def direction(self) -> str:
        return self.space.objective.direction


@dataclass(frozen=True)
class TrialRecord:
    """One stored trial."""

    trial_id: int
    params: dict[str, Any]
    state: str
    value: float | None
    phase: str
    surrogate: str | None = None
    acquisition: str | None = None
    created_at: str = ""
    completed_at: str | None = None
    predicted_mean: float | None = None
    predicted_sd: float | None = None
    diagnostics: dict[str, Any] | None = None
    error: str | None = None
    fit_seconds: float | None = None
    acq_seconds: float | None = None
    eval_seconds: float | None = None
    runner: str | None = None
    attempts: int = 0
    outcomes: dict[str, float] | None = None
    predictions: dict[str, dict[str, float]] | None = None
    notes: str | None = None
    metadata: dict[str, str] | None = None

    def values_for(self, names: Sequence[str]) -> list[float | None]:
        """This trial's value of each outcome in ``names`` (None where not measured): from
        ``outcomes`` with several outcomes, else ``value`` for the one outcome."""
        if self.outcomes is not None:
            return [self.outcomes.get(n) for n in names]
        if len(names) == 1:
            return [self.value]
        return [None] * len(names)

    @property
    def proposed_by(self) -> str:
        if self.phase == "init":
            return "sobol"
        if self.phase == "model":
            return f"{self.surrogate}+{self.acquisition}"
        return self.phase


@dataclass(frozen=True)
class NewTrial:
    """A trial to insert (ids are assigned by the storage)."""

    params: dict[str, Any]
    state: str = "pending"
    value: float | None = None
    phase: str = "init"
    surrogate: str | None = None
    acquisition: str | None = None
    predicted_mean: float | None = None
    predicted_sd: float | None = None
    diagnostics: dict[str, Any] | None = None
    error: str | None = None
    fit_seconds: float | None = None
    acq_seconds: float | None = None
    runner: str | None = None
    attempts: int = 0
    outcomes: dict[str, float] | None = None
    predictions: dict[str, dict[str, float]] | None = None
    notes: str | None = None
    metadata: dict[str, str] | None = None


@dataclass(frozen=True)
class TrialUpdate:
    """A state change of an existing trial (``value`` only with ``complete``; ``error`` and
    ``eval_seconds`` are recorded when given, by ``bocli run``)."""

    trial_id: int
    state: str
    value: float | None = None
    error: str | None = None
    eval_seconds: float | None = None
    outcomes: dict[str, float] | None = None


@dataclass
class Snapshot:
    """A consistent read of every trial; ``n_trials`` is the count at that moment."""

    trials: list[TrialRecord] = field(default_factory=list)

    @property
    def n_trials(self) -> int:
        return len(self.trials)


def _row_to_trial(row: sqlite3.Row) -> TrialRecord:
    cols = row.keys()  # (``in row`` would search the values of a sqlite3.Row)
    return TrialRecord(
        trial_id=row["trial_id"],
        params=json.loads(row["params"]),
        state=row["state"],
        value=row["value"],
        phase=row["phase"],
        surrogate=row["surrogate"],
        acquisition=row["acquisition"],
        created_at=row["created_at"],
        completed_at=row["completed_at"],
        predicted_mean=row["predicted_mean"] if "predicted_mean" in cols else None,
        predicted_sd=row["predicted_sd"] if "predicted_sd" in cols else None,
        diagnostics=_parse_json(row["diagnostics"]) if "diagnostics" in cols else None,
        outcomes=_parse_json(row["outcomes"]) if "outcomes" in cols else None,
        predictions=_parse_json(row["predictions"]) if "predictions" in cols else None,
        notes=row["notes"] if "notes" in cols else None,
        metadata=_parse_json(row["metadata"]) if "metadata" in cols else None,
        **{k: row[k] for k in _RUN_COLUMNS if k in cols and row[k] is not None},
    )


# run bookkeeping columns (schema 3) read into TrialRecord fields of the same name
_RUN_COLUMNS = ("error", "fit_seconds", "acq_seconds", "eval_seconds", "runner", "attempts")

# ----- opening a file without changing it (StudyStorage.open) ----------------------------------
SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database


def _sqlite_uri(path: Path, mode: str, immutable: bool = False) -> str:
    """A ``file:`` URI for ``sqlite3.connect(..., uri=True)``; odd characters (``?``, ``#``, ``%``,
    spaces) in the path are percent-escaped, so they never read as URI parameters."""
    uri = Path(os.path.abspath(path)).as_uri() + f"?mode={mode}"
    return uri + "&immutable=1" if immutable else uri


def _read_header(path: Path) -> bytes:
    """The first 100 bytes of a would-be study, or StorageError if it cannot be an SQLite file."""
    if not path.is_file():
        raise StorageError(f"{path}: not a regular file, not a bocli study")
    try:
        with path.open("rb") as f:
            header = f.read(100)
    except OSError as e:
        raise StorageError(f"{path}: cannot read it ({e.strerror or e})") from None
    if not header:
        raise StorageError(f"{path}: empty file, not a bocli study")
    if not header.startswith(SQLITE_HEADER):
        raise StorageError(f"{path}: not a bocli study (not an SQLite file)")
    return header


def _read_only_reason(path: Path) -> str | None:
    """Why this process cannot write the study (its folder or the file itself), or None."""
    folder = path.absolute().parent
    if not os.access(folder, os.W_OK | os.X_OK):
        return (
            f"{path}: the folder {folder} is read-only; bocli needs to write beside the study "
            "(copy it to a writable folder)"
        )
    if not os.access(path, os.W_OK):
        return (
            f"{path}: the study file is read-only; bocli needs to write to it (make it "
            "writable, or copy it to a writable folder)"
        )
    return None


def _cannot_write(e: sqlite3.Error) -> bool:
    """An sqlite error that means "no permission to write here" (not a damaged file)."""
    msg = str(e).lower()
    return "readonly" in msg or "read-only" in msg or "unable to open" in msg


class _ReadOnlyConnection(sqlite3.Connection):
    """A study opened for reading only (status, best, export work): a write transaction fails
    with ``reason``, one line naming the study and saying why, before anything is written."""

    reason = "opened read-only"

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql.lstrip().upper().startswith("BEGIN IMMEDIATE"):
            raise StorageError(self.reason)
        return super().execute(sql, *args)


def _connect_reader(path: Path, header: bytes) -> _ReadOnlyConnection:
    """A connection that reads ``path`` and writes nothing, neither to it nor beside it.

    A rollback-journal database, or a WAL database in use (its -wal and -shm exist), is read with
    ``mode=ro`` and the usual locks. ``mode=ro`` on an idle WAL database would create -wal and
    -shm files beside it (and could not remove them), so that one is read ``immutable`` (no
    locks, no files): with no -wal, no connection is writing to it.
    """
    in_use = Path(f"{path}-wal").exists() and Path(f"{path}-shm").exists()
    if header[18:20] != b"\x02\x02" or in_use:
        conn = StudyStorage._connect(path, "ro", factory=_ReadOnlyConnection)
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return conn  # type: ignore[return-value]
        except sqlite3.OperationalError as e:
            conn.close()
            if not _cannot_write(e):  # e.g. a read-only folder where the -shm cannot be used
                raise
    conn = StudyStorage._connect(path, "ro", immutable=True, factory=_ReadOnlyConnection)
    return conn  # type: ignore[return-value]


def _study_schema(conn: sqlite3.Connection, path: Path) -> int:
    """The schema version of the bocli study read through ``conn``; StorageError if ``path`` is
    not one (another SQLite database) or is from a newer bocli."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    row = None
    if {"meta", "study"} <= tables:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    try:
        version = int(row[0]) if row is not None else 0
    except (TypeError, ValueError):
        version = 0
    if version < 1:
        raise StorageError(
            f"{path}: an SQLite database, but not a bocli study (no bocli tables); "
            "nothing was changed"
        )
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"{path}: written by a newer bocli (schema {version}, this one reads up to "
            f"{SCHEMA_VERSION}); upgrade bocli"
        )
    return version


def _damaged(path: Path, why: str) -> StorageError:
    why = " ".join(str(why).split())
    return StorageError(
        f"{path}: a damaged study file ({why[:120]}); nothing was changed (restore it from a "
        "backup)"
    )


def _check_intact(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a damaged study at open, with one line, rather than fail (or mislead) mid-command:
    SQLite's structural check, then every stored row must parse (settings, space, trials)."""
    try:
        problems = [r[0] for r in conn.execute("PRAGMA quick_check(3)").fetchall()]
        if problems != ["ok"]:
            raise _damaged(path, "; ".join(map(str, problems)))
        row = conn.execute("SELECT * FROM study WHERE id = 1").fetchone()
        if row is None:
            raise StorageError(f"{path}: not a bocli study (no settings row)")
        space = Space.from_json(row["space"])
        for key in ("surrogate_options", "acquisition_options"):
            if not isinstance(json.loads(row[key]), dict):
                raise _damaged(path, f"the stored {key} are not a mapping")
        for key in ("surrogate", "acquisition"):
            if not isinstance(row[key], str):
                raise _damaged(path, f"the stored {key} is not a name")
        int(row["seed"]), int(row["n_init"])
        names = set(space.names)
        for r in conn.execute("SELECT * FROM trials ORDER BY trial_id"):
            t = _row_to_trial(r)
            if not isinstance(t.params, dict) or set(t.params) != names:
                raise _damaged(path, f"trial {t.trial_id} does not hold the space's parameters")
            try:
                _check_state(t.state, t.value)
                _check_outcomes(space, t.state, t.value, t.outcomes)
                _check_text(space, t.notes, t.metadata)
            except ValueError as e:
                raise _damaged(path, f"trial {t.trial_id}: {e}") from None
    except StorageError:
        raise
    except sqlite3.OperationalError as e:
        if "locked" in str(e) or "busy" in str(e) or _cannot_write(e):
            raise
        raise _damaged(path, str(e)) from None
    except (sqlite3.DatabaseError, UnicodeError, ValueError, TypeError, KeyError) as e:
        raise _damaged(path, f"{type(e).__name__}: {e}") from None


class StudyStorage:
    """One study file. Open with ``StudyStorage.open(path)``, create with ``StudyStorage.create``.

    Methods that write are single transactions; see the module docstring for the contract.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self._settings: StudySettings | None = None
        # every trial as last read, valid while no other connection has committed since
        # (``PRAGMA data_version``); this connection's own writes refresh the rows they touched.
        # Records are shared between calls: treat them (and their dicts) as read-only.
        self._cache: dict[int, TrialRecord] | None = None
        self._cache_version: int | None = None
        self.encoded: dict[int, Any] = {}  # unit-cube points by trial id (``study.observations``)

    # ----- opening / creating ---------------------------------------------------------------
    @staticmethod
    def _connect(
        path: Path,
        mode: str = "rwc",
        *,
        immutable: bool = False,
        factory: type[sqlite3.Connection] = sqlite3.Connection,
    ) -> sqlite3.Connection:
        """Connect to ``path``: ``mode`` ``rwc`` creates the file, ``rw`` needs it to exist (never
        makes an empty file), ``ro`` only reads; ``immutable`` reads without locks or any file
        beside it (for a file no one is writing)."""
        conn = sqlite3.connect(
            _sqlite_uri(path, mode, immutable),
            timeout=BUSY_TIMEOUT_S,
            isolation_level=None,
            factory=factory,
            uri=True,
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        # FULL: a committed tell survives a power cut, not only a crash of the process
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    @classmethod
    def create(cls, path: str | Path, settings: StudySettings) -> StudyStorage:
        """Create a new study file; refuses to replace an existing file.

        The file is built under a temporary name and linked into place in one step, so an
        interrupted ``init`` leaves no half-made study behind.
        """
        path = Path(path)
        if path.exists():
            raise StorageError(f"{path}: already exists; choose another name or delete it first")
        if not path.parent.exists():
            raise StorageError(f"{path}: directory {path.parent} does not exist")
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            conn = cls._connect(tmp)
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("BEGIN IMMEDIATE")
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                meta = {
                    "schema_version": str(SCHEMA_VERSION),
                    "created_at": utc_now(),
                    "bocli_version": _bocli_version(),
                }
                conn.executemany("INSERT INTO meta VALUES (?, ?)", list(meta.items()))
                s = settings
                conn.execute(
                    "INSERT INTO study VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        s.space.to_json(),
                        s.space.objective.name,
                        s.space.objective.direction,
                        s.problem,
                        s.surrogate,
                        s.acquisition,
                        json.dumps(s.surrogate_options, sort_keys=True),
                        json.dumps(s.acquisition_options, sort_keys=True),
                        int(s.seed),
                        int(s.n_init),
                        meta["created_at"],
                    ),
                )
                conn.execute("COMMIT")
            finally:
                conn.close()
            try:
                os.link(tmp, path)  # fails if someone created `path` meanwhile: never replace
            except FileExistsError:
                raise StorageError(f"{path}: already exists; choose another name") from None
        finally:
            for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
                p.unlink(missing_ok=True)
        return cls.open(path)

    @classmethod
    def open(cls, path: str | Path) -> StudyStorage:
        """Open an existing study; errors name the file and say what to do.

        A file that is not a bocli study is left byte for byte as it was: it is checked by its
        header and then read-only before anything may write to it. A study that this process
        cannot write (read-only file or folder) opens for reading; writing to it then fails with
        one line saying why.
        """
        path = Path(path)
        if not path.exists():
            raise StorageError(f"{path}: no such study (create it with `bocli init {path} ...`)")
        if path.is_dir() and (path / "study.db").is_file():
            path = path / "study.db"  # a `bocli run` folder: its study
        elif path.is_dir():
            raise StorageError(f"{path}: is a directory, not a study file (nor a run folder)")
        header = _read_header(path)
        reason = _read_only_reason(path)
        reader: _ReadOnlyConnection | None = None
        try:
            reader = _connect_reader(path, header)
            version = _study_schema(reader, path)
            _check_intact(reader, path)
        except UnicodeError as e:  # SQLite's own error text is garbled: a damaged schema
            if reader is not None:
                reader.close()
            raise _damaged(path, f"{type(e).__name__}: {e}") from None
        except (sqlite3.DatabaseError, StorageError) as e:
            if reader is not None:
                reader.close()
            if isinstance(e, StorageError):
                raise
            if _cannot_write(e):
                raise StorageError(reason or f"{path}: cannot read the study ({e})") from None
            if "locked" in str(e) or "busy" in str(e):
                raise StorageError(
                    f"{path}: locked by another process for more than {BUSY_TIMEOUT_S:g} s; "
                    "try again"
                ) from None
            raise StorageError(
                f"{path}: not a bocli study, or a damaged one ({e}); nothing was changed"
            ) from None
        if reason is None:  # a bocli study we may write: now open it for writing
            reader.close()
            conn: sqlite3.Connection | None = None
            try:
                conn = cls._connect(path, "rw")
                conn.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError as e:
                if conn is not None:
                    conn.close()
                if not _cannot_write(e):
                    raise StorageError(f"{path}: {e}") from None
                reason = (
                    f"{path}: cannot write the study or its folder {path.absolute().parent} "
                    f"({e}); bocli needs to write beside the study (copy it to a writable folder)"
                )
                reader = _connect_reader(path, header)
            else:
                if version < SCHEMA_VERSION:
                    _upgrade(conn, path)
                return cls(path, conn)
        reader.reason = reason
        return cls(path, reader)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> StudyStorage:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ----- reading ----------------------------------------------------------------------------
    @property
    def settings(self) -> StudySettings:
        """The study's space and defaults (they never change after ``init``)."""
        if self._settings is None:
            row = self._conn.execute("SELECT * FROM study WHERE id = 1").fetchone()
            if row is None:
                raise StorageError(f"{self.path}: not a bocli study (no settings row)")
            self._settings = StudySettings(
                space=Space.from_json(row["space"]),
                problem=row["problem"],
                surrogate=row["surrogate"],
                acquisition=row["acquisition"],
                surrogate_options=json.loads(row["surrogate_options"]),
                acquisition_options=json.loads(row["acquisition_options"]),
                seed=row["seed"],
                n_init=row["n_init"],
                created_at=row["created_at"],
            )
        return self._settings

    def meta(self) -> dict[str, str]:
        return dict(self._conn.execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, key: str, value: str) -> None:
        """Store one ``meta`` entry (e.g. a run's settings), replacing an older value."""
        with self.write():
            self._conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value)
            )

    def snapshot(self) -> Snapshot:
        """Every trial, read in one transaction (a consistent view), ordered by id."""
        if self._cache is not None and not self._conn.in_transaction:
            # nobody committed since the cache was filled: it is the file's current state
            with _transaction(self._conn, self.path):
                if self._data_version() == self._cache_version:
                    return Snapshot(list(self._cache.values()))
        with _transaction(self._conn, self.path, "BEGIN"):
            return Snapshot(self._trials())

    def trials(self, states: Iterable[str] | None = None) -> list[TrialRecord]:
        """Trials (optionally only those in ``states``), ordered by id."""
        out = self.snapshot().trials
        if states is not None:
            keep = set(states)
            out = [t for t in out if t.state in keep]
        return out

    def events(self) -> list[dict[str, Any]]:
        """The change log: every state, value and text (notes, metadata) change made by ``tell``,
        oldest first."""
        rows = self._conn.execute("SELECT * FROM events ORDER BY event_id").fetchall()
        return [dict(r) for r in rows]

    def _data_version(self) -> int:
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def _trials(self) -> list[TrialRecord]:
        """Every trial, ordered by id (call inside a transaction); read from the cache when no
        other process has written since it was filled."""
        version = self._data_version()
        if self._cache is None or version != self._cache_version:
            rows = self._conn.execute("SELECT * FROM trials ORDER BY trial_id").fetchall()
            self._cache = {r["trial_id"]: _row_to_trial(r) for r in rows}
            self._cache_version = version
        return list(self._cache.values())

    def _refresh(self, trial_ids: set[int]) -> None:
        """Re-read the rows this connection just wrote into the cache (ids only grow, so new
        trials are appended in id order)."""
        if self._cache is None or not trial_ids:
            return
        marks = ", ".join("?" * len(trial_ids))
        rows = self._conn.execute(
            f"SELECT * FROM trials WHERE trial_id IN ({marks}) ORDER BY trial_id",
            tuple(trial_ids),
        ).fetchall()
        for r in rows:
            self._cache[r["trial_id"]] = _row_to_trial(r)

    # ----- writing ----------------------------------------------------------------------------
    def reserve(
        self, new: Sequence[NewTrial], expected_n_trials: int | None = None
    ) -> list[TrialRecord]:
        """Insert new trials (usually pending ones from ``ask``); returns them with their ids.

        Args:
            new: The trials to insert.
            expected_n_trials: The trial count the proposals were computed from. If other trials
                were added since, nothing is inserted and ``StaleSnapshotError`` is raised, so the
                caller recomputes with those trials as pending (two asks never duplicate work).
        """
        with self.write() as w:
            if expected_n_trials is not None and w.n_trials() != expected_n_trials:
                raise StaleSnapshotError(
                    f"{w.n_trials() - expected_n_trials} trial(s) were added meanwhile"
                )
            return [w.insert(t) for t in new]

    def set_durable(self, durable: bool) -> None:
        """``True`` (the default): every commit reaches the disk before it returns
        (``synchronous=FULL``), so it survives a power cut. ``False`` (``NORMAL``): a commit
        survives a crash or kill of any process but may be undone by a power cut, until the next
        durable commit or ``sync``; the file stays consistent either way. ``bocli run`` uses it
        while evaluations are so fast that two fsyncs would cost more than recomputing them."""
        if not self._conn.in_transaction:
            self._conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")

    def sync(self) -> None:
        """Make every commit so far durable (a WAL checkpoint syncs the log to the disk)."""
        with contextlib.suppress(sqlite3.DatabaseError):
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def check_writable(self) -> None:
        """Fail now, with the one line ``write`` would give, if this study cannot be written
        (a read-only file or folder): before minutes of model fitting, not after."""
        with self.write():
            pass

    @contextmanager
    def write(self) -> Iterator[_Writer]:
        """One write transaction: everything done through the yielded writer commits together,
        or (on any exception) not at all."""
        with _transaction(self._conn, self.path, "BEGIN IMMEDIATE"):
            # we hold the write lock: nobody else commits until we do
            fresh = self._cache is not None and self._data_version() == self._cache_version
            if not fresh:
                self._cache = None
            cache = self._cache
            w = _Writer(self._conn, (lambda: list(cache.values())) if cache is not None else None)
            yield w
        if fresh:
            self._refresh(w.touched)


class _Writer:
    """Write operations valid inside ``StudyStorage.write()``."""

    def __init__(
        self, conn: sqlite3.Connection, read: Callable[[], list[TrialRecord]] | None = None
    ) -> None:
        self._conn = conn
        self._read = read
        self.touched: set[int] = set()  # trial ids written in this transaction
        # the optional columns this file has: all, unless a schema-1 file could not be upgraded
        # (read-only); read once per transaction, not per inserted trial
        self._columns = _trial_columns(conn)

    def n_trials(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0])

    def trials(self) -> list[TrialRecord]:
        """Every trial as this transaction sees it (its own writes included)."""
        if self._read is not None and not self.touched:  # the cache, valid until we write
            return self._read()
        rows = self._conn.execute("SELECT * FROM trials ORDER BY trial_id").fetchall()
        return [_row_to_trial(r) for r in rows]

    def insert(self, t: NewTrial, source: str | None = None) -> TrialRecord:
        _check_state(t.state, t.value)
        now = utc_now()
        tid = self.n_trials()  # dense ids; we hold the write lock
        done = now if t.state != "pending" else None
        row = {
            "trial_id": tid,
            "params": json.dumps(t.params, sort_keys=False),
            "state": t.state,
            "value": t.value,
            "phase": t.phase,
            "surrogate": t.surrogate,
            "acquisition": t.acquisition,
            "created_at": now,
            "completed_at": done,
        }
        optional = {
            "predicted_mean": _finite(t.predicted_mean),
            "predicted_sd": _finite(t.predicted_sd),
            "diagnostics": _json_or_none(t.diagnostics),
            "error": t.error,
            "fit_seconds": _finite(t.fit_seconds),
            "acq_seconds": _finite(t.acq_seconds),
            "runner": t.runner,
            "attempts": int(t.attempts),
            "outcomes": _outcomes_json(t.outcomes),
            "predictions": _json_or_none(t.predictions),
            "notes": t.notes or None,
            "metadata": _metadata_json(t.metadata),
        }
        if (optional["notes"] or optional["metadata"]) and "notes" not in self._columns:
            raise ValueError("this study file cannot hold notes (read-only, schema < 5)")
        row.update({k: v for k, v in optional.items() if k in self._columns})
        self._conn.execute(
            f"INSERT INTO trials ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            tuple(row.values()),
        )
        self.touched.add(tid)
        if source is not None:
            text = (None, row.get("notes"), None, row.get("metadata"))
            self._event(tid, None, t.state, None, t.value, source, now, None, t.outcomes, text)
        return TrialRecord(
            tid,
            dict(t.params),
            t.state,
            t.value,
            t.phase,
            t.surrogate,
            t.acquisition,
            now,
            done,
            row.get("predicted_mean"),
            row.get("predicted_sd"),
            _parse_json(row.get("diagnostics")),
            t.error,
            row.get("fit_seconds"),
            row.get("acq_seconds"),
            None,
            t.runner,
            int(t.attempts),
            dict(t.outcomes) if t.outcomes is not None else None,
            _parse_json(row.get("predictions")),
            row.get("notes"),
            _parse_json(row.get("metadata")),
        )

    def update(self, old: TrialRecord, new: TrialUpdate, source: str) -> None:
        """Change a trial's state/value; the caller has decided that the change is allowed."""
        _check_state(new.state, new.value)
        now = utc_now()
        cur = self._conn.execute(
            "UPDATE trials SET state = ?, value = ?, completed_at = ? "
            "WHERE trial_id = ? AND state = ? AND value IS ?",
            (new.state, new.value, None if new.state == "pending" else now, new.trial_id,
             old.state, old.value),
        )  # fmt: skip
        if cur.rowcount != 1:  # the caller's view is stale; never overwrite what it did not see
            raise StaleSnapshotError(f"trial {new.trial_id} changed meanwhile")
        self.touched.add(new.trial_id)
        if "error" in self._columns:  # a new state clears the old reason (schema >= 3)
            self._conn.execute(
                "UPDATE trials SET error = ?, eval_seconds = COALESCE(?, eval_seconds) "
                "WHERE trial_id = ?",
                (new.error, _finite(new.eval_seconds), new.trial_id),
            )
        if "outcomes" in self._columns:
            self._conn.execute(
                "UPDATE trials SET outcomes = ? WHERE trial_id = ?",
                (_outcomes_json(new.outcomes), new.trial_id),
            )
        elif new.outcomes is not None:
            raise ValueError("this study file cannot hold several outcomes (read-only, schema < 4)")
        self._event(
            new.trial_id, old.state, new.state, old.value, new.value, source, now,
            old.outcomes, new.outcomes,
        )  # fmt: skip

    def annotate(
        self,
        old: TrialRecord,
        notes: str | None,
        metadata: dict[str, str] | None,
        source: str,
    ) -> None:
        """Replace a trial's text (in any state; the caller has merged what was told into what
        was stored), recording the old and new text as an event. ``old`` is the trial as the
        caller read it: if its text changed meanwhile, nothing is written (StaleSnapshotError).

        Args:
            old: The trial as read (its ``notes`` and ``metadata`` are compared).
            notes: The new notes (None or empty: none).
            metadata: The new metadata, ``{column: text}`` (None or empty: none).
            source: What told it (the file's name), for the events table.
        """
        if "notes" not in self._columns:
            raise ValueError("this study file cannot hold notes (read-only, schema < 5)")
        before = (old.notes or None, _metadata_json(old.metadata))
        after = (notes or None, _metadata_json(metadata))
        if after == before:
            return
        cur = self._conn.execute(
            "UPDATE trials SET notes = ?, metadata = ? "
            "WHERE trial_id = ? AND notes IS ? AND metadata IS ?",
            (*after, old.trial_id, *before),
        )
        if cur.rowcount != 1:  # never overwrite text the caller did not see
            raise StaleSnapshotError(f"trial {old.trial_id} changed meanwhile")
        self.touched.add(old.trial_id)
        # the event shows the trial's state as it is now (an update in this transaction may
        # have changed it), unchanged by this event
        state, value = self._conn.execute(
            "SELECT state, value FROM trials WHERE trial_id = ?", (old.trial_id,)
        ).fetchone()
        # only the text that changed is recorded (NULL on both sides: untouched)
        notes_change = (before[0], after[0]) if before[0] != after[0] else (None, None)
        meta_change = (before[1], after[1]) if before[1] != after[1] else (None, None)
        text = (*notes_change, *meta_change)
        self._event(old.trial_id, state, state, value, value, source, utc_now(), text=text)

    def claim(self, trial_id: int, runner: str | None, attempts: int) -> None:
        """Record which run evaluates a trial and how many evaluations it has started."""
        self._conn.execute(
            "UPDATE trials SET runner = ?, attempts = ? WHERE trial_id = ?",
            (runner, int(attempts), trial_id),
        )
        self.touched.add(trial_id)

    def _event(
        self,
        tid: int,
        old_state: str | None,
        new_state: str,
        old_value: float | None,
        new_value: float | None,
        source: str,
        at: str,
        old_outcomes: dict[str, float] | None = None,
        new_outcomes: dict[str, float] | None = None,
        text: tuple[str | None, str | None, str | None, str | None] | None = None,
    ) -> None:
        """One events row; ``text`` is (old_notes, new_notes, old_metadata, new_metadata) as
        stored. Columns an older file lacks are left out when they would be NULL."""
        row: dict[str, Any] = {
            "trial_id": tid,
            "at": at,
            "old_state": old_state,
            "new_state": new_state,
            "old_value": old_value,
            "new_value": new_value,
            "source": source,
        }
        if old_outcomes is not None or new_outcomes is not None:
            row["old_outcomes"] = _outcomes_json(old_outcomes)
            row["new_outcomes"] = _outcomes_json(new_outcomes)
        if text is not None and any(x is not None for x in text):
            keys = ("old_notes", "new_notes", "old_metadata", "new_metadata")
            row.update(zip(keys, text, strict=True))
        self._conn.execute(
            f"INSERT INTO events ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            tuple(row.values()),
        )


def _finite(v: float | None) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def _json_or_none(d: dict[str, Any] | None) -> str | None:
    """Diagnostics as strict JSON (non-finite numbers become null), or None when empty."""
    if not d:
        return None

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v if v is None or isinstance(v, str | int | float | bool) else str(v)

    return json.dumps(clean(d), sort_keys=True)


def _parse_json(text: str | None) -> dict[str, Any] | None:
    return json.loads(text) if text else None


def _metadata_json(metadata: dict[str, str] | None) -> str | None:
    """Metadata text as JSON (keys sorted, so equal metadata is equal text), or None when no
    column holds text."""
    kept = {str(k): str(v) for k, v in (metadata or {}).items() if v}
    return json.dumps(kept, sort_keys=True, ensure_ascii=False) if kept else None


def _check_text(space: Space, notes: Any, metadata: Any) -> None:
    """Stored text is a string (or absent), metadata a mapping of the space's declared columns
    to strings."""
    if notes is not None and not isinstance(notes, str):
        raise ValueError("the stored notes are not text")
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise ValueError("the stored metadata are not a mapping")
    for k, v in metadata.items():
        if k not in space.metadata:
            raise ValueError(f"metadata column '{k}' is not declared by the space")
        if not isinstance(v, str):
            raise ValueError(f"metadata column '{k}' does not hold text")


def _outcomes_json(outcomes: dict[str, float] | None) -> str | None:
    """Outcome values as JSON (insertion order: the space's outcome order), or None."""
    if outcomes is None:
        return None
    return json.dumps({str(k): float(v) for k, v in outcomes.items()})


def _check_outcomes(
    space: Space, state: str, value: float | None, outcomes: dict[str, float] | None
) -> None:
    """A complete trial of a space with several outcomes holds every outcome, finite, and its
    ``value`` is the first objective's; other trials (and single-outcome spaces) hold none."""
    if space.is_single_outcome or state != "complete":
        if outcomes is not None and state != "complete":
            raise ValueError("only a complete trial has outcome values")
        return
    if not isinstance(outcomes, dict):
        raise ValueError("a complete trial needs a value for every outcome")
    for name in space.outcome_names:
        v = outcomes.get(name)
        if not isinstance(v, int | float) or not math.isfinite(v):
            raise ValueError(f"outcome '{name}' has no finite value")
    if value != outcomes[space.objective.name]:
        raise ValueError("the trial's value is not its first objective's")


_ADDED_SINCE_1 = {  # columns added to ``trials`` after schema 1, in the order they were added
    "predicted_mean": "REAL",
    "predicted_sd": "REAL",
    "diagnostics": "TEXT",
    "error": "TEXT",
    "fit_seconds": "REAL",
    "acq_seconds": "REAL",
    "eval_seconds": "REAL",
    "runner": "TEXT",
    "attempts": "INTEGER NOT NULL DEFAULT 0",
    "outcomes": "TEXT",
    "predictions": "TEXT",
    "notes": "TEXT",
    "metadata": "TEXT",
}
_EVENTS_ADDED_SINCE_1 = {
    "old_outcomes": "TEXT",
    "new_outcomes": "TEXT",
    "old_notes": "TEXT",
    "new_notes": "TEXT",
    "old_metadata": "TEXT",
    "new_metadata": "TEXT",
}


def _trial_columns(conn: sqlite3.Connection) -> set[str]:
    return {r[1] for r in conn.execute("PRAGMA table_info(trials)").fetchall()}


def _upgrade(conn: sqlite3.Connection, path: Path) -> None:
    """Bring an older study to the current schema in one transaction (columns are only added).

    A file this process may not write (read-only) keeps its schema and is read as it is.
    """
    try:
        with _transaction(conn, path, "BEGIN IMMEDIATE"):
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if int(row[0]) >= SCHEMA_VERSION:
                return  # another process upgraded it meanwhile
            have = _trial_columns(conn)
            for name, sql_type in _ADDED_SINCE_1.items():
                if name not in have:
                    conn.execute(f"ALTER TABLE trials ADD COLUMN {name} {sql_type}")
            have_events = {r[1] for r in conn.execute("PRAGMA table_info(events)").fetchall()}
            for name, sql_type in _EVENTS_ADDED_SINCE_1.items():
                if name not in have_events:
                    conn.execute(f"ALTER TABLE events ADD COLUMN {name} {sql_type}")
            conn.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
            )
    except StorageError:
        pass  # read-only or locked for too long: reading works on schema 1 as well


def _check_state(state: str, value: float | None) -> None:
    if state not in STATES:
        raise ValueError(f"unknown trial state {state!r}")
    if (state == "complete") != (value is not None):
        raise ValueError("a complete trial needs a value, and only a complete trial has one")
    if value is not None and not math.isfinite(value):
        raise ValueError(f"a trial's value must be finite, got {value!r}")


@contextmanager
def _transaction(conn: sqlite3.Connection, path: Path, begin: str | None = None) -> Iterator[None]:
    """Run a block in a transaction (``begin`` statement given) and turn lock timeouts and
    file errors into StorageError naming the study."""
    try:
        if begin:
            conn.execute(begin)
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if conn.in_transaction:
            conn.execute("COMMIT")
    except sqlite3.OperationalError as e:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if "locked" in str(e) or "busy" in str(e):
            raise StorageError(
                f"{path}: locked by another process for more than {BUSY_TIMEOUT_S:g} s; try again"
            ) from None
        raise StorageError(f"{path}: {e}") from None
    except sqlite3.DatabaseError as e:  # "database disk image is malformed", found mid-command
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise _damaged(path, str(e)) from None


def _bocli_version() -> str:
    try:
        from importlib.metadata import version

        return version("bocli")
    except Exception:
        return "unknown"
