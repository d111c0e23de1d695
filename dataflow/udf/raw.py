"""``PickUDF``: load the selected frames as they are, for picking a few frames."""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from dataflow.errors import DataflowWarning
from dataflow.udf.base import UDF

if TYPE_CHECKING:
    from dataflow.buffers import BufferWrapper, UDFData

__all__ = ["PickUDF"]

#: Results larger than this many bytes make :class:`PickUDF` warn.
_WARN_BYTES = 2**28


class PickUDF(UDF):
    """The frames selected by the ROI, in native dtype: ``intensity``.

    ``intensity`` is a ``single`` buffer of shape ``(n_selected,) + sig_shape``,
    holding the selected frames in flattened navigation order (all frames without a
    ROI).

    This UDF is meant for a few frames, usually one. Every partition task holds a
    zero-filled buffer for *all* selected frames and writes its own frames at their
    position; ``merge`` adds the buffers. Results over 256 MiB give a
    :class:`~dataflow.errors.DataflowWarning`: to process many frames, write a UDF
    that reduces them on the workers instead.

    Examples
    --------
    >>> res = ctx.run_udf(dataset=dataset, udf=PickUDF(), roi=dataset.roi[0, 3])
    >>> res["intensity"].raw_data.shape
    (1, 32, 32)
    >>> bool(np.array_equal(res["intensity"].raw_data[0], data[0, 3]))
    True
    """

    def __init__(self) -> None:
        super().__init__()

    def get_preferred_input_dtype(self) -> Any:
        return self.USE_NATIVE_DTYPE

    def get_result_buffers(self) -> dict[str, BufferWrapper]:
        meta = self.meta
        sig_shape = tuple(meta.dataset_shape.sig)
        if meta.roi is None:
            n_frames = math.prod(meta.dataset_shape.nav)
        else:
            n_frames = int(np.count_nonzero(meta.roi))
        nbytes = n_frames * math.prod(sig_shape) * meta.input_dtype.itemsize
        if nbytes > _WARN_BYTES:
            warnings.warn(
                f"PickUDF loads {n_frames} frames ({nbytes / 2**20:.0f} MiB), more than the "
                f"{_WARN_BYTES / 2**20:.0f} MiB it is meant for, into every partition task; "
                "pass a smaller roi=, or reduce the frames with a UDF on the workers",
                DataflowWarning,
                stacklevel=2,
            )
        return {
            "intensity": self.buffer(
                kind="single", extra_shape=(n_frames, *sig_shape), dtype=meta.input_dtype
            )
        }

    def process_tile(self, tile: np.ndarray) -> None:
        part = self.meta.slice
        assert part is not None  # set while a partition runs
        start = part.origin[0]  # flattened, ROI-compressed frame index
        self.results.intensity[start : start + tile.shape[0]] = tile

    def merge(self, dest: UDFData, src: UDFData) -> None:
        # frames that src does not hold are zeros there
        dest.intensity += src.intensity
