"""User objectives: Python functions and external commands (helper scripts run by sys.executable)."""

from __future__ import annotations

import os
import pickle
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bocli.space import CategoricalParam, FloatParam, IntParam, Objective, Space
from problems import ObjectiveError
from problems.user import command_problem, python_problem

SPACE = Space(
    (FloatParam("x", -1.0, 1.0), IntParam("k", 1, 5), CategoricalParam("mode", ("fast", "slow"))),
    Objective("loss", "minimize"),
)
POINT = {"x": 0.5, "k": 2, "mode": "slow"}
EXPECTED = 0.5**2 + 2 + 10  # x^2 + k + (10 if slow)

OBJECTIVES = """
def f(p):
    return p["x"] ** 2 + p["k"] + (10 if p["mode"] == "slow" else 0)

def as_dict(p):
    return {"loss": f(p), "seconds": 1.0}

def wrong_key(p):
    return {"accuracy": 0.9}

def boom(p):
    raise RuntimeError("boom")

def nothing(p):
    return None

not_a_function = 3
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


# ----- python_problem ---------------------------------------------------------------------------
@pytest.fixture
def objfile(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # python_problem may add the cwd
    _write(tmp_path, "bocli_test_objectives.py", OBJECTIVES)
    yield tmp_path
    sys.modules.pop("bocli_test_objectives", None)


@pytest.mark.parametrize(
    "target",
    [
        "bocli_test_objectives:f",
        "bocli_test_objectives.py:f",
        "./bocli_test_objectives.py:f",
        "bocli_test_objectives:as_dict",
    ],
)
def test_python_problem(objfile, target):
    p = python_problem(target, SPACE, timeout=30)
    assert p.evaluate(POINT) == pytest.approx(EXPECTED)
    assert p.timeout == 30
    assert p.space is SPACE


def test_python_problem_by_absolute_path(objfile):
    p = python_problem(f"{objfile / 'bocli_test_objectives.py'}:f", SPACE)
    assert p.evaluate(POINT) == pytest.approx(EXPECTED)


@pytest.mark.parametrize(
    ("target", "match"),
    [
        ("no_such_module_xyz:f", r"'no_such_module_xyz:f': module 'no_such_module_xyz' not found"),
        ("missing.py:f", r"'missing.py:f': file not found"),
        ("bocli_test_objectives:g", r"no function 'g'; callables there: as_dict, boom, f"),
        ("bocli_test_objectives:not_a_function", "is not callable"),
        ("bocli_test_objectives", "expected 'module:function'"),
        ("bocli_test_objectives:", "expected 'module:function'"),
    ],
)
def test_python_problem_errors_name_the_target(objfile, target, match):
    with pytest.raises(ValueError, match=match):
        python_problem(target, SPACE)


def test_python_problem_import_error_is_reported(objfile):
    _write(objfile, "bocli_test_broken.py", "import no_such_dependency_xyz\n")
    with pytest.raises(ValueError, match="module 'no_such_dependency_xyz' not found"):
        python_problem("bocli_test_broken:f", SPACE)
    _write(objfile, "bocli_test_broken2.py", "1 / 0\n")
    with pytest.raises(ValueError, match="raised ZeroDivisionError"):
        python_problem("bocli_test_broken2.py:f", SPACE)


@pytest.mark.parametrize(
    ("func", "match"),
    [
        ("wrong_key", r"returned no 'loss' \(keys: accuracy\)"),
        ("boom", "RuntimeError: boom"),
        ("nothing", "returned None, expected a number"),
    ],
)
def test_python_objective_failures(objfile, func, match):
    p = python_problem(f"bocli_test_objectives:{func}", SPACE)
    with pytest.raises(ObjectiveError, match=match):
        p.evaluate(POINT)


# ----- command_problem --------------------------------------------------------------------------
STDIN_SCRIPT = """
import json, sys
p = json.load(sys.stdin)
print("loading data ...")
print(p["x"] ** 2 + p["k"] + (10 if p["mode"] == "slow" else 0))
print()
"""
ARGS_SCRIPT = """
import sys
p = dict(a[2:].split("=", 1) for a in sys.argv[1:])
print("args:", sorted(p))
print(float(p["x"]) ** 2 + int(p["k"]) + (10 if p["mode"] == "slow" else 0))
"""
JSON_SCRIPT = """
import json, sys
p = json.load(sys.stdin)
print(json.dumps({"loss": p["x"] ** 2 + p["k"] + 10, "other": 1}, indent=2))
"""


def _cmd(tmp_path: Path, text: str, name: str = "obj.py") -> list[str]:
    return [sys.executable, str(_write(tmp_path, name, text))]


@pytest.mark.parametrize(
    ("script", "mode"), [(STDIN_SCRIPT, "stdin"), (ARGS_SCRIPT, "args"), (JSON_SCRIPT, "stdin")]
)
def test_command_problem(tmp_path, script, mode):
    p = command_problem(_cmd(tmp_path, script), SPACE, timeout=30, mode=mode)
    assert p.evaluate(POINT) == pytest.approx(EXPECTED)
    assert p.timeout == 30


def test_command_args_keep_full_float_precision(tmp_path):
    script = "import sys; print(sys.argv[1].split('=')[1])"
    space = Space((FloatParam("x", 0.0, 1.0),), Objective("loss"))
    p = command_problem(_cmd(tmp_path, script), space, timeout=30, mode="args")
    assert p.evaluate({"x": 0.1 + 0.2}) == 0.1 + 0.2


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status  # a zombie is dead, only not yet reaped


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs /proc")
def test_command_timeout_kills_the_process_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    script = f"""
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    open({str(pidfile)!r}, "w").write(str(child.pid))
    time.sleep(60)
    """
    p = command_problem(_cmd(tmp_path, script), SPACE, timeout=1.5)
    start = time.monotonic()
    with pytest.raises(
        ObjectiveError, match=r"command 'python[0-9.]* obj.py' timed out after 1.5 s"
    ):
        p.evaluate(POINT)
    assert time.monotonic() - start < 10
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the command's child survived the timeout"


@pytest.mark.parametrize(
    ("script", "match"),
    [
        (
            "import sys\nprint('x')\nsys.stderr.write('warning\\nCUDA out of memory\\n')\n"
            "sys.exit(3)",
            r"command 'python[0-9.]* obj.py' exited with status 3: CUDA out of memory$",
        ),
        ("import sys; sys.exit(1)", r"exited with status 1 \(nothing on stderr\)"),
        (
            "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
            "was killed by SIGKILL",
        ),
        ("print('hello world')", r"cannot read a value from the last line of stdout 'hello world'"),
        ("print('{\"accuracy\": 0.5}')", r"returned no 'loss' \(keys: accuracy\)"),
        ("print('[1, 2]')", r"returned \[1, 2\], expected a number"),
        ("pass", "printed nothing on stdout"),
        ("print('nan')", "non-finite"),
    ],
)
def test_command_failures(tmp_path, script, match):
    if "SIGKILL" in script and os.name == "nt":
        pytest.skip("POSIX signals")
    p = command_problem(_cmd(tmp_path, script), SPACE, timeout=30)
    with pytest.raises(ObjectiveError, match=match):
        p.evaluate(POINT)


def test_command_problem_checks_its_settings(tmp_path):
    with pytest.raises(ValueError, match="not found on PATH"):
        command_problem(["no-such-program-xyz"], SPACE, timeout=5)
    with pytest.raises(ValueError, match="file not found"):
        command_problem([str(tmp_path / "missing.sh")], SPACE, timeout=5)
    script = _write(tmp_path, "run.sh", "#!/bin/sh\necho 1\n")
    with pytest.raises(ValueError, match="not executable"):
        command_problem([str(script)], SPACE, timeout=5)
    with pytest.raises(ValueError, match="mode must be one of stdin, args"):
        command_problem([sys.executable], SPACE, timeout=5, mode="env")
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        command_problem([sys.executable], SPACE, timeout=0)
    with pytest.raises(ValueError, match="command is empty"):
        command_problem([], SPACE, timeout=5)


def test_command_does_not_use_a_shell(tmp_path):
    script = "import sys; print(len(sys.argv[1:]))"
    space = Space((CategoricalParam("s", ("a; echo 7", "$(echo 9)")),), Objective("loss"))
    p = command_problem(_cmd(tmp_path, script), space, timeout=30, mode="args")
    assert p.evaluate({"s": "a; echo 7"}) == 1.0
    assert p.evaluate({"s": "$(echo 9)"}) == 1.0


# ----- pickling: the problems reach worker processes ---------------------------------------------
def test_user_problems_work_in_a_worker_process(objfile):
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    problems = [
        python_problem("bocli_test_objectives:f", SPACE),
        python_problem("bocli_test_objectives.py:as_dict", SPACE),
        command_problem(_cmd(objfile, STDIN_SCRIPT), SPACE, timeout=30),
    ]
    for p in problems:
        assert pickle.loads(pickle.dumps(p)) == p
    # spawn: a fresh interpreter, as Dask or a spawn-based pool would give
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        values = list(pool.map(_evaluate, problems))
    assert values == pytest.approx([EXPECTED] * 3)


def _evaluate(problem) -> float:
    return problem.evaluate(POINT)
