"""Mask generators for virtual detectors, with the values of LiberTEM's ``libertem.masks``.

Every function takes LiberTEM's argument names and order (``centerX, centerY,
imageSizeX, imageSizeY, ...``) and returns arrays of shape ``(imageSizeY, imageSizeX)``,
so a mask factory written for LiberTEM runs unchanged after the import rename. The
results are meant as ``mask_factories`` of :class:`~dataflow.udf.masks.ApplyMasksUDF`.

Antialiased masks (``antialiased=True``) weigh each pixel by how far its centre lies
inside the boundary: 1 more than half a pixel inside, 0 more than half a pixel
outside, linear in between. The pixel at the rounded centre is always 1 (a disk of any
radius contains its centre).

Sparse output (``radial_bins(..., use_sparse=True)``, :func:`sparse_circular_multi_stack`)
needs the optional ``sparse`` package: ``pip install 'dataflow-udf[sparse]'``.

Examples
--------
>>> from dataflow import masks
>>> masks.circular(centerX=2, centerY=2, imageSizeX=5, imageSizeY=5, radius=1).astype(int)
array([[0, 0, 0, 0, 0],
       [0, 0, 1, 0, 0],
       [0, 1, 1, 1, 0],
       [0, 0, 1, 0, 0],
       [0, 0, 0, 0, 0]])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = [
    "MaskArrayType",
    "MaskFactoriesType",
    "background_subtraction",
    "balance",
    "bounding_radius",
    "circular",
    "gradient_x",
    "gradient_y",
    "is_sparse",
    "polar_map",
    "radial_bins",
    "radial_gradient",
    "radial_gradient_background_subtraction",
    "rectangular",
    "ring",
    "sparse_circular_multi_stack",
    "sparse_template_multi_stack",
    "to_dense",
    "to_sparse",
]

#: A mask: a NumPy array, or a scipy.sparse / pydata sparse array.
MaskArrayType: TypeAlias = Any
#: What :class:`~dataflow.udf.masks.ApplyMasksUDF` takes: one factory returning a stack
#: of masks, or several factories returning one mask each.
MaskFactoriesType: TypeAlias = Callable[[], Any] | Iterable[Callable[[], Any]]

_SPARSE_HINT = "install it with pip install 'dataflow-udf[sparse]'"


def _import_sparse() -> Any:
    """The pydata ``sparse`` module, or an ImportError naming the extra to install."""
    try:
        import sparse
    except ImportError as e:
        raise ImportError(
            f"sparse output needs the optional package 'sparse' (pydata), which is not "
            f"installed; {_SPARSE_HINT}"
        ) from e
    return sparse


def _offsets(center: float, size: int) -> np.ndarray:
    """Pixel coordinates ``0 .. size - 1`` relative to ``center`` (float64)."""
    return np.arange(int(size)) - center


def _squared_radius(centerX: float, centerY: float, imageSizeX: int, imageSizeY: int) -> np.ndarray:
    """``dy**2 + dx**2`` of every pixel, shape ``(imageSizeY, imageSizeX)`` by broadcasting."""
    dy = _offsets(centerY, imageSizeY)[:, np.newaxis]
    dx = _offsets(centerX, imageSizeX)[np.newaxis, :]
    return dy * dy + dx * dx


def circular(
    centerX: float,
    centerY: float,
    imageSizeX: int,
    imageSizeY: int,
    radius: float,
    antialiased: bool = False,
) -> np.ndarray:
    """A disk: pixels whose centre lies within ``radius`` of ``(centerY, centerX)``.

    Parameters
    ----------
    centerX, centerY
        Centre of the disk in pixel coordinates (x: column, y: row).
    imageSizeX, imageSizeY
        Width and height of the mask.
    radius
        Radius in pixels; ``np.inf`` selects every pixel.
    antialiased
        Weigh boundary pixels linearly from 1 (half a pixel inside) to 0 (half a pixel
        outside) instead of a hard cut.

    Returns
    -------
    numpy.ndarray
        Shape ``(imageSizeY, imageSizeX)``; bool, or float64 when ``antialiased``.

    See Also
    --------
    ring, radial_bins

    Examples
    --------
    >>> m = circular(centerX=16, centerY=16, imageSizeX=32, imageSizeY=32, radius=5)
    >>> m.shape, m.dtype, int(m.sum())
    ((32, 32), dtype('bool'), 81)
    >>> aa = circular(16, 16, 32, 32, radius=5, antialiased=True)
    >>> float(aa.max()), bool(np.isclose(aa.sum(), np.pi * 5**2, rtol=0.02))
    (1.0, True)
    """
    if antialiased:
        return radial_bins(
            centerX, centerY, imageSizeX, imageSizeY, radius, n_bins=1, use_sparse=False
        )[0]
    return _squared_radius(centerX, centerY, imageSizeX, imageSizeY) <= radius * radius


def ring(
    centerX: float,
    centerY: float,
    imageSizeX: int,
    imageSizeY: int,
    radius: float,
    radius_inner: float,
    antialiased: bool = False,
) -> np.ndarray:
    """An annulus: within ``radius`` of the centre, and farther than ``radius_inner``.

    Parameters
    ----------
    centerX, centerY
        Centre in pixel coordinates.
    imageSizeX, imageSizeY
        Width and height of the mask.
    radius, radius_inner
        Outer and inner radius in pixels. Pixels exactly at ``radius`` are in the
        ring, pixels exactly at ``radius_inner`` are not.
    antialiased
        Linear weights across both boundaries, as in :func:`circular`. As in
        LiberTEM, an antialiased ring with ``radius_inner < 0.5`` sets the pixel
        at the rounded centre to ``1 - radius_inner``.

    Returns
    -------
    numpy.ndarray
        Shape ``(imageSizeY, imageSizeX)``; bool, or float64 when ``antialiased``.

    Examples
    --------
    >>> m = ring(centerX=16, centerY=16, imageSizeX=32, imageSizeY=32, radius=5, radius_inner=3)
    >>> int(m.sum()) == int(circular(16, 16, 32, 32, 5).sum() - circular(16, 16, 32, 32, 3).sum())
    True
    """
    if antialiased:
        return radial_bins(
            centerX,
            centerY,
            imageSizeX,
            imageSizeY,
            radius=radius,
            radius_inner=radius_inner,
            n_bins=1,
            use_sparse=False,
        )[0]
    r2 = _squared_radius(centerX, centerY, imageSizeX, imageSizeY)
    return (r2 <= radius * radius) & ~(r2 <= radius_inner * radius_inner)


def radial_gradient(
    centerX: float,
    centerY: float,
    imageSizeX: int,
    imageSizeY: int,
    radius: float,
    antialiased: bool = False,
) -> np.ndarray:
    """A disk whose value rises linearly with the distance from the centre, 0 to 1.

    Parameters
    ----------
    centerX, centerY
        Centre in pixel coordinates.
    imageSizeX, imageSizeY
        Width and height of the mask.
    radius
        Radius of the disk; the value at distance ``r`` is ``r / radius``.
    antialiased
        Use :func:`radial_gradient_background_subtraction` with ``r_outer=0``: the
        gradient up to ``radius - 0.5``, then a linear transition from 1 down to -1 at
        ``radius + 0.5`` (LiberTEM's definition).

    Returns
    -------
    numpy.ndarray
        float64, shape ``(imageSizeY, imageSizeX)``.

    Examples
    --------
    >>> g = radial_gradient(centerX=2, centerY=2, imageSizeX=5, imageSizeY=5, radius=2)
    >>> g[2].tolist()
    [1.0, 0.5, 0.0, 0.5, 1.0]
    """
    r2 = _squared_radius(centerX, centerY, imageSizeX, imageSizeY)
    r = np.sqrt(r2)
    if antialiased:
        return radial_gradient_background_subtraction(r=r, r0=radius, r_outer=0)
    return (r2 <= radius * radius) * (r / radius)


def radial_gradient_background_subtraction(
    r: np.ndarray, r0: float, r_outer: float, delta: float = 1
) -> np.ndarray:
    """A template from a map of radii: a gradient inside, a transition, a negative ring.

    * ``r < r0 - delta/2``: ``r / r0`` (a linear gradient from 0 to about 1);
    * ``r0 - delta/2 <= r < r0 + delta/2``: ``(r0 - r) / (delta/2)``, from 1 down to -1;
    * ``r0 + delta/2 <= r <= r_outer``: -1;
    * elsewhere 0.

    Parameters
    ----------
    r
        Radius of every pixel, e.g. from :func:`polar_map` (which can also describe
        elliptically distorted coordinates).
    r0
        Radius of the gradient, in units of ``r``.
    r_outer
        Outer radius of the negative ring.
    delta
        Width of the transition region.

    Returns
    -------
    numpy.ndarray
        Same shape and dtype as ``r``.

    Examples
    --------
    >>> r = np.array([0.0, 1.0, 2.0, 2.75, 3.0, 4.0, 6.0])
    >>> radial_gradient_background_subtraction(r, r0=3, r_outer=5).tolist()
    [0.0, 0.3333333333333333, 0.6666666666666666, 0.5, 0.0, -1.0, 0.0]
    """
    r = np.asarray(r)
    result = np.zeros_like(r)
    half = delta / 2
    within = r < r0 - half
    result[within] = r[within] / r0
    transition = (r >= r0 - half) & (r < r0 + half)
    result[transition] = (r0 - r[transition]) / half
    without = (r >= r0 + half) & (r <= r_outer)
    result[without] = -1
    return result


def polar_map(
    centerX: float,
    centerY: float,
    imageSizeX: int,
    imageSizeY: int,
    stretchY: float = 1.0,
    angle: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Radius and angle of every pixel around a centre.

    Parameters
    ----------
    centerX, centerY
        Origin in pixel coordinates.
    imageSizeX, imageSizeY
        Width and height of the maps.
    stretchY, angle
        Make the coordinates elliptical: the displacement is rotated by ``angle``
        (radians) and its y component divided by ``stretchY``; ``angle=0`` stretches
        along y.

    Returns
    -------
    r, phi : numpy.ndarray
        float64 maps of shape ``(imageSizeY, imageSizeX)``: ``r = sqrt(dy**2 + dx**2)``
        and ``phi = arctan2(dy, dx)`` (radians, 0 along +x, pi/2 along +y, i.e. down).

    Examples
    --------
    >>> r, phi = polar_map(centerX=1, centerY=1, imageSizeX=3, imageSizeY=3)
    >>> float(r[0, 0]) == float(np.sqrt(2)), float(phi[2, 1]) == np.pi / 2
    (True, True)
    """
    y, x = np.mgrid[0:imageSizeY, 0:imageSizeX]
    dy = y - centerY
    dx = x - centerX
    if stretchY != 1.0 or angle != 0.0:
        cos, sin = np.cos(angle), np.sin(angle)
        dy, dx = (dy * cos - dx * sin) / stretchY, dx * cos + dy * sin
    r = np.sqrt(dy * dy + dx * dx)
    phi = np.arctan2(dy, dx)
    return (
        np.asarray(r, dtype=np.float64).reshape(imageSizeY, imageSizeX),
        np.asarray(phi, dtype=np.float64).reshape(imageSizeY, imageSizeX),
    )


def balance(template: np.ndarray) -> np.ndarray:
    """Scale the negative part of ``template`` so that the whole sums to zero.

    A balanced mask gives zero on a uniform background (and on a linear gradient,
    if the template is symmetric).

    Parameters
    ----------
    template
        A mask with positive and negative values.

    Returns
    -------
    numpy.ndarray
        A scaled copy.

    Examples
    --------
    >>> balance(np.array([1.0, 1.0, -1.0])).tolist()
    [1.0, 1.0, -2.0]
    """
    result = np.array(template, copy=True)
    above = template > 0
    below = template < 0
    result[below] *= template[above].sum() / template[below].sum() * -1
    return result


def bounding_radius(centerX: float, centerY: float, imageSizeX: int, imageSizeY: int) -> int:
    """A radius around the centre that covers the whole frame (with a pixel to spare).

    Examples
    --------
    >>> bounding_radius(centerX=16, centerY=16, imageSizeX=32, imageSizeY=32)
    24
    """
    dy = max(centerY, imageSizeY - centerY)
    dx = max(centerX, imageSizeX - centerX)
    return int(np.ceil(np.sqrt(dy**2 + dx**2))) + 1


def radial_bins(
    centerX: float,
    centerY: float,
    imageSizeX: int,
    imageSizeY: int,
    radius: float | None = None,
    radius_inner: float = 0,
    n_bins: int | None = None,
    normalize: bool = False,
    use_sparse: bool | None = None,
    dtype: npt.DTypeLike | None = None,
) -> Any:
    """A stack of concentric antialiased rings of equal width.

    The rings split ``radius_inner .. radius`` into ``n_bins`` bins. Each pixel is
    weighed by how much of a one-pixel-wide band around its radius falls into the
    bin, so the weights of adjacent bins add up to 1 and the rings tile the plane.

    Parameters
    ----------
    centerX, centerY
        Centre in pixel coordinates.
    imageSizeX, imageSizeY
        Width and height of each mask.
    radius
        Outer radius; by default :func:`bounding_radius`, covering the whole frame.
    radius_inner
        Inner radius. If it is below 0.5, the pixel at the rounded centre is set to
        ``1 - radius_inner`` in the first bin (LiberTEM's patch of the singularity
        at the centre, applied after ``normalize``).
    n_bins
        Number of bins; by default ``round(radius - radius_inner)``, about a pixel each.
    normalize
        Scale each bin to a sum of 1.
    use_sparse
        Return a pydata ``sparse.COO`` (needs the optional ``sparse`` package). By
        default, sparse when a bin covers less than a tenth of the frame.
    dtype
        dtype of the masks; float64 by default.

    Returns
    -------
    numpy.ndarray or sparse.COO
        Shape ``(n_bins, imageSizeY, imageSizeX)``.

    Raises
    ------
    ImportError
        If sparse output is chosen and ``sparse`` is not installed.

    Examples
    --------
    >>> bins = radial_bins(16, 16, 32, 32, radius=8, n_bins=4, use_sparse=False)
    >>> bins.shape
    (4, 32, 32)
    >>> inner = circular(16, 16, 32, 32, radius=8, antialiased=True)
    >>> bool(np.allclose(bins.sum(axis=0), inner))  # the bins tile the disk
    True
    """
    if radius is None:
        radius = bounding_radius(centerX, centerY, imageSizeX, imageSizeY)
    if n_bins is None:
        n_bins = int(np.round(radius - radius_inner))
    if n_bins < 1:
        raise ValueError(
            f"n_bins is {n_bins!r}; expected at least 1 (radius={radius!r}, "
            f"radius_inner={radius_inner!r})"
        )
    r = polar_map(centerX, centerY, imageSizeX, imageSizeY)[0].reshape(-1)
    width = (radius - radius_inner) / n_bins
    if use_sparse is None:
        bin_area = np.pi * (radius**2 - (radius - width) ** 2)
        use_sparse = bin_area / (imageSizeX * imageSizeY) < 0.1
    centers = np.linspace(radius_inner, radius - width, n_bins) + width / 2
    center_pixel = None
    if radius_inner < 0.5:
        yy, xx = int(np.round(centerY)), int(np.round(centerX))
        if 0 <= yy < imageSizeY and 0 <= xx < imageSizeX:
            center_pixel = yy * imageSizeX + xx
    bins = []
    for i, r0 in enumerate(centers):
        # a band one pixel wide around each radius; the half pixel makes bins overlap
        # so that adjacent weights add up to exactly 1
        vals = np.maximum(0, np.minimum(1, width / 2 + 0.5 - np.abs(r - r0)))
        if normalize:
            total = vals.sum()
            if not np.isclose(total, 0):
                vals /= total
        vals = vals.astype(dtype)
        if i == 0 and center_pixel is not None:
            vals[center_pixel] = 1 - radius_inner
        if use_sparse:  # keep only the non-zero pixels: the bins are thin rings
            nonzero = np.flatnonzero(vals)
            bins.append((nonzero, vals[nonzero]))
        else:
            bins.append(vals)
    shape = (n_bins, imageSizeY, imageSizeX)
    if not use_sparse:
        return np.stack(bins).reshape(shape)
    sparse = _import_sparse()
    layers = [np.full(len(nonzero), i, dtype=np.int64) for i, (nonzero, _) in enumerate(bins)]
    pixels = np.concatenate([nonzero for nonzero, _ in bins])
    return sparse.COO(
        coords=np.stack((np.concatenate(layers), *np.unravel_index(pixels, shape[1:]))),
        data=np.concatenate([vals for _, vals in bins]),
        shape=shape,
        has_duplicates=False,
        sorted=True,
    )


def background_subtraction(
    centerX: float,
    centerY: float,
    imageSizeX: int,
    imageSizeY: int,
    radius: float,
    radius_inner: float,
    antialiased: bool = False,
) -> np.ndarray:
    """A disk of ``radius_inner`` minus the ring out to ``radius``, balanced to sum 0.

    The ring's weight is ``-sum(disk) / sum(ring)``, so a flat background cancels and
    the mask measures the disk's intensity above its surroundings.

    Parameters
    ----------
    centerX, centerY
        Centre in pixel coordinates.
    imageSizeX, imageSizeY
        Width and height of the mask.
    radius, radius_inner
        Outer radius of the ring, and radius of the disk (the ring's inner radius).
    antialiased
        Antialias both parts, as in :func:`circular` and :func:`ring`.

    Returns
    -------
    numpy.ndarray
        float64, shape ``(imageSizeY, imageSizeX)``.

    Examples
    --------
    >>> m = background_subtraction(16, 16, 32, 32, radius=8, radius_inner=4)
    >>> bool(np.isclose(m.sum(), 0)), float(m.max())
    (True, 1.0)
    """
    disk = circular(centerX, centerY, imageSizeX, imageSizeY, radius_inner, antialiased=antialiased)
    annulus = ring(
        centerX, centerY, imageSizeX, imageSizeY, radius, radius_inner, antialiased=antialiased
    )
    return disk - annulus * np.sum(disk) / np.sum(annulus)


def rectangular(
    X: float, Y: float, Width: float, Height: float, imageSizeX: int, imageSizeY: int
) -> np.ndarray:
    """A rectangle from the corner ``(Y, X)`` spanning ``Height`` rows and ``Width`` columns.

    As in LiberTEM, both corners are included, so the rectangle covers
    ``|Height| + 1`` rows and ``|Width| + 1`` columns; negative sizes extend up or left;
    a zero size gives an empty mask; the rectangle is clipped to the image.

    Parameters
    ----------
    X, Y
        A corner in pixel coordinates.
    Width, Height
        Signed extent in pixels.
    imageSizeX, imageSizeY
        Width and height of the mask.

    Returns
    -------
    numpy.ndarray
        bool, shape ``(imageSizeY, imageSizeX)``.

    Examples
    --------
    >>> rectangular(X=1, Y=0, Width=2, Height=1, imageSizeX=5, imageSizeY=3).astype(int)
    array([[0, 1, 1, 1, 0],
           [0, 1, 1, 1, 0],
           [0, 0, 0, 0, 0]])
    """
    mask = np.zeros((imageSizeY, imageSizeX), dtype=bool)
    if Height == 0 or Width == 0:
        return mask
    ymin, ymax = sorted((Y, Y + Height))
    xmin, xmax = sorted((X, X + Width))
    ymin, xmin, ymax, xmax = int(ymin), int(xmin), int(ymax), int(xmax)
    rows = slice(max(0, ymin), max(0, min(ymax + 1, imageSizeY)))
    cols = slice(max(0, xmin), max(0, min(xmax + 1, imageSizeX)))
    mask[rows, cols] = True
    return mask


def gradient_x(imageSizeX: int, imageSizeY: int, dtype: npt.DTypeLike = np.float32) -> np.ndarray:
    """Each pixel's column index: ``mask[y, x] = x``.

    Examples
    --------
    >>> gradient_x(imageSizeX=3, imageSizeY=2)
    array([[0., 1., 2.],
           [0., 1., 2.]], dtype=float32)
    """
    return np.tile(np.arange(imageSizeX, dtype=dtype), (imageSizeY, 1))


def gradient_y(imageSizeX: int, imageSizeY: int, dtype: npt.DTypeLike = np.float32) -> np.ndarray:
    """Each pixel's row index: ``mask[y, x] = y``.

    Examples
    --------
    >>> gradient_y(imageSizeX=3, imageSizeY=2)
    array([[0., 0., 0.],
           [1., 1., 1.]], dtype=float32)
    """
    return np.tile(np.arange(imageSizeY, dtype=dtype)[:, np.newaxis], (1, imageSizeX))


def sparse_template_multi_stack(
    mask_index: Any,
    offsetX: Any,
    offsetY: Any,
    template: np.ndarray,
    imageSizeX: int,
    imageSizeY: int,
) -> Any:
    """Stamp ``template`` into a sparse stack of masks, clipped at the image borders.

    Stamp ``i`` puts the template's top-left corner at ``(offsetY[i], offsetX[i])``
    in mask ``mask_index[i]``. Needs the optional ``sparse`` package.

    Parameters
    ----------
    mask_index
        Layer of each stamp (integers); the stack has ``max(mask_index) + 1`` layers.
    offsetX, offsetY
        Integer position of each stamp's top-left corner.
    template
        The 2D pattern to stamp.
    imageSizeX, imageSizeY
        Width and height of each mask.

    Returns
    -------
    sparse.COO
        Shape ``(max(mask_index) + 1, imageSizeY, imageSizeX)``, dtype of ``template``.

    Examples
    --------
    >>> t = np.ones((2, 2))
    >>> s = sparse_template_multi_stack([0, 1], [0, 3], [0, 3], t, imageSizeX=4, imageSizeY=4)
    >>> s.shape, float(s.sum()), float(s[1, 3, 3])
    ((2, 4, 4), 5.0, 1.0)
    """
    sparse = _import_sparse()
    template = np.asarray(template)
    mask_index = np.asarray(mask_index, dtype=np.int64).reshape(-1)
    offsetX = np.broadcast_to(np.asarray(offsetX, dtype=np.int64), mask_index.shape)
    offsetY = np.broadcast_to(np.asarray(offsetY, dtype=np.int64), mask_index.shape)
    ty, tx = np.mgrid[0 : template.shape[0], 0 : template.shape[1]]
    n, area = len(mask_index), template.size
    layer = np.repeat(mask_index, area)
    y = (ty.reshape(1, -1) + offsetY[:, np.newaxis]).reshape(-1)
    x = (tx.reshape(1, -1) + offsetX[:, np.newaxis]).reshape(-1)
    data = np.tile(template.reshape(-1), n)
    inside = (y >= 0) & (y < imageSizeY) & (x >= 0) & (x < imageSizeX)
    n_layers = int(mask_index.max()) + 1 if n else 0
    return sparse.COO(
        coords=np.stack((layer[inside], y[inside], x[inside])),
        data=data[inside],
        shape=(n_layers, imageSizeY, imageSizeX),
    )


def sparse_circular_multi_stack(
    mask_index: Any, centerX: Any, centerY: Any, imageSizeX: int, imageSizeY: int, radius: float
) -> Any:
    """A sparse stack of disks of one radius at integer centres.

    Centres are truncated to integers. Needs the optional ``sparse`` package.

    Parameters
    ----------
    mask_index
        Layer of each disk.
    centerX, centerY
        Centre of each disk.
    imageSizeX, imageSizeY
        Width and height of each mask.
    radius
        Radius of the disks.

    Returns
    -------
    sparse.COO
        bool, shape ``(max(mask_index) + 1, imageSizeY, imageSizeX)``.

    Examples
    --------
    >>> s = sparse_circular_multi_stack([0, 1], [16, 20], [16, 10], 32, 32, radius=3)
    >>> bool((s[1].todense() == circular(20, 10, 32, 32, radius=3)).all())
    True
    """
    bbox = int(2 * np.ceil(radius) + 1)  # odd, so that the template has a centre pixel
    bbox_center = (bbox - 1) // 2
    template = circular(bbox_center, bbox_center, bbox, bbox, radius)
    return sparse_template_multi_stack(
        mask_index=mask_index,
        offsetX=np.array(centerX, dtype=int) - bbox_center,
        offsetY=np.array(centerY, dtype=int) - bbox_center,
        template=template,
        imageSizeX=imageSizeX,
        imageSizeY=imageSizeY,
    )


def is_sparse(a: Any) -> bool:
    """Whether ``a`` is a scipy.sparse matrix or array, or a pydata ``sparse`` array.

    Neither library is imported for other objects.

    Examples
    --------
    >>> is_sparse(np.zeros(3))
    False
    """
    module = type(a).__module__
    if module.startswith("scipy.sparse"):
        import scipy.sparse

        return bool(scipy.sparse.issparse(a))
    if module == "sparse" or module.startswith("sparse."):
        import sparse

        return isinstance(a, sparse.SparseArray)
    return False


def to_dense(a: Any) -> np.ndarray:
    """``a`` as a NumPy array; sparse arrays are densified.

    Examples
    --------
    >>> to_dense([[1, 0], [0, 1]])
    array([[1, 0],
           [0, 1]])
    """
    if is_sparse(a):
        return np.asarray(a.toarray() if hasattr(a, "toarray") else a.todense())
    return np.asarray(a)


def to_sparse(a: Any, shape: tuple[int, ...] | None = None) -> Any:
    """``a`` as a pydata ``sparse.COO`` (needs the optional ``sparse`` package).

    Parameters
    ----------
    a
        A NumPy array, scipy.sparse matrix or pydata sparse array; or, as in
        LiberTEM, a coordinate tuple or an iterable of ``(coordinate, value)`` pairs
        that all have the same boolean value.
    shape
        The shape, needed for the coordinate forms.

    Examples
    --------
    >>> to_sparse(np.eye(3)).nnz
    3
    """
    sparse = _import_sparse()
    if isinstance(a, (tuple, list)):
        if shape is None:
            raise TypeError("to_sparse() needs shape= for coordinates")
        pairs = [(tuple(a), True)] if all(isinstance(v, int) for v in a) else list(a)
        values = {bool(p[-1]) for p in pairs}
        if len(values) != 1:
            raise ValueError(
                f"the coordinate pairs have values {sorted(values)}; expected a single value"
            )
        value = values.pop()
        return sparse.COO.from_iter(pairs, shape=tuple(shape), fill_value=not value, dtype=bool)
    return sparse.as_coo(a)
