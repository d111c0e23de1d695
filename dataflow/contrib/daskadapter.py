"""LiberTEM's ``make_dask_array``: a dataset's frames as a dask array, one block per partition."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from dataflow.roi import normalize_roi

if TYPE_CHECKING:
    import dask.array as da

    from dataflow.sources import DataSet

__all__ = ["make_dask_array"]


def make_dask_array(
    dataset: DataSet, dtype: Any = "float32", roi: Any = None, array_backend: Any = None
) -> tuple[da.Array, dict[str, Any]]:
    """The dataset as a dask array in ``dtype``, and the workers its blocks prefer (none).

    Without ``roi`` the array has the dataset's shape (``nav + sig``); with ``roi`` it
    holds the selected frames only, flattened: ``(n_selected,) + sig``. Blocks follow
    the dataset's partitions, so the array reads like a UDF run does.

    Examples
    --------
    >>> arr, workers = make_dask_array(dataset)
    >>> arr.shape, arr.dtype
    ((16, 16, 32, 32), dtype('float32'))
    """
    if array_backend not in (None, "numpy"):
        raise ValueError(f"array_backend is {array_backend!r}; dataflow provides 'numpy' only")
    frames = dataset.partition_array.astype(dtype, copy=False)
    mask = normalize_roi(roi, dataset.shape.nav)
    if mask is None:
        return frames.reshape(tuple(dataset.shape)), {}
    return frames[np.asarray(mask).reshape(-1)], {}
