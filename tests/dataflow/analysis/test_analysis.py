"""The analysis API (ctx.create_*_analysis, ctx.run) against NumPy and SciPy references."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from dataflow.analysis import Analysis, AnalysisResult, AnalysisResultSet
from dataflow.errors import ResultNotFoundError, RoiError
from dataflow.udf.com import CoMUDF
from dataflow.udf.sum import SumUDF

NAV, SIG = (5, 6), (16, 16)
DTYPES = ["float32", "uint16"]


@pytest.fixture
def ndimage():
    return pytest.importorskip("scipy.ndimage")


def load(ctx, data, num_partitions=3):
    return ctx.load("memory", data=data, sig_dims=2, num_partitions=num_partitions)


def distance(cy, cx, shape=SIG):
    y, x = np.ogrid[: shape[0], : shape[1]]
    return np.sqrt((y - cy) ** 2 + (x - cx) ** 2)


def integrate(data, mask):
    """Every frame times ``mask``, summed, in float64."""
    return np.tensordot(data.astype(np.float64), mask, axes=((-2, -1), (0, 1)))


# masks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_mask_analysis_matches_tensordot_per_factory(ctx, data_factory, rng, dtype):
    data = data_factory(NAV + SIG, dtype)
    weights = rng.standard_normal(SIG).astype(np.float32)
    stack = [np.ones(SIG, dtype=np.float32), weights, np.eye(16, dtype=bool)]
    factories = [lambda m=m: m for m in stack]
    res = ctx.run(ctx.create_mask_analysis(factories=factories, dataset=load(ctx, data)))
    assert res.keys() == ["mask_0", "mask_1", "mask_2"]
    for i, mask in enumerate(stack):
        got = res[f"mask_{i}"]
        assert got.raw_data.shape == NAV
        assert got.raw_data.dtype == np.float32
        assert got.title == f"mask {i}"
        assert got.desc == f"integrated intensity for mask {i}"
        np.testing.assert_allclose(got.raw_data, integrate(data, mask), rtol=1e-5, atol=1e-3)


def test_mask_analysis_single_factory_stack(ctx, data_factory):
    data = data_factory(NAV + SIG)
    y, x = np.mgrid[0:16, 0:16].astype(np.float32)
    res = ctx.run(
        ctx.create_mask_analysis(
            factories=lambda: np.stack([y, x]), dataset=load(ctx, data), mask_count=2
        )
    )
    assert res.keys() == ["mask_0", "mask_1"]
    np.testing.assert_allclose(res.mask_1.raw_data, integrate(data, x), rtol=1e-5, atol=1e-3)


def test_mask_dtype_decides_the_result_dtype(ctx, data_factory):
    data = data_factory(NAV + SIG)
    mask = np.linspace(0, 1, 256).reshape(SIG)  # float64
    ds = load(ctx, data)
    wide = ctx.run(ctx.create_mask_analysis(factories=[lambda: mask], dataset=ds))
    narrow = ctx.run(
        ctx.create_mask_analysis(factories=[lambda: mask], dataset=ds, mask_dtype=np.float32)
    )
    assert wide.mask_0.raw_data.dtype == np.float64
    assert narrow.mask_0.raw_data.dtype == np.float32
    np.testing.assert_allclose(wide.mask_0.raw_data, integrate(data, mask), rtol=1e-6)


def test_complex_mask_gives_magnitude_and_parts(ctx, data_factory):
    data = data_factory(NAV + SIG)
    mask = np.exp(1j * np.linspace(0, 3, 256)).reshape(SIG).astype(np.complex64)
    res = ctx.run(ctx.create_mask_analysis(factories=[lambda: mask], dataset=load(ctx, data)))
    assert res.keys() == [
        "mask_0",
        "mask_0_log",
        "mask_0_real",
        "mask_0_imag",
        "mask_0_angle",
        "mask_0_complex",
    ]
    expected = integrate(data, mask)
    np.testing.assert_allclose(res.mask_0_complex.raw_data, expected, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(res.mask_0.raw_data, np.abs(expected), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(res.mask_0_imag.raw_data, expected.imag, rtol=1e-4, atol=1e-3)
    assert res.mask_0.title == "mask 0 [magn]"
    assert res.mask_0_complex.visualized.shape[:2] == NAV


# disk, ring, point ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("kwargs", "centre", "radius"),
    [({}, (8, 8), 2.4), ({"cx": 5, "cy": 9.5, "r": 4}, (9.5, 5), 4)],
)
def test_disk_matches_boolean_disk(ctx, data_factory, dtype, kwargs, centre, radius):
    data = data_factory(NAV + SIG, dtype)
    res = ctx.run(ctx.create_disk_analysis(dataset=load(ctx, data), **kwargs))
    disk = distance(*centre) <= radius
    assert res.keys() == ["intensity", "intensity_log"]
    assert [r.title for r in res] == ["intensity [lin]", "intensity [log]"]
    assert res.intensity.raw_data.dtype == np.float32
    np.testing.assert_allclose(res.intensity.raw_data, integrate(data, disk), rtol=1e-5)
    np.testing.assert_array_equal(res.intensity_log.raw_data, res.intensity.raw_data)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("kwargs", "centre", "ri", "ro"),
    [({}, (8, 8), 6.4, 8), ({"cx": 7, "cy": 6, "ri": 2, "ro": 5.5}, (6, 7), 2, 5.5)],
)
def test_ring_matches_boolean_ring(ctx, data_factory, dtype, kwargs, centre, ri, ro):
    data = data_factory(NAV + SIG, dtype)
    res = ctx.run(ctx.create_ring_analysis(dataset=load(ctx, data), **kwargs))
    d = distance(*centre)
    ring = (d > ri) & (d <= ro)
    assert ring.sum() > 0
    assert res.intensity.desc == "intensity of the integration over the selected ring lin-scaled"
    np.testing.assert_allclose(res.intensity.raw_data, integrate(data, ring), rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("kwargs", "yx"), [({}, (8, 8)), ({"x": 3, "y": 11}, (11, 3))])
def test_point_is_one_pixel(ctx, data_factory, dtype, kwargs, yx):
    data = data_factory(NAV + SIG, dtype)
    res = ctx.run(ctx.create_point_analysis(dataset=load(ctx, data), **kwargs))
    assert res.keys() == ["intensity", "intensity_log"]
    np.testing.assert_array_equal(res.intensity.raw_data, data[..., yx[0], yx[1]])


# sum and pick ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "result_dtype"),
    [("float32", "float32"), ("uint16", "float32"), ("float64", "float64")],
)
def test_sum_matches_numpy(ctx, data_factory, dtype, result_dtype):
    data = data_factory(NAV + SIG, dtype)
    res = ctx.run(ctx.create_sum_analysis(dataset=load(ctx, data)))
    assert res.keys() == ["intensity", "intensity_lin"]
    assert [r.title for r in res] == ["intensity [log]", "intensity [lin]"]
    assert res.intensity.raw_data.dtype == np.dtype(result_dtype)
    np.testing.assert_allclose(
        res.intensity.raw_data, data.astype(np.float64).sum((0, 1)), rtol=1e-5, atol=1e-3
    )


def test_sum_of_complex_data(ctx, data_factory):
    data = data_factory(NAV + SIG, "complex64")
    res = ctx.run(ctx.create_sum_analysis(dataset=load(ctx, data)))
    assert res.keys()[:2] == ["intensity_lin", "intensity"]  # LiberTEM: log view by default
    np.testing.assert_allclose(
        res.intensity_complex.raw_data, data.sum((0, 1)), rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(res.intensity.raw_data, np.abs(data.sum((0, 1))), rtol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pick_2d_nav(ctx, data_factory, dtype):
    data = data_factory(NAV + SIG, dtype)
    res = ctx.run(ctx.create_pick_analysis(dataset=load(ctx, data), x=4, y=2))
    assert res.keys() == ["intensity", "intensity_lin"]
    assert res.intensity.raw_data.dtype == data.dtype  # native dtype
    np.testing.assert_array_equal(res.intensity.raw_data, data[2, 4])
    assert res.intensity.desc == "the frame at x=4 y=2 log-scaled"


def test_pick_1d_and_3d_nav(ctx, data_factory):
    flat = data_factory((7, 8, 8))
    res = ctx.run(ctx.create_pick_analysis(dataset=load(ctx, flat), x=5))
    np.testing.assert_array_equal(res.intensity_lin.raw_data, flat[5])
    cube = data_factory((3, 4, 5, 8, 8), "uint16")
    res = ctx.run(ctx.create_pick_analysis(dataset=load(ctx, cube), x=4, y=1, z=2))
    np.testing.assert_array_equal(res.intensity.raw_data, cube[2, 1, 4])
    assert res.intensity.desc == "the frame at x=4 y=1 z=2 log-scaled"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"x": 1}, ValueError, r"got z=None, y=None, x=1; a dataset with 2D navigation needs "),
        ({"x": 1, "y": 1, "z": 0}, ValueError, "needs exactly x and y"),
        ({"x": 6, "y": 0}, ValueError, r"x is 6; the navigation shape is \(5, 6\)"),
        ({"x": 0, "y": -1}, ValueError, r"y is -1; .* must be in 0\.\.4"),
        ({"x": 1.5, "y": 0}, TypeError, "x is 1.5; expected an integer frame index"),
    ],
)
def test_pick_rejects_bad_coordinates(ctx, data_factory, kwargs, error, match):
    ds = load(ctx, data_factory(NAV + SIG))
    with pytest.raises(error, match=match):
        ctx.create_pick_analysis(dataset=ds, **kwargs)


# centre of mass ----------------------------------------------------------------------------


def scipy_shifts(ndimage, data, mask, cy, cx):
    """Per-frame centre of mass within ``mask`` minus ``(cy, cx)``, via scipy.ndimage."""
    com = np.array(
        [ndimage.center_of_mass(f * mask) for f in data.reshape(-1, *SIG).astype(np.float64)]
    )
    return (com[:, 0] - cy).reshape(NAV), (com[:, 1] - cx).reshape(NAV)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("kwargs", "cy", "cx", "r", "ri"),
    [
        ({}, 8, 8, np.inf, 0),
        ({"cx": 7.5, "cy": 9, "mask_radius": 6}, 9, 7.5, 6, 0),
        ({"cx": 8, "cy": 7, "mask_radius": 7, "mask_radius_inner": 3}, 7, 8, 7, 3),
    ],
)
def test_com_matches_scipy(ctx, rng, ndimage, dtype, kwargs, cy, cx, r, ri):
    data = (rng.random(NAV + SIG) * 100 + 10).astype(dtype)
    res = ctx.run(ctx.create_com_analysis(dataset=load(ctx, data), **kwargs))
    assert res.keys() == ["field", "magnitude", "divergence", "curl", "x", "y"]
    d = distance(cy, cx)
    mask = (d <= r) & (d > ri) if ri else d <= r  # ri=0: a disk, with its centre
    dy, dx = scipy_shifts(ndimage, data, mask, cy, cx)
    np.testing.assert_allclose(res.x.raw_data, dx, atol=1e-4)
    np.testing.assert_allclose(res.y.raw_data, dy, atol=1e-4)
    np.testing.assert_allclose(res.magnitude.raw_data, np.hypot(dx, dy), atol=1e-4)
    div = np.gradient(dy, axis=0) + np.gradient(dx, axis=1)
    curl = np.gradient(dy, axis=1) - np.gradient(dx, axis=0)
    np.testing.assert_allclose(res.divergence.raw_data, div, atol=1e-4)
    np.testing.assert_allclose(res.curl.raw_data, curl, atol=1e-4)
    field_x, field_y = res.field.raw_data
    np.testing.assert_array_equal(field_x, res.x.raw_data)
    np.testing.assert_array_equal(field_y, res.y.raw_data)
    assert res.field.include_in_download is False
    assert res.x.include_in_download is True


@pytest.mark.parametrize(("scan_rotation", "flip_y"), [(0.0, True), (-30.0, False), (75.0, True)])
def test_com_corrections_follow_comudf(ctx, rng, scan_rotation, flip_y):
    data = (rng.random(NAV + SIG) + 0.1).astype(np.float32)
    ds = load(ctx, data)
    res = ctx.run(
        ctx.create_com_analysis(
            dataset=ds, mask_radius=6, flip_y=flip_y, scan_rotation=scan_rotation
        )
    )
    udf = CoMUDF.with_params(cy=8, cx=8, r=6, flip_y=flip_y, scan_rotation=scan_rotation)
    ref = ctx.run_udf(dataset=ds, udf=udf)
    np.testing.assert_allclose(res.x.raw_data, ref["field_x"].data, atol=1e-5)
    np.testing.assert_allclose(res.y.raw_data, ref["field_y"].data, atol=1e-5)
    np.testing.assert_allclose(res.divergence.raw_data, ref["divergence"].data, atol=1e-5)
    np.testing.assert_allclose(res.curl.raw_data, ref["curl"].data, atol=1e-5)
    # the rotation turns the detector shift (dy, dx) by scan_rotation degrees, y first flipped
    dy, dx = ref["raw_shifts"].data[..., 0], ref["raw_shifts"].data[..., 1]
    z = (dx + 1j * (-dy if flip_y else dy)) * np.exp(1j * np.deg2rad(scan_rotation))
    np.testing.assert_allclose(res.x.raw_data, z.real, atol=1e-5)
    np.testing.assert_allclose(res.y.raw_data, z.imag, atol=1e-5)


def test_com_without_gradients_on_a_single_row(ctx, rng):
    data = (rng.random((1, 6, *SIG)) + 0.1).astype(np.float32)
    res = ctx.run(ctx.create_com_analysis(dataset=load(ctx, data, num_partitions=2)))
    assert res.keys() == ["field", "magnitude", "x", "y"]


# radial Fourier ----------------------------------------------------------------------------


def ring_weights(cy, cx, ri, ro, n_bins):
    """Antialiased rings: a pixel at radius r weighs its one-pixel band's overlap with the bin."""
    r = distance(cy, cx)
    width = (ro - ri) / n_bins
    centres = ri + width * (np.arange(n_bins) + 0.5)
    w = np.clip(width / 2 + 0.5 - np.abs(r - centres[:, None, None]), 0, 1)
    if ri < 0.5:  # LiberTEM patches the centre pixel of the first ring
        w[0, round(cy), round(cx)] = 1 - ri
    return w


def fourier_reference(data, cy, cx, ri, ro, n_bins, max_order):
    """Direct sums: per ring weight w_b and order o, sum(frame * w_b * exp(1j o phi))."""
    y, x = np.mgrid[0 : SIG[0], 0 : SIG[1]]
    phi = np.arctan2(y - cy, x - cx)
    w = ring_weights(cy, cx, ri, ro, n_bins)
    orders = np.arange(max_order + 1)
    kernels = w[:, None] * np.exp(1j * orders[:, None, None] * phi)  # (bins, orders, y, x)
    return np.einsum("...yx,boyx->bo...", data.astype(np.float64), kernels)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("use_sparse", [None, False, True])
def test_radial_fourier_matches_direct_sums(ctx, data_factory, dtype, use_sparse):
    data = data_factory(NAV + SIG, dtype)
    analysis = ctx.create_radial_fourier_analysis(
        dataset=load(ctx, data), ri=1, ro=7, n_bins=2, max_order=5, use_sparse=use_sparse
    )
    res = ctx.run(analysis)
    c = fourier_reference(data, 8, 8, 1, 7, 2, 5)
    scale = np.abs(c).max()
    np.testing.assert_allclose(res.raw_results, c, atol=2e-6 * scale)
    assert res.raw_results.shape == (2, 6, *NAV)
    absolute = np.abs(c)
    normal = np.maximum(1, absolute[:, 0])
    for b in range(2):
        for o in range(6):
            np.testing.assert_allclose(
                res[f"absolute_{b}_{o}"].raw_data, absolute[b, o], atol=2e-6 * scale
            )
            np.testing.assert_allclose(res[f"phase_{b}_{o}"].raw_data, np.angle(c[b, o]), atol=1e-3)
            expected = c[b, o] if o == 0 else c[b, o] / normal[b]
            np.testing.assert_allclose(
                res[f"complex_{b}_{o}"].raw_data, expected, atol=2e-6 * scale
            )
        # LiberTEM's dominant order: the largest order >= 1, 0 below a fifth of the bin's max
        higher = absolute[b, 1:]
        dominant = np.where(
            np.all(higher < higher.max() * 0.2, axis=0), 0, np.argmax(higher, axis=0) + 1
        )
        np.testing.assert_array_equal(res[f"dominant_{b}"].raw_data, dominant)


def test_radial_fourier_key_order(ctx, data_factory):
    ds = load(ctx, data_factory(NAV + SIG))
    res = ctx.run(ctx.create_radial_fourier_analysis(dataset=ds, n_bins=2, max_order=1))
    assert res.keys() == [
        "dominant_0",
        "absolute_0_0",
        "absolute_0_1",
        "dominant_1",
        "absolute_1_0",
        "absolute_1_1",
        "phase_0_0",
        "phase_0_1",
        "phase_1_0",
        "phase_1_1",
        "complex_0_0",
        "complex_0_1",
        "complex_1_0",
        "complex_1_1",
    ]
    assert res.dominant_1.title == "dominant order of bin 1"
    assert res.complex_0_1.title == "bin 0 order 1"


def test_radial_fourier_finds_the_symmetry_of_a_pattern(ctx):
    """A ring pattern cos(6 phi - theta): order 6 dominates, with phase theta.

    On an angular grid this is what an FFT over the angle gives: the coefficient of
    order 6 is half the sum of the weights, times exp(1j theta).
    """
    y, x = np.mgrid[0:32, 0:32]
    phi = np.arctan2(y - 16, x - 16)
    thetas = np.linspace(-2.5, 2.5, 6).reshape(2, 3)
    data = (1 + np.cos(6 * phi - thetas[..., None, None])).astype(np.float32)
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=2)
    res = ctx.run(ctx.create_radial_fourier_analysis(dataset=ds, ri=6, ro=14, max_order=8))
    np.testing.assert_array_equal(res.dominant_0.raw_data, 6)
    np.testing.assert_allclose(res.phase_0_6.raw_data, thetas, atol=0.05)
    # the same pattern sampled evenly on a circle: its FFT over the angle bins
    angles = np.linspace(-np.pi, np.pi, 360, endpoint=False)
    samples = 1 + np.cos(6 * angles - thetas.reshape(-1, 1))
    spectrum = np.fft.ifft(samples, axis=-1) * np.exp(-1j * 6 * np.pi)  # sum f e^{+i o phi}
    np.testing.assert_allclose(res.phase_0_6.raw_data.ravel(), np.angle(spectrum[:, 6]), atol=0.05)
    ratio = np.abs(spectrum[:, 6]) / np.abs(spectrum[:, 0])  # 0.5
    np.testing.assert_allclose(np.abs(res.complex_0_6.raw_data).ravel(), ratio, atol=0.03)


def test_radial_fourier_with_roi(ctx, data_factory):
    data = data_factory(NAV + SIG)
    roi = np.zeros(NAV, dtype=bool)
    roi[2:4, 1:5] = True
    res = ctx.run(
        ctx.create_radial_fourier_analysis(dataset=load(ctx, data), n_bins=2, max_order=3),
        roi=roi,
    )
    assert np.isnan(res.absolute_1_2.raw_data[~roi]).all()
    c = fourier_reference(data, 8, 8, 0, 13, 2, 3)  # ro: bounding radius
    inside = np.abs(res.raw_results[..., roi] - c[..., roi])
    assert inside.max() < 2e-6 * np.abs(c).max()
    for result in res:
        assert result.visualized.shape[:2] == NAV


# ROI ---------------------------------------------------------------------------------------


def test_roi_is_passed_on_and_nav_results_are_nan_outside(ctx, data_factory):
    data = data_factory(NAV + SIG)
    ds = load(ctx, data)
    roi = np.zeros(NAV, dtype=bool)
    roi[1:3, 2:5] = True
    res = ctx.run(ctx.create_disk_analysis(dataset=ds, r=5), roi=roi)
    disk = distance(8, 8) <= 5
    got = res.intensity.raw_data
    assert np.isnan(got[~roi]).all()
    np.testing.assert_allclose(got[roi], integrate(data, disk)[roi], rtol=1e-5)
    com = ctx.run(ctx.create_com_analysis(dataset=ds), roi=roi)
    assert np.isnan(com.x.raw_data[~roi]).all()
    assert np.isfinite(com.x.raw_data[roi]).all()
    total = ctx.run(ctx.create_sum_analysis(dataset=ds), roi=roi)
    np.testing.assert_allclose(total.intensity.raw_data, data[roi].sum(0), rtol=1e-5)
    assert total.intensity.visualized.shape[:2] == SIG


def test_roi_replaces_the_picked_frame_as_in_libertem(ctx, data_factory):
    data = data_factory(NAV + SIG)
    ds = load(ctx, data)
    roi = np.zeros(NAV, dtype=bool)
    roi[3, 1] = True
    res = ctx.run(ctx.create_pick_analysis(dataset=ds, x=0, y=0), roi=roi)
    np.testing.assert_array_equal(res.intensity.raw_data, data[3, 1])
    res = ctx.run(ctx.create_pick_analysis(dataset=ds, x=0, y=0), roi=(4, 5))
    np.testing.assert_array_equal(res.intensity.raw_data, data[4, 5])


def test_roi_of_the_wrong_shape_is_rejected(ctx, data_factory):
    ds = load(ctx, data_factory(NAV + SIG))
    with pytest.raises(RoiError, match=r"roi has shape \(4, 4\); the navigation shape is"):
        ctx.run(ctx.create_sum_analysis(dataset=ds), roi=np.ones((4, 4), dtype=bool))


# result sets -------------------------------------------------------------------------------


def test_result_set_access_forms(ctx, data_factory):
    data = data_factory(NAV + SIG)
    shape = SIG
    res = ctx.run(
        ctx.create_mask_analysis(
            factories=[lambda: np.ones(shape), lambda: np.eye(*shape)], dataset=load(ctx, data)
        )
    )
    assert isinstance(res, AnalysisResultSet)
    assert res.mask_1 is res["mask_1"] is res[1] is list(res)[1]
    assert res[-1].key == "mask_1"
    assert [r.key for r in res[:1]] == ["mask_0"]
    assert len(res) == 2
    assert res.keys() == ["mask_0", "mask_1"]
    assert "mask_0" in res
    assert "mask_2" not in res
    assert res.raw_results is None
    assert isinstance(res.mask_0, AnalysisResult)
    np.testing.assert_array_equal(np.asarray(res.mask_0), res.mask_0.raw_data)
    np.testing.assert_allclose(np.asarray(res.mask_1), np.trace(data, axis1=2, axis2=3), rtol=1e-5)
    assert repr(res.mask_0) == "<AnalysisResult: mask_0>"


@pytest.mark.parametrize("error", [AttributeError, KeyError, ResultNotFoundError])
def test_missing_key_names_the_key_and_the_available_ones(ctx, data_factory, error):
    ds = load(ctx, data_factory(NAV + SIG))
    res = ctx.run(ctx.create_disk_analysis(dataset=ds))
    match = r"no result with key 'mask_0'; available keys: intensity, intensity_log"
    with pytest.raises(error, match=match):
        res["mask_0"]
    with pytest.raises(error, match=match):
        res.mask_0


def test_results_can_be_computed_lazily():
    calls = []

    def make():
        calls.append(1)
        return [AnalysisResult(np.zeros(2), visualized=None, title="t", desc="d", key="a")]

    res = AnalysisResultSet(make, raw_results="raw")
    assert calls == []
    assert res.keys() == ["a"]
    assert res.a.key == "a"
    assert calls == [1]


# pictures ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("create", "key", "shape"),
    [
        (lambda ctx, ds: ctx.create_disk_analysis(dataset=ds), "intensity_log", NAV),
        (lambda ctx, ds: ctx.create_sum_analysis(dataset=ds), "intensity", SIG),
        (lambda ctx, ds: ctx.create_pick_analysis(dataset=ds, x=1, y=1), "intensity", SIG),
        (lambda ctx, ds: ctx.create_com_analysis(dataset=ds), "field", NAV),
        (lambda ctx, ds: ctx.create_com_analysis(dataset=ds), "curl", NAV),
        (lambda ctx, ds: ctx.create_radial_fourier_analysis(dataset=ds), "dominant_0", NAV),
        (lambda ctx, ds: ctx.create_radial_fourier_analysis(dataset=ds), "phase_0_3", NAV),
        (lambda ctx, ds: ctx.create_radial_fourier_analysis(dataset=ds), "complex_0_2", NAV),
    ],
)
def test_visualized_is_rgb_of_the_result_shape_and_lazy(ctx, rng, create, key, shape):
    data = (rng.random(NAV + SIG) + 0.1).astype(np.float32)
    result = ctx.run(create(ctx, load(ctx, data)))[key]
    assert callable(result._visualized)  # nothing drawn yet
    picture = result.visualized
    assert picture.dtype == np.uint8
    assert picture.shape[:2] == shape
    assert picture.shape[2] in (3, 4)
    assert len(np.unique(picture.reshape(-1, picture.shape[2]), axis=0)) > 1
    assert result.visualized is picture  # drawn once


def test_importing_the_analyses_does_not_import_matplotlib(tmp_path):
    code = (
        "import sys, dataflow, dataflow.analysis;"
        "print('matplotlib' in {m.split('.')[0] for m in sys.modules})"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.strip() == "False"


# bad input ---------------------------------------------------------------------------------


def test_run_needs_an_analysis(ctx, data_factory):
    ds = load(ctx, data_factory(NAV + SIG))
    with pytest.raises(TypeError, match="job is a SumUDF; expected an Analysis"):
        ctx.run(SumUDF())
    with pytest.raises(TypeError, match="job is a str; expected an Analysis"):
        ctx.run("sum")
    assert isinstance(ctx.create_sum_analysis(dataset=ds), Analysis)


@pytest.mark.parametrize(
    ("create", "error", "match"),
    [
        (
            lambda ctx, ds: ctx.create_ring_analysis(dataset=ds, ri=5, ro=5),
            ValueError,
            r"ri is 5 and ro is 5; expected 0 <= ri < ro",
        ),
        (
            lambda ctx, ds: ctx.create_ring_analysis(dataset=ds, ri=9),
            ValueError,
            r"ri is 9 and ro is 8.0; expected 0 <= ri < ro",
        ),
        (
            lambda ctx, ds: ctx.create_disk_analysis(dataset=ds, r=-1),
            ValueError,
            r"r is -1; expected a radius >= 0",
        ),
        (
            lambda ctx, ds: ctx.create_com_analysis(dataset=ds, mask_radius_inner=2),
            ValueError,
            "mask_radius_inner is 2 but mask_radius is not given",
        ),
        (
            lambda ctx, ds: ctx.create_com_analysis(dataset=ds, mask_radius=3, mask_radius_inner=4),
            ValueError,
            "mask_radius_inner is 4 and mask_radius is 3; expected 0 <= mask_radius_inner",
        ),
        (
            lambda ctx, ds: ctx.create_point_analysis(dataset=ds, x=16, y=0),
            ValueError,
            r"the point is x=16, y=0; expected a pixel of the frame shape \(16, 16\)",
        ),
        (
            lambda ctx, ds: ctx.create_radial_fourier_analysis(dataset=ds, n_bins=0),
            ValueError,
            "n_bins is 0; expected an integer >= 1",
        ),
        (
            lambda ctx, ds: ctx.create_radial_fourier_analysis(dataset=ds, ri=4, ro=2),
            ValueError,
            "ri is 4 and ro is 2; expected 0 <= ri < ro",
        ),
        (
            lambda ctx, ds: ctx.create_mask_analysis(factories=np.ones(SIG), dataset=ds),
            TypeError,
            "mask_factories is a ndarray; expected a function",
        ),
    ],
)
def test_bad_parameters_fail_when_the_analysis_is_created(ctx, data_factory, create, error, match):
    ds = load(ctx, data_factory(NAV + SIG))
    with pytest.raises(error, match=match):
        create(ctx, ds)


def test_navigation_and_signal_dimensions_are_checked(ctx, data_factory):
    flat = load(ctx, data_factory((7, *SIG)))
    with pytest.raises(ValueError, match=r"navigation shape \(7,\) and signal shape \(16, 16\)"):
        ctx.create_com_analysis(dataset=flat)
    cube = load(ctx, data_factory((2, 3, 4, 8, 8)))
    with pytest.raises(ValueError, match=r"navigation shape is \(2, 3, 4\); the point analysis"):
        ctx.create_point_analysis(dataset=cube)
    line_frames = ctx.load("memory", data=data_factory((4, 5, 16)), sig_dims=1)
    with pytest.raises(ValueError, match=r"signal shape is \(16,\); DiskMaskAnalysis needs 2D"):
        ctx.create_disk_analysis(dataset=line_frames)


def test_radial_fourier_defaults(ctx):
    ds = ctx.load("memory", data=np.zeros((2, 2, 64, 64), dtype=np.float32), sig_dims=2)
    default = ctx.create_radial_fourier_analysis(dataset=ds)
    p = default.parameters
    assert (p["cx"], p["cy"], p["ri"], p["ro"], p["n_bins"], p["max_order"]) == (
        32,
        32,
        0,
        47,
        1,
        24,
    )
    assert p["use_sparse"] is False  # one wide ring: dense
    assert len(ctx.run(default)) == 1 + 3 * 25
    thin = ctx.create_radial_fourier_analysis(dataset=ds, n_bins=10)
    assert thin.parameters["use_sparse"] == "scipy.sparse"
    assert thin.parameters["mask_count"] == 250
