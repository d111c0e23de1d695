"""nav_shape, sig_shape and sync_offset: reshaping the frames of a source."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from dataflow.errors import DataSetException
from dataflow.udf import UDF
from dataflow.udf.sumsigudf import SumSigUDF


class Coords(UDF):
    def get_result_buffers(self):
        return {
            "c": self.buffer(kind="nav", extra_shape=(2,), dtype="int64"),
            "s": self.buffer(kind="nav", dtype="float64"),
        }

    def process_frame(self, frame):
        self.results.c[:] = self.meta.coordinates[0]
        self.results.s[:] = frame.sum()


def _expected_frames(raw_frames, n_frames, offset):
    """Dataset frame i is source frame i + offset, zeros outside the source."""
    out = np.zeros((n_frames, *raw_frames.shape[1:]), raw_frames.dtype)
    for i in range(n_frames):
        j = i + offset
        if 0 <= j < len(raw_frames):
            out[i] = raw_frames[j]
    return out


@pytest.mark.parametrize("source", ["memory", "dask"])
@pytest.mark.parametrize("sync_offset", [0, 3, -5, 15])
@pytest.mark.parametrize("nav_shape", [None, (4, 4), (5, 6), (3, 2)])
@pytest.mark.parametrize("num_partitions", [1, 4])
def test_sync_offset_and_nav_shape(ctx, source, sync_offset, nav_shape, num_partitions):
    data = np.arange(4 * 5 * 2 * 3, dtype="float64").reshape(4, 5, 2, 3)
    raw_frames = data.reshape(20, 2, 3)
    arg = data if source == "memory" else da.from_array(data, chunks=(2, 5, 2, 3))
    ds = (
        ctx.load(
            source,
            arg,
            sig_dims=2,
            nav_shape=nav_shape,
            sync_offset=sync_offset,
            num_partitions=num_partitions,
        )
        if source == "dask"
        else ctx.load(
            "memory",
            data=arg,
            nav_shape=nav_shape,
            sync_offset=sync_offset,
            num_partitions=num_partitions,
        )
    )
    nav = nav_shape or (4, 5)
    assert ds.shape.nav == nav
    assert ds.meta.sync_offset == sync_offset
    assert ds.meta.image_count == 20
    expected = _expected_frames(raw_frames, int(np.prod(nav)), sync_offset)
    np.testing.assert_array_equal(ds.array.compute().reshape(-1, 2, 3), expected)
    roi = np.zeros(nav, bool)
    roi.reshape(-1)[::3] = True
    res = ctx.run_udf(dataset=ds, udf=Coords(), roi=roi)
    sel = np.flatnonzero(roi)
    # positions outside the source are not processed (as in LiberTEM): their results
    # keep the buffers' zeros
    held = (sel + sync_offset >= 0) & (sel + sync_offset < 20)
    coords = np.stack(np.unravel_index(sel, nav), 1) * held[:, None]
    np.testing.assert_array_equal(res["c"].raw_data, coords)
    np.testing.assert_array_equal(res["s"].raw_data, expected[sel].sum(axis=(1, 2)))


class Counted(UDF):
    """Counts and lists the frames each process method sees."""

    def __init__(self, method="frame"):
        super().__init__(method=method)

    def get_result_buffers(self):
        return {
            "seen": self.buffer(kind="nav", dtype="int64"),
            "n": self.buffer(kind="single", dtype="int64"),
        }

    def get_method(self):
        return {"frame": "frame", "tile": "tile", "partition": "partition"}[self.params.method]

    def process_frame(self, frame):
        self.results.seen[:] = 1
        self.results.n[:] += 1

    def process_tile(self, tile):
        self.results.seen[:] = 1
        self.results.n[:] += len(tile)

    def process_partition(self, partition):
        assert len(partition) == len(self.results.seen) == len(self.meta.coordinates)
        self.results.seen[:] = 1
        self.results.n[:] += len(partition)

    def merge(self, dest, src):
        dest.seen[:] = src.seen
        dest.n[:] += src.n


@pytest.mark.parametrize("method", ["frame", "tile", "partition"])
@pytest.mark.parametrize("sync_offset", [16, -16, 62, -62, 63])
@pytest.mark.parametrize("use_roi", [False, True])
def test_positions_outside_the_source_are_not_processed(ctx, method, sync_offset, use_roi):
    """As LiberTEM: with sync_offset, only positions that hold a source frame are processed."""
    data = np.arange(8 * 8 * 4 * 4, dtype="float32").reshape(8, 8, 4, 4) + 1
    ds = ctx.load("memory", data=data, sync_offset=sync_offset, num_partitions=3)
    held = np.zeros(64, bool)
    held[max(0, -sync_offset) : 64 - max(0, sync_offset)] = True
    roi = None
    if use_roi:
        roi = np.random.default_rng(abs(sync_offset)).random((8, 8)) < 0.5
        roi.reshape(-1)[[0, 63]] = True
    wanted = held if roi is None else held & roi.reshape(-1)
    res = ctx.run_udf(dataset=ds, udf=Counted(method=method), roi=roi)
    assert int(res["n"].data[0]) == wanted.sum()
    seen = res["seen"].data.reshape(-1)
    np.testing.assert_array_equal(seen[wanted], 1)
    outside = ~held if roi is None else ~held & roi.reshape(-1)
    np.testing.assert_array_equal(seen[outside], 0)  # unprocessed, still the buffer's zero


def test_stddev_with_sync_offset_counts_source_frames_only(ctx):
    from dataflow.udf.stddev import StdDevUDF

    data = np.arange(8 * 8 * 4 * 4, dtype="float32").reshape(8, 8, 4, 4) + 1
    ds = ctx.load("memory", data=data, sync_offset=16, num_partitions=2)
    res = ctx.run_udf(dataset=ds, udf=StdDevUDF())
    frames = data.reshape(64, 4, 4)[16:].astype("float64")
    assert int(res["num_frames"].data[0]) == 48
    np.testing.assert_allclose(res["mean"].data, frames.mean(axis=0))
    np.testing.assert_allclose(res["std"].data, frames.std(axis=0))


def test_sig_shape_reshapes_frames(ctx):
    data = np.arange(3 * 4 * 6, dtype="float32").reshape(3, 4, 6)
    ds = ctx.load("memory", data=data, sig_dims=1, sig_shape=(2, 3))
    assert ds.shape == (3, 4, 2, 3)
    assert ds.shape.sig == (2, 3)
    assert ds.sig_dims == 2
    np.testing.assert_array_equal(ds.array.compute(), data.reshape(3, 4, 2, 3))
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF())
    np.testing.assert_array_equal(res["intensity"].data, data.sum(axis=2))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sig_shape": (5, 5)}, DataSetException, r"sig_shape is \(5, 5\), 25 elements"),
        ({"sync_offset": 20}, DataSetException, r"sync_offset is 20; .* \(-20, 20\)"),
        ({"sync_offset": -20}, DataSetException, "sync_offset is -20"),
        ({"sync_offset": 1.5}, TypeError, "sync_offset is 1.5"),
        ({"nav_shape": (0, 4)}, ValueError, r"nav_shape is \(0, 4\)"),
        ({"nav_shape": "ab"}, TypeError, "nav_shape is 'ab'"),
        ({"tileshape": (0, 2, 3)}, ValueError, r"tileshape is \(0, 2, 3\)"),
    ],
)
def test_layout_errors(ctx, kwargs, error, match):
    with pytest.raises(error, match=match):
        ctx.load("memory", data=np.zeros((4, 5, 2, 3)), **kwargs)
