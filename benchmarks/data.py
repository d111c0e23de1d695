"""The benchmark data: made once per shape and dtype, cached on disk, read by every tool.

Every array is generated with a fixed seed and saved as ``.npy`` in the cache folder
(``.bench/data`` in the repository by default). The in-memory runs of all tools load
that file with ``np.load`` (into RAM), and the file-based runs read copies of the
same array written as ``.npy``, raw binary or zarr, so every tool sees identical
bytes. A :class:`Source` says how each tool opens one of these forms.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    import dask.array

    from dataflow import Context, DataSet

__all__ = [
    "DEFAULT_DATA_DIR",
    "ROOT",
    "SEED",
    "SOURCES",
    "DataCache",
    "Source",
    "dask_chunks",
    "random_roi",
    "zarr_chunks",
]

#: the repository root; ``.bench/`` in it holds the cache and the peer's venv (gitignored)
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = ROOT / ".bench" / "data"
SEED = 0
#: integer data is uniform in [0, INT_HIGH): counts of a 12-bit detector
INT_HIGH = 4096


def _generate(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    rng = np.random.default_rng(SEED)
    if dtype.kind == "f":
        return rng.random(shape, dtype=dtype)
    return rng.integers(0, INT_HIGH, size=shape, dtype=dtype)


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

    Parameters
    ----------
    root
        The folder; made when needed.
    """

    def __init__(self, root: str | os.PathLike[str] = DEFAULT_DATA_DIR) -> None:
        self.root = Path(root)
        self._loaded: dict[tuple[tuple[int, ...], str], np.ndarray] = {}

    def stem(self, shape: tuple[int, ...], dtype: Any) -> str:
        return f"{np.dtype(dtype).name}-{'x'.join(map(str, shape))}-seed{SEED}"

    def npy(self, shape: tuple[int, ...], dtype: Any) -> Path:
        """The ``.npy`` file of the array of this shape and dtype; made if missing."""
        path = self.root / f"{self.stem(shape, dtype)}.npy"
        if not path.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            data = _generate(tuple(shape), np.dtype(dtype))

            _atomic(path, lambda tmp: _save(tmp, data))
        return path

    def load(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """The array in memory, read once from its ``.npy`` file (read-only; shared)."""
        key = (tuple(shape), np.dtype(dtype).name)
        if key not in self._loaded:
            data = np.load(self.npy(shape, dtype))  # mmap_mode=None: read into RAM
            data.flags.writeable = False
            self._loaded[key] = data
        return self._loaded[key]

    def release(self, keep: Iterable[tuple[tuple[int, ...], Any]] = ()) -> None:
        """Forget the arrays held in memory, except those of the ``(shape, dtype)`` in ``keep``."""
        kept = {(tuple(shape), np.dtype(dtype).name) for shape, dtype in keep}
        for key in [k for k in self._loaded if k not in kept]:
            del self._loaded[key]

    def path(self, source: Source, shape: tuple[int, ...], dtype: Any, sig_dims: int) -> Path:
        """Where ``source`` reads the array from; its file is written if missing."""
        npy = self.npy(shape, dtype)
        if source.suffix is None:
            return npy
        path = self.root / f"{self.stem(shape, dtype)}{source.suffix}"
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
        ``memory``, ``npy``, ``raw``, ``zarr`` or ``zarr-zstd``.
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
    """

    name: str
    suffix: str | None
    write: Callable[[np.ndarray, Path, int], None]
    open_dataflow: Callable[[Context, Path, np.ndarray, int], DataSet]
    open_numpy: Callable[[Path, np.ndarray], Any]
    open_dask: Callable[[Path, np.ndarray, tuple], dask.array.Array]
    libertem: str


def _no_write(data: np.ndarray, path: Path, sig_dims: int) -> None:
    raise AssertionError("the .npy file is written by DataCache.npy")


def _write_raw(data: np.ndarray, path: Path, sig_dims: int) -> None:
    with open(path, "wb") as f:
        for block in data:  # a scan row at a time: the data may be a memory map
            np.ascontiguousarray(block).tofile(f)


def _write_zarr(compressed: bool) -> Callable[[np.ndarray, Path, int], None]:
    def write(data: np.ndarray, path: Path, sig_dims: int) -> None:
        import zarr

        chunks = zarr_chunks(data.shape, sig_dims)
        z = zarr.create_array(
            store=str(path),
            shape=data.shape,
            chunks=chunks,
            dtype=data.dtype,
            # "auto" is zarr 3's default compressor (zstd); None stores the bytes as they are
            compressors="auto" if compressed else None,
        )
        for i in range(data.shape[0]):
            z[i] = data[i]

    return write


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
            write=_write_zarr(compressed=False),
            open_dataflow=lambda ctx, path, data, sig_dims: ctx.load("zarr", path=path),
            open_numpy=_open_zarr,
            open_dask=_from_zarr,
            libertem="zarr",
        ),
        Source(
            name="zarr-zstd",
            suffix="-zstd.zarr",
            write=_write_zarr(compressed=True),
            open_dataflow=lambda ctx, path, data, sig_dims: ctx.load("zarr", path=path),
            open_numpy=_open_zarr,
            open_dask=_from_zarr,
            libertem="zarr",
        ),
    ]
}
