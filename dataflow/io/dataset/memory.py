"""LiberTEM's ``MemoryDataSet``: a NumPy array as a dataset, built directly."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from dataflow.executor.base import cpu_count
from dataflow.sources import DataSet, MemoryAdapter

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["MemoryDataSet"]


class MemoryDataSet(DataSet):
    """A dataset over an in-memory array, with LiberTEM's constructor.

    ``MemoryDataSet(data=..., tileshape=..., num_partitions=..., sig_dims=...)`` can be
    passed to ``ctx.run_udf`` directly, as LiberTEM users' tests do; it is the same as
    ``ctx.load("memory", ...)`` with these keywords.

    Parameters
    ----------
    tileshape
        Tiles of ``tileshape[0]`` frames; tiles always span whole frames, so the
        signal part is ignored.
    num_partitions
        Number of partitions; by default one per CPU core, as in LiberTEM.
    data
        The array, navigation dimensions first. Without it, ``datashape`` random
        float32 data is made.
    sig_dims
        Number of signal dimensions (2 by default, ``len(sig_shape)`` if given).
    tiledelay
        Seconds to sleep per tile, to make runs slow in tests.
    datashape
        Shape of the random data made when ``data`` is None.
    nav_shape, sig_shape, sync_offset
        Reshape the frames; see :func:`dataflow.sources.make_layout`.
    check_cast, base_shape, force_need_decode, io_backend, array_backends
        Accepted for compatibility; they change nothing in dataflow.

    Examples
    --------
    >>> from dataflow.udf.sumsigudf import SumSigUDF
    >>> ds = MemoryDataSet(data=np.ones((4, 4, 8, 8)), tileshape=(2, 8, 8), num_partitions=2)
    >>> ctx.run_udf(dataset=ds, udf=SumSigUDF())["intensity"].data[0, 0]
    np.float64(64.0)
    """

    def __init__(
        self,
        tileshape: Sequence[int] | None = None,
        num_partitions: int | None = None,
        data: Any = None,
        sig_dims: int | None = None,
        check_cast: bool = True,
        tiledelay: float | None = None,
        datashape: Sequence[int] | None = None,
        base_shape: Any = None,
        force_need_decode: bool = False,
        io_backend: Any = None,
        nav_shape: Sequence[int] | None = None,
        sig_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        array_backends: Any = None,
    ) -> None:
        if data is None:
            if datashape is None:
                raise TypeError("MemoryDataSet needs data=<array> or datashape=<shape>")
            data = np.random.default_rng().random(tuple(datashape), dtype=np.float32)
        if num_partitions is None:
            num_partitions = min(cpu_count(), _n_frames(data, sig_dims, sig_shape))
        opened = MemoryAdapter.open(
            data,
            sig_dims=sig_dims,
            num_partitions=num_partitions,
            nav_shape=nav_shape,
            sig_shape=sig_shape,
            sync_offset=sync_offset,
            tileshape=tileshape,
            tiledelay=tiledelay,
        )
        self.__dict__.update(opened.__dict__)
        #: the array as given (LiberTEM's ``MemoryDataSet.data``), not copied
        self.data = data


def _n_frames(data: Any, sig_dims: int | None, sig_shape: Any) -> int:
    shape = np.shape(data)
    dims = sig_dims if sig_dims is not None else (2 if sig_shape is None else len(sig_shape))
    return max(1, int(np.prod(shape[: max(0, len(shape) - dims)])))
