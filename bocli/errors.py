"""The one base class for a user's mistake: the CLI prints its message on one line, exit code 2."""

from __future__ import annotations

import os
import sys
from pathlib import Path


class UserError(Exception):
    """Bad input from the user (a file, a row, a column or an option); never shown as a traceback."""


# ----- internal errors (a bug, not a user's mistake) ----------------------------------------------
# The folder a command works in (a run folder, a study's folder), once it is known: an internal
# error's traceback is logged there, else in the user cache (see ``log_internal_error``).
_log_dir: str | None = None


def set_log_dir(path: str | os.PathLike[str] | None) -> None:
    """Log an internal error's traceback in ``path`` (the run or study folder) from now on."""
    global _log_dir
    _log_dir = None if path is None else str(path)


def one_line(text: str) -> str:
    """``text`` folded to one line (a message must never span several)."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def cache_log_dir() -> Path:
    """``$XDG_CACHE_HOME/bocli/logs`` (default ``~/.cache/bocli/logs``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bocli" / "logs"


def log_internal_error(exc: BaseException, argv: list[str] | None = None) -> Path | None:
    """Write ``exc``'s full traceback to a new log file; return its path (None if none could be
    written). Tried in order: the folder set by ``set_log_dir``, then the user cache."""
    import datetime
    import traceback

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = f"bocli-error-{stamp}-{os.getpid()}.log"
    text = (
        f"bocli internal error at {datetime.datetime.now().isoformat(timespec='seconds')}\n"
        f"command: {' '.join(argv if argv is not None else sys.argv)}\n\n"
        + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    )
    for folder in (_log_dir, cache_log_dir()):
        if folder is None:
            continue
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
            path = Path(folder) / name
            path.write_text(text, encoding="utf-8")
            return path
        except OSError:
            continue
    return None
