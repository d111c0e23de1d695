"""Reading a zarr array's frames: :class:`ZarrFrameReader`, a :class:`~dataflow.sources.FrameReader`.

Partitions are runs of whole frames in flattened navigation order whose boundaries
fall on storage chunk (or shard) boundaries (see ``ZarrAdapter.open``), so that no run
reads a chunk twice; one dask task per partition, however small the chunks. The
reader opens the array once per call and reads a range of frames with one zarr call
per rectangular region of the navigation axes (a partial first row, whole rows, a
partial last row), straight into the output array. With a ROI it reads only the
chunk-aligned boxes of those regions that hold selected frames
(:func:`~dataflow.sources.chunk_boxes`). The window (``sync_offset``, a
``nav_shape`` with more or fewer frames), the zeros of unselected frames and the
allocation are the base class's.

A local array of simple chunk files is read from its files directly
(:mod:`dataflow.adapters.zarr.chunks`). When zarr fails to read a region, the reader
reads its chunks one by one to raise a :class:`ZarrReadError` naming the bad chunk.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from dataflow.adapters.zarr._internals import (
    array_metadata,
    bounded_store,
    chunk_key,
    out_buffer,
    read_concurrently,
    strict_store,
)
from dataflow.adapters.zarr.chunks import _join
from dataflow.adapters.zarr.errors import ZarrReadError
from dataflow.sources import FrameReader, chunk_boxes, chunk_parts, nav_regions

if TYPE_CHECKING:
    from collections.abc import Iterator

    from dataflow.adapters.zarr.chunks import _ChunkFiles
    from dataflow.adapters.zarr.credentials import _Source
    from dataflow.sources import FrameLayout

__all__ = ["ZarrFrameReader"]


@dataclass(frozen=True, repr=False)
class ZarrFrameReader(FrameReader):
    """``reader(start, stop, mask)``: dataset frames ``start:stop`` from a zarr array.

    Picklable; opens the array by path in the calling process, once per call. With a
    ``mask``, reads only the chunks holding frames where it is True; other frames stay
    zero.

    Examples
    --------
    >>> import zarr
    >>> z = zarr.create_array(
    ...     tmp_path / "r.zarr", shape=(2, 3, 4, 4), chunks=(1, 1, 4, 4), dtype="uint8"
    ... )
    >>> z[:] = 1
    >>> reader = ctx.load("zarr", path=tmp_path / "r.zarr").reader
    >>> reader(0, 6, np.array([1, 0, 0, 1, 0, 0], bool)).sum(axis=(1, 2)).tolist()
    [16, 0, 0, 16, 0, 0]
    """

    source: _Source
    ds_path: str
    zarr_format: Literal[2, 3]
    raw_shape: tuple[int, ...]
    sig_dims: int
    dtype: np.dtype
    #: chunk shape zarr decodes (inner chunks of a sharded array)
    read_chunks: tuple[int, ...]
    #: shape of one stored object: a shard, or a chunk if the array is not sharded
    storage_chunks: tuple[int, ...]
    layout: FrameLayout
    missing_chunks: str = "fill"
    #: reads chunk files directly (a local array of plain or compressed bytes), or None
    files: _ChunkFiles | None = None
    #: requests in flight per call, through zarr (``dataflow.request-concurrency``)
    request_concurrency: int = 16

    @property
    def name(self) -> str:
        """The array, as messages name it."""
        return repr(self.source.name) + (f" (ds_path {self.ds_path!r})" if self.ds_path else "")

    def __repr__(self) -> str:
        return f"<zarr reader {self.name}>"

    @property
    def _raw_nav(self) -> tuple[int, ...]:
        return self.raw_shape[: len(self.raw_shape) - self.sig_dims]

    @property
    def _raw_sig(self) -> tuple[int, ...]:
        return self.raw_shape[len(self.raw_shape) - self.sig_dims :]

    def open_array(self) -> Any:
        """The zarr array, opened by path; checks it has not changed shape."""
        import zarr

        store = self.source.open_store()
        if self.files is None:  # read through zarr: its requests bounded
            store = bounded_store(store, self.request_concurrency)
        if self.missing_chunks == "raise":
            store = strict_store(store, self.name)
        arr = zarr.open_array(
            store=store, path=self.ds_path, mode="r", zarr_format=self.zarr_format
        )
        if tuple(arr.shape) != self.raw_shape:
            raise ZarrReadError(
                f"the zarr array {self.name} has shape {tuple(arr.shape)}; it had shape "
                f"{self.raw_shape} when it was opened. Load it again"
            )
        return arr

    def opened(self) -> contextlib.AbstractContextManager[Any]:
        """The zarr array, opened once for the reads of one call.

        Chunk files read directly need no zarr array: while the metadata file is the
        one the array was opened with (one ``stat``), nothing is opened.
        """
        if self.files is not None and self.files.unchanged():
            return contextlib.nullcontext()
        arr = self.open_array()
        if self.files is not None:
            self.files.check_same(arr)
        return contextlib.nullcontext(arr)

    def read_frames(self, handle: Any, a: int, b: int, out: np.ndarray) -> None:
        """Stored frames ``a:b`` into ``out``: one read per region of the navigation axes.

        Through zarr, the regions are cut on the storage chunks of the navigation axes
        and all requested at once (see :meth:`_read_all`).
        """
        nav_chunks = self.storage_chunks[: len(self._raw_nav)]
        jobs = []
        for region, slab in self._slabs(a, b, out):
            if self.files is not None:
                jobs.append((region, slab))
                continue
            for _, part in chunk_parts(region, nav_chunks):
                local = tuple(
                    slice(p.start - r.start, p.stop - r.start)
                    for p, r in zip(part, region, strict=True)
                )
                jobs.append((part, slab[local]))
        self._read_all(handle, jobs)

    def read_pieces(
        self, handle: Any, a: int, b: int, mask: np.ndarray | None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Stored frames ``a:b`` chunk by chunk, where each chunk file is a run of frames.

        Plain chunks are views of the mapped files, compressed ones are decoded into a
        reused buffer; other arrays are read in one piece (the base class's).
        """
        files = self.files
        axis = None if files is None else files.frame_runs(len(self._raw_nav))
        if files is None or axis is None:
            yield from super().read_pieces(handle, a, b, mask)
            return
        sig = self.layout.sig_shape
        for row, frames in files.pieces(a, b, mask, len(self._raw_nav), axis):
            yield row, frames.reshape((len(frames), *sig))

    def read_selected(self, handle: Any, a: int, b: int, mask: np.ndarray, out: np.ndarray) -> None:
        """Stored frames ``a:b`` where ``mask`` is True: only the chunks that hold them."""
        nav_chunks = self.read_chunks[: len(self._raw_nav)]
        pos = 0
        jobs = []
        for region, slab in self._slabs(a, b, out):
            shape = slab.shape[: len(region)]
            n = math.prod(shape)
            sub_mask = mask[pos : pos + n].reshape(shape)
            pos += n
            if not sub_mask.any():
                continue
            for box in chunk_boxes(region, sub_mask, nav_chunks):
                sub = tuple(
                    slice(r.start + s.start, r.start + s.stop)
                    for r, s in zip(region, box, strict=True)
                )
                jobs.append((sub, slab[box]))
        self._read_all(handle, jobs)

    def _slabs(
        self, a: int, b: int, out: np.ndarray
    ) -> Iterator[tuple[tuple[slice, ...], np.ndarray]]:
        """Each region of frames ``a:b`` with its part of ``out``, in the stored shape (views)."""
        raw = out.reshape((b - a, *self._raw_sig))
        if not np.may_share_memory(raw, out):  # out is a run of whole frames: never happens
            raise ValueError(f"out of shape {out.shape} cannot be viewed as stored frames")
        pos = 0
        for region in nav_regions(a, b, self._raw_nav):
            shape = tuple(s.stop - s.start for s in region)
            n = math.prod(shape)
            yield region, raw[pos : pos + n].reshape(shape + self._raw_sig)
            pos += n

    def _read_all(self, arr: Any, jobs: list[tuple[tuple[slice, ...], np.ndarray]]) -> None:
        """``arr[region]`` (whole frames) into ``dest``, for each ``(region, dest)``.

        Chunk files are read one after the other. Through zarr, every region is
        requested at once, at most ``dataflow.request-concurrency`` requests in
        flight (a store with latency keeps that many busy instead of one).
        """
        if self.files is not None:
            for region, dest in jobs:
                self.files.read(region, dest)
            return
        if not jobs:
            return
        tail = (slice(None),) * self.sig_dims
        errors = read_concurrently(arr, [(region + tail, dest) for region, dest in jobs])
        for (region, _), e in zip(jobs, errors, strict=True):
            if e is None:
                continue
            if isinstance(e, (ZarrReadError, MemoryError)) or not isinstance(e, Exception):
                raise e
            self._raise_for_chunk(arr, region, e)  # any codec or store error: find the chunk

    def _raise_for_chunk(self, arr: Any, region: tuple[slice, ...], error: Exception) -> None:
        """Find the stored chunk that fails to read, and raise an error naming its key."""
        full = region + tuple(slice(0, n) for n in self.raw_shape[len(region) :])
        for index, part in chunk_parts(full, self.storage_chunks):
            scratch = np.empty(tuple(p.stop - p.start for p in part), dtype=self.dtype)
            try:
                arr.get_basic_selection(part, out=out_buffer(scratch))
            except Exception as e:
                key = _join(self.ds_path, chunk_key(array_metadata(arr), index))
                raise ZarrReadError(
                    f"the zarr array {self.name}: chunk {key!r} could not be read "
                    f"({type(e).__name__}: {e})"
                ) from e
        raise ZarrReadError(
            f"the zarr array {self.name}: reading region "
            f"{tuple((s.start, s.stop) for s in region)} of the navigation axes failed "
            f"({type(error).__name__}: {error})"
        ) from error
