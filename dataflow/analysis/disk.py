"""The disk analysis: integrate every frame over a disk (a virtual bright-field detector)."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from dataflow import masks
from dataflow.analysis.masks import SingleMaskAnalysis

if TYPE_CHECKING:
    from dataflow.sources import DataSet

__all__ = ["DiskMaskAnalysis"]


class DiskMaskAnalysis(SingleMaskAnalysis):
    """Integrate every frame over the disk of radius ``r`` around ``(cy, cx)``.

    Parameters
    ----------
    dataset
        A dataset with 2D frames.
    parameters
        ``cx``, ``cy``: centre in pixels, by default the frame centre
        ``(sig_x / 2, sig_y / 2)``; ``r``: radius, by default 0.15 times the smaller
        frame side. Pixels whose centre lies within ``r`` count.

    Raises
    ------
    ValueError
        For frames that are not 2D or a negative radius.

    Examples
    --------
    >>> res = ctx.run(ctx.create_disk_analysis(dataset=dataset, cx=16, cy=16, r=4))
    >>> res.keys()
    ['intensity', 'intensity_log']
    >>> disk = masks.circular(16, 16, 32, 32, radius=4)
    >>> bool(np.allclose(res.intensity.raw_data, (data * disk).sum(axis=(2, 3)), rtol=1e-5))
    True
    """

    def __init__(self, dataset: DataSet, parameters: dict[str, Any]) -> None:
        super().__init__(dataset, parameters)
        r = self.parameters["r"]
        if not r >= 0:
            raise ValueError(f"r is {r!r}; expected a radius >= 0 in pixels")

    def get_description(self) -> str:
        return "intensity of the integration over the selected disk"

    def get_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        sy, sx = self._sig_yx()
        return {
            "cx": sx / 2,
            "cy": sy / 2,
            "r": min(sy, sx) / 2 * 0.3,
            "use_sparse": False,
            "mask_count": 1,
            "mask_dtype": np.float32,
        }

    def get_mask_factories(self) -> list[Any]:
        sy, sx = self._sig_yx()
        p = self.parameters
        disk = partial(
            masks.circular,
            centerX=p["cx"],
            centerY=p["cy"],
            imageSizeX=sx,
            imageSizeY=sy,
            radius=p["r"],
        )
        return [disk]

    def need_rerun(self, old_params: dict[str, Any], new_params: dict[str, Any]) -> bool:
        return old_params != new_params
