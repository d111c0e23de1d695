"""Mask generators against NumPy formulas, and the properties of antialiased masks."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from dataflow import masks

# (centerX, centerY, imageSizeX, imageSizeY): integer, fractional, off-frame centres
GEOMETRIES = [(16, 16, 32, 32), (7.2, 5.9, 12, 16), (0.5, 3.5, 9, 8), (-2.3, 20.7, 17, 19)]


@pytest.fixture
def sparse():
    return pytest.importorskip("sparse")


def distance(cx, cy, sx, sy):
    """Distance of every pixel centre from (cy, cx), shape (sy, sx)."""
    y, x = np.mgrid[0:sy, 0:sx]
    return np.hypot(y - cy, x - cx)


def away_from_centre(cx, cy, sx, sy):
    """False at the centre pixel (rounded centre), which antialiased masks set to 1."""
    away = distance(cx, cy, sx, sy) >= 0.5
    yy, xx = int(np.round(cy)), int(np.round(cx))
    if 0 <= yy < sy and 0 <= xx < sx:
        away[yy, xx] = False
    return away


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("radius", [0.3, 1, 2.5, 7.7, 40, np.inf])
def test_circular_selects_pixels_within_radius(geometry, radius):
    cx, cy, sx, sy = geometry
    mask = masks.circular(cx, cy, sx, sy, radius)
    assert mask.shape == (sy, sx)
    assert mask.dtype == bool
    d = distance(cx, cy, sx, sy)
    clear = np.abs(d - radius) > 1e-9  # pixels exactly on the boundary: rounding decides
    np.testing.assert_array_equal(mask[clear], (d <= radius)[clear])


def test_circular_boundary_pixels_are_inside():
    mask = masks.circular(centerX=2, centerY=2, imageSizeX=5, imageSizeY=5, radius=2)
    assert mask[0, 2]
    assert mask[2, 4]
    assert not mask[0, 1]


@pytest.mark.parametrize("geometry", GEOMETRIES[:3])
@pytest.mark.parametrize("radius", [1.7, 2.5, 6.3])
def test_circular_antialiased_properties(geometry, radius):
    cx, cy, sx, sy = geometry
    aa = masks.circular(cx, cy, sx, sy, radius, antialiased=True)
    d = distance(cx, cy, sx, sy)
    assert aa.dtype == np.float64
    assert aa.shape == (sy, sx)
    assert aa.min() >= 0
    assert aa.max() <= 1
    away = away_from_centre(cx, cy, sx, sy)
    np.testing.assert_allclose(aa[away & (d <= radius - 0.5)], 1)
    np.testing.assert_allclose(aa[d >= radius + 0.5], 0)
    band = away & (np.abs(d - radius) < 0.5)
    np.testing.assert_allclose(aa[band], radius + 0.5 - d[band], atol=1e-12)
    # thresholding at one half gives the hard mask
    hard = masks.circular(cx, cy, sx, sy, radius)
    clear = away & (np.abs(d - radius) > 1e-9)
    np.testing.assert_array_equal((aa >= 0.5)[clear], hard[clear])
    yy, xx = int(np.round(cy)), int(np.round(cx))
    if 0 <= yy < sy and 0 <= xx < sx:
        assert aa[yy, xx] == 1


def test_circular_antialiased_area_is_the_disk_area():
    aa = masks.circular(50.3, 49.8, 100, 100, radius=30, antialiased=True)
    assert aa.sum() == pytest.approx(np.pi * 30**2, rel=1e-3)


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize(("radius", "radius_inner"), [(5, 2), (7.7, 0), (3, 2.5), (40, 10)])
def test_ring_is_an_annulus(geometry, radius, radius_inner):
    cx, cy, sx, sy = geometry
    mask = masks.ring(cx, cy, sx, sy, radius, radius_inner)
    d = distance(cx, cy, sx, sy)
    clear = (np.abs(d - radius) > 1e-9) & (np.abs(d - radius_inner) > 1e-9)
    np.testing.assert_array_equal(mask[clear], ((d <= radius) & (d > radius_inner))[clear])


@pytest.mark.parametrize(("radius", "radius_inner"), [(6, 2.5), (9.3, 4.1), (4, 0.5)])
def test_antialiased_disk_and_ring_tile_the_larger_disk(radius, radius_inner):
    cx, cy, sx, sy = 12.4, 10.7, 25, 23
    inner = masks.circular(cx, cy, sx, sy, radius_inner, antialiased=True)
    annulus = masks.ring(cx, cy, sx, sy, radius, radius_inner, antialiased=True)
    outer = masks.circular(cx, cy, sx, sy, radius, antialiased=True)
    away = away_from_centre(cx, cy, sx, sy)
    np.testing.assert_allclose((inner + annulus)[away], outer[away], atol=1e-12)


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("radius", [1, 2.5, 7.7])
def test_radial_gradient_rises_linearly(geometry, radius):
    cx, cy, sx, sy = geometry
    d = distance(cx, cy, sx, sy)
    grad = masks.radial_gradient(cx, cy, sx, sy, radius)
    expected = np.where(d <= radius, d / radius, 0)
    np.testing.assert_allclose(grad, expected, atol=1e-12)


def test_radial_gradient_antialiased_is_the_piecewise_template():
    cx, cy, sx, sy, radius = 8.3, 7.6, 17, 15, 5.2
    d = distance(cx, cy, sx, sy)
    grad = masks.radial_gradient(cx, cy, sx, sy, radius, antialiased=True)
    inside = d < radius - 0.5
    band = np.abs(d - radius) <= 0.5
    np.testing.assert_allclose(grad[inside], d[inside] / radius)
    np.testing.assert_allclose(grad[band & ~inside], ((radius - d) / 0.5)[band & ~inside])
    np.testing.assert_array_equal(grad[d >= radius + 0.5], 0)


def test_radial_gradient_background_subtraction_regions():
    r = np.linspace(0, 10, 101)
    t = masks.radial_gradient_background_subtraction(r, r0=4, r_outer=7, delta=2)
    np.testing.assert_allclose(t[r < 3], r[r < 3] / 4)
    band = (r >= 3) & (r < 5)
    np.testing.assert_allclose(t[band], (4 - r[band]) / 1)
    np.testing.assert_array_equal(t[(r >= 5) & (r <= 7)], -1)
    np.testing.assert_array_equal(t[r > 7], 0)


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_polar_map(geometry):
    cx, cy, sx, sy = geometry
    y, x = np.mgrid[0:sy, 0:sx]
    r, phi = masks.polar_map(cx, cy, sx, sy)
    np.testing.assert_allclose(r, np.hypot(y - cy, x - cx), rtol=1e-14)
    np.testing.assert_allclose(phi, np.arctan2(y - cy, x - cx), rtol=1e-14)


@pytest.mark.parametrize(("stretch", "angle"), [(2.0, 0.0), (0.5, np.pi / 2), (1.5, 0.4)])
def test_polar_map_stretched(stretch, angle):
    cx, cy, sx, sy = 6.5, 4.2, 13, 9
    y, x = np.mgrid[0:sy, 0:sx]
    z = ((x - cx) + 1j * (y - cy)) * np.exp(-1j * angle)  # rotate back, then stretch y
    z = z.real + 1j * z.imag / stretch
    r, phi = masks.polar_map(cx, cy, sx, sy, stretchY=stretch, angle=angle)
    np.testing.assert_allclose(r, np.abs(z), atol=1e-12)
    np.testing.assert_allclose(np.exp(1j * phi), np.exp(1j * np.angle(z)), atol=1e-12)


def test_bounding_radius_covers_the_frame():
    for cx, cy, sx, sy in GEOMETRIES[:3]:
        radius = masks.bounding_radius(cx, cy, sx, sy)
        assert masks.circular(cx, cy, sx, sy, radius - 1).all()


@pytest.mark.parametrize("geometry", GEOMETRIES[:3])
@pytest.mark.parametrize(("radius", "radius_inner", "n_bins"), [(6, 0, 6), (8, 2, 3), (5, 0.2, 4)])
def test_radial_bins_tile_the_antialiased_annulus(geometry, radius, radius_inner, n_bins):
    cx, cy, sx, sy = geometry
    bins = masks.radial_bins(cx, cy, sx, sy, radius, radius_inner, n_bins, use_sparse=False)
    assert bins.shape == (n_bins, sy, sx)
    assert bins.min() >= 0
    assert bins.max() <= 1
    d = distance(cx, cy, sx, sy)
    away = away_from_centre(cx, cy, sx, sy)
    if radius_inner:
        expected = masks.ring(cx, cy, sx, sy, radius, radius_inner, antialiased=True)
    else:
        expected = masks.circular(cx, cy, sx, sy, radius, antialiased=True)
    np.testing.assert_allclose(bins.sum(axis=0)[away], expected[away], atol=1e-12)
    # each bin is the one-pixel band around its centre radius, clipped to the bin
    width = (radius - radius_inner) / n_bins
    for i in range(n_bins):
        r0 = radius_inner + width * (i + 0.5)
        band = np.clip(width / 2 + 0.5 - np.abs(d - r0), 0, 1)
        np.testing.assert_allclose(bins[i][away], band[away], atol=1e-12)


def test_radial_bins_defaults_cover_the_frame():
    bins = masks.radial_bins(7.3, 6.1, 15, 12, use_sparse=False)
    assert len(bins) == masks.bounding_radius(7.3, 6.1, 15, 12)
    np.testing.assert_allclose(bins.sum(axis=0), 1, atol=1e-12)


def test_radial_bins_normalize():
    bins = masks.radial_bins(
        16.2,
        15.7,
        32,
        32,
        radius=12,
        radius_inner=1,
        n_bins=5,
        normalize=True,
        use_sparse=False,
        dtype=np.float32,
    )
    assert bins.dtype == np.float32
    np.testing.assert_allclose(bins.sum(axis=(1, 2)), 1, rtol=1e-6)


def test_radial_bins_sparse_equals_dense(sparse):
    kw = {"radius": 10, "radius_inner": 0.3, "n_bins": 6, "normalize": True}
    dense = masks.radial_bins(12.4, 11.1, 25, 23, use_sparse=False, **kw)
    sp = masks.radial_bins(12.4, 11.1, 25, 23, use_sparse=True, **kw)
    assert isinstance(sp, sparse.COO)
    np.testing.assert_array_equal(sp.todense(), dense)
    # by default sparse when a bin covers less than a tenth of the frame
    assert isinstance(masks.radial_bins(64, 64, 128, 128, radius=60, n_bins=30), sparse.COO)
    assert isinstance(masks.radial_bins(8, 8, 16, 16, radius=8, n_bins=2), np.ndarray)


def test_sparse_output_without_sparse_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sparse", None)
    with pytest.raises(ImportError, match=r"dataflow-udf\[sparse\]"):
        masks.radial_bins(8, 8, 16, 16, radius=8, n_bins=2, use_sparse=True)


@pytest.mark.parametrize("antialiased", [False, True])
def test_background_subtraction(antialiased):
    cx, cy, sx, sy, radius, inner = 15.3, 16.6, 32, 33, 9.5, 4.2
    m = masks.background_subtraction(cx, cy, sx, sy, radius, inner, antialiased=antialiased)
    disk = masks.circular(cx, cy, sx, sy, inner, antialiased=antialiased).astype(float)
    annulus = masks.ring(cx, cy, sx, sy, radius, inner, antialiased=antialiased).astype(float)
    np.testing.assert_allclose(m, disk - annulus * disk.sum() / annulus.sum())
    assert m.sum() == pytest.approx(0, abs=1e-9)
    assert m.max() == 1


def test_balance():
    rng = np.random.default_rng(3)
    t = rng.standard_normal((7, 9))
    b = masks.balance(t)
    assert b.sum() == pytest.approx(0, abs=1e-12)
    np.testing.assert_array_equal(b[t > 0], t[t > 0])
    assert (np.sign(b) == np.sign(t)).all()


@pytest.mark.parametrize(
    ("X", "Y", "Width", "Height"),
    [(1, 0, 2, 1), (3, 4, -2, 3), (3, 4, 2, -3), (3, 4, -2, -3), (-3, -2, 5, 4), (2, 2, 50, 50)],
)
def test_rectangular_includes_both_corners(X, Y, Width, Height):
    mask = masks.rectangular(X, Y, Width, Height, imageSizeX=8, imageSizeY=9)
    y, x = np.mgrid[0:9, 0:8]
    expected = (
        (y >= min(Y, Y + Height))
        & (y <= max(Y, Y + Height))
        & (x >= min(X, X + Width))
        & (x <= max(X, X + Width))
    )
    np.testing.assert_array_equal(mask, expected)


def test_rectangular_empty_and_outside():
    assert not masks.rectangular(2, 2, 0, 3, 8, 9).any()
    assert not masks.rectangular(0, -10, 2, 3, 5, 20).any()  # entirely above the image
    assert not masks.rectangular(20, 2, 3, 3, 8, 9).any()


def test_gradients():
    y, x = np.mgrid[0:7, 0:5]
    np.testing.assert_array_equal(masks.gradient_x(5, 7), x)
    np.testing.assert_array_equal(masks.gradient_y(5, 7), y)
    assert masks.gradient_x(5, 7).dtype == np.float32
    assert masks.gradient_y(5, 7, dtype=np.int32).dtype == np.int32


def test_sparse_circular_multi_stack(sparse):
    stack = masks.sparse_circular_multi_stack(
        mask_index=[0, 1, 1, 3],
        centerX=[16, 20, 2, 30],
        centerY=[16, 10, 5, 1],
        imageSizeX=32,
        imageSizeY=32,
        radius=3,
    )
    assert isinstance(stack, sparse.COO)
    assert stack.shape == (4, 32, 32)
    dense = stack.todense()
    np.testing.assert_array_equal(dense[0], masks.circular(16, 16, 32, 32, 3))
    np.testing.assert_array_equal(
        dense[1], masks.circular(20, 10, 32, 32, 3) | masks.circular(2, 5, 32, 32, 3)
    )
    assert not dense[2].any()
    np.testing.assert_array_equal(dense[3], masks.circular(30, 1, 32, 32, 3))  # clipped


def test_sparse_template_multi_stack(sparse):
    template = np.arange(6.0).reshape(2, 3)
    stack = masks.sparse_template_multi_stack([0, 2], [0, 7], [1, 10], template, 9, 11)
    dense = stack.todense()
    expected = np.zeros((3, 11, 9))
    expected[0, 1:3, 0:3] = template
    expected[2, 10:11, 7:9] = template[:1, :2]
    np.testing.assert_array_equal(dense, expected)


def test_dense_sparse_helpers(sparse):
    import scipy.sparse

    a = np.eye(3)
    assert not masks.is_sparse(a)
    assert masks.is_sparse(scipy.sparse.csr_matrix(a))
    assert masks.is_sparse(sparse.COO.from_numpy(a))
    np.testing.assert_array_equal(masks.to_dense(scipy.sparse.csr_matrix(a)), a)
    np.testing.assert_array_equal(masks.to_dense(sparse.COO.from_numpy(a)), a)
    np.testing.assert_array_equal(masks.to_sparse(a).todense(), a)
    roi = masks.to_sparse([((0, 1), True), ((2, 2), True)], shape=(3, 3)).todense()
    np.testing.assert_array_equal(np.argwhere(roi), [[0, 1], [2, 2]])


def test_values_computed_with_libertem():
    # regression numbers from libertem.masks 0.16.0, computed by hand with the same arguments
    rows, cols = [4, 1, 7, 2], [8, 5, 2, 3]
    aa = masks.circular(5.3, 4.6, 11, 10, 3.2, antialiased=True)[rows, cols]
    np.testing.assert_allclose(
        aa, [0.9341366628121337, 0.08752162636231198, 0, 0.22868900845804419]
    )
    grad = masks.radial_gradient(5.3, 4.6, 11, 10, 3.2, antialiased=True)[rows, cols]
    np.testing.assert_allclose(
        grad, [0.8682733256242674, -0.824956747275376, 0, -0.5426219830839116]
    )
    ring = masks.ring(5.3, 4.6, 11, 10, 3.2, 1.1, antialiased=True)[[4, 5, 7, 3], [6, 5, 2, 3]]
    np.testing.assert_allclose(ring, [0.3219544457292882, 0, 0, 0.898214854775621])
    bg = masks.background_subtraction(5.3, 4.6, 11, 10, 4.2, 2.1, antialiased=True)
    np.testing.assert_allclose(
        bg[[4, 5, 7, 2], [8, 5, 2, 3]],
        [-0.3396158576061678, 1, -0.2104120092902327, -0.3396158576061678],
    )
    bins = masks.radial_bins(5.3, 4.6, 11, 10, radius=4, n_bins=3, normalize=True, use_sparse=False)
    np.testing.assert_allclose(bins[:, 4, 8], [0, 0.02385141091948851, 0.02155839369324281])
    # and the same numbers from the formulas these tests check against
    d = distance(5.3, 4.6, 11, 10)
    np.testing.assert_allclose(aa, np.clip(3.2 + 0.5 - d[rows, cols], 0, 1))
