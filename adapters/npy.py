"""The ``npy`` adapter: a NumPy ``.npy`` file, read frame range by frame range.

Opening reads the header only (shape, dtype, memory order, where the data starts).
``nav_shape``, ``sig_shape`` and ``sync_offset`` reinterpret the stored items as
LiberTEM's ``NPYDataSet`` does: a run of C-ordered frames from the start of the data.

Reading goes through :class:`BinaryFrameReader`, a :class:`~dataflow.sources.FrameReader`
of the path, the data offset, the dtype and the frame layout: a whole range of stored
frames is a read-only view of a memory map of the file (see
:class:`~dataflow.sources.filemaps.FileMaps`); runs with a ROI read only the runs of
selected frames. The raw adapter reuses it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dataflow.errors import DataSetException
from dataflow.sources import (
    DEFAULT_PARTITION_BYTES,
    Adapter,
    DataSet,
    FrameLayout,
    FrameReader,
    as_path,
    check_shape,
    check_sig_dims,
    file_token,
    make_layout,
    reader_dataset,
    warn_ignored,
)
from dataflow.sources.filemaps import FILE_MAPS, map_bytes

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["BinaryFrameReader", "NPYAdapter", "read_header"]


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
    p = as_path(path, "npy", ".npy file")
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


@dataclass(frozen=True, repr=False)
class BinaryFrameReader(FrameReader):
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

    path: str
    offset: int
    dtype: np.dtype
    layout: FrameLayout
    stored_sig_shape: tuple[int, ...] = ()
    pickled: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", str(self.path))
        object.__setattr__(self, "offset", int(self.offset))
        object.__setattr__(self, "dtype", np.dtype(self.dtype))
        if not self.stored_sig_shape:
            object.__setattr__(self, "stored_sig_shape", tuple(self.layout.sig_shape))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(path={self.path!r}, offset={self.offset}, "
            f"dtype={self.dtype.str!r}, layout={self.layout!r})"
        )

    @property
    def _cropped(self) -> bool:
        return self.stored_sig_shape != tuple(self.layout.sig_shape)

    @property
    def _frame_bytes(self) -> int:
        return math.prod(self.stored_sig_shape) * self.dtype.itemsize

    def _crop(self, frames: np.ndarray) -> np.ndarray:
        """``frames`` (stored shape) as dataset frames: reshaped, cropped if needed."""
        frames = frames.reshape((-1, *self.stored_sig_shape))
        if self._cropped:
            frames = frames[(slice(None), *(slice(0, s) for s in self.layout.sig_shape))]
        return frames

    def opened(self) -> Any:
        """The file, open for the reads of one call (the whole pickled array for objects)."""
        if self.pickled:
            import contextlib

            return contextlib.nullcontext(self._crop(np.load(self.path, allow_pickle=True)))
        return open(self.path, "rb")

    def read_frames(self, handle: Any, a: int, b: int, out: np.ndarray) -> None:
        """Stored frames ``a:b`` into ``out``: one ``np.fromfile`` (or a slice of objects)."""
        if self.pickled:
            out[...] = handle[a:b]
            return
        count = (b - a) * math.prod(self.stored_sig_shape)
        handle.seek(self.offset + a * self._frame_bytes)
        data = np.fromfile(handle, dtype=self.dtype, count=count)
        if data.size != count:
            raise OSError(
                f"{self.path!r}: read {data.size} items for stored frames {a}:{b}; expected "
                f"{count}. Was the file truncated after it was opened?"
            )
        out[...] = self._crop(data)

    def read_view(self, a: int, b: int) -> np.ndarray | None:
        """Stored frames ``a:b`` as a read-only view of a memory map of the file."""
        if self.pickled or self._cropped or a == b:
            return None
        frame_bytes = self._frame_bytes
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
            view = map_bytes(self.path, self.offset + a * frame_bytes, (b - a) * frame_bytes)
        return view.view(self.dtype).reshape((b - a, *self.stored_sig_shape))


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
    extensions = (".npy",)

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
            Accepted for LiberTEM compatibility; anything but None has no effect and
            gives a warning.
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
        warn_ignored("npy", io_backend=(io_backend, None))
        p = as_path(path, "npy", ".npy file")
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
        sig = None if sig_shape is None else check_shape("sig_shape", sig_shape)
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
            assert sig_dims is not None  # checked above whenever sig is None
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
        reader = BinaryFrameReader(str(p), offset, dtype, layout, pickled=dtype.hasobject)
        return reader_dataset(
            reader,
            name="npy",
            identity=file_token([p]),
            num_partitions=num_partitions,
            partition_bytes=partition_bytes,
            min_partitions=min_partitions,
            dims=dims,
        )


def _stored_sig_dims(shape: tuple[int, ...], frame_items: int) -> int | None:
    """Most trailing axes of ``shape`` (leaving one) that hold ``frame_items`` items, or None."""
    for k in range(len(shape) - 1, 0, -1):
        if math.prod(shape[-k:]) == frame_items:
            return k
    return None
