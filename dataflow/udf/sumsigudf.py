"""``SumSigUDF``: the sum of each frame."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from dataflow.udf.base import UDF

if TYPE_CHECKING:
    from dataflow.api import Context
    from dataflow.dataset import DataSet

__all__ = ["SumSigUDF", "run_sumsig"]


class SumSigUDF(UDF):
    """Sum over the signal axes: one value per frame, ``intensity``.

    Examples
    --------
    >>> res = ctx.run_udf(dataset=dataset, udf=SumSigUDF())
    >>> np.allclose(res["intensity"].data, data.sum(axis=(2, 3)), rtol=1e-5)
    True
    """

    def get_result_buffers(self) -> dict[str, Any]:
        dtype = np.result_type(self.meta.input_dtype, np.float32)
        return {"intensity": self.buffer(kind="nav", dtype=dtype)}

    def process_tile(self, tile: np.ndarray) -> None:
        sig_axes = tuple(range(1, tile.ndim))
        self.results.intensity[:] += np.add.reduce(tile, axis=sig_axes)


def run_sumsig(ctx: Context, dataset: DataSet) -> Any:
    """Run :class:`SumSigUDF` on ``dataset`` and return its result mapping."""
    return ctx.run_udf(dataset=dataset, udf=SumSigUDF())
