"""Every user mistake in init / ask / tell / status / best / export gets one line, before any work.

A table of wrong invocations, each run through the real CLI in a folder holding a space file and
three studies (new, with pending trials, with told results): every one must exit with code 2, print
exactly one non-empty line on stderr, no traceback, and leave every file of the folder byte for
byte as it was (no new file either). A damaged study file (truncated, or bytes flipped) gets one
line from every command too. No model is fitted: the mistakes are refused before any work.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bocli.cli import cli

SPACE_YAML = """\
parameters:
  - {name: x, type: float, low: 0, high: 1}
  - {name: n, type: int, low: 1, high: 5}
  - {name: c, type: categorical, choices: [a, b]}
objective: {name: y, direction: minimize}
"""

ONE = "parameters:\n  - {name: x, type: float, low: 0, high: 1}\n"
NINE = "parameters:\n" + "".join(
    f"  - {{name: x{i}, type: float, low: 0, high: 1}}\n" for i in range(9)
)


def _p(spec: str) -> str:
    return f"parameters:\n  - {spec}\n"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """space.yaml; new.db (branin, no trials); pend.db (branin, 2 pending); told.db (branin,
    3 complete + 1 pending); mixed.db (space.yaml, no trials); b.csv (a told batch)."""
    d = tmp_path_factory.mktemp("base")
    (d / "space.yaml").write_text(SPACE_YAML)
    cwd = os.getcwd()
    os.chdir(d)
    try:
        r = CliRunner()
        for args in (
            ["init", "new.db", "--problem", "branin"],
            ["init", "mixed.db", "--space", "space.yaml"],
            ["init", "pend.db", "--problem", "branin"],
            ["ask", "pend.db", "-n", "2", "-o", "pend.csv"],
            ["init", "told.db", "--problem", "branin"],
            ["ask", "told.db", "-n", "3", "-o", "b.csv"],
        ):
            res = r.invoke(cli, args)
            assert res.exit_code == 0, (args, res.output)
        lines = Path("b.csv").read_text().splitlines()
        filled = [lines[0]] + [f"{line}{i + 1.5}" for i, line in enumerate(lines[1:])]
        Path("b.csv").write_text("\n".join(filled) + "\n")
        for args in (["tell", "told.db", "b.csv"], ["ask", "told.db", "-o", "p.csv"]):
            res = r.invoke(cli, args)
            assert res.exit_code == 0, (args, res.output)
    finally:
        os.chdir(cwd)
    return d


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture
def work(base: Path, tmp_path: Path) -> Path:
    d = tmp_path / "w"
    shutil.copytree(base, d)
    return d


def check_refused(work: Path, args: list[str], files: dict[str, str | bytes] | None = None) -> str:
    """Run ``bocli ARGS`` in ``work`` (after writing ``files``); assert the one-line contract."""
    for name, data in (files or {}).items():
        (work / name).write_bytes(data if isinstance(data, bytes) else data.encode())
    before = _snapshot(work)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        res = CliRunner().invoke(cli, args)
    finally:
        os.chdir(cwd)
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    assert res.exit_code == 2, (res.exit_code, res.output)
    err_lines = res.stderr.splitlines()
    assert len(err_lines) == 1 and err_lines[0].strip(), res.stderr
    assert err_lines[0].startswith("Error: ")
    assert "Traceback" not in res.output
    assert _snapshot(work) == before, "a refused command changed the folder"
    return err_lines[0]


def _cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover
        return False


# (args, extra files, a fragment the one line must hold)
CASES: list[tuple[list[str], dict[str, str | bytes] | None, str]] = [
    # ----- init: the space file
    (["init", "n.db", "--space", "missing.yaml"], None, "missing.yaml: file not found"),
    (["init", "n.db", "--space", "e.yaml"], {"e.yaml": ""}, "e.yaml"),
    (["init", "n.db", "--space", "e.yaml"], {"e.yaml": "a: [b\n"}, "not valid yaml"),
    (["init", "n.db", "--space", "e.yaml"], {"e.yaml": "- a\n- b\n"}, "expected a mapping"),
    (["init", "n.db", "--space", "e.yaml"], {"e.yaml": "parameters: {x: 1}\n"}, "must be a list"),
    (["init", "n.db", "--space", "e.yaml"], {"e.yaml": "parameters: []\n"}, "at least one"),
    (
        ["init", "n.db", "--space", "e.yaml"],
        {"e.yaml": _p("{name: c, type: categorical, choices: []}")},
        "'choices'",
    ),
    (
        ["init", "n.db", "--space", "e.yaml"],
        {"e.yaml": _p("{name: c, type: categorical, choices: null}")},
        "'choices'",
    ),
    (
        ["init", "n.db", "--space", "e.yaml"],
        {"e.yaml": _p("{name: ' x', type: float, low: 0, high: 1}")},
        "whitespace",
    ),
    (
        ["init", "n.db", "--space", "e.json"],
        {
            "e.json": '{"parameters": [{"name": "x", "type": "float", "low": -1e308, "high": 1e308}]}'
        },
        "overflows",
    ),
    (
        ["init", "n.db", "--space", "e.yaml"],
        {"e.yaml": _p("{name: x, type: float, low: -1e308, high: 1e308}")},
        "1.0e+5",
    ),
    (
        ["init", "n.db", "--space", "e.yaml"],
        {"e.yaml": _p("{name: x, type: float, low: 1, high: 1}")},
        "must be less than",
    ),
    (
        ["init", "n.db", "--space", "e.yaml"],
        {"e.yaml": _p("{name: x, type: float, low: 0, high: 1, log: true}")},
        "'low' > 0",
    ),
    (
        ["init", "n.db", "--space", "e.yaml"],
        {"e.yaml": _p("{name: x, type: int, low: 0.5, high: 3}")},
        "integers",
    ),
    (
        ["init", "n.db", "--space", "e.json"],
        {"e.json": '{"parameters": [{"name": "x", "type": "int", "low": 0, "high": 1e12}]}'},
        "at most",
    ),
    (
        ["init", "n.db", "--space", "e.yaml"],
        {"e.yaml": _p("{name: x, type: flaot, low: 0, high: 1}")},
        "did you mean 'float'",
    ),
    (
        ["init", "n.db", "--space", "e.yaml"],
        {"e.yaml": _p("{name: x, type: float, low: 0, high: 1, lgo: true}")},
        "unknown key 'lgo'",
    ),
    (
        ["init", "n.db", "--space", "e.yaml"],
        {"e.yaml": ONE + "  - {name: x, type: int, low: 0, high: 3}\n"},
        "more than once",
    ),
    (
        ["init", "n.db", "--space", "e.yaml"],
        {"e.yaml": ONE + "objective: {name: y, direction: maximise}\n"},
        "'direction'",
    ),
    (
        ["init", "n.db", "--space", "e.yaml"],
        {"e.yaml": _p("{name: x, type: float, low: 0, high: .inf}")},
        "finite",
    ),
    (["init", "n.db", "--space", "e.yaml"], {"e.yaml": b"\xff\xfe\x00"}, "e.yaml"),
    (["init", "n.db", "--space", "."], None, "directory"),
    # ----- init: options
    (["init", "n.db", "--problem", "branni"], None, "did you mean 'branin'"),
    (["init", "n.db", "--problem", "branin", "--init", "-1"], None, "--init"),
    (["init", "n.db", "--problem", "branin", "--seed", "abc"], None, "--seed"),
    (["init", "n.db", "--problem", "branin", "--surrogate-option", "{bad"], None, "JSON"),
    (["init", "n.db", "--problem", "branin", "--surrogate-option", "nosuch=1"], None, "nosuch"),
    (["init", "n.db", "--problem", "branin", "--surrogate-option", "min_noise=nan"], None, "min"),
    (
        ["init", "n.db", "--problem", "branin", "-a", "ucb", "--acquisition-option", "beta=abc"],
        None,
        "beta",
    ),
    (
        ["init", "n.db", "--problem", "branin", "-a", "ucb", "--acquisition-option", "bta=1"],
        None,
        "did you mean 'beta'",
    ),
    (["init", "n.db", "--problem", "branin", "--acquisition-option", "foo=1"], None, "'foo'"),
    (
        [
            "init",
            "n.db",
            "--problem",
            "branin",
            "-a",
            "kg",
            "--acquisition-option",
            "num_fantasies=0",
        ],
        None,
        "num_fantasies",
    ),
    (
        [
            "init",
            "n.db",
            "--problem",
            "branin",
            "-s",
            "pfn",
            "--surrogate-option",
            "checkpoint=nope.pt",
        ],
        None,
        "nope.pt",
    ),
    (
        [
            "init",
            "n.db",
            "--problem",
            "branin",
            "-s",
            "pfn",
            "--surrogate-option",
            "checkpoint=space.yaml",
        ],
        None,
        "space.yaml",
    ),
    (["init", "n.db", "--space", "e.yaml", "-s", "pfn"], {"e.yaml": NINE}, "at most 6 parameters"),
    (["init", "n.db", "--problem", "branin", "-s", "ensemble", "-a", "gibbon"], None, "works with"),
    (["init", "new.db", "--problem", "branin"], None, "already exists"),
    (["init", "nodir/n.db", "--problem", "branin"], None, "does not exist"),
    (["init", "n.db"], None, "exactly one"),
    (["init", "n.db", "--problem", "branin", "--space", "space.yaml"], None, "exactly one"),
    # ----- ask
    (["ask", "missing.db"], None, "no such study"),
    (["ask", "space.yaml"], None, "not a bocli study"),
    (["ask", "."], None, "directory"),
    (["ask", "told.db", "-n", "0"], None, "-n"),
    (
        ["ask", "new.db", "--device", "cuda"]
        if not _cuda()
        else ["ask", "new.db", "--device", "gpu"],
        None,
        "--device",
    ),
    (["ask", "told.db", "--format", "jsno"], None, "--format"),
    (["ask", "told.db", "-a", "ucb", "--acquisition-option", "beta=abc"], None, "beta"),
    (["ask", "new.db", "-a", "ucb", "--acquisition-option", "bta=1"], None, "did you mean"),
    (["ask", "told.db", "--surrogate", "gpp"], None, "--surrogate"),
    (["ask", "new.db", "-s", "pfn", "--surrogate-option", "checkpoint=b.csv"], None, "b.csv"),
    (["ask", "told.db", "-o", "nodir/x.csv"], None, "does not exist"),
    (["ask", "told.db", "-o", "b.csv"], None, "already exists"),
    (["ask", "told.db", "-o", "told.db", "--force"], None, "the study itself"),
    (["ask", "told.db", "-o", "x.csv", "--format", "table"], None, "table"),
    # ----- tell
    (["tell", "missing.db", "b.csv"], None, "no such study"),
    (["tell", ".", "b.csv"], None, "directory"),
    (["tell", "told.db", "."], None, "directory"),
    (["tell", "told.db", "nofile.csv"], None, "nofile.csv"),
    (["tell", "told.db", "--trial", "3", "--value", "nan"], None, "--value"),
    (["tell", "told.db", "--trial", "3", "--value", "abc"], None, "--value"),
    (["tell", "told.db", "--trial", "99", "--value", "1"], None, "unknown trial_id 99"),
    (["tell", "told.db", "--trial", "-1", "--value", "1"], None, "--trial"),
    (["tell", "told.db", "--value", "1"], None, "--trial"),
    (["tell", "told.db"], None, "FILE"),
    (["tell", "told.db", "b.csv", "--trial", "3"], None, "not both"),
    (["tell", "told.db", "--trial", "0", "--value", "7"], None, "--overwrite"),
    (["tell", "told.db", "--trial", "3", "--status", "done"], None, "--status"),
    (["tell", "told.db", "--trial", "3", "--status", "failed", "--value", "1"], None, "--value"),
    (["tell", "told.db", "bad.csv"], {"bad.csv": "trial_id,x0,x1,value\n3,1,2,abc\n"}, "row 2"),
    (["tell", "told.db", "bad.csv"], {"bad.csv": ""}, "empty"),
    (["tell", "told.db", "told.db"], None, "not CSV"),
    # ----- status / best / export
    (["status", "missing.db"], None, "no such study"),
    (["status", "space.yaml"], None, "not a bocli study"),
    (["status", "told.db", "--format", "yaml"], None, "--format"),
    (["status"], None, "STUDY"),
    (["best", "new.db"], None, "no complete trials yet"),
    (["best", "pend.db"], None, "no complete trials yet"),
    (["best", "b.csv"], None, "not a bocli study"),
    (["export", "told.db", "--format", "xlsx"], None, "--format"),
    (["export", "told.db", "-o", "nodir/a.csv"], None, "does not exist"),
    (["export", "told.db", "-o", "b.csv"], None, "already exists"),
    (["export", "told.db", "-o", "mixed.db", "--force"], None, "SQLite"),
    (["export", "told.db", "-o", "."], None, "directory"),
    (["export", "missing.db"], None, "no such study"),
]


@pytest.mark.parametrize(
    ("args", "files", "fragment"),
    CASES,
    ids=[f"{i:02d}-{' '.join(a)[:60]}" for i, (a, _, _) in enumerate(CASES)],
)
def test_one_line_and_nothing_changed(
    work: Path, args: list[str], files: dict[str, str | bytes] | None, fragment: str
) -> None:
    line = check_refused(work, args, files)
    assert fragment.lower() in line.lower(), line


def test_enough_cases() -> None:
    assert len(CASES) >= 40
    assert {a[0] for a, _, _ in CASES} >= {"init", "ask", "tell", "status", "best", "export"}


def _damaged_copies(db: bytes) -> list[tuple[str, bytes]]:
    rng = random.Random(7)
    out = [(f"cut{n}", db[:n]) for n in (1, 16, 100, 1024, 4096, len(db) // 2, len(db) - 1)]
    for k in range(10):
        b = bytearray(db)
        for _ in range(rng.choice([1, 4, 30])):
            b[rng.randrange(100, len(b))] = rng.randrange(256)
        out.append((f"flip{k}", bytes(b)))
    return out


DAMAGE_COMMANDS = [
    ["status", "d.db"],
    ["best", "d.db"],
    ["export", "d.db"],
    ["export", "d.db", "--pending"],
    ["tell", "d.db", "--trial", "3", "--value", "1"],
    ["ask", "d.db"],
]


def test_damaged_study_one_line_for_every_command(base: Path, tmp_path: Path) -> None:
    """A truncated or byte-flipped study: each command either works (the damage missed what it
    reads) or refuses with one line and exit code 2, never a traceback or an internal error, and
    never changes the damaged file."""
    db = (base / "told.db").read_bytes()
    refused = 0
    for name, data in _damaged_copies(db):
        for args in DAMAGE_COMMANDS:
            work = tmp_path / f"{name}-{args[0]}-{len(args)}"
            work.mkdir()
            (work / "d.db").write_bytes(data)
            cwd = os.getcwd()
            os.chdir(work)
            try:
                res = CliRunner().invoke(cli, args)
            finally:
                os.chdir(cwd)
            assert "Traceback" not in res.output, (name, args, res.output)
            if res.exit_code == 0:
                continue
            refused += 1
            assert res.exit_code == 2, (name, args, res.output)
            lines = res.stderr.splitlines()
            assert len(lines) == 1 and lines[0].startswith("Error: "), (name, args, res.stderr)
            assert (work / "d.db").read_bytes() == data, (name, args)
    assert refused >= len(DAMAGE_COMMANDS) * 7  # every truncation at least is refused


@pytest.mark.parametrize(
    "args",
    [
        ["init", "n.db", "--space", "missing.yaml"],
        ["init", "n.db", "--problem", "branin", "-a", "ucb", "--acquisition-option", "beta=x"],
        ["ask", "told.db", "-n", "0"],
        ["tell", "told.db", "--trial", "3", "--value", "abc"],
    ],
)
def test_real_process(work: Path, args: list[str]) -> None:
    """The same contract from a real ``python -m bocli`` process (the console entry point)."""
    before = _snapshot(work)
    res = subprocess.run(
        [sys.executable, "-m", "bocli", *args],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    assert _snapshot(work) == before
