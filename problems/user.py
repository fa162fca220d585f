"""User-defined objectives: a Python function (``module:function``) or an external command.

Both adapters are small module-level dataclasses, so the problems they build pickle and can be sent
to worker processes (concurrent.futures or Dask). They check what they can when they are built (the
function exists, the executable is found), so a mistake shows before the first evaluation.

Python function
    ``fn(params: dict) -> float`` or a dict holding the objective's name, e.g. ``{"yield": 0.8}``.
    ``timeout`` is recorded on the problem; the runner enforces it (a Python call cannot be
    interrupted safely from inside its own process).

External command
    Run without a shell. Parameters go in as one JSON object on stdin (``mode="stdin"``) or as
    ``--name=value`` arguments (``mode="args"``). The value is read from stdout: the last non-empty
    line as a number, or as JSON (a number or an object holding the objective's name). A timeout
    kills the command's whole process group.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import json
import math
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from bocli.space import Space
from problems.base import ObjectiveError, Problem

__all__ = ["CommandObjective", "PythonObjective", "command_problem", "python_problem"]

COMMAND_MODES = ("stdin", "args")


def _as_value(result: Any, objective: str, source: str) -> float:
    """A float from what an objective returned: a number, or a mapping holding ``objective``."""
    if isinstance(result, Mapping):
        if objective not in result:
            keys = ", ".join(map(str, result)) or "none"
            raise ObjectiveError(f"{source} returned no '{objective}' (keys: {keys})")
        result = result[objective]
    if isinstance(result, bool) or result is None:
        raise ObjectiveError(f"{source} returned {result!r}, expected a number")
    try:
        return float(result)
    except (TypeError, ValueError):
        raise ObjectiveError(f"{source} returned {result!r}, expected a number") from None


# ----- Python functions --------------------------------------------------------------------------
def _split_target(target: str) -> tuple[str, str]:
    module, sep, func = target.strip().rpartition(":")  # rpartition: 'C:\\obj.py:f' keeps its drive
    if not sep or not module or not func.isidentifier():
        raise ValueError(
            f"objective '{target}': expected 'module:function' or 'path/to/file.py:function'"
        )
    return module, func


def _load_function(target: str, search_path: str) -> Callable[..., Any]:
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
            except Exception as e:
                raise ObjectiveError(
                    f"objective '{target}': importing {path} raised {type(e).__name__}: {e}"
                ) from e
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
        except Exception as e:
            raise ObjectiveError(
                f"objective '{target}': importing '{module_name}' raised {type(e).__name__}: {e}"
            ) from e
    func = getattr(module, func_name, None)
    if func is None:
        public = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        hint = f"; callables there: {', '.join(public)}" if public else ""
        raise ObjectiveError(f"objective '{target}': no function '{func_name}'{hint}")
    if not callable(func):
        raise ObjectiveError(f"objective '{target}': '{func_name}' is not callable")
    return func


@dataclass(frozen=True)
class PythonObjective:
    """Calls ``target`` (``module:function`` or ``file.py:function``) with the parameter dict.

    Only the target and the directory it is resolved from are stored (so it pickles); the function
    is imported on first use in each process.
    """

    target: str
    objective: str
    search_path: str

    def __call__(self, params: Mapping[str, Any]) -> float:
        func = _load_function(self.target, self.search_path)
        return _as_value(func(dict(params)), self.objective, f"objective '{self.target}'")


def python_problem(target: str, space: Space, timeout: float | None = None) -> Problem:
    """A problem whose objective is a Python function.

    Args:
        target: ``module:function`` (importable, or next to the current directory) or
            ``path/to/file.py:function`` (relative to the current directory).
        space: The parameters and the objective's name and direction.
        timeout: Seconds an evaluation may take (enforced by the runner), or None.

    Raises:
        ValueError: ``target`` is malformed, or its module or function cannot be found (the message
            names the target).
    """
    _split_target(target)
    objective = PythonObjective(target.strip(), space.objective.name, os.getcwd())
    try:
        _load_function(objective.target, objective.search_path)
    except ObjectiveError as e:
        raise ValueError(str(e)) from e.__cause__
    return Problem(
        name=target.strip(),
        space=space,
        fn=objective,
        timeout=timeout,
        description=f"Python function {target.strip()}",
        tags=("user",),
    )


# ----- external commands -------------------------------------------------------------------------
def _short(argv: Sequence[str]) -> str:
    """``python /long/path/train.py --x 1`` -> ``python train.py``: enough to recognize it."""
    return " ".join(Path(a).name or a for a in argv[:2])


def _format_arg(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _parse_stdout(stdout: str, objective: str, source: str) -> float:
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
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


def _kill_group(proc: subprocess.Popen[str]) -> None:
    # the command runs in its own session, so its pid is its process group: this reaches children
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


@dataclass(frozen=True)
class CommandObjective:
    """Runs ``argv`` once per evaluation (no shell) and reads the value from its stdout.

    Attributes:
        argv: The command and its fixed arguments.
        objective: Objective name, looked up when the command prints JSON.
        timeout: Seconds before the command and its children are killed (None: no limit).
        mode: ``"stdin"`` (parameters as one JSON object) or ``"args"`` (``--name=value``).
        cwd: Working directory of the command (None: inherit).
    """

    argv: tuple[str, ...]
    objective: str
    timeout: float | None
    mode: str = "stdin"
    cwd: str | None = None
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

    def __call__(self, params: Mapping[str, Any]) -> float:
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
            raise ObjectiveError(f"{self.label} {_describe_exit(proc.returncode)}{detail}")
        return _parse_stdout(stdout, self.objective, self.label)


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
        space: The parameters and the objective's name and direction.
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
    objective = CommandObjective(argv, space.objective.name, timeout, mode, cwd)
    _check_executable(argv[0], cwd)
    return Problem(
        name=_short(argv),
        space=space,
        fn=objective,
        timeout=timeout,
        description=f"external command: {' '.join(argv)}",
        tags=("user",),
    )
