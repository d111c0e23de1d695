"""``CoMUDF``: centre of mass of every frame, its shift, and the field it describes.

The centre of mass of a diffraction pattern moves with the electric (and magnetic)
field at the probe position. :class:`CoMUDF` integrates every frame with three masks,
``(disk, y * disk, x * disk)``, in one matrix product per tile, and derives the rest
on the client in ``get_results``: the CoM in detector pixels (``raw_com``), its shift
from a reference point (``raw_shifts``), the shift rotated and flipped into scan
coordinates (``field``), and the field's magnitude, divergence and curl.

The helpers take and return plain arrays, as LiberTEM's do: :func:`apply_correction`
(rotation and flip of the detector coordinates), :func:`divergence`, :func:`curl_2d`,
:func:`magnitude`, and :func:`guess_corrections`, which finds the scan rotation and
flip that make the field curl-free. (LiberTEM keeps the rotation and flip matrices in
``libertem.corrections.coordinates``; here they are private to this module.)
"""

from __future__ import annotations

import enum
import math
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from dataflow.masks import circular, gradient_x, gradient_y, ring
from dataflow.udf.base import UDF

if TYPE_CHECKING:
    from collections.abc import Callable

    from dataflow.buffers import BufferWrapper

__all__ = [
    "CoMParams",
    "CoMUDF",
    "GuessResult",
    "RegressionOptions",
    "apply_correction",
    "center_shifts",
    "com_masks_factory",
    "com_masks_generic",
    "coordinate_check",
    "curl_2d",
    "divergence",
    "guess_corrections",
    "magnitude",
]


class RegressionOptions(enum.IntEnum):
    """How :class:`CoMUDF` flattens the field by subtracting a fitted background.

    * ``NO_REGRESSION`` (-1): subtract nothing;
    * ``SUBTRACT_MEAN`` (0): subtract the mean field (a centre offset);
    * ``SUBTRACT_LINEAR`` (1): subtract a least-squares plane in the scan coordinates
      (a centre offset and a linear descan error).
    """

    NO_REGRESSION = -1
    SUBTRACT_MEAN = 0
    SUBTRACT_LINEAR = 1


class CoMParams(NamedTuple):
    """Parameters of :class:`CoMUDF`; build them with :meth:`CoMUDF.with_params`."""

    cy: float | None = None
    cx: float | None = None
    r: float = float("inf")
    ri: float | None = 0.0
    scan_rotation: float = 0.0
    flip_y: bool = False
    regression: Any = RegressionOptions.NO_REGRESSION


class GuessResult(NamedTuple):
    """Corrections guessed by :func:`guess_corrections`; pass them to ``with_params``."""

    scan_rotation: int
    flip_y: bool
    cy: float
    cx: float


_DEFAULT_PARAMS = CoMParams()


# coordinate transforms of (y, x) vectors --------------------------------------------------


def _rotate_deg(degrees: float) -> np.ndarray:
    """Rotation of ``(y, x)`` column vectors; positive angles turn clockwise on screen."""
    a = np.pi / 180 * degrees
    return np.array([(np.cos(a), np.sin(a)), (-np.sin(a), np.cos(a))])


_FLIP_Y = np.array([(-1.0, 0.0), (0.0, 1.0)])


def _transform(scan_rotation: float, flip_y: bool) -> np.ndarray:
    """The detector-to-scan transform: flip first, then rotate."""
    return _rotate_deg(scan_rotation) @ (_FLIP_Y if flip_y else np.eye(2))


def apply_correction(
    y_centers: np.ndarray,
    x_centers: np.ndarray,
    scan_rotation: float,
    flip_y: bool,
    forward: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Turn shifts in detector coordinates into scan coordinates (or back).

    Parameters
    ----------
    y_centers, x_centers
        Components of the shift vectors, any (equal) shape.
    scan_rotation
        Rotation in degrees; positive values turn the vectors clockwise.
    flip_y
        Negate the y component first (detectors with their origin at the bottom).
    forward
        ``False`` applies the inverse transform.

    Returns
    -------
    y, x : numpy.ndarray
        The transformed components (float64), in the input shape.

    Examples
    --------
    >>> y, x = apply_correction(np.array([1.0]), np.array([0.0]), scan_rotation=90, flip_y=False)
    >>> np.round([y[0], x[0]], 12).tolist()
    [0.0, -1.0]
    >>> yb, xb = apply_correction(y, x, scan_rotation=90, flip_y=False, forward=False)
    >>> np.round([yb[0], xb[0]], 12).tolist()
    [1.0, 0.0]
    """
    shape = np.shape(y_centers)
    transform = _transform(scan_rotation, flip_y)
    if not forward:
        transform = np.linalg.inv(transform)
    yx = np.stack((np.reshape(y_centers, -1), np.reshape(x_centers, -1)))
    y, x = transform @ yx
    return y.reshape(shape), x.reshape(shape)


def center_shifts(
    img_sum: np.ndarray, img_y: np.ndarray, img_x: np.ndarray, ref_y: float, ref_x: float
) -> tuple[np.ndarray, np.ndarray]:
    """Shift of the centre of mass from ``(ref_y, ref_x)``, from the three mask integrals.

    Frames with a zero sum have no centre of mass; their shift is 0.

    Parameters
    ----------
    img_sum, img_y, img_x
        Per frame: ``sum(I)``, ``sum(y * I)`` and ``sum(x * I)`` over the mask.
    ref_y, ref_x
        Reference point.

    Returns
    -------
    y, x : numpy.ndarray
        The shift components.

    Examples
    --------
    >>> center_shifts(np.array([2.0, 0.0]), np.array([10.0, 0.0]), np.array([4.0, 0.0]), 4, 1)
    (array([1., 0.]), array([1., 0.]))
    """
    nonzero = img_sum != 0
    denominator = np.where(nonzero, img_sum, 1)
    y = np.where(nonzero, img_y / denominator, ref_y) - ref_y
    x = np.where(nonzero, img_x / denominator, ref_x) - ref_x
    return y, x


def _gradient(a: np.ndarray, axis: int) -> np.ndarray:
    """``np.gradient`` along ``axis``, NaN where the axis is too short for a difference."""
    if a.shape[axis] < 2:
        return np.full(a.shape, np.nan)
    return np.gradient(a, axis=axis)


def divergence(y_centers: np.ndarray, x_centers: np.ndarray) -> np.ndarray:
    """``dFy/dy + dFx/dx`` of a 2D field by central differences (``np.gradient``).

    Examples
    --------
    >>> y, x = np.mgrid[0:4, 0:5].astype(float)
    >>> divergence(y, x)[1, 1]  # the field (y, x) points away from the origin
    np.float64(2.0)
    """
    return _gradient(y_centers, 0) + _gradient(x_centers, 1)


def curl_2d(y_centers: np.ndarray, x_centers: np.ndarray) -> np.ndarray:
    """``dFy/dx - dFx/dy`` of a 2D field by central differences (``np.gradient``).

    Examples
    --------
    >>> y, x = np.mgrid[0:4, 0:5].astype(float)
    >>> curl_2d(x, -y)[1, 1]  # a field turning around the origin
    np.float64(2.0)
    """
    return _gradient(y_centers, 1) - _gradient(x_centers, 0)


def magnitude(y_centers: np.ndarray, x_centers: np.ndarray) -> np.ndarray:
    """The length of each vector.

    Examples
    --------
    >>> magnitude(np.array([3.0]), np.array([4.0]))
    array([5.])
    """
    return np.sqrt(y_centers**2 + x_centers**2)


def coordinate_check(
    y_centers: np.ndarray, x_centers: np.ndarray, roi: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Root-mean-square curl of the corrected field for every whole-degree rotation.

    An electrostatic field has no curl, so for non-magnetic samples the right
    ``scan_rotation`` and ``flip_y`` minimise the result.

    Parameters
    ----------
    y_centers, x_centers
        2D shift components, e.g. ``raw_shifts`` of :class:`CoMUDF`.
    roi
        Which positions count: anything that indexes a 2D array. By default all but
        the last row and column.

    Returns
    -------
    straight, flipped : numpy.ndarray
        RMS curl for ``scan_rotation`` 0, 1, ..., 359 degrees, with ``flip_y=False``
        and ``flip_y=True``.

    Notes
    -----
    The curl is linear in the field, so it is computed from the four derivatives of
    the uncorrected field, combined per angle: the same numbers as correcting and
    differentiating for each angle, at a fraction of the cost.

    Examples
    --------
    >>> y, x = np.mgrid[0:9, 0:9].astype(float)
    >>> fy, fx = y + x, y  # the gradient of y**2 / 2 + x * y: curl-free as it is
    >>> straight, flipped = coordinate_check(fy, fx)
    >>> int(np.argmin(straight)), float(straight[0]), float(np.round(flipped[0], 12))
    (0, 0.0, 2.0)
    """
    if roi is None:
        roi = (slice(0, -1), slice(0, -1))  # the last row and column hold artefacts
    y_centers = np.asarray(y_centers, dtype=np.float64)
    x_centers = np.asarray(x_centers, dtype=np.float64)
    # dy/dx, dx/dx, dy/dy, dx/dy of the uncorrected field, at the selected positions
    parts = np.stack(
        [
            _gradient(y_centers, 1)[roi],
            _gradient(x_centers, 1)[roi],
            _gradient(y_centers, 0)[roi],
            _gradient(x_centers, 0)[roi],
        ]
    ).reshape(4, -1)
    straight = np.zeros(360)
    flipped = np.zeros(360)
    for angle in range(360):
        for flip_y, out in ((False, straight), (True, flipped)):
            t = _transform(angle, flip_y)
            # curl of (t @ F) = t00 dFy/dx + t01 dFx/dx - t10 dFy/dy - t11 dFx/dy
            curl = np.array([t[0, 0], t[0, 1], -t[1, 0], -t[1, 1]]) @ parts
            out[angle] = np.sqrt(np.mean(curl**2))
    return straight, flipped


def guess_corrections(y_centers: np.ndarray, x_centers: np.ndarray, roi: Any = None) -> GuessResult:
    """Guess ``scan_rotation``, ``flip_y`` and the centre ``(cy, cx)`` from CoM data.

    Assumes an atomic-resolution scan of a non-magnetic sample: the field is curl-free
    (:func:`coordinate_check` picks the rotation and flip), its mean is zero (the
    centre is the mean input), and the divergence is strongly negative at the atom
    columns, which tells the right rotation from the one 180 degrees off.

    Parameters
    ----------
    y_centers, x_centers
        2D centre-of-mass components (``raw_com``) or shifts (``raw_shifts``); the
        guessed centre is in the same frame of reference.
    roi
        Positions to use (indexes a 2D array); by default all but the last row and
        column.

    Returns
    -------
    GuessResult
        ``scan_rotation`` in whole degrees in ``(-180, 180]``, ``flip_y``, ``cy``, ``cx``.

    Examples
    --------
    >>> res = ctx.run_udf(dataset=dataset, udf=CoMUDF())
    >>> guess = guess_corrections(res["raw_com"].data[..., 0], res["raw_com"].data[..., 1])
    >>> udf = CoMUDF.with_params(**guess._asdict())
    >>> ctx.run_udf(dataset=dataset, udf=udf)["field"].data.shape
    (16, 16, 2)
    """
    if roi is None:
        roi = (slice(0, -1), slice(0, -1))
    straight, flipped = coordinate_check(y_centers, x_centers, roi=roi)
    flip_y = bool(np.min(flipped) < np.min(straight))
    angle = int(np.argmin(flipped if flip_y else straight))
    corrected_y, corrected_x = apply_correction(
        y_centers, x_centers, scan_rotation=angle, flip_y=flip_y
    )
    # The curl is also minimal 180 degrees away (that only flips signs). The beam is
    # deflected towards the nuclei, where the divergence is strongly negative: the
    # right angle has more divergence in the most negative bin than in the most positive.
    div = divergence(corrected_y, corrected_x)[roi]
    extent = np.maximum(-np.min(div), np.max(div))
    hist, _ = np.histogram(div, range=(-extent, extent), bins=5)
    if hist[0] < hist[-1]:
        angle += 180
    if angle > 180:
        angle -= 360
    return GuessResult(
        scan_rotation=int(angle),
        flip_y=flip_y,
        cy=float(np.mean(np.asarray(y_centers)[roi])),
        cx=float(np.mean(np.asarray(x_centers)[roi])),
    )


# masks ------------------------------------------------------------------------------------


def com_masks_generic(
    detector_y: int, detector_x: int, base_mask_factory: Callable[[], np.ndarray]
) -> list[Callable[[], np.ndarray]]:
    """Mask factories ``(base, y * base, x * base)`` for the CoM within any selection.

    Examples
    --------
    >>> fs = com_masks_generic(4, 3, lambda: np.ones((4, 3), dtype=bool))
    >>> [float(f().sum()) for f in fs]
    [12.0, 18.0, 12.0]
    """

    def y_weighted() -> np.ndarray:
        return gradient_y(imageSizeX=detector_x, imageSizeY=detector_y) * base_mask_factory()

    def x_weighted() -> np.ndarray:
        return gradient_x(imageSizeX=detector_x, imageSizeY=detector_y) * base_mask_factory()

    return [base_mask_factory, y_weighted, x_weighted]


def com_masks_factory(
    detector_y: int, detector_x: int, cy: float, cx: float, r: float
) -> list[Callable[[], np.ndarray]]:
    """Mask factories for the CoM within the disk of radius ``r`` around ``(cy, cx)``.

    Examples
    --------
    >>> from dataflow.udf.masks import ApplyMasksUDF
    >>> udf = ApplyMasksUDF(mask_factories=com_masks_factory(32, 32, cy=16, cx=16, r=8))
    >>> ctx.run_udf(dataset=dataset, udf=udf)["intensity"].data.shape
    (16, 16, 3)
    """

    def disk() -> np.ndarray:
        return circular(
            centerX=cx, centerY=cy, imageSizeX=detector_x, imageSizeY=detector_y, radius=r
        )

    return com_masks_generic(detector_y, detector_x, disk)


def _check_regression(regression: Any) -> None:
    if isinstance(regression, (int, np.integer)):
        if regression not in (-1, 0, 1):
            raise ValueError(
                f"regression is {regression!r}; expected a RegressionOptions value (-1, 0 or "
                "1) or an array of shape (3, 2)"
            )
        return
    shape = np.shape(regression)
    if shape != (3, 2):
        raise ValueError(
            f"regression has shape {shape}; expected a RegressionOptions value (-1, 0 or 1) "
            "or an array of shape (3, 2): [[y, x], [dy/dy, dx/dy], [dy/dx, dx/dx]]"
        )


class CoMUDF(UDF):
    """Centre of mass of every frame, and the field, divergence and curl it gives.

    Build it with :meth:`with_params`. The results, all ``kind="nav"`` except
    ``regression``:

    * ``raw_com`` ``(y, x)``: the CoM in detector pixels, within the mask;
    * ``raw_shifts`` ``(dy, dx)``: the CoM minus ``(cy, cx)``;
    * ``field`` ``(y, x)``, ``field_y``, ``field_x``: ``raw_shifts`` flipped and rotated
      into scan coordinates (``flip_y``, ``scan_rotation``), minus the regression;
    * ``magnitude``, ``divergence``, ``curl``: of ``field``, by central differences over
      the scan; NaN outside the ROI and next to it;
    * ``regression`` (3, 2): the background subtracted from ``field``,
      ``[[y, x], [dy/dy, dx/dy], [dy/dx, dx/dx]]``.

    Parameters
    ----------
    com_params
        The parameters; by default the whole frame around its centre, no corrections.

    Raises
    ------
    TypeError
        If ``com_params`` is not a :class:`CoMParams`.
    ValueError
        For a bad ``regression``, or a dataset whose navigation or signal is not 2D
        (raised when the run is planned, before any data is read).

    Examples
    --------
    >>> udf = CoMUDF.with_params(cy=15.5, cx=16.0, r=8)
    >>> res = ctx.run_udf(dataset=dataset, udf=udf)
    >>> res["raw_com"].data.shape, res["curl"].data.shape, res["regression"].data.shape
    ((16, 16, 2), (16, 16), (3, 2))
    >>> disk = circular(16.0, 15.5, 32, 32, radius=8)
    >>> y, x = np.mgrid[0:32, 0:32]
    >>> com_y = (data * disk * y).sum(axis=(2, 3)) / (data * disk).sum(axis=(2, 3))
    >>> bool(np.allclose(res["raw_com"].data[..., 0], com_y, rtol=1e-5))
    True
    """

    def __init__(self, com_params: CoMParams = _DEFAULT_PARAMS) -> None:
        if not isinstance(com_params, CoMParams):
            raise TypeError(
                f"com_params is a {type(com_params).__name__}; expected CoMParams, or use "
                "CoMUDF.with_params(cy=..., cx=..., r=...)"
            )
        _check_regression(com_params.regression)
        super().__init__(com_params=com_params)

    @classmethod
    def with_params(
        cls,
        *,
        cy: float | None = None,
        cx: float | None = None,
        r: float = float("inf"),
        ri: float = 0.0,
        scan_rotation: float = 0.0,
        flip_y: bool = False,
        regression: Any = RegressionOptions.NO_REGRESSION,
    ) -> CoMUDF:
        """A :class:`CoMUDF` with the given parameters.

        Parameters
        ----------
        cy, cx
            Centre of the mask and reference point of the shifts, in detector pixels;
            by default the frame centre ``(sig_y // 2, sig_x // 2)``.
        r
            Radius of the disk the CoM is computed in; ``inf``: the whole frame.
        ri
            Inner radius: exclude the disk of radius ``ri`` (an annular CoM).
        scan_rotation
            Rotation in degrees from detector to scan coordinates; positive values
            turn the shift vectors clockwise. If the detector looks rotated to the
            right relative to the scan, pass a negative value.
        flip_y
            Negate the y shift first (detectors with pixel (0, 0) at the bottom left,
            such as the Merlin).
        regression
            A :class:`RegressionOptions` value (-1, 0, 1), or a (3, 2) array to
            subtract, ``[[y, x], [dy/dy, dx/dy], [dy/dx, dx/dx]]``.

        Returns
        -------
        CoMUDF

        Raises
        ------
        ValueError
            If ``ri >= r``, or for a bad ``regression``.

        Examples
        --------
        >>> udf = CoMUDF.with_params(r=10, ri=4, scan_rotation=-30, flip_y=True, regression=1)
        >>> res = ctx.run_udf(dataset=dataset, udf=udf)
        >>> res["field"].data.shape
        (16, 16, 2)
        """
        if ri is not None and ri >= r:
            raise ValueError(
                f"ri is {ri!r} and r is {r!r}; the inner radius must be less than the outer "
                "radius for an annular CoM"
            )
        return cls(
            com_params=CoMParams(
                cy=cy,
                cx=cx,
                r=r,
                ri=ri,
                scan_rotation=scan_rotation,
                flip_y=flip_y,
                regression=regression,
            )
        )

    def get_params(self) -> CoMParams:
        """The parameters with ``cy``, ``cx`` resolved to the frame centre where None."""
        sig = tuple(self.meta.dataset_shape.sig)
        p = self.params.com_params
        return p._replace(
            cy=sig[0] // 2 if p.cy is None else p.cy,
            cx=sig[1] // 2 if p.cx is None else p.cx,
        )

    def _centre(self) -> tuple[float, float]:
        """``(cy, cx)`` of :meth:`get_params`, which never leaves them None."""
        p = self.get_params()
        assert p.cy is not None
        assert p.cx is not None
        return p.cy, p.cx

    def get_backends(self) -> Any:
        return self.BACKEND_ALL

    def get_result_buffers(self) -> dict[str, BufferWrapper]:
        shape = self.meta.dataset_shape
        for part, dims in (("signal", tuple(shape.sig)), ("navigation", tuple(shape.nav))):
            if len(dims) != 2:
                raise ValueError(
                    f"the dataset's {part} shape is {dims}; CoMUDF needs 2D navigation and "
                    "2D signal shapes"
                )
        dtype = np.result_type(self.meta.input_dtype, np.float32)

        def nav(extra: tuple[int, ...] = (), use: Any = "result_only") -> BufferWrapper:
            return self.buffer(kind="nav", extra_shape=extra, dtype=dtype, use=use)

        return {
            "raw_mask_result": self.buffer(
                kind="nav", extra_shape=(3,), dtype=dtype, where="device", use="private"
            ),
            "raw_com": nav((2,)),
            "raw_shifts": nav((2,)),
            "field": nav((2,)),
            "field_y": nav(),
            "field_x": nav(),
            "magnitude": nav(),
            "divergence": nav(),
            "curl": nav(),
            "regression": self.buffer(
                kind="single", extra_shape=(3, 2), dtype=np.float64, use="result_only"
            ),
        }

    def get_task_data(self) -> dict[str, Any]:
        p = self.get_params()
        cy, cx = self._centre()
        sy, sx = tuple(self.meta.dataset_shape.sig)
        if p.ri is None or np.isclose(p.ri, 0.0):
            base = circular(cx, cy, sx, sy, p.r)
        else:
            base = ring(cx, cy, sx, sy, p.r, p.ri)
        base = base.astype(np.float32)
        masks = np.stack([base, gradient_y(sx, sy) * base, gradient_x(sx, sy) * base])
        dtype = np.result_type(self.meta.input_dtype, np.float32)
        return {"masks": np.ascontiguousarray(masks.reshape(3, -1), dtype=dtype)}

    def process_tile(self, tile: np.ndarray) -> None:
        flat = tile.reshape(tile.shape[0], -1)
        self.results.raw_mask_result[:] += flat @ self.task_data.masks.T

    # get_results and the hooks subclasses override (LiberTEM-iCoM does) -----------------

    def get_field_results(self, field_y: np.ndarray, field_x: np.ndarray) -> dict[str, np.ndarray]:
        """Quantities derived from the corrected field: magnitude, divergence, curl."""
        return {
            "magnitude": magnitude(field_y, field_x),
            "divergence": divergence(field_y, field_x),
            "curl": curl_2d(field_y, field_x),
        }

    def get_regression(
        self, field: np.ndarray, valid_mask: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The (3, 2) regression to subtract, and the design matrix if it is linear."""
        regression = self.get_params().regression
        result = np.zeros((3, 2))
        inp = None

        def design() -> np.ndarray:
            out = np.ones((*field.shape[:-1], 3))
            y, x = np.ogrid[: field.shape[0], : field.shape[1]]
            out[..., 1] = y
            out[..., 2] = x
            return out

        if isinstance(regression, (int, np.integer)):
            if regression == RegressionOptions.SUBTRACT_MEAN:
                result[0] = np.mean(field[valid_mask], axis=0)
            elif regression == RegressionOptions.SUBTRACT_LINEAR:
                inp = design()
                result[:] = np.linalg.lstsq(inp[valid_mask], field[valid_mask], rcond=None)[0]
        else:
            result[:] = np.asarray(regression)
        if np.allclose(result[1:], 0):
            inp = None
        elif inp is None:
            inp = design()
        return result, inp

    def apply_mean_regression(
        self, regression: np.ndarray, field_inout: np.ndarray, valid_mask: np.ndarray
    ) -> None:
        """Subtract the constant part of ``regression`` at the valid positions."""
        field_inout[valid_mask] -= regression[0]

    def apply_lin_regression(
        self,
        regression: np.ndarray,
        inp: np.ndarray,
        field_inout: np.ndarray,
        valid_mask: np.ndarray,
    ) -> None:
        """Subtract the plane ``inp @ regression`` at the valid positions."""
        field_inout[valid_mask] -= inp[valid_mask] @ regression

    def get_results(self) -> dict[str, np.ndarray]:
        p = self.get_params()
        cy, cx = self._centre()
        nav_shape = tuple(self.meta.dataset_shape.nav)
        nav_size = math.prod(nav_shape)
        roi = self.meta.roi
        selected = slice(None) if roi is None else np.flatnonzero(roi)
        # the three integrals in the navigation shape, NaN outside the ROI, so that the
        # gradients see the scan's geometry
        raw = np.asarray(self.results.raw_mask_result)
        sums = np.full((nav_size, 3), np.nan, dtype=raw.dtype)
        sums[selected] = raw
        sums = sums.reshape((*nav_shape, 3))
        shift_y, shift_x = center_shifts(
            sums[..., 0], sums[..., 1], sums[..., 2], ref_y=cy, ref_x=cx
        )
        field = np.stack(
            apply_correction(shift_y, shift_x, scan_rotation=p.scan_rotation, flip_y=p.flip_y),
            axis=-1,
        )
        valid = self.meta.get_valid_nav_mask(full_nav=True)
        if valid is None:
            valid = np.ones(nav_size, dtype=bool) if roi is None else roi.reshape(-1)
        valid = np.asarray(valid, dtype=bool).reshape(nav_shape)
        regression, inp = self.get_regression(field, valid_mask=valid)
        if inp is not None:
            self.apply_lin_regression(regression, inp, field, valid)
        elif not np.allclose(regression[0], 0):
            self.apply_mean_regression(regression, field, valid)
        results: dict[str, Any] = {
            "raw_shifts": np.stack((shift_y, shift_x), axis=-1),
            "raw_com": np.stack((shift_y + p.cy, shift_x + p.cx), axis=-1),
            "field": field,
            "field_y": field[..., 0],
            "field_x": field[..., 1],
            "regression": regression.astype(np.float64),
        }
        results.update(self.get_field_results(field_y=field[..., 0], field_x=field[..., 1]))
        # back to the engine's layout: selected frames only, navigation flattened
        for name, decl in self.get_result_buffers().items():
            if decl.kind != "nav" or name not in results:
                continue
            value = np.asarray(results[name])
            value = value.reshape((nav_size, *value.shape[len(nav_shape) :]))[selected]
            if np.can_cast(value.dtype, decl.dtype, casting="same_kind"):
                value = value.astype(decl.dtype, copy=False)
            results[name] = value
        return results
