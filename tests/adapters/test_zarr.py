"""Tests of the ``zarr`` adapter (``adapters/zarr/``)."""

from __future__ import annotations

import collections
import itertools
import math
import os
import pickle
import warnings

import cloudpickle
import numpy as np
import pytest
from dask.base import tokenize

import dataflow
from dataflow import UDF
from dataflow.adapters.zarr import ZarrAdapter, ZarrReadError
from dataflow.errors import DataflowWarning, DataSetException
from dataflow.sources import chunk_boundaries, nav_regions
from dataflow.testing import AdapterTests, FrameCopyUDF
from dataflow.udf.sum import SumUDF
from dataflow.udf.sumsigudf import SumSigUDF

SHAPE = (6, 7, 8, 9)


@pytest.fixture(scope="module")
def zarr():
    import zarr  # a core dependency: a missing one fails, never skips

    return zarr


@pytest.fixture(scope="module")
def ctx():
    with dataflow.Context.make_with("inline") as c:
        yield c


def _data(dtype="float32", shape=SHAPE, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.random(shape).astype(dtype)
    return rng.integers(0, 1000, size=shape).astype(dtype)


def _write(zarr, path, data, chunks, zarr_format=3, **kwargs):
    z = zarr.create_array(
        str(path) if isinstance(path, os.PathLike) else path,
        shape=data.shape,
        chunks=chunks,
        dtype=data.dtype,
        zarr_format=zarr_format,
        overwrite=True,
        **kwargs,
    )
    z[...] = data
    return path


def _check_sums(ctx, ds, data):
    summed, per_frame = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
    ref = data.astype(np.float64)
    nav = len(ds.shape.nav)
    np.testing.assert_allclose(summed["intensity"].data, ref.sum(axis=tuple(range(nav))), rtol=1e-5)
    sig_axes = tuple(range(nav, data.ndim))
    np.testing.assert_allclose(per_frame["intensity"].data, ref.sum(axis=sig_axes), rtol=1e-5)


# the results ---------------------------------------------------------------------------


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("dtype", ["float32", "uint16"])
@pytest.mark.parametrize(
    "chunks",
    [(2, 7, 8, 9), (1, 3, 8, 9), (6, 7, 4, 5), (4, 5, 3, 9)],
    ids=["nav-rows", "nav-both", "sig", "nav-and-sig"],
)
@pytest.mark.parametrize("num_partitions", [1, 3, 7])
def test_same_results(ctx, zarr, tmp_path, zarr_format, dtype, chunks, num_partitions):
    data = _data(dtype)
    path = _write(zarr, tmp_path / "scan.zarr", data, chunks, zarr_format)
    ds = ctx.load("zarr", path=path, num_partitions=num_partitions)
    assert tuple(ds.shape) == SHAPE
    assert ds.dtype == data.dtype
    assert ds.get_num_partitions() == num_partitions
    np.testing.assert_array_equal(ds.array.compute(scheduler="sync"), data)
    _check_sums(ctx, ds, data)


def test_sharded_v3(ctx, zarr, tmp_path):
    if not hasattr(zarr, "create_array"):
        pytest.skip("sharding needs zarr-python 3")
    data = _data()
    path = tmp_path / "s.zarr"
    z = zarr.create_array(
        str(path), shape=data.shape, chunks=(1, 7, 4, 9), shards=(2, 7, 8, 9), dtype=data.dtype
    )
    z[...] = data
    ds = ctx.load("zarr", path=path, num_partitions=3)
    assert [(p.start, p.stop) for p in ds.partitions] == [(0, 14), (14, 28), (28, 42)]
    _check_sums(ctx, ds, data)


@pytest.mark.parametrize(
    ("nav", "sig", "chunks"),
    [
        ((3, 4, 5), (4, 4), (2, 4, 5, 4, 4)),
        ((12,), (5, 6), (5, 5, 6)),
        ((3, 4, 5), (4, 4), (1, 3, 2, 4, 4)),
    ],
)
@pytest.mark.parametrize("num_partitions", [1, 4, 7])
def test_other_nav_ranks(ctx, zarr, tmp_path, nav, sig, chunks, num_partitions):
    data = _data(shape=nav + sig)
    path = _write(zarr, tmp_path / "n.zarr", data, chunks)
    ds = ctx.load("zarr", path=path, num_partitions=num_partitions)
    assert tuple(ds.shape.nav) == nav
    np.testing.assert_array_equal(ds.array.compute(scheduler="sync"), data)
    _check_sums(ctx, ds, data)


def test_sig_dims(ctx, zarr, tmp_path):
    data = _data()
    path = _write(zarr, tmp_path / "scan.zarr", data, (2, 7, 8, 9))
    ds = ctx.load("zarr", path=path, sig_dims=1, num_partitions=5)
    assert tuple(ds.shape.nav) == (6, 7, 8)
    _check_sums(ctx, ds, data)
    with pytest.raises(ValueError, match="sig_dims"):
        ctx.load("zarr", path=path, sig_dims=4)


# partitions on chunk boundaries ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunks", "num_partitions", "bounds"),
    [
        ((2, 7, 8, 9), 3, [0, 14, 28, 42]),  # one partition per chunk row
        ((3, 7, 8, 9), 2, [0, 21, 42]),
        ((2, 3, 8, 9), 3, [0, 14, 28, 42]),  # chunked along scan_x too: still chunk rows
        ((6, 7, 8, 9), 3, [0, 14, 28, 42]),  # one nav chunk: whole rows
        ((4, 7, 8, 9), 2, [0, 28, 42]),
    ],
)
def test_partitions_follow_chunks(zarr, tmp_path, chunks, num_partitions, bounds):
    path = _write(zarr, tmp_path / "scan.zarr", _data(), chunks)
    ds = ZarrAdapter.open(path, num_partitions=num_partitions)
    got = [p.start for p in ds.partitions] + [ds.partitions[-1].stop]
    assert got == bounds


def test_more_partitions_than_chunks(zarr, tmp_path):
    path = _write(zarr, tmp_path / "scan.zarr", _data(), (3, 7, 8, 9))
    ds = ZarrAdapter.open(path, num_partitions=6)
    assert [p.n_frames for p in ds.partitions] == [7] * 6  # whole rows


@pytest.mark.parametrize(
    ("nav_shape", "nav_chunks", "expected"),
    [
        ((6, 7), (2, 7), [0, 14, 28, 42]),
        ((6, 7), (4, 3), [0, 28, 42]),
        ((6, 7), (6, 7), [0, 42]),
        ((2, 6), (1, 4), [0, 4, 6, 10, 12]),
        ((12,), (5,), [0, 5, 10, 12]),
        ((2, 3, 4), (1, 2, 4), [0, 8, 12, 20, 24]),
    ],
)
def test_chunk_boundaries(nav_shape, nav_chunks, expected):
    assert chunk_boundaries(nav_shape, nav_chunks).tolist() == expected


@pytest.mark.parametrize("nav_shape", [(7,), (3, 4), (2, 3, 4)])
def test_nav_regions(nav_shape):
    index = np.arange(math.prod(nav_shape)).reshape(nav_shape)
    for start, stop in itertools.combinations(range(index.size + 1), 2):
        regions = nav_regions(start, stop, nav_shape)
        got = np.concatenate([index[r].ravel() for r in regions])
        np.testing.assert_array_equal(got, np.arange(start, stop))
        if len(nav_shape) == 2:
            assert len(regions) <= 3


# groups, dims, xarray ------------------------------------------------------------------------


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_group_with_ds_path(ctx, zarr, tmp_path, zarr_format):
    data = _data()
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w", zarr_format=zarr_format)
    group.create_array("other", shape=(3,), dtype="i4")
    arr = group.require_group("raw").create_array(
        "frames", shape=data.shape, chunks=(2, 7, 8, 9), dtype=data.dtype
    )
    arr[...] = data
    ds = ctx.load("zarr", path=tmp_path / "g.zarr", ds_path="raw/frames", num_partitions=3)
    _check_sums(ctx, ds, data)
    ds = ctx.load("zarr", path=tmp_path / "g.zarr", ds_path="/raw/frames/")
    assert tuple(ds.shape) == SHAPE


def test_group_errors(zarr, tmp_path):
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("a", shape=(2, 2, 2), dtype="f4")
    group.require_group("sub").create_array("b", shape=(2, 2, 2), dtype="f4")
    with pytest.raises(DataSetException, match="pass ds_path=") as info:
        ZarrAdapter.open(tmp_path / "g.zarr")
    assert "'a', 'sub/b'" in str(info.value)
    with pytest.raises(DataSetException, match="no such member") as info:
        ZarrAdapter.open(tmp_path / "g.zarr", ds_path="nope")
    assert "'a', 'sub/b'" in str(info.value)
    with pytest.raises(DataSetException, match="a group"):
        ZarrAdapter.open(tmp_path / "g.zarr", ds_path="sub")
    with pytest.raises(TypeError, match="ds_path"):
        ZarrAdapter.open(tmp_path / "g.zarr", ds_path=3)


def test_array_with_ds_path(zarr, tmp_path):
    path = _write(zarr, tmp_path / "a.zarr", _data(), (2, 7, 8, 9))
    with pytest.raises(DataSetException, match="not a group"):
        ZarrAdapter.open(path, ds_path="intensity")


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_xarray_store(ctx, zarr, tmp_path, zarr_format):
    import xarray as xr

    data = _data()
    dims = ("y", "x", "ky", "kx")
    xds = xr.Dataset({"intensity": (dims, data)})
    path = tmp_path / "x.zarr"
    encoding = {"intensity": {"chunks": (2, 7, 8, 9)}}
    xds.to_zarr(path, mode="w", zarr_format=zarr_format, consolidated=False, encoding=encoding)
    ds = ctx.load("zarr", path=path, ds_path="intensity", num_partitions=3)
    assert ds.dims == dims
    assert [p.n_frames for p in ds.partitions] == [14, 14, 14]
    _check_sums(ctx, ds, data)
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF())
    assert res["intensity"].to_xarray().dims == ("y", "x")
    given = ctx.load("zarr", path=path, ds_path="intensity", dims=("a", "b", "c", "d"))
    assert given.dims == ("a", "b", "c", "d")


def test_dimension_names_v3(zarr, tmp_path):
    path = _write(
        zarr, tmp_path / "d.zarr", _data(), (2, 7, 8, 9), 3, dimension_names=("p", "q", "r", "s")
    )
    assert ZarrAdapter.open(path).dims == ("p", "q", "r", "s")


def test_partial_dimension_names_ignored(zarr, tmp_path):
    path = _write(
        zarr, tmp_path / "d.zarr", _data(), (2, 7, 8, 9), 3, dimension_names=("p", None, "r", "s")
    )
    assert ZarrAdapter.open(path).dims == ("scan_y", "scan_x", "det_y", "det_x")


# errors -------------------------------------------------------------------------------------


def test_missing_store(zarr, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing\.zarr"):
        ZarrAdapter.open(tmp_path / "nothing.zarr")


def test_not_a_store(zarr, tmp_path):
    with pytest.raises(DataSetException, match="is not a zarr store"):
        ZarrAdapter.open(tmp_path)


def test_a_file(zarr, tmp_path):
    path = tmp_path / "file.zarr"
    path.write_bytes(b"x")
    with pytest.raises(NotADirectoryError, match=r"file\.zarr"):
        ZarrAdapter.open(path)


@pytest.mark.parametrize("path", [None, 3])
def test_path_type(path):
    with pytest.raises(TypeError, match="path"):
        ZarrAdapter.open(path)


def test_too_few_dimensions(zarr, tmp_path):
    path = _write(zarr, tmp_path / "one.zarr", np.zeros(5, dtype="f4"), (5,))
    with pytest.raises(DataSetException, match="at least 2 dimensions"):
        ZarrAdapter.open(path)


# laziness, pickling, discovery -------------------------------------------------------------


def test_graph_pickles_small(zarr, tmp_path):
    data = np.zeros((16, 16, 64, 64), dtype="float32")  # 4 MiB
    path = _write(zarr, tmp_path / "big.zarr", data, (2, 16, 64, 64))
    ds = ZarrAdapter.open(path, num_partitions=8)
    size = len(cloudpickle.dumps(ds.partition_array.__dask_graph__()))
    assert size < 10_000, size
    again = pickle.loads(cloudpickle.dumps(ds.partition_array))
    np.testing.assert_array_equal(again.compute(scheduler="sync"), data.reshape((256, 64, 64)))


def test_guess_can_open(zarr, tmp_path):
    path = _write(zarr, tmp_path / "plain", _data(), (2, 7, 8, 9), 2)
    assert ZarrAdapter.guess_can_open(path)
    assert ZarrAdapter.guess_can_open("somewhere/else.zarr/")
    assert ZarrAdapter.guess_can_open(tmp_path / "absent.ZARR")
    assert not ZarrAdapter.guess_can_open(tmp_path)
    assert not ZarrAdapter.guess_can_open("scan.npy")
    assert not ZarrAdapter.guess_can_open(None)


def test_auto(ctx, zarr, tmp_path):
    data = _data()
    path = _write(zarr, tmp_path / "scan.zarr", data, (2, 7, 8, 9))
    ds = ctx.load("auto", path=path)
    assert tuple(ds.shape) == SHAPE


def test_guess_can_open_objects(zarr, tmp_path):
    path = _write(zarr, tmp_path / "scan.zarr", _data(), (2, 7, 8, 9))
    assert ZarrAdapter.guess_can_open(zarr.storage.LocalStore(path))
    assert ZarrAdapter.guess_can_open(zarr.open_array(path, mode="r"))
    assert not ZarrAdapter.guess_can_open(np.zeros(3))


# the conformance suite ------------------------------------------------------------------------


class TestZarrV2(AdapterTests):
    filetype = "zarr"
    zarr_format = 2

    def chunks(self, shape):
        return (2, *shape[1:])

    def write(self, path, data):
        import zarr

        z = zarr.create_array(
            str(path / "scan.zarr"),
            shape=data.shape,
            chunks=self.chunks(data.shape),
            dtype=data.dtype,
            zarr_format=self.zarr_format,
        )
        z[...] = data
        return {"path": path / "scan.zarr"}


class TestZarrV3(TestZarrV2):
    zarr_format = 3

    def chunks(self, shape):  # chunked along the signal axes too
        return (1, *(max(1, s // 2) for s in shape[1:]))


class TestZarrV3Sharded(TestZarrV2):
    zarr_format = 3

    def write(self, path, data):
        import zarr

        z = zarr.create_array(
            str(path / "scan.zarr"),
            shape=data.shape,
            chunks=(1, *(max(1, s // 2) for s in data.shape[1:])),
            shards=(2, *data.shape[1:]),
            dtype=data.dtype,
        )
        z[...] = data
        return {"path": path / "scan.zarr"}


# counting chunk reads ----------------------------------------------------------------------


def _counting_store(zarr, inner):
    """``inner`` wrapped in a store that records every ``get`` as ``(key, byte_range)``."""

    class CountingStore(zarr.storage.WrapperStore):
        def __init__(self, store, reads=None):
            super().__init__(store)
            self.reads = [] if reads is None else reads

        def _with_store(self, store):
            return type(self)(store, self.reads)

        async def get(self, key, prototype, byte_range=None):
            self.reads.append((key, byte_range))
            return await self._store.get(key, prototype, byte_range)

        def chunk_reads(self):
            """Reads of chunks (not metadata), counted by key."""
            meta = {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"}
            return collections.Counter(k for k, _ in self.reads if k.rsplit("/", 1)[-1] not in meta)

    return CountingStore(inner)


def _chunk_key(fmt, coords):
    return "c/" + "/".join(map(str, coords)) if fmt == 3 else ".".join(map(str, coords))


def _keys_of_frames(fmt, shape, chunks, frames):
    """Keys of the chunks holding the given nav indices (all signal chunks of each)."""
    nav = len(frames[0]) if frames else 0
    sig_grid = [range(math.ceil(s / c)) for s, c in zip(shape[nav:], chunks[nav:], strict=True)]
    keys = set()
    for f in frames:
        head = tuple(i // c for i, c in zip(f, chunks, strict=False))
        keys.update(_chunk_key(fmt, head + tail) for tail in itertools.product(*sig_grid))
    return keys


@pytest.fixture
def counted(zarr, tmp_path):
    """Write ``data`` with ``chunks``; returns a counting store over it."""

    def make(data, chunks, zarr_format=3, **kwargs):
        path = _write(zarr, tmp_path / "c.zarr", data, chunks, zarr_format, **kwargs)
        return _counting_store(zarr, zarr.storage.LocalStore(path, read_only=True))

    return make


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize(
    ("chunks", "num_partitions"),
    [
        ((2, 7, 8, 9), None),
        ((2, 7, 8, 9), 3),
        ((1, 3, 8, 9), 4),
        ((3, 7, 4, 5), 2),  # chunked along the signal axes: whole frames per partition
        ((1, 1, 8, 9), 5),  # one frame per chunk
    ],
)
def test_every_chunk_read_once(ctx, zarr, counted, zarr_format, chunks, num_partitions):
    data = _data()
    store = counted(data, chunks, zarr_format)
    ds = ctx.load("zarr", path=store, num_partitions=num_partitions)
    assert store.chunk_reads() == {}  # opening reads metadata only
    _check_sums(ctx, ds, data)  # one run, two UDFs: one pass
    every = list(np.ndindex(*SHAPE[:2]))
    reads = store.chunk_reads()
    assert set(reads) == _keys_of_frames(zarr_format, SHAPE, chunks, every)
    assert set(reads.values()) == {1}


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize(
    "chunks", [(2, 7, 8, 9), (1, 3, 8, 9), (2, 3, 4, 9), (1, 1, 8, 9)], ids=str
)
@pytest.mark.parametrize("seed", [0, 1])
def test_roi_reads_only_its_chunks(ctx, zarr, counted, zarr_format, chunks, seed):
    data = _data()
    store = counted(data, chunks, zarr_format)
    ds = ctx.load("zarr", path=store, num_partitions=2)
    rng = np.random.default_rng(seed)
    roi = rng.random(SHAPE[:2]) < 0.08
    roi[1, 2] = True
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF(), roi=roi)
    np.testing.assert_array_equal(res["frames"].raw_data, data[roi])
    reads = store.chunk_reads()
    expected = _keys_of_frames(zarr_format, SHAPE, chunks, [tuple(i) for i in np.argwhere(roi)])
    assert set(reads) == expected
    assert set(reads.values()) == {1}


def test_roi_in_one_chunk_reads_one_chunk(ctx, zarr, counted):
    data = _data()
    store = counted(data, (2, 3, 8, 9))
    ds = ctx.load("zarr", path=store, num_partitions=1)
    roi = np.zeros(SHAPE[:2], bool)
    roi[3, 4] = True
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF(), roi=roi)
    assert res["intensity"].raw_data[0] == pytest.approx(data[3, 4].sum(dtype="f8"), rel=1e-5)
    assert store.chunk_reads() == {"c/1/1/0/0": 1}


def test_reader_reads_masked_frames(zarr, tmp_path):
    data = _data()
    path = _write(zarr, tmp_path / "r.zarr", data, (1, 1, 8, 9))
    ds = ZarrAdapter.open(path)
    flat = data.reshape(42, 8, 9)
    mask = np.zeros(30, bool)
    mask[[0, 7, 8, 9, 29]] = True
    frames = ds.reader(5, 35, mask)
    assert frames.shape == (30, 8, 9)
    np.testing.assert_array_equal(frames[mask], flat[5:35][mask])
    assert not frames[~mask].any()  # one-frame chunks: nothing else was read
    np.testing.assert_array_equal(ds.reader(5, 35, None), flat[5:35])
    assert not ds.reader(0, 7, np.zeros(7, bool)).any()


def _latency_store(zarr, inner, delay):
    """``inner`` wrapped in a store whose chunk reads each take ``delay`` seconds more.

    ``stats`` counts the reads of chunks, those in flight now, and the most in flight
    at once; ``started_before_first_done`` counts the reads begun before any ended.
    """
    import asyncio

    meta = {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"}

    class LatencyStore(zarr.storage.WrapperStore):
        def __init__(self, store, stats=None):
            super().__init__(store)
            self.stats = stats if stats is not None else {}
            if not self.stats:
                self.reset()

        def reset(self):
            self.stats.update(reads=0, now=0, peak=0, started_before_first_done=0, done=0)

        def _with_store(self, store):
            return type(self)(store, self.stats)

        async def get(self, key, prototype, byte_range=None):
            if key.rsplit("/", 1)[-1] in meta:
                return await self._store.get(key, prototype, byte_range)
            s = self.stats
            s["reads"] += 1
            s["now"] += 1
            s["peak"] = max(s["peak"], s["now"])
            if not s["done"]:
                s["started_before_first_done"] += 1
            try:
                await asyncio.sleep(delay)
                return await self._store.get(key, prototype, byte_range)
            finally:
                s["now"] -= 1
                s["done"] += 1

    return LatencyStore(inner)


@pytest.mark.parametrize("bound", [4, 16])
def test_requests_of_a_partition_are_in_flight_together(ctx, zarr, tmp_path, bound):
    """64 chunks of one partition on a store with 50 ms per request: ``bound`` at once.

    Read one after the other they would take 64 x 50 ms; asserted is the overlap
    itself (how many requests start before the first ends, the most in flight), not
    a time.
    """
    import dask

    data = _data(shape=(8, 8, 4, 4))
    path = _write(zarr, tmp_path / "l.zarr", data, (1, 1, 4, 4))
    store = _latency_store(zarr, zarr.storage.LocalStore(path, read_only=True), 0.05)
    with dask.config.set({"dataflow.request-concurrency": bound}):
        ds = ctx.load("zarr", path=store, num_partitions=1)
    assert ds.reader.files is None  # a store object: read through zarr
    _check_sums(ctx, ds, data)
    assert store.stats["reads"] == 64  # each chunk once
    assert store.stats["peak"] == bound
    assert store.stats["started_before_first_done"] == bound
    store.reset()
    roi = np.zeros((8, 8), bool)
    roi[0, :] = roi[3, 2:5] = roi[6:, 7] = True  # ROI reads: only these chunks, at once too
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF(), roi=roi)
    np.testing.assert_array_equal(res["frames"].raw_data, data[roi])
    assert store.stats["reads"] == roi.sum()
    assert store.stats["peak"] == min(bound, roi.sum())


def test_request_concurrency_is_checked(zarr, tmp_path):
    import dask

    path = _write(zarr, tmp_path / "d.zarr", _data(), (2, 7, 8, 9))
    with (
        dask.config.set({"dataflow.request-concurrency": 0}),
        pytest.raises(ValueError, match="request-concurrency is 0; expected a positive integer"),
    ):
        ZarrAdapter.open(path)


def test_one_frame_chunks_one_task_per_partition(zarr, tmp_path):
    data = (np.arange(8 * 8 * 256 * 256) % 251).astype("uint8").reshape(8, 8, 256, 256)
    path = _write(zarr, tmp_path / "f.zarr", data, (1, 1, 256, 256))
    ds = ZarrAdapter.open(path)
    assert ds.get_num_partitions() == 1  # 4 MiB: one partition, not 64 tasks
    assert len(dict(ds.partition_array.__dask_graph__())) == 1
    ds = ZarrAdapter.open(path, num_partitions=4)
    assert len(dict(ds.partition_array.__dask_graph__())) == 4
    np.testing.assert_array_equal(ds.array.compute(scheduler="sync"), data)


def test_partitions_never_split_chunks_by_default(zarr, tmp_path):
    path = _write(zarr, tmp_path / "scan.zarr", _data(), (3, 7, 8, 9))
    ds = ZarrAdapter.open(path, min_partitions=4)  # only two runs of whole chunks
    assert [(p.start, p.stop) for p in ds.partitions] == [(0, 21), (21, 42)]
    with pytest.warns(DataflowWarning, match="larger than partition_bytes"):
        ds = ZarrAdapter.open(path, partition_bytes=8 * 9 * 4)  # one frame each, by size
    assert ds.get_num_partitions() == 2


def test_huge_chunks_warn(zarr, tmp_path):
    path = _write(zarr, tmp_path / "scan.zarr", _data(), (6, 7, 8, 9))
    with pytest.warns(DataflowWarning, match="num_partitions="):
        ds = ZarrAdapter.open(path, partition_bytes=1000)
    assert ds.get_num_partitions() == 1


def test_sharded_roi_skips_shards(ctx, zarr, tmp_path):
    data = _data()
    path = tmp_path / "s.zarr"
    z = zarr.create_array(
        str(path), shape=data.shape, chunks=(1, 7, 4, 9), shards=(2, 7, 8, 9), dtype=data.dtype
    )
    z[...] = data
    store = _counting_store(zarr, zarr.storage.LocalStore(path, read_only=True))
    ds = ctx.load("zarr", path=store, num_partitions=3)
    roi = np.zeros(SHAPE[:2], bool)
    roi[2, 3] = True  # shard c/1/0/0/0, inner chunks of row 2 only
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF(), roi=roi)
    np.testing.assert_array_equal(res["frames"].raw_data, data[roi])
    assert set(store.chunk_reads()) == {"c/1/0/0/0"}
    ranges = [r for k, r in store.reads if k == "c/1/0/0/0"]
    assert len(ranges) == len(set(map(repr, ranges))) == 3  # the index and two inner chunks
    store.reads.clear()
    _check_sums(ctx, ds, data)
    assert set(store.chunk_reads()) == {f"c/{i}/0/0/0" for i in range(3)}
    requests = [(k, repr(r)) for k, r in store.reads if k.startswith("c/")]
    assert len(requests) == len(set(requests))  # no byte range of a shard read twice


# layout: nav_shape, sig_shape, sync_offset ----------------------------------------------------


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("sync_offset", [0, 5, -9])
def test_nav_shape_sync_offset(ctx, zarr, tmp_path, zarr_format, sync_offset):
    data = _data()
    path = _write(zarr, tmp_path / "scan.zarr", data, (2, 7, 4, 9), zarr_format)
    flat = data.reshape(42, 8, 9)
    ds = ctx.load("zarr", path=path, nav_shape=(5, 10), sync_offset=sync_offset, num_partitions=3)
    assert tuple(ds.shape) == (5, 10, 8, 9)
    assert ds.dims == ("scan_y", "scan_x", "det_y", "det_x")
    expected = np.zeros((50, 8, 9), data.dtype)
    for i in range(50):
        if 0 <= i + sync_offset < 42:
            expected[i] = flat[i + sync_offset]
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF())
    np.testing.assert_array_equal(res["frames"].raw_data, expected)
    roi = np.zeros((5, 10), bool)
    roi[0, :3] = roi[2, 5] = roi[4, 9] = True
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF(), roi=roi)
    np.testing.assert_array_equal(res["frames"].raw_data, expected[roi.reshape(-1)])


def test_partitions_follow_shifted_chunks(zarr, tmp_path):
    path = _write(zarr, tmp_path / "scan.zarr", _data(), (2, 7, 8, 9))
    ds = ZarrAdapter.open(path, nav_shape=(42,), sync_offset=4, num_partitions=3)
    assert [p.start for p in ds.partitions][1:] == [10, 24]  # chunk starts 14, 28 shifted


def test_sig_shape(ctx, zarr, tmp_path):
    data = _data()
    path = _write(zarr, tmp_path / "scan.zarr", data, (2, 7, 4, 9))
    ds = ctx.load("zarr", path=path, sig_shape=(72,), sig_dims=2, num_partitions=2)
    assert tuple(ds.shape) == (6, 7, 72)
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF())
    np.testing.assert_array_equal(res["frames"].data, data.reshape(6, 7, 72))
    with pytest.raises(DataSetException, match="sig_shape"):
        ZarrAdapter.open(path, sig_shape=(5, 5))


# stores, groups and arrays as sources -------------------------------------------------------------


def test_memory_store(ctx, zarr):
    data = _data()
    store = zarr.storage.MemoryStore()
    _write(zarr, store, data, (2, 7, 8, 9))
    ds = ctx.load("zarr", path=store, num_partitions=3)
    _check_sums(ctx, ds, data)


def test_array_and_group_objects(ctx, zarr, tmp_path):
    data = _data()
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    arr = group.require_group("raw").create_array(
        "frames", shape=data.shape, chunks=(2, 7, 8, 9), dtype=data.dtype
    )
    arr[...] = data
    for kwargs in (
        {"path": arr},
        {"path": group, "ds_path": "raw/frames"},
        {"path": group["raw"], "ds_path": "frames"},
        {"path": zarr.storage.StorePath(group.store, "raw"), "ds_path": "frames"},
    ):
        ds = ctx.load("zarr", num_partitions=2, **kwargs)
        np.testing.assert_array_equal(ds.array.compute(scheduler="sync"), data)
    with pytest.raises(DataSetException, match="not a group"):
        ZarrAdapter.open(arr, ds_path="frames")


@pytest.mark.parametrize("path", [np.zeros((2, 2, 2)), 3.5, {"a": 1}])
def test_unsupported_path_types(path):
    with pytest.raises(TypeError, match="path is a"):
        ZarrAdapter.open(path)


def test_storage_options_for_a_local_path(zarr, tmp_path):
    path = _write(zarr, tmp_path / "scan.zarr", _data(), (2, 7, 8, 9))
    with pytest.raises(TypeError, match="storage_options apply to URLs"):
        ZarrAdapter.open(path, storage_options={"anon": True})
    with pytest.raises(TypeError, match="storage_options is a"):
        ZarrAdapter.open(path, storage_options="anon")


def test_bad_keywords(zarr, tmp_path):
    path = _write(zarr, tmp_path / "scan.zarr", _data(), (2, 7, 8, 9))
    with pytest.raises(ValueError, match="missing_chunks"):
        ZarrAdapter.open(path, missing_chunks="zero")
    with pytest.raises(TypeError, match="allow_pickle"):
        ZarrAdapter.open(path, allow_pickle="yes")
    with pytest.raises(ValueError, match="partition_bytes is 0"):
        ZarrAdapter.open(path, partition_bytes=0)
    with pytest.raises(TypeError, match="min_partitions"):
        ZarrAdapter.open(path, min_partitions=1.5)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_consolidated(ctx, zarr, tmp_path, zarr_format):
    data = _data()
    path = tmp_path / "g.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    group.create_array("other", shape=(3,), dtype="i4")
    arr = group.create_array("frames", shape=data.shape, chunks=(2, 7, 8, 9), dtype=data.dtype)
    arr[...] = data
    with pytest.raises(DataSetException, match="consolidated is True"):
        ZarrAdapter.open(path, ds_path="frames", consolidated=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr: consolidated metadata is not in the v3 spec
        zarr.consolidate_metadata(str(path))
    store = _counting_store(zarr, zarr.storage.LocalStore(path, read_only=True))
    ds = ctx.load("zarr", path=store, ds_path="frames", consolidated=True, num_partitions=3)
    opened = {k for k, _ in store.reads}
    assert "frames/zarr.json" not in opened  # the array's metadata came from the group's
    assert "frames/.zarray" not in opened
    _check_sums(ctx, ds, data)
    with pytest.raises(DataSetException, match="'frames', 'other'"):
        ZarrAdapter.open(path, consolidated=True)


@pytest.mark.parametrize("consolidated", [True, False])
def test_xarray_store_consolidated(ctx, zarr, tmp_path, consolidated):
    import xarray as xr

    data = _data()
    xds = xr.Dataset({"intensity": (("y", "x", "ky", "kx"), data)}, attrs={"beam": "on"})
    xds["intensity"].attrs["units"] = "counts"
    path = tmp_path / "x.zarr"
    xds.to_zarr(path, mode="w", zarr_format=2, consolidated=consolidated)
    ds = ctx.load("zarr", path=path, ds_path="intensity")
    assert ds.dims == ("y", "x", "ky", "kx")
    assert ds.attrs["data_units"] == "counts"  # attrs["units"] maps dimensions to units
    assert "_ARRAY_DIMENSIONS" not in ds.attrs
    _check_sums(ctx, ds, data)


# dtypes ----------------------------------------------------------------------------------------


@pytest.fixture
def object_store(zarr, tmp_path):
    """A zarr 3 array of dtype object (variable-length bytes)."""
    from zarr.dtype import VariableLengthBytes  # zarr 3.1.0 reads "bytes" as fixed-length

    values = np.array([b"a", b"bb", b"c", b"d"] * 4, dtype=object).reshape(2, 2, 2, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr: the data type has no stable v3 spec
        z = zarr.create_array(
            str(tmp_path / "o.zarr"),
            shape=values.shape,
            dtype=VariableLengthBytes(),
            chunks=(1, 2, 2, 2),
        )
        z[...] = values
    return tmp_path / "o.zarr", values


def test_object_dtype_refused(zarr, object_store):
    path, _ = object_store
    with pytest.raises(DataSetException, match="allow_pickle=True"):
        ZarrAdapter.open(path)


def test_object_dtype_allowed(zarr, object_store):
    path, values = object_store
    ds = ZarrAdapter.open(path, allow_pickle=True)
    assert ds.dtype == object
    np.testing.assert_array_equal(ds.array.compute(scheduler="sync"), values)


def test_string_dtype_refused(zarr, tmp_path):
    z = zarr.create_array(str(tmp_path / "s.zarr"), shape=(2, 2, 2), dtype="<U3", zarr_format=2)
    z[...] = "abc"
    with pytest.raises(DataSetException, match="numeric dtype"):
        ZarrAdapter.open(tmp_path / "s.zarr", allow_pickle=True)


# bad data -----------------------------------------------------------------------------------------


def _chunk_file(root, fmt, coords, ds_path=""):
    base = root / ds_path if ds_path else root
    return base / _chunk_key(fmt, coords)


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("compressed", [True, False])
@pytest.mark.parametrize("ds_path", ["", "raw/frames"])
def test_corrupt_chunk(ctx, zarr, tmp_path, zarr_format, compressed, ds_path):
    data = _data()
    root = tmp_path / "bad.zarr"
    kwargs = {} if compressed else {"compressors": None}
    if ds_path:
        group = zarr.open_group(str(root), mode="w", zarr_format=zarr_format)
        arr = group.require_group("raw").create_array(
            "frames", shape=data.shape, chunks=(2, 7, 4, 9), dtype=data.dtype, **kwargs
        )
        arr[...] = data
    else:
        _write(zarr, root, data, (2, 7, 4, 9), zarr_format, **kwargs)
    _chunk_file(root, zarr_format, (1, 0, 1, 0), ds_path).write_bytes(b"not a chunk" * 7)
    ds = ctx.load("zarr", path=root, ds_path=ds_path or None, num_partitions=3)
    key = "/".join(filter(None, [ds_path, _chunk_key(zarr_format, (1, 0, 1, 0))]))
    with pytest.raises(ZarrReadError, match="could not be read") as info:
        ctx.run_udf(dataset=ds, udf=SumUDF())
    assert repr(key) in str(info.value)
    assert repr(str(root)) in str(info.value)
    roi = np.zeros(SHAPE[:2], bool)
    roi[0, 0] = roi[5, 6] = True  # no frame in the bad chunk: the run succeeds
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF(), roi=roi)
    np.testing.assert_array_equal(res["frames"].raw_data, data[roi])


def test_corrupt_shard(ctx, zarr, tmp_path):
    data = _data()
    path = tmp_path / "s.zarr"
    z = zarr.create_array(
        str(path), shape=data.shape, chunks=(1, 7, 4, 9), shards=(2, 7, 8, 9), dtype=data.dtype
    )
    z[...] = data
    (path / "c/2/0/0/0").write_bytes(b"garbage" * 20)
    ds = ctx.load("zarr", path=path, num_partitions=3)
    with pytest.raises(
        ZarrReadError, match=r"chunk 'c/2/0/0/0' \(inner chunk \(0, 0, 0, 0\) of the shard\) could"
    ):
        ctx.run_udf(dataset=ds, udf=SumUDF())


@pytest.mark.parametrize("compressor", [None, "zstd", "blosc", "gzip"])
@pytest.mark.parametrize("index_location", ["end", "start"])
@pytest.mark.parametrize(
    ("chunks", "shards"),
    [((1, 7, 8, 9), (2, 7, 8, 9)), ((1, 7, 8, 9), (6, 7, 8, 9)), ((2, 7, 4, 9), (4, 7, 8, 9))],
    ids=["rows-in-pairs", "one-shard", "split-frames"],
)
def test_sharded_chunk_files(
    ctx, zarr, tmp_path, no_zarr_reads, compressor, index_location, chunks, shards
):
    """Sharded local arrays: inner chunks read from their shard by byte range, not by zarr."""
    data = _data("uint16")
    path = tmp_path / "s.zarr"
    z = zarr.create_array(
        str(path),
        shape=data.shape,
        chunks=chunks,
        shards={"shape": shards, "index_location": index_location},
        dtype=data.dtype,
        compressors=_compressor(zarr, 3, compressor),
        fill_value=5,
    )
    z[...] = data
    z[1] = 5  # inner chunks of only the fill value are not written: the index says so
    expected = data.copy()
    expected[1] = 5
    ds = ctx.load("zarr", path=path, num_partitions=3)
    assert ds.reader.files is not None
    assert ds.reader.files.shards == shards
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF())
    np.testing.assert_array_equal(res["frames"].data, expected)
    roi = np.zeros(SHAPE[:2], bool)
    roi[0, 3] = roi[1, 1] = roi[4, 2:4] = True
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF(), roi=roi)
    np.testing.assert_array_equal(res["frames"].raw_data, expected[roi])


def test_a_shard_is_partitioned_on_its_inner_chunks(ctx, zarr, tmp_path, monkeypatch):
    """One shard of the whole array still makes several partitions, each reading its
    own inner chunks: bytes of the shard are read only where a partition needs them."""
    from dataflow.adapters.zarr import chunks as zarr_chunks

    data = _data()
    path = tmp_path / "s.zarr"
    z = zarr.create_array(
        str(path), shape=data.shape, chunks=(1, 7, 8, 9), shards=(6, 7, 8, 9), dtype=data.dtype
    )
    z[...] = data
    ds = ctx.load("zarr", path=path, num_partitions=3)
    assert [(p.start, p.stop) for p in ds.partitions] == [(0, 14), (14, 28), (28, 42)]
    decoded = []
    real = zarr_chunks._ChunkFiles._stored

    def counting(self, index):
        decoded.append(index[0])
        return real(self, index)

    monkeypatch.setattr(zarr_chunks._ChunkFiles, "_stored", counting)
    _check_sums(ctx, ds, data)
    assert sorted(decoded) == [0, 1, 2, 3, 4, 5]  # each inner chunk once
    decoded.clear()
    roi = np.zeros(SHAPE[:2], bool)
    roi[4, 4] = True
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF(), roi=roi)
    np.testing.assert_array_equal(res["frames"].raw_data, data[roi])
    assert decoded == [4]


def test_shard_index_out_of_bounds(ctx, zarr, tmp_path):
    """An index entry pointing past the shard's end is an error naming the chunk."""
    data = _data()
    path = tmp_path / "s.zarr"
    z = zarr.create_array(
        str(path),
        shape=data.shape,
        chunks=(1, 7, 8, 9),
        shards={"shape": (2, 7, 8, 9), "index_location": "start"},
        dtype=data.dtype,
        compressors=None,
    )
    z[...] = data
    shard = path / "c/1/0/0/0"
    raw = bytearray(shard.read_bytes())
    index = np.frombuffer(bytes(raw[:32]), "<u8").copy().reshape(2, 2)
    index[1, 0] = len(raw)  # the second inner chunk starts at the shard's end
    raw[:32] = index.tobytes()
    from numcodecs import CRC32C  # zarr's checksum codec: the index followed by its CRC32C

    raw[32:36] = bytes(CRC32C().encode(bytes(raw[:32]))[-4:])
    shard.write_bytes(bytes(raw))
    ds = ctx.load("zarr", path=path, num_partitions=3)
    with pytest.raises(
        ZarrReadError,
        match=r"chunk 'c/1/0/0/0' \(inner chunk \(1, 0, 0, 0\) of the shard\) could not be read "
        r"\(its shard index puts it at bytes \d+\.\.\d+; the shard has \d+\)",
    ):
        ctx.run_udf(dataset=ds, udf=SumUDF())


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_missing_chunk(ctx, zarr, tmp_path, zarr_format):
    data = _data() + 1
    path = _write(zarr, tmp_path / "m.zarr", data, (2, 7, 8, 9), zarr_format, fill_value=0)
    _chunk_file(path, zarr_format, (1, 0, 0, 0)).unlink()
    ds = ctx.load("zarr", path=path, num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF())
    expected = data.copy()
    expected[2:4] = 0  # zarr's default: the fill value
    np.testing.assert_array_equal(res["frames"].data, expected)
    ds = ctx.load("zarr", path=path, num_partitions=3, missing_chunks="raise")
    key = _chunk_key(zarr_format, (1, 0, 0, 0))
    with pytest.raises(ZarrReadError, match=f"has no chunk {key!r}"):
        ctx.run_udf(dataset=ds, udf=FrameCopyUDF())
    roi = np.zeros(SHAPE[:2], bool)
    roi[0] = True
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF(), roi=roi)
    np.testing.assert_array_equal(res["frames"].raw_data, data[0])


def test_store_changed_after_open(ctx, zarr, tmp_path):
    path = _write(zarr, tmp_path / "scan.zarr", _data(), (2, 7, 8, 9))
    ds = ctx.load("zarr", path=path)
    _write(zarr, path, _data(shape=(3, 7, 8, 9)), (2, 7, 8, 9))
    with pytest.raises(ZarrReadError, match="Load it again"):
        ds.array.compute(scheduler="sync")


# across processes -----------------------------------------------------------------------------


def test_processes(processes_ctx, zarr, tmp_path):
    data = _data()
    path = _write(zarr, tmp_path / "scan.zarr", data, (2, 7, 4, 9))
    ds = processes_ctx.load("zarr", path=path, num_partitions=3)
    _check_sums(processes_ctx, ds, data)
    roi = np.zeros(SHAPE[:2], bool)
    roi[1, 1] = roi[4, 2] = True
    res = processes_ctx.run_udf(dataset=ds, udf=SumSigUDF(), roi=roi)
    np.testing.assert_allclose(res["intensity"].raw_data, data[roi].sum(axis=(1, 2)), rtol=1e-5)


def test_xarray_written_coordinates_and_units_come_through(tmp_path):
    import xarray as xr

    from dataflow.api import Context
    from dataflow.udf.sumsigudf import SumSigUDF

    data = np.arange(4 * 5 * 3 * 2, dtype="float32").reshape(4, 5, 3, 2)
    arr = xr.DataArray(
        data,
        dims=("y", "x", "ky", "kx"),
        coords={"x": ("x", np.arange(5) * 2.5, {"units": "nm"}), "ky": ("ky", [-1.0, 0, 1])},
    )
    arr.to_dataset(name="frames").to_zarr(tmp_path / "s.zarr", consolidated=False)
    ctx = Context.make_with("inline")
    ds = ctx.load("zarr", path=tmp_path / "s.zarr", ds_path="frames")
    assert ds.dims == ("y", "x", "ky", "kx")
    np.testing.assert_array_equal(ds.coords["x"], np.arange(5) * 2.5)
    out = ctx.run_udf(dataset=ds, udf=SumSigUDF()).to_xarray()
    assert out["x"].attrs == {"units": "nm"}
    assert "units" not in out["y"].attrs  # no coordinate stored: pixel indices, no unit
    np.testing.assert_array_equal(out["intensity"].values, data.sum(axis=(2, 3)))


# chunk files read directly ---------------------------------------------------------------------


def _compressor(zarr, zarr_format, name):
    import numcodecs

    if name is None:
        return None
    if zarr_format == 2:
        return {"zstd": numcodecs.Zstd(), "blosc": numcodecs.Blosc(), "gzip": numcodecs.GZip()}[
            name
        ]
    return {
        "zstd": zarr.codecs.ZstdCodec(),
        "blosc": zarr.codecs.BloscCodec(),
        "gzip": zarr.codecs.GzipCodec(),
    }[name]


@pytest.fixture
def no_zarr_reads(zarr, monkeypatch):
    """Fails any read through zarr-python's own selection machinery."""

    def refuse(self, *args, **kwargs):
        raise AssertionError("read through zarr, not from the chunk files")

    monkeypatch.setattr(zarr.Array, "get_basic_selection", refuse)


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("compressor", [None, "zstd", "blosc", "gzip"])
@pytest.mark.parametrize(
    "chunks",
    [(2, 7, 8, 9), (4, 5, 3, 4), (1, 1, 8, 9), (6, 7, 8, 9)],
    ids=["rows", "edges-and-split-frames", "frames", "one"],
)
def test_local_chunks_are_read_from_their_files(
    ctx, zarr, tmp_path, no_zarr_reads, zarr_format, compressor, chunks
):
    data = _data("uint16")
    path = _write(
        zarr,
        tmp_path / "d.zarr",
        data,
        chunks,
        zarr_format,
        compressors=_compressor(zarr, zarr_format, compressor),
        fill_value=7,
    )
    first = _chunk_file(path, zarr_format, (0,) * 4)
    first.unlink()  # a missing chunk reads as the fill value, as zarr reads it
    expected = data.copy()
    expected[: chunks[0], : chunks[1], : chunks[2], : chunks[3]] = 7
    ds = ctx.load("zarr", path=path, num_partitions=3)
    assert ds.reader.files is not None
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF())
    np.testing.assert_array_equal(res["frames"].data, expected)
    roi = np.zeros(SHAPE[:2], bool)
    roi[0, 0] = roi[3, 2:5] = roi[5, 6] = True
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF(), roi=roi)
    np.testing.assert_array_equal(res["frames"].raw_data, expected[roi])


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("chunks", [(2, 3, 4, 9), (1, 1, 8, 9)], ids=str)
def test_chunk_files_read_once_and_only_for_the_roi(
    ctx, zarr, tmp_path, monkeypatch, zarr_format, chunks
):
    from dataflow.adapters.zarr import chunks as zarr_chunks

    data = _data()
    path = _write(zarr, tmp_path / "d.zarr", data, chunks, zarr_format)
    loaded = []
    real = zarr_chunks._ChunkFiles._load

    def counting(self, index, out):
        loaded.append(index)
        return real(self, index, out)

    monkeypatch.setattr(zarr_chunks._ChunkFiles, "_load", counting)
    ds = ctx.load("zarr", path=path, num_partitions=2)
    _check_sums(ctx, ds, data)
    every = _keys_of_frames(zarr_format, SHAPE, chunks, list(np.ndindex(*SHAPE[:2])))
    keys = [_chunk_key(zarr_format, i) for i in loaded]
    assert sorted(keys) == sorted(every)  # each chunk once
    loaded.clear()
    roi = np.zeros(SHAPE[:2], bool)
    roi[1, 2] = roi[4, 5] = True
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF(), roi=roi)
    np.testing.assert_array_equal(res["frames"].raw_data, data[roi])
    keys = [_chunk_key(zarr_format, i) for i in loaded]
    assert sorted(keys) == sorted(_keys_of_frames(zarr_format, SHAPE, chunks, [(1, 2), (4, 5)]))


def test_other_arrays_are_read_through_zarr(ctx, zarr, tmp_path):
    import numcodecs

    data = _data("uint16")
    arrays = {
        "big-endian": _write(zarr, tmp_path / "be.zarr", data.astype(">u2"), (2, 7, 8, 9), 2),
        "filtered": _write(
            zarr,
            tmp_path / "f.zarr",
            data,
            (2, 7, 8, 9),
            2,
            filters=[numcodecs.Delta(dtype="u2")],
        ),
        "sharded": _write(zarr, tmp_path / "s.zarr", data, (1, 7, 8, 9), shards=(2, 7, 8, 9)),
        "big-endian-shard-index": _write(
            zarr,
            tmp_path / "bi.zarr",
            data,
            (2, 7, 8, 9),
            serializer=zarr.codecs.ShardingCodec(
                chunk_shape=(1, 7, 8, 9),
                index_codecs=[zarr.codecs.BytesCodec(endian="big"), zarr.codecs.Crc32cCodec()],
            ),
            compressors=None,
        ),
        "checksummed": _write(
            zarr,
            tmp_path / "c.zarr",
            data,
            (2, 7, 8, 9),
            compressors=[zarr.codecs.ZstdCodec(), zarr.codecs.Crc32cCodec()],
        ),
    }
    for name, path in arrays.items():
        ds = ctx.load("zarr", path=path, num_partitions=2)
        assert (ds.reader.files is not None) == (name == "sharded"), name
        res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF())
        np.testing.assert_array_equal(res["frames"].data, data, err_msg=name)
    store = zarr.storage.LocalStore(arrays["sharded"], read_only=True)
    assert ctx.load("zarr", path=store).reader.files is None  # a store object: zarr reads it


def test_chunk_files_travel_small(zarr, tmp_path):
    path = _write(zarr, tmp_path / "d.zarr", _data(), (2, 7, 8, 9))
    ds = ZarrAdapter.open(path)
    assert len(cloudpickle.dumps(ds.reader)) < 5_000
    again = pickle.loads(cloudpickle.dumps(ds.reader))
    np.testing.assert_array_equal(again(0, 42, None), _data().reshape(42, 8, 9))


# chunk files handed to the partition piece by piece ---------------------------------------------


@pytest.mark.parametrize(
    ("chunks", "axis"),
    [
        ((2, 7, 8, 9), 0),
        ((1, 7, 8, 9), 1),
        ((1, 3, 8, 9), 1),
        ((1, 1, 8, 9), 1),
        ((6, 7, 8, 9), 0),
        ((4, 5, 8, 9), None),  # a chunk of rows of part of a scan row: frames not consecutive
        ((2, 7, 4, 9), None),  # frames split over chunks
        ((2, 8, 8, 9), None),  # a chunk wider than the scan row: its frames are padded
    ],
    ids=str,
)
def test_which_chunks_are_runs_of_frames(zarr, tmp_path, chunks, axis):
    path = _write(zarr, tmp_path / "d.zarr", _data(), chunks)
    assert ZarrAdapter.open(path).reader.files.frame_runs(2) == axis


class _TileLengths(UDF):
    """Sums the frames, and records per frame the length of the tile it came in."""

    def get_result_buffers(self):
        return {
            "intensity": self.buffer(kind="sig", dtype="float64"),
            "tile": self.buffer(kind="nav", dtype="int64"),
        }

    def process_tile(self, tile):
        self.results.tile[:] = len(tile)
        self.results.intensity[:] += tile.sum(axis=0)

    def merge(self, dest, src):
        dest.intensity[:] += src.intensity
        dest.tile[:] = src.tile


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("compressor", [None, "zstd", "blosc", "gzip"])
@pytest.mark.parametrize("chunks", [(4, 7, 8, 9), (1, 3, 8, 9)], ids=str)
def test_pieces_give_the_same_numbers(ctx, zarr, tmp_path, zarr_format, compressor, chunks):
    """Chunks of runs of frames go to the UDFs chunk by chunk, tiles never longer than one.

    (4, 7) over 6 scan rows leaves a short last chunk; (1, 3) over rows of 7 frames a
    short last chunk in every row. Windows, ROIs and missing chunks behave as ever.
    """
    data = _data("uint16")
    path = _write(
        zarr,
        tmp_path / "d.zarr",
        data,
        chunks,
        zarr_format,
        compressors=_compressor(zarr, zarr_format, compressor),
        fill_value=3,
    )
    _chunk_file(path, zarr_format, (1, 0, 0, 0) if chunks[0] == 4 else (2, 1, 0, 0)).unlink()
    expected = data.copy()
    if chunks[0] == 4:
        expected[4:] = 3
    else:
        expected[2, 3:6] = 3
    flat = expected.reshape(42, 8, 9)
    per_chunk = math.prod(chunks[:2])
    for num_partitions in (1, 3):
        ds = ctx.load("zarr", path=path, num_partitions=num_partitions)
        summed, frames = ctx.run_udf(dataset=ds, udf=[_TileLengths(), FrameCopyUDF()])
        np.testing.assert_array_equal(summed["intensity"].data, flat.sum(axis=0))
        np.testing.assert_array_equal(frames["frames"].data, expected)
        assert 1 <= summed["tile"].data.max() <= per_chunk
        roi = np.random.default_rng(num_partitions).random(SHAPE[:2]) < 0.3
        res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF(), roi=roi)
        np.testing.assert_array_equal(res["frames"].raw_data, expected[roi])
        shifted = ctx.load(
            "zarr", path=path, num_partitions=num_partitions, nav_shape=(5, 8), sync_offset=3
        )
        res = ctx.run_udf(dataset=shifted, udf=FrameCopyUDF())
        want = np.zeros((40, 8, 9), data.dtype)
        want[:39] = flat[3:]
        np.testing.assert_array_equal(res["frames"].data.reshape(40, 8, 9), want)


@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_whole_partitions_and_tiles_from_pieces(ctx, zarr, tmp_path, compressor):
    """A UDF that takes whole partitions gets the pieces put together; tiles run beside it."""
    from dataflow.udf.base import UDF

    class PartitionSums(UDF):
        def get_result_buffers(self):
            return {"sums": self.buffer(kind="nav", dtype="float64")}

        def process_partition(self, partition):
            self.results.sums[:] = partition.sum(axis=(1, 2))

    data = _data()
    path = _write(
        zarr, tmp_path / "d.zarr", data, (1, 7, 8, 9), compressors=_compressor(zarr, 3, compressor)
    )
    ds = ctx.load("zarr", path=path, num_partitions=2)
    roi = np.zeros(SHAPE[:2], bool)
    roi[0, 1] = roi[2, :] = roi[5, 6] = True
    for r in (None, roi):
        parts, summed = ctx.run_udf(dataset=ds, udf=[PartitionSums(), SumUDF()], roi=r)
        sel = np.ones(SHAPE[:2], bool) if r is None else r
        np.testing.assert_allclose(parts["sums"].raw_data, data[sel].sum(axis=(1, 2)), rtol=1e-5)
        np.testing.assert_allclose(summed["intensity"].data, data[sel].sum(axis=0), rtol=1e-5)


def test_plain_pieces_are_views_of_the_mapped_files(zarr, tmp_path):
    from dataflow.sources.filemaps import FILE_MAPS

    data = _data()
    path = _write(zarr, tmp_path / "d.zarr", data, (2, 7, 8, 9), compressors=None)
    reader = ZarrAdapter.open(path).reader
    pieces = list(reader.pieces(0, 42))
    assert [(row, len(frames)) for row, frames in pieces] == [(0, 14), (14, 14), (28, 14)]
    for i, (row, frames) in enumerate(pieces):
        np.testing.assert_array_equal(frames, data.reshape(42, 8, 9)[row : row + 14])
        assert not frames.flags.writeable  # as the npy source's views
        chunk = _chunk_file(path, 3, (i, 0, 0, 0))
        assert np.shares_memory(frames, FILE_MAPS.get(os.fspath(chunk), os.stat(chunk)))


def test_compressed_pieces_reuse_one_buffer(zarr, tmp_path):
    data = _data()
    path = _write(zarr, tmp_path / "d.zarr", data, (2, 7, 8, 9))
    reader = ZarrAdapter.open(path).reader
    addresses = set()
    for _ in range(2):  # and the next call finds it again, its pages in place
        for row, frames in reader.pieces(0, 42):
            np.testing.assert_array_equal(frames, data.reshape(42, 8, 9)[row : row + len(frames)])
            addresses.add(frames.__array_interface__["data"][0] - row % 14 * frames[0].nbytes)
    assert len(addresses) == 1


def test_pieces_of_a_mask_skip_chunks(zarr, tmp_path):
    data = _data()
    path = _write(zarr, tmp_path / "d.zarr", data, (1, 7, 8, 9))
    reader = ZarrAdapter.open(path).reader
    mask = np.zeros(42, bool)
    mask[[3, 30, 31]] = True
    got = [(row, len(frames)) for row, frames in reader.pieces(0, 42, mask)]
    assert got == [(0, 7), (28, 7)]
    assert list(reader.pieces(0, 42, np.zeros(42, bool))) == []


def test_metadata_rewritten_after_open(ctx, zarr, tmp_path):
    """New attributes change nothing; other chunks or codecs under the same shape are refused."""
    data = _data()
    path = _write(zarr, tmp_path / "d.zarr", data, (2, 7, 8, 9))
    ds = ctx.load("zarr", path=path)
    zarr.open_array(str(path), mode="r+").attrs["note"] = "calibrated"
    _check_sums(ctx, ds, data)
    _write(zarr, path, data, (2, 7, 8, 9), compressors=None)
    with pytest.raises(ZarrReadError, match=r"rewritten with other chunks, codecs.*Load it again"):
        ctx.run_udf(dataset=ds, udf=SumUDF())


# defects fixed with the split into adapters/zarr/ ---------------------------------------------


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_codecs_that_cannot_be_checked_are_refused(zarr, tmp_path, monkeypatch, zarr_format):
    """Metadata that does not serialize may hide a pickle codec: refused, not waved through."""
    data = _data()
    path = _write(zarr, tmp_path / "u.zarr", data, (2, 7, 8, 9), zarr_format)
    metadata_class = type(zarr.open_array(str(path), mode="r").metadata)

    def broken(self):
        raise TypeError("cannot serialize this metadata")

    monkeypatch.setattr(metadata_class, "to_dict", broken)
    with pytest.raises(DataSetException, match="could not be checked") as info:
        ZarrAdapter.open(path)
    assert "allow_pickle=True" in str(info.value)
    ds = ZarrAdapter.open(path, allow_pickle=True)  # a trusted store
    np.testing.assert_array_equal(ds.array.compute(scheduler="sync"), data)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_chunks_rewritten_in_place_get_new_keys(ctx, zarr, tmp_path, zarr_format):
    """The token covers the chunk files, not only the metadata file."""
    old, new = _data(seed=0), _data(seed=1)
    path = _write(zarr, tmp_path / "w.zarr", old, (2, 7, 8, 9), zarr_format)
    before = ctx.load("zarr", path=path, num_partitions=2)
    np.testing.assert_array_equal(before.array.compute(scheduler="sync"), old)
    meta = path / ("zarr.json" if zarr_format == 3 else ".zarray")
    stamp = meta.stat().st_mtime_ns
    zarr.open_array(str(path), mode="r+")[...] = new  # same shape, same metadata
    assert meta.stat().st_mtime_ns == stamp
    after = ctx.load("zarr", path=path, num_partitions=2)
    assert after.partition_array.name != before.partition_array.name
    assert tokenize(after) != tokenize(before)  # the DataSet's token
    np.testing.assert_array_equal(after.array.compute(scheduler="sync"), new)
    _check_sums(ctx, after, new)
    again = ctx.load("zarr", path=path, num_partitions=2)  # unchanged: the same keys
    assert again.partition_array.name == after.partition_array.name


def test_credentials_freed_with_their_dataset(ctx, zarr):
    """The vault entry of a dataset's private storage_options goes with the dataset."""
    import gc
    import uuid

    import fsspec

    from dataflow.adapters.zarr import credentials

    url = f"memory://dataflow-{uuid.uuid4().hex}/scan.zarr"
    data = _data()
    _write(zarr, url, data, (2, 7, 8, 9))
    try:
        ds = ctx.load("zarr", path=url, storage_options={"secret": "s3cr3t"}, num_partitions=2)
        ref = ds.reader.source.private_ref
        assert ref is not None
        assert credentials._PRIVATE_OPTIONS[ref] == {"secret": "s3cr3t"}
        res = ctx.run_udf(dataset=ds, udf=SumUDF())
        np.testing.assert_allclose(res["intensity"].data, data.sum(axis=(0, 1)), rtol=1e-5)
        del ds, res
        gc.collect()
        assert ref not in credentials._PRIVATE_OPTIONS
    finally:
        fsspec.filesystem("memory").rm(url.rsplit("/", 1)[0], recursive=True)
