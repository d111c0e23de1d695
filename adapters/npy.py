"""The ``npy`` adapter: a NumPy ``.npy`` file, read frame range by frame range.

Opening reads the header only (shape, dtype, memory order, where the data starts).
``nav_shape``, ``sig_shape`` and ``sync_offset`` reinterpret the stored items as
LiberTEM's ``NPYDataSet`` does: a run of C-ordered frames from the start of the data.

Reading goes through one small picklable object, :class:`BinaryFrameReader`, that
holds the path, the data offset, the dtype and the frame layout: each partition task
calls it for its frame range (a read-only view of a memory map of the file, see
:class:`FileMaps`), and runs with a ROI call it with a mask, so only the contiguous
runs of selected frames are read. The dask graph holds paths and offsets, never a
handle or a memory map. The raw adapter reuses it.
"""

from __future__ import annotations

import math
import mmap
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np
from dask.base import tokenize

from dataflow.sources.adapter import Adapter
from dataflow.sources import (
    DEFAULT_PARTITION_BYTES,
    DataSet,
    FrameLayout,
    check_sig_dims,
    make_layout,
    pad_frames,
    plan_partitions,
)
from dataflow.errors import DataSetException

if TYPE_CHECKING:
    from collections.abc import Sequence

    from dataflow.sources import Partition

__all__ = [
    "FILE_MAPS",
    "BinaryFrameReader",
    "FileMaps",
    "NPYAdapter",
    "mask_runs",
    "read_block",
    "read_header",
    "reader_array",
]


def _as_path(path: Any) -> Path:
    """``path`` as an absolute :class:`~pathlib.Path`; a TypeError for anything else."""
    if path is None:
        raise TypeError("ctx.load('npy', ...) needs path=<path of a .npy file>")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"path is a {type(path).__name__}; expected a str or os.PathLike naming a .npy file"
        )
    return Path(path).expanduser().absolute()


def read_header(path: str | os.PathLike[str]) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """Shape, dtype, Fortran order and data offset of a ``.npy`` file, without reading data.

    Parameters
    ----------
    path
        A ``.npy`` file.

    Returns
    -------
    shape, dtype, fortran_order, offset
        As in the header; ``offset`` is the byte position where the data starts.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DataSetException
        If the file is not a ``.npy`` file of format version 1.0 or 2.0.

    Examples
    --------
    >>> p = tmp_path / "a.npy"
    >>> np.save(p, np.zeros((2, 3), dtype="uint16"))
    >>> read_header(p)
    ((2, 3), dtype('uint16'), False, 128)
    """
    p = _as_path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such .npy file: {str(p)!r}")
    if p.is_dir():
        raise IsADirectoryError(f"{str(p)!r} is a directory; expected a .npy file")
    with p.open("rb") as f:
        try:
            version = np.lib.format.read_magic(f)
        except ValueError as e:
            raise DataSetException(
                f"{str(p)!r} is not a .npy file (its first bytes are not the NumPy magic "
                f"string): {e}"
            ) from e
        try:
            if version == (1, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise DataSetException(
                    f"{str(p)!r} is a .npy file of format version {version[0]}.{version[1]}; "
                    "the npy adapter reads versions 1.0 and 2.0"
                )
        except ValueError as e:
            if isinstance(e, DataSetException):
                raise
            raise DataSetException(f"{str(p)!r} has a broken .npy header: {e}") from e
        offset = f.tell()
    return tuple(int(s) for s in shape), np.dtype(dtype), bool(fortran_order), offset


def mask_runs(mask: Any, n: int) -> list[tuple[int, int]]:
    """Contiguous runs ``(i0, i1)`` of True in ``mask`` (all of ``0:n`` if it is None).

    Examples
    --------
    >>> mask_runs(np.array([True, True, False, True]), 4)
    [(0, 2), (3, 4)]
    >>> mask_runs(None, 3)
    [(0, 3)]
    """
    if mask is None:
        return [(0, n)]
    m = np.asarray(mask, dtype=bool).reshape(-1)
    if m.size != n:
        raise ValueError(f"mask has {m.size} entries; expected one per frame, {n}")
    edges = np.flatnonzero(np.diff(np.concatenate(([0], m.view(np.int8), [0]))))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _map(path: str, start: int, length: int) -> np.ndarray:
    """Bytes ``start:start + length`` of ``path``, mapped read-only, as a uint8 array.

    The map stays open as long as the array (or a view of it) lives.
    """
    aligned = start - start % mmap.ALLOCATIONGRANULARITY
    with open(path, "rb") as f:
        mapped = mmap.mmap(
            f.fileno(), length + start - aligned, access=mmap.ACCESS_READ, offset=aligned
        )
    return np.frombuffer(mapped, dtype=np.uint8, count=length, offset=start - aligned)


def _default_map_bytes() -> int:
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows)
        return 0
    return memory // 16


class FileMaps:
    """Whole files mapped read-only, kept open between tasks and runs (per process).

    Mapping a file costs little; what costs is the kernel making a page-table entry for
    every 4 KiB page on first access, again for every new map: on page-cached data
    that halves the read speed (about 9 against 17 GiB/s on two threads measured on a
    2-core machine). Files of up to ``capacity`` bytes in all therefore stay mapped, the
    least recently used dropped first; larger ones are mapped per task. A file is
    mapped again when its size, modification time or inode changes.

    Mapped pages of the page cache count in the process's resident set size (they are
    the kernel's to reclaim), which is why the capacity is a small share of memory:
    1/16 of it by default, ``DATAFLOW_FILE_MAP_BYTES`` (bytes, 0 to switch the cache
    off) in the environment overrides that.
    """

    def __init__(self, capacity: int | None = None) -> None:
        if capacity is None:
            configured = os.environ.get("DATAFLOW_FILE_MAP_BYTES")
            capacity = int(configured) if configured else _default_map_bytes()
        self.capacity = capacity
        self._lock = threading.Lock()
        self._maps: OrderedDict[str, tuple[tuple[int, int, int], np.ndarray]] = OrderedDict()

    def get(self, path: str, stat: os.stat_result) -> np.ndarray | None:
        """All bytes of ``path`` as a read-only uint8 array, or None if it is too large."""
        size = stat.st_size
        if size == 0 or size > self.capacity:
            return None
        ident = (stat.st_ino, size, stat.st_mtime_ns)
        with self._lock:
            entry = self._maps.get(path)
            if entry is not None and entry[0] == ident:
                self._maps.move_to_end(path)
                return entry[1]
        whole = _map(path, 0, size)
        with self._lock:
            self._maps[path] = (ident, whole)
            self._maps.move_to_end(path)
            # dropping an entry unmaps it once no array uses it any more
            while sum(len(m) for _, m in self._maps.values()) > self.capacity:
                self._maps.popitem(last=False)
        return whole

    def clear(self) -> None:
        """Forget every map (each closes when no array uses it any more)."""
        with self._lock:
            self._maps.clear()


#: the maps of this process
FILE_MAPS = FileMaps()


class BinaryFrameReader:
    """Read dataset frames from a file of C-ordered frames that starts at ``offset``.

    ``reader(start, stop, mask)`` returns dataset frames ``start:stop``, shape
    ``(stop - start,) + layout.sig_shape``. The file is opened inside the call, by
    path. A whole range of stored frames comes back as a read-only view of a memory
    map of the file (as LiberTEM's tiles of file data are; see :class:`FileMaps`);
    otherwise only frames where the boolean ``mask`` is True are read (one
    ``np.fromfile`` per contiguous run) into a new array, the others stay zero.
    Frames the layout places before or after the file are zeros.

    Parameters
    ----------
    path
        The file.
    offset
        Byte position of the first frame (the header size).
    dtype
        dtype of the stored items.
    layout
        How stored frames map onto dataset frames (``nav_shape``, ``sig_shape``,
        ``sync_offset``); ``layout.n_raw`` frames are stored.
    stored_sig_shape
        Shape of a stored frame, if it differs from ``layout.sig_shape``: each frame
        is then cropped to ``layout.sig_shape`` from its first pixel (LiberTEM's
        ``detector_size_raw`` / ``crop_detector_to``).
    pickled
        The file is an object-dtype ``.npy`` (pickled): it is loaded whole.

    Examples
    --------
    >>> from dataflow.sources import make_layout
    >>> p = tmp_path / "frames.bin"
    >>> np.arange(4 * 6, dtype="uint8").tofile(p)
    >>> reader = BinaryFrameReader(str(p), 0, np.dtype("uint8"), make_layout((4, 2, 3), 2))
    >>> reader(1, 4, np.array([True, False, True]))[:, 0]
    array([[ 6,  7,  8],
           [ 0,  0,  0],
           [18, 19, 20]], dtype=uint8)
    """

    __slots__ = ("dtype", "layout", "offset", "path", "pickled", "stored_sig_shape")

    def __init__(
        self,
        path: str,
        offset: int,
        dtype: np.dtype,
        layout: FrameLayout,
        stored_sig_shape: tuple[int, ...] | None = None,
        pickled: bool = False,
    ) -> None:
        self.path = str(path)
        self.offset = int(offset)
        self.dtype = np.dtype(dtype)
        self.layout = layout
        self.stored_sig_shape = tuple(stored_sig_shape or layout.sig_shape)
        self.pickled = bool(pickled)

    def __getstate__(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            setattr(self, name, value)

    def __dask_tokenize__(self) -> Any:
        state = {name: getattr(self, name) for name in self.__slots__ if name != "dtype"}
        return (type(self).__name__, *state.items(), self.dtype.str, self.dtype.descr)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(path={self.path!r}, offset={self.offset}, "
            f"dtype={self.dtype.str!r}, layout={self.layout!r})"
        )

    @property
    def _cropped(self) -> bool:
        return self.stored_sig_shape != tuple(self.layout.sig_shape)

    def _crop(self, frames: np.ndarray) -> np.ndarray:
        """``frames`` (stored shape) as dataset frames: reshaped, cropped if needed."""
        frames = frames.reshape((-1, *self.stored_sig_shape))
        if self._cropped:
            frames = frames[(slice(None), *(slice(0, s) for s in self.layout.sig_shape))]
        return frames

    def _read(self, f: Any, a: int, b: int) -> np.ndarray:
        """Stored frames ``a:b`` from the open file ``f``, as dataset frames."""
        items = math.prod(self.stored_sig_shape)
        count = (b - a) * items
        f.seek(self.offset + a * items * self.dtype.itemsize)
        data = np.fromfile(f, dtype=self.dtype, count=count)
        if data.size != count:
            raise OSError(
                f"{self.path!r}: read {data.size} items for stored frames {a}:{b}; expected "
                f"{count}. Was the file truncated after it was opened?"
            )
        return self._crop(data)

    def _mapped(self, a: int, b: int) -> np.ndarray:
        """Stored frames ``a:b`` as a read-only view of a memory map of the file."""
        frame_bytes = math.prod(self.stored_sig_shape) * self.dtype.itemsize
        stat = os.stat(self.path)
        if self.offset + b * frame_bytes > stat.st_size:  # the map would fail less clearly
            raise OSError(
                f"{self.path!r} has {stat.st_size} bytes; stored frames {a}:{b} end at byte "
                f"{self.offset + b * frame_bytes}. Was the file truncated after it was opened?"
            )
        whole = FILE_MAPS.get(self.path, stat)
        if whole is not None:
            start = self.offset + a * frame_bytes
            view = whole[start : start + (b - a) * frame_bytes]
        else:
            view = _map(self.path, self.offset + a * frame_bytes, (b - a) * frame_bytes)
        return view.view(self.dtype).reshape((b - a, *self.stored_sig_shape))

    def _load_pickled(self) -> np.ndarray:
        """All stored frames of an object-dtype ``.npy``: pickled, so no offsets."""
        return self._crop(np.load(self.path, allow_pickle=True).reshape(-1))

    def __call__(self, start: int, stop: int, mask: np.ndarray | None = None) -> np.ndarray:
        """Dataset frames ``start:stop``, reading only those where ``mask`` is True."""
        layout, sig = self.layout, tuple(self.layout.sig_shape)
        if mask is None:  # the whole range: one read, padded with zero frames
            a, b, pre, post = layout.raw_window(start, stop)
            if a == b:
                block = np.empty((0, *sig), dtype=self.dtype)
            elif self.pickled:
                block = np.array(self._load_pickled()[a:b])
            elif not (pre or post or self._cropped):
                return self._mapped(a, b)
            else:
                with open(self.path, "rb") as f:
                    block = self._read(f, a, b)
            return np.ascontiguousarray(pad_frames(block, pre, post, sig))
        out = np.zeros((stop - start, *sig), dtype=self.dtype)
        windows = []
        for i0, i1 in mask_runs(mask, stop - start):
            a, b, pre, _ = layout.raw_window(start + i0, start + i1)
            if a < b:
                windows.append((i0 + pre, a, b))
        if not windows:
            return out
        if self.pickled:
            stored = self._load_pickled()
            for pos, a, b in windows:
                out[pos : pos + b - a] = stored[a:b]
            return out
        with open(self.path, "rb") as f:
            for pos, a, b in windows:
                out[pos : pos + b - a] = self._read(f, a, b)
        return out


def read_block(reader: Any, block_info: dict | None = None) -> np.ndarray:
    """The block of ``partition_array`` that ``block_info`` locates, read through ``reader``.

    For ``da.map_blocks``: file adapters build their partition array from the same
    ``reader(start, stop, mask)`` that runs with a ROI use.
    """
    start, stop = block_info[None]["array-location"][0]  # type: ignore[index]
    return reader(start, stop, None)


def reader_array(reader: Any, partitions: Sequence[Partition], name: str) -> da.Array:
    """``partition_array`` of a DataSet: one block per partition, read by ``reader``.

    Parameters
    ----------
    reader
        A picklable ``reader(start, stop, mask)`` with ``layout`` and ``dtype``
        attributes.
    partitions
        The partitions, in order, covering all frames.
    name
        The dask name of the array (deterministic: derive it from the DataSet token).
    """
    sig = tuple(reader.layout.sig_shape)
    sizes = tuple(p.n_frames for p in partitions)
    return da.map_blocks(
        read_block,
        chunks=(sizes, *((s,) for s in sig)),
        dtype=reader.dtype,
        meta=np.empty((0,) * (1 + len(sig)), dtype=reader.dtype),
        name=name,
        reader=reader,
    )


class NPYAdapter(Adapter):
    """The ``npy`` source: a ``.npy`` file, read partition by partition.

    Examples
    --------
    >>> p = tmp_path / "scan.npy"
    >>> np.save(p, np.ones((4, 6, 8, 8), dtype="float32"))
    >>> ds = ctx.load("npy", path=p, num_partitions=3)
    >>> tuple(ds.shape), ds.dtype, ds.get_num_partitions()
    ((4, 6, 8, 8), dtype('float32'), 3)
    """

    name = "npy"
    description = "a NumPy .npy file (C order), read without loading it whole"
    url = "https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html"
    extensions: tuple[str, ...] = (".npy",)

    @staticmethod
    def open(
        path: str | os.PathLike[str] | None = None,
        *,
        sig_dims: int | None = None,
        nav_shape: Sequence[int] | None = None,
        sig_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        io_backend: Any = None,
        num_partitions: int | None = None,
        partition_bytes: int = DEFAULT_PARTITION_BYTES,
        min_partitions: int = 1,
        dims: Sequence[str] | None = None,
        allow_pickle: bool = False,
    ) -> DataSet:
        """Open a ``.npy`` file as a DataSet; only the header is read.

        Parameters
        ----------
        path
            The ``.npy`` file, C order.
        sig_dims
            Number of trailing axes of the stored array that form a frame, 2 by
            default; with ``sig_shape``, it must equal ``len(sig_shape)`` if given.
        nav_shape
            Navigation shape of the dataset; by default the stored array's shape
            without its frame axes: the last ``sig_dims``, or with ``sig_shape`` alone
            the most trailing axes that hold as many items as ``sig_shape`` (if no axes
            do, all frames in one axis). It may hold fewer frames than the file (the
            rest is not read) or more (the missing frames are zeros).
        sig_shape
            Frame shape of the dataset; by default the stored one. The file is read
            as a run of frames of this shape, in C order from the start of the data,
            so it may also reshape or split the stored frames; the number of items
            in the file must be a whole number of such frames.
        sync_offset
            Dataset frame ``i`` is stored frame ``i + sync_offset``: positive skips
            frames at the start, negative inserts blank frames.
        io_backend
            Accepted for LiberTEM compatibility and ignored.
        num_partitions
            Number of partitions; by default about ``partition_bytes`` each.
        partition_bytes
            Target partition size in bytes.
        min_partitions
            Fewest partitions (``ctx.load`` passes the number of workers).
        dims
            Dimension names, navigation first.
        allow_pickle
            Accept object arrays. They are pickled, so every partition task loads the
            whole file, and unpickling runs code from the file: only for trusted files.

        Returns
        -------
        DataSet
            Partitions on frame ranges; each task reads its frames with one
            ``np.fromfile`` call, and runs with a ROI read only the selected frames.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        DataSetException
            If the file is not a ``.npy`` file, is in Fortran order, holds objects (without
            ``allow_pickle``), its size does not match its header, ``sig_shape`` does
            not divide its items into whole frames, or ``sync_offset`` is out of range.
        ValueError, TypeError
            For a bad ``sig_dims``, ``nav_shape`` or ``sig_shape``.

        Notes
        -----
        As LiberTEM's ``NPYDataSet``, except: ``sig_shape`` alone may have any number of
        dimensions (LiberTEM raises unless it agrees with ``sig_dims``, default 2), and
        items left over after the last whole frame of ``sig_shape`` are an error
        (LiberTEM drops them silently).
        """
        del io_backend  # LiberTEM's I/O backends have no counterpart here
        p = _as_path(path)
        shape, dtype, fortran_order, offset = read_header(p)
        if fortran_order:
            raise DataSetException(
                f"{str(p)!r} is stored in Fortran order; the npy adapter reads C-ordered files. "
                "Rewrite it with np.save(path, np.ascontiguousarray(np.load(path)))"
            )
        if dtype.hasobject and not allow_pickle:
            raise DataSetException(
                f"{str(p)!r} holds an array of dtype {dtype} (Python objects, pickled); "
                "pass allow_pickle=True to load it, for files you trust only"
            )
        sig = None if sig_shape is None else _shape_arg("sig_shape", sig_shape)
        if sig_dims is not None or sig is None:
            sig_dims = check_sig_dims(2 if sig_dims is None else sig_dims, shape, repr(str(p)))
            if sig is not None and len(sig) != sig_dims:
                raise DataSetException(
                    f"sig_shape is {sig} ({len(sig)} dimensions); sig_dims is {sig_dims}. "
                    "Pass matching values, or only sig_shape"
                )
        stat = p.stat()
        nbytes = math.prod(shape) * dtype.itemsize
        if not dtype.hasobject and stat.st_size != offset + nbytes:
            raise DataSetException(
                f"{str(p)!r} has {stat.st_size} bytes; its header (shape {shape}, dtype "
                f"{dtype}) expects {offset + nbytes} bytes ({offset} header + {nbytes} data). "
                "The file is truncated or was not written by np.save"
            )
        if 0 in shape:
            raise DataSetException(f"{str(p)!r} holds an empty array of shape {shape}")
        if sig is None:
            sig = shape[-sig_dims:]
        elif sig_dims is None:  # the stored frame: the trailing axes with sig's item count
            sig_dims = _stored_sig_dims(shape, math.prod(sig))
        items, frame_items = math.prod(shape), math.prod(sig)
        if items % frame_items:
            raise DataSetException(
                f"sig_shape is {sig} ({frame_items} items per frame); {str(p)!r} holds "
                f"{items} items (shape {shape}), which is {items // frame_items} frames and "
                f"{items % frame_items} items more. Pass a sig_shape that divides the data"
            )
        n_raw = items // frame_items
        if nav_shape is None:
            nav_shape = shape[:-sig_dims] if sig_dims else (n_raw,)
        layout = make_layout(
            (n_raw, *sig),
            len(sig),
            nav_shape=nav_shape,
            sync_offset=sync_offset,
            source=repr(str(p)),
        )
        partitions = plan_partitions(
            layout.n_frames,
            frame_items * dtype.itemsize,
            row_length=layout.nav_shape[-1],
            num_partitions=num_partitions,
            min_partitions=min_partitions,
            target_bytes=partition_bytes,
        )
        token = f"npy-{p}-{stat.st_size}-{stat.st_mtime_ns}-{_layout_key(layout)}"
        reader = BinaryFrameReader(str(p), offset, dtype, layout, pickled=dtype.hasobject)
        sizes = tuple(part.n_frames for part in partitions)
        return DataSet(
            reader_array(reader, partitions, f"npy-{tokenize(token, sizes)}"),
            nav_shape=layout.nav_shape,
            partitions=partitions,
            token=token,
            dims=dims,
            layout=layout,
            reader=reader,
        )


def _shape_arg(name: str, shape: Any) -> tuple[int, ...]:
    """``shape`` as a tuple of positive integers (a TypeError or ValueError naming ``name``)."""
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
        raise TypeError(f"{name} is {shape!r}; expected a tuple of positive integers")
    out = []
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"{name} is {tuple(shape)!r}; expected a tuple of positive integers")
        out.append(int(s))
    if not out or min(out) < 1:
        raise ValueError(f"{name} is {tuple(shape)!r}; expected a tuple of positive integers")
    return tuple(out)


def _stored_sig_dims(shape: tuple[int, ...], frame_items: int) -> int | None:
    """Most trailing axes of ``shape`` (leaving one) that hold ``frame_items`` items, or None."""
    for k in range(len(shape) - 1, 0, -1):
        if math.prod(shape[-k:]) == frame_items:
            return k
    return None


def _layout_key(layout: FrameLayout) -> str:
    """The layout in a DataSet token: shapes and offset, so each layout names its own keys."""
    nav = "x".join(map(str, layout.nav_shape))
    sig = "x".join(map(str, layout.sig_shape))
    return f"{nav}-{sig}-{layout.sync_offset}"
