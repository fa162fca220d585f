"""Where objective evaluations (and comparison cells) run: one concurrent.futures-style executor.

- ``InlineExecutor``: in this process, one at a time (the default for ``--workers 1``).
- ``--workers K``: a pool of K local processes (spawned, so nothing of torch's state is forked).
- ``--scheduler tcp://host:port``: an existing Dask cluster; ``--scheduler local:K``: a Dask
  LocalCluster of K single-threaded workers. Both through ``distributed.Client.get_executor()``.

Callers only use ``submit``, ``concurrent.futures.wait`` and ``shutdown``.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from collections.abc import Callable
from typing import Any

__all__ = [
    "InlineExecutor",
    "check_scheduler_reachable",
    "executor_capacity",
    "make_executor",
    "parse_scheduler",
]


class InlineExecutor(cf.Executor):
    """Runs each task at ``submit`` time in the calling thread; returns a finished Future."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt | SystemExit):
                raise
            fut.set_exception(e)
        return fut


class _DaskExecutor(cf.Executor):
    """A Dask client's executor that also closes the client (and a LocalCluster it started)."""

    def __init__(self, client: Any, cluster: Any = None) -> None:
        self.client, self.cluster = client, cluster
        self._ex = client.get_executor(pure=False)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        return self._ex.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._ex.shutdown(wait=wait)
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def parse_scheduler(scheduler: str) -> tuple[str, Any]:
    """Check a ``--scheduler`` address without connecting: ``("local", K)`` (K None: as many as
    --workers) or ``("tcp", (host, port))``. Raises ValueError with one line saying what works."""
    text = scheduler.strip()
    expected = "expected tcp://HOST:PORT (a running Dask scheduler) or local:K (K >= 1 workers)"
    if text == "local" or text.startswith("local:"):
        _, _, k = text.partition(":")
        if not k:
            return "local", None
        if not k.strip().isdigit() or int(k) < 1:
            raise ValueError(f"{scheduler!r}: K in local:K must be a whole number >= 1")
        return "local", int(k)
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "tcp", text  # distributed accepts a bare HOST:PORT as tcp
    if scheme not in ("tcp", "tls"):
        raise ValueError(f"{scheduler!r}: unsupported scheme '{scheme}://'; {expected}")
    host, colon, port = rest.rstrip("/").rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{scheduler!r}: {expected}")
    return scheme, (host, int(port))


def check_scheduler_reachable(scheduler: str, timeout: float = 5.0) -> None:
    """Fail fast (ValueError, one line) when a ``tcp://`` scheduler cannot be reached, before a
    run or grid writes anything; ``local:K`` needs nothing."""
    import socket

    kind, where = parse_scheduler(scheduler)
    if kind == "local":
        return
    host, port = where
    try:
        socket.getaddrinfo(host, port)
    except OSError:
        raise ValueError(f"{scheduler!r}: unknown host '{host}'") from None
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as e:
        reason = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise ValueError(
            f"{scheduler!r}: no Dask scheduler answers at {host}:{port} ({reason}); start one "
            "with `dask scheduler`, or use local:K"
        ) from None


def make_executor(workers: int = 1, scheduler: str | None = None) -> cf.Executor:
    """Build the executor for ``--workers`` / ``--scheduler``.

    Args:
        workers: Local worker processes (1 = inline, in this process).
        scheduler: ``tcp://HOST:PORT`` of a running Dask scheduler, or ``local:K`` for a new
            LocalCluster with K workers; None for local processes.
    """
    if scheduler:
        from distributed import Client, LocalCluster

        kind, k = parse_scheduler(scheduler)
        if kind == "local":
            n = k or max(workers, 1)
            cluster = LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0"
            )
            return _DaskExecutor(Client(cluster), cluster)
        return _DaskExecutor(Client(scheduler, timeout="10s"))
    if workers <= 1:
        return InlineExecutor()
    return cf.ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn")
    )


def executor_capacity(executor: cf.Executor) -> int | None:
    """How many tasks to keep submitted at once: the pool size for local executors (so results are
    handled as they finish), None (everything at once) for Dask, which queues and balances itself."""
    if isinstance(executor, InlineExecutor):
        return 1
    if isinstance(executor, _DaskExecutor):
        return None
    n = getattr(executor, "_max_workers", None)
    return int(n) if n else None
