"""Reading a local zarr array's chunk files directly, without zarr's codec pipeline.

Arrays in a local directory whose chunks are plain bytes, or bytes under one
compressor (zstd, blosc, gzip; any numcodecs compressor in format 2), without
sharding or filters, are read by :class:`_ChunkFiles`: each chunk file straight into
the output array (``readinto``), or decompressed into it, in the task's own thread.
zarr-python's codec pipeline copies every chunk several times and decodes on one
event loop, which made reads run at a fraction of the page cache's speed. Every other
array (remote, sharded, filtered, other codecs) is read through zarr.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dataflow.adapters.zarr._internals import (
    array_metadata,
    chunk_key,
    shard_index_layout,
    stored_order,
    zarr_format,
)
from dataflow.adapters.zarr.errors import ZarrReadError
from dataflow.sources import chunk_parts, frame_run_axis, frame_run_chunks
from dataflow.sources.filemaps import FILE_MAPS, map_bytes
from dataflow.sources.scratch import SCRATCH

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__: list[str] = []


def _join(*parts: str) -> str:
    """Store keys joined with ``/``, empty parts left out."""
    return "/".join(p for p in parts if p)


def _numcodecs_decoder(arr: Any) -> Any:
    """The numcodecs codec that undoes ``arr``'s compressor, None for none.

    Raises ``LookupError`` if the array's chunks are not plain bytes under at most one
    compressor this reader knows.
    """
    import numcodecs
    import zarr.codecs

    compressors = tuple(arr.compressors)
    if not compressors:
        return None
    if len(compressors) > 1:
        raise LookupError("more than one compressor")
    (codec,) = compressors
    if zarr_format(arr) == 2:  # format 2 compressors are numcodecs codecs
        if not hasattr(codec, "decode"):
            raise LookupError(f"compressor {codec!r}")
        return codec
    simple = {
        zarr.codecs.ZstdCodec: numcodecs.Zstd,
        zarr.codecs.BloscCodec: numcodecs.Blosc,
        zarr.codecs.GzipCodec: numcodecs.GZip,
    }
    for kind, decoder in simple.items():
        if type(codec) is kind:
            return decoder()
    raise LookupError(f"compressor {codec!r}")


def _chunk_files(
    arr: Any, directory: str, name: str, ds_path: str, missing_chunks: str
) -> _ChunkFiles | None:
    """A :class:`_ChunkFiles` reader for ``arr`` in ``directory``, or None if its chunks
    are not simple files (sharded, filtered, transposed, byte-swapped, other codecs)."""
    import zarr.codecs

    dtype = np.dtype(arr.dtype)
    if dtype.hasobject or not dtype.isnative:
        return None
    index_layout = None
    if arr.shards is not None:
        index_layout = shard_index_layout(arr)
        if index_layout is None:
            return None
    if tuple(arr.filters) or stored_order(arr) != "C":
        return None
    serializer = arr.serializer  # None for format 2
    if serializer is not None:
        endian = serializer.endian if type(serializer) is zarr.codecs.BytesCodec else None
        if type(serializer) is not zarr.codecs.BytesCodec or (
            endian is not None and dtype.itemsize > 1 and endian.value != sys.byteorder
        ):
            return None
    try:
        codec = _numcodecs_decoder(arr)
    except LookupError:
        return None
    fill = arr.fill_value
    return _ChunkFiles(
        stamp=_stamp(os.path.join(directory, ".zarray" if zarr_format(arr) == 2 else "zarr.json")),
        directory=directory,
        name=name,
        ds_path=ds_path,
        metadata=array_metadata(arr),
        shape=tuple(int(n) for n in arr.shape),
        chunks=tuple(int(c) for c in arr.chunks),
        dtype=dtype,
        fill_value=0 if fill is None else fill,
        codec=codec,
        missing_chunks=missing_chunks,
        shards=None if arr.shards is None else tuple(int(c) for c in arr.shards),
        shard_index=index_layout,
    )


def _stamp(path: str) -> tuple[str, int, int, int] | None:
    """What tells whether the file at ``path`` changed: inode, size, modification time."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (path, stat.st_ino, stat.st_size, stat.st_mtime_ns)


@dataclass(frozen=True, repr=False)
class _ChunkFiles:
    """Reads regions of a local zarr array from its chunk files, without zarr.

    Each chunk a region needs is read once: straight into the output where the whole
    chunk lands in a contiguous stretch of it, otherwise decoded into a scratch
    array and copied. A missing chunk file is the fill value (or an error, with
    ``missing_chunks="raise"``); a short, long or undecodable file is an error that
    names the chunk's key.
    """

    directory: str
    #: the array, as messages name it
    name: str
    #: the array's path in its store: messages give chunk keys from the store's root
    ds_path: str
    #: the array's zarr metadata: its chunk key encoding
    metadata: Any
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype
    fill_value: Any
    #: numcodecs codec of the compressor, or None for plain bytes
    codec: Any
    missing_chunks: str
    #: the metadata file's identity when the array was opened (see :meth:`unchanged`)
    stamp: tuple[str, int, int, int] | None = None
    #: shard shape of a sharded array (``chunks`` are then its inner chunks), or None
    shards: tuple[int, ...] | None = None
    #: a sharded array's index: ``("end" | "start", followed by a CRC32C)``
    shard_index: tuple[str, bool] | None = None

    def unchanged(self) -> bool:
        """Whether the array's metadata file is the one it was opened with (a ``stat``)."""
        return self.stamp is not None and _stamp(self.stamp[0]) == self.stamp

    def check_same(self, arr: Any) -> None:
        """Raise if ``arr`` (opened again) stores its chunks otherwise than it did."""
        again = _chunk_files(arr, self.directory, self.name, self.ds_path, self.missing_chunks)
        if again is None or again.__dask_tokenize__() != self.__dask_tokenize__():
            raise ZarrReadError(
                f"the zarr array {self.name} was rewritten with other chunks, codecs, "
                "dtype or fill value since it was opened. Load it again"
            )

    def __repr__(self) -> str:
        return f"<zarr chunk files {self.name}>"

    def __dask_tokenize__(self) -> Any:
        return (
            "zarr-chunk-files",
            self.directory,
            self.ds_path,
            self.shape,
            self.chunks,
            self.dtype.str,
            repr(self.fill_value),
            repr(self.codec),
            self.missing_chunks,
            self.shards,
            self.shard_index,
        )

    def read(self, region: tuple[slice, ...], dest: np.ndarray) -> None:
        """``array[region]`` (the leading axes; all of the others) into ``dest``."""
        full = region + tuple(slice(0, n) for n in self.shape[len(region) :])
        for index, inside in chunk_parts(full, self.chunks):
            target = dest[
                tuple(
                    slice(i.start - s.start, i.stop - s.start)
                    for i, s in zip(inside, full, strict=True)
                )
            ]
            whole = all(i.stop - i.start == c for i, c in zip(inside, self.chunks, strict=True))
            if whole and target.flags.c_contiguous:
                self._load(index, target)
            else:
                chunk = np.empty(self.chunks, dtype=self.dtype)
                self._load(index, chunk)
                target[...] = chunk[
                    tuple(
                        slice(i.start - n * c, i.stop - n * c)
                        for i, n, c in zip(inside, index, self.chunks, strict=True)
                    )
                ]

    def frame_runs(self, nav_dims: int) -> int | None:
        """:func:`~dataflow.sources.frame_run_axis` of the array's (inner) chunks."""
        return frame_run_axis(self.shape, self.chunks, nav_dims)

    def pieces(
        self, a: int, b: int, mask: np.ndarray | None, nav_dims: int, axis: int
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Stored frames ``a:b`` chunk by chunk, as ``(row from a, frames)``.

        ``axis`` is :meth:`frame_runs`. Plain chunks are read-only views of the mapped
        chunk file; compressed ones are decoded into one buffer, reused for every
        chunk (a piece is valid until the next). With a ``mask``, chunks without
        selected frames are skipped.
        """
        frame_shape = self.shape[nav_dims:]
        buffer = None
        with contextlib.ExitStack() as stack:
            for index, r0, r1, first in frame_run_chunks(
                a, b, self.shape, self.chunks, nav_dims, axis
            ):
                if mask is not None and not mask[r0:r1].any():
                    continue
                if self.codec is None:
                    frames = self._mapped(index, first + r1 - r0, frame_shape)
                else:
                    if buffer is None:
                        buffer = stack.enter_context(SCRATCH.borrow(self.chunks, self.dtype))
                    self._load(index, buffer)
                    frames = buffer.reshape((-1, *frame_shape))
                yield r0, frames[first : first + r1 - r0]

    def _mapped(self, index: tuple[int, ...], n: int, frame_shape: tuple[int, ...]) -> np.ndarray:
        """The first ``n`` frames of plain chunk ``index``: a read-only view of its file."""
        _, stored = self._stored(index)
        nbytes = math.prod(self.chunks) * self.dtype.itemsize
        if stored is None or len(stored) != nbytes:  # missing or wrong: _load says which
            out = np.empty(self.chunks, dtype=self.dtype)
            self._load(index, out)
            return out.reshape((-1, *frame_shape))[:n]
        return stored.view(self.dtype).reshape((-1, *frame_shape))[:n]

    def _load(self, index: tuple[int, ...], out: np.ndarray) -> None:
        """Chunk ``index`` into ``out`` (its shape); the fill value if it is missing."""
        key, stored = self._stored(index)
        if stored is None:
            if self.missing_chunks == "raise":
                raise ZarrReadError(
                    f"the zarr array {self.name} has no chunk {key} (missing_chunks='raise'; "
                    "pass missing_chunks='fill' to read missing chunks as the fill value)"
                )
            out[...] = self.fill_value
            return
        if self.codec is None:
            if len(stored) != out.nbytes:
                raise ZarrReadError(
                    f"the zarr array {self.name}: chunk {key} could not be read (it has "
                    f"{len(stored)} bytes; an uncompressed chunk of shape {self.chunks} and dtype "
                    f"{self.dtype} has {out.nbytes})"
                )
            out.reshape(-1).view(np.uint8)[...] = stored
            return
        try:
            self.codec.decode(stored, out=out)
        except Exception as e:  # any codec error: name the chunk
            raise ZarrReadError(
                f"the zarr array {self.name}: chunk {key} could not be read "
                f"({type(e).__name__}: {e})"
            ) from e

    def _stored(self, index: tuple[int, ...]) -> tuple[str, np.ndarray | None]:
        """The chunk's key (quoted, as messages name it) and its stored bytes, mapped; None
        if missing.

        In a sharded array, the bytes of the inner chunk, found through its shard's index.
        """
        if self.shards is None:
            relative = chunk_key(self.metadata, index)
            found = self._file(relative)
            return repr(_join(self.ds_path, relative)), None if found is None else found[0]
        per_shard = tuple(s // c for s, c in zip(self.shards, self.chunks, strict=True))
        shard = tuple(i // p for i, p in zip(index, per_shard, strict=True))
        inner = tuple(i % p for i, p in zip(index, per_shard, strict=True))
        relative = chunk_key(self.metadata, shard)
        key = f"{_join(self.ds_path, relative)!r} (inner chunk {inner} of the shard)"
        found = self._file(relative)
        if found is None:
            return key, None
        stored, ident = found
        table = _SHARD_INDEXES.get(ident)
        if table is None:  # parsed and checked once per shard, not once per inner chunk
            table = self._index(stored, per_shard, key)
            if len(_SHARD_INDEXES) >= 256:
                _SHARD_INDEXES.clear()
            _SHARD_INDEXES[ident] = table
        offset, nbytes = table[np.ravel_multi_index(inner, per_shard)]
        if offset == nbytes == 2**64 - 1:  # not written: the fill value
            return key, None
        if offset > len(stored) or nbytes > len(stored) - offset:
            raise ZarrReadError(
                f"the zarr array {self.name}: chunk {key} could not be read (its shard index "
                f"puts it at bytes {offset}..{offset + nbytes}; the shard has {len(stored)})"
            )
        return key, stored[int(offset) : int(offset + nbytes)]

    def _index(self, stored: np.ndarray, per_shard: tuple[int, ...], key: str) -> np.ndarray:
        """A shard's index: ``(offset, nbytes)`` per inner chunk, checked against its CRC."""
        assert self.shard_index is not None
        location, has_crc = self.shard_index
        n = math.prod(per_shard)
        size = 16 * n + 4 * has_crc
        if len(stored) < size:
            raise ZarrReadError(
                f"the zarr array {self.name}: chunk {key} could not be read (the shard has "
                f"{len(stored)} bytes; its index alone has {size})"
            )
        raw = stored[len(stored) - size :] if location == "end" else stored[:size]
        if has_crc:
            crc = _crc32c(raw[:-4])
            if crc is not None and crc != int.from_bytes(raw[-4:].tobytes(), "little"):
                raise ZarrReadError(
                    f"the zarr array {self.name}: chunk {key} could not be read (the "
                    "checksum of the shard's index does not match)"
                )
            raw = raw[:-4]
        return raw.view("<u8").reshape(n, 2).copy()  # a copy: the shard's map may close

    def _file(self, relative: str) -> tuple[np.ndarray, tuple[str, int, int]] | None:
        """All bytes of the file of store key ``relative``, mapped, with its (path, size,
        modification time); None if it is missing."""
        path = os.path.join(self.directory, *relative.split("/"))
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            return None
        ident = (path, stat.st_size, stat.st_mtime_ns)
        if stat.st_size == 0:
            return np.empty(0, np.uint8), ident
        whole = FILE_MAPS.get(path, stat)
        return (map_bytes(path, 0, stat.st_size) if whole is None else whole), ident


#: parsed shard indexes by (path, size, modification time): a partition reads many
#: inner chunks of one shard
_SHARD_INDEXES: dict[tuple[str, int, int], np.ndarray] = {}


def _crc32c(data: np.ndarray) -> int | None:
    """CRC32C of ``data``, with the library zarr checks it with; None if none is installed."""
    try:
        import google_crc32c
    except ImportError:
        try:
            import crc32c
        except ImportError:
            return None
        return int(crc32c.crc32c(data.tobytes()))
    return int(google_crc32c.value(data.tobytes()))
