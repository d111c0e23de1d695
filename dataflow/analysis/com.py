"""The centre-of-mass analysis: CoM shift of every frame, and the field it describes.

The analysis integrates every frame with the three masks ``(disk, y * disk, x * disk)``
(:func:`~dataflow.udf.com.com_masks_factory`) in
:class:`~dataflow.udf.masks.ApplyMasksUDF`, and derives the shift from the centre and
its field quantities with the helpers of :mod:`dataflow.udf.com`, with the same
conventions as :class:`~dataflow.udf.com.CoMUDF`. For new code, prefer ``CoMUDF``:
it adds regression and returns the field as one array.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from dataflow import masks
from dataflow.analysis.base import AnalysisResult, AnalysisResultSet, vector_rgb, visualize
from dataflow.analysis.masks import BaseMasksAnalysis
from dataflow.udf.com import (
    apply_correction,
    center_shifts,
    com_masks_factory,
    com_masks_generic,
    curl_2d,
    divergence,
    magnitude,
)

if TYPE_CHECKING:
    from dataflow.sources import DataSet

__all__ = ["COMAnalysis", "COMResultSet"]


class COMResultSet(AnalysisResultSet):
    """What a :class:`COMAnalysis` returns, in this order.

    * ``field``: the shift as a vector field, ``raw_data`` the tuple ``(x, y)``; its
      picture shows the direction as hue and the length as brightness;
    * ``magnitude``: the length of the shift;
    * ``divergence``, ``curl``: of the field, only if both navigation axes are
      longer than 1;
    * ``x``, ``y``: the components of the shift, after ``flip_y`` and ``scan_rotation``.

    For complex data the keys are ``x_real``, ``y_real``, ``x_imag``, ``y_imag``.
    """


def _ring_base(sy: int, sx: int, cy: float, cx: float, r: float, ri: float) -> np.ndarray:
    return masks.ring(
        centerX=cx, centerY=cy, imageSizeX=sx, imageSizeY=sy, radius=r, radius_inner=ri
    )


class COMAnalysis(BaseMasksAnalysis):
    """Centre of mass of every frame within a disk (or ring), as a shift from ``(cy, cx)``.

    Parameters
    ----------
    dataset
        A dataset with 2D navigation and 2D frames.
    parameters
        ``cx``, ``cy``: reference centre in pixels, by default ``(sig_x / 2, sig_y / 2)``;
        ``r``: radius of the disk the CoM is taken in (default: the whole frame);
        ``ri``: inner radius for an annular CoM (needs ``r``); ``flip_y``;
        ``scan_rotation`` in degrees. ``Context.create_com_analysis`` takes ``r`` and
        ``ri`` as ``mask_radius`` and ``mask_radius_inner``.

    Raises
    ------
    ValueError
        For a dataset without 2D navigation and 2D frames, ``ri`` without ``r``, or
        ``ri >= r``.

    Examples
    --------
    >>> res = ctx.run(ctx.create_com_analysis(dataset=dataset, mask_radius=8))
    >>> res.keys()
    ['field', 'magnitude', 'divergence', 'curl', 'x', 'y']
    >>> res.x.raw_data.shape
    (16, 16)
    """

    def __init__(self, dataset: DataSet, parameters: dict[str, Any]) -> None:
        nav, sig = tuple(dataset.shape.nav), tuple(dataset.shape.sig)
        if len(nav) != 2 or len(sig) != 2:
            raise ValueError(
                f"the dataset has navigation shape {nav} and signal shape {sig}; the "
                "centre-of-mass analysis needs two navigation and two signal dimensions"
            )
        if parameters.get("ri") is not None and parameters.get("r") is None:
            raise ValueError(
                f"mask_radius_inner is {parameters['ri']!r} but mask_radius is not given; "
                "pass both for an annular CoM"
            )
        super().__init__(dataset, parameters)
        r, ri = self.parameters["r"], self.parameters["ri"]
        if ri and not 0 <= ri < r:
            raise ValueError(
                f"mask_radius_inner is {ri!r} and mask_radius is {r!r}; expected "
                "0 <= mask_radius_inner < mask_radius"
            )

    def get_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        sy, sx = self._sig_yx()
        return {
            "cx": sx / 2,
            "cy": sy / 2,
            "r": float("inf"),
            "ri": 0.0,
            "scan_rotation": 0.0,
            "flip_y": False,
            "use_sparse": False,
            "mask_count": 3,
            "mask_dtype": np.float32,
        }

    def get_mask_factories(self) -> list[Any]:
        sy, sx = self._sig_yx()
        p = self.parameters
        if p["ri"]:
            base = partial(_ring_base, sy, sx, p["cy"], p["cx"], p["r"], p["ri"])
            return com_masks_generic(detector_y=sy, detector_x=sx, base_mask_factory=base)
        return com_masks_factory(detector_y=sy, detector_x=sx, cy=p["cy"], cx=p["cx"], r=p["r"])

    def need_rerun(self, old_params: dict[str, Any], new_params: dict[str, Any]) -> bool:
        """Only the centre and radii need a new pass; rotation and flip do not."""
        ignore = {"flip_y", "scan_rotation"}

        def keep(d: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in d.items() if k not in ignore}

        return keep(old_params) != keep(new_params)

    def get_udf_results(
        self, udf_results: Any, roi: np.ndarray | None, damage: Any
    ) -> COMResultSet:
        data = udf_results["intensity"].data
        p = self.parameters
        shift_y, shift_x = center_shifts(
            data[..., 0], data[..., 1], data[..., 2], ref_y=p["cy"], ref_x=p["cx"]
        )
        y, x = apply_correction(
            shift_y, shift_x, scan_rotation=p["scan_rotation"], flip_y=p["flip_y"]
        )
        if data.dtype.kind == "c":
            parts = [
                (x.real, "x_real", "x [real]"),
                (y.real, "y_real", "y [real]"),
                (x.imag, "x_imag", "x [imag]"),
                (y.imag, "y_imag", "y [imag]"),
            ]
            return COMResultSet(
                [
                    AnalysisResult(
                        raw_data=values,
                        visualized=partial(visualize, values, damage=damage),
                        key=key,
                        title=title,
                        desc=f"{key[0]} component of the center",
                    )
                    for values, key, title in parts
                ]
            )
        valid = np.asarray(damage, dtype=bool) & np.isfinite(x) & np.isfinite(y)
        vmax = float(np.sqrt(np.max(x[valid] ** 2 + y[valid] ** 2))) if valid.any() else 1.0
        m = magnitude(y, x)

        def result(values: Any, key: str, desc: str) -> AnalysisResult:
            return AnalysisResult(
                raw_data=values,
                visualized=partial(visualize, values, damage=valid),
                key=key,
                title=key,
                desc=desc,
            )

        results = [
            AnalysisResult(
                raw_data=(x, y),
                visualized=partial(vector_rgb, x, y, vmax=vmax),
                key="field",
                title="field",
                desc="colour wheel visualization: hue is the direction, brightness the length",
                include_in_download=False,
            ),
            result(m, "magnitude", "magnitude of the vector field"),
        ]
        if all(n > 1 for n in y.shape):  # np.gradient needs two points per axis
            results.append(result(divergence(y, x), "divergence", "divergence of the vector field"))
            results.append(result(curl_2d(y, x), "curl", "curl of the 2D vector field"))
        results.append(result(x, "x", "x component of the center"))
        results.append(result(y, "y", "y component of the center"))
        return COMResultSet(results)
