"""The decode roofline: how fast numcodecs alone turns a compressed copy back into the array.

A compressed copy can be read no faster than its chunks can be decompressed. To
measure that limit without any reader in the way, :func:`read_zarr_chunks` and
:func:`read_hdf5_chunks` read every stored chunk's bytes into memory once (not
timed) and name the numcodecs codec that undoes the store's compression. A
:class:`DecodePool` then decodes all of them on a fixed number of threads, each
thread into one output buffer of a chunk's size that it allocates (and touches)
before the first call and reuses for every chunk it decodes. Nothing else happens:
no file system calls, no copies into a larger array, no arithmetic. The figure is
reported as GiB/s of decoded data, so it compares directly with the dataflow run
over the same copy.

The chunk readers understand exactly the layouts the benchmarks write: zarr 2 with
one numcodecs compressor and no filters; zarr 3 with a little-endian ``bytes`` codec
and one compressor (zstd, blosc or gzip); zarr 3 sharded, its shard index at the
end with a crc32c checksum, inner chunks as the unsharded case; HDF5 with the
deflate (gzip) filter alone. Anything else raises ``ValueError``.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

import numpy as np

if TYPE_CHECKING:
    from pathlib import Path

    from numcodecs.abc import Codec

__all__ = [
    "HDF5_DATASET",
    "DecodePool",
    "EncodedChunks",
    "first_mismatch",
    "read_hdf5_chunks",
    "read_zarr_chunks",
]

#: the path of the array in the benchmarks' HDF5 files
HDF5_DATASET = "/data"
#: a shard index entry of an inner chunk that was never written
_EMPTY = 2**64 - 1


@dataclass(frozen=True)
class EncodedChunks:
    """Every stored chunk of one compressed copy, as bytes in memory.

    Attributes
    ----------
    codec
        The numcodecs codec that decodes each chunk into the array's bytes.
    dtype
        The array's dtype.
    chunk_shape
        The shape of one decoded chunk; every chunk has it.
    chunks
        Per chunk: its encoded bytes, and where the decoded chunk sits in the array.
    """

    codec: Codec
    dtype: np.dtype
    chunk_shape: tuple[int, ...]
    chunks: list[tuple[memoryview, tuple[slice, ...]]]

    @property
    def chunk_nbytes(self) -> int:
        """Bytes of one decoded chunk."""
        return math.prod(self.chunk_shape) * self.dtype.itemsize

    @property
    def encoded_nbytes(self) -> int:
        """Bytes of all chunks as stored (without metadata or shard indexes)."""
        return sum(buf.nbytes for buf, _ in self.chunks)

    @property
    def decoded_nbytes(self) -> int:
        """Bytes of all chunks decoded: the array's size."""
        return len(self.chunks) * self.chunk_nbytes


def _regions(shape: tuple[int, ...], chunk_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The grid coordinates of the chunks of ``shape``; whole chunks only."""
    if any(n % c for n, c in zip(shape, chunk_shape, strict=True)):
        raise ValueError(
            f"the decode roofline reads whole chunks only: shape {shape} is not a multiple "
            f"of the chunk shape {chunk_shape}"
        )
    return list(np.ndindex(*(n // c for n, c in zip(shape, chunk_shape, strict=True))))


def _where(coords: tuple[int, ...], chunk_shape: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(i * c, (i + 1) * c) for i, c in zip(coords, chunk_shape, strict=True))


def _numcodecs_of(codecs: tuple[Any, ...], what: str) -> Codec:
    """The numcodecs codec equal to a zarr 3 codec chain of ``bytes`` and one compressor."""
    import numcodecs
    from zarr.codecs import BloscCodec, BytesCodec, GzipCodec, ZstdCodec

    if len(codecs) != 2 or not isinstance(codecs[0], BytesCodec):
        raise ValueError(f"{what}: expected a bytes codec and one compressor, got {codecs!r}")
    endian = codecs[0].endian
    if endian is not None and endian.value != "little":
        raise ValueError(f"{what}: the bytes codec is {endian.value}-endian; expected little")
    compressor = codecs[1]
    # every parameter that matters for decoding is in the chunk's own header (zstd
    # frame, blosc header, gzip member), so the codecs' defaults decode any setting
    if isinstance(compressor, ZstdCodec):
        return numcodecs.Zstd()
    if isinstance(compressor, BloscCodec):
        return numcodecs.Blosc()
    if isinstance(compressor, GzipCodec):
        return numcodecs.GZip()
    raise ValueError(f"{what}: no numcodecs decoder for {compressor!r}")


def read_zarr_chunks(path: Path) -> EncodedChunks:
    """The chunk bytes of a zarr 2 or 3 store (sharded or not) and their codec.

    For a sharded store the unit is the inner chunk: each shard file is read whole,
    its index (at the end, checked against its crc32c) gives the inner chunks' bytes.

    Raises
    ------
    ValueError
        For a store laid out other than the benchmarks write theirs.
    """
    import zarr
    from zarr.codecs import BytesCodec, Crc32cCodec, ShardingCodec
    from zarr.core.metadata import ArrayV2Metadata

    arr = zarr.open_array(str(path), mode="r")
    md = arr.metadata
    shape, dtype = tuple(arr.shape), np.dtype(arr.dtype)
    if dtype.byteorder == ">":
        raise ValueError(f"{str(path)!r}: big-endian data; the roofline decodes native bytes")
    if isinstance(md, ArrayV2Metadata):
        if md.filters or md.compressor is None or md.order != "C":
            raise ValueError(f"{str(path)!r}: expected one compressor, no filters, C order")
        chunk_shape = tuple(md.chunks)
        chunks = [
            (memoryview((path / md.encode_chunk_key(c)).read_bytes()), _where(c, chunk_shape))
            for c in _regions(shape, chunk_shape)
        ]
        return EncodedChunks(md.compressor, dtype, chunk_shape, chunks)

    codecs = tuple(md.codecs)
    if len(codecs) != 1 or not isinstance(codecs[0], ShardingCodec):
        chunk_shape = tuple(arr.chunks)
        codec = _numcodecs_of(codecs, str(path))
        chunks = [
            (memoryview((path / md.encode_chunk_key(c)).read_bytes()), _where(c, chunk_shape))
            for c in _regions(shape, chunk_shape)
        ]
        return EncodedChunks(codec, dtype, chunk_shape, chunks)

    sharding = codecs[0]
    inner = tuple(sharding.chunk_shape)
    assert arr.shards is not None  # a sharding codec: the array has shards
    shard_shape = tuple(arr.shards)
    index_codecs = tuple(sharding.index_codecs)
    if (
        sharding.index_location.value != "end"
        or len(index_codecs) != 2
        or not isinstance(index_codecs[0], BytesCodec)
        or not isinstance(index_codecs[1], Crc32cCodec)
    ):
        raise ValueError(f"{str(path)!r}: expected a shard index at the end, with crc32c")
    codec = _numcodecs_of(tuple(sharding.codecs), f"{str(path)!r}, inner chunks")
    per_shard = tuple(s // c for s, c in zip(shard_shape, inner, strict=True))
    n_inner = math.prod(per_shard)
    index_nbytes = n_inner * 16 + 4
    chunks = []
    for shard in _regions(shape, shard_shape):
        raw = memoryview((path / md.encode_chunk_key(shard)).read_bytes())
        index_bytes, crc = raw[-index_nbytes:-4], raw[-4:]
        _check_crc32c(index_bytes, crc, f"{str(path)!r}, shard {shard}")
        index = np.frombuffer(index_bytes, dtype="<u8").reshape(n_inner, 2)
        for (offset, nbytes), local in zip(index, np.ndindex(*per_shard), strict=True):
            if offset == _EMPTY and nbytes == _EMPTY:
                raise ValueError(f"{str(path)!r}: shard {shard} lacks inner chunk {local}")
            coords = tuple(s * p + i for s, p, i in zip(shard, per_shard, local, strict=True))
            chunks.append((raw[int(offset) : int(offset) + int(nbytes)], _where(coords, inner)))
    return EncodedChunks(codec, dtype, inner, chunks)


def _check_crc32c(data: memoryview, crc: memoryview, what: str) -> None:
    import google_crc32c

    if google_crc32c.value(bytes(data)) != int.from_bytes(crc, "little"):
        raise ValueError(f"{what}: the shard index fails its crc32c check")


def read_hdf5_chunks(path: Path, ds_path: str = HDF5_DATASET) -> EncodedChunks:
    """The raw chunk bytes of an HDF5 dataset compressed with deflate alone, and zlib.

    HDF5's ``gzip`` filter writes zlib streams (RFC 1950), which numcodecs' ``Zlib``
    decodes. Each chunk is read with ``read_direct_chunk``, bypassing the filters.

    Raises
    ------
    ValueError
        If the dataset is not chunked, has a filter other than deflate, or a chunk
        skipped its filter.
    """
    import h5py
    import numcodecs

    with h5py.File(path, "r") as f:
        dset = f[ds_path]
        if dset.chunks is None or set(dset._filters) != {"gzip"}:
            raise ValueError(
                f"{str(path)!r}, {ds_path!r}: expected chunks and the gzip filter alone, got "
                f"chunks {dset.chunks} and filters {dict(dset._filters)!r}"
            )
        chunk_shape = tuple(dset.chunks)
        chunks = []
        for coords in _regions(tuple(dset.shape), chunk_shape):
            where = _where(coords, chunk_shape)
            mask, raw = dset.id.read_direct_chunk(tuple(s.start for s in where))
            if mask != 0:
                raise ValueError(f"{str(path)!r}: chunk {coords} skipped a filter (mask {mask})")
            chunks.append((memoryview(raw), where))
        dtype = np.dtype(dset.dtype)
    return EncodedChunks(numcodecs.Zlib(), dtype, chunk_shape, chunks)


def first_mismatch(encoded: EncodedChunks, data: np.ndarray) -> str | None:
    """Decode every chunk once and compare it with ``data``; the first difference, or None."""
    if encoded.decoded_nbytes != data.nbytes or encoded.dtype != data.dtype:
        return (
            f"the chunks decode to {encoded.decoded_nbytes} bytes of {encoded.dtype}; the "
            f"array has {data.nbytes} bytes of {data.dtype}"
        )
    out = np.empty(encoded.chunk_nbytes, dtype=np.uint8)
    for buf, where in encoded.chunks:
        encoded.codec.decode(buf, out=out)
        if not np.array_equal(out.view(data.dtype).reshape(encoded.chunk_shape), data[where]):
            return f"the chunk at {where} decodes to other values than the array holds there"
    return None


class DecodePool:
    """Decode all chunks of ``encoded`` on ``threads`` threads, as often as called.

    Thread ``k`` takes the chunks ``k, k + threads, ...`` (so that a run of costlier
    chunks is shared) and decodes each into its own buffer, which is allocated and
    written once when the pool opens. The threads start when the pool opens, too,
    so a call does nothing but decode. Use it as a context manager.
    """

    def __init__(self, encoded: EncodedChunks, threads: int) -> None:
        self.encoded = encoded
        self.threads = threads
        self._groups = [encoded.chunks[k::threads] for k in range(threads)]
        self._buffers = [np.ones(encoded.chunk_nbytes, dtype=np.uint8) for _ in range(threads)]
        self._pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> Self:
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="decode-roofline")
        # start every thread before the first timed call
        list(self._pool.map(len, self._buffers))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _decode(self, group: list[tuple[memoryview, tuple[slice, ...]]], out: np.ndarray) -> None:
        decode = self.encoded.codec.decode
        for buf, _ in group:
            decode(buf, out=out)

    def __call__(self) -> None:
        """Decode every chunk once (1 thread too runs in the pool, not in the caller)."""
        assert self._pool is not None, "open the pool with 'with DecodePool(...)'"
        list(self._pool.map(self._decode, self._groups, self._buffers))
