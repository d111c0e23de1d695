"""The ``npy`` adapter: a NumPy ``.npy`` file, read frame range by frame range.

Opening reads the header only (shape, dtype, memory order, where the data starts).
Each partition task opens the file by path and reads its frames with one
``np.fromfile`` call, so the dask graph holds a path and offsets, never a handle.
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

__all__ = ["NPYAdapter", "read_header"]


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


def _read_frames(
    *,
    path: str,
    offset: int,
    file_dtype: np.dtype,
    sig_shape: tuple[int, ...],
    pickled: bool = False,
    block_info: dict | None = None,
) -> np.ndarray:
    """Read frames ``block_info[None]["array-location"][0]`` of the file, as a new array."""
    start, stop = block_info[None]["array-location"][0]  # type: ignore[index]
    n = stop - start
    if pickled:  # object arrays are pickled: no offsets, load it all
        data = np.load(path, allow_pickle=True)
        return np.array(data.reshape((-1, *sig_shape))[start:stop])
    frame_items = math.prod(sig_shape)
    count = n * frame_items
    out = np.fromfile(
        path,
        dtype=file_dtype,
        count=count,
        offset=offset + start * frame_items * file_dtype.itemsize,
    )
    if out.size != count:
        raise OSError(
            f"{path!r}: read {out.size} items for frames {start}:{stop}; expected {count}. "
            "Was the file truncated after it was opened?"
        )
    return out.reshape((n, *sig_shape))


class NPYAdapter:
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
    def guess_can_open(path: Any) -> bool:
        """True if ``path`` names a ``.npy`` file (by its extension).

        Examples
        --------
        >>> NPYAdapter.guess_can_open("scan.npy"), NPYAdapter.guess_can_open("scan.zarr")
        (True, False)
        """
        if not isinstance(path, (str, os.PathLike)):
            return False
        return os.fspath(path).lower().endswith(".npy")

    @staticmethod
    def open(
        path: str | os.PathLike[str] | None = None,
        *,
        sig_dims: int = 2,
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
            The ``.npy`` file, shape ``nav + sig``, C order.
        sig_dims
            Number of trailing signal dimensions.
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
            One partition per chunk of ``partition_array``; each task reads its frames.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        DataSetException
            If the file is not a ``.npy`` file, is in Fortran order, holds objects (without
            ``allow_pickle``), or its size does not match its header.
        """
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
        sig_dims = check_sig_dims(sig_dims, shape, repr(str(p)))
        stat = p.stat()
        nbytes = math.prod(shape) * dtype.itemsize
        if not dtype.hasobject and stat.st_size != offset + nbytes:
            raise DataSetException(
                f"{str(p)!r} has {stat.st_size} bytes; its header (shape {shape}, dtype "
                f"{dtype}) expects {offset + nbytes} bytes ({offset} header + {nbytes} data). "
                "The file is truncated or was not written by np.save"
            )
        nav_shape, sig_shape = shape[:-sig_dims], shape[-sig_dims:]
        n_frames = math.prod(nav_shape)
        partitions = plan_partitions(
            n_frames,
            math.prod(sig_shape) * dtype.itemsize,
            row_length=nav_shape[-1],
            num_partitions=num_partitions,
            min_partitions=min_partitions,
            target_bytes=partition_bytes,
        )
        token = f"npy-{p}-{stat.st_size}-{stat.st_mtime_ns}"
        sizes = tuple(part.n_frames for part in partitions)
        flat_shape = (n_frames, *sig_shape)
        array = da.map_blocks(
            _read_frames,
            chunks=(sizes, *((s,) for s in sig_shape)),
            dtype=dtype,
            meta=np.empty((0,) * len(flat_shape), dtype=dtype),
            name=f"npy-{tokenize(token, sizes, sig_shape)}",
            path=str(p),
            offset=offset,
            file_dtype=dtype,
            sig_shape=tuple(sig_shape),
            pickled=dtype.hasobject,
        )
        return DataSet(
            array,
            nav_shape=nav_shape,
            partitions=partitions,
            token=token,
            dims=dims,
        )
