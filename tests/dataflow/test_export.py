"""export_dataset: .npy and zarr round trips, partition-aligned zarr chunks, overwrite rules."""

from __future__ import annotations

import numpy as np
import pytest

from dataflow.export import _nav_chunks, _nav_regions, export_dataset


@pytest.fixture
def zarr():
    return pytest.importorskip("zarr")


def _partition_bounds(ds):
    return [p.start for p in ds.partitions] + [ds.partitions[-1].stop]


@pytest.mark.parametrize("dtype", ["float32", "uint16", "int32"])
@pytest.mark.parametrize("num_partitions", [1, 3, 7])
def test_npy_round_trip(ctx, data_factory, tmp_path, dtype, num_partitions):
    data = data_factory((6, 7, 5, 4), dtype)
    ds = ctx.load("memory", data=data, num_partitions=num_partitions)
    assert export_dataset(ctx, ds, path=tmp_path / "out.npy") is None
    written = np.load(tmp_path / "out.npy")
    assert written.dtype == data.dtype
    np.testing.assert_array_equal(written, data)


@pytest.mark.parametrize("dtype", ["float32", "uint16", "int32"])
@pytest.mark.parametrize("num_partitions", [1, 3, 7])
def test_zarr_round_trip(ctx, zarr, data_factory, tmp_path, dtype, num_partitions):
    data = data_factory((6, 7, 5, 4), dtype)
    ds = ctx.load("memory", data=data, num_partitions=num_partitions)
    export_dataset(ctx, ds, path=tmp_path / "out.zarr")
    z = zarr.open_array(tmp_path / "out.zarr", mode="r")
    assert z.dtype == data.dtype
    np.testing.assert_array_equal(z[:], data)


@pytest.mark.parametrize(
    ("nav_shape", "num_partitions"),
    [((16, 16), 7), ((16, 16), 2), ((3, 4), 7), ((2, 3, 4), 5), ((24,), 5), ((5, 7), 3)],
)
def test_zarr_chunks_are_aligned_to_partitions(ctx, zarr, rng, tmp_path, nav_shape, num_partitions):
    data = rng.random((*nav_shape, 3, 2), dtype=np.float32)
    ds = ctx.load("memory", data=data, num_partitions=num_partitions)
    export_dataset(ctx, ds, path=tmp_path / "out.zarr")
    z = zarr.open_array(tmp_path / "out.zarr", mode="r")
    np.testing.assert_array_equal(z[:], data)
    chunks = tuple(z.chunks)
    assert chunks[len(nav_shape) :] == (3, 2)  # whole frames
    # a chunk is a run of frames in flattened order; runs never cross a partition boundary
    run = int(np.prod(chunks[: len(nav_shape)]))
    assert all(b % run == 0 for b in _partition_bounds(ds))
    starts = np.ravel_multi_index(
        np.meshgrid(
            *(np.arange(0, n, c) for n, c in zip(nav_shape, chunks, strict=False)), indexing="ij"
        ),
        nav_shape,
    )
    assert sorted(starts.ravel()) == list(range(0, int(np.prod(nav_shape)), run))


def test_export_of_a_dataset_larger_than_a_partition(ctx, zarr, rng, tmp_path):
    data = rng.random((12, 10, 16, 16), dtype=np.float32)  # 1 KiB frames
    ds = ctx.load("memory", data=data, partition_bytes=30 * 1024)
    assert ds.get_num_partitions() >= 4
    export_dataset(ctx, ds, path=tmp_path / "big.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "big.npy"), data)
    export_dataset(ctx, ds, path=tmp_path / "big.zarr")
    z = zarr.open_array(tmp_path / "big.zarr", mode="r")
    np.testing.assert_array_equal(z[:], data)
    assert z.nchunks > 1


def test_zarr_export_reads_back_with_dims(ctx, zarr, data_factory, tmp_path):
    data = data_factory((4, 6, 5, 3), "uint16")
    ds = ctx.load("memory", data=data, num_partitions=3, dims=("y", "x", "ky", "kx"))
    export_dataset(ctx, ds, path=tmp_path / "scan.zarr")
    back = ctx.load("zarr", path=tmp_path / "scan.zarr")
    assert back.dims == ("y", "x", "ky", "kx")
    np.testing.assert_array_equal(back.array.compute(), data)


def test_export_bakes_in_reshaping_and_sync_offset(ctx, zarr, data_factory, tmp_path):
    data = data_factory((4, 6, 3, 4), "int32")
    ds = ctx.load("memory", data=data, nav_shape=(5, 5), sync_offset=-2, num_partitions=3)
    expected = ds.array.compute()
    export_dataset(ctx, ds, path=tmp_path / "out.npy")
    export_dataset(ctx, ds, path=tmp_path / "out.zarr")
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "out.zarr", mode="r")[:], expected)


@pytest.mark.parametrize(
    ("name", "fmt"), [("out.npy", None), ("out.zarr", None), ("out.bin", "npy"), ("out", "zarr")]
)
def test_existing_paths_need_overwrite(ctx, zarr, data_factory, tmp_path, name, fmt):
    first = data_factory((3, 4, 2, 2), "float32")
    second = first + 1
    path = tmp_path / name
    export_dataset(ctx, ctx.load("memory", data=first), path=path, format=fmt)
    with pytest.raises(FileExistsError, match=str(path)):
        export_dataset(ctx, ctx.load("memory", data=second), path=path, format=fmt)
    export_dataset(ctx, ctx.load("memory", data=second), path=path, format=fmt, overwrite=True)
    if (fmt or path.suffix.lstrip(".")) == "npy":
        written = np.lib.format.open_memmap(path, mode="r")[:]
    else:
        written = zarr.open_array(path, mode="r")[:]
    np.testing.assert_array_equal(written, second)


def test_overwrite_replaces_stores_and_files_only(ctx, zarr, data_factory, tmp_path):
    ds = ctx.load("memory", data=data_factory((3, 4, 2, 2), "float32"))
    folder = tmp_path / "notes.zarr"
    folder.mkdir()
    (folder / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="holds no zarr metadata"):
        export_dataset(ctx, ds, path=folder, overwrite=True)
    assert (folder / "keep.txt").read_text() == "precious"
    (tmp_path / "dir.npy").mkdir()
    with pytest.raises(IsADirectoryError, match="is a directory"):
        export_dataset(ctx, ds, path=tmp_path / "dir.npy", overwrite=True)
    empty = tmp_path / "empty.zarr"
    empty.mkdir()
    export_dataset(ctx, ds, path=empty, overwrite=True)
    assert zarr.open_array(empty, mode="r").shape == (3, 4, 2, 2)
    a_file = tmp_path / "file.zarr"
    a_file.write_text("not a store")
    export_dataset(ctx, ds, path=a_file, overwrite=True)
    assert zarr.open_array(a_file, mode="r").shape == (3, 4, 2, 2)


def test_format_errors(ctx, data_factory, tmp_path):
    ds = ctx.load("memory", data=data_factory((3, 4, 2, 2), "float32"))
    with pytest.raises(ValueError, match=r"suffix '\.h5'.*format='npy' or format='zarr'"):
        export_dataset(ctx, ds, path=tmp_path / "out.h5")
    with pytest.raises(ValueError, match=r"format is 'hdf5'"):
        export_dataset(ctx, ds, path=tmp_path / "out.npy", format="hdf5")
    with pytest.raises(TypeError, match=r"path is a int"):
        export_dataset(ctx, ds, path=3)
    assert list(tmp_path.iterdir()) == []


def test_export_with_progress_on_threads(threads_ctx, zarr, data_factory, tmp_path):
    data = data_factory((8, 8, 5, 4), "uint16")
    ds = threads_ctx.load("memory", data=data, num_partitions=7)
    export_dataset(threads_ctx, ds, path=tmp_path / "out.npy", progress=True)
    export_dataset(threads_ctx, ds, path=tmp_path / "out.zarr", progress=True)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), data)
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "out.zarr", mode="r")[:], data)


@pytest.mark.parametrize("nav_shape", [(24,), (4, 6), (2, 3, 4)])
def test_nav_regions_cover_every_range_in_order(nav_shape):
    n = int(np.prod(nav_shape))
    index = np.arange(n).reshape(nav_shape)
    for start in range(n + 1):
        for stop in range(start, n + 1):
            regions = _nav_regions(start, stop, nav_shape)
            got = np.concatenate([index[r].ravel() for r in regions] or [np.array([], int)])
            np.testing.assert_array_equal(got, np.arange(start, stop))


def test_nav_chunks_for_one_partition_is_the_whole_scan():
    from dataflow.sources import Partition

    assert _nav_chunks((4, 6), [Partition(0, 0, 24)]) == (4, 6)
    assert _nav_chunks((4, 6), [Partition(0, 0, 9), Partition(1, 9, 24)]) == (1, 3)


@pytest.mark.slow
def test_export_in_worker_processes(processes_ctx, zarr, data_factory, tmp_path):
    # the workers open the file and the store by path: nothing open is pickled
    data = data_factory((6, 8, 5, 4), "int32")
    ds = processes_ctx.load("memory", data=data, num_partitions=4)
    export_dataset(processes_ctx, ds, path=tmp_path / "out.npy")
    export_dataset(processes_ctx, ds, path=tmp_path / "out.zarr")
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), data)
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "out.zarr", mode="r")[:], data)
