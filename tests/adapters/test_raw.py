"""Tests of the ``raw`` adapter (``adapters/raw.py``)."""

from __future__ import annotations

import pickle
from typing import ClassVar

import cloudpickle
import dask
import numpy as np
import pytest

import dataflow
from dataflow.adapters.raw import RawAdapter
from dataflow.errors import AdapterNotFoundError, DataflowWarning, DataSetException
from dataflow.testing import AdapterTests, FrameCopyUDF
from dataflow.udf.sum import SumUDF
from dataflow.udf.sumsigudf import SumSigUDF

SHAPE = (6, 7, 8, 9)


@pytest.fixture(scope="module")
def ctx():
    with dataflow.Context.make_with("inline") as c:
        yield c


def _data(dtype="float32", shape=SHAPE, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.random(shape).astype(dtype)
    return rng.integers(0, 1000, size=shape).astype(dtype)


@pytest.fixture
def raw_file(tmp_path):
    data = _data()
    path = tmp_path / "scan.raw"
    data.tofile(path)
    return path, data


def _kwargs(path, data, sig_dims=2):
    return {
        "path": path,
        "dtype": data.dtype,
        "nav_shape": data.shape[:-sig_dims],
        "sig_shape": data.shape[-sig_dims:],
    }


def _expected(frames, nav_shape, offset):
    """Dataset frames: stored frame ``i + offset`` at ``i``, zeros outside the file."""
    n = int(np.prod(nav_shape))
    out = np.zeros((n, *frames.shape[1:]), frames.dtype)
    for i in range(n):
        if 0 <= i + offset < len(frames):
            out[i] = frames[i + offset]
    return out.reshape((*nav_shape, *frames.shape[1:]))


# the conformance suite ---------------------------------------------------------------------


class TestRawConformance(AdapterTests):
    filetype = "raw"
    dtypes: ClassVar[list[str]] = ["uint16", "float32", ">i4", "complex64"]

    def write(self, path, data):
        data.tofile(path / "data.raw")
        return _kwargs(path / "data.raw", data)


# results -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["uint8", ">u2", "<i4", "float64", ">f4", "bool"])
def test_dtypes_and_byte_order(ctx, tmp_path, dtype):
    data = _data("uint16").astype(dtype)
    path = tmp_path / "scan.raw"
    data.tofile(path)
    ds = ctx.load("raw", **_kwargs(path, data), num_partitions=3)
    assert ds.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(ds.array.compute(), data)
    res = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
    ref = data.astype(np.float64)
    np.testing.assert_allclose(res[0]["intensity"].data, ref.sum(axis=(0, 1)), rtol=1e-6)
    np.testing.assert_allclose(res[1]["intensity"].data, ref.sum(axis=(2, 3)), rtol=1e-6)


def test_libertem_call_style(ctx, raw_file):
    """``ctx.load("raw", path, dtype, ...)`` as in LiberTEM, with the old keywords."""
    path, data = raw_file
    ds = ctx.load("raw", str(path), "float32", scan_size=(6, 7), detector_size=(8, 9))
    np.testing.assert_array_equal(ds.array.compute(), data)
    with pytest.warns(DataflowWarning) as record:
        ds = ctx.load(
            "raw",
            path=path,
            dtype="float32",
            nav_shape=(6, 7),
            sig_shape=(8, 9),
            enable_direct=True,
            io_backend=object(),
            tileshape=(1, 8, 9),
        )
    assert sorted(str(w.message).split("=")[0] for w in record) == ["enable_direct", "io_backend"]
    assert ds.tile_depth == 1
    np.testing.assert_array_equal(ds.array.compute(), data)


@pytest.mark.parametrize("sync_offset", [0, 5, -4])
@pytest.mark.parametrize("nav_shape", [(6, 7), (42,), (3, 7), (9, 5)])
@pytest.mark.parametrize("num_partitions", [1, 4])
def test_nav_shape_and_sync_offset(ctx, raw_file, nav_shape, sync_offset, num_partitions):
    path, data = raw_file
    ds = ctx.load(
        "raw",
        path=path,
        dtype="float32",
        nav_shape=nav_shape,
        sig_shape=(8, 9),
        sync_offset=sync_offset,
        num_partitions=num_partitions,
    )
    expected = _expected(data.reshape(42, 8, 9), nav_shape, sync_offset)
    assert ds.shape == (*nav_shape, 8, 9)
    assert ds.meta.image_count == 42
    assert ds.meta.sync_offset == sync_offset
    np.testing.assert_array_equal(ds.array.compute(), expected)
    roi = np.zeros(nav_shape, bool)
    roi.reshape(-1)[2::3] = True
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF(), roi=roi)
    np.testing.assert_array_equal(res["frames"].raw_data, expected[roi])


def test_sig_shape_reinterprets_frames(ctx, raw_file):
    path, data = raw_file
    ds = ctx.load("raw", path=path, dtype="float32", nav_shape=(42,), sig_shape=(72,))
    np.testing.assert_array_equal(ds.array.compute(), data.reshape(42, 72))
    ds = ctx.load("raw", path=path, dtype="float32", nav_shape=(84,), sig_shape=(4, 9))
    np.testing.assert_array_equal(ds.array.compute(), data.reshape(84, 4, 9))
    assert ds.meta.image_count == 84


@pytest.mark.parametrize("sync_offset", [0, 3, -2])
def test_crop_detector(ctx, raw_file, sync_offset):
    """detector_size_raw frames are stored; crop_detector_to keeps their top-left part."""
    path, data = raw_file
    ds = ctx.load(
        "raw",
        path=path,
        dtype="float32",
        scan_size=(6, 7),
        detector_size_raw=(8, 9),
        crop_detector_to=(6, 7),
        sync_offset=sync_offset,
        num_partitions=3,
    )
    assert ds.shape == (6, 7, 6, 7)
    expected = _expected(data.reshape(42, 8, 9)[:, :6, :7], (6, 7), sync_offset)
    np.testing.assert_array_equal(ds.array.compute(), expected)
    roi = np.zeros((6, 7), bool)
    roi[1, 2:5] = roi[4, 6] = True
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF(), roi=roi)
    np.testing.assert_array_equal(res["frames"].raw_data, expected[roi])
    block = ds.partition_array.blocks[1].compute()
    assert block.flags.c_contiguous


def test_crop_to_the_same_shape_is_no_crop(ctx, raw_file):
    path, data = raw_file
    ds = ctx.load(
        "raw",
        path=path,
        dtype="float32",
        nav_shape=(6, 7),
        detector_size_raw=(8, 9),
        crop_detector_to=(8, 9),
    )
    np.testing.assert_array_equal(ds.array.compute(), data)


# reading only what is needed ---------------------------------------------------------------


@pytest.fixture
def reads(monkeypatch):
    """Record ``(byte position, items)`` of every np.fromfile call."""
    calls = []
    real = np.fromfile

    def counting(file, dtype=float, count=-1, **kwargs):
        pos = file.tell() if hasattr(file, "tell") else kwargs.get("offset", 0)
        out = real(file, dtype=dtype, count=count, **kwargs)
        calls.append((pos, out.size))
        return out

    monkeypatch.setattr(np, "fromfile", counting)
    return calls


@pytest.mark.parametrize("sync_offset", [0, 4, -6])
def test_roi_reads_only_selected_frames(ctx, raw_file, reads, sync_offset):
    path, data = raw_file
    ds = ctx.load(
        "raw", **_kwargs(path, data), sync_offset=sync_offset, num_partitions=2, min_partitions=1
    )
    roi = np.zeros((6, 7), bool)
    roi[0, 0] = roi[2, 3:6] = roi[5, 6] = True
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF(), roi=roi)
    expected = _expected(data.reshape(42, 8, 9), (6, 7), sync_offset)
    np.testing.assert_array_equal(res["frames"].raw_data, expected[roi])
    # a run maps the file and hands the UDF views of the selected frames: nothing is
    # read into memory, and only their pages are touched
    assert reads == []
    # a read with a mask (what ds.reader does off a run) reads only selected frames
    flat = roi.reshape(-1)
    for part in ds.partitions:
        got = ds.reader(part.start, part.stop, flat[part.start : part.stop])
        sel = flat[part.start : part.stop]
        np.testing.assert_array_equal(
            got[sel], expected.reshape(42, 8, 9)[part.start : part.stop][sel]
        )
    frame_bytes = 8 * 9 * 4
    read = set()
    for pos, count in reads:
        assert pos % frame_bytes == 0
        read.update(range(pos // frame_bytes, pos // frame_bytes + count // 72))
    wanted = {i + sync_offset for i in np.flatnonzero(roi) if 0 <= i + sync_offset < 42}
    assert read == wanted
    assert len(reads) <= 3  # one read per contiguous run of selected frames in the file


def test_open_reads_no_data(raw_file, reads):
    path, data = raw_file
    RawAdapter.open(**_kwargs(path, data), num_partitions=3)
    assert reads == []


def test_graph_and_reader_pickle_small(raw_file):
    path, data = raw_file
    ds = RawAdapter.open(**_kwargs(path, data), num_partitions=4)
    assert len(cloudpickle.dumps(ds.partition_array.__dask_graph__())) < 10_000
    reader = pickle.loads(pickle.dumps(ds.reader))
    np.testing.assert_array_equal(reader(3, 9), data.reshape(42, 8, 9)[3:9])
    assert dask.base.tokenize(reader) == dask.base.tokenize(ds.reader)


def test_token_follows_layout(raw_file):
    path, data = raw_file
    kw = _kwargs(path, data)
    a, b = RawAdapter.open(**kw), RawAdapter.open(**kw)
    assert dask.base.tokenize(a) == dask.base.tokenize(b)
    others = [
        RawAdapter.open(**{**kw, "sync_offset": 1}),
        RawAdapter.open(**{**kw, "nav_shape": (42,)}),
        RawAdapter.open(**{**kw, "dtype": "uint32"}),
        RawAdapter.open(**{**kw, "sig_shape": None, "detector_size_raw": (8, 9),
                           "crop_detector_to": (8, 8)}),
    ]  # fmt: skip
    tokens = {dask.base.tokenize(d) for d in [a, *others]}
    assert len(tokens) == 5


# bad input, found at load --------------------------------------------------------------------


def test_missing_file(tmp_path):
    missing = tmp_path / "nope" / "scan.raw"
    with pytest.raises(FileNotFoundError, match=r"nope/scan\.raw"):
        RawAdapter.open(missing, "uint16", nav_shape=(2, 2), sig_shape=(4, 4))


def test_directory(tmp_path):
    with pytest.raises(IsADirectoryError, match="directory"):
        RawAdapter.open(tmp_path, "uint16", nav_shape=(2, 2), sig_shape=(4, 4))


@pytest.mark.parametrize("extra", [-5, 7, 288 - 1])
def test_partial_frame_is_an_error(tmp_path, extra):
    data = _data()
    path = tmp_path / "cut.raw"
    raw = data.tobytes()
    path.write_bytes(raw[:extra] if extra < 0 else raw + b"\0" * extra)
    size = len(raw) + extra
    with pytest.raises(DataSetException) as info:
        RawAdapter.open(**_kwargs(path, data))
    msg = str(info.value)
    assert f"has {size} bytes" in msg
    assert "has 288 bytes" in msg  # one frame: 8 * 9 * 4
    assert f"({size // 288} whole frames and {size % 288} bytes over)" in msg


def test_file_smaller_than_a_frame(tmp_path):
    path = tmp_path / "tiny.raw"
    path.write_bytes(b"\0" * 10)
    with pytest.raises(DataSetException, match=r"has 10 bytes.*has 288 bytes"):
        RawAdapter.open(path, "float32", nav_shape=(1,), sig_shape=(8, 9))


def test_more_and_fewer_frames_than_nav_shape(ctx, raw_file):
    """As LiberTEM: the file may hold more frames than nav_shape asks for, or fewer."""
    path, data = raw_file
    small = ctx.load("raw", path=path, dtype="float32", nav_shape=(2, 7), sig_shape=(8, 9))
    np.testing.assert_array_equal(small.array.compute(), data[:2])
    big = ctx.load("raw", path=path, dtype="float32", nav_shape=(8, 7), sig_shape=(8, 9))
    got = big.array.compute()
    np.testing.assert_array_equal(got[:6], data)
    assert not got[6:].any()


@pytest.mark.parametrize("dtype", ["floaty32", "u3", 3.5, "object", "U4", "V0", [1]])
def test_bad_dtype(raw_file, dtype):
    path, _ = raw_file
    with pytest.raises(TypeError, match="dtype is"):
        RawAdapter.open(path, dtype, nav_shape=(6, 7), sig_shape=(8, 9))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"dtype": None}, TypeError, "needs dtype="),
        ({"nav_shape": None}, TypeError, "needs nav_shape="),
        ({"sig_shape": None}, TypeError, "needs sig_shape="),
        ({"path": None}, TypeError, "needs path="),
        ({"path": 42}, TypeError, "path is a int"),
        ({"scan_size": (6, 7)}, ValueError, "scan_size is the older name of nav_shape"),
        ({"detector_size": (8, 9)}, ValueError, "detector_size is the older name"),
        ({"nav_shape": (6, 0)}, ValueError, r"nav_shape is \(6, 0\)"),
        ({"nav_shape": 42}, TypeError, "nav_shape is 42"),
        ({"sig_shape": (8.5, 9)}, TypeError, "sig_shape is"),
        (
            {"detector_size_raw": (8, 9), "crop_detector_to": (6, 7)},
            ValueError,
            "both give the frame shape",
        ),
        ({"sig_shape": None, "crop_detector_to": (6, 7)}, TypeError, "given alone"),
        ({"sig_shape": None, "detector_size_raw": (8, 9)}, TypeError, "given alone"),
        (
            {"sig_shape": None, "detector_size_raw": (8, 9), "crop_detector_to": (9, 9)},
            ValueError,
            "must fit inside detector_size_raw",
        ),
        (
            {"sig_shape": None, "detector_size_raw": (8, 9), "crop_detector_to": (8,)},
            ValueError,
            "must fit inside",
        ),
        ({"sync_offset": 42}, DataSetException, r"sync_offset is 42; .* 42 frames"),
        ({"sync_offset": -42}, DataSetException, "sync_offset is -42"),
        ({"sync_offset": "1"}, TypeError, "sync_offset"),
        ({"num_partitions": 43}, ValueError, "num_partitions is 43"),
    ],
)
def test_bad_arguments(raw_file, reads, kwargs, error, match):
    path, data = raw_file
    with pytest.raises(error, match=match):
        RawAdapter.open(**{**_kwargs(path, data), **kwargs})
    assert reads == []


def test_errors_come_before_any_udf_runs(ctx, tmp_path):
    path = tmp_path / "cut.raw"
    path.write_bytes(b"\0" * 1000)
    with pytest.raises(DataSetException, match="1000 bytes"):
        ctx.load("raw", path=path, dtype="float32", nav_shape=(3,), sig_shape=(8, 9))


def test_auto_refuses_raw(ctx, raw_file):
    path, _ = raw_file
    assert not RawAdapter.guess_can_open(path)
    with pytest.raises(AdapterNotFoundError, match=r"ctx\.load\('raw', path=\.\.\., dtype="):
        ctx.load("auto", path=path)


def test_processes(processes_ctx, raw_file):
    """The reader travels to worker processes by pickle and opens the file there."""
    path, data = raw_file
    ds = processes_ctx.load("raw", **_kwargs(path, data), sync_offset=2, num_partitions=3)
    roi = np.zeros((6, 7), bool)
    roi[1:3, 2] = True
    res = processes_ctx.run_udf(dataset=ds, udf=[SumSigUDF(), FrameCopyUDF()], roi=roi)
    expected = _expected(data.reshape(42, 8, 9), (6, 7), 2)
    np.testing.assert_array_equal(res[1]["frames"].raw_data, expected[roi])
