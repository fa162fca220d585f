"""The study storage contract: transactions, dense ids, states, schema version, concurrency."""

from __future__ import annotations

import json
import multiprocessing as mp
import sqlite3
from pathlib import Path

import pytest

from bocli.space import Space
from bocli.storage import (
    SCHEMA_VERSION,
    NewTrial,
    StaleSnapshotError,
    StorageError,
    StudySettings,
    StudyStorage,
    TrialUpdate,
)

SPACE = {
    "parameters": [
        {"name": "temperature", "type": "float", "low": 20, "high": 80},
        {"name": "conc", "type": "float", "low": 0.001, "high": 1, "log": True},
        {"name": "cycles", "type": "int", "low": 1, "high": 10},
        {"name": "solvent", "type": "categorical", "choices": ["water", "ethanol", "dmso"]},
    ],
    "objective": {"name": "yield", "direction": "maximize"},
}
P = {"temperature": 50.5, "conc": 0.01, "cycles": 3, "solvent": "dmso"}


def settings(**kw: object) -> StudySettings:
    base = dict(
        space=Space.from_dict(SPACE),
        problem=None,
        surrogate="gp",
        acquisition="ei",
        surrogate_options={"a": 1},
        acquisition_options={},
        seed=7,
        n_init=8,
    )
    base.update(kw)
    return StudySettings(**base)  # type: ignore[arg-type]


@pytest.fixture
def study(tmp_path: Path) -> Path:
    StudyStorage.create(tmp_path / "s.db", settings()).close()
    return tmp_path / "s.db"


def test_create_and_reopen_keeps_settings(study: Path) -> None:
    with StudyStorage.open(study) as st:
        s = st.settings
        assert s.space == Space.from_dict(SPACE)
        assert (s.objective_name, s.direction) == ("yield", "maximize")
        assert (s.surrogate, s.acquisition, s.seed, s.n_init) == ("gp", "ei", 7, 8)
        assert s.surrogate_options == {"a": 1}
        assert st.meta()["schema_version"] == str(SCHEMA_VERSION)
        mode = st._conn.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
    # no temporary files left next to the study
    assert sorted(p.name for p in study.parent.iterdir() if not p.name.startswith("s.db")) == []


def test_create_refuses_existing_file(study: Path) -> None:
    with pytest.raises(StorageError, match="already exists"):
        StudyStorage.create(study, settings())


def test_open_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"nope\.db: no such study"):
        StudyStorage.open(tmp_path / "nope.db")
    junk = tmp_path / "junk.db"
    junk.write_text("hello, not a database\n" * 100)
    with pytest.raises(StorageError, match=r"junk\.db: not a bocli study"):
        StudyStorage.open(junk)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE x (a)").connection.commit()
    with pytest.raises(StorageError, match=r"other\.db: an SQLite database, but not a bocli study"):
        StudyStorage.open(other)


def test_newer_schema_is_refused(study: Path) -> None:
    conn = sqlite3.connect(study)
    conn.execute(
        "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),)
    )
    conn.commit()
    conn.close()
    with pytest.raises(StorageError, match="newer bocli"):
        StudyStorage.open(study)


def test_ids_are_dense_and_params_json(study: Path) -> None:
    with StudyStorage.open(study) as st:
        a = st.reserve([NewTrial(P), NewTrial(P)])
        b = st.reserve([NewTrial(P, "complete", 1.5, phase="import")])
        assert [t.trial_id for t in a + b] == [0, 1, 2]
        row = st._conn.execute(
            "SELECT params, created_at FROM trials WHERE trial_id = 2"
        ).fetchone()
        assert json.loads(row[0]) == P
        assert row[1].endswith("+00:00")  # UTC ISO-8601
        assert [t.state for t in st.trials()] == ["pending", "pending", "complete"]
        assert st.trials(["complete"])[0].value == 1.5


def test_reserve_refuses_a_stale_snapshot(study: Path) -> None:
    with StudyStorage.open(study) as st:
        snap = st.snapshot()
        with StudyStorage.open(study) as other:
            other.reserve([NewTrial(P)])
        with pytest.raises(StaleSnapshotError):
            st.reserve([NewTrial(P)], expected_n_trials=snap.n_trials)
        assert len(st.trials()) == 1
        st.reserve([NewTrial(P)], expected_n_trials=1)
        assert len(st.trials()) == 2


def test_a_failing_write_changes_nothing(study: Path) -> None:
    with StudyStorage.open(study) as st:
        st.reserve([NewTrial(P)])
        with pytest.raises(RuntimeError), st.write() as w:
            w.insert(NewTrial(P))
            t = w.trials()[0]
            w.update(t, TrialUpdate(0, "complete", 2.0), "test")
            raise RuntimeError("boom")
        assert [(t.state, t.value) for t in st.trials()] == [("pending", None)]
        assert st.events() == []


def test_update_is_checked_and_logged(study: Path) -> None:
    with StudyStorage.open(study) as st:
        st.reserve([NewTrial(P)])
        t = st.trials()[0]
        with st.write() as w:
            w.update(t, TrialUpdate(0, "complete", 2.0), "batch.csv")
        done = st.trials()[0]
        assert (done.state, done.value) == ("complete", 2.0) and done.completed_at
        # an update based on an outdated view is refused instead of silently overwriting
        with pytest.raises(StaleSnapshotError), st.write() as w:
            w.update(t, TrialUpdate(0, "complete", 3.0), "late.csv")
        assert st.trials()[0].value == 2.0
        with st.write() as w:
            w.update(done, TrialUpdate(0, "complete", 3.0), "fix.csv")
        ev = st.events()
        assert [(e["old_value"], e["new_value"], e["source"]) for e in ev] == [
            (None, 2.0, "batch.csv"),
            (2.0, 3.0, "fix.csv"),
        ]


@pytest.mark.parametrize(
    ("state", "value"),
    [("complete", None), ("failed", 1.0), ("weird", None), ("complete", float("nan"))],
)
def test_invalid_states_are_rejected(study: Path, state: str, value: float | None) -> None:
    with StudyStorage.open(study) as st, pytest.raises(ValueError):
        st.reserve([NewTrial(P, state, value)])


def test_schema_enforces_value_iff_complete(study: Path) -> None:
    conn = sqlite3.connect(study)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO trials (trial_id, params, state, value, phase, created_at)"
            " VALUES (0, '{}', 'complete', NULL, 'init', 'x')"
        )


def _insert_many(path: str, n: int) -> list[int]:
    with StudyStorage.open(path) as st:
        return [st.reserve([NewTrial(P)])[0].trial_id for _ in range(n)]


def test_concurrent_processes_get_distinct_dense_ids(study: Path) -> None:
    ctx = mp.get_context("fork")  # no connection is open in the parent
    with ctx.Pool(4) as pool:
        parts = pool.starmap(_insert_many, [(str(study), 10)] * 4)
    ids = sorted(i for p in parts for i in p)
    assert ids == list(range(40))
    with StudyStorage.open(study) as st:
        assert len(st.trials()) == 40


def test_schema_1_file_is_upgraded_on_open_and_keeps_every_trial(study: Path) -> None:
    with StudyStorage.open(study) as st:
        st.reserve([NewTrial(P), NewTrial(P, state="complete", value=2.5, phase="import")])
    # make it what bocli 0.1 wrote: no prediction columns, schema 1
    conn = sqlite3.connect(study)
    conn.execute("ALTER TABLE trials DROP COLUMN predicted_mean")
    conn.execute("ALTER TABLE trials DROP COLUMN predicted_sd")
    conn.execute("ALTER TABLE trials DROP COLUMN diagnostics")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with StudyStorage.open(study) as st:
        assert st.meta()["schema_version"] == str(SCHEMA_VERSION)
        old = st.trials()
        assert [(t.state, t.value, t.predicted_mean) for t in old] == [
            ("pending", None, None),
            ("complete", 2.5, None),
        ]
        diag = {"divergences": 3, "r_hat_max": float("nan"), "warning": "3 of 200 diverged"}
        new = st.reserve(
            [NewTrial(P, phase="model", predicted_mean=1.5, predicted_sd=0.25, diagnostics=diag)]
        )
    with StudyStorage.open(study) as st:
        t = st.trials()[new[0].trial_id]
        assert (t.predicted_mean, t.predicted_sd) == (1.5, 0.25)
        # stored as strict JSON: a NaN r-hat (too few draws) becomes null
        assert t.diagnostics == {
            "divergences": 3,
            "r_hat_max": None,
            "warning": "3 of 200 diverged",
        }


def test_predictions_are_stored_finite_or_not_at_all(study: Path) -> None:
    with StudyStorage.open(study) as st:
        st.reserve([NewTrial(P, predicted_mean=float("nan"), predicted_sd=float("inf"))])
        t = st.trials()[0]
    assert (t.predicted_mean, t.predicted_sd) == (None, None)


def test_cached_trials_follow_other_connections_and_rollbacks(study: Path) -> None:
    """Reads are cached per connection; another connection's commit, this connection's own
    writes and a rolled-back write are all seen exactly as the file holds them."""
    with StudyStorage.open(study) as a, StudyStorage.open(study) as b:
        a.reserve([NewTrial(P)])
        assert [t.state for t in a.trials()] == ["pending"]  # fills a's cache
        assert a.trials()[0] is a.trials()[0]  # served from the cache
        with b.write() as w:  # another connection completes it and adds a trial
            w.update(w.trials()[0], TrialUpdate(0, "complete", 1.5), "b")
            w.insert(NewTrial(P))
        assert [(t.state, t.value) for t in a.trials()] == [("complete", 1.5), ("pending", None)]
        with pytest.raises(RuntimeError), a.write() as w:
            w.insert(NewTrial(P))
            assert len(w.trials()) == 3  # its own uncommitted insert is visible to it
            raise RuntimeError("boom")
        assert len(a.trials()) == 2 and len(b.trials()) == 2
        a.reserve([NewTrial(P)])  # own commit: the cache picks up the new row
        assert [t.trial_id for t in a.trials()] == [0, 1, 2] == [t.trial_id for t in b.trials()]


def test_durability_is_full_unless_a_run_asks_otherwise(study: Path) -> None:
    with StudyStorage.open(study) as st:
        level = lambda: st._conn.execute("PRAGMA synchronous").fetchone()[0]  # noqa: E731
        assert level() == 2  # FULL: every commit reaches the disk
        st.set_durable(False)
        assert level() == 1  # NORMAL: safe against crashes and kills, not power cuts
        st.reserve([NewTrial(P)])
        st.set_durable(True)
        st.sync()
        assert level() == 2 and len(st.trials()) == 1
