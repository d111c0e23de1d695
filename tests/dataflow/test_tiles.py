"""How partitions are cut into tiles: views of the block where possible, ROI gaps.

With a ROI, large frames reach tile-wise UDFs as views of runs of consecutive selected
frames (no gather copy); small frames, and tiles that are copied anyway for a dtype
conversion, are gathered run by run.
"""

from __future__ import annotations

import numpy as np
import pytest

from dataflow import UDF, Context
from dataflow.partition import VIEW_FRAME_BYTES, _gather, _tiles
from dataflow.sources.regions import index_runs as _runs


class WhereFrom(UDF):
    """Records, per frame, the source frame its tile memory belongs to, and the tile depth.

    ``base`` is the address of the dataset's first byte: for a view of the dataset the
    recorded row is the frame's flat navigation index; for a copy it is -1.
    """

    def __init__(self, base, nbytes, dtype="float32"):
        super().__init__(base=base, nbytes=nbytes, dtype=dtype)

    def get_preferred_input_dtype(self):
        return self.params.dtype

    def get_result_buffers(self):
        return {
            "row": self.buffer(kind="nav", dtype="int64"),
            "depth": self.buffer(kind="nav", dtype="int64"),
            "total": self.buffer(kind="sig", dtype="float64"),
        }

    def process_tile(self, tile):
        offset = tile.ctypes.data - self.params.base
        inside = tile.dtype == self.meta.dataset_dtype and 0 <= offset < self.params.nbytes
        first = offset // tile[0].nbytes
        self.results.row[:] = np.arange(first, first + len(tile)) if inside else -1
        self.results.depth[:] = len(tile)
        self.results.total += tile.sum(axis=0, dtype="float64")

    def merge(self, dest, src):
        dest.row[:] = src.row
        dest.depth[:] = src.depth
        dest.total += src.total


@pytest.fixture
def plain_ctx():
    """In-process, no copies of the data: tile addresses are the dataset's own."""
    with Context.make_with("inline") as c:
        yield c


def _run(ctx, data, roi, dtype="float32", **load):
    ds = ctx.load("memory", data=data, **load)
    udf = WhereFrom(data.ctypes.data, data.nbytes, dtype)
    return ctx.run_udf(dataset=ds, udf=udf, roi=roi)


def _roi(nav, rng, fraction=0.3):
    return rng.random(nav) < fraction


def test_large_frames_with_roi_are_views_of_the_dataset(plain_ctx, rng):
    sig = (128, 128)  # 64 KiB frames
    assert np.prod(sig) * 4 >= VIEW_FRAME_BYTES
    data = rng.random((6, 7, *sig), dtype="float32")
    roi = _roi((6, 7), rng)
    res = _run(plain_ctx, data, roi, num_partitions=3)
    rows = res["row"].raw_data
    np.testing.assert_array_equal(rows, np.flatnonzero(roi))  # every frame a view, in place
    # a tile never spans a gap: its depth is at most the run of consecutive frames
    depth = res["depth"].raw_data
    assert depth.max() > 1 or not np.any(np.diff(np.flatnonzero(roi)) == 1)
    np.testing.assert_allclose(res["total"].data, data[roi].sum(axis=0, dtype="float64"))


def test_small_frames_with_roi_are_gathered(plain_ctx, rng):
    data = rng.random((8, 8, 8, 8), dtype="float32")
    roi = _roi((8, 8), rng)
    res = _run(plain_ctx, data, roi, num_partitions=2)
    rows = res["row"].raw_data
    assert np.any(rows == -1)  # tiles with gaps are copies
    assert res["depth"].raw_data.max() > 1
    np.testing.assert_allclose(res["total"].data, data[roi].sum(axis=0, dtype="float64"))


def test_conversion_gathers_straight_into_the_wanted_dtype(plain_ctx, rng):
    data = rng.integers(0, 4096, size=(5, 6, 128, 128), dtype="uint16")
    roi = _roi((5, 6), rng, 0.5)
    res = _run(plain_ctx, data, roi, dtype="float32", num_partitions=2)
    assert np.all(res["row"].raw_data == -1)
    np.testing.assert_array_equal(res["total"].data, data[roi].sum(axis=0, dtype="float64"))


def test_without_roi_tiles_are_views(plain_ctx, rng):
    data = rng.random((4, 5, 16, 16), dtype="float32")
    res = _run(plain_ctx, data, None, num_partitions=2)
    np.testing.assert_array_equal(res["row"].data.ravel(), np.arange(20))


@pytest.mark.parametrize("views", [True, False])
@pytest.mark.parametrize("depth", [1, 3, 64])
def test_tiles_cover_the_selected_frames_once(rng, views, depth):
    mask = rng.random(200) < 0.4
    mask[50:80] = True  # a long run
    sel = np.flatnonzero(mask)
    lo, n = 3, len(sel) - 2
    tiles = _tiles(lo, n, depth, sel, views)
    covered = [i for a, b, _ in tiles for i in range(a, b)]
    assert covered == list(range(lo, n))
    for a, b, row in tiles:
        assert 0 < b - a <= depth
        consecutive = sel[b - 1] - sel[a] == b - 1 - a
        if views:
            assert consecutive
            assert row == sel[a]
        else:
            assert (row == sel[a]) if consecutive else row is None


def test_tiles_without_roi():
    assert _tiles(2, 9, 3, None, False) == [(2, 5, 2), (5, 8, 5), (8, 9, 8)]


def test_runs_and_gather(rng):
    rows = np.array([2, 3, 4, 7, 9, 10])
    assert _runs(rows) == [(2, 3), (7, 1), (9, 2)]
    assert _runs(np.array([5, 6])) == [(5, 2)]
    block = rng.integers(0, 100, size=(12, 3, 3), dtype="uint16")
    out = np.empty((len(rows), 3, 3), "float32")
    _gather(block, _runs(rows), out)
    np.testing.assert_array_equal(out, block[rows])


@pytest.mark.parametrize(
    ("setting", "dtype"), [("view-tile-bytes", "float32"), ("copy-tile-bytes", "float64")]
)
def test_tile_sizes_follow_the_settings(plain_ctx, rng, setting, dtype):
    import dask

    data = rng.random((4, 5, 16, 16), dtype="float32")
    frame = 16 * 16 * np.dtype(dtype).itemsize
    with dask.config.set({f"dataflow.{setting}": 3 * frame}):
        res = _run(plain_ctx, data, None, dtype=dtype, num_partitions=1)
    assert res["depth"].raw_data.max() == 3
