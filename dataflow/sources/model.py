"""The DataSet model: a chunked dask array of shape ``nav + sig`` with names, coordinates
and partitions.

A partition is a contiguous run of whole frames in flattened navigation order. The
engine runs one task per partition; each task receives its frames as one block of
:attr:`DataSet.partition_array`, a dask array of shape ``(n_frames,) + sig`` chunked
by partition. Sources build DataSets with the rest of :mod:`dataflow.sources`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from dataflow.errors import DataSetException
from dataflow.shape import Shape
from dataflow.sources.layout import FrameLayout

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    import dask.array as da

    from dataflow.sources.partitions import Partition

__all__ = ["DataSet", "DataSetMeta", "default_dims"]


def default_dims(nav_dims: int, sig_dims: int) -> tuple[str, ...]:
    """Dimension names for a dataset without names of its own.

    Two navigation dimensions are ``scan_y, scan_x`` and two signal dimensions
    ``det_y, det_x``; other ranks get ``nav_<i>`` and ``sig_<i>``.

    Examples
    --------
    >>> default_dims(2, 2)
    ('scan_y', 'scan_x', 'det_y', 'det_x')
    >>> default_dims(1, 1)
    ('nav_0', 'sig_0')
    """
    nav = ("scan_y", "scan_x") if nav_dims == 2 else tuple(f"nav_{i}" for i in range(nav_dims))
    sig = ("det_y", "det_x") if sig_dims == 2 else tuple(f"sig_{i}" for i in range(sig_dims))
    return nav + sig


class DataSet:
    """A dataset: a dask array of shape ``nav + sig`` with names, coordinates and partitions.

    Create DataSets with :meth:`dataflow.Context.load`.

    Attributes
    ----------
    array : dask.array.Array
        The data, shape ``nav + sig``.
    dims : tuple of str
        Dimension names, navigation first.
    coords : dict of str to numpy.ndarray
        One coordinate array per dimension.
    attrs : dict
        Metadata (calibration, provenance). ``attrs["units"]`` maps dimension names to
        units (results put them on their coordinates); ``attrs["data_units"]`` is the
        unit of the values, if the source states one.
    partitions : tuple of Partition
        The partitions, in flattened navigation order.
    partition_array : dask.array.Array
        Shape ``(n_frames,) + sig``, one chunk per partition.
    reader : callable or None
        ``reader(start, stop, mask)``: frames ``start:stop``, reading only those where
        the boolean ``mask`` is True (file sources set it, so a ROI skips storage).
    resident : bool
        The data is held in memory (the memory source; dask and xarray sources of
        NumPy arrays): the ``dask.distributed`` executor sends it to the workers
        once, and they keep it until the dataset is dropped.

    Examples
    --------
    >>> ds = ctx.load("memory", data=np.zeros((4, 6, 8, 8), dtype="float32"), num_partitions=3)
    >>> ds.shape, ds.dims
    (Shape((4, 6, 8, 8), sig_dims=2), ('scan_y', 'scan_x', 'det_y', 'det_x'))
    >>> [(p.start, p.stop) for p in ds.partitions]
    [(0, 6), (6, 18), (18, 24)]
    """

    def __init__(
        self,
        partition_array: da.Array,
        *,
        nav_shape: Sequence[int],
        partitions: Sequence[Partition],
        token: str,
        dims: Sequence[str] | None = None,
        coords: Mapping[str, Any] | None = None,
        attrs: Mapping[str, Any] | None = None,
        array: da.Array | None = None,
        layout: FrameLayout | None = None,
        tile_depth: int | None = None,
        tile_delay: float | None = None,
        reader: Callable[[int, int, np.ndarray | None], np.ndarray] | None = None,
        resident: bool = False,
    ) -> None:
        sig = tuple(partition_array.shape[1:])
        self._shape = Shape((*nav_shape, *sig), sig_dims=len(sig))
        bounds = [p.start for p in partitions] + [partitions[-1].stop]
        if tuple(np.diff(bounds)) != partition_array.chunks[0]:
            raise ValueError("partition_array must have one chunk per partition")
        self.partition_array = partition_array
        self.partitions = tuple(partitions)
        self.dims = tuple(dims) if dims is not None else default_dims(len(nav_shape), len(sig))
        if len(self.dims) != len(self._shape):
            raise DataSetException(
                f"dims has {len(self.dims)} names {self.dims!r}; the data has "
                f"{len(self._shape)} dimensions {tuple(self._shape)}"
            )
        self.coords = {d: np.arange(n) for d, n in zip(self.dims, self._shape, strict=True)}
        self.coords.update(coords or {})
        self.attrs = dict(attrs or {})
        self._token = token
        n_frames = math.prod(nav_shape)
        self.layout = layout or FrameLayout(n_frames, tuple(nav_shape), sig, 0)
        #: frames per tile, forced (LiberTEM's ``tileshape[0]``); None chooses by size
        self.tile_depth = tile_depth
        #: seconds to sleep per tile (LiberTEM's ``tiledelay``, to slow runs in tests)
        self.tile_delay = tile_delay
        #: ``reader(start, stop, mask)`` returns dataset frames ``start:stop``; frames
        #: where ``mask`` is False may stay zero (and their storage unread). Runs with a
        #: ROI read partitions through it; None means always ``partition_array``.
        self.reader = reader
        #: the data is in this process's memory (NumPy, or a dask array of NumPy):
        #: a cluster's workers may keep a copy between runs instead of receiving it
        #: with every run's graph
        self.resident = resident
        if array is not None:
            self.__dict__["array"] = array

    @cached_property
    def array(self) -> da.Array:
        """The data as a dask array of shape ``nav + sig``."""
        array: da.Array = self.partition_array.reshape(tuple(self._shape))
        return array

    @property
    def shape(self) -> Shape:
        """Shape with navigation and signal parts."""
        return self._shape

    @property
    def dtype(self) -> np.dtype[Any]:
        """Native dtype."""
        dtype: np.dtype[Any] = np.dtype(self.partition_array.dtype)
        return dtype

    @property
    def sig_dims(self) -> int:
        """Number of signal dimensions."""
        return self._shape.sig_dims

    @property
    def nav_dims(self) -> tuple[str, ...]:
        """Names of the navigation dimensions."""
        return self.dims[: self._shape.nav_dims]

    @property
    def sig_dim_names(self) -> tuple[str, ...]:
        """Names of the signal dimensions."""
        return self.dims[self._shape.nav_dims :]

    @property
    def meta(self) -> DataSetMeta:
        """Shape, dtypes, frame count and sync offset (LiberTEM's ``DataSetMeta``)."""
        return DataSetMeta(
            shape=self._shape,
            raw_dtype=self.dtype,
            dtype=self.dtype,
            sync_offset=self.layout.sync_offset,
            image_count=self.layout.n_raw,
            metadata=dict(self.attrs),
        )

    @property
    def roi(self) -> _RoiHelper:
        """Build boolean navigation masks by indexing: ``ds.roi[1:3, 0]``."""
        return _RoiHelper(tuple(self._shape.nav))

    def get_num_partitions(self) -> int:
        """Number of partitions."""
        return len(self.partitions)

    def get_partitions(self) -> Iterator[Partition]:
        """The partitions, in flattened navigation order, as an iterator (as LiberTEM
        gives them; ``partitions`` is the tuple)."""
        return iter(self.partitions)

    def __dask_tokenize__(self) -> Any:
        return ("dataflow.DataSet", self._token)

    def __repr__(self) -> str:
        return (
            f"<DataSet shape={tuple(self._shape)} dims={self.dims} dtype={self.dtype} "
            f"partitions={len(self.partitions)}>"
        )


@dataclass(frozen=True)
class DataSetMeta:
    """What LiberTEM's ``dataset.meta`` holds."""

    shape: Shape
    raw_dtype: np.dtype
    dtype: np.dtype
    sync_offset: int
    image_count: int
    metadata: dict[str, Any]


class _RoiHelper:
    """``ds.roi[index]``: a boolean navigation mask that is True at ``index``."""

    def __init__(self, nav_shape: tuple[int, ...]) -> None:
        self._nav_shape = nav_shape

    def __getitem__(self, index: Any) -> np.ndarray:
        mask = np.zeros(self._nav_shape, dtype=bool)
        mask[index] = True
        return mask
