"""Tests of the ``hdf5`` adapter (``adapters/hdf5.py``)."""

from __future__ import annotations

import itertools
import pickle
from typing import ClassVar

import cloudpickle
import dask
import numpy as np
import pytest

import dataflow
from dataflow.adapters.hdf5 import H5FrameReader, HDF5Adapter
from dataflow.errors import DataflowWarning, DataSetException
from dataflow.testing import AdapterTests, FrameCopyUDF
from dataflow.udf.sum import SumUDF
from dataflow.udf.sumsigudf import SumSigUDF

SHAPE = (6, 7, 8, 9)


@pytest.fixture(scope="module")
def h5py():
    return pytest.importorskip("h5py")


@pytest.fixture(scope="module")
def ctx():
    with dataflow.Context.make_with("inline") as c:
        yield c


def _data(dtype="float32", shape=SHAPE, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.random(shape).astype(dtype)
    return rng.integers(0, 1000, size=shape).astype(dtype)


def _write(h5py, path, data, ds_path="entry/data", **kwargs):
    with h5py.File(path, "a") as f:
        f.create_dataset(ds_path, data=data, **kwargs)
    return path


@pytest.fixture
def h5_file(h5py, tmp_path):
    data = _data()
    return _write(h5py, tmp_path / "scan.h5", data, chunks=(1, 7, 8, 9)), data


def _expected(frames, nav_shape, offset):
    """Dataset frames: stored frame ``i + offset`` at ``i``, zeros outside the file."""
    n = int(np.prod(nav_shape))
    out = np.zeros((n, *frames.shape[1:]), frames.dtype)
    for i in range(n):
        if 0 <= i + offset < len(frames):
            out[i] = frames[i + offset]
    return out.reshape((*nav_shape, *frames.shape[1:]))


# the conformance suite, for each storage layout ----------------------------------------------


class TestHDF5Contiguous(AdapterTests):
    filetype = "hdf5"
    dtypes: ClassVar[list[str]] = ["uint16", "float32", ">f8"]
    storage: ClassVar[dict] = {}

    def write(self, path, data):
        h5py = pytest.importorskip("h5py")
        chunks = self.storage.get("chunks")
        if callable(chunks):
            chunks = chunks(data.shape)
        _write(h5py, path / "data.h5", data, "scan/data", **{**self.storage, "chunks": chunks})
        return {"path": path / "data.h5", "ds_path": "scan/data"}


class TestHDF5ChunkedGzip(TestHDF5Contiguous):
    # one chunk per scan row, frames split in the signal axes
    storage: ClassVar[dict] = {
        "chunks": lambda s: (1, *s[1:-2], (s[-2] + 1) // 2, s[-1]),
        "compression": "gzip",
        "shuffle": True,
    }


class TestHDF5ChunkedLzfAcrossRows(TestHDF5Contiguous):
    # chunks of three frames that do not follow the scan rows
    storage: ClassVar[dict] = {
        "chunks": lambda s: (*(1,) * (len(s) - 3), 3, *s[-2:]),
        "compression": "lzf",
    }


# partitions follow the chunks --------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunks", "num_partitions", "bounds"),
    [
        ((2, 7, 8, 9), 3, [0, 14, 28, 42]),  # two rows per chunk
        ((1, 7, 4, 9), 3, [0, 14, 28, 42]),  # rows, split frames
        ((1, 7, 4, 9), 6, [0, 7, 14, 21, 28, 35, 42]),
        ((3, 7, 8, 9), 2, [0, 21, 42]),
        ((1, 2, 8, 9), 2, [0, 21, 42]),  # row boundaries are chunk boundaries too
    ],
)
def test_partitions_on_chunk_boundaries(ctx, h5py, tmp_path, chunks, num_partitions, bounds):
    data = _data()
    path = _write(h5py, tmp_path / "c.h5", data, chunks=chunks, compression="gzip")
    ds = ctx.load("hdf5", path=path, num_partitions=num_partitions)
    assert [p.start for p in ds.partitions] + [ds.partitions[-1].stop] == bounds
    np.testing.assert_array_equal(ds.array.compute(), data)


def test_partitions_shift_with_sync_offset(h5py, tmp_path):
    data = _data()
    path = _write(h5py, tmp_path / "c.h5", data, chunks=(2, 7, 8, 9))
    ds = HDF5Adapter.open(path, nav_shape=(42,), sync_offset=4, num_partitions=3)
    # stored chunks start at frames 0, 14, 28: dataset frames 10 and 24
    assert [p.start for p in ds.partitions] == [0, 10, 24]


def test_partition_bytes_and_libertem_names(h5py, tmp_path):
    data = _data()
    path = _write(h5py, tmp_path / "c.h5", data, chunks=(1, 7, 8, 9))
    row = 7 * 8 * 9 * 4
    assert HDF5Adapter.open(path).get_num_partitions() == 1
    assert HDF5Adapter.open(path, partition_bytes=2 * row).get_num_partitions() == 3
    assert HDF5Adapter.open(path, target_size=3 * row).get_num_partitions() == 2
    assert HDF5Adapter.open(path, min_num_partitions=3).get_num_partitions() == 3
    assert HDF5Adapter.open(path, min_num_partitions=2, min_partitions=6).get_num_partitions() == 6
    with pytest.warns(DataflowWarning, match="io_backend="):
        ds = HDF5Adapter.open(path, tileshape=(1, 8, 9), io_backend=object())
    assert ds.tile_depth == 1
    np.testing.assert_array_equal(ds.array.compute(), data)


@pytest.mark.parametrize("num_partitions", [1, 3, 5])
def test_blocks(h5_file, num_partitions):
    path, data = h5_file
    ds = HDF5Adapter.open(path, num_partitions=num_partitions)
    flat = data.reshape(42, 8, 9)
    for p in ds.partitions:
        np.testing.assert_array_equal(ds.partition_array.blocks[p.index].compute(), flat[p.slice])
    assert all(a.stop == b.start for a, b in itertools.pairwise(ds.partitions))


# nav_shape, sig_shape, sync_offset -----------------------------------------------------------


@pytest.mark.parametrize("sync_offset", [0, 5, -4])
@pytest.mark.parametrize(
    ("nav_shape", "sig_shape"),
    [(None, None), ((42,), None), ((3, 7), None), ((9, 5), (72,)), (None, (9, 8))],
)
def test_layout_keywords(ctx, h5_file, nav_shape, sig_shape, sync_offset):
    path, data = h5_file
    ds = ctx.load(
        "hdf5",
        path=path,
        nav_shape=nav_shape,
        sig_shape=sig_shape,
        sync_offset=sync_offset,
        num_partitions=3,
    )
    nav = nav_shape or (6, 7)
    sig = sig_shape or (8, 9)
    expected = _expected(data.reshape(42, *sig), nav, sync_offset)
    assert ds.shape == (*nav, *sig)
    assert ds.meta.image_count == 42
    np.testing.assert_array_equal(ds.array.compute(), expected)
    roi = np.zeros(nav, bool)
    roi.reshape(-1)[::4] = True
    res = ctx.run_udf(dataset=ds, udf=[FrameCopyUDF(), SumSigUDF()], roi=roi)
    np.testing.assert_array_equal(res[0]["frames"].raw_data, expected[roi])


@pytest.mark.parametrize(("sig_dims", "nav", "sig"), [(1, (6, 7, 8), (9,)), (3, (6,), (7, 8, 9))])
def test_sig_dims(ctx, h5_file, sig_dims, nav, sig):
    path, data = h5_file
    ds = ctx.load("hdf5", path=path, sig_dims=sig_dims, num_partitions=2)
    assert ds.shape.nav == nav
    assert ds.shape.sig == sig
    res = ctx.run_udf(dataset=ds, udf=SumUDF())
    np.testing.assert_allclose(res["intensity"].data, data.reshape(*nav, *sig).sum(axis=tuple(range(len(nav)))), rtol=1e-5)  # fmt: skip


# ds_path -------------------------------------------------------------------------------------


def test_ds_path_guessed_when_one_dataset_fits(ctx, h5py, tmp_path):
    data = _data("uint16")
    path = tmp_path / "one.h5"
    _write(h5py, path, data, "entry/instrument/detector/data", chunks=True)
    _write(h5py, path, np.ones((8, 9)), "entry/mask")
    _write(h5py, path, np.arange(6), "entry/x")
    ds = ctx.load("hdf5", path=path)
    np.testing.assert_array_equal(ds.array.compute(), data)
    assert ds.reader.ds_path == "entry/instrument/detector/data"


@pytest.mark.parametrize("second", [(6, 7, 8, 9), (3, 8, 9)])
def test_ds_path_needed_when_several_fit(h5py, tmp_path, second):
    path = tmp_path / "two.h5"
    _write(h5py, path, _data(), "a/data")
    _write(h5py, path, np.zeros(second), "b/dark")
    with pytest.raises(DataSetException) as info:
        HDF5Adapter.open(path)
    msg = str(info.value)
    assert "2 datasets of 3 or more dimensions" in msg
    assert f"'a/data' (6, 7, 8, 9) float32, 'b/dark' {second} float64" in msg
    assert "pass ds_path=" in msg
    assert HDF5Adapter.open(path, ds_path="/b/dark").shape == second


def test_ds_path_needed_when_none_fits(h5py, tmp_path):
    path = tmp_path / "flat.h5"
    _write(h5py, path, np.zeros((8, 9)), "image")
    with pytest.raises(DataSetException, match=r"no dataset of 3 or more .* 'image' \(8, 9\)"):
        HDF5Adapter.open(path)
    empty = tmp_path / "empty.h5"
    h5py.File(empty, "w").close()
    with pytest.raises(DataSetException, match="Datasets in the file: none"):
        HDF5Adapter.open(empty)


@pytest.mark.parametrize(
    ("ds_path", "error", "match"),
    [
        ("entry/nope", DataSetException, r"ds_path is 'entry/nope'; .* has no such member"),
        ("entry", DataSetException, "a group there, not a dataset"),
        (3, TypeError, "ds_path is a int"),
    ],
)
def test_bad_ds_path(h5_file, ds_path, error, match):
    path, _ = h5_file
    with pytest.raises(error, match=match) as info:
        HDF5Adapter.open(path, ds_path=ds_path)
    if error is DataSetException:
        assert "'entry/data' (6, 7, 8, 9) float32" in str(info.value)


# reading only what is needed -----------------------------------------------------------------


@pytest.fixture
def h5_reads(h5py, monkeypatch):
    """Record the source selection of every ``Dataset.read_direct`` and ``[...]`` read."""
    calls = []
    read_direct = h5py.Dataset.read_direct
    getitem = h5py.Dataset.__getitem__

    def counting_read_direct(self, dest, source_sel=None, dest_sel=None):
        calls.append(source_sel)
        return read_direct(self, dest, source_sel, dest_sel)

    def counting_getitem(self, args, *rest, **kwargs):
        calls.append(args)
        return getitem(self, args, *rest, **kwargs)

    monkeypatch.setattr(h5py.Dataset, "read_direct", counting_read_direct)
    monkeypatch.setattr(h5py.Dataset, "__getitem__", counting_getitem)
    return calls


def _frames_of(selections, nav_shape):
    """Flat frame indices covered by navigation selections (tuples of slices)."""
    frames = []
    for sel in selections:
        grids = np.meshgrid(
            *(np.arange(s.start, s.stop) for s in sel[: len(nav_shape)]), indexing="ij"
        )
        frames.extend(np.ravel_multi_index([g.ravel() for g in grids], nav_shape).tolist())
    return frames


@pytest.mark.parametrize("sync_offset", [0, 3, -8])
def test_roi_reads_only_selected_frames(ctx, h5_file, h5_reads, sync_offset):
    path, data = h5_file
    ds = ctx.load("hdf5", path=path, sync_offset=sync_offset, num_partitions=3)
    roi = np.zeros((6, 7), bool)
    roi[0, 5:] = roi[1, 0] = roi[3, 2:5] = roi[5, 6] = True
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF(), roi=roi)
    expected = _expected(data.reshape(42, 8, 9), (6, 7), sync_offset)
    np.testing.assert_array_equal(res["frames"].raw_data, expected[roi])
    read = _frames_of(h5_reads, (6, 7))
    wanted = sorted(i + sync_offset for i in np.flatnonzero(roi) if 0 <= i + sync_offset < 42)
    assert sorted(read) == wanted  # each selected frame once, nothing else


def test_full_partitions_read_whole_rows(h5_file, h5_reads):
    path, data = h5_file
    ds = HDF5Adapter.open(path, num_partitions=3)
    np.testing.assert_array_equal(ds.partition_array.compute(), data.reshape(42, 8, 9))
    assert len(h5_reads) == 3  # one selection of two whole rows per partition
    assert sorted(_frames_of(h5_reads, (6, 7))) == list(range(42))


def test_open_reads_no_data(h5_file, h5_reads):
    path, _ = h5_file
    HDF5Adapter.open(path, num_partitions=3)
    HDF5Adapter.open(path, ds_path=None)
    assert h5_reads == []


def test_reader_opens_the_file_per_call(h5py, h5_file, monkeypatch):
    path, data = h5_file
    reader = HDF5Adapter.open(path).reader
    assert isinstance(reader, H5FrameReader)
    payload = pickle.dumps(reader)
    assert len(payload) < 1000
    again = pickle.loads(payload)
    assert dask.base.tokenize(again) == dask.base.tokenize(reader)
    opened = []
    real = h5py.File

    def counting(*args, **kwargs):
        f = real(*args, **kwargs)
        opened.append(f)
        return f

    monkeypatch.setattr(h5py, "File", counting)
    mask = np.zeros(10, bool)
    mask[[1, 2, 9]] = True
    out = again(20, 30, mask)
    np.testing.assert_array_equal(out[mask], data.reshape(42, 8, 9)[20:30][mask])
    assert not out[~mask].any()
    assert len(opened) == 1
    assert not opened[0].id.valid  # closed again


def test_graph_pickles_small(h5py, tmp_path):
    data = np.zeros((16, 16, 64, 64), dtype="float32")  # 4 MiB
    path = _write(h5py, tmp_path / "big.h5", data, chunks=(1, 16, 64, 64))
    ds = HDF5Adapter.open(path, num_partitions=8)
    assert len(cloudpickle.dumps(ds.partition_array.__dask_graph__())) < 10_000


def test_file_changed_after_open(h5py, h5_file):
    path, _ = h5_file
    ds = HDF5Adapter.open(path)
    with h5py.File(path, "a") as f:
        del f["entry/data"]
        f.create_dataset("entry/data", data=np.zeros((2, 8, 9), "float32"))
    with pytest.raises(OSError, match=r"when it was opened\. Load it again"):
        ds.reader(0, 2)


# bad input, found at load ----------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.h5"):
        HDF5Adapter.open(tmp_path / "nope.h5")


def test_not_hdf5(tmp_path):
    path = tmp_path / "fake.h5"
    path.write_bytes(b"not an hdf5 file" * 100)
    with pytest.raises(DataSetException, match="is not an HDF5 file"):
        HDF5Adapter.open(path)


def test_directory(tmp_path):
    with pytest.raises(IsADirectoryError):
        HDF5Adapter.open(tmp_path)


@pytest.mark.parametrize("path", [None, 3, ["a.h5"]])
def test_path_type(path):
    with pytest.raises(TypeError, match="path"):
        HDF5Adapter.open(path)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sig_dims": 4, "ds_path": "entry/data"}, ValueError, "sig_dims must be from 1 to 3"),
        ({"sig_dims": 4}, DataSetException, "no dataset of 5 or more dimensions"),
        ({"sig_dims": 0}, ValueError, "sig_dims is 0"),
        ({"sig_dims": "2"}, TypeError, "sig_dims is '2'"),
        ({"sig_shape": (8, 8)}, DataSetException, r"sig_shape is \(8, 8\), 64 elements"),
        ({"nav_shape": (0,)}, ValueError, "nav_shape"),
        ({"sync_offset": 42}, DataSetException, "sync_offset is 42"),
        ({"sync_offset": -42}, DataSetException, "sync_offset is -42"),
        ({"num_partitions": 50}, ValueError, "num_partitions is 50"),
    ],
)
def test_bad_arguments(h5_file, h5_reads, kwargs, error, match):
    path, _ = h5_file
    with pytest.raises(error, match=match):
        HDF5Adapter.open(path, **kwargs)
    assert h5_reads == []


def test_two_dimensional_dataset(h5py, tmp_path):
    path = _write(h5py, tmp_path / "img.h5", np.zeros((8, 9)), "image")
    with pytest.raises(ValueError, match="sig_dims must be from 1 to 1"):
        HDF5Adapter.open(path, ds_path="image")
    assert HDF5Adapter.open(path, ds_path="image", sig_dims=1).shape == (8, 9)


def test_non_numeric_dtype(h5py, tmp_path):
    path = tmp_path / "str.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("s", data=np.array([[[b"a", b"b"]]] * 3, dtype="S1"))
    with pytest.raises(DataSetException, match="expected a numeric dtype"):
        HDF5Adapter.open(path, ds_path="s", sig_dims=1)


def test_guess_and_auto(ctx, h5_file, tmp_path):
    path, data = h5_file
    for name in ("a.h5", "a.HDF5", "a.hdf", str(path)):
        assert HDF5Adapter.guess_can_open(name)
    for name in ("a.emd", "a.nxs", "a.hspy", "a.npy", None, 3):
        assert not HDF5Adapter.guess_can_open(name)
    ds = ctx.load("auto", path=path)
    np.testing.assert_array_equal(ds.array.compute(), data)


def test_processes(processes_ctx, h5_file):
    """The reader travels to worker processes by pickle and opens the file there."""
    path, data = h5_file
    ds = processes_ctx.load("hdf5", path=path, sync_offset=-3, num_partitions=3)
    roi = np.zeros((6, 7), bool)
    roi[2:4, 1] = True
    res = processes_ctx.run_udf(dataset=ds, udf=[SumSigUDF(), FrameCopyUDF()], roi=roi)
    expected = _expected(data.reshape(42, 8, 9), (6, 7), -3)
    np.testing.assert_array_equal(res[1]["frames"].raw_data, expected[roi])
    full = processes_ctx.run_udf(dataset=ds, udf=SumUDF())
    np.testing.assert_allclose(full["intensity"].data, expected.sum(axis=(0, 1)), rtol=1e-5)


def test_import_does_not_load_h5py(tmp_path):
    import subprocess
    import sys

    code = "import sys, dataflow.adapters.hdf5, dataflow.adapters.raw;print('h5py' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.strip() == "False"


# compressed chunks decoded by the reader -----------------------------------------------------


def _counts(shape=SHAPE, seed=0):
    return np.random.default_rng(seed).poisson(0.7, shape).astype("uint16")


@pytest.fixture
def no_h5_reads(h5py, monkeypatch):
    """Fails any read through HDF5's own filter pipeline."""

    def refuse(self, *args, **kwargs):
        raise AssertionError("read through HDF5's pipeline, not chunk by chunk")

    monkeypatch.setattr(h5py.Dataset, "read_direct", refuse)


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("chunks", [(1, 7, 8, 9), (4, 7, 8, 9), (1, 3, 8, 9)], ids=str)
def test_deflate_chunks_are_decoded_by_the_reader(
    h5py, ctx, tmp_path, no_h5_reads, shuffle, chunks
):
    """gzip (and shuffle) chunks of runs of frames: fetched raw, decompressed by the task.

    (4, 7) over 6 rows leaves a short last chunk, (1, 3) a short chunk in every row;
    rows 4 and 5 are never written (the fill value) where the chunks allow it.
    """
    data = _counts()
    path = tmp_path / "c.h5"
    with h5py.File(path, "w") as f:
        dset = f.create_dataset(
            "data",
            shape=SHAPE,
            dtype=data.dtype,
            chunks=chunks,
            compression="gzip",
            shuffle=shuffle,
            fillvalue=6,
        )
        dset[:4] = data[:4]
    expected = data.copy()
    expected[4:] = 6
    for num_partitions in (1, 3):
        ds = ctx.load("hdf5", path=path, ds_path="data", num_partitions=num_partitions)
        assert ds.reader.chunk_filters == (("shuffle", "deflate") if shuffle else ("deflate",))
        res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF())
        np.testing.assert_array_equal(res["frames"].data, expected)
        roi = np.random.default_rng(num_partitions).random(SHAPE[:2]) < 0.3
        res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF(), roi=roi)
        np.testing.assert_array_equal(res["frames"].raw_data, expected[roi])


def test_each_chunk_is_decoded_once_and_only_for_the_roi(h5py, ctx, tmp_path, monkeypatch):
    from dataflow.adapters import hdf5 as hdf5_module

    data = _counts()
    path = tmp_path / "c.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=data, chunks=(1, 7, 8, 9), compression="gzip")
    decoded = []
    real = hdf5_module.H5FrameReader._decode_chunk

    def counting(self, dset, index, out):
        decoded.append(index[0])
        return real(self, dset, index, out)

    monkeypatch.setattr(hdf5_module.H5FrameReader, "_decode_chunk", counting)
    ds = ctx.load("hdf5", path=path, ds_path="data", num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
    np.testing.assert_array_equal(res[0]["intensity"].data, data.sum(axis=(0, 1)))
    assert sorted(decoded) == [0, 1, 2, 3, 4, 5]
    decoded.clear()
    roi = np.zeros(SHAPE[:2], bool)
    roi[2, 3] = roi[5, 0] = True
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF(), roi=roi)
    np.testing.assert_array_equal(res["frames"].raw_data, data[roi])
    assert sorted(decoded) == [2, 5]


def test_other_filters_and_layouts_read_through_hdf5(h5py, ctx, tmp_path):
    data = _counts()
    path = tmp_path / "o.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("lzf", data=data, chunks=(1, 7, 8, 9), compression="lzf")
        f.create_dataset("sig", data=data, chunks=(2, 7, 4, 9), compression="gzip")
        f.create_dataset("fletcher", data=data, chunks=(1, 7, 8, 9), fletcher32=True)
        f.create_dataset("plain", data=data, chunks=(1, 7, 8, 9))
    for name in ("lzf", "sig", "fletcher", "plain"):
        ds = ctx.load("hdf5", path=path, ds_path=name, num_partitions=2)
        assert ds.reader.chunk_filters == (("deflate",) if name == "sig" else ())
        res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF())
        np.testing.assert_array_equal(res["frames"].data, data, err_msg=name)


def test_a_corrupt_deflate_chunk_names_the_chunk(h5py, ctx, tmp_path):
    data = _counts()
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        dset = f.create_dataset("data", data=data, chunks=(1, 7, 8, 9), compression="gzip")
        info = dset.id.get_chunk_info_by_coord((3, 0, 0, 0))
    raw = bytearray(path.read_bytes())
    raw[info.byte_offset : info.byte_offset + info.size] = b"\xff" * info.size
    path.write_bytes(bytes(raw))
    ds = ctx.load("hdf5", path=path, ds_path="data", num_partitions=3)
    with pytest.raises(OSError, match=r"'data' in .*bad\.h5': chunk at \(3, 0, 0, 0\) could not"):
        ctx.run_udf(dataset=ds, udf=SumUDF())
