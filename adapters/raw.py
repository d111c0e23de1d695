"""The ``raw`` adapter: a headerless file of C-ordered frames, as LiberTEM's ``RawFileDataSet``.

Nothing in the file describes it, so ``dtype``, ``nav_shape`` and ``sig_shape`` come
from the caller (``scan_size`` and ``detector_size`` are LiberTEM's older names) and
``ctx.load("auto", ...)`` cannot choose this adapter. Opening reads no data, only the
file size: the file holds ``file_size // frame_bytes`` frames, which may be more or
fewer than ``nav_shape`` asks for (missing frames are zeros); a partial frame at the
end is an error.

Reading goes through :class:`dataflow.adapters.npy.BinaryFrameReader`: partition
tasks get read-only views of a memory map of their frame ranges, runs with a ROI read
only the selected frames.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from dataflow.adapters.npy import BinaryFrameReader
from dataflow.errors import DataSetException
from dataflow.sources import (
    DEFAULT_PARTITION_BYTES,
    Adapter,
    DataSet,
    as_path,
    check_file,
    check_shape,
    file_token,
    make_layout,
    reader_dataset,
    warn_ignored,
)

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence

__all__ = ["RawAdapter"]

_NUMERIC_KINDS = "biufc"


def _as_dtype(dtype: Any) -> np.dtype:
    """``dtype`` as a numeric NumPy dtype, or a TypeError naming what was given."""
    if dtype is None:
        raise TypeError(
            "ctx.load('raw', ...) needs dtype=, the dtype of the stored items, such as "
            "'uint16' or '>f4' (a raw file does not record it)"
        )
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"dtype is {dtype!r}, which is not a NumPy dtype ({e}); expected e.g. 'uint16', "
            "'float32' or '>u2'"
        ) from None
    if dt.kind not in _NUMERIC_KINDS or dt.hasobject or dt.itemsize == 0:
        raise TypeError(
            f"dtype is {dtype!r} ({dt}); expected a numeric dtype (bool, integer, float or "
            "complex) such as 'uint16' or '>f4'"
        )
    return dt


def _pick(new_name: str, new: Any, old_name: str, old: Any) -> Any:
    """A keyword that has an older LiberTEM name: at most one of the two may be given."""
    if new is not None and old is not None:
        raise ValueError(
            f"{new_name} and {old_name} are both given ({new!r}, {old!r}); {old_name} is the "
            f"older name of {new_name}: pass only {new_name}"
        )
    return new if new is not None else old


def _frame_shapes(
    sig_shape: Any, detector_size_raw: Any, crop_detector_to: Any
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(stored, dataset)`` frame shapes from ``sig_shape`` or the crop keywords."""
    if crop_detector_to is None and detector_size_raw is None:
        if sig_shape is None:
            raise TypeError(
                "ctx.load('raw', ...) needs sig_shape=, the shape of one frame, such as "
                "(256, 256) (detector_size= is its older name)"
            )
        sig = check_shape("sig_shape", sig_shape)
        return sig, sig
    if crop_detector_to is None or detector_size_raw is None:
        given = "crop_detector_to" if crop_detector_to is not None else "detector_size_raw"
        raise TypeError(
            f"{given} is given alone; pass detector_size_raw= (the stored frame shape) and "
            "crop_detector_to= (the part of it to keep) together, or sig_shape= alone"
        )
    if sig_shape is not None:
        raise ValueError(
            f"sig_shape ({sig_shape!r}) and crop_detector_to ({crop_detector_to!r}) both give "
            "the frame shape; pass one of them"
        )
    stored = check_shape("detector_size_raw", detector_size_raw)
    crop = check_shape("crop_detector_to", crop_detector_to)
    if len(crop) != len(stored) or any(c > s for c, s in zip(crop, stored, strict=True)):
        raise ValueError(
            f"crop_detector_to is {crop}; it must fit inside detector_size_raw {stored} "
            "(as many dimensions, none larger)"
        )
    return stored, crop


class RawAdapter(Adapter):
    """The ``raw`` source: a headerless file of C-ordered frames.

    Examples
    --------
    >>> p = tmp_path / "scan.raw"
    >>> np.ones((4, 6, 8, 8), dtype="uint16").tofile(p)
    >>> ds = ctx.load("raw", path=p, dtype="uint16", nav_shape=(4, 6), sig_shape=(8, 8))
    >>> tuple(ds.shape), ds.dtype
    ((4, 6, 8, 8), dtype('uint16'))
    """

    name = "raw"
    description = "a raw binary file of C-ordered frames without a header (dtype and shapes given)"
    url = "https://libertem.github.io/LiberTEM/reference/dataset.html"
    extensions = (".raw", ".bin")

    @staticmethod
    def guess_can_open(path: Any) -> bool:
        """Always False: a raw file says nothing about itself, so it needs explicit keywords.

        Examples
        --------
        >>> RawAdapter.guess_can_open("scan.raw")
        False
        """
        return False

    @staticmethod
    def open(
        path: str | os.PathLike[str] | None = None,
        dtype: Any = None,
        *,
        scan_size: Sequence[int] | None = None,
        detector_size: Sequence[int] | None = None,
        enable_direct: bool = False,
        detector_size_raw: Sequence[int] | None = None,
        crop_detector_to: Sequence[int] | None = None,
        tileshape: Sequence[int] | None = None,
        nav_shape: Sequence[int] | None = None,
        sig_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        io_backend: Any = None,
        num_partitions: int | None = None,
        partition_bytes: int = DEFAULT_PARTITION_BYTES,
        min_partitions: int = 1,
        dims: Sequence[str] | None = None,
    ) -> DataSet:
        """Open a raw binary file as a DataSet; only its size is read.

        Parameters
        ----------
        path
            The file: frames of ``sig_shape`` items of ``dtype``, C order, no header.
        dtype
            dtype of the stored items, with byte order if not native (``">u2"``).
        nav_shape
            Navigation shape, such as ``(scan_y, scan_x)``. It may ask for fewer frames
            than the file holds (the rest is not read) or more (missing frames are zeros).
        sig_shape
            Shape of one frame, such as ``(det_y, det_x)``.
        scan_size, detector_size
            Older names of ``nav_shape`` and ``sig_shape``; pass one name of each.
        detector_size_raw, crop_detector_to
            Frames are stored with shape ``detector_size_raw``; the dataset keeps the
            part ``crop_detector_to`` from each frame's first pixel (instead of
            ``sig_shape``).
        sync_offset
            Dataset frame ``i`` is stored frame ``i + sync_offset``: positive skips
            frames at the start, negative inserts blank frames.
        tileshape
            LiberTEM's tile shape: tiles of ``tileshape[0]`` frames.
        enable_direct, io_backend
            Accepted for LiberTEM compatibility; values other than the defaults have
            no effect and give a warning.
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
            Partitions on frame ranges; runs with a ROI read only the selected frames.

        Raises
        ------
        TypeError
            If ``dtype``, ``nav_shape`` or ``sig_shape`` is missing or ``dtype`` is not a
            numeric NumPy dtype.
        FileNotFoundError
            If ``path`` does not exist.
        DataSetException
            If the file size is not a whole number of frames (the message gives the file
            size and the frame size in bytes) or ``sync_offset`` is out of range.

        Notes
        -----
        As LiberTEM's ``RawFileDataSet``, except: bytes after the last whole frame are
        an error (LiberTEM ignores them); ``detector_size_raw`` / ``crop_detector_to``
        crop each stored frame (LiberTEM 0.16 raises unless the two are equal); the old
        names and ``enable_direct``/``tileshape`` give no ``FutureWarning``.
        """
        warn_ignored("raw", enable_direct=(enable_direct, False), io_backend=(io_backend, None))
        p = as_path(path, "raw", "raw binary file")
        dt = _as_dtype(dtype)
        nav_arg = _pick("nav_shape", nav_shape, "scan_size", scan_size)
        sig_arg = _pick("sig_shape", sig_shape, "detector_size", detector_size)
        if nav_arg is None:
            raise TypeError(
                "ctx.load('raw', ...) needs nav_shape=, the scan shape, such as (64, 64) "
                "(scan_size= is its older name)"
            )
        nav = check_shape("nav_shape", nav_arg)
        stored_sig, sig = _frame_shapes(sig_arg, detector_size_raw, crop_detector_to)
        stat = check_file(p, "raw")
        frame_bytes = math.prod(stored_sig) * dt.itemsize
        n_raw, rest = divmod(stat.st_size, frame_bytes)
        if rest or not n_raw:
            raise DataSetException(
                f"{str(p)!r} has {stat.st_size} bytes, which is not a whole number of frames: "
                f"a frame of shape {stored_sig} and dtype {dt} has {frame_bytes} bytes "
                f"({n_raw} whole frames and {rest} bytes over). Check dtype= and sig_shape="
            )
        layout = make_layout(
            (n_raw, *sig),
            len(sig),
            nav_shape=nav,
            sync_offset=sync_offset,
            source=repr(str(p)),
        )
        reader = BinaryFrameReader(str(p), 0, dt, layout, stored_sig_shape=stored_sig)
        return reader_dataset(
            reader,
            name="raw",
            identity=file_token([p]),
            num_partitions=num_partitions,
            partition_bytes=partition_bytes,
            min_partitions=min_partitions,
            dims=dims,
            tileshape=tileshape,
        )
