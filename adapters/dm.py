"""The ``dm`` adapter: Gatan Digital Micrograph ``.dm3``/``.dm4`` files (UNTESTED on real files).

Two forms, as in LiberTEM:

- ``path=``: one file holding a whole data set (a 4D-STEM scan saved by GMS, say);
- ``files=[...]``: a stack of files, one 2D frame each, in the given order.

Opening goes through RosettaSciIO's lazy reader
(``rsciio.digitalmicrograph.file_reader(path, lazy=True)``), which parses the tag
tree without reading pixels. It gives the shape (the ``Dimensions`` tags, x first,
reversed), the dtype, the byte offset and byte order of ``ImageData.Data`` and the
axes (each dimension's ``Origin``, ``Scale`` and ``Units``, with DM's convention
``coordinate = (index - origin) * scale``, already turned into offsets). The pixels are
read as a C-ordered array whose last two dimensions are the frame, which is how GMS 3
stores 4D-STEM data; each partition task opens the file by path and reads its frames
at their offsets. RosettaSciIO's dask array is not used.

No DM3/DM4 file could be built offline for the tests (RosettaSciIO has no DM writer,
and the tag tree of a file GMS would write was not reproduced), so only argument
handling is tested; reading real files is untested. Files whose data is not stored
frame by frame (older "F-ordered" STEMx exports), packed complex and RGB images are
not supported.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from dataflow.adapters._rsciio import (
    Axis,
    OffsetFrameReader,
    axes_from_rsciio,
    import_rsciio,
    labels,
)
from dataflow.errors import DataSetException
from dataflow.sources import (
    DEFAULT_PARTITION_BYTES,
    DataSet,
    as_path,
    check_file,
    file_token,
    make_layout,
    merge_nav_shape,
    reader_dataset,
)
from dataflow.sources.adapter import Adapter

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

__all__ = ["DMAdapter"]


def _images(p: Path) -> list[dict[str, Any]]:
    """RosettaSciIO's image dictionaries of a DM file (thumbnails left out)."""
    dm = import_rsciio("digitalmicrograph", "dm")
    try:
        return dm.file_reader(str(p), lazy=True)
    except Exception as e:  # RosettaSciIO raises many kinds for files it cannot parse
        raise DataSetException(f"{str(p)!r} is not a DM3/DM4 file RosettaSciIO reads: {e}") from e


def _data_location(image: dict[str, Any], p: Path) -> tuple[int, Literal["<", ">"]]:
    """Byte offset and byte order ('<' or '>') of an image's pixels."""
    try:
        data = image["original_metadata"]["ImageList"]["TagGroup0"]["ImageData"]["Data"]
        offset, endian = int(data["offset"]), data["endian"]
    except (KeyError, TypeError) as e:
        raise DataSetException(f"{str(p)!r}: no data offset in its ImageData tags ({e})") from e
    return offset, "<" if endian == "little" else ">"


def _check_dtype(image: dict[str, Any], p: Path) -> np.dtype:
    dtype = np.dtype(image["data"].dtype)
    if dtype.names is not None or dtype.kind not in "uifcb":
        raise DataSetException(f"{str(p)!r} holds {dtype} pixels (RGB); the dm adapter cannot")
    data_type = image["original_metadata"]["ImageList"]["TagGroup0"]["ImageData"].get("DataType")
    if data_type in (5, 27, 28):
        raise DataSetException(f"{str(p)!r} holds packed complex pixels; the dm adapter cannot")
    return dtype


class DMAdapter(Adapter):
    """The ``dm`` source: Gatan ``.dm3``/``.dm4`` files (reading real files is untested).

    Examples
    --------
    >>> ds = ctx.load("dm", path="scan.dm4")  # doctest: +SKIP
    >>> ds = ctx.load("dm", files=["a.dm4", "b.dm4"])  # doctest: +SKIP
    """

    name = "dm"
    description = "Gatan Digital Micrograph .dm3/.dm4 files (one data set, or a stack of frames)"
    url = "https://hyperspy.org/rosettasciio/user_guide/supported_formats/digitalmicrograph.html"
    extensions = (".dm3", ".dm4")

    @staticmethod
    def open(
        path: str | os.PathLike[str] | None = None,
        *,
        files: Sequence[str | os.PathLike[str]] | None = None,
        scan_size: Sequence[int] | None = None,
        same_offset: bool = False,
        nav_shape: Sequence[int] | None = None,
        sig_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        force_c_order: bool = False,
        dataset_index: int | None = None,
        num_partitions: int | None = None,
        partition_bytes: int = DEFAULT_PARTITION_BYTES,
        min_partitions: int = 1,
        dims: Sequence[str] | None = None,
    ) -> DataSet:
        """Open one DM file (``path=``) or a stack of single-frame files (``files=``).

        Parameters
        ----------
        path
            One ``.dm3``/``.dm4`` file holding the data set.
        files
            Files of one 2D frame each, stacked in this order (LiberTEM's stacked form).
        scan_size
            Old name of ``nav_shape``.
        same_offset
            With ``files=``: trust that every file keeps its pixels at the first file's
            offset, and parse only the first file's tags.
        nav_shape, sig_shape, sync_offset
            As in LiberTEM; see :func:`dataflow.sources.make_layout`.
        force_c_order
            Accepted for LiberTEM compatibility; data is always read in C order.
        dataset_index
            With ``path=``: which image of the file (thumbnails left out); by default
            the largest.
        num_partitions, partition_bytes, min_partitions, dims
            As for ``npy``.

        Raises
        ------
        FileNotFoundError
            If a file does not exist.
        DataSetException
            If a file is not DM, is shorter than its tags say, or holds pixels this
            adapter cannot read; stacked files of different frame shapes or dtypes.
        """
        if (path is None) == (files is None):
            raise TypeError(
                "ctx.load('dm', ...) needs either path=<a .dm3/.dm4 file> or "
                "files=[<.dm3/.dm4 files, one frame each>], not both"
                if path is not None
                else "ctx.load('dm', ...) needs path=<a .dm3/.dm4 file> or files=[...]"
            )
        for name, flag in (("same_offset", same_offset), ("force_c_order", force_c_order)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} is {flag!r}; expected True or False")
        nav_shape = merge_nav_shape(nav_shape, scan_size)
        if files is not None:
            return _open_stack(
                files,
                same_offset,
                nav_shape,
                sig_shape,
                sync_offset,
                num_partitions,
                partition_bytes,
                min_partitions,
                dims,
            )
        p = as_path(path, "dm", "DM3/DM4 file")
        check_file(p, "dm")
        if dataset_index is not None and (
            isinstance(dataset_index, bool) or not isinstance(dataset_index, int)
        ):
            raise TypeError(f"dataset_index is {dataset_index!r}; expected an integer")
        images = _images(p)
        if not images:
            raise DataSetException(f"{str(p)!r} holds no image")
        if dataset_index is None:
            dataset_index = max(
                range(len(images)), key=lambda i: math.prod(images[i]["data"].shape)
            )
        if not 0 <= dataset_index < len(images):
            raise ValueError(
                f"dataset_index is {dataset_index}; {str(p)!r} holds {len(images)} images, "
                f"so it must be from 0 to {len(images) - 1}"
            )
        image = images[dataset_index]
        dtype = _check_dtype(image, p)
        shape = tuple(int(s) for s in image["data"].shape)
        if len(shape) < 3:
            raise DataSetException(
                f"{str(p)!r} image {dataset_index} has shape {shape}; a data set needs "
                "navigation and signal dimensions (pass files=[...] to stack 2D images)"
            )
        offset, endian = _data_location(image, p)
        raw_nav, raw_sig = shape[:-2], shape[-2:]
        n_raw = math.prod(raw_nav)
        frame_bytes = math.prod(raw_sig) * dtype.itemsize
        expected = offset + n_raw * frame_bytes
        size = p.stat().st_size
        if size < expected:
            raise DataSetException(
                f"{str(p)!r} has {size} bytes; its tags place {n_raw} frames of {raw_sig} "
                f"{dtype} at byte {offset}, ending at byte {expected}. The file is truncated"
            )
        layout = make_layout(
            shape,
            2,
            nav_shape=nav_shape,
            sig_shape=sig_shape,
            sync_offset=sync_offset,
            source=repr(str(p)),
        )
        file_axes = axes_from_rsciio(image["axes"])
        axes = file_axes if [a.size for a in file_axes] == list(shape) else None
        dims_, coords, attrs = labels(axes, layout, raw_nav, raw_sig, dims=dims)
        reader = OffsetFrameReader(
            layout=layout,
            dtype=dtype.newbyteorder("="),
            files=((str(p), 0, n_raw, offset),),
            record_bytes=frame_bytes,
            skip=0,
            frame_bytes=frame_bytes,
            file_dtype=dtype.newbyteorder(endian),
            raw_sig=raw_sig,
        )
        return reader_dataset(
            reader,
            name="dm",
            identity=(file_token([p]), dataset_index),
            num_partitions=num_partitions,
            partition_bytes=partition_bytes,
            min_partitions=min_partitions,
            dims=dims_,
            coords=coords,
            attrs=attrs,
        )


def _open_stack(
    files: Sequence[str | os.PathLike[str]],
    same_offset: bool,
    nav_shape: Sequence[int] | None,
    sig_shape: Sequence[int] | None,
    sync_offset: int,
    num_partitions: int | None,
    partition_bytes: int,
    min_partitions: int,
    dims: Sequence[str] | None,
) -> DataSet:
    if isinstance(files, (str, os.PathLike)) or not hasattr(files, "__iter__"):
        raise TypeError(f"files is {files!r}; expected a list of .dm3/.dm4 paths")
    paths = [as_path(f, "dm", "DM3/DM4 file") for f in files]
    if not paths:
        raise ValueError("files is empty; expected at least one .dm3/.dm4 file")
    for q in paths:
        check_file(q, "dm")
    first = _images(paths[0])[0]
    dtype = _check_dtype(first, paths[0])
    raw_sig = tuple(int(s) for s in first["data"].shape)
    if len(raw_sig) != 2:
        raise DataSetException(
            f"{str(paths[0])!r} holds an image of shape {raw_sig}; files=[...] stacks 2D images"
        )
    offset, endian = _data_location(first, paths[0])
    frame_bytes = math.prod(raw_sig) * dtype.itemsize
    entries = []
    for i, q in enumerate(paths):
        if i and not same_offset:
            image = _images(q)[0]
            shape = tuple(int(s) for s in image["data"].shape)
            if shape != raw_sig or np.dtype(image["data"].dtype) != dtype:
                raise DataSetException(
                    f"{str(q)!r} holds a {shape} {image['data'].dtype} image; "
                    f"{str(paths[0])!r} holds a {raw_sig} {dtype} one"
                )
            offset, endian = _data_location(image, q)
        size = q.stat().st_size
        if size < offset + frame_bytes:
            raise DataSetException(
                f"{str(q)!r} has {size} bytes; its frame of {frame_bytes} bytes at byte {offset} "
                f"ends at byte {offset + frame_bytes}. The file is truncated"
            )
        entries.append((str(q), i, 1, offset))
    layout = make_layout(
        (len(paths), *raw_sig),
        2,
        nav_shape=nav_shape,
        sig_shape=sig_shape,
        sync_offset=sync_offset,
        source=f"the {len(paths)} files",
    )
    axes = axes_from_rsciio(first["axes"])
    stacked = (
        [Axis("frame", len(paths)), *axes] if [a.size for a in axes] == list(raw_sig) else None
    )
    dims_, coords, attrs = labels(stacked, layout, (len(paths),), raw_sig, dims=dims)
    reader = OffsetFrameReader(
        layout=layout,
        dtype=dtype.newbyteorder("="),
        files=tuple(entries),
        record_bytes=frame_bytes,
        skip=0,
        frame_bytes=frame_bytes,
        file_dtype=dtype.newbyteorder(endian),
        raw_sig=raw_sig,
    )
    return reader_dataset(
        reader,
        name="dm",
        identity=file_token(paths),
        num_partitions=num_partitions,
        partition_bytes=partition_bytes,
        min_partitions=min_partitions,
        dims=dims_,
        coords=coords,
        attrs=attrs,
    )
