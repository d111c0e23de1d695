"""``DataArray.dataflow``: run UDFs on xarray data without leaving xarray.

Registered when ``dataflow`` is imported::

    res = data_array.dataflow.run_udf(SumUDF(), sig_dims=("det_y", "det_x"))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import xarray as xr

if TYPE_CHECKING:
    from dataflow.api import Context
    from dataflow.sources import DataSet
    from dataflow.udf.base import UDF

__all__ = ["DataflowAccessor"]


@xr.register_dataarray_accessor("dataflow")
class DataflowAccessor:
    """Run UDFs on this DataArray; its dims, coordinates and attributes label the results.

    Examples
    --------
    >>> import xarray as xr
    >>> from dataflow.udf.sumsigudf import SumSigUDF
    >>> arr = xr.DataArray(data, dims=("y", "x", "ky", "kx"))
    >>> res = arr.dataflow.run_udf(SumSigUDF(), sig_dims=("ky", "kx"))
    >>> res["intensity"].dims
    ('y', 'x')
    """

    def __init__(self, data_array: xr.DataArray) -> None:
        self._array = data_array

    def dataset(self, sig_dims: Any = None, ctx: Context | None = None, **kwargs: Any) -> DataSet:
        """This DataArray as a DataSet (see ``ctx.load("xarray", ...)``)."""
        ctx = ctx or _default_context()
        return ctx.load("xarray", self._array, sig_dims=sig_dims, **kwargs)

    def run_udf(
        self,
        udf: UDF | list[UDF],
        roi: Any = None,
        *,
        sig_dims: Any = None,
        ctx: Context | None = None,
        lazy: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Run ``udf`` (or a list) over this DataArray; results as ``xarray.Dataset``.

        Parameters
        ----------
        udf
            A UDF, or a list sharing one pass.
        roi
            Frames to process (any form ``ctx.run_udf`` accepts).
        sig_dims
            Names of the signal dimensions (default: the last two).
        ctx
            The Context to run in; by default one that follows dask's scheduler.
        lazy
            Return dask-backed Datasets without computing.
        **kwargs
            More arguments for ``ctx.run_udf`` (``progress``, ``corrections``, ...).
        """
        ctx = ctx or _default_context()
        ds = self.dataset(sig_dims=sig_dims, ctx=ctx)
        res = ctx.run_udf(dataset=ds, udf=udf, roi=roi, lazy=lazy, **kwargs)
        if lazy:
            return res
        if isinstance(res, tuple):
            return tuple(r.to_xarray() for r in res)
        return res.to_xarray()


def _default_context() -> Context:
    from dataflow.api import Context

    return Context()
