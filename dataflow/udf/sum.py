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
        The sum is accumulated in ``np.result_type(native dtype, dtype)``, the input
        dtype LiberTEM gives this UDF. Tiles arrive in the native dtype and are
        converted inside the reduction (no converted copy of each tile); a subclass
        that overrides ``process_tile`` gets tiles of that dtype instead.

    Examples
    --------
    >>> res = ctx.run_udf(dataset=dataset, udf=SumUDF())
    >>> np.allclose(res["intensity"].data, data.sum(axis=(0, 1)), rtol=1e-5)
    True
    """

    def __init__(self, dtype: Any = "float32") -> None:
        super().__init__(dtype=dtype)

    def get_preferred_input_dtype(self) -> Any:
        if type(self).process_tile is SumUDF.process_tile:
            # the tiles are summed in the wider dtype straight from the data (the
            # conversion fused into the reduction), with no converted copy of each tile
            return self.USE_NATIVE_DTYPE
        return self.params.dtype  # a subclass's process_tile may expect the dtype

    def get_result_buffers(self) -> dict[str, Any]:
        # np.result_type(native, dtype): the input dtype LiberTEM gives SumUDF
        dtype = np.result_type(self.meta.input_dtype, self.params.dtype)
        return {"intensity": self.buffer(kind="sig", dtype=dtype)}

    def process_tile(self, tile: np.ndarray) -> None:
        intensity = self.results.intensity
        if tile.dtype != intensity.dtype:  # e.g. uint16 data, float32 sums
            sums = np.add.reduce(tile.reshape(len(tile), -1), axis=0, dtype=intensity.dtype)
            intensity += sums.reshape(intensity.shape)
            return
        if len(tile) <= 8:
            # a few frames (runs of a ROI): added in place, no temporary, no BLAS call
            for frame in tile:
                np.add(intensity, frame, out=intensity)
            return
        flat = tile.reshape(len(tile), -1)
        if flat.dtype.kind in "fc" and flat.flags.c_contiguous:
            # a vector-matrix product with ones: BLAS streams the frames once
            sums = np.ones(len(flat), dtype=flat.dtype) @ flat
        else:
            sums = np.add.reduce(flat, axis=0)
        intensity += sums.reshape(intensity.shape)

    def merge(self, dest: Any, src: Any) -> None:
        dest.intensity[:] += src.intensity
