"""The ``emd`` adapter: NCEM (Berkeley) EMD files, HDF5 with labelled dimensions.

An NCEM EMD file keeps each data set in an HDF5 group with the attribute
``emd_group_type = 1``: a ``data`` dataset and one ``dim<i>`` dataset per axis, whose
values give the axis (offset and step) and whose ``name`` and ``units`` attributes
label it. Files written by RosettaSciIO and HyperSpy store ``data`` with its axes
reversed (``dim1`` is the last array axis); groups with a ``dim0`` and py4DSTEM's
``datacube`` are stored in order. RosettaSciIO's rule decides which is which.

Opening goes through RosettaSciIO's lazy reader (``rsciio.emd.file_reader(path,
lazy=True)``) for the shape, dtype and axes: dimension names come from the file
where every axis has a distinct name, and each calibrated axis gives ``coords``
(``offset + scale * arange``) and ``attrs["units"]``. Its dask array wraps the open
``h5py.Dataset`` (which does not pickle) and is not used: each partition task opens
the file by path with h5py and reads the scan rows that hold its frames (a ROI reads
only the rows of its selected frames), then closes it.

Velox EMD files (Thermo Fisher) are not read: no test file could be made offline
from a format description, and their 4D-STEM frames are not stored frame by frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dataflow.adapters._rsciio import (
    axes_from_rsciio,
    import_rsciio,
    labels,
)
from dataflow.errors import DataSetException
from dataflow.sources import (
    DEFAULT_PARTITION_BYTES,
    DataSet,
    FrameReader,
    as_path,
    check_file,
    check_sig_dims,
    file_token,
    make_layout,
    reader_dataset,
)
from dataflow.sources.adapter import Adapter

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence

    from dataflow.sources import FrameLayout

__all__ = ["EMDAdapter", "find_datasets"]


def find_datasets(path: str | os.PathLike[str]) -> list[str]:
    """Paths of the NCEM EMD data sets in a file (``<group>/data`` or ``<group>/datacube``).

    Raises
    ------
    ImportError
        If h5py is not installed.
    DataSetException
        If the file is not HDF5.
    """
    import h5py

    found: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Group) and obj.attrs.get("emd_group_type") == 1:
            found.extend(
                f"{name}/{key}"
                for key in ("data", "datacube")
                if isinstance(obj.get(key), h5py.Dataset)
            )

    try:
        with h5py.File(path, "r") as f:
            f.visititems(visit)
    except OSError as e:
        raise DataSetException(f"{str(path)!r} is not an HDF5 (EMD) file: {e}") from e
    return found


def _close_h5(array: Any) -> None:
    """Close the h5py file that RosettaSciIO's lazy array keeps open."""
    import h5py

    for value in dict(array.__dask_graph__()).values():
        if isinstance(value, h5py.Dataset) and value.id.valid:
            value.file.close()


@dataclass(frozen=True)
class _HDF5FrameReader(FrameReader):
    """Frames of an HDF5 dataset, read by scan rows; the file is opened per call."""

    layout: FrameLayout
    dtype: np.dtype
    path: str = ""
    dataset: str = ""
    transposed: bool = False
    raw_shape: tuple[int, ...] = ()
    sig_dims: int = 2

    def read_frames(self, handle: Any, a: int, b: int, out: np.ndarray) -> None:
        import h5py

        nav = self.raw_shape[: len(self.raw_shape) - self.sig_dims]
        sig = self.raw_shape[len(nav) :]
        inner = math.prod(nav[1:])
        i0, i1 = a // inner, -(-b // inner)
        with h5py.File(self.path, "r") as f:
            ds = f[self.dataset]
            if self.transposed:  # stored with reversed axes: rows are the last file axis
                block = np.transpose(ds[..., i0:i1])
            else:
                block = ds[i0:i1]
        frames = np.asarray(block).reshape((-1, *sig))[a - i0 * inner : b - i0 * inner]
        out.reshape(frames.shape)[...] = frames


class EMDAdapter(Adapter):
    """The ``emd`` source: a data set of an NCEM EMD (HDF5) file.

    Examples
    --------
    >>> ds = ctx.load("emd", path="scan.emd")  # doctest: +SKIP
    """

    name = "emd"
    description = "NCEM (Berkeley) EMD files, HDF5 with labelled dimensions"
    url = "https://emdatasets.com/format/"
    extensions = (".emd",)

    @staticmethod
    def open(
        path: str | os.PathLike[str] | None = None,
        *,
        dataset_path: str | None = None,
        sig_dims: int = 2,
        nav_shape: Sequence[int] | None = None,
        sig_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        num_partitions: int | None = None,
        partition_bytes: int = DEFAULT_PARTITION_BYTES,
        min_partitions: int = 1,
        dims: Sequence[str] | None = None,
    ) -> DataSet:
        """Open a data set of an NCEM EMD file; only metadata is read.

        Parameters
        ----------
        path
            The ``.emd`` file.
        dataset_path
            HDF5 path of the data set (``"signals/scan/data"``); by default the file's
            only one (see :func:`find_datasets`).
        sig_dims
            Number of trailing signal dimensions.
        nav_shape, sig_shape, sync_offset
            As in LiberTEM; see :func:`dataflow.sources.make_layout`.
        num_partitions, partition_bytes, min_partitions, dims
            As for ``npy``.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        ImportError
            If RosettaSciIO or h5py is not installed
            (``pip install 'dataflow-udf[microscopy]'``).
        DataSetException
            If the file holds no NCEM data set (a Velox file, say), several and no
            ``dataset_path``, or ``dataset_path`` is not one of them.
        """
        p = as_path(path, "emd", "EMD file")
        check_file(p, "emd")
        if dataset_path is not None and not isinstance(dataset_path, str):
            raise TypeError(f"dataset_path is {dataset_path!r}; expected a str such as 'a/data'")
        emd = import_rsciio("emd", "emd")
        found = find_datasets(p)
        if not found:
            raise DataSetException(
                f"{str(p)!r} holds no NCEM EMD data set (a group with emd_group_type = 1 and "
                "a 'data' dataset); Velox EMD files are not read by the emd adapter"
            )
        if dataset_path is None:
            if len(found) > 1:
                raise DataSetException(
                    f"{str(p)!r} holds {len(found)} data sets {found!r}; pass dataset_path= "
                    "to choose one"
                )
            dataset_path = found[0]
        key = dataset_path.strip("/")
        if key not in found:
            raise DataSetException(
                f"dataset_path is {dataset_path!r}; {str(p)!r} holds the data sets {found!r}"
            )
        info = emd.file_reader(str(p), lazy=True, dataset_path=key, stack_group=False)[0]
        array = info["data"]
        try:
            shape = tuple(int(s) for s in array.shape)
            dtype = np.dtype(array.dtype).newbyteorder("=")
            file_axes = axes_from_rsciio(info["axes"])
        finally:
            _close_h5(array)
        import h5py

        with h5py.File(p, "r") as f:
            stored = tuple(f[key].shape)
            group = f[key].parent
            in_order = key.endswith("/datacube") or "dim0" in group
        transposed = not in_order
        if stored != (shape[::-1] if transposed else shape):
            raise DataSetException(
                f"{str(p)!r}: {key!r} has shape {stored}; RosettaSciIO reads it as {shape}, "
                "which this adapter cannot map to frames"
            )
        sig_dims = check_sig_dims(sig_dims, shape, repr(f"{p}:{key}"))
        raw_nav, raw_sig = shape[:-sig_dims], shape[-sig_dims:]
        layout = make_layout(
            shape,
            sig_dims,
            nav_shape=nav_shape,
            sig_shape=sig_shape,
            sync_offset=sync_offset,
            source=repr(f"{p}:{key}"),
        )
        axes = file_axes if [a.size for a in file_axes] == list(shape) else None
        dims_, coords, attrs = labels(axes, layout, raw_nav, raw_sig, dims=dims, use_names=True)
        attrs["emd"] = {"dataset_path": key, "title": info["metadata"]["General"].get("title")}
        reader = _HDF5FrameReader(
            layout=layout,
            dtype=dtype,
            path=str(p),
            dataset=key,
            transposed=transposed,
            raw_shape=shape,
            sig_dims=sig_dims,
        )
        return reader_dataset(
            reader,
            name="emd",
            identity=(file_token([p]), key),
            num_partitions=num_partitions,
            partition_bytes=partition_bytes,
            min_partitions=min_partitions,
            dims=dims_,
            coords=coords,
            attrs=attrs,
        )
