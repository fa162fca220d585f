"""Internal errors (a bug, not a user's mistake): one line naming a log file that holds the
traceback, exit code 1; ``--debug`` / ``BOCLI_DEBUG=1`` show the traceback instead."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from bocli.cli import cli


@pytest.fixture
def broken_problems(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """``bocli problems`` hits a bug; the user cache is a temporary folder."""
    import problems

    def boom() -> None:
        raise RuntimeError("something inside broke\nsecond line")

    monkeypatch.setattr(problems, "list_problems", boom)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("BOCLI_DEBUG", raising=False)
    return tmp_path / "cache" / "bocli" / "logs"


def test_internal_error_is_one_line_with_a_log(broken_problems: Path) -> None:
    result = CliRunner().invoke(cli, ["problems"])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    m = re.fullmatch(
        r"internal error: RuntimeError: something inside broke second line \(details in (.+)\)",
        lines[0],
    )
    assert m, lines[0]
    log = Path(m.group(1))
    assert log.parent == broken_problems and log.is_file()
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "in boom" in text
    assert "Traceback" not in result.output


def test_debug_flag_shows_the_traceback(broken_problems: Path) -> None:
    result = CliRunner().invoke(cli, ["--debug", "problems"])
    assert isinstance(result.exception, RuntimeError)  # propagated, so click shows it
    assert not broken_problems.exists()


def test_debug_env_shows_the_traceback(
    broken_problems: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOCLI_DEBUG", "1")
    result = CliRunner().invoke(cli, ["problems"])
    assert isinstance(result.exception, RuntimeError)
    assert not broken_problems.exists()


def test_internal_error_in_a_run_is_logged_in_its_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import bocli.run

    def boom(*args: object, **kwargs: object) -> None:
        raise ValueError("a bug in the loop")

    monkeypatch.setattr(bocli.run, "optimize", boom)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("BOCLI_DEBUG", raising=False)
    out = tmp_path / "r"
    args = ["run", "branin", "--budget", "1", "--init", "1", "-a", "random", "--out", str(out)]
    result = CliRunner().invoke(cli, [*args, "--format", "json"])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("internal error: ValueError: a bug in the loop")
    logs = list(out.glob("bocli-error-*.log"))
    assert len(logs) == 1 and str(logs[0]) in lines[0]
    assert "a bug in the loop" in logs[0].read_text()
    assert not (tmp_path / "cache").exists()


def test_keyboard_interrupt_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    import problems

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(problems, "list_problems", interrupted)
    result = CliRunner().invoke(cli, ["problems"])
    assert result.exit_code == 130
    assert result.stderr.strip() == "interrupted"


def test_usage_errors_are_one_line_exit_2() -> None:
    for args in (["--bogus"], ["nosuch"], ["run", "--bogus"], ["pfn", "train", "--steps", "0"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, args
        assert len(result.stderr.splitlines()) == 1, (args, result.stderr)
        assert result.stderr.startswith("Error: ") and "--help" in result.stderr


def test_user_error_with_newlines_is_folded(monkeypatch: pytest.MonkeyPatch) -> None:
    import problems
    from bocli.errors import UserError

    def bad() -> None:
        raise UserError("first\n  second\n")

    monkeypatch.setattr(problems, "list_problems", bad)
    result = CliRunner().invoke(cli, ["problems"])
    assert result.exit_code == 2
    assert result.stderr == "Error: first second\n"


def test_no_arguments_still_prints_help() -> None:
    result = CliRunner().invoke(cli, [])
    assert result.exit_code == 2 and "Usage:" in result.output
    assert isinstance(cli, click.Group)
