"""FEMUDF against NumPy: the standard deviation in a ring around ``center = (y, x)``."""

from __future__ import annotations

import numpy as np
import pytest

from dataflow.udf.FEM import FEMUDF, run_fem


def _ring(sig_shape, center, rad_in, rad_out):
    yy, xx = np.mgrid[: sig_shape[0], : sig_shape[1]]
    d2 = (yy - center[0]) ** 2 + (xx - center[1]) ** 2
    return (d2 > rad_in**2) & (d2 <= rad_out**2)


def _reference(data, roi, center, rad_in, rad_out):
    frames = data.reshape((-1, *data.shape[-2:]))
    if roi is not None:
        frames = frames[roi.reshape(-1)]
    frames = frames.astype(np.result_type(data.dtype, np.float32))
    ring = _ring(data.shape[-2:], center, rad_in, rad_out)
    return frames[:, ring].astype(np.float64).std(axis=1)


@pytest.mark.parametrize("dtype", ["float32", "uint16", "int32"])
@pytest.mark.parametrize("num_partitions", [1, 3, 7])
@pytest.mark.parametrize("roi_kind", [None, "random"])
def test_fem_matches_numpy(ctx, data_factory, rng, dtype, num_partitions, roi_kind):
    data = data_factory((6, 7, 12, 10), dtype)
    roi = None if roi_kind is None else rng.random((6, 7)) < 0.5
    center, rad_in, rad_out = (4, 6.5), 1.5, 4
    ds = ctx.load("memory", data=data, num_partitions=num_partitions)
    res = ctx.run_udf(
        dataset=ds, udf=FEMUDF(center=center, rad_in=rad_in, rad_out=rad_out), roi=roi
    )
    intensity = res["intensity"]
    assert intensity.kind == "nav"
    assert intensity.dtype == np.float32
    expected = _reference(data, roi, center, rad_in, rad_out)
    np.testing.assert_allclose(intensity.raw_data, expected, rtol=1e-5)
    if roi is not None:
        assert np.isnan(intensity.data[~roi]).all()


def test_fem_center_is_row_then_column(ctx):
    # a bright ring around row 2, column 7 of a 10 x 12 frame; nothing around (7, 2)
    frame = np.zeros((10, 12), dtype="float32")
    frame[_ring(frame.shape, (2, 7), 1, 2)] = [1, 5] * 4
    ds = ctx.load("memory", data=np.stack([frame] * 4).reshape(2, 2, 10, 12))
    at_yx = run_fem(ctx, ds, center=(2, 7), rad_in=1, rad_out=2)["intensity"].data
    at_xy = run_fem(ctx, ds, center=(7, 2), rad_in=1, rad_out=2)["intensity"].data
    np.testing.assert_allclose(at_yx, 2.0)
    np.testing.assert_array_equal(at_xy, 0)


def test_fem_ring_holds_its_outer_border_not_its_inner_one(ctx):
    frame = np.ones((9, 9), dtype="float32")
    frame[4, 4] = 100  # distance 0 == rad_in: outside the ring
    ds = ctx.load("memory", data=frame.reshape(1, 1, 9, 9))
    assert run_fem(ctx, ds, center=(4, 4), rad_in=0, rad_out=3)["intensity"].data[0, 0] == 0
    frame[4, 4] = 1
    frame[4, 7] = 100  # distance 3 == rad_out: inside the ring
    ds = ctx.load("memory", data=frame.reshape(1, 1, 9, 9))
    assert run_fem(ctx, ds, center=(4, 4), rad_in=0, rad_out=3)["intensity"].data[0, 0] > 10


def test_fem_errors_before_reading_data(ctx, data_factory):
    ds = ctx.load("memory", data=data_factory((2, 3, 8, 8)))
    with pytest.raises(ValueError, match=r"center is \(1, 2, 3\)"):
        FEMUDF(center=(1, 2, 3), rad_in=1, rad_out=2)
    with pytest.raises(ValueError, match=r"holds no pixel"):
        ctx.run_udf(dataset=ds, udf=FEMUDF(center=(4, 4), rad_in=3, rad_out=2))
    with pytest.raises(ValueError, match=r"holds no pixel"):
        ctx.run_udf(dataset=ds, udf=FEMUDF(center=(40, 40), rad_in=1, rad_out=3))
    flat = ctx.load("memory", data=data_factory((2, 3, 64)), sig_dims=1)
    with pytest.raises(ValueError, match=r"signal shape is \(64,\)"):
        ctx.run_udf(dataset=flat, udf=FEMUDF(center=(4, 4), rad_in=1, rad_out=3))


def test_run_fem_with_roi(ctx, data_factory):
    data = data_factory((6, 7, 12, 10), "uint16")
    roi = np.zeros((6, 7), bool)
    roi[2:4, 1:5] = True
    ds = ctx.load("memory", data=data, num_partitions=3)
    res = run_fem(ctx, ds, center=(6, 5), rad_in=2, rad_out=5, roi=roi)
    expected = _reference(data, roi, (6, 5), 2, 5)
    np.testing.assert_allclose(res["intensity"].raw_data, expected, rtol=1e-5)


def test_fem_on_threads(threads_ctx, data_factory, rng):
    data = data_factory((8, 8, 12, 10), "float32")
    roi = rng.random((8, 8)) < 0.5
    ds = threads_ctx.load("memory", data=data, num_partitions=7)
    udf = FEMUDF(center=(5, 5), rad_in=2, rad_out=4)
    res = threads_ctx.run_udf(dataset=ds, udf=udf, roi=roi)
    np.testing.assert_allclose(
        res["intensity"].raw_data, _reference(data, roi, (5, 5), 2, 4), rtol=1e-5
    )
