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
        self.results.intensity[:] += np.add.reduce(tile, axis=0)

    def merge(self, dest: Any, src: Any) -> None:
        dest.intensity[:] += src.intensity
