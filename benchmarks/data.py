"""The benchmark data: made once per kind, shape and dtype, cached on disk, read by every tool.

Every array is generated with a fixed seed and saved as ``.npy`` in the cache folder
(``.bench/data`` in the repository by default). The in-memory runs of all tools load
that file with ``np.load`` (into RAM), and the file-based runs read copies of the
same array written as ``.npy``, raw binary, zarr (2 or 3, compressed or not, sharded
or not) or HDF5, so every tool sees identical values. A :class:`Source` says how each
tool opens one of these forms.

There are two kinds of data (:data:`KINDS`): ``uniform``, random values spread over
the whole range (float32 in [0, 1), integers in [0, 4096)), which compress poorly;
and ``counts``, what a counting (electron-event) detector records: Poisson counts,
mostly zero, with a bright disk near the middle of each frame (see
:func:`counts_rows`), which compress well.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from benchmarks.decode import HDF5_DATASET, read_hdf5_chunks, read_zarr_chunks

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    import dask.array

    from benchmarks.decode import EncodedChunks
    from dataflow import Context, DataSet

__all__ = [
    "DEFAULT_DATA_DIR",
    "KINDS",
    "ROOT",
    "SEED",
    "SOURCES",
    "DataCache",
    "HDF5Array",
    "Source",
    "counts_rows",
    "dask_chunks",
    "random_roi",
    "stored_nbytes",
    "zarr_chunks",
]

#: the repository root; ``.bench/`` in it holds the cache and the peer's venv (gitignored)
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = ROOT / ".bench" / "data"
SEED = 0
#: integer data is uniform in [0, INT_HIGH): counts of a 12-bit detector
INT_HIGH = 4096
#: the kinds of data, by the name a workload gives (``Workload.data``)
KINDS = ("uniform", "counts")

#: counts data: the background's mean counts per pixel, at the frame's rim and its middle
COUNTS_BACKGROUND = (0.05, 0.2)
#: counts data: the bright disk's mean counts per pixel (on top of the background)
COUNTS_DISK = 3.0
#: counts data: the disk's radius, as a fraction of half the frame's smaller side
COUNTS_DISK_RADIUS = 0.25
#: counts data: how far the disk moves across the scan, as a fraction of the frame
COUNTS_SHIFT = 0.04
#: zarr 3 sharded store: scan rows per shard (inner chunks are one scan row)
SHARD_ROWS = 8
#: gzip level of the zarr and HDF5 gzip copies (the fastest; HDF5's default is 4)
GZIP_LEVEL = 1


def _generate(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    rng = np.random.default_rng(SEED)
    if dtype.kind == "f":
        return rng.random(shape, dtype=dtype)
    return rng.integers(0, INT_HIGH, size=shape, dtype=dtype)


def counts_rows(shape: tuple[int, ...], dtype: Any) -> Iterator[np.ndarray]:
    """The ``counts`` array of ``shape`` (two scan axes, two frame axes), a scan row at a time.

    Each frame is Poisson noise around a mean that is the sum of a background, falling
    from 0.2 counts per pixel in the middle of the frame to 0.05 at its rim, and a
    disk of 3 counts per pixel with a quarter of the half-frame as its radius (the
    bright field disk of a diffraction pattern). The disk's centre moves linearly with
    the scan position, by 4% of the frame from the first scan position to the last
    along each axis, as an imperfectly descanned beam does. One generator
    (``np.random.default_rng(SEED)``) draws the rows in order, so the array is the
    same however it is written. Counts beyond the dtype's range are clipped (at these
    means, practically never).
    """
    if len(shape) != 4:
        raise ValueError(f"counts data has two scan and two frame axes; shape is {shape}")
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(SEED)
    rows, cols, ny, nx = shape
    y, x = np.mgrid[0:ny, 0:nx].astype(np.float32)
    cy, cx = (ny - 1) / 2, (nx - 1) / 2
    half = min(ny, nx) / 2
    rim = np.clip(np.hypot(y - cy, x - cx) / half, 0, 1)
    low, high = COUNTS_BACKGROUND
    background = (high - (high - low) * rim).astype(np.float32)
    # the disk's offset from the frame's middle at each scan position, in pixels
    shift_y = COUNTS_SHIFT * ny * (np.linspace(0, 1, rows) - 0.5)
    shift_x = COUNTS_SHIFT * nx * (np.linspace(0, 1, cols) - 0.5)
    top = np.iinfo(dtype).max
    for i in range(rows):
        dy = (y - cy - shift_y[i])[None]
        dx = x[None] - cx - shift_x[:, None, None]
        disk = np.hypot(dy, dx) < COUNTS_DISK_RADIUS * half
        lam = background + np.float32(COUNTS_DISK) * disk
        yield np.minimum(rng.poisson(lam), top).astype(dtype)


@functools.cache
def random_roi(nav_shape: tuple[int, ...], fraction: float) -> np.ndarray:
    """A boolean mask of ``nav_shape`` selecting ``fraction`` of the frames at random (seed 0)."""
    n = math.prod(nav_shape)
    roi = np.zeros(n, dtype=bool)
    roi[np.random.default_rng(SEED).permutation(n)[: max(1, round(n * fraction))]] = True
    roi = roi.reshape(nav_shape)
    roi.flags.writeable = False
    return roi


def zarr_chunks(shape: tuple[int, ...], sig_dims: int) -> tuple[int, ...]:
    """Storage chunks of the zarr stores: one scan row of whole frames each."""
    nav = shape[:-sig_dims]
    return (1,) * (len(nav) - 1) + (nav[-1],) + tuple(shape[-sig_dims:])


def dask_chunks(shape: tuple[int, ...], itemsize: int, sig_dims: int, cpus: int) -> tuple:
    """Chunks of the plain dask.array peer: whole scan rows, near 128 MiB, at least ``cpus``."""
    rows = shape[0]
    row_bytes = math.prod(shape[1:]) * itemsize
    per_chunk = max(1, min(2**27 // max(row_bytes, 1), math.ceil(rows / cpus)))
    return (per_chunk, *shape[1:])


def _save(path: Path, arr: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would add ".npy" to a name
        np.save(f, arr)


def _save_uniform_floats(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """Write :func:`_generate`'s float array straight into a ``.npy`` file, a scan row at a time.

    One generator draws the rows in order: a float draw takes the same values from the
    generator's stream whether it is made at once or in parts, so the file holds the
    array :func:`_generate` returns, without ever holding it in memory (4 GiB for the
    cluster workloads).
    """
    rng = np.random.default_rng(SEED)
    _write_rows(path, shape, dtype, (rng.random(shape[1:], dtype=dtype) for _ in range(shape[0])))


def _save_counts(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """Write the counts array straight into a ``.npy`` file, a scan row at a time."""
    _write_rows(path, shape, dtype, counts_rows(shape, dtype))


def _write_rows(
    path: Path, shape: tuple[int, ...], dtype: np.dtype, rows: Iterable[np.ndarray]
) -> None:
    """A ``.npy`` file of ``shape`` and ``dtype`` written row by row with ``write``.

    Not through ``open_memmap``: pages dirtied through a memory map stay small (4 KiB)
    in the page cache, which makes every later map of the file fault page by page (a
    per-partition map then read 5.5 against 8.9 GiB/s on one thread, measured); files
    written with ``write``, as detectors and ``np.save`` write them, do not.
    """
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {**header, "shape": tuple(shape)})
        f.writelines(np.ascontiguousarray(row, dtype=dtype).data for row in rows)


def stored_nbytes(path: Path) -> int:
    """Bytes of a copy on disk: the file, or every file under a store's folder."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _atomic(path: Path, write: Callable[[Path], None]) -> Path:
    """Write ``path`` through a temporary name, so an interrupted run leaves no torn file."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
    return path


class DataCache:
    """The folder of benchmark data: ``.npy`` arrays and their file-format copies.

    Every array and copy is written once, through a temporary name, and then reused
    by every later run that asks for the same kind, shape, dtype and form.

    Parameters
    ----------
    root
        The folder; made when needed.
    """

    def __init__(self, root: str | os.PathLike[str] = DEFAULT_DATA_DIR) -> None:
        self.root = Path(root)
        self._loaded: dict[tuple[tuple[int, ...], str, str], np.ndarray] = {}

    def stem(self, shape: tuple[int, ...], dtype: Any, kind: str = "uniform") -> str:
        """The file name of an array, without ending (``uniform`` data has no prefix)."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind of data {kind!r}; known: {', '.join(KINDS)}")
        prefix = "" if kind == "uniform" else f"{kind}-"
        return f"{prefix}{np.dtype(dtype).name}-{'x'.join(map(str, shape))}-seed{SEED}"

    def npy(self, shape: tuple[int, ...], dtype: Any, kind: str = "uniform") -> Path:
        """The ``.npy`` file of the array of this kind, shape and dtype; made if missing."""
        path = self.root / f"{self.stem(shape, dtype, kind)}.npy"
        if not path.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            if kind == "counts":
                _atomic(path, lambda tmp: _save_counts(tmp, tuple(shape), np.dtype(dtype)))
            elif np.dtype(dtype).kind == "f" and len(shape) > 1:
                _atomic(path, lambda tmp: _save_uniform_floats(tmp, tuple(shape), np.dtype(dtype)))
            else:
                data = _generate(tuple(shape), np.dtype(dtype))
                _atomic(path, lambda tmp: _save(tmp, data))
        return path

    def load(self, shape: tuple[int, ...], dtype: Any, kind: str = "uniform") -> np.ndarray:
        """The array in memory, read once from its ``.npy`` file (read-only; shared)."""
        key = (tuple(shape), np.dtype(dtype).name, kind)
        if key not in self._loaded:
            data = np.load(self.npy(shape, dtype, kind))  # mmap_mode=None: read into RAM
            data.flags.writeable = False
            self._loaded[key] = data
        return self._loaded[key]

    def open(self, shape: tuple[int, ...], dtype: Any, kind: str = "uniform") -> np.ndarray:
        """The array as a read-only memory map of its ``.npy`` file (for arrays too large to
        hold in memory beside their copies' page cache)."""
        return np.load(self.npy(shape, dtype, kind), mmap_mode="r")

    def pending(
        self,
        source: Source,
        shape: tuple[int, ...],
        dtype: Any,
        kind: str = "uniform",
    ) -> list[Path]:
        """The files :meth:`path` would write for ``source``: the ``.npy`` file and the copy,
        those of them that do not exist yet."""
        npy = self.root / f"{self.stem(shape, dtype, kind)}.npy"
        files = [npy]
        if source.suffix is not None:
            files.append(self.root / f"{self.stem(shape, dtype, kind)}{source.suffix}")
        return [p for p in files if not p.exists()]

    def release(self, keep: Iterable[tuple[tuple[int, ...], Any, str]] = ()) -> None:
        """Forget the arrays held in memory, except the ``(shape, dtype, kind)`` in ``keep``."""
        kept = {(tuple(shape), np.dtype(dtype).name, kind) for shape, dtype, kind in keep}
        for key in [k for k in self._loaded if k not in kept]:
            del self._loaded[key]

    def path(
        self,
        source: Source,
        shape: tuple[int, ...],
        dtype: Any,
        sig_dims: int,
        kind: str = "uniform",
    ) -> Path:
        """Where ``source`` reads the array from; its file is written if missing."""
        npy = self.npy(shape, dtype, kind)
        if source.suffix is None:
            return npy
        path = self.root / f"{self.stem(shape, dtype, kind)}{source.suffix}"
        if not path.exists():
            data = np.load(npy, mmap_mode="r")
            _atomic(path, lambda tmp: source.write(data, tmp, sig_dims))
        return path

    def roi(self, nav_shape: tuple[int, ...], fraction: float) -> Path:
        """A ``.npy`` file of :func:`random_roi` (for the LiberTEM peer)."""
        name = f"roi-{'x'.join(map(str, nav_shape))}-{fraction:g}-seed{SEED}.npy"
        path = self.root / name
        if not path.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            roi = random_roi(tuple(nav_shape), fraction)
            _atomic(path, lambda tmp: _save(tmp, roi))
        return path


# sources ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One form of the data, and how dataflow, NumPy, dask and LiberTEM open it.

    Opening is not timed (for files it reads metadata only); the timed calls read.

    Attributes
    ----------
    name
        ``memory``, ``npy``, ``raw``, ``zarr``, ``zarr-zstd``, ... (the keys of
        :data:`SOURCES`).
    suffix
        File name ending of the copy; None reads the ``.npy`` file itself.
    write
        ``write(data, path, sig_dims)``: make the copy.
    open_dataflow
        ``open_dataflow(ctx, path, data, sig_dims)``: the DataSet.
    open_numpy
        ``open_numpy(path, data)``: what the NumPy reference gets; indexing it with
        ``[...]`` gives an array (a memory map, or a zarr array that then reads).
    open_dask
        ``open_dask(path, data, chunks)``: a dask array.
    libertem
        The peer script's source name.
    encoded
        For a compressed copy, ``encoded(path)``: its chunks' stored bytes in memory and
        the numcodecs codec that decodes them (for the decode roofline, see
        :mod:`benchmarks.decode`); None for data that is not compressed.
    """

    name: str
    suffix: str | None
    write: Callable[[np.ndarray, Path, int], None]
    open_dataflow: Callable[[Context, Path, np.ndarray, int], DataSet]
    open_numpy: Callable[[Path, np.ndarray], Any]
    open_dask: Callable[[Path, np.ndarray, tuple], dask.array.Array]
    libertem: str
    encoded: Callable[[Path], EncodedChunks] | None = None


def _no_write(data: np.ndarray, path: Path, sig_dims: int) -> None:
    raise AssertionError("the .npy file is written by DataCache.npy")


def _write_raw(data: np.ndarray, path: Path, sig_dims: int) -> None:
    with open(path, "wb") as f:
        for block in data:  # a scan row at a time: the data may be a memory map
            np.ascontiguousarray(block).tofile(f)


def _write_zarr(
    compressors: Callable[[], Any], *, zarr_format: Literal[2, 3] = 3, sharded: bool = False
) -> Callable[[np.ndarray, Path, int], None]:
    """A writer of zarr stores with one scan row per chunk.

    Parameters
    ----------
    compressors
        Makes the ``compressors=`` of ``zarr.create_array`` (called when writing, so
        that zarr is imported only then): ``"auto"`` is zarr 3's default (zstd), None
        stores the bytes as they are; for zarr 2 a numcodecs codec.
    zarr_format
        2 or 3.
    sharded
        Group :data:`SHARD_ROWS` scan rows into each shard (zarr 3); the chunks,
        one scan row each, become the inner chunks.
    """

    def write(data: np.ndarray, path: Path, sig_dims: int) -> None:
        import zarr

        chunks = zarr_chunks(data.shape, sig_dims)
        shards = None
        step = 1
        if sharded:
            step = min(SHARD_ROWS, data.shape[0])
            shards = (step, *chunks[1:])
        z = zarr.create_array(
            store=str(path),
            shape=data.shape,
            chunks=chunks,
            shards=shards,
            dtype=data.dtype,
            compressors=compressors(),
            zarr_format=zarr_format,
        )
        # whole shards at a time, so that no shard is read back and written again
        for i in range(0, data.shape[0], step):
            z[i : i + step] = data[i : i + step]

    return write


def _blosc(
    cname: Literal["lz4", "zstd"], shuffle: Literal["shuffle", "bitshuffle"]
) -> Callable[[], Any]:
    def make() -> Any:
        from zarr.codecs import BloscCodec

        return BloscCodec(cname=cname, clevel=5, shuffle=shuffle)

    return make


def _gzip() -> Any:
    from zarr.codecs import GzipCodec

    return GzipCodec(level=GZIP_LEVEL)


def _zstd() -> Any:
    from zarr.codecs import ZstdCodec

    return ZstdCodec(level=0)  # zstd's default level (3), as zarr's "auto"


def _numcodecs_zstd() -> Any:
    import numcodecs

    return numcodecs.Zstd(level=0)


def _write_hdf5(data: np.ndarray, path: Path, sig_dims: int) -> None:
    """An HDF5 file with the array at :data:`HDF5_DATASET`, one scan row per chunk, gzip."""
    import h5py

    with h5py.File(path, "w") as f:
        dset = f.create_dataset(
            HDF5_DATASET,
            shape=data.shape,
            dtype=data.dtype,
            chunks=zarr_chunks(data.shape, sig_dims),
            compression="gzip",
            compression_opts=GZIP_LEVEL,
        )
        for i in range(data.shape[0]):
            dset[i] = data[i]


def _from_array(arr: Any, chunks: tuple, name: str) -> dask.array.Array:
    import dask.array as da

    # a given name: dask does not hash the array's bytes to make one
    return da.from_array(arr, chunks=chunks, name=name)


def _open_raw(path: Path, data: np.ndarray) -> np.ndarray:
    return np.memmap(path, dtype=data.dtype, mode="r", shape=data.shape)


def _open_zarr(path: Path, data: np.ndarray) -> Any:
    import zarr

    return zarr.open_array(str(path), mode="r")


def _from_zarr(path: Path, data: np.ndarray, chunks: tuple) -> dask.array.Array:
    import dask.array as da

    return da.from_zarr(str(path))  # the store's own chunks


class HDF5Array:
    """The HDF5 copy's dataset, opened afresh for every read (``x[...]``, ``x[i:j]``).

    HDF5 keeps decoded chunks in a per-dataset cache (8 MiB by default in h5py) for as
    long as the file is open anywhere in the process, and shares an open file among all
    who open it. A dataset held open between calls would serve repeated reads of a
    small copy from that cache, for the NumPy and dask peers and even for dataflow's
    own reads; each read here opens the file, reads and closes it, so every call
    decodes. ``shape``, ``dtype``, ``ndim`` and ``chunks`` are read when it is made.
    """

    def __init__(self, path: Path) -> None:
        import h5py

        self.path = path
        with h5py.File(path, "r") as f:
            dset = f[HDF5_DATASET]
            self.shape: tuple[int, ...] = tuple(dset.shape)
            self.dtype = np.dtype(dset.dtype)
            self.chunks: tuple[int, ...] = tuple(dset.chunks)
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        import h5py

        with h5py.File(self.path, "r") as f:
            return f[HDF5_DATASET][key]


def _open_hdf5(path: Path, data: np.ndarray) -> HDF5Array:
    return HDF5Array(path)


def _from_hdf5(path: Path, data: np.ndarray, chunks: tuple) -> dask.array.Array:
    arr = HDF5Array(path)
    return _from_array(arr, arr.chunks, f"bench-{path.name}")  # the file's own chunks


def _dataflow_zarr(ctx: Context, path: Path, data: np.ndarray, sig_dims: int) -> DataSet:
    return ctx.load("zarr", path=path)


def _dataflow_hdf5(ctx: Context, path: Path, data: np.ndarray, sig_dims: int) -> DataSet:
    return ctx.load("hdf5", path=path, ds_path=HDF5_DATASET)


def _zarr_source(name: str, suffix: str, write: Callable[[np.ndarray, Path, int], None]) -> Source:
    """A compressed zarr copy: read by ``ctx.load("zarr")``, zarr, ``da.from_zarr``."""
    return Source(
        name=name,
        suffix=suffix,
        write=write,
        open_dataflow=_dataflow_zarr,
        open_numpy=_open_zarr,
        open_dask=_from_zarr,
        libertem="zarr",
        encoded=read_zarr_chunks,
    )


def _dataflow_raw(ctx: Context, path: Path, data: np.ndarray, sig_dims: int) -> DataSet:
    return ctx.load(
        "raw",
        path=path,
        dtype=data.dtype,
        nav_shape=data.shape[:-sig_dims],
        sig_shape=data.shape[-sig_dims:],
    )


SOURCES: dict[str, Source] = {
    s.name: s
    for s in [
        Source(
            name="memory",
            suffix=None,
            write=_no_write,
            open_dataflow=lambda ctx, path, data, sig_dims: ctx.load(
                "memory", data=data, sig_dims=sig_dims
            ),
            open_numpy=lambda path, data: data,
            open_dask=lambda path, data, chunks: _from_array(data, chunks, "bench-memory"),
            libertem="memory",
        ),
        Source(
            name="npy",
            suffix=None,
            write=_no_write,
            open_dataflow=lambda ctx, path, data, sig_dims: ctx.load(
                "npy", path=path, sig_dims=sig_dims
            ),
            open_numpy=lambda path, data: np.load(path, mmap_mode="r"),
            open_dask=lambda path, data, chunks: _from_array(
                np.load(path, mmap_mode="r"), chunks, "bench-npy"
            ),
            libertem="npy",
        ),
        Source(
            name="raw",
            suffix=".raw",
            write=_write_raw,
            open_dataflow=_dataflow_raw,
            open_numpy=_open_raw,
            open_dask=lambda path, data, chunks: _from_array(
                _open_raw(path, data), chunks, "bench-raw"
            ),
            libertem="raw",
        ),
        Source(
            name="zarr",
            suffix=".zarr",
            write=_write_zarr(lambda: None),
            open_dataflow=_dataflow_zarr,
            open_numpy=_open_zarr,
            open_dask=_from_zarr,
            libertem="zarr",
        ),
        # zarr 3, one scan row per chunk, compressed in different ways
        _zarr_source("zarr-zstd", "-zstd.zarr", _write_zarr(lambda: "auto")),
        _zarr_source(
            "zarr-blosc-lz4", "-blosc-lz4-bitshuffle.zarr", _write_zarr(_blosc("lz4", "bitshuffle"))
        ),
        _zarr_source(
            "zarr-blosc-zstd", "-blosc-zstd-shuffle.zarr", _write_zarr(_blosc("zstd", "shuffle"))
        ),
        _zarr_source("zarr-gzip", f"-gzip{GZIP_LEVEL}.zarr", _write_zarr(_gzip)),
        # zarr 2, numcodecs' Zstd as the compressor
        _zarr_source("zarr2-zstd", "-zarr2-zstd.zarr", _write_zarr(_numcodecs_zstd, zarr_format=2)),
        # zarr 3 shards of SHARD_ROWS scan rows, inner chunks of one scan row, zstd
        _zarr_source(
            "zarr-sharded",
            f"-sharded{SHARD_ROWS}-zstd.zarr",
            _write_zarr(_zstd, sharded=True),
        ),
        Source(
            name="hdf5-gzip",
            suffix=f"-gzip{GZIP_LEVEL}.h5",
            write=_write_hdf5,
            open_dataflow=_dataflow_hdf5,
            open_numpy=_open_hdf5,
            open_dask=_from_hdf5,
            libertem="hdf5",
            encoded=read_hdf5_chunks,
        ),
    ]
}
