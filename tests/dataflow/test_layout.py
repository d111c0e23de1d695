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
    np.testing.assert_array_equal(res["c"].raw_data, np.stack(np.unravel_index(sel, nav), 1))
    np.testing.assert_array_equal(res["s"].raw_data, expected[sel].sum(axis=(1, 2)))


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
