"""User-defined objectives: a Python function (``module:function``) or an external command.

Both adapters are small module-level dataclasses, so the problems they build pickle and can be sent
to worker processes (concurrent.futures or Dask). They check what they can when they are built (the
function exists, the executable is found), so a mistake shows before the first evaluation.

Python function
    ``fn(params: dict) -> float`` (or a numpy scalar, a 0-d array or tensor) or a dict holding the
    objective's name, e.g. ``{"yield": 0.8}``. With several outcomes (objectives and constrained
    outcomes, ``Space.outcome_names``) it returns a dict holding every outcome's name (more keys are
    ignored) or a list/tuple (or 1-d array) of values in ``outcome_names`` order. The function runs in a persistent child process
    (one per process using it, spawned on first use, reused: an evaluation costs a pipe round trip).
    There its prints go to stderr and Ctrl-C is ignored; an exception of any kind (SystemExit
    included), the process dying (os._exit, a segfault) or ``timeout`` expiring (the process is
    killed) fails that evaluation only, and the next one starts a fresh process.

External command
    Run without a shell. Parameters go in as one JSON object on stdin (``mode="stdin"``) or as
    ``--name=value`` arguments (``mode="args"``). The value is read from stdout: the last non-empty
    line as a number, or as JSON (a number or an object holding the objective's name). With several
    outcomes it prints a JSON object holding every outcome's name, e.g. ``{"cost": 3, "purity":
    0.9}``. A timeout kills the command's whole process group.

Either way a missing outcome, or a value that is not a number, fails the evaluation with a one-line
ObjectiveError naming the outcome; ``Problem.evaluate_outcomes`` refuses NaN and infinities.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import json
import math
import numbers
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from bocli.space import Space
from problems.base import ObjectiveError, Problem, describe_exit

__all__ = ["CommandObjective", "PythonObjective", "command_problem", "python_problem"]

COMMAND_MODES = ("stdin", "args")


def _shown(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real problem
        text = f"a {type(value).__name__}"
    return text if len(text) <= 60 else text[:57] + "..."


def _as_number(value: Any) -> float | None:
    """``value`` as a float if it is a real number (int, float, a numpy scalar, a 0-d array or
    tensor), else None: a string such as ``"1.5"``, a bool, None, a list... are refused."""
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):
        try:
            value = value.item()  # numpy scalar or 0-d array, 0-d torch/jax tensor
        except Exception:
            return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _as_value(result: Any, objective: str, source: str) -> float:
    """A float from what an objective returned: a number, or a mapping holding ``objective``.

    NaN and infinities pass through; ``Problem.evaluate`` refuses them.
    """
    where = ""
    if isinstance(result, Mapping):
        if objective not in result:
            keys = ", ".join(map(str, result)) or "none"
            raise ObjectiveError(f"{source} returned no '{objective}' (keys: {keys})")
        result, where = result[objective], f" as '{objective}'"
    value = _as_number(result)
    if value is None:
        raise ObjectiveError(f"{source} returned {_shown(result)}{where}, expected a number")
    return value


def _as_values(
    result: Any, outcomes: Sequence[str], source: str, sequences: bool = True
) -> float | dict[str, float]:
    """What an objective returned -> a float (one outcome, see ``_as_value``) or ``{outcome:
    value}`` for every outcome (several): from a mapping holding every name, or, when
    ``sequences``, a list/tuple/1-d array in ``outcomes`` order. NaN and infinities pass through
    (``Problem.evaluate_outcomes`` refuses them, naming the outcome)."""
    if len(outcomes) == 1:
        return _as_value(result, outcomes[0], source)
    listed = ", ".join(outcomes)
    if isinstance(result, Mapping):
        missing = [n for n in outcomes if n not in result]
        if missing:
            keys = ", ".join(map(str, result)) or "none"
            names = ", ".join(f"'{n}'" for n in missing)
            raise ObjectiveError(f"{source} returned no {names} (keys: {keys})")
        items = [(n, result[n]) for n in outcomes]
    elif sequences and (isinstance(result, list | tuple) or getattr(result, "ndim", None) == 1):
        values = list(result)  # a list, a tuple, a 1-d numpy array or tensor
        if len(values) != len(outcomes):
            raise ObjectiveError(
                f"{source} returned {len(values)} values, expected {len(outcomes)} ({listed})"
            )
        items = list(zip(outcomes, values, strict=True))
    else:
        if sequences:
            how = "a mapping {name: value} or a list in that order"
        else:
            how = "a JSON object like {" + ", ".join(f'"{n}": 1.5' for n in outcomes) + "}"
        raise ObjectiveError(
            f"{source} returned {_shown(result)}, expected {len(outcomes)} outcomes "
            f"({listed}) as {how}"
        )
    out: dict[str, float] = {}
    for name, raw in items:
        value = _as_number(raw)
        if value is None:
            raise ObjectiveError(f"{source} returned {_shown(raw)} as '{name}', expected a number")
        out[name] = value
    return out


# ----- Python functions --------------------------------------------------------------------------
def _split_target(target: str) -> tuple[str, str]:
    module, sep, func = target.strip().rpartition(":")  # rpartition: 'C:\\obj.py:f' keeps its drive
    if not sep or not module or not func.isidentifier():
        raise ValueError(
            f"objective '{target}': expected 'module:function' or 'path/to/file.py:function'"
        )
    return module, func


def _exception_line(e: BaseException) -> str:
    try:
        text = str(e)
    except Exception:
        text = ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _import_failure(target: str, what: str, e: BaseException) -> ObjectiveError:
    if isinstance(e, SyntaxError):
        where = Path(e.filename).name if e.filename else what
        line = f" line {e.lineno}" if e.lineno else ""
        return ObjectiveError(f"objective '{target}': syntax error in {where}{line}: {e.msg}")
    return ObjectiveError(f"objective '{target}': importing {what} raised {_exception_line(e)}")


def _load_function(target: str, search_path: str) -> Callable[..., Any]:
    """Import ``target``'s function (run in the objective process); one-line ObjectiveErrors."""
    module_name, func_name = _split_target(target)
    if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
        path = Path(search_path, module_name)
        if not path.is_file():
            raise ObjectiveError(f"objective '{target}': file not found: {path}")
        # a unique name per path, so two files called obj.py do not replace each other
        digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
        unique = f"_bocli_user_{digest}_{path.stem}"
        module = sys.modules.get(unique)
        if module is None:
            spec = importlib.util.spec_from_file_location(unique, path)
            if spec is None or spec.loader is None:
                raise ObjectiveError(f"objective '{target}': cannot load {path} as Python")
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
            except BaseException as e:  # SystemExit, KeyboardInterrupt too: one line, not a crash
                raise _import_failure(target, str(path), e) from e
            sys.modules[unique] = module
    else:
        if search_path not in sys.path:  # like `python -m`: modules next to the user are found
            sys.path.append(search_path)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            raise ObjectiveError(
                f"objective '{target}': module '{e.name or module_name}' not found "
                f"(searched the current directory {search_path} and sys.path)"
            ) from e
        except BaseException as e:
            raise _import_failure(target, f"'{module_name}'", e) from e
    func = getattr(module, func_name, None)
    if func is None:
        public = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        hint = f"; callables there: {', '.join(public)}" if public else ""
        raise ObjectiveError(f"objective '{target}': no function '{func_name}'{hint}")
    if not callable(func):
        raise ObjectiveError(f"objective '{target}': '{func_name}' is not callable")
    return func


# The objective process: imports the function once, then answers requests until the pipe closes.
# Requests: ("load",) and ("call", params, outcome_names); replies: ("ok", None) to a load, ("ok",
# float) to a call with one outcome, ("ok", {outcome: float}) with several, or ("error", one line).
def _exit_with_parent(parent_pid: int) -> None:
    """End the objective process when its parent dies mid-evaluation (SIGKILL, OOM killer)."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(1)


def _serve(conn: Any, target: str, search_path: str, parent_pid: int) -> None:
    if hasattr(os, "setsid"):  # its own process group: a kill reaches what the objective started
        with contextlib.suppress(OSError):
            os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    sys.stdout.flush()
    os.dup2(2, 1)  # prints (Python or C) go to stderr: stdout may carry `--format json`
    sys.stdout = sys.stderr
    if os.name == "posix":  # (on Windows a dead parent's pid is not replaced)
        threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()
    source = f"objective '{target}'"
    func = None
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):  # the parent closed the pipe, or died
            break
        try:
            if func is None:
                func = _load_function(target, search_path)
            if request[0] == "call":
                reply = ("ok", _as_values(func(request[1]), request[2], source))
            else:
                reply = ("ok", None)
        except ObjectiveError as e:
            reply = ("error", str(e))
        except BaseException as e:  # SystemExit, KeyboardInterrupt, GeneratorExit, ...
            reply = ("error", f"objective raised {_exception_line(e)}")
        try:
            conn.send(reply)
        except (OSError, ValueError):
            break
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    os._exit(0)  # not sys.exit: threads the objective left behind must not keep it alive


class _Died(Exception):
    def __init__(self, exitcode: int | None) -> None:
        super().__init__(exitcode)
        self.exitcode = exitcode


def _death(exitcode: int | None, where: str) -> str:
    """'exited with status 4 (os._exit in the objective?)', 'was killed by SIGSEGV (...)'."""
    if exitcode is None:
        return "stopped answering"
    hints = {
        "SIGSEGV": "a crash in native code?",
        "SIGBUS": "a crash in native code?",
        "SIGABRT": "os.abort or a failed check in native code?",
        "SIGKILL": "out of memory?",
    }
    hint = f"os._exit in {where}?" if exitcode >= 0 else ""
    if exitcode > 0 and where == "the module":  # or Python failed before reaching the module
        hint = "os._exit in the module? else see the error on stderr"
    if exitcode < 0:
        with contextlib.suppress(ValueError):
            hint = hints.get(signal.Signals(-exitcode).name, "")
    return describe_exit(exitcode) + (f" ({hint})" if hint else "")


def _wait(conn: Any, timeout: float) -> bool:
    """``conn.poll(timeout)`` for any timeout (a single poll overflows past about 24 days)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if conn.poll(max(0.0, min(left, 86400.0))):
            return True
        if left <= 86400.0:
            return False


class _Child:
    """One objective process, seen from the process that uses it (see PythonObjective)."""

    def __init__(self, target: str, search_path: str) -> None:
        self.target = target
        self.search_path = search_path
        self.lock = threading.Lock()  # one request at a time
        self.proc: Any = None
        self.conn: Any = None
        self.loaded = False
        self.last_used = 0.0

    def running(self) -> bool:
        return self.proc is not None and self.proc.is_alive()

    def start(self) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        conn, child_conn = ctx.Pipe()
        proc = ctx.Process(
            target=_serve,
            args=(child_conn, self.target, self.search_path, os.getpid()),
            name=f"bocli objective {self.target}",
        )
        # Not a daemon: an objective may start processes of its own (a DataLoader's workers). A
        # daemonic caller (a Dask worker) may not start children; it does so here on purpose, and
        # _stop_children, the pipe's EOF and the parent-pid watch end this one.
        me = multiprocessing.current_process()
        daemonic = me.daemon
        try:
            if daemonic:
                me.daemon = False
            proc.start()
        except OSError as e:  # out of processes, memory or file descriptors
            conn.close()
            raise ObjectiveError(f"could not start the objective process: {e}") from e
        finally:
            if daemonic:
                me.daemon = True
            child_conn.close()  # else the parent never sees EOF when the child dies
        self.proc, self.conn, self.loaded = proc, conn, False

    def stop(self, grace: float = 0.0) -> int | None:
        """Kill the process (and its process group); its exit code, None if none is known."""
        proc, conn = self.proc, self.conn
        self.proc = self.conn = None
        self.loaded = False
        if conn is not None:
            conn.close()
        if proc is None:
            return None
        if grace:
            proc.join(grace)  # it is exiting (EOF): let it, to read its real exit code
        if hasattr(os, "killpg"):
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            proc.kill()
        proc.join(5)
        code = proc.exitcode
        if code is not None:
            proc.close()  # its sentinel fd now, not at garbage collection
        return code

    def request(self, message: tuple[Any, ...], timeout: float | None) -> Any:
        """Send one request, return the reply's payload; raise ObjectiveError or _Died."""
        conn = self.conn
        self.last_used = time.monotonic()
        if conn is None:  # stopped by _stop_children meanwhile
            raise _Died(None)
        try:
            conn.send(message)
            if timeout is not None and not _wait(conn, timeout):
                self.stop()
                raise ObjectiveError(f"objective timed out after {timeout:g} s")
            status, payload = conn.recv()
        except (EOFError, OSError):  # it died: os._exit, a signal, the OOM killer
            raise _Died(self.stop(grace=2.0)) from None
        except ObjectiveError:
            raise
        except BaseException:  # Ctrl-C while waiting: its state is unknown, so it goes
            self.stop()
            raise
        if status != "ok":
            raise ObjectiveError(payload)
        return payload

    def load(self) -> None:
        """Start the process if needed and import the function there (no time limit)."""
        if not self.running():
            self.stop()
            self.start()
        if self.loaded:
            return
        try:
            self.request(("load",), None)
        except _Died as e:
            raise ObjectiveError(
                f"objective '{self.target}': while starting and importing it, the objective "
                f"process {_death(e.exitcode, 'the module')}"
            ) from None
        self.loaded = True


# One objective process per (target, search path) and per process using it; the pid in the key
# (and the fork hook) keep a forked or spawned worker from using its parent's.
_MAX_RUNNING = 8  # idle objective processes kept per process (least recently used stop first)
_children: dict[tuple[str, str, int], _Child] = {}
_children_lock = threading.Lock()
_cleanup_registered = False


def _child_for(target: str, search_path: str) -> _Child:
    global _cleanup_registered
    pid = os.getpid()
    with _children_lock:
        child = _children.get((target, search_path, pid))
        if child is None:
            if not _cleanup_registered:
                import multiprocessing.util

                # runs before multiprocessing joins its children at exit, in the main process and
                # in multiprocessing workers alike (atexit does not run there)
                multiprocessing.util.Finalize(None, _stop_children, exitpriority=10)
                _cleanup_registered = True
            running = sorted(
                (c for k, c in _children.items() if k[2] == pid and c.proc is not None),
                key=lambda c: c.last_used,
            )
            for old in running[: max(0, len(running) - _MAX_RUNNING + 1)]:
                if old.lock.acquire(blocking=False):
                    try:
                        old.stop()
                    finally:
                        old.lock.release()
            child = _children[(target, search_path, pid)] = _Child(target, search_path)
        return child


def _stop_children() -> None:
    """Stop every objective process this process started (a later call starts a fresh one)."""
    pid = os.getpid()
    with _children_lock:
        children = [c for k, c in _children.items() if k[2] == pid]
    for child in children:
        child.stop()


def _forget_children_after_fork() -> None:
    global _children, _children_lock, _cleanup_registered
    _children, _children_lock, _cleanup_registered = {}, threading.Lock(), False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_children_after_fork)


@dataclass(frozen=True)
class PythonObjective:
    """Calls ``target`` (``module:function`` or ``file.py:function``) with the parameter dict.

    The function runs in a persistent objective process (spawned on first use in each process that
    calls it, reused across evaluations), so nothing it does (sys.exit, os._exit, a segfault,
    prints, a hang past ``timeout``) reaches the run: each is an ObjectiveError and the next call
    gets a fresh process. Only the target, the directory it is resolved from and the settings are
    stored, so it pickles to worker processes.

    With several ``outcomes`` (``Space.outcome_names``) a call returns ``{outcome: value}``.
    """

    target: str
    objective: str
    search_path: str
    timeout: float | None = None
    outcomes: tuple[str, ...] = ()  # every outcome when there are several; () = the objective
    handles_timeout: ClassVar[bool] = True  # the parent waits on the pipe and kills on expiry

    @property
    def outcome_names(self) -> tuple[str, ...]:
        return self.outcomes or (self.objective,)

    def load(self) -> None:
        """Import the function in the objective process; ObjectiveError (one line) if it fails."""
        child = _child_for(self.target, self.search_path)
        with child.lock:
            child.load()

    def __call__(self, params: Mapping[str, Any]) -> float | dict[str, float]:
        child = _child_for(self.target, self.search_path)
        with child.lock:
            child.load()
            try:
                value = child.request(("call", dict(params), self.outcome_names), self.timeout)
            except _Died as e:
                raise ObjectiveError(
                    f"objective process {_death(e.exitcode, 'the objective')}"
                ) from None
        if isinstance(value, dict):
            return {k: float(v) for k, v in value.items()}
        return float(value)


def python_problem(target: str, space: Space, timeout: float | None = None) -> Problem:
    """A problem whose objective is a Python function, run in a separate objective process.

    Args:
        target: ``module:function`` (importable, or next to the current directory) or
            ``path/to/file.py:function`` (relative to the current directory).
        space: The parameters and the objectives' names and directions (with several outcomes, the
            function returns every one of ``space.outcome_names``).
        timeout: Seconds an evaluation may take (the objective process is killed past it), or None.

    Raises:
        ValueError: ``target`` is malformed, or its module or function cannot be loaded (one line
            naming the target: not found, syntax error, an exception or exit while importing).
    """
    _split_target(target)
    if timeout is not None and not timeout > 0:
        raise ValueError(f"objective '{target}': timeout must be a positive number, got {timeout}")
    limit = timeout if timeout is not None and math.isfinite(timeout) else None
    objective = PythonObjective(
        target.strip(), space.objective.name, os.getcwd(), limit, _several(space)
    )
    try:
        objective.load()  # in the objective process: the module's side effects stay there
    except ObjectiveError as e:
        raise ValueError(str(e)) from None
    return Problem(
        name=target.strip(),
        space=space,
        fn=objective,
        timeout=timeout,
        description=f"Python function {target.strip()}",
        tags=("user",),
    )


def _several(space: Space) -> tuple[str, ...]:
    """Every outcome's name when the space has several, else () (the objective alone)."""
    names = tuple(space.outcome_names)
    return names if len(names) > 1 else ()


# ----- external commands -------------------------------------------------------------------------
def _short(argv: Sequence[str]) -> str:
    """``python /long/path/train.py --x 1`` -> ``python train.py``: enough to recognize it."""
    return " ".join(Path(a).name or a for a in argv[:2])


def _format_arg(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _parse_stdout(
    stdout: str, objective: str, source: str, outcomes: tuple[str, ...] = ()
) -> float | dict[str, float]:
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if len(outcomes) > 1:
        return _parse_outcomes(lines, outcomes, source)
    if not lines:
        raise ObjectiveError(f"{source} printed nothing on stdout; expected a number")
    last = lines[-1]
    try:
        return float(last)
    except ValueError:
        pass
    for text in (last, stdout):  # the last line, else all of stdout (pretty-printed JSON)
        try:
            return _as_value(json.loads(text), objective, source)
        except json.JSONDecodeError:
            continue
    shown = last if len(last) <= 80 else last[:77] + "..."
    raise ObjectiveError(
        f"{source}: cannot read a value from the last line of stdout '{shown}'; "
        f'expected a number or JSON like {{"{objective}": 1.5}}'
    )


def _parse_outcomes(lines: list[str], outcomes: tuple[str, ...], source: str) -> dict[str, float]:
    """Several outcomes: a JSON object holding every name, on the last line of stdout or on its last
    lines (pretty-printed)."""
    example = "{" + ", ".join(f'"{n}": 1.5' for n in outcomes) + "}"
    if not lines:
        raise ObjectiveError(f"{source} printed nothing on stdout; expected JSON like {example}")
    last = lines[-1]
    # the last line, else the last lines from one that opens an object (pretty-printed JSON after
    # the command's log lines; looked for among the last 500 lines)
    starts = [i for i in range(len(lines) - 1, max(-1, len(lines) - 501), -1) if lines[i][0] == "{"]
    texts = [last] + ["\n".join(lines[i:]) for i in starts]
    for text in texts:
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            continue
        values = _as_values(parsed, outcomes, source, sequences=False)
        return values if isinstance(values, dict) else {outcomes[0]: values}
    shown = last if len(last) <= 80 else last[:77] + "..."
    raise ObjectiveError(
        f"{source}: cannot read the outcomes from the last line of stdout '{shown}'; "
        f"expected JSON like {example}"
    )


def _kill_group(proc: subprocess.Popen[str]) -> None:
    # the command runs in its own session, so its pid is its process group: this reaches children
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass


@dataclass(frozen=True)
class CommandObjective:
    """Runs ``argv`` once per evaluation (no shell) and reads the value from its stdout.

    Attributes:
        argv: The command and its fixed arguments.
        objective: Objective name, looked up when the command prints JSON.
        timeout: Seconds before the command and its children are killed (None: no limit).
        mode: ``"stdin"`` (parameters as one JSON object) or ``"args"`` (``--name=value``).
        cwd: Working directory of the command (None: inherit).
        outcomes: With several outcomes, every name (``Space.outcome_names``): the command prints
            a JSON object holding each, and a call returns ``{outcome: value}``. () = the objective.
    """

    argv: tuple[str, ...]
    objective: str
    timeout: float | None
    mode: str = "stdin"
    cwd: str | None = None
    outcomes: tuple[str, ...] = ()
    handles_timeout: ClassVar[bool] = True  # kills its own process group; no extra process

    def __post_init__(self) -> None:
        if not self.argv:
            raise ValueError("command objective: the command is empty")
        if self.mode not in COMMAND_MODES:
            raise ValueError(
                f"command objective: mode must be one of {', '.join(COMMAND_MODES)}, "
                f"got {self.mode!r}"
            )

    @property
    def label(self) -> str:
        return f"command '{_short(self.argv)}'"

    def __call__(self, params: Mapping[str, Any]) -> float | dict[str, float]:
        argv = list(self.argv)
        stdin = ""
        if self.mode == "args":
            argv += [f"--{k}={_format_arg(v)}" for k, v in params.items()]
        else:
            stdin = json.dumps(dict(params), default=str) + "\n"
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=self.cwd,
                start_new_session=True,
            )
        except OSError as e:  # not found, not executable, ...
            raise ObjectiveError(f"{self.label} could not start: {e.strerror or e}") from e
        try:
            stdout, stderr = proc.communicate(stdin, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.communicate(timeout=5)  # reap it; a child that left the group may hold pipes
            raise ObjectiveError(f"{self.label} timed out after {self.timeout:g} s") from None
        except BaseException:  # KeyboardInterrupt, a cancelled worker: leave nothing running
            _kill_group(proc)
            proc.wait()
            raise
        if proc.returncode != 0:
            last = next((ln.strip() for ln in reversed(stderr.splitlines()) if ln.strip()), "")
            detail = f": {last}" if last else " (nothing on stderr)"
            raise ObjectiveError(f"{self.label} {describe_exit(proc.returncode)}{detail}")
        return _parse_stdout(stdout, self.objective, self.label, self.outcomes)


def _check_executable(program: str, cwd: str | None) -> None:
    if os.sep in program or (os.altsep and os.altsep in program):
        path = Path(cwd or ".", program)
        if not path.is_file():
            raise ValueError(f"command '{program}': file not found")
        if not os.access(path, os.X_OK):
            raise ValueError(f"command '{program}': file is not executable (chmod +x?)")
    elif shutil.which(program) is None:
        raise ValueError(f"command '{program}': not found on PATH")


def command_problem(
    argv: Sequence[str],
    space: Space,
    timeout: float | None,
    mode: str = "stdin",
    cwd: str | None = None,
) -> Problem:
    """A problem whose objective is an external command, run without a shell.

    Args:
        argv: The command and its fixed arguments, e.g. ``["python", "train.py"]``.
        space: The parameters and the objectives' names and directions (with several outcomes, the
            command prints a JSON object holding every one of ``space.outcome_names``).
        timeout: Seconds per evaluation; past it the command and its children are killed and the
            evaluation fails with an ObjectiveError ("... timed out after N s").
        mode: ``"stdin"``: the parameters as one JSON object on stdin; ``"args"``: as
            ``--name=value`` arguments after ``argv``.
        cwd: Working directory of the command (None: the caller's).

    Raises:
        ValueError: Empty command, unknown mode, bad timeout, or the executable is not found.
    """
    argv = tuple(str(a) for a in argv)
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"command objective: timeout must be a positive number, got {timeout}")
    objective = CommandObjective(argv, space.objective.name, timeout, mode, cwd, _several(space))
    _check_executable(argv[0], cwd)
    return Problem(
        name=_short(argv),
        space=space,
        fn=objective,
        timeout=timeout,
        description=f"external command: {' '.join(argv)}",
        tags=("user",),
    )
