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

from dataflow.adapter import Adapter
from dataflow.errors import DataflowWarning, DataSetException
from dataflow.shape import Shape

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

__all__ = [
    "DEFAULT_PARTITION_BYTES",
    "DaskAdapter",
    "DataSet",
    "XarrayAdapter",
    "DataSetMeta",
    "FrameLayout",
    "MemoryAdapter",
    "Partition",
    "check_sig_dims",
    "default_dims",
    "make_layout",
    "pad_frames",
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
    target_bytes = _check_count("partition_bytes", target_bytes)
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
    # a regular grid (equal partitions, a smaller last one) where it gives n partitions:
    # results then have regular chunks, which formats such as zarr require
    step = -(-(len(candidates) - 1) // n)
    grid = list(candidates[::step])
    if grid[-1] != candidates[-1]:
        grid.append(candidates[-1])
    regular = len(grid) - 1 == n and all(
        b - a == grid[1] - grid[0] for a, b in itertools.pairwise(grid[:-1])
    )
    bounds = [int(b) for b in grid] if regular else _pick_boundaries(candidates, n)
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


# frame layout: nav_shape, sig_shape and sync_offset over the frames of a source ------------


@dataclass(frozen=True)
class FrameLayout:
    """How the frames of a source (``n_raw`` of them, in order) map onto the dataset.

    Frame ``i`` of the dataset is frame ``i + sync_offset`` of the source; frames that
    fall before the source's first or after its last are zeros. ``nav_shape`` and
    ``sig_shape`` reshape the result.

    Examples
    --------
    >>> layout = FrameLayout(n_raw=10, nav_shape=(3, 4), sig_shape=(8,), sync_offset=-2)
    >>> layout.n_frames, layout.raw_window(0, 4)  # 2 zero frames, then source frames 0, 1
    (12, (0, 2, 2, 0))
    >>> layout.raw_window(8, 12)  # source frames 6..9, no padding
    (6, 10, 0, 0)
    """

    n_raw: int
    nav_shape: tuple[int, ...]
    sig_shape: tuple[int, ...]
    sync_offset: int

    @property
    def n_frames(self) -> int:
        """Frames in the dataset."""
        return math.prod(self.nav_shape)

    @property
    def is_identity(self) -> bool:
        """Whether dataset frame ``i`` is source frame ``i`` for every frame."""
        return self.sync_offset == 0 and self.n_frames == self.n_raw

    def raw_window(self, start: int, stop: int) -> tuple[int, int, int, int]:
        """For dataset frames ``start:stop``: source frames ``a:b``, zero frames before, after."""
        a, b = start + self.sync_offset, stop + self.sync_offset
        ra, rb = max(a, 0), min(b, self.n_raw)
        if ra >= rb:
            return 0, 0, stop - start, 0
        return ra, rb, ra - a, b - rb

    def dataset_boundaries(self, raw_boundaries: Sequence[int]) -> list[int]:
        """Source chunk boundaries as dataset frame indices, inside ``0..n_frames``."""
        shifted = (int(b) - self.sync_offset for b in raw_boundaries)
        return sorted({b for b in shifted if 0 <= b <= self.n_frames} | {0, self.n_frames})


def make_layout(
    raw_shape: Sequence[int],
    sig_dims: int,
    *,
    nav_shape: Sequence[int] | None = None,
    sig_shape: Sequence[int] | None = None,
    sync_offset: int = 0,
    source: str = "the data",
) -> FrameLayout:
    """Check ``nav_shape``, ``sig_shape`` and ``sync_offset`` against a source's shape.

    Parameters
    ----------
    raw_shape
        The source's shape; its last ``sig_dims`` dimensions are one frame.
    nav_shape, sig_shape
        The dataset's shapes; by default the source's. ``sig_shape`` must hold as many
        elements as a source frame; ``nav_shape`` may hold fewer or more frames than
        the source (missing frames are zeros).
    sync_offset
        Dataset frame ``i`` is source frame ``i + sync_offset``: positive skips frames
        at the start, negative inserts blank ones.
    """
    raw_shape = tuple(int(s) for s in raw_shape)
    raw_sig = raw_shape[len(raw_shape) - sig_dims :]
    n_raw = math.prod(raw_shape[: len(raw_shape) - sig_dims])
    sig = raw_sig if sig_shape is None else _positive_shape("sig_shape", sig_shape)
    if math.prod(sig) != math.prod(raw_sig):
        raise DataSetException(
            f"sig_shape is {sig}, {math.prod(sig)} elements per frame; the frames of {source} "
            f"have shape {raw_sig}, {math.prod(raw_sig)} elements"
        )
    nav = (
        raw_shape[: len(raw_shape) - sig_dims]
        if nav_shape is None
        else _positive_shape("nav_shape", nav_shape)
    )
    if isinstance(sync_offset, bool) or not isinstance(sync_offset, (int, np.integer)):
        raise TypeError(f"sync_offset is {sync_offset!r}; expected an integer")
    if n_raw and not -n_raw < sync_offset < n_raw:
        raise DataSetException(
            f"sync_offset is {sync_offset}; {source} has {n_raw} frames, so it must lie in "
            f"({-n_raw}, {n_raw})"
        )
    return FrameLayout(n_raw, tuple(nav), tuple(sig), int(sync_offset))


def _positive_shape(name: str, shape: Any) -> tuple[int, ...]:
    try:
        out = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise TypeError(f"{name} is {shape!r}; expected a tuple of positive integers") from None
    if not out or any(s < 1 for s in out):
        raise ValueError(f"{name} is {shape!r}; expected a tuple of positive integers")
    return out


def pad_frames(block: np.ndarray, pre: int, post: int, sig_shape: Sequence[int]) -> np.ndarray:
    """``block`` (frames, reshaped to ``sig_shape``) with zero frames before and after."""
    block = block.reshape((-1, *sig_shape))
    if not pre and not post:
        return block
    out = np.zeros((pre + len(block) + post, *sig_shape), dtype=block.dtype)
    out[pre : pre + len(block)] = block
    return out


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


class MemoryAdapter(Adapter):
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
        nav_shape: Sequence[int] | None = None,
        sig_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        tileshape: Sequence[int] | None = None,
        tiledelay: float | None = None,
        dims: Sequence[str] | None = None,
        coords: Mapping[str, Any] | None = None,
        attrs: Mapping[str, Any] | None = None,
        min_partitions: int = 1,
        datashape: Sequence[int] | None = None,
    ) -> DataSet:
        """Wrap ``data`` (nav + sig) as a DataSet.

        Parameters
        ----------
        data
            The array, navigation dimensions first.
        sig_dims
            Number of signal dimensions; 2 by default (``len(sig_shape)`` if given).
        num_partitions
            Number of partitions; by default about ``partition_bytes`` each.
        nav_shape, sig_shape, sync_offset
            Reshape the frames; see :func:`make_layout`.
        tileshape
            Force tiles of ``tileshape[0]`` frames (tiles always span whole frames).
        tiledelay
            Seconds to sleep per tile, to make runs slow in tests.
        datashape
            Without ``data``: the shape of random float32 data to make (as LiberTEM).
        dims, coords, attrs
            Dimension names, coordinates and attributes of the dataset.
        """
        if data is None and datashape is not None:
            data = np.random.default_rng().random(tuple(datashape), dtype=np.float32)
        if data is None:
            raise TypeError("ctx.load('memory', ...) needs data=<numpy array> (or datashape=)")
        if not isinstance(data, np.ndarray):
            if hasattr(data, "__dask_graph__"):
                raise TypeError(
                    f"data is a {type(data).__name__}; use ctx.load('dask', array, sig_dims=...)"
                )
            data = np.asarray(data)
        if sig_dims is None:
            sig_dims = 2 if sig_shape is None else len(tuple(sig_shape))
        sig_dims = check_sig_dims(sig_dims, data.shape)
        if not data.flags.c_contiguous:
            warnings.warn(
                f"data is not C-contiguous; dataflow made a contiguous copy "
                f"({data.nbytes / 2**20:.1f} MiB). Pass np.ascontiguousarray(data) to own it.",
                DataflowWarning,
                stacklevel=3,
            )
            data = np.ascontiguousarray(data)
        layout = make_layout(
            data.shape, sig_dims, nav_shape=nav_shape, sig_shape=sig_shape, sync_offset=sync_offset
        )
        raw = data.reshape((layout.n_raw, *layout.sig_shape))  # a view: data is C-contiguous
        partitions = plan_partitions(
            layout.n_frames,
            raw[0].nbytes if layout.n_raw else 0,
            row_length=layout.nav_shape[-1],
            num_partitions=num_partitions,
            min_partitions=min_partitions,
            target_bytes=partition_bytes,
        )
        token = uuid.uuid4().hex
        name = f"memory-{token}"
        # each partition's frames are one literal view of `data`: no copy, no hash; only
        # partitions that reach past the data (sync_offset, a larger nav_shape) get a task
        # that pads them with zero frames
        zeros = (0,) * len(layout.sig_shape)
        dsk: dict[Any, Any] = {}
        for p in partitions:
            a, b, pre, post = layout.raw_window(p.start, p.stop)
            view = raw[a:b]
            if pre or post:
                dsk[(name, p.index, *zeros)] = (pad_frames, view, pre, post, layout.sig_shape)
            else:
                dsk[(name, p.index, *zeros)] = view
        chunks = (tuple(p.n_frames for p in partitions), *((s,) for s in layout.sig_shape))
        meta = np.empty((0,) * raw.ndim, dtype=raw.dtype)
        array = da.Array(dsk, name, chunks, dtype=raw.dtype, meta=meta)
        return DataSet(
            array,
            nav_shape=layout.nav_shape,
            partitions=partitions,
            token=token,
            dims=dims,
            coords=coords,
            attrs=attrs,
            layout=layout,
            tile_depth=_tile_depth(tileshape),
            tile_delay=tiledelay,
        )


def _tile_depth(tileshape: Sequence[int] | None) -> int | None:
    if tileshape is None:
        return None
    shape = _positive_shape("tileshape", tileshape)
    return shape[0]


class DaskAdapter(Adapter):
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
        nav_shape: Sequence[int] | None = None,
        sig_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        dims: Sequence[str] | None = None,
        coords: Mapping[str, Any] | None = None,
        attrs: Mapping[str, Any] | None = None,
        min_partitions: int = 1,
        preserve_dimensions: bool = True,
        min_size: float | None = None,
        io_backend: Any = None,
    ) -> DataSet:
        """Wrap ``dask_array`` (nav + sig) as a DataSet.

        Partition boundaries follow the array's chunks (flattened over the navigation
        axes) where enough of them exist; signal chunks are merged into whole frames.
        ``min_size`` (bytes) is LiberTEM's name for ``partition_bytes``.
        """
        if not isinstance(dask_array, da.Array):
            raise TypeError(
                f"ctx.load('dask', ...) needs a dask.array.Array; got {type(dask_array).__name__}"
            )
        if any(math.isnan(s) for s in dask_array.shape):
            raise DataSetException(
                "the array has unknown chunk sizes; call .compute_chunk_sizes() first"
            )
        if sig_dims is None:
            sig_dims = 2 if sig_shape is None else len(tuple(sig_shape))
        sig_dims = check_sig_dims(sig_dims, dask_array.shape)
        if min_size is not None:
            partition_bytes = int(min_size)
        layout = make_layout(
            dask_array.shape,
            sig_dims,
            nav_shape=nav_shape,
            sig_shape=sig_shape,
            sync_offset=sync_offset,
        )
        n_nav = dask_array.ndim - sig_dims
        # whole frames per block, then flatten the navigation axes
        whole = dask_array.rechunk(dict.fromkeys(range(n_nav, dask_array.ndim), -1))
        raw = whole.reshape((layout.n_raw, *layout.sig_shape))
        raw_bounds = np.concatenate([[0], np.cumsum(raw.chunks[0])]).tolist()
        flat = raw
        if not layout.is_identity:
            a, b, pre, post = layout.raw_window(0, layout.n_frames)
            pieces = [raw[a:b]]
            if pre:
                pieces.insert(0, da.zeros((pre, *layout.sig_shape), dtype=raw.dtype))
            if post:
                pieces.append(da.zeros((post, *layout.sig_shape), dtype=raw.dtype))
            flat = da.concatenate(pieces) if len(pieces) > 1 else pieces[0]
        frame_bytes = math.prod(layout.sig_shape) * dask_array.dtype.itemsize
        partitions = plan_partitions(
            layout.n_frames,
            frame_bytes,
            row_length=layout.nav_shape[-1],
            num_partitions=num_partitions,
            min_partitions=min_partitions,
            target_bytes=partition_bytes,
            chunk_boundaries=layout.dataset_boundaries(raw_bounds),
        )
        sizes = tuple(p.n_frames for p in partitions)
        part_array = flat.rechunk({0: sizes}) if sizes != flat.chunks[0] else flat
        return DataSet(
            part_array,
            nav_shape=layout.nav_shape,
            partitions=partitions,
            token=f"dask-{dask_array.name}-{sizes}-{layout}",
            dims=dims,
            coords=coords,
            attrs=attrs,
            array=dask_array
            if layout.is_identity and tuple(layout.sig_shape) == tuple(dask_array.shape[n_nav:])
            else None,
            layout=layout,
        )


class XarrayAdapter(Adapter):
    """The ``xarray`` source: a DataArray, NumPy- or dask-backed, with its labels.

    Signal dimensions are chosen by name; the others are the navigation dimensions,
    in the DataArray's order. Dimension names, coordinates (with their ``units``
    attributes) and attributes are carried into the results.
    """

    name = "xarray"
    description = "an xarray.DataArray (NumPy- or dask-backed)"
    extensions: tuple[str, ...] = ()

    @staticmethod
    def open(
        data_array: Any = None,
        *,
        sig_dims: Sequence[str] | int | None = None,
        num_partitions: int | None = None,
        partition_bytes: int = DEFAULT_PARTITION_BYTES,
        min_partitions: int = 1,
    ) -> DataSet:
        """Wrap ``data_array``; ``sig_dims`` names its signal dimensions (default: last 2)."""
        import xarray as xr

        if not isinstance(data_array, xr.DataArray):
            raise TypeError(
                f"ctx.load('xarray', ...) needs an xarray.DataArray; got "
                f"{type(data_array).__name__}"
            )
        names = _signal_names(data_array, sig_dims)
        nav = [d for d in data_array.dims if d not in names]
        arr = data_array.transpose(*nav, *names)
        dims = tuple(str(d) for d in arr.dims)
        coords = {str(d): np.asarray(arr[d].values) for d in arr.dims if d in arr.coords}
        units = {
            str(d): arr[d].attrs["units"]
            for d in arr.dims
            if d in arr.coords and "units" in arr[d].attrs
        }
        attrs = dict(arr.attrs)
        if isinstance(attrs.get("units"), str):  # the data's own unit
            attrs["data_units"] = attrs.pop("units")
        if units:
            attrs["units"] = units
        common = {
            "sig_dims": len(names),
            "num_partitions": num_partitions,
            "partition_bytes": partition_bytes,
            "dims": dims,
            "coords": coords,
            "attrs": attrs,
            "min_partitions": min_partitions,
        }
        if isinstance(arr.data, da.Array):
            _warn_signal_chunks(arr.data, len(names), partition_bytes)
            return DaskAdapter.open(arr.data, **common)
        return MemoryAdapter.open(np.asarray(arr.data), **common)


def _signal_names(data_array: Any, sig_dims: Sequence[str] | int | None) -> tuple[str, ...]:
    dims = tuple(str(d) for d in data_array.dims)
    if sig_dims is None:
        sig_dims = 2
    if isinstance(sig_dims, (int, np.integer)) and not isinstance(sig_dims, bool):
        check_sig_dims(int(sig_dims), data_array.shape, f"the DataArray with dims {dims}")
        return dims[len(dims) - int(sig_dims) :]
    if isinstance(sig_dims, str):
        sig_dims = (sig_dims,)
    names = tuple(str(d) for d in sig_dims)
    missing = [d for d in names if d not in dims]
    if missing:
        raise ValueError(f"sig_dims names {missing}, which the DataArray lacks; its dims: {dims}")
    if len(names) >= len(dims):
        raise ValueError(
            f"sig_dims is {names}; at least one of the DataArray's dims {dims} must be left "
            "for navigation"
        )
    return names


def _warn_signal_chunks(array: da.Array, sig_dims: int, partition_bytes: int) -> None:
    """Warn when merging signal chunks into whole frames makes large intermediate blocks."""
    sig_chunks = array.chunks[array.ndim - sig_dims :]
    if all(len(c) == 1 for c in sig_chunks):
        return
    nav_block = math.prod(max(c) for c in array.chunks[: array.ndim - sig_dims])
    frame_bytes = math.prod(array.shape[array.ndim - sig_dims :]) * array.dtype.itemsize
    block = nav_block * frame_bytes
    if block > partition_bytes:
        warnings.warn(
            f"the signal dimensions are chunked {tuple(max(c) for c in sig_chunks)}; dataflow "
            f"processes whole frames, so it merges them into blocks of {block / 2**20:.0f} MiB "
            f"(partitions are near {partition_bytes / 2**20:.0f} MiB). Rechunk the navigation "
            "dimensions smaller, or the signal dimensions whole, to avoid it.",
            DataflowWarning,
            stacklevel=4,
        )
