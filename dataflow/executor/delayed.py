"""``DelayedJobExecutor``: LiberTEM's lazy executor, results as dask arrays.

``Context.make_with("delayed")`` runs nothing in ``run_udf``: each result's
``.delayed_data`` and ``.delayed_raw_data`` are dask arrays of the run's graph, and
``.data``/``.raw_data`` compute them (with dask's current scheduler) when read.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from dataflow.executor.integration import DaskIntegrationExecutor

if TYPE_CHECKING:
    import dask.array as da
    import numpy.typing as npt
    import xarray as xr

    from dataflow.lazy import LazyBuffer
    from dataflow.results import ResultContext

__all__ = ["DelayedBufferResult", "DelayedJobExecutor", "DelayedResultDict"]


class DelayedJobExecutor(DaskIntegrationExecutor):
    """Run UDFs lazily: ``run_udf`` returns results backed by dask arrays."""

    name = "delayed"
    lazy_results = True


class DelayedBufferResult:
    """A result buffer whose values are computed when ``.data`` is read."""

    def __init__(self, buffer: LazyBuffer, context: ResultContext) -> None:
        self._buffer = buffer
        self._ctx = context
        self.name = buffer.name
        self.kind = buffer.decl.kind
        self.extra_shape = buffer.decl.extra_shape
        self.dtype = buffer.decl.dtype

    @property
    def delayed_data(self) -> da.Array:
        """The buffer in the navigation shape, as a dask array (fill value outside the ROI)."""
        return self._buffer.data

    @property
    def delayed_raw_data(self) -> da.Array:
        """The selected frames only, as a dask array."""
        return self._buffer.raw

    @cached_property
    def data(self) -> npt.NDArray[Any]:
        """``delayed_data``, computed."""
        return np.asarray(self._buffer.data.compute())

    @cached_property
    def raw_data(self) -> npt.NDArray[Any]:
        """``delayed_raw_data``, computed."""
        return np.asarray(self._buffer.raw.compute())

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> npt.NDArray[Any]:
        return self.data if dtype is None else self.data.astype(dtype)

    def to_xarray(self) -> xr.DataArray:
        """The buffer as a dask-backed ``xarray.DataArray``."""
        from dataflow.results import to_dataarray

        return to_dataarray(self.name, self._buffer.decl, self._buffer.data, self._ctx)

    def __repr__(self) -> str:
        return f"<DelayedBufferResult {self.name!r} kind={self.kind!r} dtype={self.dtype}>"


class DelayedResultDict(dict):
    """The delayed results of one UDF: buffer name to :class:`DelayedBufferResult`."""

    def to_xarray(self) -> xr.Dataset:
        """All buffers as one dask-backed ``xarray.Dataset``."""
        import xarray as xr

        from dataflow.results import dataset_attrs

        arrays = {name: res.to_xarray() for name, res in self.items()}
        attrs = next((dataset_attrs(res._ctx) for res in self.values()), {})
        return xr.Dataset(arrays, attrs=attrs)
