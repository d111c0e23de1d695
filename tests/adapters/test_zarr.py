"""Tests of the ``zarr`` adapter (``adapters/zarr.py``)."""

from __future__ import annotations

import itertools
import math
import pickle

import cloudpickle
import numpy as np
import pytest

import dataflow
from dataflow.adapters.zarr import ZarrAdapter, chunk_boundaries, nav_regions
from dataflow.errors import DataSetException
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
    z = zarr.open_array(
        str(path),
        mode="w",
        shape=data.shape,
        chunks=chunks,
        dtype=data.dtype,
        zarr_format=zarr_format,
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


def test_open_reads_no_chunks(zarr, tmp_path, monkeypatch):
    path = _write(zarr, tmp_path / "scan.zarr", _data(), (2, 7, 8, 9))
    read = []
    original = zarr.Array.__getitem__
    monkeypatch.setattr(
        zarr.Array, "__getitem__", lambda self, k: read.append(k) or original(self, k)
    )
    ds = ZarrAdapter.open(path, num_partitions=3)
    assert read == []
    ds.partition_array.blocks[1].compute(scheduler="sync")
    assert read != []


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
