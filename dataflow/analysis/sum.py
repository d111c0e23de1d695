"""The sum analysis: the sum of all frames, one frame-shaped result."""

from __future__ import annotations

from typing import Any

import numpy as np

from dataflow.analysis.base import (
    AnalysisResultSet,
    BaseAnalysis,
    intensity_results,
)
from dataflow.udf.sum import SumUDF

__all__ = ["SumAnalysis", "SumResultSet"]


class SumResultSet(AnalysisResultSet):
    """What a :class:`SumAnalysis` returns.

    Keys ``intensity`` (logarithmic picture) and ``intensity_lin`` (linear picture),
    both the sum of the frames. For complex data ``intensity`` is the log view of
    the magnitude, followed by ``intensity_lin``, ``_real``, ``_imag``, ``_angle``
    and ``_complex``.
    """


class SumAnalysis(BaseAnalysis):
    """Sum all (selected) frames with :class:`~dataflow.udf.sum.SumUDF`.

    Float and complex data are summed in their own dtype, anything else in float32.

    Examples
    --------
    >>> res = ctx.run(ctx.create_sum_analysis(dataset=dataset))
    >>> res.keys()
    ['intensity', 'intensity_lin']
    >>> bool(np.allclose(res.intensity.raw_data, data.sum(axis=(0, 1)), rtol=1e-5))
    True
    """

    def get_udf(self) -> SumUDF:
        dtype = np.dtype(self.dataset.dtype)
        return SumUDF(dtype=dtype if dtype.kind in "fc" else np.dtype(np.float32))

    def get_udf_results(
        self, udf_results: Any, roi: np.ndarray | None, damage: Any
    ) -> SumResultSet:
        data = udf_results["intensity"].data
        if data.dtype.kind == "c":
            return SumResultSet(
                self.get_complex_results(
                    data,
                    key_prefix="intensity",
                    title="intensity",
                    desc="sum of all frames",
                    damage=True,
                    default_lin=False,
                )
            )
        return SumResultSet(intensity_results(data, "sum of frames", default_lin=False))
