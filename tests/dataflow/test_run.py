"""Progress, partial results, live plots, cancellation and async runs."""

from __future__ import annotations

import asyncio
import threading
from typing import ClassVar

import numpy as np
import pytest

from dataflow.api import Context
from dataflow.plot import Dummy2DPlot, MPLLive2DPlot
from dataflow.progress import ProgressReporter
from dataflow.udf import UDF
from dataflow.udf.sum import SumUDF
from dataflow.udf.sumsigudf import SumSigUDF


class Recorder(ProgressReporter):
    def __init__(self):
        self.events = []

    def start(self, state):
        self.events.append(("start", state.num_part_complete, state.num_part_total))

    def update(self, state):
        self.events.append(("update", state.num_part_complete, state.num_frames_complete))

    def end(self, state):
        self.events.append(("end", state.num_part_complete, state.num_frames_total))


@pytest.fixture
def data(rng):
    return rng.random((8, 8, 6, 6), dtype=np.float32)


def test_progress_reporter_advances_per_partition(ctx, data):
    ds = ctx.load("memory", data=data, num_partitions=4)
    rec = Recorder()
    res = ctx.run_udf(dataset=ds, udf=SumUDF(), progress=rec)
    assert rec.events[0] == ("start", 0, 4)
    updates = [e for e in rec.events if e[0] == "update"]
    assert [u[1] for u in updates] == [1, 2, 3, 4]
    assert updates[-1][2] == 64
    assert rec.events[-1] == ("end", 4, 64)
    np.testing.assert_allclose(res["intensity"].data, data.sum(axis=(0, 1)), rtol=1e-5)


def test_tqdm_progress_bar(ctx, data, capsys):
    ds = ctx.load("memory", data=data, num_partitions=3)
    ctx.run_udf(dataset=ds, udf=SumUDF(), progress=True)
    err = capsys.readouterr().err
    assert "3/3" in err
    assert "partition" in err


def test_progress_rejects_other_values(ctx, data):
    ds = ctx.load("memory", data=data)
    with pytest.raises(TypeError, match="progress is 'yes'"):
        ctx.run_udf(dataset=ds, udf=SumUDF(), progress="yes")


@pytest.mark.parametrize("num_partitions", [1, 2, 5])
def test_run_udf_iter_yields_per_partition_and_ends_with_run_udf(ctx, data, num_partitions):
    ds = ctx.load("memory", data=data, num_partitions=num_partitions)
    items = list(ctx.run_udf_iter(dataset=ds, udf=[SumUDF(), SumSigUDF()]))
    assert len(items) == num_partitions
    covered = [int(it.damage.raw_data.sum()) for it in items]
    assert covered == sorted(covered)
    assert covered[-1] == 64
    for it in items[:-1]:
        # a partial sum covers exactly the frames in its damage
        mask = it.damage.data
        np.testing.assert_allclose(
            it.buffers[0]["intensity"].data, data[mask].sum(axis=0), rtol=1e-5, atol=1e-4
        )
        assert np.array_equal(it.buffers[1]["intensity"].valid_mask, mask)
    full_a, full_b = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
    last = items[-1]
    np.testing.assert_array_equal(last.buffers[0]["intensity"].data, full_a["intensity"].data)
    np.testing.assert_array_equal(last.buffers[1]["intensity"].data, full_b["intensity"].data)


def test_partial_buffers_do_not_change_after_the_generator_moves_on(ctx, data):
    ds = ctx.load("memory", data=data, num_partitions=4)
    gen = ctx.run_udf_iter(dataset=ds, udf=SumUDF())
    first = next(gen)
    snapshot = first.buffers[0]["intensity"].data.copy()
    rest = list(gen)
    np.testing.assert_array_equal(first.buffers[0]["intensity"].data, snapshot)
    assert len(rest) == 3


def test_get_results_runs_on_client_only_when_buffers_are_read(ctx, data):
    calls = []

    class Lazy(UDF):
        def get_result_buffers(self):
            return {"s": self.buffer(kind="sig")}

        def process_tile(self, tile):
            self.results.s += tile.sum(axis=0)

        def merge(self, dest, src):
            dest.s += src.s

        def get_results(self):
            calls.append(threading.current_thread().name)
            return {"s": self.results.s}

    ds = ctx.load("memory", data=data, num_partitions=4)
    items = list(ctx.run_udf_iter(dataset=ds, udf=Lazy()))
    assert calls == []
    _ = items[1].buffers
    _ = items[1].buffers
    assert calls == [threading.current_thread().name]


def test_closing_the_generator_cancels_the_remaining_partitions(threads_ctx, data):
    started = []

    class Slow(UDF):
        def get_result_buffers(self):
            return {"x": self.buffer(kind="nav")}

        def process_tile(self, tile):
            started.append(self.meta.slice.origin[0])
            self.results.x[:] = 1

    ds = threads_ctx.load("memory", data=data, num_partitions=32)
    gen = threads_ctx.run_udf_iter(dataset=ds, udf=Slow())
    next(gen)
    gen.close()
    seen = len(started)
    assert seen < 32
    assert len(started) == seen  # nothing runs after close() returned


def test_bad_input_raises_when_run_udf_iter_is_called(ctx, data):
    ds = ctx.load("memory", data=data)
    with pytest.raises(ValueError, match=r"roi has shape \(3, 3\)"):
        ctx.run_udf_iter(dataset=ds, udf=SumUDF(), roi=np.ones((3, 3), bool))


def test_async_run_udf_and_iter(ctx, data):
    ds = ctx.load("memory", data=data, num_partitions=3)

    async def main():
        res = await ctx.run_udf(dataset=ds, udf=SumUDF(), sync=False)
        parts = [p async for p in ctx.run_udf_iter(dataset=ds, udf=SumUDF(), sync=False)]
        return res, parts

    res, parts = asyncio.run(main())
    assert len(parts) == 3
    np.testing.assert_array_equal(parts[-1].buffers[0]["intensity"].data, res["intensity"].data)


def test_plots_true_with_matplotlib_headless(ctx, data):
    import matplotlib.pyplot as plt

    ds = ctx.load("memory", data=data, num_partitions=4)
    res_sum, res_sig = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()], plots=True)
    assert [p.channel for p in ctx.plots] == ["intensity", "intensity"]
    for plot in ctx.plots:
        assert isinstance(plot, MPLLive2DPlot)
        assert plot.n_updates >= 1
    np.testing.assert_array_equal(ctx.plots[0].data, res_sum["intensity"].data)
    np.testing.assert_array_equal(ctx.plots[1].data, res_sig["intensity"].data)
    shown = ctx.plots[0].im.get_array()
    np.testing.assert_allclose(shown, res_sum["intensity"].data)
    for plot in ctx.plots:
        plot.close()
    plt.close("all")


def test_plots_with_channels_and_plot_class(data):
    from dataflow.api import Context
    from dataflow.executor.inline import InlineJobExecutor

    ctx = Context(executor=InlineJobExecutor(), plot_class=Dummy2DPlot)
    ds = ctx.load("memory", data=data, num_partitions=4)
    square = ("intensity", lambda d: d**2)
    ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()], plots=[[square], ["intensity"]])
    a, b = ctx.plots
    assert a.channel == b.channel == "intensity"
    np.testing.assert_allclose(a.data, data.sum(axis=(0, 1)) ** 2, rtol=1e-5)
    with pytest.raises(ValueError, match="'nope' is not a buffer of SumUDF"):
        ctx.run_udf(dataset=ds, udf=SumUDF(), plots=[["nope"]])


def test_plot_objects_are_updated_with_partial_results(ctx, data):
    ds = ctx.load("memory", data=data, num_partitions=4)
    udf = SumSigUDF()
    plot = Dummy2DPlot(ds, udf, channel="intensity", min_delta=0)
    ctx.run_udf(dataset=ds, udf=udf, plots=[plot])
    assert plot.n_updates == 5  # four partitions, then the final result
    np.testing.assert_allclose(plot.data, data.sum(axis=(2, 3)), rtol=1e-5)


class CancelsAt(UDF):
    """Raises JobCancelledError in the partition that holds frame ``at``."""

    def __init__(self, at=0):
        super().__init__(at=at)

    def get_result_buffers(self):
        return {"x": self.buffer(kind="nav")}

    def process_frame(self, frame):
        if self.meta.slice.origin[0] == self.params.at:
            from dataflow.executor.base import JobCancelledError

            raise JobCancelledError("the detector stopped sending")
        self.results.x[:] = 1


@pytest.mark.parametrize("how", ["run_udf", "run_udf_iter", "progress"])
def test_job_cancelled_error_surfaces_as_udf_run_cancelled(ctx, data, how):
    from dataflow.errors import UDFRunCancelled

    ds = ctx.load("memory", data=data, num_partitions=4)
    runs = {
        "run_udf": lambda: ctx.run_udf(dataset=ds, udf=CancelsAt(at=40)),
        "progress": lambda: ctx.run_udf(dataset=ds, udf=CancelsAt(at=40), progress=Recorder()),
        "run_udf_iter": lambda: list(ctx.run_udf_iter(dataset=ds, udf=CancelsAt(at=40))),
    }
    with pytest.raises(UDFRunCancelled, match=r"UDF run cancelled after \d+ partitions"):
        runs[how]()


class Scaled(UDF):
    def __init__(self, factor=1.0):
        super().__init__(factor=factor)

    def get_result_buffers(self):
        return {"x": self.buffer(kind="nav")}

    def process_frame(self, frame):
        self.results.x[:] = self.params.factor


@pytest.mark.parametrize("executor", ["inline", "threads"])
def test_update_parameters_between_partitions(data, executor):
    from dataflow.api import Context

    with Context.make_with(executor, cpus=2) as ctx:
        ds = ctx.load("memory", data=data, num_partitions=8)
        gen = ctx.run_udf_iter(dataset=ds, udf=Scaled(factor=1.0))
        first = next(gen)
        gen.update_parameters_experimental([{"factor": 5.0}])
        *_, last = gen
        values = last.buffers[0]["x"].raw_data
        done_first = int(first.damage.raw_data.sum())
        # partitions that had started before the update keep factor 1; at most one per
        # worker runs ahead of the consumer
        ahead = ctx.executor.n_workers * 8
        assert set(np.unique(values)) == {1.0, 5.0}
        assert done_first <= np.count_nonzero(values == 1.0) <= done_first + ahead
        with pytest.raises(ValueError, match="parameters has 2 entries; the run has 1 UDFs"):
            gen.update_parameters_experimental([{}, {}])


def test_inline_iteration_is_lockstep(ctx, data):
    started = []

    class Log(UDF):
        def get_result_buffers(self):
            return {"x": self.buffer(kind="nav")}

        def process_tile(self, tile):
            started.append(self.meta.slice.origin[0])

    ds = ctx.load("memory", data=data, num_partitions=4)
    gen = ctx.run_udf_iter(dataset=ds, udf=Log())
    next(gen)
    assert len(started) <= 2  # the first partition, and at most one ahead
    gen.close()


@pytest.mark.distributed
def test_update_parameters_under_an_active_client_raises(data):
    distributed = pytest.importorskip("distributed")
    from dataflow.api import Context

    with (
        distributed.LocalCluster(
            n_workers=1, processes=False, threads_per_worker=2, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        assert distributed.default_client() is client
        ctx = Context()  # follows dask: here, the active client
        ds = ctx.load("memory", data=data, num_partitions=4)
        gen = ctx.run_udf_iter(dataset=ds, udf=Scaled(factor=1.0))
        try:
            next(gen)
            with pytest.raises(NotImplementedError, match=r"dask\.distributed cluster"):
                gen.update_parameters_experimental([{"factor": 5.0}])
        finally:
            gen.close()


@pytest.mark.parametrize("name", ["items", "keys", "values", "get", "as_dict", "get_buffer"])
def test_buffer_names_of_udfdata_methods_are_refused_before_reading(ctx, data, name):
    class Named(UDF):
        def get_result_buffers(self):
            return {name: self.buffer(kind="nav")}

        def process_frame(self, frame):
            raise AssertionError("no data may be read")

    ds = ctx.load("memory", data=data, num_partitions=2)
    with pytest.raises(ValueError, match=rf"buffer named '{name}', which is reserved.*'items'"):
        ctx.run_udf(dataset=ds, udf=Named())


def _blas_threads():
    from threadpoolctl import threadpool_info

    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


class _BlasThreadsUDF(UDF):
    seen: ClassVar[list] = []

    def get_result_buffers(self):
        return {"n": self.buffer(kind="single", dtype="int64")}

    def process_partition(self, partition):
        type(self).seen.extend(_blas_threads())

    def merge(self, dest, src):
        pass


def test_blas_is_one_thread_during_a_threaded_run_and_restored_after():
    pytest.importorskip("threadpoolctl")
    before = _blas_threads()
    if not before:
        pytest.skip("no BLAS library found by threadpoolctl")
    _BlasThreadsUDF.seen.clear()
    with Context.make_with("threads", cpus=2) as ctx:
        ds = ctx.load("memory", data=np.zeros((4, 4, 8, 8), "float32"), num_partitions=4)
        ctx.run_udf(dataset=ds, udf=_BlasThreadsUDF())
    assert _BlasThreadsUDF.seen
    assert set(_BlasThreadsUDF.seen) == {1}
    assert _blas_threads() == before  # the user's own setting is back


class _TileAddresses(SumUDF):
    """SumUDF that notes where each tile it gets starts, modulo 16."""

    offsets: ClassVar[list[int]] = []

    def process_tile(self, tile):
        self.offsets.append(tile.ctypes.data % 16)
        super().process_tile(tile)


@pytest.mark.parametrize("executor", ["inline", "threads"])
def test_misaligned_data_is_copied_aligned(executor):
    """A float32 array at an odd address (np.frombuffer at an offset) reaches the UDFs
    as aligned copies, with the results of the aligned data."""
    rng = np.random.default_rng(3)
    data = rng.random((4, 6, 8, 8), dtype=np.float32)
    raw = np.zeros(data.nbytes + 1, dtype=np.uint8)
    raw[1:] = data.view(np.uint8).reshape(-1)
    odd = np.frombuffer(raw.data, dtype=np.float32, offset=1).reshape(data.shape)
    assert odd.ctypes.data % 4 != 0
    _TileAddresses.offsets.clear()
    with Context.make_with(executor, cpus=None if executor == "inline" else 2) as ctx:
        ds = ctx.load("memory", data=odd, num_partitions=3)
        total, per_frame = ctx.run_udf(dataset=ds, udf=[_TileAddresses(), SumSigUDF()])
    np.testing.assert_allclose(total["intensity"].data, data.sum(axis=(0, 1)), rtol=1e-6)
    np.testing.assert_allclose(per_frame["intensity"].data, data.sum(axis=(2, 3)), rtol=1e-6)
    assert _TileAddresses.offsets
    assert set(_TileAddresses.offsets) == {0}
