"""The ``hdf5`` adapter: a dataset in an HDF5 file, as LiberTEM's ``H5DataSet``.

Opening reads metadata only (shape, dtype, chunking). Partitions are runs of frames
in flattened navigation order whose boundaries fall on the storage chunks of the
first chunked navigation axis where enough of them exist, so a chunk, compressed or
not, is decompressed by one partition task only. Each task opens the file by path,
reads its frames as rectangular regions of the navigation axes (a partial first row,
whole rows, a partial last row) straight into its output block, and closes the file.
Runs with a ROI read only the selected frames. h5py is imported only when a file is
opened (``pip install 'dataflow-udf[hdf5]'``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from dask.base import tokenize

from dataflow.sources.adapter import Adapter
from dataflow.adapters.npy import mask_runs, reader_array
from dataflow.adapters.zarr import chunk_boundaries, nav_regions
from dataflow.sources import (
    DEFAULT_PARTITION_BYTES,
    DataSet,
    check_sig_dims,
    make_layout,
    plan_partitions,
)
from dataflow.errors import DataSetException

if TYPE_CHECKING:
    from collections.abc import Sequence

    from dataflow.sources import FrameLayout

__all__ = ["H5FrameReader", "HDF5Adapter", "list_datasets"]

_EXTENSIONS = (".h5", ".hdf5", ".hdf")
_NUMERIC_KINDS = "biufc"
#: bytes of HDF5's chunk cache per open file: several chunks, so ROI runs that
#: share a chunk decompress it once
_MAX_CACHE_BYTES = 256 * 2**20


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as e:
        raise ImportError(
            "the hdf5 adapter needs h5py: pip install 'dataflow-udf[hdf5]' (or pip install h5py)"
        ) from e
    return h5py


def _as_path(path: Any) -> Path:
    """``path`` as an absolute :class:`~pathlib.Path`; a TypeError for anything else."""
    if path is None:
        raise TypeError("ctx.load('hdf5', ...) needs path=<path of an HDF5 file>")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"path is a {type(path).__name__}; expected a str or os.PathLike naming an HDF5 file"
        )
    return Path(path).expanduser().absolute()


def list_datasets(f: Any) -> list[tuple[str, tuple[int, ...], np.dtype]]:
    """Path, shape and dtype of every dataset in the open HDF5 file or group ``f``.

    Examples
    --------
    >>> import h5py
    >>> with h5py.File(tmp_path / "a.h5", "w") as f:
    ...     _ = f.create_dataset("entry/data", shape=(2, 3, 4, 4), dtype="uint16")
    ...     _ = f.create_dataset("mask", shape=(4, 4), dtype="bool")
    >>> with h5py.File(tmp_path / "a.h5", "r") as f:
    ...     list_datasets(f)
    [('entry/data', (2, 3, 4, 4), dtype('uint16')), ('mask', (4, 4), dtype('bool'))]
    """
    h5py = _h5py()
    found: list[tuple[str, tuple[int, ...], np.dtype]] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            found.append((name, tuple(int(s) for s in obj.shape), obj.dtype))

    f.visititems(visit)
    return sorted(found)


def _listing(datasets: list[tuple[str, tuple[int, ...], np.dtype]]) -> str:
    return ", ".join(f"{name!r} {shape} {dtype}" for name, shape, dtype in datasets) or "none"


def _find_dataset(f: Any, where: str, ds_path: Any, sig_dims: int) -> tuple[str, Any]:
    """``(ds_path, dataset)``: the one named, or the only one with navigation axes."""
    h5py = _h5py()
    if ds_path is None:
        datasets = list_datasets(f)
        min_ndim = max(sig_dims, 2) + 1
        fits = [d for d in datasets if len(d[1]) >= min_ndim]
        if len(fits) != 1:
            which = "no dataset" if not fits else f"{len(fits)} datasets"
            raise DataSetException(
                f"{where} holds {which} of {min_ndim} or more dimensions, so ds_path cannot be "
                f"chosen for you: pass ds_path=. Datasets in the file: {_listing(datasets)}"
            )
        ds_path = fits[0][0]
    elif not isinstance(ds_path, str):
        raise TypeError(
            f"ds_path is a {type(ds_path).__name__}; expected a str naming a dataset in the "
            "file, such as '/entry/data'"
        )
    node = f.get(ds_path)
    if not isinstance(node, h5py.Dataset):
        what = "no such member" if node is None else "a group there, not a dataset"
        raise DataSetException(
            f"ds_path is {ds_path!r}; {where} has {what}. Datasets in the file: "
            f"{_listing(list_datasets(f))}"
        )
    return ds_path, node


def _cache_bytes(chunks: tuple[int, ...] | None, itemsize: int) -> int:
    """HDF5 chunk cache for reading: room for a few chunks (1 MiB for contiguous data)."""
    if chunks is None:
        return 2**20
    return int(min(_MAX_CACHE_BYTES, max(2**20, 4 * math.prod(chunks) * itemsize)))


class H5FrameReader:
    """Read dataset frames from an HDF5 dataset: ``reader(start, stop, mask)``.

    Opens the file by path inside each call and closes it before returning, so it
    pickles as a path and a few shapes. Only the frames where the boolean ``mask`` is
    True are read (contiguous runs, each as rectangular regions of the navigation
    axes); the others stay zero, as do frames the layout places outside the dataset.

    Parameters
    ----------
    path, ds_path
        The file and the dataset inside it.
    stored_shape
        Shape of the HDF5 dataset; its last ``sig_dims`` axes are a frame.
    sig_dims
        Number of frame axes of the HDF5 dataset.
    dtype
        Its dtype.
    layout
        How the stored frames map onto dataset frames.
    cache_bytes
        Size of HDF5's chunk cache while reading.
    """

    __slots__ = ("cache_bytes", "ds_path", "dtype", "layout", "path", "sig_dims", "stored_shape")

    def __init__(
        self,
        path: str,
        ds_path: str,
        stored_shape: tuple[int, ...],
        sig_dims: int,
        dtype: np.dtype,
        layout: FrameLayout,
        cache_bytes: int = 2**20,
    ) -> None:
        self.path = str(path)
        self.ds_path = ds_path
        self.stored_shape = tuple(stored_shape)
        self.sig_dims = int(sig_dims)
        self.dtype = np.dtype(dtype)
        self.layout = layout
        self.cache_bytes = int(cache_bytes)

    def __getstate__(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            setattr(self, name, value)

    def __dask_tokenize__(self) -> Any:
        state = {name: getattr(self, name) for name in self.__slots__ if name != "dtype"}
        return (type(self).__name__, *state.items(), self.dtype.str)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(path={self.path!r}, ds_path={self.ds_path!r}, "
            f"layout={self.layout!r})"
        )

    def __call__(self, start: int, stop: int, mask: np.ndarray | None = None) -> np.ndarray:
        """Dataset frames ``start:stop``, reading only those where ``mask`` is True."""
        layout, sig = self.layout, tuple(self.layout.sig_shape)
        nav = self.stored_shape[: len(self.stored_shape) - self.sig_dims]
        stored_sig = self.stored_shape[len(nav) :]
        windows = []
        for i0, i1 in mask_runs(mask, stop - start):
            a, b, pre, _ = layout.raw_window(start + i0, start + i1)
            if a < b:
                windows.append((i0 + pre, a, b))
        covered = sum(b - a for _, a, b in windows)
        make = np.empty if covered == stop - start else np.zeros
        out = make((stop - start, *sig), dtype=self.dtype)
        if not windows:
            return out
        flat = out.reshape((stop - start, *stored_sig))  # a view: same items per frame
        h5py = _h5py()
        with h5py.File(self.path, "r", rdcc_nbytes=self.cache_bytes, rdcc_nslots=10007) as f:
            dset = f[self.ds_path]
            if tuple(dset.shape) != self.stored_shape or dset.dtype != self.dtype:
                raise OSError(
                    f"the HDF5 dataset {self.ds_path!r} in {self.path!r} has shape "
                    f"{tuple(dset.shape)} and dtype {dset.dtype}; it had shape "
                    f"{self.stored_shape} and dtype {self.dtype} when it was opened. Load it again"
                )
            for pos, a, b in windows:
                for region in nav_regions(a, b, nav):
                    counts = tuple(s.stop - s.start for s in region)
                    n = math.prod(counts)
                    dest = flat[pos : pos + n].reshape((*counts, *stored_sig))
                    dset.read_direct(dest, source_sel=region)
                    pos += n
        return out


class HDF5Adapter(Adapter):
    """The ``hdf5`` source: a dataset in an HDF5 file, read partition by partition.

    Examples
    --------
    >>> import h5py
    >>> with h5py.File(tmp_path / "scan.h5", "w") as f:
    ...     _ = f.create_dataset("data", data=np.ones((4, 6, 8, 8), "float32"), chunks=(1, 6, 8, 8))
    >>> ds = ctx.load("hdf5", path=tmp_path / "scan.h5", num_partitions=2)
    >>> tuple(ds.shape), [(p.start, p.stop) for p in ds.partitions]
    ((4, 6, 8, 8), [(0, 12), (12, 24)])
    """

    name = "hdf5"
    description = "a dataset in an HDF5 file (h5py), chunked or contiguous, compressed or not"
    url = "https://docs.h5py.org"
    extensions: tuple[str, ...] = _EXTENSIONS

    @staticmethod
    def guess_can_open(path: Any) -> bool:
        """True if ``path`` ends in ``.h5``, ``.hdf5`` or ``.hdf``.

        HDF5-based formats with their own extension (``.emd``, ``.hspy``, ``.nxs``)
        are left to adapters that know them; load them with ``"hdf5"`` explicitly.

        Examples
        --------
        >>> HDF5Adapter.guess_can_open("scan.H5"), HDF5Adapter.guess_can_open("scan.emd")
        (True, False)
        """
        if not isinstance(path, (str, os.PathLike)):
            return False
        return os.fspath(path).lower().endswith(_EXTENSIONS)

    @staticmethod
    def open(
        path: str | os.PathLike[str] | None = None,
        ds_path: str | None = None,
        *,
        tileshape: Sequence[int] | None = None,
        nav_shape: Sequence[int] | None = None,
        sig_shape: Sequence[int] | None = None,
        target_size: int | None = None,
        min_num_partitions: int | None = None,
        sig_dims: int = 2,
        io_backend: Any = None,
        sync_offset: int = 0,
        num_partitions: int | None = None,
        partition_bytes: int = DEFAULT_PARTITION_BYTES,
        min_partitions: int = 1,
        dims: Sequence[str] | None = None,
    ) -> DataSet:
        """Open a dataset of an HDF5 file as a DataSet; only metadata is read.

        Parameters
        ----------
        path
            The HDF5 file.
        ds_path
            Path of the dataset in the file, such as ``"/entry/data"``. If None, the
            file must hold exactly one dataset of 3 or more dimensions.
        nav_shape
            Navigation shape; by default the dataset's shape without its last
            ``sig_dims`` axes. It may hold fewer or more frames than the dataset
            (missing frames are zeros).
        sig_shape
            Frame shape; by default the dataset's. It must hold as many items as a
            stored frame.
        sig_dims
            Number of trailing axes of the HDF5 dataset that form a frame.
        sync_offset
            Dataset frame ``i`` is stored frame ``i + sync_offset``: positive skips
            frames at the start, negative inserts blank frames.
        target_size
            LiberTEM's name for ``partition_bytes``; wins if given.
        min_num_partitions
            LiberTEM's name for ``min_partitions``; the larger of the two is used.
        tileshape, io_backend
            Accepted for LiberTEM compatibility and ignored.
        num_partitions
            Number of partitions; by default about ``partition_bytes`` each.
        partition_bytes
            Target partition size in bytes.
        min_partitions
            Fewest partitions (``ctx.load`` passes the number of workers).
        dims
            Dimension names, navigation first.

        Returns
        -------
        DataSet
            Partition boundaries on the dataset's chunk boundaries where enough exist.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        ImportError
            If h5py is not installed.
        DataSetException
            If the file is not HDF5, ``ds_path`` names no dataset (or is None and the
            file has no single candidate: the message lists the datasets), the dtype
            is not numeric, ``sig_shape`` holds a different number of items than a
            stored frame, or ``sync_offset`` is out of range.
        ValueError, TypeError
            For a bad ``sig_dims``, ``nav_shape`` or ``sig_shape``.

        Notes
        -----
        As LiberTEM's ``H5DataSet``, except: without ``ds_path`` LiberTEM takes the
        largest dataset of 3 or more dimensions, here the file must hold exactly one
        (a guess could pick a mask or a reference image); ``sig_shape`` may reshape
        frames (LiberTEM only accepts the stored frame shape); ``io_backend`` is
        ignored (LiberTEM raises for anything but None); compressed data gives no
        warning; ``num_partitions`` is accepted.
        """
        del tileshape, io_backend  # LiberTEM tiling and I/O knobs: no counterpart here
        p = _as_path(path)
        if isinstance(sig_dims, bool) or not isinstance(sig_dims, (int, np.integer)):
            raise TypeError(f"sig_dims is {sig_dims!r}; expected an integer >= 1")
        if not p.exists():
            raise FileNotFoundError(f"no such HDF5 file: {str(p)!r}")
        if p.is_dir():
            raise IsADirectoryError(f"{str(p)!r} is a directory; expected an HDF5 file")
        h5py = _h5py()
        if not h5py.is_hdf5(p):
            raise DataSetException(f"{str(p)!r} is not an HDF5 file (no HDF5 signature found)")
        stat = p.stat()
        try:
            f = h5py.File(p, "r")
        except OSError as e:
            raise DataSetException(f"{str(p)!r} could not be opened as an HDF5 file: {e}") from e
        with f:
            ds_path, dset = _find_dataset(f, repr(str(p)), ds_path, int(sig_dims))
            shape = tuple(int(s) for s in dset.shape)
            dtype = np.dtype(dset.dtype.str)  # h5py spells native byte order out ("<")
            chunks = None if dset.chunks is None else tuple(int(c) for c in dset.chunks)
        where = f"the HDF5 dataset {ds_path!r} in {str(p)!r}"
        if dtype.kind not in _NUMERIC_KINDS:
            raise DataSetException(f"{where} has dtype {dtype}; expected a numeric dtype")
        sig_dims = check_sig_dims(sig_dims, shape, where)
        if 0 in shape:
            raise DataSetException(f"{where} is empty: its shape is {shape}")
        layout = make_layout(
            shape,
            sig_dims,
            nav_shape=nav_shape,
            sig_shape=sig_shape,
            sync_offset=sync_offset,
            source=where,
        )
        stored_nav = shape[:-sig_dims]
        bounds = None
        if chunks is not None:
            raw_bounds = chunk_boundaries(stored_nav, chunks[: len(stored_nav)])
            bounds = layout.dataset_boundaries(raw_bounds.tolist())
        if target_size is not None:
            partition_bytes = target_size
        if min_num_partitions is not None:
            min_partitions = max(min_partitions, min_num_partitions)
        partitions = plan_partitions(
            layout.n_frames,
            math.prod(layout.sig_shape) * dtype.itemsize,
            row_length=layout.nav_shape[-1],
            num_partitions=num_partitions,
            min_partitions=min_partitions,
            target_bytes=partition_bytes,
            chunk_boundaries=bounds,
        )
        token = (
            f"hdf5-{p}-{ds_path}-{stat.st_size}-{stat.st_mtime_ns}-{layout.nav_shape}-"
            f"{layout.sig_shape}-{layout.sync_offset}"
        )
        reader = H5FrameReader(
            str(p),
            ds_path,
            shape,
            sig_dims,
            dtype,
            layout,
            cache_bytes=_cache_bytes(chunks, dtype.itemsize),
        )
        sizes = tuple(part.n_frames for part in partitions)
        return DataSet(
            reader_array(reader, partitions, f"hdf5-{tokenize(token, chunks, sizes)}"),
            nav_shape=layout.nav_shape,
            partitions=partitions,
            token=token,
            dims=dims,
            layout=layout,
            reader=reader,
        )
