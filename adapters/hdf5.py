"""The ``hdf5`` adapter: a dataset in an HDF5 file, as LiberTEM's ``H5DataSet``.

Opening reads metadata only (shape, dtype, chunking). Partitions are runs of frames
in flattened navigation order whose boundaries fall on the storage chunks of the
first chunked navigation axis where enough of them exist, so a chunk, compressed or
not, is decompressed by one partition task only. Each task opens the file by path,
reads its frames as rectangular regions of the navigation axes (a partial first row,
whole rows, a partial last row) straight into its output block, and closes the file.
Runs with a ROI read only the selected frames. h5py is imported only when a file is
opened (``pip install 'dataflow-udf[hdf5]'``).

Datasets compressed with deflate (gzip), optionally after HDF5's byte shuffle, whose
chunks each hold a run of whole frames, are handed to the partition chunk by chunk:
each chunk's stored bytes are fetched with ``read_direct_chunk`` and decompressed by
the task itself, outside h5py's lock, into a buffer reused for every chunk (HDF5's
own pipeline decompresses under that lock: one thread at a time).
"""

from __future__ import annotations

import contextlib
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
    FrameReader,
    as_path,
    check_count,
    check_file,
    check_sig_dims,
    chunk_boundaries,
    file_token,
    frame_run_axis,
    frame_run_chunks,
    make_layout,
    nav_regions,
    reader_dataset,
    warn_ignored,
)
from dataflow.sources.scratch import SCRATCH

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

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


@dataclass(frozen=True, repr=False)
class H5FrameReader(FrameReader):
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
    chunks
        The dataset's chunk shape, where its chunks are decoded by the reader
        itself (see ``chunk_filters``); else None.
    chunk_filters
        The filters of such a dataset, in the order they were applied when
        writing: ``("deflate",)`` or ``("shuffle", "deflate")``.
    fill_value
        What unwritten chunks hold.
    """

    path: str
    ds_path: str
    stored_shape: tuple[int, ...]
    sig_dims: int
    dtype: np.dtype
    layout: FrameLayout
    cache_bytes: int = 2**20
    chunks: tuple[int, ...] | None = None
    chunk_filters: tuple[str, ...] = ()
    fill_value: Any = 0

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(path={self.path!r}, ds_path={self.ds_path!r}, "
            f"layout={self.layout!r})"
        )

    @contextlib.contextmanager
    def opened(self) -> Iterator[Any]:
        """The HDF5 dataset, open for the reads of one call; checked against the load."""
        h5py = _h5py()
        with h5py.File(self.path, "r", rdcc_nbytes=self.cache_bytes, rdcc_nslots=10007) as f:
            dset = f[self.ds_path]
            if tuple(dset.shape) != self.stored_shape or dset.dtype != self.dtype:
                raise OSError(
                    f"the HDF5 dataset {self.ds_path!r} in {self.path!r} has shape "
                    f"{tuple(dset.shape)} and dtype {dset.dtype}; it had shape "
                    f"{self.stored_shape} and dtype {self.dtype} when it was opened. Load it again"
                )
            yield dset

    def read_frames(self, handle: Any, a: int, b: int, out: np.ndarray) -> None:
        """Stored frames ``a:b``, as rectangles of the navigation axes, straight into ``out``."""
        nav = self.stored_shape[: len(self.stored_shape) - self.sig_dims]
        stored_sig = self.stored_shape[len(nav) :]
        flat = out.reshape((b - a, *stored_sig))  # a view: same items per frame
        pos = 0
        for region in nav_regions(a, b, nav):
            counts = tuple(s.stop - s.start for s in region)
            n = math.prod(counts)
            handle.read_direct(
                flat[pos : pos + n].reshape((*counts, *stored_sig)), source_sel=region
            )
            pos += n

    def read_pieces(
        self, handle: Any, a: int, b: int, mask: np.ndarray | None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Stored frames ``a:b`` chunk by chunk, decompressed here (see the module)."""
        nav_dims = len(self.stored_shape) - self.sig_dims
        axis = None
        if self.chunks is not None:
            axis = frame_run_axis(self.stored_shape, self.chunks, nav_dims)
        if axis is None or self.chunks is None:
            yield from super().read_pieces(handle, a, b, mask)
            return
        sig = self.layout.sig_shape
        with SCRATCH.borrow(self.chunks, self.dtype) as buffer:
            frames = buffer.reshape((-1, *sig))
            for index, r0, r1, first in frame_run_chunks(
                a, b, self.stored_shape, self.chunks, nav_dims, axis
            ):
                if mask is not None and not mask[r0:r1].any():
                    continue
                self._decode_chunk(handle, index, buffer)
                yield r0, frames[first : first + r1 - r0]

    def _decode_chunk(self, dset: Any, index: tuple[int, ...], out: np.ndarray) -> None:
        """Chunk ``index`` (grid position) into ``out``: its bytes, undone filter by filter."""
        import zlib

        assert self.chunks is not None
        offset = tuple(i * c for i, c in zip(index, self.chunks, strict=True))
        where = f"{self.ds_path!r} in {self.path!r}: chunk at {offset}"
        info = dset.id.get_chunk_info_by_coord(offset)
        if info.byte_offset is None:  # never written
            out[...] = self.fill_value
            return
        skipped, data = dset.id.read_direct_chunk(offset)
        steps = [f for i, f in enumerate(self.chunk_filters) if not skipped & (1 << i)]
        try:
            if "deflate" in steps:
                data = zlib.decompress(data)
        except zlib.error as e:
            raise OSError(f"the HDF5 dataset {where} could not be decompressed: {e}") from e
        if len(data) != out.nbytes:
            raise OSError(
                f"the HDF5 dataset {where} holds {len(data)} bytes once decompressed; a "
                f"chunk of shape {self.chunks} and dtype {self.dtype} has {out.nbytes}"
            )
        if "shuffle" in steps and self.dtype.itemsize > 1:
            _unshuffle(data, out)
        else:
            out.reshape(-1).view(np.uint8)[...] = np.frombuffer(data, np.uint8)


def _unshuffle(data: bytes, out: np.ndarray) -> None:
    """Undo HDF5's shuffle filter into ``out``: byte planes back to items.

    numcodecs' ``Shuffle`` is the same transform (and a zarr dependency, so always
    installed); NumPy's transpose of the planes runs at a fraction of its speed.
    """
    import numcodecs

    numcodecs.Shuffle(elementsize=out.dtype.itemsize).decode(data, out=out.reshape(-1))


def _own_filters(dset: Any) -> tuple[str, ...] | None:
    """The filters of ``dset`` in pipeline order, if the reader undoes them itself.

    ``("deflate",)`` or ``("shuffle", "deflate")``; None for unchunked or unfiltered
    data (HDF5 reads those straight into the output) and for any other filter.
    """
    if dset.chunks is None:
        return None
    plist = dset.id.get_create_plist()
    names = {1: "deflate", 2: "shuffle"}
    found = tuple(names.get(plist.get_filter(i)[0], "") for i in range(plist.get_nfilters()))
    return found if found in {("deflate",), ("shuffle", "deflate")} else None


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
    extensions = _EXTENSIONS

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
        tileshape
            LiberTEM's tile shape: tiles of ``tileshape[0]`` frames.
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
        warn_ignored("hdf5", io_backend=(io_backend, None))
        p = as_path(path, "hdf5", "HDF5 file")
        sig_dims = check_count("sig_dims", sig_dims)
        check_file(p, "HDF5")
        h5py = _h5py()
        if not h5py.is_hdf5(p):
            raise DataSetException(f"{str(p)!r} is not an HDF5 file (no HDF5 signature found)")
        try:
            f = h5py.File(p, "r")
        except OSError as e:
            raise DataSetException(f"{str(p)!r} could not be opened as an HDF5 file: {e}") from e
        with f:
            ds_path, dset = _find_dataset(f, repr(str(p)), ds_path, int(sig_dims))
            shape = tuple(int(s) for s in dset.shape)
            dtype = np.dtype(dset.dtype.str)  # h5py spells native byte order out ("<")
            chunks = None if dset.chunks is None else tuple(int(c) for c in dset.chunks)
            own_filters = _own_filters(dset) if dtype.isnative else None
            fill_value = dset.fillvalue
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
        reader = H5FrameReader(
            str(p),
            ds_path,
            shape,
            sig_dims,
            dtype,
            layout,
            cache_bytes=_cache_bytes(chunks, dtype.itemsize),
            chunks=chunks if own_filters is not None else None,
            chunk_filters=own_filters or (),
            fill_value=fill_value,
        )
        return reader_dataset(
            reader,
            name="hdf5",
            identity=(file_token([p]), chunks),
            num_partitions=num_partitions,
            partition_bytes=partition_bytes,
            min_partitions=min_partitions,
            chunk_boundaries=bounds,
            dims=dims,
            tileshape=tileshape,
        )
