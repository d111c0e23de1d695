"""CrystallinityUDF against NumPy: Fourier amplitudes in a ring, a real-space disk zeroed."""

from __future__ import annotations

import numpy as np
import pytest

from dataflow.udf.crystallinity import CrystallinityUDF, run_analysis_crystall


def _reference(data, roi, rad_in, rad_out, real_center=None, real_rad=None):
    """From frequencies: for even frame sizes the spectrum's centre is frequency 0."""
    sig_y, sig_x = data.shape[-2:]
    frames = data.reshape((-1, sig_y, sig_x))
    if roi is not None:
        frames = frames[roi.reshape(-1)]
    frames = frames.astype(np.result_type(data.dtype, np.float32)).astype(np.float64)
    if real_center is not None and real_rad is not None:
        yy, xx = np.mgrid[:sig_y, :sig_x]
        disk = (yy - real_center[0]) ** 2 + (xx - real_center[1]) ** 2 <= real_rad**2
        frames = np.where(disk, 0, frames)
    ky = np.fft.fftfreq(sig_y) * sig_y
    kx = np.fft.rfftfreq(sig_x) * sig_x  # the half spectrum rfft2 returns
    k2 = ky[:, np.newaxis] ** 2 + kx[np.newaxis, :] ** 2
    ring = (k2 > rad_in**2) & (k2 <= rad_out**2)
    return np.abs(np.fft.rfft2(frames))[:, ring].sum(axis=1)


@pytest.mark.parametrize("dtype", ["float32", "uint16", "int32"])
@pytest.mark.parametrize("num_partitions", [1, 3, 7])
@pytest.mark.parametrize("roi_kind", [None, "random"])
@pytest.mark.parametrize("real", [None, ((3, 7), 2.5)])
def test_crystallinity_matches_numpy(ctx, data_factory, rng, dtype, num_partitions, roi_kind, real):
    data = data_factory((6, 7, 12, 10), dtype)
    roi = None if roi_kind is None else rng.random((6, 7)) < 0.5
    real_center, real_rad = real if real is not None else (None, None)
    ds = ctx.load("memory", data=data, num_partitions=num_partitions)
    udf = CrystallinityUDF(rad_in=1, rad_out=4, real_center=real_center, real_rad=real_rad)
    intensity = ctx.run_udf(dataset=ds, udf=udf, roi=roi)["intensity"]
    assert intensity.kind == "nav"
    assert intensity.dtype == np.float32
    expected = _reference(data, roi, 1, 4, real_center, real_rad)
    np.testing.assert_allclose(intensity.raw_data, expected, rtol=2e-5)
    if roi is not None:
        assert np.isnan(intensity.data[~roi]).all()


def test_crystallinity_real_disk_is_row_then_column(ctx):
    # one bright pixel at row 2, column 6: a disk at (2, 6) removes it, one at (6, 2) not
    frame = np.zeros((12, 10), dtype="float32")
    frame[2, 6] = 1
    ds = ctx.load("memory", data=frame.reshape(1, 1, 12, 10))
    kw = {"rad_in": 0, "rad_out": 3, "real_rad": 1}
    at_yx = run_analysis_crystall(ctx, ds, real_center=(2, 6), **kw)["intensity"].data
    at_xy = run_analysis_crystall(ctx, ds, real_center=(6, 2), **kw)["intensity"].data
    assert at_yx[0, 0] == 0
    assert at_xy[0, 0] > 0


def test_crystallinity_needs_both_real_arguments(ctx, data_factory):
    data = data_factory((3, 4, 12, 10), "float32")
    ds = ctx.load("memory", data=data, num_partitions=2)
    plain = run_analysis_crystall(ctx, ds, rad_in=1, rad_out=4)["intensity"].raw_data
    half = run_analysis_crystall(ctx, ds, rad_in=1, rad_out=4, real_rad=3)["intensity"].raw_data
    np.testing.assert_array_equal(half, plain)
    np.testing.assert_allclose(plain, _reference(data, None, 1, 4), rtol=2e-5)


def test_crystallinity_odd_frame_size(ctx, data_factory):
    # odd sizes: the ring is centred at (sig_y / 2, sig_x / 2) of the fftshift-ed
    # spectrum, between pixels, as in LiberTEM
    data = data_factory((2, 3, 9, 11), "float32")
    ds = ctx.load("memory", data=data, num_partitions=2)
    res = run_analysis_crystall(ctx, ds, rad_in=1, rad_out=3)["intensity"].raw_data
    yy, xx = np.mgrid[:9, :11]
    d2 = (yy - 4.5) ** 2 + (xx - 5.5) ** 2
    ring = np.fft.fftshift((d2 > 1) & (d2 <= 9))[:, : 11 // 2 + 1]
    spectra = np.abs(np.fft.rfft2(data.reshape(-1, 9, 11).astype(np.float64)))
    np.testing.assert_allclose(res, spectra[:, ring].sum(axis=1), rtol=2e-5)


def test_crystallinity_errors_before_reading_data(ctx, data_factory):
    with pytest.raises(ValueError, match=r"real_center is 3"):
        CrystallinityUDF(rad_in=1, rad_out=2, real_center=3, real_rad=1)
    flat = ctx.load("memory", data=data_factory((2, 3, 64)), sig_dims=1)
    with pytest.raises(ValueError, match=r"signal shape is \(64,\)"):
        run_analysis_crystall(ctx, flat, rad_in=1, rad_out=3)


def test_crystallinity_on_threads(threads_ctx, data_factory, rng):
    data = data_factory((8, 8, 12, 10), "uint16")
    roi = rng.random((8, 8)) < 0.5
    ds = threads_ctx.load("memory", data=data, num_partitions=7)
    res = run_analysis_crystall(
        threads_ctx, ds, rad_in=1, rad_out=4, real_center=(6, 5), real_rad=2, roi=roi
    )
    expected = _reference(data, roi, 1, 4, (6, 5), 2)
    np.testing.assert_allclose(res["intensity"].raw_data, expected, rtol=2e-5)
