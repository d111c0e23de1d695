"""The ``zarr`` adapter: an array in a local zarr store (format 2 or 3).

Opening reads metadata only. Partitions are runs of frames in flattened navigation
order whose boundaries fall on storage chunk boundaries where enough of them exist;
each partition task opens the array by path and reads its frames as up to three
rectangular regions per navigation axis level (a partial first row, whole rows, a
partial last row). zarr is imported only when a store is opened.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np
from dask.base import tokenize

from dataflow.dataset import (
    DEFAULT_PARTITION_BYTES,
    DataSet,
    check_sig_dims,
    plan_partitions,
)
from dataflow.errors import DataSetException

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["ZarrAdapter", "chunk_boundaries", "nav_regions"]

_METADATA_FILES = ("zarr.json", ".zarray", ".zgroup")


def _as_path(path: Any) -> Path:
    """``path`` as an absolute :class:`~pathlib.Path`; a TypeError for anything else."""
    if path is None:
        raise TypeError("ctx.load('zarr', ...) needs path=<directory of a zarr store>")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"path is a {type(path).__name__}; expected a str or os.PathLike naming the "
            "directory of a local zarr store"
        )
    return Path(path).expanduser().absolute()


def _normalize_ds_path(ds_path: Any) -> str:
    if ds_path is None:
        return ""
    if not isinstance(ds_path, str):
        raise TypeError(
            f"ds_path is a {type(ds_path).__name__}; expected a str naming an array in the "
            "group, such as 'intensity'"
        )
    return ds_path.strip("/")


def _list_arrays(group: Any, prefix: str = "") -> list[str]:
    """Paths of all arrays below ``group``, depth first."""
    names = [f"{prefix}{name}" for name, _ in group.arrays()]
    for name, sub in group.groups():
        names.extend(_list_arrays(sub, f"{prefix}{name}/"))
    return sorted(names)


def _open_array(path: Path, ds_path: str) -> Any:
    """The zarr array at ``path`` (a store directory) and ``ds_path`` inside it."""
    import zarr

    where = str(path)
    try:
        node = zarr.open(store=where, mode="r")
    except (FileNotFoundError, KeyError, ValueError) as e:
        raise DataSetException(
            f"{where!r} is not a zarr store: found no zarr metadata ({', '.join(_METADATA_FILES)})"
            f" in it ({e})"
        ) from e
    if isinstance(node, zarr.Array):
        if ds_path:
            raise DataSetException(
                f"{where!r} is a zarr array, not a group; ds_path is {ds_path!r}, expected None"
            )
        return node
    arrays = _list_arrays(node)
    listing = ", ".join(repr(a) for a in arrays) or "none"
    if not ds_path:
        raise DataSetException(
            f"{where!r} is a zarr group; pass ds_path= to name the array to load. "
            f"Arrays in the group: {listing}"
        )
    try:
        arr = node[ds_path]
    except KeyError as e:
        raise DataSetException(
            f"ds_path is {ds_path!r}; the group {where!r} has no such member. "
            f"Arrays in the group: {listing}"
        ) from e
    if not isinstance(arr, zarr.Array):
        raise DataSetException(
            f"ds_path is {ds_path!r}, a group in {where!r}; expected an array. "
            f"Arrays in the group: {listing}"
        )
    return arr


def _dims_of(arr: Any) -> tuple[str, ...] | None:
    """Dimension names stored with the array by xarray (format 2) or zarr (format 3)."""
    names = arr.attrs.get("_ARRAY_DIMENSIONS")
    if names is None:
        names = getattr(getattr(arr, "metadata", None), "dimension_names", None)
    if names is None or len(names) != arr.ndim or not all(isinstance(n, str) for n in names):
        return None
    return tuple(names)


def chunk_boundaries(nav_shape: Sequence[int], nav_chunks: Sequence[int]) -> np.ndarray:
    """Flat frame indices where a partition boundary cuts no storage chunk.

    Between two neighbouring indices lie whole chunks only. Leading navigation axes
    with chunks of one index are skipped, so a store chunked one row at a time gets
    boundaries inside rows.

    Parameters
    ----------
    nav_shape
        Navigation shape.
    nav_chunks
        Storage chunk (or shard) shape of the navigation axes.

    Returns
    -------
    numpy.ndarray
        Sorted indices, from 0 to the number of frames.

    Examples
    --------
    >>> chunk_boundaries((8, 4), (3, 4)).tolist()
    [0, 12, 24, 32]
    >>> chunk_boundaries((2, 6), (1, 4)).tolist()
    [0, 4, 6, 10, 12]
    """
    nav_shape = tuple(int(s) for s in nav_shape)
    k = 0
    while k < len(nav_shape) - 1 and int(nav_chunks[k]) == 1:
        k += 1
    outer = math.prod(nav_shape[:k])
    inner = math.prod(nav_shape[k + 1 :])
    starts = np.arange(0, nav_shape[k], max(1, int(nav_chunks[k])))
    bounds = (np.arange(outer)[:, None] * nav_shape[k] + starts[None, :]) * inner
    return np.append(bounds.ravel(), math.prod(nav_shape))


def nav_regions(start: int, stop: int, nav_shape: Sequence[int]) -> list[tuple[slice, ...]]:
    """Frames ``start:stop`` of the flattened navigation axis as rectangular regions.

    Parameters
    ----------
    start, stop
        A range of flat frame indices.
    nav_shape
        Navigation shape.

    Returns
    -------
    list of tuple of slice
        Regions of the navigation axes, in order; their frames, flattened and
        concatenated, are frames ``start:stop``. For a 2D scan: a partial first
        row, whole rows, a partial last row (each one only if needed).

    Examples
    --------
    >>> nav_regions(3, 14, (4, 5))
    [(slice(0, 1, None), slice(3, 5, None)), (slice(1, 2, None), slice(0, 5, None)), (slice(2, 3, None), slice(0, 4, None))]
    """
    if start >= stop:
        return []
    if len(nav_shape) == 1:
        return [(slice(start, stop),)]
    rest = tuple(nav_shape[1:])
    inner = math.prod(rest)
    i0, r0 = divmod(start, inner)
    i1, r1 = divmod(stop, inner)
    if i0 == i1:
        return [(slice(i0, i0 + 1), *sub) for sub in nav_regions(r0, r1, rest)]
    regions: list[tuple[slice, ...]] = []
    if r0:
        regions += [(slice(i0, i0 + 1), *sub) for sub in nav_regions(r0, inner, rest)]
        i0 += 1
    if i1 > i0:
        regions.append((slice(i0, i1), *(slice(0, n) for n in rest)))
    if r1:
        regions += [(slice(i1, i1 + 1), *sub) for sub in nav_regions(0, r1, rest)]
    return regions


def _read_frames(
    *,
    path: str,
    ds_path: str,
    nav_shape: tuple[int, ...],
    sig_shape: tuple[int, ...],
    file_dtype: np.dtype,
    block_info: dict | None = None,
) -> np.ndarray:
    """Open the array by path and read frames ``block_info[None]["array-location"][0]``."""
    import zarr

    start, stop = block_info[None]["array-location"][0]  # type: ignore[index]
    arr = zarr.open_array(store=path, path=ds_path, mode="r")
    if tuple(arr.shape) != (*nav_shape, *sig_shape):
        raise OSError(
            f"the zarr array {path!r} (ds_path {ds_path!r}) has shape {tuple(arr.shape)}; "
            f"it had shape {(*nav_shape, *sig_shape)} when it was opened. Load it again"
        )
    out = np.empty((stop - start, *sig_shape), dtype=file_dtype)
    pos = 0
    for region in nav_regions(start, stop, nav_shape):
        n = math.prod(s.stop - s.start for s in region)
        out[pos : pos + n] = np.asarray(arr[region]).reshape((n, *sig_shape))
        pos += n
    return out


def _metadata_mtime(path: Path, ds_path: str) -> int:
    for name in _METADATA_FILES:
        meta = path / ds_path / name
        if meta.exists():
            return meta.stat().st_mtime_ns
    return path.stat().st_mtime_ns


class ZarrAdapter:
    """The ``zarr`` source: an array in a local zarr store, format 2 or 3.

    Examples
    --------
    >>> import zarr
    >>> z = zarr.open_array(
    ...     tmp_path / "scan.zarr", mode="w", shape=(4, 6, 8, 8), chunks=(1, 6, 8, 8)
    ... )
    >>> z[:] = 1
    >>> ds = ctx.load("zarr", path=tmp_path / "scan.zarr", num_partitions=2)
    >>> tuple(ds.shape), [(p.start, p.stop) for p in ds.partitions]
    ((4, 6, 8, 8), [(0, 12), (12, 24)])
    """

    name = "zarr"
    description = "an array in a local zarr store (zarr format 2 or 3)"
    url = "https://zarr.readthedocs.io"
    extensions: tuple[str, ...] = (".zarr",)

    @staticmethod
    def guess_can_open(path: Any) -> bool:
        """True for a path ending in ``.zarr`` or a directory holding zarr metadata.

        Examples
        --------
        >>> ZarrAdapter.guess_can_open("scan.zarr/"), ZarrAdapter.guess_can_open("scan.npy")
        (True, False)
        """
        if not isinstance(path, (str, os.PathLike)):
            return False
        if os.fspath(path).rstrip("/\\").lower().endswith(".zarr"):
            return True
        p = Path(path)
        return p.is_dir() and any((p / name).exists() for name in _METADATA_FILES)

    @staticmethod
    def open(
        path: str | os.PathLike[str] | None = None,
        *,
        ds_path: str | None = None,
        sig_dims: int = 2,
        num_partitions: int | None = None,
        partition_bytes: int = DEFAULT_PARTITION_BYTES,
        min_partitions: int = 1,
        dims: Sequence[str] | None = None,
    ) -> DataSet:
        """Open an array of a local zarr store as a DataSet; only metadata is read.

        Parameters
        ----------
        path
            Directory of the store (an array, or a group holding the array).
        ds_path
            Path of the array inside the group, such as ``"intensity"``; None if
            ``path`` is an array.
        sig_dims
            Number of trailing signal dimensions.
        num_partitions
            Number of partitions; by default about ``partition_bytes`` each.
        partition_bytes
            Target partition size in bytes.
        min_partitions
            Fewest partitions (``ctx.load`` passes the number of workers).
        dims
            Dimension names, navigation first; by default those stored with the array
            (``_ARRAY_DIMENSIONS`` as written by xarray, or zarr 3 ``dimension_names``).

        Returns
        -------
        DataSet
            Partition boundaries on storage chunk boundaries where possible.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        DataSetException
            If ``path`` is not a zarr store, is a group and ``ds_path`` is missing or
            names no array (the message lists the arrays), or the dtype is not numeric.
        """
        p = _as_path(path)
        ds_path = _normalize_ds_path(ds_path)
        if not p.exists():
            raise FileNotFoundError(f"no such zarr store: {str(p)!r}")
        if not p.is_dir():
            raise NotADirectoryError(
                f"{str(p)!r} is a file; expected the directory of a local zarr store"
            )
        arr = _open_array(p, ds_path)
        where = f"the zarr array {str(p)!r}" + (f" (ds_path {ds_path!r})" if ds_path else "")
        dtype = np.dtype(arr.dtype)
        if dtype.kind in "OSUTV":
            raise DataSetException(f"{where} has dtype {dtype}; expected a numeric dtype")
        shape = tuple(int(s) for s in arr.shape)
        sig_dims = check_sig_dims(sig_dims, shape, where)
        nav_shape, sig_shape = shape[:-sig_dims], shape[-sig_dims:]
        storage_chunks = tuple(getattr(arr, "shards", None) or arr.chunks)
        n_frames = math.prod(nav_shape)
        partitions = plan_partitions(
            n_frames,
            math.prod(sig_shape) * dtype.itemsize,
            row_length=nav_shape[-1],
            num_partitions=num_partitions,
            min_partitions=min_partitions,
            target_bytes=partition_bytes,
            chunk_boundaries=chunk_boundaries(nav_shape, storage_chunks[: len(nav_shape)])
            if n_frames
            else None,
        )
        token = f"zarr-{p}-{ds_path}-{_metadata_mtime(p, ds_path)}"
        sizes = tuple(part.n_frames for part in partitions)
        array = da.map_blocks(
            _read_frames,
            chunks=(sizes, *((s,) for s in sig_shape)),
            dtype=dtype,
            meta=np.empty((0,) * (1 + len(sig_shape)), dtype=dtype),
            name=f"zarr-{tokenize(token, shape, storage_chunks, dtype.str, sizes)}",
            path=str(p),
            ds_path=ds_path,
            nav_shape=nav_shape,
            sig_shape=sig_shape,
            file_dtype=dtype,
        )
        return DataSet(
            array,
            nav_shape=nav_shape,
            partitions=partitions,
            token=token,
            dims=dims if dims is not None else _dims_of(arr),
        )
