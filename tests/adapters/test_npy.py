"""Tests of the ``npy`` adapter (``adapters/npy.py``)."""

from __future__ import annotations

import itertools
import os
import pickle

import cloudpickle
import dask
import numpy as np
import pytest

import dataflow
from dataflow.adapters import npy as npy_module
from dataflow.adapters.npy import BinaryFrameReader, NPYAdapter, read_header
from dataflow.errors import DataflowWarning, DataSetException
from dataflow.sources import filemaps
from dataflow.sources.filemaps import FileMaps
from dataflow.testing import AdapterTests, FrameCopyUDF
from dataflow.udf.sum import SumUDF
from dataflow.udf.sumsigudf import SumSigUDF


@pytest.fixture(scope="module")
def ctx():
    with dataflow.Context.make_with("inline") as c:
        yield c


def _data(dtype, shape=(6, 7, 8, 9), seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.random(shape).astype(dtype)
    return rng.integers(0, 1000, size=shape).astype(dtype)


@pytest.fixture
def npy_file(tmp_path):
    data = _data("float32")
    path = tmp_path / "scan.npy"
    np.save(path, data)
    return path, data


@pytest.mark.parametrize("dtype", ["float32", "uint16"])
@pytest.mark.parametrize("num_partitions", [1, 3, 7])
def test_same_results_as_memory(ctx, tmp_path, dtype, num_partitions):
    data = _data(dtype)
    path = tmp_path / "scan.npy"
    np.save(path, data)
    ds = ctx.load("npy", path=path, num_partitions=num_partitions)
    mem = ctx.load("memory", data=data, num_partitions=num_partitions)
    got = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
    want = ctx.run_udf(dataset=mem, udf=[SumUDF(), SumSigUDF()])
    for g, w in zip(got, want, strict=True):
        assert g["intensity"].data.dtype == w["intensity"].data.dtype
        np.testing.assert_allclose(g["intensity"].data, w["intensity"].data, rtol=1e-5)
    ref = data.astype(np.float64)
    np.testing.assert_allclose(got[0]["intensity"].data, ref.sum(axis=(0, 1)), rtol=1e-5)
    np.testing.assert_allclose(got[1]["intensity"].data, ref.sum(axis=(2, 3)), rtol=1e-5)
    if dtype == "uint16":  # integer sums below 2**24 are exact in float32
        np.testing.assert_array_equal(got[0]["intensity"].data, ref.sum(axis=(0, 1)))


@pytest.mark.parametrize("num_partitions", [1, 3, 7, 42])
def test_partitions(ctx, npy_file, num_partitions):
    path, data = npy_file
    ds = ctx.load("npy", path=path, num_partitions=num_partitions)
    assert ds.get_num_partitions() == num_partitions
    parts = ds.partitions
    assert list(ds.get_partitions()) == list(parts)
    assert parts[0].start == 0
    assert parts[-1].stop == 42
    assert all(a.stop == b.start for a, b in itertools.pairwise(parts))
    assert ds.partition_array.chunks[0] == tuple(p.n_frames for p in parts)
    assert ds.partition_array.numblocks[0] == num_partitions
    flat = data.reshape((42, 8, 9))
    for p in parts:  # each block alone: block_info gives its own frame range
        np.testing.assert_array_equal(ds.partition_array.blocks[p.index].compute(), flat[p.slice])


def test_whole_array_and_metadata(ctx, npy_file):
    path, data = npy_file
    ds = ctx.load("npy", path=path, num_partitions=3)
    assert tuple(ds.shape) == data.shape
    assert ds.dtype == data.dtype
    assert ds.dims == ("scan_y", "scan_x", "det_y", "det_x")
    np.testing.assert_array_equal(ds.array.compute(scheduler="sync"), data)


def test_min_partitions_and_partition_bytes(ctx, npy_file):
    path, _ = npy_file
    assert NPYAdapter.open(path).get_num_partitions() == 1
    assert NPYAdapter.open(path, min_partitions=4).get_num_partitions() == 4
    frame_bytes = 8 * 9 * 4
    ds = NPYAdapter.open(path, partition_bytes=7 * frame_bytes)
    assert ds.get_num_partitions() == 6
    assert {p.n_frames for p in ds.partitions} == {7}  # whole scan rows


@pytest.mark.parametrize("capacity", [0, 2**30])
def test_blocks_are_read_only_views_of_the_file(monkeypatch, npy_file, capacity):
    monkeypatch.setattr(npy_module, "FILE_MAPS", FileMaps(capacity))
    path, data = npy_file
    ds = NPYAdapter.open(path, num_partitions=2)
    p = ds.partitions[1]
    block = ds.reader(p.start, p.stop, None)  # what a partition task gets
    assert type(block) is np.ndarray
    assert not block.flags.writeable  # as LiberTEM's tiles of file data
    with pytest.raises(ValueError, match="read-only"):
        block[:] = -1
    np.testing.assert_array_equal(block, data.reshape(-1, 8, 9)[p.start : p.stop])
    again = pickle.loads(pickle.dumps(block))  # travels by value, as a plain array
    assert type(again) is np.ndarray
    np.testing.assert_array_equal(again, block)


def test_file_maps_are_kept_between_runs_and_remade_when_the_file_changes(
    monkeypatch, ctx, tmp_path, map_calls
):
    monkeypatch.setattr(npy_module, "FILE_MAPS", FileMaps(2**30))
    path = tmp_path / "x.npy"
    np.save(path, np.ones((4, 5, 6, 7), "float32"))
    ds = ctx.load("npy", path=path, num_partitions=3)
    for _ in range(3):
        assert ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data[0, 0] == 20
    assert len(map_calls) == 1  # the whole file, once
    np.save(path, np.full((4, 5, 6, 7), 2, "float32"))  # rewritten: mtime and inode move
    os.utime(path, ns=(0, 12345))
    assert ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data[0, 0] == 40
    assert len(map_calls) == 2


def test_file_maps_keep_at_most_their_capacity(tmp_path):
    maps = FileMaps(capacity=250)
    paths = []
    for i in range(3):
        p = tmp_path / f"f{i}.bin"
        p.write_bytes(bytes([i]) * 100)
        paths.append(str(p))
    for p in paths:
        assert maps.get(p, os.stat(p))[0] == int(p[-5])
    assert list(maps._maps) == paths[1:]  # the least recently used went first
    assert maps.get(paths[1], os.stat(paths[1])) is maps._maps[paths[1]][1]
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 300)
    assert maps.get(str(big), os.stat(big)) is None  # larger than the capacity: not kept
    maps.clear()
    assert not maps._maps


def test_open_reads_no_data(monkeypatch, npy_file):
    path, _ = npy_file
    calls = []
    monkeypatch.setattr(np, "fromfile", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(np, "load", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(np, "memmap", lambda *a, **k: calls.append(a))
    NPYAdapter.open(path, num_partitions=3)
    assert calls == []


def test_graph_pickles_small(tmp_path):
    data = np.zeros((16, 16, 64, 64), dtype="float32")  # 4 MiB
    path = tmp_path / "big.npy"
    np.save(path, data)
    ds = NPYAdapter.open(path, num_partitions=8)
    size = len(cloudpickle.dumps(ds.partition_array.__dask_graph__()))
    assert size < 10_000, size
    again = pickle.loads(cloudpickle.dumps(ds.partition_array))
    np.testing.assert_array_equal(again.compute(scheduler="sync"), data.reshape((256, 64, 64)))


@pytest.mark.parametrize(("sig_dims", "nav", "sig"), [(1, (6, 7, 8), (9,)), (3, (6,), (7, 8, 9))])
def test_sig_dims(ctx, npy_file, sig_dims, nav, sig):
    path, data = npy_file
    ds = ctx.load("npy", path=path, sig_dims=sig_dims, num_partitions=2)
    assert tuple(ds.shape.nav) == nav
    assert tuple(ds.shape.sig) == sig
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF())
    axes = tuple(range(len(nav), data.ndim))
    np.testing.assert_allclose(res["intensity"].data, data.sum(axis=axes), rtol=1e-5)


@pytest.mark.parametrize("sig_dims", [0, 4, "2"])
def test_bad_sig_dims(npy_file, sig_dims):
    path, _ = npy_file
    with pytest.raises((ValueError, TypeError), match="sig_dims"):
        NPYAdapter.open(path, sig_dims=sig_dims)


def test_dims(ctx, npy_file):
    path, _ = npy_file
    ds = ctx.load("npy", path=path, dims=("y", "x", "ky", "kx"))
    assert ds.dims == ("y", "x", "ky", "kx")
    with pytest.raises(DataSetException, match="dims has 2 names"):
        ctx.load("npy", path=path, dims=("y", "x"))


def test_read_header(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.zeros((2, 3), dtype=">u2"))
    shape, dtype, fortran, offset = read_header(path)
    assert (shape, dtype, fortran) == ((2, 3), np.dtype(">u2"), False)
    assert offset == path.stat().st_size - 12


def test_big_endian_and_version_2(ctx, tmp_path):
    data = _data(">f4", shape=(3, 4, 5, 6))
    path = tmp_path / "be.npy"
    with path.open("wb") as f:
        np.lib.format.write_array(f, data, version=(2, 0))
    ds = ctx.load("npy", path=path, num_partitions=3)
    np.testing.assert_array_equal(ds.array.compute(scheduler="sync"), data)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match=r"does-not-exist\.npy"):
        NPYAdapter.open("/nonexistent/dir/does-not-exist.npy")


def test_directory(tmp_path):
    with pytest.raises(IsADirectoryError, match="directory"):
        NPYAdapter.open(tmp_path)


@pytest.mark.parametrize("path", [None, 3, ["a.npy"]])
def test_path_type(path):
    with pytest.raises(TypeError, match="path"):
        NPYAdapter.open(path)


def test_not_npy(tmp_path):
    path = tmp_path / "junk.npy"
    path.write_bytes(b"this is not a numpy file at all" * 10)
    with pytest.raises(DataSetException, match=r"is not a \.npy file"):
        NPYAdapter.open(path)


def test_unsupported_version(tmp_path):
    path = tmp_path / "v3.npy"
    with path.open("wb") as f:
        np.lib.format.write_array(f, np.zeros((2, 2, 2)), version=(3, 0))
    with pytest.raises(DataSetException, match=r"version 3\.0"):
        NPYAdapter.open(path)


@pytest.mark.parametrize("extra", [-8, 8])
def test_size_mismatch(tmp_path, extra):
    path = tmp_path / "bad.npy"
    np.save(path, np.zeros((4, 4, 4, 4), dtype="float32"))
    raw = path.read_bytes()
    expected = len(raw)
    path.write_bytes(raw[:extra] if extra < 0 else raw + b"\0" * extra)
    with pytest.raises(DataSetException) as info:
        NPYAdapter.open(path)
    msg = str(info.value)
    assert f"has {expected + extra} bytes" in msg
    assert f"expects {expected} bytes" in msg


def test_fortran_order(tmp_path):
    path = tmp_path / "f.npy"
    np.save(path, np.asfortranarray(np.zeros((4, 4, 4, 4))))
    with pytest.raises(DataSetException, match="Fortran order"):
        NPYAdapter.open(path)


def test_object_dtype(tmp_path):
    data = np.empty((2, 3, 4), dtype=object)
    data[...] = 7
    path = tmp_path / "obj.npy"
    np.save(path, data, allow_pickle=True)
    with pytest.raises(DataSetException, match="allow_pickle=True"):
        NPYAdapter.open(path)
    ds = NPYAdapter.open(path, allow_pickle=True, sig_dims=1, num_partitions=2)
    assert ds.dtype == object
    np.testing.assert_array_equal(ds.array.compute(scheduler="sync"), data)


def test_too_few_dimensions(tmp_path):
    path = tmp_path / "one.npy"
    np.save(path, np.zeros(5))
    with pytest.raises(DataSetException, match="at least 2 dimensions"):
        NPYAdapter.open(path)


def test_token_follows_file(tmp_path):
    path = tmp_path / "t.npy"
    np.save(path, np.zeros((2, 2, 3, 3)))
    a, b = NPYAdapter.open(path), NPYAdapter.open(path)
    assert dask.base.tokenize(a) == dask.base.tokenize(b)
    assert a.partition_array.name == b.partition_array.name
    np.save(path, np.ones((2, 2, 3, 3)))
    mtime = path.stat().st_mtime_ns + 10**9  # coarse clocks: make the change visible
    os.utime(path, ns=(mtime, mtime))
    c = NPYAdapter.open(path)
    assert dask.base.tokenize(c) != dask.base.tokenize(a)
    assert c.partition_array.name != a.partition_array.name
    assert NPYAdapter.open(path, num_partitions=2).partition_array.name != c.partition_array.name


def test_guess_and_auto(ctx, npy_file):
    path, data = npy_file
    assert NPYAdapter.guess_can_open(path)
    assert NPYAdapter.guess_can_open("X.NPY")
    assert not NPYAdapter.guess_can_open("x.zarr")
    assert not NPYAdapter.guess_can_open(None)
    ds = ctx.load("auto", path=path)
    assert tuple(ds.shape) == data.shape


# the conformance suite ---------------------------------------------------------------------


class TestNPYConformance(AdapterTests):
    filetype = "npy"

    def write(self, path, data):
        np.save(path / "data.npy", data)
        return {"path": path / "data.npy"}


# nav_shape, sig_shape, sync_offset ---------------------------------------------------------


def _expected(stream, sig_shape, nav_shape, offset):
    """Dataset frames: the items of ``stream`` as frames of ``sig_shape``, shifted by ``offset``."""
    frames = stream.reshape((-1, *sig_shape))
    n = int(np.prod(nav_shape))
    out = np.zeros((n, *sig_shape), stream.dtype)
    for i in range(n):
        if 0 <= i + offset < len(frames):
            out[i] = frames[i + offset]
    return out.reshape((*nav_shape, *sig_shape))


@pytest.mark.parametrize("sync_offset", [0, 4, -5])
@pytest.mark.parametrize(
    ("nav_shape", "sig_shape"),
    [
        (None, None),
        ((3, 14), None),  # the same frames, another scan shape
        ((50,), None),  # more frames than the file: zeros at the end
        ((2, 5), None),  # fewer: the rest is not read
        (None, (72,)),  # frames flattened
        ((7, 6), (12, 6)),  # frames reshaped
        ((84,), (4, 18)),  # each stored frame split in two
    ],
)
@pytest.mark.parametrize("num_partitions", [1, 3])
def test_layout_keywords(ctx, npy_file, nav_shape, sig_shape, sync_offset, num_partitions):
    path, data = npy_file
    ds = ctx.load(
        "npy",
        path=path,
        nav_shape=nav_shape,
        sig_shape=sig_shape,
        sync_offset=sync_offset,
        num_partitions=num_partitions,
    )
    sig = sig_shape or data.shape[2:]
    nav = nav_shape or data.shape[:2]
    expected = _expected(data.reshape(-1), sig, nav, sync_offset)
    assert ds.shape == (*nav, *sig)
    assert ds.meta.sync_offset == sync_offset
    assert ds.meta.image_count == data.size // int(np.prod(sig))
    np.testing.assert_array_equal(ds.array.compute(), expected)
    res = ctx.run_udf(dataset=ds, udf=[FrameCopyUDF(), SumSigUDF()])
    np.testing.assert_array_equal(res[0]["frames"].data, expected)
    roi = np.zeros(nav, bool)
    roi.reshape(-1)[1::4] = True
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF(), roi=roi)
    np.testing.assert_array_equal(res["frames"].raw_data, expected[roi])


def test_split_frames_with_sig_dims_keep_the_header_nav_shape(ctx, npy_file):
    """As LiberTEM: with sig_dims, nav_shape defaults to the header's, whatever sig_shape is."""
    path, data = npy_file
    ds = ctx.load("npy", path=path, sig_dims=2, sig_shape=(4, 9))
    assert ds.shape == (6, 7, 4, 9)
    assert ds.meta.image_count == 84
    np.testing.assert_array_equal(ds.array.compute(), data.reshape(84, 4, 9)[:42].reshape(ds.shape))


def test_sig_shape_alone_finds_the_stored_frame(npy_file):
    path, _ = npy_file
    assert NPYAdapter.open(path, sig_shape=(72,)).shape == (6, 7, 72)
    assert NPYAdapter.open(path, sig_shape=(2, 4, 9)).shape == (6, 7, 2, 4, 9)
    # no trailing axes hold 36 items: all 84 frames in one navigation axis
    assert NPYAdapter.open(path, sig_shape=(4, 9)).shape == (84, 4, 9)
    assert NPYAdapter.open(path, sig_dims=1, sig_shape=(9,)).shape == (6, 7, 8, 9)


def test_sig_dims_must_match_sig_shape(npy_file):
    path, _ = npy_file
    with pytest.raises(
        DataSetException, match=r"sig_shape is \(72,\) \(1 dimensions\); sig_dims is 2"
    ):
        NPYAdapter.open(path, sig_dims=2, sig_shape=(72,))


def test_two_dimensional_file_with_sig_shape(ctx, tmp_path):
    data = _data("uint16", shape=(10, 64))
    path = tmp_path / "lines.npy"
    np.save(path, data)
    ds = ctx.load("npy", path=path, sig_shape=(8, 8))
    assert ds.shape == (10, 8, 8)
    np.testing.assert_array_equal(ds.array.compute(), data.reshape(10, 8, 8))


def test_sig_shape_must_divide_the_items(npy_file):
    path, data = npy_file
    with pytest.raises(DataSetException) as info:
        NPYAdapter.open(path, sig_shape=(5, 5))
    msg = str(info.value)
    assert "25 items per frame" in msg
    assert f"holds {data.size} items" in msg


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sync_offset": 42}, DataSetException, r"sync_offset is 42; .* 42 frames"),
        ({"sync_offset": -42}, DataSetException, "sync_offset is -42"),
        ({"sync_offset": 1.5}, TypeError, "sync_offset"),
        ({"nav_shape": (0, 3)}, ValueError, "nav_shape"),
        ({"nav_shape": "6x7"}, TypeError, "nav_shape"),
        ({"sig_shape": (8, -9)}, ValueError, "sig_shape"),
        ({"sig_shape": (8.0, 9)}, TypeError, "sig_shape"),
        ({"sig_shape": 72}, TypeError, "sig_shape"),
    ],
)
def test_bad_layout_keywords(monkeypatch, npy_file, kwargs, error, match):
    path, _ = npy_file
    monkeypatch.setattr(np, "fromfile", _no_read)
    with pytest.raises(error, match=match):
        NPYAdapter.open(path, **kwargs)


def _no_read(*args, **kwargs):
    raise AssertionError("data was read while opening")


def test_io_backend_is_accepted_with_a_warning(ctx, npy_file):
    path, data = npy_file
    with pytest.warns(DataflowWarning, match="io_backend=.* has no effect on ctx.load\\('npy'"):
        ds = NPYAdapter.open(path, io_backend=object())
    np.testing.assert_array_equal(ds.array.compute(), data)
    NPYAdapter.open(path, io_backend=None)  # the default: no warning (warnings are errors)


def test_layout_changes_the_token(npy_file):
    path, _ = npy_file
    names = {
        NPYAdapter.open(path, **kw).partition_array.name
        for kw in ({}, {"sync_offset": 1}, {"nav_shape": (42,)}, {"sig_shape": (72,)})
    }
    assert len(names) == 4


# reading only what is needed ---------------------------------------------------------------


@pytest.fixture
def map_calls(monkeypatch):
    """Record ``(first byte, byte count)`` of every memory map the reader makes."""
    calls = []
    real = filemaps.map_bytes

    def mapping(path, start, length):
        calls.append((start, length))
        return real(path, start, length)

    monkeypatch.setattr(npy_module, "map_bytes", mapping)
    monkeypatch.setattr(filemaps, "map_bytes", mapping)
    return calls


@pytest.fixture
def fromfile_calls(monkeypatch):
    """Record ``(first byte, item count)`` of every np.fromfile read and np.memmap map."""
    calls = []
    real = np.fromfile
    real_memmap = np.memmap

    def counting(file, dtype=float, count=-1, *args, **kwargs):
        pos = file.tell() if hasattr(file, "tell") else kwargs.get("offset", 0)
        out = real(file, dtype=dtype, count=count, *args, **kwargs)  # noqa: B026
        calls.append((pos, out.size))
        return out

    def mapping(*args, **kwargs):
        out = real_memmap(*args, **kwargs)
        calls.append((kwargs.get("offset", 0), out.size))
        return out

    monkeypatch.setattr(np, "fromfile", counting)
    monkeypatch.setattr(np, "memmap", mapping)
    return calls


def _frames_read(calls, offset, frame_bytes, frame_items):
    """Stored frame indices read by the recorded np.fromfile calls."""
    frames = set()
    for pos, count in calls:
        first = (pos - offset) // frame_bytes
        frames.update(range(first, first + count // frame_items))
    return frames


@pytest.mark.parametrize("sync_offset", [0, 5, -3])
def test_roi_reads_only_selected_frames(ctx, npy_file, fromfile_calls, sync_offset):
    path, data = npy_file
    offset = read_header(path)[3]
    ds = ctx.load("npy", path=path, num_partitions=3, sync_offset=sync_offset)
    roi = np.zeros((6, 7), bool)
    roi[0, 1:4] = True
    roi[3, 6] = True
    roi[4, 0] = True
    roi[5, 6] = True
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF(), roi=roi)
    expected = _expected(data.reshape(-1), (8, 9), (6, 7), sync_offset)
    np.testing.assert_array_equal(res["frames"].raw_data, expected[roi])
    # a run maps the file and hands the UDF views of the selected frames: nothing is
    # read into memory, and only their pages are touched
    assert fromfile_calls == []
    # a read with a mask (what ds.reader does off a run) reads only selected frames
    flat = roi.reshape(-1)
    frames = expected.reshape(42, 8, 9)
    for part in ds.partitions:
        sel = flat[part.start : part.stop]
        got = ds.reader(part.start, part.stop, sel)
        np.testing.assert_array_equal(got[sel], frames[part.start : part.stop][sel])
    wanted = {i + sync_offset for i in np.flatnonzero(roi) if 0 <= i + sync_offset < 42}
    assert _frames_read(fromfile_calls, offset, 8 * 9 * 4, 8 * 9) == wanted
    # one read per run of neighbouring frames: 1:4 is one run, (3, 6) and (4, 0) another
    # unless a partition boundary falls between them
    assert len(fromfile_calls) <= 4


@pytest.mark.parametrize("capacity", [0, 2**30])
def test_full_runs_map_the_file_and_read_nothing(
    monkeypatch, ctx, npy_file, fromfile_calls, map_calls, capacity
):
    monkeypatch.setattr(npy_module, "FILE_MAPS", FileMaps(capacity))
    path, data = npy_file
    ds = ctx.load("npy", path=path, num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF())
    np.testing.assert_array_equal(res["frames"].data, data)
    assert fromfile_calls == []  # mapped, not copied
    if capacity:  # the whole file, once
        assert map_calls == [(0, os.path.getsize(path))]
    else:  # one map per partition, together the frames once
        assert len(map_calls) == 3
        assert sum(n for _, n in map_calls) == data.nbytes


def test_frames_outside_the_file_are_not_read(npy_file, fromfile_calls):
    path, data = npy_file
    ds = NPYAdapter.open(path, nav_shape=(60,), sync_offset=-10, num_partitions=3)
    block = ds.reader(0, 10, None)  # all before the file
    assert not block.any()
    assert fromfile_calls == []
    np.testing.assert_array_equal(ds.reader(40, 60, None)[:12], data.reshape(42, 8, 9)[30:])
    assert fromfile_calls[0][1] == 12 * 72


def test_reader_mask(npy_file):
    path, data = npy_file
    ds = NPYAdapter.open(path)
    mask = np.zeros(10, bool)
    mask[[2, 3, 7]] = True
    out = ds.reader(5, 15, mask)
    flat = data.reshape(42, 8, 9)
    np.testing.assert_array_equal(out[mask], flat[5:15][mask])
    assert not out[~mask].any()
    assert out.flags.c_contiguous
    with pytest.raises(ValueError, match="mask has 3 entries"):
        ds.reader(0, 10, np.ones(3, bool))


def test_reader_pickles_small(npy_file):
    path, _ = npy_file
    reader = NPYAdapter.open(path).reader
    assert isinstance(reader, BinaryFrameReader)
    payload = pickle.dumps(reader)
    assert len(payload) < 1000
    again = pickle.loads(payload)
    np.testing.assert_array_equal(again(0, 4), reader(0, 4))
    assert dask.base.tokenize(again) == dask.base.tokenize(reader)
    assert "scan.npy" in repr(reader)


def test_object_dtype_reader_with_layout(tmp_path):
    data = np.empty((4, 3, 2), dtype=object)
    data[...] = np.arange(24).reshape(4, 3, 2)
    path = tmp_path / "obj.npy"
    np.save(path, data, allow_pickle=True)
    ds = NPYAdapter.open(path, allow_pickle=True, sig_dims=2, sync_offset=1, num_partitions=2)
    flat = data.reshape(4, 3, 2)
    np.testing.assert_array_equal(ds.array.compute(scheduler="sync")[:3], flat[1:])
    out = ds.reader(0, 4, np.array([True, False, False, True]))
    np.testing.assert_array_equal(out[0], flat[1])
    assert (out[3] == 0).all()  # frame 3 is stored frame 4: past the end
