"""The ring analysis: integrate every frame over an annulus (a virtual annular detector)."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from dataflow import masks
from dataflow.analysis.masks import SingleMaskAnalysis

if TYPE_CHECKING:
    from dataflow.sources import DataSet

__all__ = ["RingMaskAnalysis"]


class RingMaskAnalysis(SingleMaskAnalysis):
    """Integrate every frame over the ring ``ri < distance <= ro`` around ``(cy, cx)``.

    Parameters
    ----------
    dataset
        A dataset with 2D frames.
    parameters
        ``cx``, ``cy``: centre in pixels, by default the frame centre
        ``(sig_x / 2, sig_y / 2)``; ``ro``: outer radius, by default half the smaller
        frame side; ``ri``: inner radius, by default ``0.8 * ro``.

    Raises
    ------
    ValueError
        For frames that are not 2D, a negative ``ri``, or ``ri >= ro``.

    Examples
    --------
    >>> res = ctx.run(ctx.create_ring_analysis(dataset=dataset, ri=5, ro=10))
    >>> ring = masks.ring(16, 16, 32, 32, radius=10, radius_inner=5)
    >>> bool(np.allclose(res.intensity.raw_data, (data * ring).sum(axis=(2, 3)), rtol=1e-5))
    True
    """

    def __init__(self, dataset: DataSet, parameters: dict[str, Any]) -> None:
        super().__init__(dataset, parameters)
        ri, ro = self.parameters["ri"], self.parameters["ro"]
        if not 0 <= ri < ro:
            raise ValueError(
                f"ri is {ri!r} and ro is {ro!r}; expected 0 <= ri < ro (inner radius less "
                "than the outer radius)"
            )

    def get_description(self) -> str:
        return "intensity of the integration over the selected ring"

    def get_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        sy, sx = self._sig_yx()
        ro = parameters.get("ro", min(sy, sx) / 2)
        return {
            "cx": sx / 2,
            "cy": sy / 2,
            "ri": ro * 0.8,
            "ro": ro,
            "use_sparse": False,
            "mask_count": 1,
            "mask_dtype": np.float32,
        }

    def get_mask_factories(self) -> list[Any]:
        sy, sx = self._sig_yx()
        p = self.parameters
        ring = partial(
            masks.ring,
            centerX=p["cx"],
            centerY=p["cy"],
            imageSizeX=sx,
            imageSizeY=sy,
            radius=p["ro"],
            radius_inner=p["ri"],
        )
        return [ring]
