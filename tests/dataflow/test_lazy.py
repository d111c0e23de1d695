"""Lazy results: dask-backed xarray Datasets of the run's graph, computed only on demand."""

from __future__ import annotations

import threading

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

from dataflow.sources import DataSet, plan_partitions
from dataflow.udf import UDF
from dataflow.udf.stddev import StdDevUDF
from dataflow.udf.sum import SumUDF
from dataflow.udf.sumsigudf import SumSigUDF


class CountingScheduler:
    """A dask scheduler that counts computations and raises past ``max_computes``."""

    def __init__(self, max_computes=0):
        self.total = 0
        self.max_computes = max_computes

    def __call__(self, dsk, keys, **kwargs):
        self.total += 1
        if self.total > self.max_computes:
            raise RuntimeError(f"too many computes: {self.total} > {self.max_computes}")
        return dask.get(dsk, keys, **kwargs)


class Reads:
    """A source whose partition reads are counted."""

    def __init__(self, data, num_partitions):
        self.data = data
        self.count = 0
        self.lock = threading.Lock()
        nav, sig = data.shape[:2], data.shape[2:]
        n = int(np.prod(nav))
        flat = data.reshape(n, *sig)
        self.parts = plan_partitions(
            n, flat[0].nbytes, row_length=nav[1], num_partitions=num_partitions
        )

        def read(block_info=None):
            start, stop = block_info[None]["array-location"][0]
            with self.lock:
                self.count += 1
            return flat[start:stop].copy()

        chunks = (tuple(p.n_frames for p in self.parts), *((s,) for s in sig))
        array = da.map_blocks(
            read, chunks=chunks, dtype=data.dtype, meta=np.empty((0,) * (1 + len(sig)), data.dtype)
        )
        self.dataset = DataSet(array, nav_shape=nav, partitions=self.parts, token="reads")


@pytest.fixture
def data(rng):
    return rng.random((8, 6, 5, 4), dtype=np.float32)


def test_lazy_runs_compute_nothing(ctx, data, monkeypatch):
    source = Reads(data, 3)

    def refuse(*args, **kwargs):
        raise AssertionError("the executor was asked to run")

    monkeypatch.setattr(ctx.executor, "get", refuse)
    monkeypatch.setattr(ctx.executor, "stream", refuse)
    with dask.config.set(scheduler=CountingScheduler(0)):
        a, b = ctx.run_udf(dataset=source.dataset, udf=[SumUDF(), SumSigUDF()], lazy=True)
    assert source.count == 0
    assert isinstance(a["intensity"].data, da.Array)
    assert isinstance(b["intensity"].data, da.Array)


@pytest.mark.parametrize("with_roi", [False, True])
def test_lazy_results_equal_eager_ones_and_read_once(ctx, data, with_roi):
    source = Reads(data, 3)
    roi = None
    if with_roi:
        roi = np.zeros((8, 6), bool)
        roi[:2] = True  # frames of the first partition only
        roi[7, 5] = True
    eager = ctx.run_udf(dataset=source.dataset, udf=[SumUDF(), SumSigUDF(), StdDevUDF()], roi=roi)
    reads_eager = source.count
    source.count = 0
    lazy = ctx.run_udf(
        dataset=source.dataset, udf=[SumUDF(), SumSigUDF(), StdDevUDF()], roi=roi, lazy=True
    )
    scheduler = CountingScheduler(1)
    with dask.config.set(scheduler=scheduler):
        computed = dask.compute(*lazy)
    assert scheduler.total == 1
    assert source.count == reads_eager  # the data is read once for all three results
    for e, c in zip(eager, computed, strict=True):
        expected = e.to_xarray()
        xr.testing.assert_allclose(c, expected, rtol=1e-6)
        assert dict(c.sizes) == dict(expected.sizes)


def test_nav_blocks_follow_partitions(ctx, data):
    ds = ctx.load("memory", data=data, num_partitions=4)
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF(), lazy=True)
    arr = res["intensity"].data
    assert arr.shape == (8, 6)
    assert arr.numblocks[0] == 4  # one block per partition, in navigation order
    np.testing.assert_allclose(arr.compute(), data.sum(axis=(2, 3)), rtol=1e-5)


def test_xr_merge_of_lazy_results(ctx, data):
    ds = ctx.load("memory", data=data, num_partitions=2)
    a, b = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()], lazy=True)
    merged = xr.merge(
        [a.rename(intensity="pattern"), b.rename(intensity="frame_sum")], compat="override"
    ).compute()
    np.testing.assert_allclose(merged["pattern"].values, data.sum(axis=(0, 1)), rtol=1e-5)
    np.testing.assert_allclose(merged["frame_sum"].values, data.sum(axis=(2, 3)), rtol=1e-5)


def test_lazy_result_streams_to_zarr_and_loads_again(ctx, data, tmp_path):
    ds = ctx.load("memory", data=data, num_partitions=3)
    lazy = ctx.run_udf(dataset=ds, udf=SumSigUDF(), lazy=True)
    path = tmp_path / "frame_sum.zarr"
    lazy.to_zarr(path)
    back = xr.open_zarr(path)
    np.testing.assert_allclose(back["intensity"].values, data.sum(axis=(2, 3)), rtol=1e-5)
    assert back.attrs["udf"] == "SumSigUDF"
    again = ctx.load("zarr", path=path, ds_path="intensity", sig_dims=1)
    assert again.dims == ("scan_y", "scan_x")


class Frames(UDF):
    """A UDF whose nav result is a frame: its output can be the dataset of the next run."""

    def get_result_buffers(self):
        sig = tuple(self.meta.dataset_shape.sig)
        return {
            "double": self.buffer(
                kind="nav", extra_shape=sig, dtype="float32", extra_dims=("ky", "kx")
            )
        }

    def process_tile(self, tile):
        self.results.double[:] = 2 * tile


def test_chained_runs_in_one_graph(ctx, data):
    ds = ctx.load("memory", data=data, num_partitions=2)
    first = ctx.run_udf(dataset=ds, udf=Frames(), lazy=True)
    assert first["double"].dims == ("scan_y", "scan_x", "ky", "kx")
    nxt = ctx.load("xarray", first["double"], sig_dims=("ky", "kx"))
    second = ctx.run_udf(dataset=nxt, udf=SumUDF(), lazy=True)
    scheduler = CountingScheduler(1)
    with dask.config.set(scheduler=scheduler):
        value = second["intensity"].values
    np.testing.assert_allclose(value, 2 * data.sum(axis=(0, 1)), rtol=1e-5)


def test_delayed_executor_results(data):
    from dataflow.api import Context

    ctx = Context.make_with("delayed")
    ds = ctx.load("memory", data=data, num_partitions=2)
    roi = np.ones((8, 6), bool)
    roi[0, 0] = False
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF(), roi=roi)["intensity"]
    assert isinstance(res.delayed_data, da.Array)
    assert isinstance(res.delayed_raw_data, da.Array)
    assert res.delayed_raw_data.shape == (47,)
    np.testing.assert_allclose(res.raw_data, data.sum(axis=(2, 3))[roi], rtol=1e-5)
    assert np.isnan(res.data[0, 0])
