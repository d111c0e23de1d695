"""The same results on every scheduler: synchronous, threads, processes, distributed."""

from __future__ import annotations

import time

import dask
import numpy as np
import pytest

from dataflow.api import Context
from dataflow.errors import ExecutorSpecException
from dataflow.executor.concurrent import ConcurrentJobExecutor
from dataflow.executor.inline import InlineJobExecutor
from dataflow.executor.integration import DaskIntegrationExecutor
from dataflow.udf import UDF
from dataflow.udf.sum import SumUDF
from dataflow.udf.sumsigudf import SumSigUDF


class MaxUDF(UDF):
    def get_result_buffers(self):
        return {
            "mx": self.buffer(kind="sig", dtype=self.meta.input_dtype),
            "where": self.buffer(kind="nav", extra_shape=(2,), dtype="int64"),
            "seen": self.buffer(kind="single", dtype=object),
        }

    def preprocess(self):
        self.results.mx[:] = -np.inf
        self.results.seen[0] = ()

    def process_frame(self, frame):
        self.results.mx[:] = np.maximum(frame, self.results.mx)
        self.results.where[:] = self.meta.coordinates[0]
        self.results.seen[0] = (*self.results.seen[0], int(frame.sum()))

    def merge(self, dest, src):
        dest.mx[:] = np.maximum(dest.mx, src.mx)
        dest.where[:] = src.where
        dest.seen[0] = dest.seen[0] + src.seen[0]


def _expected(data, roi):
    sel = data[roi] if roi is not None else data.reshape(-1, *data.shape[2:])
    coords = np.argwhere(roi) if roi is not None else np.argwhere(np.ones(data.shape[:2]))
    return sel.sum(axis=0), sel.sum(axis=(1, 2)), sel.max(axis=0), coords, sel


def _run_and_check(ctx, data, roi, num_partitions):
    ds = ctx.load("memory", data=data, num_partitions=num_partitions)
    a, b, c = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF(), MaxUDF()], roi=roi)
    total, per_frame, mx, coords, sel = _expected(data, roi)
    # integers in float32: exact whatever the partitioning
    np.testing.assert_array_equal(a["intensity"].data, total)
    np.testing.assert_array_equal(b["intensity"].raw_data, per_frame)
    np.testing.assert_array_equal(c["mx"].data, mx)
    np.testing.assert_array_equal(c["where"].raw_data, coords)
    assert sorted(c["seen"].data[0]) == sorted(int(f.sum()) for f in sel)
    parts = list(ctx.run_udf_iter(dataset=ds, udf=[SumUDF(), MaxUDF()], roi=roi))
    np.testing.assert_array_equal(parts[-1].buffers[0]["intensity"].data, total)
    np.testing.assert_array_equal(parts[-1].buffers[1]["mx"].data, mx)


@pytest.fixture
def data():
    rng = np.random.default_rng(7)
    return rng.integers(0, 100, size=(8, 8, 5, 5)).astype("float32")


@pytest.fixture
def roi():
    rng = np.random.default_rng(8)
    return rng.random((8, 8)) < 0.4


@pytest.mark.parametrize("num_partitions", [1, 2, 7, 64])
@pytest.mark.parametrize("use_roi", [False, True])
def test_sync(ctx, data, roi, num_partitions, use_roi):
    _run_and_check(ctx, data, roi if use_roi else None, num_partitions)


@pytest.mark.parametrize("num_partitions", [1, 7])
def test_threads(threads_ctx, data, roi, num_partitions):
    _run_and_check(threads_ctx, data, roi, num_partitions)


@pytest.mark.slow
@pytest.mark.parametrize("num_partitions", [2, 7])
def test_processes(processes_ctx, by_value, data, roi, num_partitions):
    _run_and_check(processes_ctx, data, roi, num_partitions)


@pytest.mark.distributed
@pytest.mark.parametrize("num_partitions", [2, 7])
def test_distributed(dask_ctx, by_value, data, roi, num_partitions):
    _run_and_check(dask_ctx, data, roi, num_partitions)


@pytest.mark.distributed
def test_default_context_uses_the_active_client(by_value, data):
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        ctx = Context()
        assert ctx.executor.n_workers == 2
        ds = ctx.load("memory", data=data)
        res = ctx.run_udf(dataset=ds, udf=SumUDF())
        np.testing.assert_array_equal(res["intensity"].data, data.sum(axis=(0, 1)))
        # the run leaves nothing behind on the cluster (released asynchronously)
        deadline = time.monotonic() + 10
        while client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)):
            assert time.monotonic() < deadline, "tasks of the run are still on the scheduler"
            time.sleep(0.05)


def test_default_context_follows_dask_config(data):
    import dask

    ctx = Context()
    with dask.config.set(scheduler="sync"):
        assert ctx.executor.n_workers == 1
        res = ctx.run_udf(dataset=ctx.load("memory", data=data), udf=SumUDF())
    np.testing.assert_array_equal(res["intensity"].data, data.sum(axis=(0, 1)))


def test_make_with_names_and_errors():
    with Context.make_with("inline") as c:
        assert isinstance(c.executor, InlineJobExecutor)
    with Context.make_with("threads", cpus=3) as c:
        assert isinstance(c.executor, ConcurrentJobExecutor)
        assert c.executor.n_workers == 3
    with pytest.raises(ExecutorSpecException, match="unknown executor 'gpu'; known executors"):
        Context.make_with("gpu")
    with pytest.raises(ValueError, match="worker count is 0"):
        Context.make_with("threads", cpus=0)
    with pytest.raises(TypeError, match="expected a JobExecutor"):
        Context(executor="threads")


def test_partition_count_follows_the_workers():
    with Context.make_with("threads", cpus=4) as c:
        ds = c.load("memory", data=np.zeros((8, 8, 2, 2)))
        assert ds.get_num_partitions() == 4


def _iterate_with_deadline(ctx, dataset, roi, seconds=60):
    """Partial results of run_udf_iter, or a failure if the run hangs."""
    import threading

    out = {}

    def consume():
        try:
            out["steps"] = list(ctx.run_udf_iter(dataset=dataset, udf=SumSigUDF(), roi=roi))
        except BaseException as e:  # noqa: BLE001 - re-raised below
            out["error"] = e

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "run_udf_iter hung"
    if "error" in out:
        raise out["error"]
    return out["steps"]


@pytest.mark.parametrize("configured", [None, "threads", "pool"])
def test_run_udf_iter_on_dask_schedulers_never_waits_on_itself(data, roi, configured):
    """The lockstep window and the scheduler's pool have the same size.

    dask.threaded.get, called off the main thread without num_workers, made a pool
    of Python's default size (cores + 4); its batches of ready partition tasks then
    waited for a window that only their own results could open.
    """
    import concurrent.futures

    settings = {
        None: {},
        "threads": {"scheduler": "threads", "num_workers": 3},
        "pool": {"scheduler": "threads", "pool": concurrent.futures.ThreadPoolExecutor(5)},
    }[configured]
    with dask.config.set(settings):
        ctx = Context(executor=DaskIntegrationExecutor())
        ds = ctx.load("memory", data=data, num_partitions=7)
        for use_roi in (None, roi):
            steps = _iterate_with_deadline(ctx, ds, use_roi)
            expected = data.sum(axis=(2, 3))
            final = steps[-1].buffers[0]["intensity"]
            if use_roi is None:
                np.testing.assert_allclose(final.data, expected, rtol=1e-5)
            else:
                np.testing.assert_allclose(final.raw_data, expected[use_roi], rtol=1e-5)
            assert len(steps) == 7 if use_roi is None else len(steps) <= 7
