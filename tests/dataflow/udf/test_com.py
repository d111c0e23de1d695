"""CoMUDF against scipy.ndimage and NumPy gradients; corrections and their guess."""

from __future__ import annotations

import numpy as np
import pytest

from dataflow.udf.com import (
    CoMParams,
    CoMUDF,
    RegressionOptions,
    apply_correction,
    center_shifts,
    coordinate_check,
    guess_corrections,
)

NAV, SIG = (7, 9), (16, 12)


@pytest.fixture
def ndimage():
    return pytest.importorskip("scipy.ndimage")


@pytest.fixture
def positive_data(rng):
    return (rng.random(NAV + SIG) + 0.1).astype(np.float32)


def run(ctx, data, udf, roi=None, num_partitions=3):
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=num_partitions)
    return ctx.run_udf(dataset=ds, udf=udf, roi=roi)


def to_scan(shift_y, shift_x, scan_rotation, flip_y):
    """Detector shifts in scan coordinates, with complex numbers ``x + iy``: flip y,
    then turn by ``scan_rotation`` degrees from +x towards +y (clockwise on screen)."""
    z = shift_x + 1j * (-shift_y if flip_y else shift_y)
    z = z * np.exp(1j * np.deg2rad(scan_rotation))
    return z.imag, z.real


def to_detector(field_y, field_x, scan_rotation, flip_y):
    """The inverse of :func:`to_scan`."""
    z = (field_x + 1j * field_y) * np.exp(-1j * np.deg2rad(scan_rotation))
    return (-z.imag if flip_y else z.imag), z.real


def gradients(fy, fx):
    """(divergence, curl) by np.gradient."""
    div = np.gradient(fy, axis=0) + np.gradient(fx, axis=1)
    curl = np.gradient(fy, axis=1) - np.gradient(fx, axis=0)
    return div, curl


def com_within(ndimage, data, cy, cx, r, ri=0.0):
    """scipy.ndimage.center_of_mass of every frame within the (annular) mask."""
    y, x = np.mgrid[0 : data.shape[-2], 0 : data.shape[-1]]
    d = np.hypot(y - cy, x - cx)
    mask = (d <= r) & ~(d <= ri) if ri else d <= r
    com = np.zeros((*data.shape[:-2], 2))
    for idx in np.ndindex(data.shape[:-2]):
        com[idx] = ndimage.center_of_mass(data[idx].astype(np.float64) * mask)
    return com


@pytest.mark.parametrize(
    "params",
    [{}, {"cy": 7.2, "cx": 5.1, "r": 5}, {"cy": 9, "cx": 4, "r": 6.5, "ri": 2.5}, {"r": 3}],
)
@pytest.mark.parametrize("num_partitions", [1, 3])
@pytest.mark.parametrize("with_roi", [False, True])
def test_raw_com_is_the_center_of_mass_within_the_mask(
    ctx, ndimage, positive_data, rng, params, num_partitions, with_roi
):
    roi = rng.random(NAV) < 0.6 if with_roi else None
    res = run(ctx, positive_data, CoMUDF.with_params(**params), roi, num_partitions)
    cy, cx = params.get("cy", SIG[0] // 2), params.get("cx", SIG[1] // 2)
    expected = com_within(
        ndimage, positive_data, cy, cx, params.get("r", np.inf), params.get("ri", 0)
    )
    sel = np.ones(NAV, bool) if roi is None else roi
    np.testing.assert_allclose(res["raw_com"].data[sel], expected[sel], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        res["raw_shifts"].data[sel], expected[sel] - [cy, cx], rtol=1e-5, atol=1e-5
    )
    if roi is not None:
        assert np.isnan(res["raw_com"].data[~roi]).all()
        assert res["raw_com"].raw_data.shape == (roi.sum(), 2)


@pytest.mark.parametrize(
    ("scan_rotation", "flip_y"), [(0, False), (30, True), (-75, False), (180, True)]
)
def test_field_divergence_curl(ctx, positive_data, scan_rotation, flip_y):
    res = run(
        ctx, positive_data, CoMUDF.with_params(r=7, scan_rotation=scan_rotation, flip_y=flip_y)
    )
    shifts = res["raw_shifts"].data.astype(np.float64)
    fy, fx = to_scan(shifts[..., 0], shifts[..., 1], scan_rotation, flip_y)
    np.testing.assert_allclose(res["field"].data, np.stack((fy, fx), axis=-1), atol=1e-5)
    np.testing.assert_allclose(res["field_y"].data, fy, atol=1e-5)
    np.testing.assert_allclose(res["field_x"].data, fx, atol=1e-5)
    np.testing.assert_allclose(res["magnitude"].data, np.hypot(fy, fx), atol=1e-5)
    div, curl = gradients(fy, fx)
    np.testing.assert_allclose(res["divergence"].data, div, atol=1e-5)
    np.testing.assert_allclose(res["curl"].data, curl, atol=1e-5)
    np.testing.assert_array_equal(res["regression"].data, np.zeros((3, 2)))


def test_gradients_with_roi_are_nan_next_to_it(ctx, positive_data):
    roi = np.zeros(NAV, bool)
    roi[1:6, 2:8] = True
    roi[0, 0] = True
    res = run(ctx, positive_data, CoMUDF.with_params(scan_rotation=20), roi)
    full = run(ctx, positive_data, CoMUDF.with_params(scan_rotation=20))
    fy = np.where(roi, full["field_y"].data, np.nan).astype(np.float64)
    fx = np.where(roi, full["field_x"].data, np.nan).astype(np.float64)
    div, curl = gradients(fy, fx)
    for name, expected in (("divergence", div), ("curl", curl)):
        got = res[name].data
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        assert (~np.isnan(got)).sum() == 3 * 4  # the ROI's interior
        np.testing.assert_allclose(got[~np.isnan(got)], expected[~np.isnan(expected)], atol=1e-5)
        assert res[name].raw_data.shape == (roi.sum(),)


@pytest.mark.parametrize(
    ("dtype", "expected"), [("float32", np.float32), ("uint16", np.float32), ("int32", np.float64)]
)
def test_result_dtypes(ctx, data_factory, dtype, expected):
    data = np.abs(data_factory(NAV + SIG, dtype)) + 1
    res = run(ctx, data, CoMUDF())
    for name in ("raw_com", "raw_shifts", "field", "field_y", "field_x", "magnitude", "curl"):
        assert res[name].data.dtype == expected, name
    assert res["regression"].data.dtype == np.float64
    assert res["curl"].data.shape == NAV
    assert res["curl"].raw_data.shape == (np.prod(NAV),)


def test_frames_without_intensity_have_no_shift(ctx, positive_data):
    data = positive_data.copy()
    data[2, 3] = 0
    res = run(ctx, data, CoMUDF.with_params(cy=6.5, cx=4.5))
    np.testing.assert_array_equal(res["raw_shifts"].data[2, 3], [0, 0])
    np.testing.assert_array_equal(res["raw_com"].data[2, 3], [6.5, 4.5])


def linear_scan(ctx, plane, nav=(10, 11), sig=(24, 24), sigma=1.5, roi=None, **params):
    """Frames of a Gaussian spot whose shift is ``plane`` = [[y, x], [dy/dy, dx/dy], [dy/dx, dx/dx]]."""
    sy, sx = np.mgrid[0 : sig[0], 0 : sig[1]]
    data = np.zeros(nav + sig, dtype=np.float32)
    for iy, ix in np.ndindex(nav):
        dy, dx = np.array([1, iy, ix]) @ plane
        data[iy, ix] = np.exp(-((sy - 12 - dy) ** 2 + (sx - 12 - dx) ** 2) / (2 * sigma**2))
    return run(ctx, data, CoMUDF.with_params(cy=12, cx=12, **params), roi)


def test_regression_none_mean_linear_and_given(ctx, rng):
    plane = np.array([[0.5, -0.3], [0.05, 0.02], [-0.04, 0.06]])
    roi = rng.random((10, 11)) < 0.8
    none = linear_scan(ctx, plane, roi=roi)
    shifts = none["field"].data.astype(np.float64)
    y, x = np.mgrid[0:10, 0:11]
    np.testing.assert_allclose(
        shifts[roi], (np.stack((np.ones_like(y), y, x), -1) @ plane)[roi], atol=1e-4
    )

    mean = linear_scan(ctx, plane, roi=roi, regression=RegressionOptions.SUBTRACT_MEAN)
    np.testing.assert_allclose(mean["regression"].data[0], shifts[roi].mean(axis=0), atol=1e-6)
    np.testing.assert_array_equal(mean["regression"].data[1:], 0)
    np.testing.assert_allclose(
        mean["field"].data[roi], shifts[roi] - shifts[roi].mean(axis=0), atol=1e-5
    )

    lin = linear_scan(ctx, plane, roi=roi, regression=1)
    np.testing.assert_allclose(lin["regression"].data, plane, atol=1e-4)
    residual = lin["field"].data[roi].astype(np.float64)
    np.testing.assert_allclose(residual, 0, atol=1e-4)
    # least squares: the residual is orthogonal to 1, y and x (the normal equations)
    for basis in (np.ones(roi.sum()), y[roi], x[roi]):
        np.testing.assert_allclose(basis @ residual, 0, atol=1e-3)

    given = np.array([[0.1, -0.2], [0.01, 0.02], [-0.03, 0.005]])
    sub = linear_scan(ctx, plane, roi=roi, regression=given)
    np.testing.assert_array_equal(sub["regression"].data, given)
    background = np.stack((np.ones_like(y), y, x), -1) @ given
    np.testing.assert_allclose(sub["field"].data[roi], (shifts - background)[roi], atol=1e-5)


def test_regression_is_fitted_in_scan_coordinates(ctx):
    plane = np.array([[0.5, -0.3], [0.05, 0.02], [-0.04, 0.06]])
    res = linear_scan(ctx, plane, scan_rotation=40, flip_y=True, regression=1)
    np.testing.assert_allclose(res["field"].data, 0, atol=1e-4)
    raw = linear_scan(ctx, plane, scan_rotation=40, flip_y=True)["field"].data.astype(np.float64)
    coef = np.linalg.lstsq(
        np.stack((np.ones(110), *np.mgrid[0:10, 0:11].reshape(2, -1)), -1),
        raw.reshape(-1, 2),
        rcond=None,
    )[0]
    np.testing.assert_allclose(res["regression"].data, coef, atol=1e-6)


def atom_field(nav=(24, 24), period=8, sigma=1.6):
    """A curl-free field pointing towards atom columns: the gradient of Gaussian peaks."""
    y, x = np.mgrid[0 : nav[0], 0 : nav[1]].astype(np.float64)
    fy, fx = np.zeros(nav), np.zeros(nav)
    for ay in range(-period, nav[0] + period, period):
        for ax in range(-period, nav[1] + period, period):
            g = np.exp(-((y - ay - 3.3) ** 2 + (x - ax - 2.1) ** 2) / (2 * sigma**2))
            fy -= (y - ay - 3.3) / sigma**2 * g
            fx -= (x - ax - 2.1) / sigma**2 * g
    return fy, fx


@pytest.mark.parametrize(
    ("scan_rotation", "flip_y"), [(0, False), (35, False), (-120, True), (90, True), (180, False)]
)
def test_guess_corrections_recovers_rotation_and_flip(ctx, scan_rotation, flip_y):
    fy, fx = atom_field()
    dy, dx = to_detector(fy, fx, scan_rotation, flip_y)  # what the detector sees
    sy, sx = np.mgrid[0:24, 0:24]
    data = np.exp(
        -((sy - 12 - dy[..., None, None]) ** 2 + (sx - 11 - dx[..., None, None]) ** 2)
        / (2 * 1.5**2)
    ).astype(np.float32)
    res = run(ctx, data, CoMUDF())
    com = res["raw_com"].data
    guess = guess_corrections(com[..., 0], com[..., 1])
    assert guess.flip_y is flip_y
    assert guess.scan_rotation == scan_rotation
    assert guess.cy == pytest.approx(np.mean(com[:-1, :-1, 0]))
    assert guess.cx == pytest.approx(np.mean(com[:-1, :-1, 1]))
    # with the guessed corrections the field is the one we started from
    corrected = run(ctx, data, CoMUDF.with_params(**guess._asdict()))
    shift = np.array([np.mean(dy[:-1, :-1]), np.mean(dx[:-1, :-1])])  # the centre moved by the mean
    mean_field = to_scan(*shift, scan_rotation, flip_y)
    np.testing.assert_allclose(corrected["field_y"].data, fy - mean_field[0], atol=2e-3)
    np.testing.assert_allclose(corrected["field_x"].data, fx - mean_field[1], atol=2e-3)


def test_coordinate_check_against_a_loop(rng):
    fy, fx = rng.standard_normal((2, 9, 8))
    straight, flipped = coordinate_check(fy, fx)
    for angle in (0, 17, 90, 181, 359):
        for flip, got in ((False, straight), (True, flipped)):
            ty, tx = to_scan(fy, fx, angle, flip)
            curl = gradients(ty, tx)[1][:-1, :-1]
            assert got[angle] == pytest.approx(np.sqrt(np.mean(curl**2)), rel=1e-12)
    roi = rng.random((9, 8)) < 0.5
    straight, _ = coordinate_check(fy, fx, roi=roi)
    ty, tx = to_scan(fy, fx, 45, False)
    assert straight[45] == pytest.approx(np.sqrt(np.mean(gradients(ty, tx)[1][roi] ** 2)))


def test_apply_correction(rng):
    y, x = rng.standard_normal((2, 4, 5))
    for angle, flip in ((0, False), (33.3, True), (-90, False)):
        ty, tx = apply_correction(y, x, scan_rotation=angle, flip_y=flip)
        ey, ex = to_scan(y, x, angle, flip)
        np.testing.assert_allclose(ty, ey, atol=1e-12)
        np.testing.assert_allclose(tx, ex, atol=1e-12)
        by, bx = apply_correction(ty, tx, scan_rotation=angle, flip_y=flip, forward=False)
        np.testing.assert_allclose(by, y, atol=1e-12)
        np.testing.assert_allclose(bx, x, atol=1e-12)


def test_center_shifts():
    y, x = center_shifts(np.array([4.0, 0.0]), np.array([10.0, 0.0]), np.array([6.0, 0.0]), 2, 1)
    np.testing.assert_array_equal(y, [0.5, 0])
    np.testing.assert_array_equal(x, [0.5, 0])


def test_threads_agree(threads_ctx, ctx, positive_data, rng):
    roi = rng.random(NAV) < 0.7
    udf = CoMUDF.with_params(cy=7.5, cx=6, r=6, scan_rotation=12, regression=1)
    a = run(threads_ctx, positive_data, udf, roi, num_partitions=4)
    b = run(ctx, positive_data, udf, roi, num_partitions=1)
    for name in ("raw_com", "field", "divergence", "curl", "regression"):
        np.testing.assert_allclose(a[name].data, b[name].data, rtol=1e-5, atol=1e-6)


def test_values_computed_with_libertem(ctx, ndimage):
    # regression numbers from LiberTEM 0.16.0's CoMUDF, computed by hand on the same
    # deterministic data and parameters
    i = np.arange(5 * 6 * 10 * 8)
    data = (1 + (i * 7919) % 23).astype(np.float32).reshape(5, 6, 10, 8)
    params = {"r": 4.5, "ri": 1.5, "cy": 4.3, "cx": 3.6, "scan_rotation": 30, "flip_y": True}
    res = run(ctx, data, CoMUDF.with_params(**params, regression=1), num_partitions=2)
    np.testing.assert_allclose(res["raw_com"].data[2, 3], [4.424528, 3.4952831], rtol=1e-6)
    np.testing.assert_allclose(
        res["field"].data[2, 3], [-0.09794337455304616, 0.03249171277309376], atol=1e-6
    )
    assert res["divergence"].data[2, 3] == pytest.approx(0.01290144717917565, abs=1e-6)
    assert res["curl"].data[2, 3] == pytest.approx(0.013114369775071463, abs=1e-6)
    np.testing.assert_allclose(
        res["regression"].data,
        [
            [-0.08991093798685859, -0.05791792355728674],
            [-0.00213277562295713, 0.00745161136316538],
            [0.01063904099118497, -0.00596681203800319],
        ],
        atol=1e-7,
    )
    expected = com_within(ndimage, data, 4.3, 3.6, 4.5, 1.5)[2, 3]
    np.testing.assert_allclose(res["raw_com"].data[2, 3], expected, rtol=1e-6)


def test_errors(ctx, positive_data):
    with pytest.raises(ValueError, match="ri is 3 and r is 2"):
        CoMUDF.with_params(r=2, ri=3)
    with pytest.raises(ValueError, match="regression is 2"):
        CoMUDF.with_params(regression=2)
    with pytest.raises(ValueError, match=r"regression has shape \(2, 2\)"):
        CoMUDF.with_params(regression=np.zeros((2, 2)))
    with pytest.raises(TypeError, match="com_params is a dict"):
        CoMUDF(com_params={"r": 3})
    data = positive_data.reshape(-1, *SIG)
    with pytest.raises(ValueError, match=r"navigation shape is \(63,\)"):
        run(ctx, data, CoMUDF())
    assert CoMUDF().params.com_params == CoMParams()
