"""bocli never clobbers what a user holds: -o never replaces an SQLite file (a study) and replaces
any other existing file only with --force, writes atomically, and opening a file that is not a
bocli study (or a study bocli may not write) changes nothing, with one line saying why."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import bocli.storage
from bocli.cli import cli
from bocli.storage import StudyStorage
from bocli.study import init_study

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def run(*args: Any) -> Any:
    return CliRunner().invoke(cli, [str(a) for a in args])


def refused(r: Any, *needles: str) -> str:
    """A refusal: exit code 2, exactly one line on stderr naming the problem, no traceback."""
    assert r.exit_code == 2, (r.exit_code, r.output)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    assert "Traceback" not in r.output and isinstance(r.exception, SystemExit)  # no crash
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def state(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file in ``folder`` with its bytes and mtime (ns), for before/after comparisons."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def n_trials(study: Path) -> int:
    with StudyStorage.open(study) as st:
        return len(st.trials())


@pytest.fixture
def study(tmp_path: Path) -> Path:
    path = tmp_path / "s.db"
    init_study(path, problem="branin", n_init=20, check_models=False)  # asks stay in the design
    return path


def other_database(path: Path, wal: bool = False) -> Path:
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
    conn.execute("INSERT INTO notes (text) VALUES ('keep me')")
    conn.commit()
    conn.close()
    return path


# ----- -o: never an SQLite file, an existing file only with --force -----------------------------
@pytest.mark.parametrize("command", ["ask", "export"])
def test_output_never_replaces_an_sqlite_file_even_with_force(
    study: Path, tmp_path: Path, command: str
) -> None:
    run("ask", study, "-n", 2)  # a study with trials (and a -wal while in use)
    other = other_database(tmp_path / "other.db")
    second = tmp_path / "second.db"
    init_study(second, problem="branin", check_models=False)
    for target, needle in [
        (other, "is an SQLite database (a study?); bocli never overwrites one"),
        (second, "is an SQLite database (a study?); bocli never overwrites one"),
        (study, "is the study itself"),
        (Path(f"{study}-wal"), f"is the journal of the SQLite database {study}"),
        (Path(f"{other}-journal"), "is the journal of the SQLite database"),
    ]:
        before = state(tmp_path)
        for extra in ([], ["--force"]):
            refused(run(command, study, "-o", target, *extra), f"-o {target}: ", needle)
        assert state(tmp_path) == before, target  # nothing written, no trial asked
    assert n_trials(study) == 2


@pytest.mark.parametrize("command", ["ask", "export"])
def test_output_replaces_an_existing_file_only_with_force(
    study: Path, tmp_path: Path, command: str
) -> None:
    batch = tmp_path / "batch.csv"
    batch.write_text("my lab notes\n")
    before = state(tmp_path)
    refused(
        run(command, study, "-o", batch),
        f"-o {batch}: already exists; pass --force to replace it",
    )
    assert state(tmp_path) == before and n_trials(study) == 0
    r = run(command, study, "-o", batch, "--force")
    assert r.exit_code == 0, r.output
    assert batch.read_text().startswith("trial_id,x0,x1,value")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch.csv", "s.db"]  # no temp file left
    # a new file needs no --force
    assert run(command, study, "-o", tmp_path / "new.csv").exit_code == 0


def test_ask_refuses_a_table_in_a_file(study: Path, tmp_path: Path) -> None:
    refused(run("ask", study, "--format", "table", "-o", tmp_path / "t.csv"), "--format table")
    assert not (tmp_path / "t.csv").exists() and n_trials(study) == 0
    assert "trial_id" in run("ask", study, "--format", "table").stdout  # the terminal still works


def test_every_format_writes_what_its_name_says(study: Path, tmp_path: Path) -> None:
    r = run("ask", study, "-n", 2, "--format", "json", "-o", tmp_path / "a.json")
    assert r.exit_code == 0, r.output
    assert [t["trial_id"] for t in json.loads((tmp_path / "a.json").read_text())] == [0, 1]
    for fmt, pending in [
        ("csv", []),
        ("json", []),
        ("csv", ["--pending"]),
        ("json", ["--pending"]),
    ]:
        out = tmp_path / f"e{len(pending)}.{fmt}"
        assert run("export", study, "--format", fmt, *pending, "-o", out).exit_code == 0
        text = out.read_text()
        if fmt == "json":
            assert [row["trial_id"] for row in json.loads(text)] == [0, 1]
        else:
            assert (
                text.splitlines()[0].startswith("trial_id,x0,x1,value") and len(text.split()) == 3
            )


def test_a_failed_write_leaves_no_torn_file_and_frees_the_trials(
    study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = tmp_path / "batch.csv"
    batch.write_text("the old batch\n")

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    refused(run("ask", study, "-n", 2, "-o", batch, "--force"), "cannot write it", "No space")
    assert batch.read_text() == "the old batch\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch.csv", "s.db"]
    with StudyStorage.open(study) as st:  # the user never saw them: not left pending forever
        assert [t.state for t in st.trials()] == ["abandoned", "abandoned"]


# ----- opening a file that is not a bocli study changes nothing ----------------------------------
def _text(p: Path) -> None:
    p.write_text("trial_id,x0,x1,value\n0,1,2,3\n")


def _truncated_study(p: Path) -> None:
    init_study(p.with_name("whole.db"), problem="branin", check_models=False)
    p.write_bytes(p.with_name("whole.db").read_bytes()[:5000])
    p.with_name("whole.db").unlink()


NOT_STUDIES = {
    "empty": (lambda p: p.write_bytes(b""), "empty file, not a bocli study"),
    "text": (_text, "not a bocli study (not an SQLite file)"),
    "sqlite": (
        other_database,
        "an SQLite database, but not a bocli study (no bocli tables); nothing was changed",
    ),
    "sqlite-wal": (
        lambda p: other_database(p, wal=True),
        "an SQLite database, but not a bocli study (no bocli tables); nothing was changed",
    ),
    "truncated-study": (_truncated_study, "not a bocli study, or a damaged one"),
}


@pytest.mark.parametrize("kind", list(NOT_STUDIES))
def test_opening_a_non_study_changes_nothing(tmp_path: Path, kind: str) -> None:
    make, message = NOT_STUDIES[kind]
    path = tmp_path / "x.db"
    make(path)
    before = state(tmp_path)
    for args in (
        ["status"],
        ["best"],
        ["export"],
        ["tell", "--trial", "0", "--value", "1"],
        ["ask", "-n", "1"],
    ):
        line = refused(run(args[0], path, *args[1:]), f"{path}: {message}")
        assert state(tmp_path) == before, (args, line)  # same bytes, same mtime, no -wal/-shm


def test_a_real_process_prints_one_line(tmp_path: Path) -> None:
    other = other_database(tmp_path / "notes.db", wal=True)
    before = state(tmp_path)
    r = subprocess.run(
        [sys.executable, "-m", "bocli", "status", str(other)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    assert r.returncode == 2 and r.stdout == "" and "Traceback" not in r.stderr
    assert r.stderr.splitlines() == [
        f"Error: {other}: an SQLite database, but not a bocli study (no bocli tables); "
        "nothing was changed"
    ]
    assert state(tmp_path) == before


def test_odd_characters_in_the_path(tmp_path: Path) -> None:
    folder = tmp_path / "a b?c#d%20e"
    folder.mkdir()
    path = folder / "s t?.db"
    assert run("init", path, "--problem", "branin").exit_code == 0
    assert run("ask", path, "-n", 2, "-o", folder / "b?.csv").exit_code == 0
    assert json.loads(run("status", path, "--format", "json").stdout)["pending"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a b?c#d%20e"]  # nothing made elsewhere


# ----- a study bocli may not write: reading works, writing says why ------------------------------
def _deny_write(monkeypatch: pytest.MonkeyPatch, denied: Path) -> None:
    """Pretend ``denied`` is not writable (tests run as root, where chmod stops nothing)."""
    real = os.access

    def access(p: Any, mode: int, **kw: Any) -> bool:
        if Path(p).absolute() == denied.absolute() and mode & os.W_OK:
            return False
        return real(p, mode, **kw)

    monkeypatch.setattr(bocli.storage.os, "access", access)


@pytest.mark.parametrize("what", ["folder", "file"])
def test_a_read_only_study_reads_and_refuses_writes_in_one_line(
    study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, what: str
) -> None:
    assert run("ask", study, "-n", 2).exit_code == 0
    assert run("tell", study, "--trial", 0, "--value", 5.0).exit_code == 0
    _deny_write(monkeypatch, tmp_path if what == "folder" else study)
    before = state(tmp_path)
    info = json.loads(run("status", study, "--format", "json").stdout)
    assert (info["trials"], info["complete"], info["best_value"]) == (2, 1, 5.0)
    assert json.loads(run("best", study, "--format", "json").stdout)["trial_id"] == 0
    assert len(json.loads(run("export", study, "--format", "json").stdout)) == 2
    if what == "folder":
        needle = (
            f"{study}: the folder {tmp_path} is read-only; bocli needs to write beside the study"
        )
    else:
        needle = f"{study}: the study file is read-only; bocli needs to write to it"
    refused(run("tell", study, "--trial", 1, "--value", 1.0), needle)
    refused(run("ask", study, "-n", 1), needle)
    assert state(tmp_path) == before


def test_sqlite_refusing_to_write_gives_the_same_kind_of_line(
    study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """os.access may say yes where SQLite cannot write (a read-only mount, ACLs): its error
    turns into the same one line, and reading still works."""
    real = StudyStorage._connect

    def connect(path: Path, mode: str = "rwc", **kw: Any) -> sqlite3.Connection:
        if mode == "rw":
            raise sqlite3.OperationalError("attempt to write a readonly database")
        return real(path, mode, **kw)

    monkeypatch.setattr(StudyStorage, "_connect", staticmethod(connect))
    assert json.loads(run("status", study, "--format", "json").stdout)["trials"] == 0
    refused(
        run("tell", study, "--trial", 0, "--value", 1.0),
        f"{study}: cannot write the study or its folder",
        "bocli needs to write beside the study",
    )


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_a_really_read_only_folder(study: Path, tmp_path: Path) -> None:
    assert run("ask", study, "-n", 1).exit_code == 0
    before = state(tmp_path)
    tmp_path.chmod(0o555)
    try:
        assert json.loads(run("status", study, "--format", "json").stdout)["pending"] == 1
        refused(run("tell", study, "--trial", 0, "--value", 1.0), "is read-only")
    finally:
        tmp_path.chmod(0o755)
    assert state(tmp_path) == before
