"""``AutoUDF``: a UDF made from a function of one frame (what ``Context.map`` runs)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from dataflow.udf.base import UDF

if TYPE_CHECKING:
    from collections.abc import Callable

    from dataflow.buffers import BufferWrapper

__all__ = ["AutoUDF"]


class AutoUDF(UDF):
    """Apply ``f`` to every frame; its return values form the ``result`` buffer.

    ``f`` is called once on the client with ``np.ones(sig_shape, input_dtype)``
    before the run, to learn the shape and dtype of its output: ``result`` is a
    ``nav`` buffer with that shape as ``extra_shape`` and that dtype. ``f`` should
    reduce a frame to something much smaller.

    Parameters
    ----------
    f
        A function of one frame (an array of the signal shape, in the input dtype:
        float32 for integer data up to 16 bits, float64 for wider integers).
    monitor
        Also return ``monitor``, a ``single`` buffer with the output for the last
        frame merged so far (for live plots); for no frames, zeros.

    Examples
    --------
    >>> res = ctx.run_udf(dataset=dataset, udf=AutoUDF(f=lambda frame: frame.max(axis=0)))
    >>> res["result"].data.shape
    (16, 16, 32)
    >>> bool(np.array_equal(res["result"].data, data.max(axis=2)))
    True
    """

    def __init__(self, f: Callable[[np.ndarray], Any], monitor: bool = False) -> None:
        super().__init__(f=f, monitor=monitor)

    def get_result_buffers(self) -> dict[str, BufferWrapper]:
        mock_frame = np.ones(tuple(self.meta.dataset_shape.sig), dtype=self.meta.input_dtype)
        out = np.asarray(self.params.f(mock_frame))
        buffers = {"result": self.buffer(kind="nav", extra_shape=out.shape, dtype=out.dtype)}
        if self.params.monitor:
            buffers["monitor"] = self.buffer(
                kind="single", extra_shape=out.shape, dtype=out.dtype, use="result_only"
            )
        return buffers

    def process_frame(self, frame: np.ndarray) -> None:
        self.results.result[:] = np.asarray(self.params.f(frame))

    def get_results(self) -> dict[str, np.ndarray]:
        if not self.params.monitor:
            return {}
        result = self.results.result
        valid = self.meta.get_valid_nav_mask()
        merged = np.flatnonzero(valid) if valid is not None else np.arange(len(result))
        shape = result.shape[1:] or (1,)  # the shape of a single buffer
        if len(merged):
            return {"monitor": result[merged[-1]].reshape(shape)}
        return {"monitor": np.zeros(shape, dtype=result.dtype)}
