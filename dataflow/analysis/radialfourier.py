"""The radial Fourier analysis: Fourier series of the intensity along rings.

For every ring ``b`` (of ``n_bins`` between ``ri`` and ``ro``) and order ``o``
(``0 .. max_order``), every frame ``I`` gives the coefficient

``c[b, o] = sum over pixels of I * w_b * exp(1j * o * phi)``,

where ``w_b`` are the antialiased ring weights of :func:`dataflow.masks.radial_bins`
and ``phi`` the angle of each pixel around the centre
(:func:`dataflow.masks.polar_map`). ``|c[b, o]|`` is large where the ring's
intensity has ``o``-fold symmetry. The coefficients come from one
:class:`~dataflow.udf.masks.ApplyMasksUDF` run with ``n_bins * (max_order + 1)``
complex masks, sparse where they are thin.
"""

from __future__ import annotations

import importlib.util
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from dataflow import masks
from dataflow.analysis.base import AnalysisResult, AnalysisResultSet, vector_rgb, visualize
from dataflow.analysis.masks import BaseMasksAnalysis

if TYPE_CHECKING:
    from dataflow.sources import DataSet

__all__ = ["RadialFourierAnalysis", "RadialFourierResultSet", "radial_mask_factory"]


class RadialFourierResultSet(AnalysisResultSet):
    """What a :class:`RadialFourierAnalysis` returns, in the navigation shape.

    In this order: for each bin ``b``, ``dominant_<b>`` (the order ``o >= 1`` with
    the largest magnitude, 0 where no order reaches a fifth of the bin's largest one)
    and ``absolute_<b>_<o>`` for every order; then ``phase_<b>_<o>`` for every bin and
    order; then ``complex_<b>_<o>``, the coefficients, those of order ``o >= 1``
    divided by ``max(1, absolute_<b>_0)``.

    ``raw_results`` holds the coefficients, shape ``(n_bins, max_order + 1, *nav)``.
    """


def _stack(
    sy: int,
    sx: int,
    cx: float,
    cy: float,
    ri: float,
    ro: float,
    n_bins: int,
    max_order: int,
    use_sparse: Any,
    dtype: Any,
) -> Any:
    rings = masks.radial_bins(
        centerX=cx,
        centerY=cy,
        imageSizeX=sx,
        imageSizeY=sy,
        radius=ro,
        radius_inner=ri,
        n_bins=n_bins,
        use_sparse=False,
        dtype=dtype,
    ).reshape(n_bins, -1)
    phi = masks.polar_map(centerX=cx, centerY=cy, imageSizeX=sx, imageSizeY=sy)[1]
    orders = np.arange(max_order + 1, dtype=dtype)
    modulator = np.exp(phi.reshape(1, -1).astype(dtype) * orders[:, np.newaxis] * 1j)
    n_orders = max_order + 1
    if not use_sparse:
        stack = rings[:, np.newaxis, :] * modulator[np.newaxis]
        return stack.reshape(n_bins * n_orders, sy, sx)
    import scipy.sparse

    # only the ring's pixels: row b * n_orders + o holds w_b * exp(1j o phi)
    bins, pixels = np.nonzero(rings)
    rows = (bins * n_orders)[:, np.newaxis] + np.arange(n_orders)
    values = rings[bins, pixels][:, np.newaxis] * modulator[:, pixels].T
    cols = np.broadcast_to(pixels[:, np.newaxis], rows.shape)
    return scipy.sparse.csr_matrix(
        (values.ravel(), (rows.ravel(), cols.ravel())), shape=(n_bins * n_orders, sy * sx)
    )


def radial_mask_factory(
    detector_y: int,
    detector_x: int,
    cx: float,
    cy: float,
    ri: float,
    ro: float,
    n_bins: int,
    max_order: int,
    use_sparse: Any,
    dtype: Any = np.complex64,
) -> Any:
    """A mask factory for the radial Fourier coefficients.

    The factory returns ``n_bins * (max_order + 1)`` complex masks, bin-major: mask
    ``b * (max_order + 1) + o`` is ring ``b`` times ``exp(1j * o * phi)``; dense, shape
    ``(n, detector_y, detector_x)``, or a ``scipy.sparse`` matrix of shape
    ``(n, detector_y * detector_x)`` if ``use_sparse``.

    Examples
    --------
    >>> stack = radial_mask_factory(32, 32, 16, 16, 0, 8, n_bins=2, max_order=3, use_sparse=False)()
    >>> stack.shape, stack.dtype
    ((8, 32, 32), dtype('complex64'))
    """
    dtype = np.result_type(dtype, np.complex64)
    return partial(
        _stack, detector_y, detector_x, cx, cy, ri, ro, n_bins, max_order, use_sparse, dtype
    )


def _default_sparse(n_masks: int, sy: int, sx: int, ri: float, ro: float, n_bins: int) -> Any:
    """LiberTEM's choice: dense if the stack is small or the rings are wide, else scipy.sparse."""
    width = (ro - ri) / n_bins
    bin_area = np.pi * ro**2 - np.pi * (ro - width) ** 2
    if n_masks * sy * sx * 8 < 2**18 or (bin_area / (sx * sy) > 0.05 and n_bins < 10):
        return False
    return "scipy.sparse" if importlib.util.find_spec("scipy") else False


class RadialFourierAnalysis(BaseMasksAnalysis):
    """Fourier coefficients of the intensity along rings around ``(cy, cx)``.

    Parameters
    ----------
    dataset
        A dataset with 2D frames.
    parameters
        ``cx``, ``cy``: centre, by default ``(sig_x / 2, sig_y / 2)``; ``ri``, ``ro``:
        inner and outer radius, by default 0 and a radius that covers the frame
        (:func:`dataflow.masks.bounding_radius`); ``n_bins``: number of rings, by
        default 1; ``max_order``: highest order, by default 24; ``use_sparse``: by
        default sparse masks for large stacks of thin rings.

    Raises
    ------
    ValueError
        For frames that are not 2D, ``ri >= ro``, ``n_bins < 1`` or ``max_order < 0``.

    Examples
    --------
    >>> analysis = ctx.create_radial_fourier_analysis(
    ...     dataset=dataset, ri=2, ro=10, n_bins=2, max_order=4
    ... )
    >>> res = ctx.run(analysis)
    >>> res.keys()[:6]
    ['dominant_0', 'absolute_0_0', 'absolute_0_1', 'absolute_0_2', 'absolute_0_3', 'absolute_0_4']
    >>> res.raw_results.shape, res.complex_1_2.raw_data.dtype
    ((2, 5, 16, 16), dtype('complex64'))
    """

    def __init__(self, dataset: DataSet, parameters: dict[str, Any]) -> None:
        super().__init__(dataset, parameters)
        p = self.parameters
        if not 0 <= p["ri"] < p["ro"]:
            raise ValueError(
                f"ri is {p['ri']!r} and ro is {p['ro']!r}; expected 0 <= ri < ro (inner "
                "radius less than the outer radius)"
            )
        for name, least in (("n_bins", 1), ("max_order", 0)):
            value = p[name]
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise ValueError(f"{name} is {value!r}; expected an integer >= {least}")

    def get_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        sy, sx = self._sig_yx()
        cx = parameters.get("cx", sx / 2)
        cy = parameters.get("cy", sy / 2)
        ri = parameters.get("ri", 0)
        ro = parameters.get("ro", masks.bounding_radius(cx, cy, sx, sy))
        n_bins = parameters.get("n_bins", 1)
        max_order = parameters.get("max_order", 24)
        try:
            n_masks = int(n_bins) * (int(max_order) + 1)
            use_sparse = _default_sparse(n_masks, sy, sx, ri, ro, n_bins)
        except (TypeError, ValueError, ZeroDivisionError):  # bad values: __init__ says why
            n_masks, use_sparse = None, False
        return {
            "cx": cx,
            "cy": cy,
            "ri": ri,
            "ro": ro,
            "n_bins": n_bins,
            "max_order": max_order,
            "use_sparse": use_sparse,
            "mask_count": n_masks,
            "mask_dtype": np.complex64,
        }

    def get_mask_factories(self) -> Any:
        sy, sx = self._sig_yx()
        p = self.parameters
        return radial_mask_factory(
            detector_y=sy,
            detector_x=sx,
            cx=p["cx"],
            cy=p["cy"],
            ri=p["ri"],
            ro=p["ro"],
            n_bins=p["n_bins"],
            max_order=p["max_order"],
            use_sparse=p["use_sparse"],
        )

    def get_udf_results(
        self, udf_results: Any, roi: np.ndarray | None, damage: Any
    ) -> RadialFourierResultSet:
        nav = tuple(self.dataset.shape.nav)
        n_bins, orders = self.parameters["n_bins"], self.parameters["max_order"] + 1
        data = udf_results["intensity"].data
        coefficients = np.moveaxis(data, -1, 0).reshape((n_bins, orders, *nav))
        return RadialFourierResultSet(
            partial(_results, coefficients, damage), raw_results=coefficients
        )


def _results(c: np.ndarray, damage: Any) -> list[AnalysisResult]:
    """The result list of the radial Fourier analysis, from the coefficients ``c``."""
    with np.errstate(invalid="ignore"):  # NaN outside the ROI
        return _result_list(c, damage)


def _result_list(c: np.ndarray, damage: Any) -> list[AnalysisResult]:
    n_bins, orders = c.shape[:2]
    absolute = np.absolute(c)
    normal = np.maximum(1, absolute[:, 0])  # order 0: the ring's total intensity
    valid = np.asarray(damage, dtype=bool) & np.all(np.isfinite(absolute), axis=(0, 1))
    higher = absolute[:, 1:]
    # per bin, a fifth of the largest higher-order magnitude anywhere
    threshold = higher.reshape(n_bins, -1).max(axis=1, initial=-np.inf) * 0.2
    below = np.all(higher < threshold.reshape((n_bins, 1) + (1,) * (c.ndim - 2)), axis=1)
    dominant = np.argmax(higher, axis=1) + 1 if orders > 1 else np.zeros(absolute[:, 0].shape)
    dominant = np.where(below, 0, dominant).astype(np.int64)
    normalized = higher / normal[:, np.newaxis]
    scale = normalized[..., valid]
    lo = float(scale.min()) if scale.size else 0.0
    hi = float(scale.max()) if scale.size else 1.0

    def result(raw: Any, picture: Any, key: str, title: str, desc: str) -> AnalysisResult:
        return AnalysisResult(raw_data=raw, visualized=picture, key=key, title=title, desc=desc)

    out = []
    for b in range(n_bins):
        out.append(
            result(
                dominant[b],
                partial(visualize, dominant[b], colormap="tab20", vmin=0, vmax=20),
                f"dominant_{b}",
                f"dominant order of bin {b}",
                "Dominant Fourier component",
            )
        )
        for o in range(orders):
            picture = (
                partial(visualize, absolute[b, 0], damage=valid)
                if o == 0
                else partial(visualize, absolute[b, o] / normal[b], vmin=lo, vmax=hi, damage=valid)
            )
            out.append(
                result(
                    absolute[b, o],
                    picture,
                    f"absolute_{b}_{o}",
                    f"absolute of bin {b} order {o}",
                    "Absolute value of Fourier component",
                )
            )
    for b in range(n_bins):
        for o in range(orders):
            phase = np.angle(c[b, o])
            out.append(
                result(
                    phase,
                    partial(visualize, phase, colormap="twilight", damage=valid),
                    f"phase_{b}_{o}",
                    f"phase of bin {b} order {o}",
                    "Phase of Fourier component",
                )
            )
    for b in range(n_bins):
        for o in range(orders):
            values = c[b, o] if o == 0 else c[b, o] / normal[b]
            vmax = _max_abs(values, valid) if o == 0 else hi
            out.append(
                result(
                    values,
                    partial(vector_rgb, values.real, values.imag, vmax=vmax),
                    f"complex_{b}_{o}",
                    f"bin {b} order {o}",
                    "Fourier component",
                )
            )
    return out


def _max_abs(values: np.ndarray, valid: np.ndarray) -> float:
    chosen = np.abs(values[..., valid])
    return float(chosen.max()) if chosen.size else 1.0
