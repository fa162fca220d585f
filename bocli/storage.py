"""Study storage: one SQLite file per study (stdlib ``sqlite3``, WAL journal).

The storage contract, written once:

- **Every write is one transaction** (``BEGIN IMMEDIATE`` ... ``COMMIT``). A process killed at any
  moment leaves the study as it was before that write or as it is after it, never in between.
- **Many processes may read and write at once.** WAL lets readers work while one writer holds the lock;
  writers wait for each other (``busy_timeout``) rather than fail. Writes that depend on what was read
  (reserving new trials, recording results) re-read inside their write transaction.
- **Trial ids are dense, start at 0 and are never reused**; trials are never deleted, so the number of
  trials is the number of points ever issued (the Sobol design continues from it and never repeats).
- **Trial states:** ``pending`` -> ``complete`` | ``failed`` | ``abandoned``. A complete or failed trial
  never changes silently: changing it needs ``overwrite=True``, and the old state and value stay in the
  ``events`` table. An abandoned trial may still receive a late result.
- **Parameters are stored as JSON** exactly as issued (decoded values), timestamps as UTC ISO-8601.
- The schema is versioned (``meta.schema_version``); a file from a newer bocli is refused, not guessed at.

This module is stdlib + bocli.space only (no torch), so ``bocli tell`` and ``bocli status`` start fast.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Sequence
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

SCHEMA_VERSION = 2  # 2: trials.predicted_mean / predicted_sd / diagnostics (v1 upgraded on open)
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
    source     TEXT NOT NULL             -- the file told, '--value', or 'ask'
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


@dataclass(frozen=True)
class TrialUpdate:
    """A state change of an existing trial (``value`` only with ``complete``)."""

    trial_id: int
    state: str
    value: float | None = None


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
    )


class StudyStorage:
    """One study file. Open with ``StudyStorage.open(path)``, create with ``StudyStorage.create``.

    Methods that write are single transactions; see the module docstring for the contract.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self._settings: StudySettings | None = None

    # ----- opening / creating ---------------------------------------------------------------
    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
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
        """Open an existing study; errors name the file and say what to do."""
        path = Path(path)
        if not path.exists():
            raise StorageError(f"{path}: no such study (create it with `bocli init {path} ...`)")
        if path.is_dir():
            raise StorageError(f"{path}: is a directory, not a study file")
        try:
            conn = cls._connect(path)
            conn.execute("PRAGMA journal_mode = WAL")
            rows = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as e:
            raise StorageError(f"{path}: not a bocli study ({e})") from None
        version = int(rows.get("schema_version", "0"))
        if version > SCHEMA_VERSION:
            conn.close()
            raise StorageError(
                f"{path}: written by a newer bocli (schema {version}, this one reads up to "
                f"{SCHEMA_VERSION}); upgrade bocli"
            )
        if version < 1:
            conn.close()
            raise StorageError(f"{path}: not a bocli study (no schema version)")
        if version < SCHEMA_VERSION:
            _upgrade(conn, path)
        return cls(path, conn)

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

    def snapshot(self) -> Snapshot:
        """Every trial, read in one transaction (a consistent view), ordered by id."""
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
        """The change log: every state/value change made by ``tell``, oldest first."""
        rows = self._conn.execute("SELECT * FROM events ORDER BY event_id").fetchall()
        return [dict(r) for r in rows]

    def _trials(self) -> list[TrialRecord]:
        rows = self._conn.execute("SELECT * FROM trials ORDER BY trial_id").fetchall()
        return [_row_to_trial(r) for r in rows]

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

    @contextmanager
    def write(self) -> Iterator[_Writer]:
        """One write transaction: everything done through the yielded writer commits together,
        or (on any exception) not at all."""
        with _transaction(self._conn, self.path, "BEGIN IMMEDIATE"):
            yield _Writer(self._conn)


class _Writer:
    """Write operations valid inside ``StudyStorage.write()``."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        # the optional columns this file has: all, unless a schema-1 file could not be upgraded
        # (read-only); read once per transaction, not per inserted trial
        self._columns = _trial_columns(conn)

    def n_trials(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0])

    def trials(self) -> list[TrialRecord]:
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
        }
        row.update({k: v for k, v in optional.items() if k in self._columns})
        self._conn.execute(
            f"INSERT INTO trials ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            tuple(row.values()),
        )
        if source is not None:
            self._event(tid, None, t.state, None, t.value, source, now)
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
        self._event(new.trial_id, old.state, new.state, old.value, new.value, source, now)

    def _event(
        self,
        tid: int,
        old_state: str | None,
        new_state: str,
        old_value: float | None,
        new_value: float | None,
        source: str,
        at: str,
    ) -> None:
        self._conn.execute(
            "INSERT INTO events (trial_id, at, old_state, new_state, old_value, new_value, source)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (tid, at, old_state, new_state, old_value, new_value, source),
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


_ADDED_IN_2 = {"predicted_mean": "REAL", "predicted_sd": "REAL", "diagnostics": "TEXT"}


def _trial_columns(conn: sqlite3.Connection) -> set[str]:
    return {r[1] for r in conn.execute("PRAGMA table_info(trials)").fetchall()}


def _upgrade(conn: sqlite3.Connection, path: Path) -> None:
    """Bring a schema-1 study to the current schema in one transaction (columns are only added).

    A file this process may not write (read-only) stays at schema 1 and is read as it is.
    """
    try:
        with _transaction(conn, path, "BEGIN IMMEDIATE"):
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if int(row[0]) >= SCHEMA_VERSION:
                return  # another process upgraded it meanwhile
            have = _trial_columns(conn)
            for name, sql_type in _ADDED_IN_2.items():
                if name not in have:
                    conn.execute(f"ALTER TABLE trials ADD COLUMN {name} {sql_type}")
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


def _bocli_version() -> str:
    try:
        from importlib.metadata import version

        return version("bocli")
    except Exception:
        return "unknown"
