"""The ``tvips`` adapter: TVIPS recorder streams (``*_000.tvips``, ``*_001.tvips``, ...).

The first file starts with a 256-byte series header (little-endian ``u4`` fields:
header size, version, width, height, bits per pixel, camera offsets and binning,
pixel size, high tension, magnification and, in version 2, the bytes of each frame
header). Then, in that file and in each further one, come frame records: a frame
header (12 bytes in version 1) and ``width * height`` pixels of 8 or 16 bits.
Version-2 frame headers hold, among others, the mode (1 imaging, 2 diffraction)
at byte 24 and, in recorders that write them, the scan position (``float32``
``Scan_x``, ``Scan_y``) at bytes 68 and 72.

Opening reads the series header, the first frame header and, as LiberTEM does when
``sync_offset`` or ``nav_shape`` is not given, the scan positions of up to 4096
frame headers to find where the scan starts and how wide it is. The detector
calibration is what RosettaSciIO's ``rsciio.tvips`` reader reports (the pixel size
in nm, or 1/nm for diffraction, and the camera offsets); the scan has none.
RosettaSciIO's reader is not called at load: it maps every file and builds an
indexing graph over all frames, and reads every frame header when no scan shape is
given. Each partition task opens its files by path and reads its frame records with
one ``readinto`` per file.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from dataflow.adapters._rsciio import (
    Axis,
    OffsetFrameReader,
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
    reader_dataset,
)
from dataflow.sources.adapter import Adapter

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence
    from pathlib import Path

__all__ = ["TVIPSAdapter", "detect_scan", "read_series_header"]

SERIES_HEADER_BYTES = 256
#: frames whose headers are searched for the start of the scan
MAX_SCAN_SEARCH = 4096

_SERIES = np.dtype(
    [
        (name, "<u4")
        for name in (
            "size",
            "version",
            "dimx",
            "dimy",
            "bitsperpixel",
            "offsetx",
            "offsety",
            "binx",
            "biny",
            "pixelsize",
            "ht",
            "magtotal",
            "frameheaderbytes",
        )
    ]
)


def read_series_header(path: str | os.PathLike[str]) -> dict[str, int]:
    """The series header of a ``*_000.tvips`` file, with ``frameheaderbytes`` resolved.

    Raises
    ------
    DataSetException
        If the header's size, version or bits per pixel are not TVIPS's.
    """
    p = as_path(path, "tvips", "TVIPS file")
    check_file(p, "tvips")
    with p.open("rb") as f:
        raw = f.read(_SERIES.itemsize)
    if len(raw) < _SERIES.itemsize:
        raise DataSetException(
            f"{str(p)!r} has {len(raw)} bytes; a TVIPS series header is {SERIES_HEADER_BYTES}"
        )
    rec = np.frombuffer(raw, dtype=_SERIES, count=1)[0]
    h = {name: int(rec[name]) for name in _SERIES.names or ()}
    if h["size"] != SERIES_HEADER_BYTES or h["version"] not in (1, 2):
        raise DataSetException(
            f"{str(p)!r} is not a TVIPS file: its header gives size {h['size']} and version "
            f"{h['version']}; expected size {SERIES_HEADER_BYTES} and version 1 or 2"
        )
    if h["bitsperpixel"] not in (8, 16):
        raise DataSetException(
            f"{str(p)!r} has {h['bitsperpixel']} bits per pixel; expected 8 or 16"
        )
    if h["version"] == 1:
        h["frameheaderbytes"] = 12
    return h


def _files(p: Path) -> list[Path]:
    """The files of the series ``p`` belongs to, ``_000`` first."""
    match = re.fullmatch(r"(.*_)(\d{3})\.tvips", p.name, flags=re.IGNORECASE)
    if match is None:
        raise DataSetException(
            f"path is {str(p)!r}; expected a file of a TVIPS series named like scan_000.tvips"
        )
    stem = match.group(1)
    found = {}
    for q in p.parent.iterdir():
        m = re.fullmatch(re.escape(stem) + r"(\d{3})\.tvips", q.name, flags=re.IGNORECASE)
        if m is not None and q.is_file():
            found[int(m.group(1))] = q
    if 0 not in found:
        raise FileNotFoundError(
            f"no first file {stem}000.tvips beside {str(p)!r}; it holds the series header"
        )
    missing = [i for i in range(max(found) + 1) if i not in found]
    if missing:
        raise DataSetException(
            f"the TVIPS series {str(p.parent / stem)!r}*.tvips lacks file(s) "
            f"{', '.join(f'{i:03d}' for i in missing)}"
        )
    return [found[i] for i in sorted(found)]


def detect_scan(
    path: str | os.PathLike[str], header: dict[str, int], n_frames: int
) -> tuple[int, tuple[int, ...]] | None:
    """``(sync_offset, nav_shape)`` from the scan positions in the frame headers.

    As LiberTEM does: the scan starts one frame before the first position ``(0, 1)``
    that follows a ``(0, 0)``; its width is one more than the largest ``x`` before
    ``x`` falls back. Only the first :data:`MAX_SCAN_SEARCH` frames are searched.
    Returns None for files without scan positions (version 1, short frame headers)
    or when no scan start is found.
    """
    if header["version"] != 2 or header["frameheaderbytes"] < 76:
        return None
    record = header["frameheaderbytes"] + header["dimx"] * header["dimy"] * (
        header["bitsperpixel"] // 8
    )
    count = min(n_frames, MAX_SCAN_SEARCH)
    positions = []
    with open(path, "rb") as f:
        for i in range(count):
            f.seek(SERIES_HEADER_BYTES + i * record + 68)
            raw = f.read(8)
            if len(raw) < 8:
                break
            x, y = np.frombuffer(raw, "<f4")
            positions.append((int(y), int(x)))
    start = None
    for i in range(1, len(positions)):
        if positions[i - 1] == (0, 0) and positions[i] == (0, 1):
            start = i - 1
            break
    if start is None:
        return None
    max_x = 0
    for y_x in positions[start:]:
        if y_x[1] < max_x:
            width = max_x + 1
            return start, ((n_frames - start) // width, width)
        max_x = max(max_x, y_x[1])
    return start, (n_frames,)


class TVIPSAdapter(Adapter):
    """The ``tvips`` source: a TVIPS recorder series.

    Examples
    --------
    >>> ds = ctx.load("tvips", path="scan_000.tvips", nav_shape=(32, 32))  # doctest: +SKIP
    """

    name = "tvips"
    description = "TVIPS recorder streams (*_000.tvips, *_001.tvips, ...)"
    url = "https://hyperspy.org/rosettasciio/user_guide/supported_formats/tvips.html"
    extensions = (".tvips",)

    @staticmethod
    def open(
        path: str | os.PathLike[str] | None = None,
        *,
        nav_shape: Sequence[int] | None = None,
        sig_shape: Sequence[int] | None = None,
        sync_offset: int | None = None,
        num_partitions: int | None = None,
        partition_bytes: int = DEFAULT_PARTITION_BYTES,
        min_partitions: int = 1,
        dims: Sequence[str] | None = None,
    ) -> DataSet:
        """Open a TVIPS series; only headers are read.

        Parameters
        ----------
        path
            Any file of the series (``name_000.tvips``, ``name_001.tvips``, ...).
        nav_shape, sig_shape, sync_offset
            As in LiberTEM; see :func:`dataflow.sources.make_layout`. ``sync_offset``
            and ``nav_shape`` default to what the frame headers' scan positions give
            (see :func:`detect_scan`), else 0 and one axis over all frames.
        num_partitions, partition_bytes, min_partitions, dims
            As for ``npy``.

        Raises
        ------
        FileNotFoundError
            If ``path`` or the series' first file does not exist.
        DataSetException
            If a file is not TVIPS, is truncated (not a whole number of frame
            records), or the series lacks a file.
        """
        p = as_path(path, "tvips", "TVIPS file")
        check_file(p, "tvips")
        files = _files(p)
        h = read_series_header(files[0])
        dtype = np.dtype("u1" if h["bitsperpixel"] == 8 else "<u2")
        raw_sig = (h["dimy"], h["dimx"])
        frame_bytes = h["dimx"] * h["dimy"] * dtype.itemsize
        record = h["frameheaderbytes"] + frame_bytes
        if not frame_bytes:
            raise DataSetException(
                f"{str(files[0])!r} has a header with frames of {h['dimy']} x {h['dimx']} pixels"
            )
        entries = []
        n_raw = 0
        for i, q in enumerate(files):
            start = SERIES_HEADER_BYTES if i == 0 else 0
            size = q.stat().st_size
            count, rest = divmod(size - start, record)
            if rest or count < 0:
                raise DataSetException(
                    f"{str(q)!r} has {size} bytes; TVIPS frame records of {record} bytes "
                    f"({h['frameheaderbytes']} header + {frame_bytes} pixels) after {start} "
                    f"header bytes need {start + count * record} or "
                    f"{start + (count + 1) * record} bytes. The file is truncated"
                )
            entries.append((str(q), n_raw, count, start))
            n_raw += count
        if not n_raw:
            raise DataSetException(f"the TVIPS series of {str(p)!r} holds no frames")
        if sync_offset is None or nav_shape is None:
            found = detect_scan(files[0], h, entries[0][2])
            if sync_offset is None:
                sync_offset = found[0] if found else 0
            if nav_shape is None and found is not None:
                nav_shape = found[1]
        layout = make_layout(
            (n_raw, *raw_sig),
            2,
            nav_shape=nav_shape,
            sig_shape=sig_shape,
            sync_offset=sync_offset,
            source=repr(str(p)),
        )
        mode = _mode(files[0], h) if h["version"] == 2 else 0
        unit = "1/nm" if mode == 2 else "nm"
        scale = float(h["pixelsize"])
        if scale > 0:
            sig_axes = [
                Axis("dy", raw_sig[0], scale, float(h["offsety"]), unit),
                Axis("dx", raw_sig[1], scale, float(h["offsetx"]), unit),
            ]
        else:
            sig_axes = [Axis("dy", raw_sig[0]), Axis("dx", raw_sig[1])]
        axes = [Axis("frame", n_raw), *sig_axes]
        dims_, coords, attrs = labels(axes, layout, (n_raw,), raw_sig, dims=dims)
        attrs["tvips"] = {
            "version": h["version"],
            "mode": mode,
            "high_tension": h["ht"],
            "magnification": h["magtotal"],
            "binning": (h["biny"], h["binx"]),
            "files": len(files),
        }
        reader = OffsetFrameReader(
            layout=layout,
            dtype=dtype.newbyteorder("="),
            files=tuple(entries),
            record_bytes=record,
            skip=h["frameheaderbytes"],
            frame_bytes=frame_bytes,
            file_dtype=dtype,
            raw_sig=raw_sig,
        )
        return reader_dataset(
            reader,
            name="tvips",
            identity=file_token(files),
            num_partitions=num_partitions,
            partition_bytes=partition_bytes,
            min_partitions=min_partitions,
            dims=dims_,
            coords=coords,
            attrs=attrs,
        )


def _mode(path: Path, header: dict[str, int]) -> int:
    """The first frame header's mode (1 imaging, 2 diffraction); 0 if it has none."""
    if header["frameheaderbytes"] < 28:
        return 0
    with open(path, "rb") as f:
        f.seek(SERIES_HEADER_BYTES + 24)
        raw = f.read(4)
    return int(np.frombuffer(raw, "<u4")[0]) if len(raw) == 4 else 0
