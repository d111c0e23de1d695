"""Export a dataset to a ``.npy`` file or a zarr array, partition by partition.

Both formats are written by the workers: the file or array is created up front with
the dataset's full shape, then each partition task opens it by path and writes its
own frames. Nothing but the metadata passes through the client, so datasets larger
than its memory can be exported.

* ``.npy`` is written by :class:`~dataflow.udf.record.RecordUDF`, as LiberTEM's
  ``Context.export_dataset`` does.
* zarr gets chunks aligned to the dataset's partitions: no chunk holds frames of
  two partitions, so partition tasks never write to the same chunk, and each writes
  whole chunks only. zarr is imported only for a zarr export.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dataflow.errors import RoiError
from dataflow.udf.base import UDF
from dataflow.udf.record import RecordUDF

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np

    from dataflow.api import Context
    from dataflow.buffers import BufferWrapper
    from dataflow.sources import DataSet, Partition

__all__ = ["export_dataset"]

_FORMATS = {".npy": "npy", ".zarr": "zarr"}
_ZARR_METADATA = ("zarr.json", ".zarray", ".zgroup")


def export_dataset(
    ctx: Context,
    dataset: DataSet,
    *,
    path: str | os.PathLike[str],
    progress: bool = False,
    overwrite: bool = False,
    format: Literal["npy", "zarr"] | None = None,
) -> None:
    """Write all frames of ``dataset`` to ``path``, as ``.npy`` or as a zarr array.

    The written array has the dataset's shape (navigation, then signal) and native
    dtype, with any ``nav_shape``, ``sig_shape`` or ``sync_offset`` of the dataset
    applied. Every worker must see ``path`` (on a cluster: a shared file system).

    Parameters
    ----------
    ctx
        The context whose executor runs the export.
    dataset
        The data to write.
    path
        Where to write: a ``.npy`` file, or the directory of a zarr store.
    progress
        Show a progress bar.
    overwrite
        Replace what exists at ``path``; otherwise an existing path is an error.
    format
        ``"npy"`` or ``"zarr"``; by default from the suffix of ``path`` (``.npy``,
        ``.zarr``). A zarr array is written in zarr's default format (3 for
        zarr-python 3), with the dataset's dimension names.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    ValueError
        If ``format`` is unknown, or None and the suffix of ``path`` names no format.

    Examples
    --------
    >>> export_dataset(ctx, dataset, path=tmp_path / "scan.npy")
    >>> bool(np.array_equal(np.load(tmp_path / "scan.npy"), data))
    True
    >>> export_dataset(ctx, dataset, path=tmp_path / "scan.zarr")
    >>> import zarr
    >>> z = zarr.open_array(tmp_path / "scan.zarr", mode="r")
    >>> z.shape, bool(np.array_equal(z[:], data))
    ((16, 16, 32, 32), True)
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"path is a {type(path).__name__}; expected a str or os.PathLike naming a "
            ".npy file or a .zarr directory"
        )
    target = Path(path).expanduser().absolute()  # workers may run elsewhere
    fmt = _format(target, format)
    if target.exists() or target.is_symlink():
        _check_overwrite(target, fmt, overwrite)
    if fmt == "npy":
        ctx.run_udf(dataset=dataset, udf=RecordUDF(target), progress=progress)
        return
    _create_zarr(target, dataset)
    ctx.run_udf(dataset=dataset, udf=_ZarrWriteUDF(path=os.fspath(target)), progress=progress)


def _check_overwrite(path: Path, fmt: str, overwrite: bool) -> None:
    """Raise unless what exists at ``path`` may be replaced by a ``fmt`` export."""
    where = os.fspath(path)
    if not overwrite:
        raise FileExistsError(
            f"cannot export the dataset to {where!r}: it exists. Pass overwrite=True to replace it"
        )
    if fmt == "npy" and path.is_dir():
        raise IsADirectoryError(
            f"cannot export the dataset to {where!r}: it is a directory, and a .npy export "
            "replaces files only"
        )
    if fmt == "zarr":
        if not path.is_dir():
            path.unlink()  # a file where the store's directory goes
        elif any(path.iterdir()) and not any((path / m).exists() for m in _ZARR_METADATA):
            raise FileExistsError(
                f"cannot export the dataset to {where!r}: it is a directory that holds no zarr "
                "metadata, and overwrite=True replaces zarr stores only. Remove it yourself, "
                "or choose another path"
            )


def _format(path: Path, format: str | None) -> str:
    if format is not None:
        if format not in _FORMATS.values():
            raise ValueError(f"format is {format!r}; expected 'npy', 'zarr' or None")
        return format
    suffix = path.suffix.lower()
    if suffix not in _FORMATS:
        raise ValueError(
            f"path {os.fspath(path)!r} has the suffix {suffix!r}, which names no export "
            "format; expected '.npy' or '.zarr', or pass format='npy' or format='zarr'"
        )
    return _FORMATS[suffix]


def _nav_chunks(nav_shape: Sequence[int], partitions: Sequence[Partition]) -> tuple[int, ...]:
    """The largest regular navigation chunk shape whose chunks never span two partitions.

    A chunk ``(1, ..., 1, m, n_{j+1}, ..., n_k)`` is a run of ``m * prod(n_{j+1:})``
    frames in flattened order; with ``m`` dividing ``n_j``, chunks tile the flattened
    axis evenly, so every partition boundary that is a multiple of the run length is
    a chunk boundary.

    Examples
    --------
    >>> from dataflow.sources import Partition
    >>> parts = [Partition(0, 0, 32), Partition(1, 32, 80), Partition(2, 80, 256)]
    >>> _nav_chunks((16, 16), parts)
    (1, 16)
    >>> _nav_chunks((16, 16), [Partition(0, 0, 128), Partition(1, 128, 256)])
    (8, 16)
    """
    nav = tuple(int(n) for n in nav_shape)
    step = 0
    for p in partitions:
        step = math.gcd(step, p.start, p.stop)
    best: tuple[int, ...] = (1,) * len(nav)
    best_frames = 1
    for j in range(len(nav)):
        inner = math.prod(nav[j + 1 :])
        if step % inner:
            continue
        m = math.gcd(step // inner, nav[j])
        if m * inner > best_frames:
            best, best_frames = (1,) * j + (m, *nav[j + 1 :]), m * inner
    return best


def _create_zarr(path: Path, dataset: DataSet) -> None:
    """Create the empty zarr array for ``dataset`` at ``path``, chunks aligned to partitions."""
    import zarr

    shape = tuple(dataset.shape)
    nav_chunks = _nav_chunks(tuple(dataset.shape.nav), dataset.partitions)
    chunks = (*nav_chunks, *dataset.shape.sig)
    kwargs: dict[str, Any] = {"shape": shape, "chunks": chunks, "dtype": dataset.dtype}
    dims = list(dataset.dims)
    if int(zarr.__version__.split(".")[0]) >= 3:
        zarr.open_array(store=os.fspath(path), mode="w", dimension_names=dims, **kwargs)
    else:  # zarr-python 2: xarray's attribute
        arr = zarr.open_array(store=os.fspath(path), mode="w", **kwargs)
        arr.attrs["_ARRAY_DIMENSIONS"] = dims


def _nav_regions(start: int, stop: int, nav_shape: tuple[int, ...]) -> list[tuple[slice, ...]]:
    """Flat frames ``start:stop`` as rectangular navigation regions, in order.

    Examples
    --------
    >>> _nav_regions(4, 12, (3, 4))
    [(slice(1, 3, None), slice(0, 4, None))]
    >>> _nav_regions(2, 7, (3, 4))
    [(slice(0, 1, None), slice(2, 4, None)), (slice(1, 2, None), slice(0, 3, None))]
    """
    if start >= stop:
        return []
    if len(nav_shape) == 1:
        return [(slice(start, stop),)]
    inner_shape = nav_shape[1:]
    inner = math.prod(inner_shape)
    first, a = divmod(start, inner)
    last, b = divmod(stop, inner)
    if first == last:
        return [(slice(first, first + 1), *r) for r in _nav_regions(a, b, inner_shape)]
    regions = []
    if a:
        regions += [(slice(first, first + 1), *r) for r in _nav_regions(a, inner, inner_shape)]
        first += 1
    if last > first:
        regions.append((slice(first, last), *(slice(0, n) for n in inner_shape)))
    if b:
        regions += [(slice(last, last + 1), *r) for r in _nav_regions(0, b, inner_shape)]
    return regions


class _ZarrWriteUDF(UDF):
    """Write each partition's frames into the zarr array at ``path`` (made by the client)."""

    def __init__(self, path: str) -> None:
        super().__init__(path=path)

    def get_preferred_input_dtype(self) -> Any:
        return self.USE_NATIVE_DTYPE

    def get_result_buffers(self) -> dict[str, BufferWrapper]:
        if self.meta.roi is not None:
            raise RoiError("a zarr export writes whole datasets; run it with roi=None")
        return {}

    def process_partition(self, partition: np.ndarray) -> None:
        import zarr

        arr = zarr.open_array(store=self.params.path, mode="r+")
        shape = self.meta.dataset_shape
        nav, sig = tuple(shape.nav), tuple(shape.sig)
        if tuple(arr.shape) != (*nav, *sig):
            raise ValueError(
                f"the zarr array {self.params.path!r} has shape {tuple(arr.shape)}; expected "
                f"{(*nav, *sig)}, as created for this export. Was it replaced meanwhile?"
            )
        part = self.meta.slice
        assert part is not None  # set while a partition runs
        start = part.origin[0]
        pos = 0
        for region in _nav_regions(start, start + partition.shape[0], nav):
            extent = tuple(s.stop - s.start for s in region)
            n = math.prod(extent)
            arr[region] = partition[pos : pos + n].reshape(extent + sig)
            pos += n
