"""DataSets: a chunked dask array of shape ``nav + sig`` with names, coordinates and partitions.

A partition is a contiguous run of whole frames in flattened navigation order. The
engine runs one task per partition; each task receives its frames as one block of
:attr:`DataSet.partition_array`, a dask array of shape ``(n_frames,) + sig`` chunked
by partition.

This module also holds the in-engine sources, ``memory`` (a NumPy array, wrapped
without a copy) and ``dask`` (any dask array); file formats live in
``dataflow.adapters``.
"""

from __future__ import annotations

import itertools
import math
import uuid
import warnings
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np

from dataflow.errors import DataflowWarning, DataSetException
from dataflow.shape import Shape

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "DEFAULT_PARTITION_BYTES",
    "DaskAdapter",
    "DataSet",
    "MemoryAdapter",
    "Partition",
    "check_sig_dims",
    "default_dims",
    "plan_partitions",
]

#: Target partition size in bytes of native data.
DEFAULT_PARTITION_BYTES = 128 * 2**20


@dataclass(frozen=True)
class Partition:
    """Frames ``start:stop`` of the flattened navigation axis.

    Examples
    --------
    >>> p = Partition(index=1, start=64, stop=128)
    >>> p.n_frames, p.slice
    (64, slice(64, 128, None))
    """

    index: int
    start: int
    stop: int

    @property
    def n_frames(self) -> int:
        """Number of frames in the partition."""
        return self.stop - self.start

    @property
    def slice(self) -> slice:
        """The partition as a slice of the flattened navigation axis."""
        return slice(self.start, self.stop)


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


def _check_count(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} is {value!r}; expected an integer >= {minimum}")
    if value < minimum:
        raise ValueError(f"{name} is {value!r}; expected an integer >= {minimum}")
    return int(value)


def _pick_boundaries(candidates: np.ndarray, n_parts: int) -> list[int]:
    """``n_parts + 1`` boundaries from ``candidates`` (sorted, first 0, last N), near-even."""
    total = int(candidates[-1])
    last = len(candidates) - 1
    chosen = [0]
    for k in range(1, n_parts):
        ideal = k * total / n_parts
        i = int(np.searchsorted(candidates, ideal))
        if i > 0 and (i > last or ideal - candidates[i - 1] <= candidates[i] - ideal):
            i -= 1
        i = max(i, chosen[-1] + 1)  # strictly increasing
        i = min(i, last - (n_parts - k))  # leave room for the rest
        chosen.append(i)
    chosen.append(last)
    return [int(candidates[i]) for i in chosen]


def plan_partitions(
    n_frames: int,
    frame_bytes: int,
    *,
    row_length: int = 1,
    num_partitions: int | None = None,
    min_partitions: int = 1,
    target_bytes: int = DEFAULT_PARTITION_BYTES,
    chunk_boundaries: Sequence[int] | None = None,
) -> tuple[Partition, ...]:
    """Split ``n_frames`` frames into contiguous partitions.

    Partitions are sized near ``target_bytes`` (at least ``min_partitions`` of them,
    e.g. one per worker thread) unless ``num_partitions`` is given. Boundaries fall on
    storage chunk boundaries and whole scan rows where enough such boundaries exist.

    Examples
    --------
    >>> [p.n_frames for p in plan_partitions(256, 4096, row_length=16, num_partitions=7)]
    [32, 48, 32, 32, 32, 48, 32]
    """
    if n_frames < 1:
        raise DataSetException("the dataset has no frames: its navigation shape has size 0")
    if num_partitions is not None:
        n = _check_count("num_partitions", num_partitions)
        if n > n_frames:
            raise ValueError(
                f"num_partitions is {n}; the dataset has only {n_frames} frames, so at most "
                f"{n_frames} partitions are possible"
            )
    else:
        n = max(min_partitions, math.ceil(n_frames * frame_bytes / target_bytes))
        n = min(n, n_frames)
    every = np.arange(n_frames + 1)
    rows = every[:: max(1, row_length)] if n_frames % max(1, row_length) == 0 else every
    options = [rows, every]
    if chunk_boundaries is not None:
        chunks = np.asarray(sorted(set(chunk_boundaries) | {0, n_frames}))
        options = [np.intersect1d(chunks, rows), chunks, *options]
    candidates = next(c for c in options if len(c) - 1 >= n)
    bounds = _pick_boundaries(candidates, n)
    return tuple(
        Partition(index=i, start=b0, stop=b1)
        for i, (b0, b1) in enumerate(itertools.pairwise(bounds))
    )


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
        Metadata (units, calibration, provenance).
    partitions : tuple of Partition
        The partitions, in flattened navigation order.
    partition_array : dask.array.Array
        Shape ``(n_frames,) + sig``, one chunk per partition.

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
        if array is not None:
            self.__dict__["array"] = array

    @cached_property
    def array(self) -> da.Array:
        """The data as a dask array of shape ``nav + sig``."""
        return self.partition_array.reshape(tuple(self._shape))

    @property
    def shape(self) -> Shape:
        """Shape with navigation and signal parts."""
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        """Native dtype."""
        return self.partition_array.dtype

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

    def get_num_partitions(self) -> int:
        """Number of partitions."""
        return len(self.partitions)

    def get_partitions(self) -> tuple[Partition, ...]:
        """The partitions, in flattened navigation order."""
        return self.partitions

    def __dask_tokenize__(self) -> Any:
        return ("dataflow.DataSet", self._token)

    def __repr__(self) -> str:
        return (
            f"<DataSet shape={tuple(self._shape)} dims={self.dims} dtype={self.dtype} "
            f"partitions={len(self.partitions)}>"
        )


# in-engine sources ---------------------------------------------------------------------


def check_sig_dims(sig_dims: Any, shape: Sequence[int], source: str = "the data") -> int:
    """Validate ``sig_dims`` for data of ``shape``: at least one navigation dimension.

    Parameters
    ----------
    sig_dims
        Number of trailing signal dimensions.
    shape
        Shape of the data.
    source
        How to name the data in messages, e.g. a file path.

    Examples
    --------
    >>> check_sig_dims(2, (4, 4, 8, 8))
    2
    >>> check_sig_dims(4, (4, 4, 8, 8))
    Traceback (most recent call last):
    ...
    ValueError: sig_dims is 4; the data has shape (4, 4, 8, 8) (4 dimensions), so sig_dims must be from 1 to 3
    """
    shape = tuple(shape)
    ndim = len(shape)
    if isinstance(sig_dims, bool) or not isinstance(sig_dims, (int, np.integer)):
        raise TypeError(f"sig_dims is {sig_dims!r}; expected an integer from 1 to {ndim - 1}")
    if ndim < 2:
        raise DataSetException(
            f"{source} has shape {shape}; expected at least 2 dimensions (navigation + signal)"
        )
    if not 1 <= sig_dims <= ndim - 1:
        raise ValueError(
            f"sig_dims is {sig_dims!r}; {source} has shape {shape} ({ndim} dimensions), so "
            f"sig_dims must be from 1 to {ndim - 1}"
        )
    return int(sig_dims)


class MemoryAdapter:
    """The ``memory`` source: a NumPy array, wrapped without a copy and without hashing."""

    name = "memory"
    description = "an in-memory NumPy array"
    extensions: tuple[str, ...] = ()

    @staticmethod
    def open(
        data: Any = None,
        *,
        sig_dims: int | None = None,
        num_partitions: int | None = None,
        partition_bytes: int = DEFAULT_PARTITION_BYTES,
        dims: Sequence[str] | None = None,
        coords: Mapping[str, Any] | None = None,
        attrs: Mapping[str, Any] | None = None,
        min_partitions: int = 1,
    ) -> DataSet:
        """Wrap ``data`` (nav + sig) as a DataSet."""
        if data is None:
            raise TypeError("ctx.load('memory', ...) needs data=<numpy array>")
        if not isinstance(data, np.ndarray):
            if hasattr(data, "__dask_graph__"):
                raise TypeError(
                    f"data is a {type(data).__name__}; use ctx.load('dask', array, sig_dims=...)"
                )
            data = np.asarray(data)
        sig_dims = check_sig_dims(2 if sig_dims is None else sig_dims, data.shape)
        if not data.flags.c_contiguous:
            warnings.warn(
                f"data is not C-contiguous; dataflow made a contiguous copy "
                f"({data.nbytes / 2**20:.1f} MiB). Pass np.ascontiguousarray(data) to own it.",
                DataflowWarning,
                stacklevel=3,
            )
            data = np.ascontiguousarray(data)
        nav_shape, sig_shape = data.shape[:-sig_dims], data.shape[-sig_dims:]
        n_frames = math.prod(nav_shape)
        flat = data.reshape((n_frames, *sig_shape))  # a view: data is C-contiguous
        partitions = plan_partitions(
            n_frames,
            flat[0].nbytes if n_frames else 0,
            row_length=nav_shape[-1],
            num_partitions=num_partitions,
            min_partitions=min_partitions,
            target_bytes=partition_bytes,
        )
        token = uuid.uuid4().hex
        name = f"memory-{token}"
        # each partition's frames are one literal view of `data`: no copy, no hash
        zeros = (0,) * len(sig_shape)
        dsk = {(name, p.index, *zeros): flat[p.slice] for p in partitions}
        chunks = (tuple(p.n_frames for p in partitions), *((s,) for s in sig_shape))
        meta = np.empty((0,) * flat.ndim, dtype=flat.dtype)
        array = da.Array(dsk, name, chunks, dtype=flat.dtype, meta=meta)
        return DataSet(
            array,
            nav_shape=nav_shape,
            partitions=partitions,
            token=token,
            dims=dims,
            coords=coords,
            attrs=attrs,
        )


class DaskAdapter:
    """The ``dask`` source: any dask array; its chunks become partition boundaries."""

    name = "dask"
    description = "a dask array"
    extensions: tuple[str, ...] = ()

    @staticmethod
    def open(
        dask_array: Any = None,
        *,
        sig_dims: int | None = None,
        num_partitions: int | None = None,
        partition_bytes: int = DEFAULT_PARTITION_BYTES,
        dims: Sequence[str] | None = None,
        coords: Mapping[str, Any] | None = None,
        attrs: Mapping[str, Any] | None = None,
        min_partitions: int = 1,
    ) -> DataSet:
        """Wrap ``dask_array`` (nav + sig) as a DataSet."""
        if not isinstance(dask_array, da.Array):
            raise TypeError(
                f"ctx.load('dask', ...) needs a dask.array.Array; got {type(dask_array).__name__}"
            )
        if dask_array.ndim < 2:
            raise DataSetException(
                f"the array has shape {dask_array.shape}; expected at least 2 dimensions"
            )
        if any(math.isnan(s) for s in dask_array.shape):
            raise DataSetException(
                "the array has unknown chunk sizes; call .compute_chunk_sizes() first"
            )
        sig_dims = check_sig_dims(2 if sig_dims is None else sig_dims, dask_array.shape)
        nav_shape = dask_array.shape[:-sig_dims]
        sig_shape = dask_array.shape[-sig_dims:]
        n_frames = math.prod(nav_shape)
        # whole frames per block, then flatten the navigation axes
        whole = dask_array.rechunk(dict.fromkeys(range(len(nav_shape), dask_array.ndim), -1))
        flat = whole.reshape((n_frames, *sig_shape))
        boundaries = np.concatenate([[0], np.cumsum(flat.chunks[0])]).tolist()
        frame_bytes = math.prod(sig_shape) * dask_array.dtype.itemsize
        partitions = plan_partitions(
            n_frames,
            frame_bytes,
            row_length=nav_shape[-1],
            num_partitions=num_partitions,
            min_partitions=min_partitions,
            target_bytes=partition_bytes,
            chunk_boundaries=boundaries,
        )
        sizes = tuple(p.n_frames for p in partitions)
        part_array = flat.rechunk({0: sizes}) if sizes != flat.chunks[0] else flat
        return DataSet(
            part_array,
            nav_shape=nav_shape,
            partitions=partitions,
            token=f"dask-{dask_array.name}-{sizes}",
            dims=dims,
            coords=coords,
            attrs=attrs,
            array=dask_array,
        )
