"""The point analysis: the value of one detector pixel in every frame."""

from __future__ import annotations

import importlib.util
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from dataflow.analysis.masks import SingleMaskAnalysis

if TYPE_CHECKING:
    from dataflow.sources import DataSet

__all__ = ["PointMaskAnalysis"]


def _one_pixel(shape: tuple[int, int], y: int, x: int) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.float32)
    mask[y, x] = 1
    return mask


class PointMaskAnalysis(SingleMaskAnalysis):
    """The detector pixel ``(cy, cx)`` of every frame (a one-pixel virtual detector).

    Parameters
    ----------
    dataset
        A dataset with 2D frames.
    parameters
        ``cx``, ``cy``: the pixel, by default the frame centre; non-integer values
        are truncated, as in LiberTEM. ``Context.create_point_analysis`` takes them
        as ``x`` and ``y``.

    Raises
    ------
    ValueError
        For frames that are not 2D, or a pixel outside the frame.

    Examples
    --------
    >>> res = ctx.run(ctx.create_point_analysis(dataset=dataset, x=3, y=5))
    >>> bool(np.allclose(res.intensity.raw_data, data[..., 5, 3]))
    True
    """

    def __init__(self, dataset: DataSet, parameters: dict[str, Any]) -> None:
        super().__init__(dataset, parameters)
        sy, sx = self._sig_yx()
        y, x = self._pixel()
        if not (0 <= y < sy and 0 <= x < sx):
            raise ValueError(
                f"the point is x={self.parameters['cx']!r}, y={self.parameters['cy']!r}; "
                f"expected a pixel of the frame shape {(sy, sx)}: 0 <= x < {sx}, 0 <= y < {sy}"
            )

    def _pixel(self) -> tuple[int, int]:
        return int(self.parameters["cy"]), int(self.parameters["cx"])

    def get_description(self) -> str:
        return "intensity of the integration over the selected point"

    def get_use_sparse(self) -> Any:
        # one pixel: a sparse product gathers it instead of multiplying whole frames
        return importlib.util.find_spec("scipy") is not None

    def get_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        sy, sx = self._sig_yx()
        return {"cx": sx / 2, "cy": sy / 2, "mask_count": 1, "mask_dtype": np.float32}

    def get_mask_factories(self) -> list[Any]:
        y, x = self._pixel()
        return [partial(_one_pixel, self._sig_yx(), y, x)]
