"""DataSets: partitioning, the in-memory and dask sources, and their errors."""

from __future__ import annotations

import itertools

import dask.array as da
import numpy as np
import pytest

from dataflow.errors import DataflowWarning, DataSetException
from dataflow.sources import DEFAULT_PARTITION_BYTES, mask_runs, plan_partitions
from dataflow.udf.sum import SumUDF
from dataflow.udf.sumsigudf import SumSigUDF


def _sizes(parts):
    return [p.n_frames for p in parts]


def test_partitions_are_contiguous_and_cover_all_frames():
    for n in (1, 2, 3, 7, 64, 100):
        parts = plan_partitions(1000, 4096, row_length=25, num_partitions=n)
        assert len(parts) == n
        assert parts[0].start == 0
        assert parts[-1].stop == 1000
        for a, b in itertools.pairwise(parts):
            assert a.stop == b.start
            assert a.n_frames > 0


def test_partitions_prefer_whole_rows_and_chunk_boundaries():
    parts = plan_partitions(256, 4096, row_length=16, num_partitions=7)
    assert all(p.start % 16 == 0 for p in parts)
    chunks = list(range(0, 257, 32))
    parts = plan_partitions(256, 4096, row_length=16, num_partitions=4, chunk_boundaries=chunks)
    assert all(p.start in chunks for p in parts)


def test_partitions_sized_by_bytes_and_at_least_one_per_worker():
    frame = 256 * 256 * 4
    parts = plan_partitions(4096, frame, row_length=64)  # 1 GiB
    assert len(parts) == 1 * 2**30 // DEFAULT_PARTITION_BYTES
    assert all(p.n_frames % 64 == 0 for p in parts)
    assert len(plan_partitions(16, 1024, row_length=4, min_partitions=4)) == 4


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (0, ValueError, "num_partitions is 0; expected an integer >= 1"),
        (-2, ValueError, "num_partitions is -2"),
        (2.5, TypeError, "num_partitions is 2.5"),
        (300, ValueError, "num_partitions is 300; the dataset has only 256 frames"),
    ],
)
def test_num_partitions_errors(ctx, value, error, match):
    with pytest.raises(error, match=match):
        ctx.load("memory", data=np.zeros((16, 16, 2, 2)), num_partitions=value)


@pytest.mark.parametrize(
    ("sig_dims", "error", "match"),
    [
        (0, ValueError, r"sig_dims is 0; the data has shape \(2, 2, 2, 2\) \(4 dimensions\)"),
        (4, ValueError, "sig_dims is 4"),
        ("2", TypeError, "sig_dims is '2'"),
    ],
)
def test_sig_dims_errors(ctx, sig_dims, error, match):
    with pytest.raises(error, match=match):
        ctx.load("memory", data=np.zeros((2, 2, 2, 2)), sig_dims=sig_dims)


def test_memory_source_errors(ctx):
    with pytest.raises(TypeError, match="needs data="):
        ctx.load("memory")
    with pytest.raises(DataSetException, match="expected at least 2 dimensions"):
        ctx.load("memory", data=np.zeros(5))
    with pytest.raises(TypeError, match=r"use ctx.load\(.dask."):
        ctx.load("memory", data=da.zeros((2, 2, 2, 2)))
    with pytest.raises(DataSetException, match="dims has 2 names"):
        ctx.load("memory", data=np.zeros((2, 2, 2, 2)), dims=("a", "b"))


def test_non_contiguous_data_is_copied_with_a_warning(ctx):
    data = np.zeros((4, 4, 6, 6), "float32")[:, :, ::2]
    with pytest.warns(DataflowWarning, match="not C-contiguous"):
        ds = ctx.load("memory", data=data)
    assert ds.shape == (4, 4, 3, 6)


def test_dataset_public_attributes(ctx):
    data = np.arange(4 * 6 * 2 * 2, dtype="uint16").reshape(4, 6, 2, 2)
    ds = ctx.load("memory", data=data, num_partitions=3)
    assert ds.shape == (4, 6, 2, 2)
    assert ds.shape.nav == (4, 6)
    assert ds.shape.sig == (2, 2)
    assert ds.dtype == np.uint16
    assert ds.sig_dims == 2
    assert ds.nav_dims == ("scan_y", "scan_x")
    assert ds.sig_dim_names == ("det_y", "det_x")
    assert ds.partition_array.chunks[0] == tuple(p.n_frames for p in ds.partitions)
    np.testing.assert_array_equal(ds.array.compute(), data)
    assert "partitions=3" in repr(ds)


@pytest.mark.parametrize("chunks", [(2, 6, 2, 2), (1, 1, 2, 2), (4, 3, 1, 2), (-1, -1, -1, -1)])
def test_dask_source_matches_numpy(ctx, rng, chunks):
    data = rng.random((4, 6, 2, 2), dtype=np.float32)
    arr = da.from_array(data, chunks=chunks)
    ds = ctx.load("dask", arr, sig_dims=2)
    assert ds.array is arr
    a, b = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
    np.testing.assert_allclose(a["intensity"].data, data.sum(axis=(0, 1)), rtol=1e-5)
    np.testing.assert_allclose(b["intensity"].data, data.sum(axis=(2, 3)), rtol=1e-5)


def test_dask_source_partitions_follow_chunks(ctx):
    arr = da.zeros((8, 8, 4, 4), chunks=(2, 8, 4, 4))
    ds = ctx.load("dask", arr, sig_dims=2, num_partitions=2)
    assert [p.start for p in ds.partitions] == [0, 32]
    ds = ctx.load("dask", arr, sig_dims=2, num_partitions=4)
    assert all(p.start % 16 == 0 for p in ds.partitions)


def test_dask_source_errors(ctx):
    with pytest.raises(TypeError, match=r"needs a dask\.array\.Array; got ndarray"):
        ctx.load("dask", np.zeros((2, 2, 2, 2)), sig_dims=2)
    with pytest.raises(ValueError, match="sig_dims is 5"):
        ctx.load("dask", da.zeros((2, 2, 2, 2)), sig_dims=5)


def test_mask_runs():
    assert mask_runs(None, 5) == [(0, 5)]
    assert mask_runs(np.array([0, 1, 1, 0, 1], bool), 5) == [(1, 3), (4, 5)]
    assert mask_runs(np.ones(3, bool), 3) == [(0, 3)]
    assert mask_runs(np.zeros(3, bool), 3) == []
    assert mask_runs(None, 0) == []
