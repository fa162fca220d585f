"""A Python user objective runs in a persistent child process: nothing it does takes the run down.

Each objective below returns its process id for x <= 0 (so a test sees whether the objective
process survived a failure or was replaced) and does something hostile for x > 0.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from bocli.space import FloatParam, Objective, Space
from problems import ObjectiveError
from problems.user import _stop_children, python_problem

SPACE = Space((FloatParam("x", -1.0, 1.0),), Objective("loss"))
GOOD, BAD = {"x": -0.5}, {"x": 0.5}
POSIX = pytest.mark.skipif(os.name != "posix", reason="POSIX signals and /proc")
REPO = Path(__file__).resolve().parents[2]

HEADER = """
import ctypes, os, signal, sys, time
import numpy as np

class ZeroD:  # duck-types a 0-d torch/jax tensor
    ndim = 0
    def item(self):
        return 2.5

def f(p):
    if p["x"] > 0:
{body}
    return os.getpid()
"""


@pytest.fixture(autouse=True)
def _no_objective_processes_left():
    yield
    _stop_children()


def _objective(tmp_path: Path, body: str, name: str = "obj.py") -> str:
    path = tmp_path / name
    path.write_text(HEADER.format(body=textwrap.indent(textwrap.dedent(body), " " * 8)))
    return f"{path}:f"


def _problem(tmp_path: Path, body: str, timeout: float | None = None):
    return python_problem(_objective(tmp_path, body), SPACE, timeout=timeout)


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status  # a zombie is dead, only not yet reaped


def _wait_dead(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _alive(pid)


@pytest.mark.parametrize(
    ("body", "match", "same_process"),
    [
        ("sys.exit(3)", r"^objective raised SystemExit: 3$", True),
        ("raise SystemExit", r"^objective raised SystemExit$", True),
        ("raise KeyboardInterrupt", r"^objective raised KeyboardInterrupt$", True),
        ("raise GeneratorExit('bye')", r"^objective raised GeneratorExit: bye$", True),
        ("return '1.5'", r"returned '1.5', expected a number$", True),
        ("return True", r"returned True, expected a number$", True),
        ("return [1.0]", r"returned \[1.0\], expected a number$", True),
        ("return {'loss': '2'}", r"returned '2' as 'loss', expected a number$", True),
        ("return np.array([1.0])", r"returned array\(\[1.\]\), expected a number$", True),
        ("return float('nan')", "non-finite", True),
        (
            "os._exit(4)",
            r"^objective process exited with status 4 \(os._exit in the objective\?\)$",
            False,
        ),
        (
            "ctypes.string_at(0)",
            r"^objective process was killed by SIGSEGV \(a crash in native code\?\)$",
            False,
        ),
        (
            "os.abort()",
            r"^objective process was killed by SIGABRT \(os.abort or a failed check",
            False,
        ),
        (
            "os.kill(os.getpid(), signal.SIGKILL)",
            r"^objective process was killed by SIGKILL \(out of memory\?\)$",
            False,
        ),
    ],
)
def test_a_failure_fails_one_evaluation_only(tmp_path, body, match, same_process):
    if os.name != "posix" and any(w in body for w in ("signal", "abort", "string_at")):
        pytest.skip("POSIX signals")
    p = _problem(tmp_path, body)
    before = p.evaluate(GOOD)
    with pytest.raises(ObjectiveError, match=match) as info:
        p.evaluate(BAD)
    assert "\n" not in str(info.value)
    after = p.evaluate(GOOD)  # the next evaluation works
    assert (after == before) is same_process  # a dead process was replaced by a fresh one


@pytest.mark.parametrize(
    "body",
    [
        "return np.float64(2.5)",
        "return np.float32(2.5)",
        "return np.array(2.5)",
        "return {'loss': np.array(2.5), 'other': 'x'}",
        "return ZeroD()",
        "return 5 / 2",
    ],
)
def test_numbers_that_are_accepted(tmp_path, body):
    assert _problem(tmp_path, body).evaluate(BAD) == 2.5


def test_integers_are_accepted(tmp_path):
    assert _problem(tmp_path, "return np.int64(7)").evaluate(BAD) == 7.0


def test_prints_never_reach_stdout(tmp_path, capfd):
    target = _objective(tmp_path, "print('junk'); os.write(1, b'c-level junk\\n'); return 1.5")
    Path(target.rpartition(":")[0]).write_text(
        "print('import-time junk')\n" + Path(target.rpartition(":")[0]).read_text()
    )
    p = python_problem(target, SPACE)
    assert p.evaluate(BAD) == 1.5
    out, err = capfd.readouterr()
    assert out == ""
    assert "import-time junk" in err and "junk" in err and "c-level junk" in err


@POSIX
def test_timeout_kills_the_process_and_its_children_then_the_next_call_works(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    body = f"""
    import subprocess
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    open({str(pidfile)!r}, "w").write(str(child.pid))
    time.sleep(30)
    """
    p = _problem(tmp_path, body, timeout=1)
    assert p.timeout == 1 and p.fn.timeout == 1
    first = int(p.evaluate(GOOD))
    start = time.monotonic()
    with pytest.raises(ObjectiveError, match=r"^objective timed out after 1 s$"):
        p.evaluate(BAD)
    assert time.monotonic() - start < 5
    assert _wait_dead(first), "the objective process survived its timeout"
    assert _wait_dead(int(pidfile.read_text())), "what the objective started survived the timeout"
    assert int(p.evaluate(GOOD)) != first  # a fresh process


def _wait_for(path: Path, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


@POSIX
def test_ctrl_c_in_the_parent_kills_the_objective_process(tmp_path):
    busy = tmp_path / "busy"
    p = _problem(tmp_path, f"open({str(busy)!r}, 'w').close(); time.sleep(30)")
    first = int(p.evaluate(GOOD))
    main = threading.main_thread().ident

    def interrupt() -> None:
        _wait_for(busy)  # the parent is waiting on the pipe now
        time.sleep(0.1)
        signal.pthread_kill(main, signal.SIGINT)

    thread = threading.Thread(target=interrupt)
    thread.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            p.evaluate(BAD)
    finally:
        thread.join()
    assert _wait_dead(first)
    assert int(p.evaluate(GOOD)) != first


@pytest.mark.parametrize(
    ("module", "match"),
    [
        ("import sys\nsys.exit(2)\n", r"importing .*bad\.py raised SystemExit: 2$"),
        ("raise KeyboardInterrupt\n", r"importing .*bad\.py raised KeyboardInterrupt$"),
        (
            "import os\nos._exit(5)\n",
            r"while starting and importing it, the objective process exited with status 5 "
            r"\(os._exit in the module\? else see the error on stderr\)$",
        ),
        (
            "x = 1\ndef f(p)\n    return 1\n",
            r"^objective '.*bad\.py:f': syntax error in bad\.py line 2",
        ),
        ("def g(p):\n    return 1\n", r"no function 'f'; callables there: g$"),
        ("f = 3\n", r"'f' is not callable$"),
    ],
)
def test_import_failures_are_one_line(tmp_path, module, match):
    (tmp_path / "bad.py").write_text(module)
    with pytest.raises(ValueError, match=match) as info:
        python_problem(f"{tmp_path / 'bad.py'}:f", SPACE)
    assert "\n" not in str(info.value)


def test_syntax_error_in_a_module_names_the_file_and_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bocli_test_syntax.py").write_text("def f(p):\n    return (1\n")
    with pytest.raises(ValueError, match=r"syntax error in bocli_test_syntax\.py line 2"):
        python_problem("bocli_test_syntax:f", SPACE)


def test_the_objective_process_is_reused_and_cheap(tmp_path):
    p = _problem(tmp_path, "return 1.0")
    pids = {p.evaluate(GOOD)}  # started and imported by python_problem already
    start = time.perf_counter()
    pids |= {p.evaluate(GOOD) for _ in range(50)}
    assert time.perf_counter() - start < 5  # a pipe round trip each, not a process start
    assert len(pids) == 1 and pids != {float(os.getpid())}


def test_the_problem_pickles(tmp_path):
    p = _problem(tmp_path, "return 1.0")
    p.evaluate(GOOD)  # a running objective process is not part of the problem
    q = pickle.loads(pickle.dumps(p))
    assert q == p and q.fn.handles_timeout
    assert q.evaluate(BAD) == 1.0


def test_threads_take_turns(tmp_path):
    p = _problem(tmp_path, "time.sleep(0.05); return p['x']")
    results = []
    threads = [threading.Thread(target=lambda: results.append(p.evaluate(BAD))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [0.5] * 4


def test_the_objective_may_start_daemonic_processes(tmp_path):
    # a torch DataLoader's workers are daemonic: the objective process must not be a daemon
    body = """
    import multiprocessing
    w = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(0,), daemon=True)
    w.start()
    w.join()
    return 1.0 + w.exitcode
    """
    assert _problem(tmp_path, body).evaluate(BAD) == 1.0


def _evaluate_in_daemon(problem, queue) -> None:
    queue.put(problem.evaluate(GOOD))


@POSIX
def test_works_in_a_daemonic_worker_and_is_cleaned_up_with_it(tmp_path):
    # Dask's worker processes are daemonic, and multiprocessing workers skip atexit
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    p = _problem(tmp_path, "return 1.0")
    queue = ctx.Queue()
    worker = ctx.Process(target=_evaluate_in_daemon, args=(p, queue), daemon=True)
    worker.start()
    pid = int(queue.get(timeout=60))
    worker.join(30)
    assert worker.exitcode == 0
    assert pid != int(p.evaluate(GOOD))  # the worker had its own objective process
    assert _wait_dead(pid), "the worker's objective process outlived it"


PARENT = """
import sys, time
from bocli.space import FloatParam, Objective, Space
from problems.user import python_problem

p = python_problem(sys.argv[1], Space((FloatParam("x", -1.0, 1.0),), Objective("loss")))
print(int(p.evaluate({"x": -0.5})), flush=True)
if sys.argv[2] == "busy":
    p.evaluate({"x": 0.5})
time.sleep(60)
"""


@POSIX
@pytest.mark.parametrize("state", ["idle", "busy"])
def test_the_objective_process_ends_when_its_parent_is_killed(tmp_path, state):
    busy = tmp_path / "busy"
    target = _objective(tmp_path, f"open({str(busy)!r}, 'w').close(); time.sleep(60)")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, target, state], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        child = int(parent.stdout.readline())
        if state == "busy":
            _wait_for(busy)  # the objective is sleeping now
        assert _alive(child)
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()
    assert _wait_dead(child, 10), f"the objective process lingered ({state})"
