"""Notes and metadata: free text per trial, through ask's CSV, tell, export, listings and runs;
stored in the study (schema 5), never modeled, and every change kept in the events table."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import bocli.storage
from bocli.cli import cli
from bocli.space import Space
from bocli.storage import SCHEMA_VERSION, NewTrial, StudyStorage, TrialUpdate
from bocli.study import ExportFile

SPACE_YAML = """\
parameters:
  - {name: temperature, type: float, low: 20, high: 80}
  - {name: solvent, type: categorical, choices: [water, ethanol, dmso]}
objective: {name: yield, direction: maximize}
metadata: [operator, batch]
"""
PARAMS = ["temperature", "solvent"]
NOTE = 'cloudy, "re-filtered";\nsee lab book p. 12 — ünïcode'  # commas, quotes, a line break


def run(*args: Any, ok: bool = True) -> Any:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def refused(*args: Any) -> str:
    """Run a command that must fail on a user's mistake: exit code 2 and one line."""
    res = run(*args, ok=False)
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    return lines[0]


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def write_rows(path: Path, rows: list[dict[str, Any]], columns: list[str] | None = None) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, columns or list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def state(path: Path) -> tuple[list[Any], list[Any]]:
    """Every trial and event as stored (for before/after comparisons)."""
    with StudyStorage.open(path) as st:
        return [t.__dict__ for t in st.trials()], st.events()


@pytest.fixture
def study(tmp_path: Path) -> Path:
    (tmp_path / "space.yaml").write_text(SPACE_YAML)
    run("init", tmp_path / "s.db", "--space", tmp_path / "space.yaml")
    return tmp_path / "s.db"


# ----- ask -> fill -> tell -> export ---------------------------------------------------------------
def test_notes_and_metadata_round_trip_through_ask_tell_and_export(
    study: Path, tmp_path: Path
) -> None:
    batch = tmp_path / "batch.csv"
    run("ask", study, "-n", 3, "-o", batch)
    rows = read_csv(batch.read_text())
    # the text columns come after the outcome, empty, for a person to fill in beside the results
    assert list(rows[0]) == ["trial_id", *PARAMS, "yield", "notes", "operator", "batch"]
    assert all(r["notes"] == r["operator"] == r["batch"] == "" for r in rows)
    rows[0].update({"yield": "0.5", "notes": NOTE, "operator": "ana", "batch": "B-7"})
    rows[1].update({"yield": "0.25"})  # a result without text
    rows[2].update({"notes": "vial cracked, rerun tomorrow", "operator": "bo"})  # text only
    write_rows(batch, rows)
    out = run("tell", study, batch).output
    assert "2 completed" in out and "1 still pending" in out and "2 with new notes" in out

    exported = run("export", study).stdout
    got = read_csv(exported)
    # the columns a person writes first (status, then the text), then what bocli computes
    assert list(got[0])[:8] == [
        "trial_id",
        *PARAMS,
        "yield",
        "status",
        "notes",
        "operator",
        "batch",
    ]
    for told, back in zip(rows, got, strict=True):
        for col in ("trial_id", "yield", "notes", "operator", "batch"):
            assert back[col] == told[col], col
    assert [r["status"] for r in got] == ["complete", "complete", "pending"]

    # telling the export back changes nothing
    before = state(study)
    (tmp_path / "all.csv").write_text(exported, encoding="utf-8")
    out = run("tell", study, tmp_path / "all.csv").output
    assert out.rstrip().endswith(": 2 unchanged, 1 still pending")
    assert state(study) == before

    # --format json listings carry the text too
    as_json = json.loads(run("export", study, "--format", "json").stdout)
    assert as_json[0]["notes"] == NOTE and as_json[2]["operator"] == "bo"
    best = json.loads(run("best", study, "--format", "json").stdout)
    assert best["trial_id"] == 0 and best["notes"] == NOTE
    assert best["metadata"] == {"operator": "ana", "batch": "B-7"}
    assert "operator: ana" in run("best", study).stdout
    # the lost-batch re-make shows the note already told for the pending trial
    pending = read_csv(run("export", study, "--pending").stdout)
    assert [(r["trial_id"], r["notes"], r["operator"]) for r in pending] == [
        ("2", "vial cracked, rerun tomorrow", "bo")
    ]


def test_ask_json_lists_text_and_a_study_without_metadata_has_notes_only(tmp_path: Path) -> None:
    run("init", tmp_path / "b.db", "--problem", "branin")
    items = json.loads(run("ask", tmp_path / "b.db", "-n", 2, "--format", "json").stdout)
    assert [(i["notes"], "metadata" in i) for i in items] == [(None, False), (None, False)]
    header = run("export", tmp_path / "b.db").stdout.splitlines()[0].split(",")
    assert header[:6] == ["trial_id", "x0", "x1", "value", "status", "notes"]
    # without declared metadata the ask CSV keeps the documented layout (a script that appends
    # the value to each row keeps working); a notes column added by hand is still told
    asked = run("ask", tmp_path / "b.db", "-n", 1).stdout.splitlines()
    assert asked[0] == "trial_id,x0,x1,value"
    filled = tmp_path / "filled.csv"
    filled.write_text(f"{asked[0]},notes\n{asked[1]}1.5,by hand\n")
    run("tell", tmp_path / "b.db", filled)
    exported = read_csv(run("export", tmp_path / "b.db").stdout)
    assert [r["notes"] for r in exported if r["value"] == "1.5"] == ["by hand"]
    # the terminal table shows what to run, not the columns to fill in
    table = run("ask", tmp_path / "b.db", "--format", "table").stdout
    assert "notes" not in table and "x0" in table


def test_note_only_row_on_a_pending_trial_is_stored_and_an_empty_cell_keeps_it(
    study: Path, tmp_path: Path
) -> None:
    batch = tmp_path / "batch.csv"
    run("ask", study, "-n", 1, "-o", batch)
    rows = read_csv(batch.read_text())
    note = write_rows(tmp_path / "note.csv", [{**rows[0], "notes": "started 9:15"}])
    assert "1 still pending, 1 with new notes/metadata" in run("tell", study, note).output
    with StudyStorage.open(study) as st:
        (t,) = st.trials()
    assert (t.state, t.notes, t.metadata) == ("pending", "started 9:15", None)
    # the original batch, now with the result but its notes cell empty: the note stays
    write_rows(batch, [{**rows[0], "yield": "0.75"}])
    assert "1 completed" in run("tell", study, batch).output
    with StudyStorage.open(study) as st:
        (t,) = st.trials()
    assert (t.state, t.value, t.notes) == ("complete", 0.75, "started 9:15")


# ----- changes are recorded ----------------------------------------------------------------------
def test_a_changed_note_is_recorded_in_the_events_table(study: Path, tmp_path: Path) -> None:
    batch = tmp_path / "batch.csv"
    run("ask", study, "-n", 1, "-o", batch)
    (row,) = read_csv(batch.read_text())
    write_rows(batch, [{**row, "yield": "1.5", "notes": "first look", "operator": "ana"}])
    run("tell", study, batch)
    write_rows(batch, [{**row, "yield": "1.5", "notes": "contaminated", "batch": "B-2"}])
    # a note is an annotation, not a result: changing it needs no --overwrite
    out = run("tell", study, batch).output
    assert "1 with new notes/metadata" in out and "unchanged" not in out
    with StudyStorage.open(study) as st:
        (t,) = st.trials()
        events = st.events()
    assert (t.state, t.value, t.notes) == ("complete", 1.5, "contaminated")
    assert t.metadata == {"operator": "ana", "batch": "B-2"}  # merged: an empty cell keeps text
    # told with a result and text: the state change, then the text change; then the edit
    assert [(e["old_state"], e["new_state"], e["old_value"], e["new_value"]) for e in events] == [
        ("pending", "complete", None, 1.5),
        ("complete", "complete", 1.5, 1.5),
        ("complete", "complete", 1.5, 1.5),
    ]
    assert [(e["old_notes"], e["new_notes"]) for e in events[1:]] == [
        (None, "first look"),
        ("first look", "contaminated"),
    ]
    assert [e["old_metadata"] and json.loads(e["old_metadata"]) for e in events[1:]] == [
        None,
        {"operator": "ana"},
    ]
    assert json.loads(events[2]["new_metadata"]) == {"operator": "ana", "batch": "B-2"}
    assert events[0]["new_notes"] is None  # the result's event holds no text
    assert {e["source"] for e in events} == {str(batch)}


def test_imported_results_keep_their_text_and_a_retold_note_updates_the_same_trial(
    study: Path, tmp_path: Path
) -> None:
    row = {"temperature": 30, "solvent": "dmso", "yield": 0.4, "notes": "from 2023"}
    history = write_rows(tmp_path / "h.csv", [row, {**row, "notes": "replicate"}])
    assert "2 imported" in run("tell", study, history).output
    with StudyStorage.open(study) as st:
        assert [(t.phase, t.notes) for t in st.trials()] == [
            ("import", "from 2023"),
            ("import", "replicate"),
        ]
        assert [e["new_notes"] for e in st.events()] == ["from 2023", "replicate"]
    write_rows(history, [row, {**row, "notes": "replicate, bad seal"}])
    assert "1 unchanged, 1 with new notes" in run("tell", study, history).output
    with StudyStorage.open(study) as st:
        assert [t.notes for t in st.trials()] == ["from 2023", "replicate, bad seal"]


# ----- refusals ------------------------------------------------------------------------------------
def test_an_undeclared_column_is_refused_with_one_line_and_stores_nothing(
    study: Path, tmp_path: Path
) -> None:
    batch = tmp_path / "batch.csv"
    run("ask", study, "-n", 2, "-o", batch)
    rows = read_csv(batch.read_text())
    write_rows(batch, [{**rows[0], "notes": "kept?"}])
    run("tell", study, batch)
    rows[0].update({"yield": "1", "notes": "changed"})
    rows[1].update({"yield": "2"})
    bad = write_rows(tmp_path / "bad.csv", [{**r, "operater": "ana"} for r in rows])
    before, data = state(study), study.read_bytes()
    line = refused("tell", study, bad)
    assert f"{bad}: row 1, column 'operater': unknown column (did you mean 'operator'?)" in line
    assert "expected: trial_id, temperature" not in line and "notes, operator, batch" in line
    assert state(study) == before and study.read_bytes() == data


def test_a_study_without_metadata_refuses_a_metadata_column(tmp_path: Path) -> None:
    run("init", tmp_path / "b.db", "--problem", "branin")
    run("ask", tmp_path / "b.db", "-n", 1, "-o", tmp_path / "b.csv")
    (row,) = read_csv((tmp_path / "b.csv").read_text())
    bad = write_rows(tmp_path / "bad.csv", [{**row, "value": "1", "Notes": "ok", "operator": "x"}])
    line = refused("tell", tmp_path / "b.db", bad)
    assert "column 'operator': unknown column" in line
    with StudyStorage.open(tmp_path / "b.db") as st:
        assert [t.state for t in st.trials()] == ["pending"]


@pytest.mark.parametrize(
    ("metadata", "fragment"),
    [
        ("[notes]", "metadata[0] (notes): 'notes' is built in"),
        ("[operator, NOTES]", "metadata[1] (NOTES): 'notes' is built in"),
        ("[Temperature]", "metadata[0] (Temperature): the name is already used by a parameter"),
        ("[YIELD]", "metadata[0] (YIELD): the name is already used by an outcome"),
        ("[operator, Operator]", "metadata[1] (Operator): listed twice"),
        ("[Status]", "metadata[0]: metadata column 'Status': the name is reserved"),
        ("['']", "metadata[0]: metadata column '': the name is empty"),
        ("[1]", "metadata[0]: metadata column 1: the name must be a string"),
        ("operator", "metadata: expected a list of column names"),
    ],
)
def test_a_bad_metadata_declaration_is_refused_at_init(
    tmp_path: Path, metadata: str, fragment: str
) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(SPACE_YAML.replace("[operator, batch]", metadata))
    line = refused("init", tmp_path / "s.db", "--space", space)
    assert f"{space}: {fragment}" in line
    assert not (tmp_path / "s.db").exists()


# ----- storage: schema 5, upgrades, damage ---------------------------------------------------------
def _make_schema_4(path: Path) -> None:
    """Turn a study into what bocli wrote before notes: no text columns, schema 4."""
    conn = sqlite3.connect(path)
    for col in ("notes", "metadata"):
        conn.execute(f"ALTER TABLE trials DROP COLUMN {col}")
    for col in ("old_notes", "new_notes", "old_metadata", "new_metadata"):
        conn.execute(f"ALTER TABLE events DROP COLUMN {col}")
    conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()


def test_a_schema_4_study_is_upgraded_on_open_and_then_takes_notes(
    study: Path, tmp_path: Path
) -> None:
    batch = tmp_path / "batch.csv"
    run("ask", study, "-n", 2, "-o", batch)
    rows = read_csv(batch.read_text())
    write_rows(batch, [{**rows[0], "yield": "3"}])
    run("tell", study, batch)
    _make_schema_4(study)
    conn = sqlite3.connect(study)
    assert "notes" not in {r[1] for r in conn.execute("PRAGMA table_info(trials)")}
    conn.close()
    with StudyStorage.open(study) as st:
        assert st.meta()["schema_version"] == str(SCHEMA_VERSION) == "5"
        assert [(t.state, t.value, t.notes, t.metadata) for t in st.trials()] == [
            ("complete", 3.0, None, None),
            ("pending", None, None, None),
        ]
        assert len(st.events()) == 1
    write_rows(batch, [{**rows[1], "notes": "after the upgrade", "batch": "B-1"}])
    run("tell", study, batch)
    with StudyStorage.open(study) as st:
        t = st.trials()[1]
        assert (t.notes, t.metadata) == ("after the upgrade", {"batch": "B-1"})
        assert st.events()[-1]["new_notes"] == "after the upgrade"


def test_a_read_only_schema_4_study_is_read_as_it_is(
    study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = tmp_path / "b.csv"
    run("ask", study, "-n", 1, "-o", batch)
    _make_schema_4(study)
    real = os.access  # (tests run as root, where chmod stops nothing)

    def access(p: Any, mode: int, **kw: Any) -> bool:
        return False if Path(p) == study and mode & os.W_OK else real(p, mode, **kw)

    monkeypatch.setattr(bocli.storage.os, "access", access)
    data = study.read_bytes()
    rows = read_csv(run("export", study).stdout)
    assert rows[0]["notes"] == "" and rows[0]["status"] == "pending"
    (row,) = read_csv(batch.read_text())
    write_rows(batch, [{**row, "notes": "cannot be stored here"}])
    assert "the study file is read-only" in refused("tell", study, batch)
    assert study.read_bytes() == data
    with StudyStorage.open(study) as st:
        assert st.meta()["schema_version"] == "4"


@pytest.mark.parametrize(
    ("column", "stored", "why"),
    [
        ("metadata", "not json", "JSONDecodeError"),
        ("metadata", '["a"]', "the stored metadata are not a mapping"),
        ("metadata", '{"shift": "night"}', "metadata column 'shift' is not declared"),
        ("metadata", '{"operator": 3}', "metadata column 'operator' does not hold text"),
        ("notes", b"\x00", "the stored notes are not text"),
    ],
)
def test_damaged_text_is_refused_at_open(study: Path, column: str, stored: Any, why: str) -> None:
    with StudyStorage.open(study) as st:
        st.reserve([NewTrial({"temperature": 50.0, "solvent": "water"}, notes="fine")])
    conn = sqlite3.connect(study)
    conn.execute(f"UPDATE trials SET {column} = ?", (stored,))
    conn.commit()
    conn.close()
    line = refused("status", study)
    assert f"{study}: a damaged study file (" in line and why in line


def test_storage_stores_text_only_as_given(study: Path) -> None:
    p = {"temperature": 50.0, "solvent": "water"}
    with StudyStorage.open(study) as st:
        a, b = st.reserve(
            [NewTrial(p, notes="", metadata={"operator": "", "batch": "7"}), NewTrial(p)]
        )
        assert (a.notes, a.metadata) == (None, {"batch": "7"})  # empty text is no text
        with st.write() as w:
            w.annotate(b, "n", {"operator": "x"}, "test")
            w.annotate(w.trials()[0], None, {"batch": "7"}, "test")  # the same: no event
        assert [(e["trial_id"], e["new_notes"]) for e in st.events()] == [(1, "n")]
    with StudyStorage.open(study) as st:
        assert [(t.notes, t.metadata) for t in st.trials()] == [
            (None, {"batch": "7"}),
            ("n", {"operator": "x"}),
        ]


# ----- runs --------------------------------------------------------------------------------------
def test_a_runs_export_file_writes_the_text_columns(study: Path, tmp_path: Path) -> None:
    """``bocli run``'s trials.csv (ExportFile): rewritten and appended rows carry the text."""
    p = {"temperature": 50.0, "solvent": "water"}
    with StudyStorage.open(study) as st:
        space = st.settings.space
        st.reserve([NewTrial(p, notes="by hand", metadata={"batch": "B"}), NewTrial(p)])
        with st.write() as w:
            for t in w.trials():
                w.update(t, TrialUpdate(t.trial_id, "complete", 1.0 + t.trial_id), "test")
        trials = st.trials()
    f = ExportFile(tmp_path / "trials.csv", space)
    f.rewrite(trials[:1])
    f.append(trials[1], 2.0, None)
    rows = read_csv((tmp_path / "trials.csv").read_text())
    assert [(r["notes"], r["operator"], r["batch"]) for r in rows] == [
        ("by hand", "", "B"),
        ("", "", ""),
    ]
    assert Space.from_json(space.to_json()).metadata == ("operator", "batch")


@pytest.mark.slow
def test_a_runs_trials_csv_has_the_notes_column_and_keeps_told_notes(tmp_path: Path) -> None:
    out = tmp_path / "r"
    run("run", "branin", "--budget", 2, "--init", 2, "--out", out)
    rows = read_csv((out / "trials.csv").read_text())
    assert [r["notes"] for r in rows] == ["", ""]
    exported = tmp_path / "e.csv"
    exported.write_text(run("export", out).stdout)
    told = read_csv(exported.read_text())
    told[1]["notes"] = "odd value, check the simulator"
    write_rows(exported, told)
    run("tell", out, exported)
    run("run", "--out", out, "--resume", "--budget", 3)
    rows = read_csv((out / "trials.csv").read_text())
    assert [r["notes"] for r in rows] == ["", "odd value, check the simulator", ""]
