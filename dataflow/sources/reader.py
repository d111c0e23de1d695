"""The one reader base every file source reads through, and the DataSet it builds.

A source describes where its frames are and implements one method, reading a range
of stored frames into an array (:meth:`FrameReader.read_frames`); optionally a
zero-copy view of a range (:meth:`FrameReader.read_view`), a handle opened once per
call (:meth:`FrameReader.opened`) and a ROI read that is smarter than one read per
run of selected frames (:meth:`FrameReader.read_selected`). The base does the rest,
the same way for every format:

- the window: which stored frames a range of dataset frames is (``sync_offset``,
  a ``nav_shape`` with more or fewer frames than the source), and zero frames for
  positions outside the source;
- the ROI: only runs of selected frames are read; the others stay zero;
- allocation: one output array per call, uninitialised where every frame is read;
- tokens and pickling: readers are frozen dataclasses of paths, offsets, shapes and
  dtypes, so they pickle small and tokenize deterministically; the graph never holds
  an open handle or a memory map.

:func:`reader_dataset` turns a reader into a :class:`~dataflow.sources.DataSet`:
partitions (on storage-chunk boundaries where given), one ``map_blocks`` task per
partition, the token, and the reader as the DataSet's ROI hook.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np
from dask.base import tokenize

from dataflow._dask import array_from_blocks, task
from dataflow.sources.checks import tile_depth
from dataflow.sources.model import DataSet
from dataflow.sources.partitions import DEFAULT_PARTITION_BYTES, plan_partitions
from dataflow.sources.regions import mask_runs

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator, Mapping, Sequence
    from pathlib import Path

    from dataflow.sources.layout import FrameLayout

__all__ = ["FrameReader", "file_token", "reader_dataset"]


class FrameReader(ABC):
    """Base of the readers of file sources: ``reader(start, stop, mask)``.

    Subclasses are frozen dataclasses with at least the fields ``layout`` (a
    :class:`~dataflow.sources.FrameLayout`) and ``dtype``, and implement
    :meth:`read_frames`. Calling the reader returns dataset frames ``start:stop``,
    shape ``(stop - start, *layout.sig_shape)``; with a boolean ``mask`` of one entry
    per frame, only frames where it is True are read and the others are zero.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> from dataflow.sources import make_layout
    >>> @dataclass(frozen=True)
    ... class Counting(FrameReader):
    ...     layout: FrameLayout
    ...     dtype: np.dtype
    ...
    ...     def read_frames(self, handle, a, b, out):
    ...         out[...] = np.arange(a, b).reshape(-1, 1)
    >>> reader = Counting(make_layout((5, 2), 1, sync_offset=-1), np.dtype("int16"))
    >>> reader(0, 4, np.array([True, True, False, True]))[:, 0]
    array([0, 0, 0, 2], dtype=int16)
    """

    layout: FrameLayout
    dtype: np.dtype

    @abstractmethod
    def read_frames(self, handle: Any, a: int, b: int, out: np.ndarray) -> None:
        """Stored frames ``a:b`` into ``out``, of shape ``(b - a, *layout.sig_shape)``.

        ``handle`` is what :meth:`opened` yielded for this call.
        """

    def opened(self) -> contextlib.AbstractContextManager[Any]:
        """A handle for the reads of one call (an open file, a dataset), closed after it.

        By default None: :meth:`read_frames` opens what it needs itself.
        """
        return contextlib.nullcontext()

    def read_view(self, a: int, b: int) -> np.ndarray | None:
        """Stored frames ``a:b`` without a copy (a read-only view), or None to read them."""
        del a, b
        return None

    def read_selected(self, handle: Any, a: int, b: int, mask: np.ndarray, out: np.ndarray) -> None:
        """Stored frames ``a:b`` where ``mask`` (``b - a`` entries) is True, into ``out``.

        Frames where ``mask`` is False may be left as they are (zeros) or be read too.
        By default one :meth:`read_frames` per run of selected frames.
        """
        for r0, r1 in mask_runs(mask, b - a):
            self.read_frames(handle, a + r0, a + r1, out[r0:r1])

    def read_pieces(
        self, handle: Any, a: int, b: int, mask: np.ndarray | None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Stored frames ``a:b`` as pieces ``(row, frames)``, rows counted from ``a``.

        Override where the storage comes in pieces that are cheaper to hand over one by
        one than to assemble: chunk files mapped or decoded into a reused buffer. Only
        pieces holding frames where ``mask`` is True need to be given; a piece need only
        be valid until the next is asked for. By default one piece, read with
        :meth:`read_frames` or :meth:`read_selected`.
        """
        out = np.empty if mask is None else np.zeros
        frames = out((b - a, *self.layout.sig_shape), dtype=self.dtype)
        self._read_stored(handle, a, b, mask, frames)
        yield 0, frames

    def _read_stored(
        self, handle: Any, a: int, b: int, mask: np.ndarray | None, out: np.ndarray
    ) -> None:
        """Stored frames ``a:b`` into ``out``: all of them, or those where ``mask`` is True."""
        if mask is None:
            self.read_frames(handle, a, b, out)
        else:
            self.read_selected(handle, a, b, mask, out)

    def pieces(
        self, start: int, stop: int, mask: np.ndarray | None = None
    ) -> Generator[tuple[int, np.ndarray]]:
        """Dataset frames ``start:stop`` as pieces, for a task that uses them one by one.

        Yields ``(row, frames)``: dataset frames ``start + row`` onwards, in order, not
        overlapping. Positions outside the source, and runs of frames where ``mask`` is
        False, may be in no piece; inside a piece, unselected frames may hold anything.
        A piece may be a read-only view, and is valid only until the next is asked for
        or the generator is closed (it may be a buffer the reader decodes into again).
        """
        mask = self._mask(start, stop, mask)
        a, b, pre, _ = self.layout.raw_window(start, stop)
        selected = None if mask is None else mask[pre : pre + b - a]
        if b <= a or (selected is not None and not selected.any()):
            return
        view = self.read_view(a, b)  # with a mask too: only selected frames are touched
        if view is not None:
            yield pre, view
            return
        with self.opened() as handle:
            for row, frames in self.read_pieces(handle, a, b, selected):
                yield pre + row, frames

    def _mask(self, start: int, stop: int, mask: np.ndarray | None) -> np.ndarray | None:
        """``mask`` checked (one entry per frame ``start:stop``); None if it selects all."""
        if mask is None:
            return None
        n = stop - start
        mask = np.asarray(mask, dtype=bool).reshape(-1)
        if mask.shape != (n,):
            raise ValueError(f"mask has {mask.size} entries; frames {start}:{stop} need {n}")
        return None if mask.all() else mask

    def __call__(self, start: int, stop: int, mask: np.ndarray | None = None) -> np.ndarray:
        """Dataset frames ``start:stop``, reading only those where ``mask`` is True."""
        n = stop - start
        mask = self._mask(start, stop, mask)
        shape = (n, *self.layout.sig_shape)
        a, b, pre, post = self.layout.raw_window(start, stop)
        if mask is None and not pre and not post:
            view = self.read_view(a, b)
            if view is not None:
                return view
            out = np.empty(shape, dtype=self.dtype)
            with self.opened() as handle:
                self.read_frames(handle, a, b, out)
            return out
        out = np.zeros(shape, dtype=self.dtype)
        inner = out[pre : pre + b - a]
        selected = None if mask is None else mask[pre : pre + b - a]
        if b > a and (selected is None or selected.any()):
            with self.opened() as handle:
                self._read_stored(handle, a, b, selected, inner)
        return out

    def __dask_tokenize__(self) -> Any:
        fields = [
            (f.name, _token_value(getattr(self, f.name)))
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
        ]
        return (type(self).__module__, type(self).__qualname__, *fields)


def _token_value(value: Any) -> Any:
    """dtypes by their full description: ``np.dtype`` alone tokenizes to its kind only."""
    if isinstance(value, np.dtype):
        return (value.str, str(value.descr))
    return value


def file_token(paths: Sequence[Path | str]) -> list[tuple[str, int, int]]:
    """What identifies the stored data of files: path, size and modification time each.

    Never the bytes: loading costs a ``stat`` per file, whatever the file's size.
    """
    import os

    out = []
    for p in paths:
        stat = os.stat(p)
        out.append((os.fspath(p), stat.st_size, stat.st_mtime_ns))
    return out


def reader_dataset(
    reader: FrameReader,
    *,
    name: str,
    identity: Any,
    num_partitions: int | None = None,
    partition_bytes: int = DEFAULT_PARTITION_BYTES,
    min_partitions: int = 1,
    chunk_boundaries: Sequence[int] | None = None,
    dims: Sequence[str] | None = None,
    coords: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
    tileshape: Sequence[int] | None = None,
) -> DataSet:
    """A :class:`~dataflow.sources.DataSet` whose partition tasks call ``reader``.

    Parameters
    ----------
    reader
        The source's reader; also the DataSet's ROI hook.
    name
        The source's name in dask keys (``"npy"``, ``"zarr"``, ...).
    identity
        What identifies the stored data (see :func:`file_token`): with the reader's
        own fields it makes the DataSet's token, so a rewritten file gets new keys.
    num_partitions, partition_bytes, min_partitions, chunk_boundaries
        Partitioning; see :func:`~dataflow.sources.plan_partitions`.
    dims, coords, attrs
        Labels of the dataset.
    tileshape
        LiberTEM's ``tileshape``: tiles of ``tileshape[0]`` frames.
    """
    layout = reader.layout
    dtype = np.dtype(reader.dtype)
    partitions = plan_partitions(
        layout.n_frames,
        math.prod(layout.sig_shape) * dtype.itemsize,
        row_length=layout.nav_shape[-1],
        num_partitions=num_partitions,
        min_partitions=min_partitions,
        target_bytes=partition_bytes,
        chunk_boundaries=chunk_boundaries,
    )
    token = f"{name}-{tokenize(identity, reader)}"
    sizes = tuple(p.n_frames for p in partitions)
    sig_zeros = (0,) * len(layout.sig_shape)
    # one task per partition, reading its frames: no block_info layer beside it
    array = array_from_blocks(
        f"{name}-{tokenize(token, sizes)}",
        {(i, *sig_zeros): task(reader, p.start, p.stop, None) for i, p in enumerate(partitions)},
        (sizes, *((s,) for s in layout.sig_shape)),
        dtype,
    )
    return DataSet(
        array,
        nav_shape=layout.nav_shape,
        partitions=partitions,
        token=token,
        dims=dims,
        coords=coords,
        attrs=attrs,
        layout=layout,
        tile_depth=tile_depth(tileshape),
        reader=reader,
    )
