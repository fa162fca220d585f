"""The executors behind --workers / --scheduler: inline, local processes, Dask (real clusters)."""

from __future__ import annotations

import concurrent.futures as cf
import os
import time

import pytest

from bocli.executors import InlineExecutor, executor_capacity, make_executor


def _pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def _fail(message: str) -> None:
    raise ValueError(message)


def test_inline_executor_runs_at_submit_and_keeps_errors_in_the_future():
    ex = make_executor(1)
    assert isinstance(ex, InlineExecutor) and executor_capacity(ex) == 1
    fut = ex.submit(_pid_after, 0.0)
    assert fut.done() and fut.result() == os.getpid()
    bad = ex.submit(_fail, "nope")
    with pytest.raises(ValueError, match="nope"):
        bad.result()
    ex.shutdown()


def test_inline_executor_lets_ctrl_c_through():
    def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        InlineExecutor().submit(interrupt)


def test_process_pool_runs_tasks_at_once_in_other_processes():
    ex = make_executor(2)
    try:
        assert isinstance(ex, cf.ProcessPoolExecutor) and executor_capacity(ex) == 2
        ex.submit(_pid_after, 0.0).result(timeout=120)  # warm up both slots' spawn
        t0 = time.perf_counter()
        futs = [ex.submit(_pid_after, 1.5) for _ in range(2)]
        pids = {f.result(timeout=120) for f in futs}
        wall = time.perf_counter() - t0
        assert os.getpid() not in pids and len(pids) == 2
        assert wall < 2.9  # 2 x 1.5 s of sleep overlapped
        with pytest.raises(ValueError, match="remote"):
            ex.submit(_fail, "remote").result(timeout=60)
    finally:
        ex.shutdown()


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as c:
        yield c


def test_dask_scheduler_address_runs_on_an_existing_cluster(cluster):
    ex = make_executor(1, cluster.scheduler_address)
    try:
        assert executor_capacity(ex) is None
        futs = [ex.submit(_pid_after, 1.0) for _ in range(2)]
        done, _ = cf.wait(futs, timeout=120, return_when=cf.ALL_COMPLETED)
        pids = {f.result() for f in done}
        assert len(done) == 2 and os.getpid() not in pids
        worker_pids = {w.pid for w in cluster.workers.values() if hasattr(w, "pid")}
        if worker_pids:
            assert pids <= worker_pids
        with pytest.raises(ValueError, match="remote"):
            ex.submit(_fail, "remote").result(timeout=60)
    finally:
        ex.shutdown()
    assert cluster.scheduler_info["workers"]  # closing the client leaves the cluster running


@pytest.mark.slow
def test_dask_local_cluster_is_started_and_closed():
    pytest.importorskip("distributed")
    ex = make_executor(1, "local:2")
    try:
        cluster = ex.cluster
        assert len(cluster.workers) == 2
        futs = [ex.submit(_pid_after, 0.2) for _ in range(4)]
        assert all(f.result(timeout=120) != os.getpid() for f in futs)
    finally:
        ex.shutdown()
    assert cluster.status.name == "closed"


@pytest.mark.slow
def test_unreachable_scheduler_fails_quickly():
    pytest.importorskip("distributed")
    t0 = time.perf_counter()
    with pytest.raises((OSError, TimeoutError)):
        make_executor(1, "tcp://127.0.0.1:1")
    assert time.perf_counter() - t0 < 60
