"""``RecordUDF``: write a dataset's frames to a ``.npy`` file."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from dataflow.errors import RoiError
from dataflow.udf.base import UDF

if TYPE_CHECKING:
    from dataflow.buffers import BufferWrapper

__all__ = ["RecordUDF"]


class RecordUDF(UDF):
    """Write every frame, in native dtype, to the ``.npy`` file ``filename``.

    The file holds an array of the dataset's shape (navigation, then signal), with
    any ``nav_shape``, ``sig_shape`` or ``sync_offset`` of the dataset applied. The
    UDF instance you create is the *master*: when the run is inspected on the client,
    before any data is read, it creates the file (overwriting an existing one). Each
    partition task opens the file by path as a memory map and writes its frames, so
    every worker must see the same file system path. The UDF has no result buffers.

    Parameters
    ----------
    filename
        Path of the ``.npy`` file to write; an existing file is overwritten.
    _is_master
        Internal: True for the instance you create, False for the copies the engine
        makes. Keep the default.

    Raises
    ------
    dataflow.errors.RoiError
        If the run has a ROI: recording a selection of frames is not supported.

    See Also
    --------
    dataflow.export.export_dataset : checks the path first, and writes zarr too.

    Examples
    --------
    >>> path = tmp_path / "frames.npy"
    >>> ctx.run_udf(dataset=dataset, udf=RecordUDF(path))
    {}
    >>> bool(np.array_equal(np.load(path), data))
    True
    """

    def __init__(self, filename: str | os.PathLike[str], _is_master: bool = True) -> None:
        if not isinstance(filename, (str, os.PathLike)):
            raise TypeError(
                f"filename is a {type(filename).__name__}; expected a str or os.PathLike "
                "naming the .npy file to write"
            )
        self._is_master = _is_master
        # the engine's copies, made with these keywords, are not masters
        super().__init__(filename=filename, _is_master=False)

    def get_preferred_input_dtype(self) -> Any:
        return self.USE_NATIVE_DTYPE

    def _check_roi(self) -> None:
        if self.meta.roi is not None:
            raise RoiError(
                f"RecordUDF writes whole datasets; the run has a roi selecting "
                f"{int(np.count_nonzero(self.meta.roi))} of {self.meta.roi.size} frames. "
                "Run it with roi=None"
            )

    def get_result_buffers(self) -> dict[str, BufferWrapper]:
        # dataflow inspects the user's instance on the client before any task runs,
        # and only there: the place to create the file once, as LiberTEM's main node
        # does in preprocess
        self._check_roi()
        if self._is_master:
            np.lib.format.open_memmap(
                self.params.filename,
                mode="w+",
                dtype=self.meta.input_dtype,
                shape=tuple(self.meta.dataset_shape),
            )
        return {}

    def preprocess(self) -> None:
        self._check_roi()

    def get_task_data(self) -> dict[str, Any]:
        shape = self.meta.dataset_shape
        memmap = np.lib.format.open_memmap(self.params.filename, mode="r+")
        flat = (math.prod(shape.nav), *shape.sig)
        if memmap.shape != tuple(shape) or memmap.dtype != self.meta.input_dtype:
            raise ValueError(
                f"{os.fspath(self.params.filename)!r} holds a {memmap.dtype} array of shape "
                f"{memmap.shape}; expected {self.meta.input_dtype} {tuple(shape)}, as created "
                "for this run. Was it replaced while the run went on?"
            )
        return {"frames": memmap.reshape(flat)}

    def process_tile(self, tile: np.ndarray) -> None:
        part = self.meta.slice
        assert part is not None  # set while a partition runs
        start = part.origin[0]
        self.task_data.frames[start : start + tile.shape[0]] = tile

    def cleanup(self) -> None:
        self.task_data.frames.flush()
