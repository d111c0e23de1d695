"""``LogsumUDF``: the sum of log-scaled frames."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from dataflow.udf.base import UDF

if TYPE_CHECKING:
    from dataflow.api import Context
    from dataflow.buffers import BufferWrapper, UDFData
    from dataflow.sources import DataSet

__all__ = ["LogsumUDF", "run_logsum"]


class LogsumUDF(UDF):
    """Sum of ``log(frame - frame.min() + 1)`` over the selected frames: ``logsum``.

    Compared with log-scaling the sum of all frames, this brings out features of
    slightly raised intensity that appear in many frames, next to very bright
    features that appear in only a few.

    Examples
    --------
    >>> res = ctx.run_udf(dataset=dataset, udf=LogsumUDF())
    >>> expected = np.log(data - data.min(axis=(2, 3), keepdims=True) + 1).sum(axis=(0, 1))
    >>> res["logsum"].data.shape, bool(np.allclose(res["logsum"].data, expected, rtol=1e-5))
    ((32, 32), True)
    """

    def __init__(self) -> None:
        super().__init__()

    def get_result_buffers(self) -> dict[str, BufferWrapper]:
        return {"logsum": self.buffer(kind="sig", dtype="float32", where="device")}

    def process_frame(self, frame: np.ndarray) -> None:
        self.results.logsum += np.log(frame - np.min(frame) + 1)

    def merge(self, dest: UDFData, src: UDFData) -> None:
        dest.logsum += src.logsum


def run_logsum(ctx: Context, dataset: DataSet, roi: Any = None) -> Any:
    """Run :class:`LogsumUDF` on ``dataset`` and return its result mapping.

    Parameters
    ----------
    ctx
        The context to run on.
    dataset
        The data.
    roi
        Boolean mask of the navigation shape: only selected frames are summed.

    Returns
    -------
    dict
        ``logsum``: the sum of the log-scaled frames.

    Examples
    --------
    >>> run_logsum(ctx, dataset, roi=dataset.roi[0, 0])["logsum"].data.dtype
    dtype('float32')
    """
    return ctx.run_udf(dataset=dataset, udf=LogsumUDF(), roi=roi)
