"""``SumUDF``: the sum of all frames."""

from __future__ import annotations

from typing import Any

import numpy as np

from dataflow.udf.base import UDF

__all__ = ["SumUDF"]


class SumUDF(UDF):
    """Sum over the navigation axes: one frame-shaped result, ``intensity``.

    Parameters
    ----------
    dtype
        Preferred input dtype; the sum is accumulated in
        ``np.result_type(native dtype, dtype)``.

    Examples
    --------
    >>> res = ctx.run_udf(dataset=dataset, udf=SumUDF())
    >>> np.allclose(res["intensity"].data, data.sum(axis=(0, 1)), rtol=1e-5)
    True
    """

    def __init__(self, dtype: Any = "float32") -> None:
        super().__init__(dtype=dtype)

    def get_preferred_input_dtype(self) -> Any:
        return self.params.dtype

    def get_result_buffers(self) -> dict[str, Any]:
        return {"intensity": self.buffer(kind="sig", dtype=self.meta.input_dtype)}

    def process_tile(self, tile: np.ndarray) -> None:
        intensity = self.results.intensity
        if len(tile) <= 8 and intensity.dtype == tile.dtype:
            # a few frames (runs of a ROI): added in place, no temporary, no BLAS call
            for frame in tile:
                np.add(intensity, frame, out=intensity)
            return
        flat = tile.reshape(len(tile), -1)
        if flat.dtype.kind in "fc" and flat.flags.c_contiguous and len(flat) > 1:
            # a vector-matrix product with ones: BLAS streams the frames once
            sums = np.ones(len(flat), dtype=flat.dtype) @ flat
        else:
            sums = np.add.reduce(flat, axis=0)
        intensity += sums.reshape(intensity.shape)

    def merge(self, dest: Any, src: Any) -> None:
        dest.intensity[:] += src.intensity
