"""The ``mib`` adapter: Quantum Detectors Merlin ``.mib`` files, read frame by frame.

A MIB file is a run of frames, each a text header (comma-separated ASCII fields,
padded to the size its third field gives) followed by the pixels. The fields used
here are: 0 ``MQ1``; 1 the frame's sequence number; 2 the header size in bytes;
3 the number of chips; 4 the width and 5 the height in pixels; 6 the pixel type;
7 the sensor layout (``1x1``, ``2x2``, ...); and, last, the counter depth in bits.

Pixel types:

- ``U08``, ``U16``, ``U32``: big-endian unsigned integers (1 or 6-bit, 12-bit and
  24-bit counters), already assembled into the detector image; any sensor layout.
- ``R64`` ("raw"): the pixels of one chip packed into big-endian 64-bit words, the
  first pixel in a word's least significant bits: 1-bit (64 pixels a word), 6-bit
  (8), 12-bit (4). A 24-bit raw frame is two such 12-bit frames, the first holding
  the high 12 bits; its header gives twice the real width. Only single-chip raw
  files are read; raw quad (2x2) files, whose chips need reassembling, are refused.

Opening reads the first header of each file (and the ``.hdr`` acquisition header,
for the scan shape). Each partition task opens its files by path and reads its frames
with headers in one ``readinto`` per file, so the graph holds paths and offsets only.

Frames come out as stored, like LiberTEM's reader. RosettaSciIO's reader
(``rsciio.quantumdetector``) flips the detector's y axis, reads every frame header at
load to guess the scan shape, and does not read ``R64`` files, so it is not used here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dataflow.adapters._rsciio import (
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
    merge_nav_shape,
    reader_dataset,
)
from dataflow.sources.adapter import Adapter

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence

__all__ = ["MIBAdapter", "MIBHeader", "read_hdr", "read_mib_header"]

_PIXEL_TYPES = {"U08": "u1", "U16": "u2", "U32": "u4"}
_RAW_DTYPES = {1: "u1", 6: "u1", 12: "u2", 24: "u4"}


@dataclass(frozen=True)
class MIBHeader:
    """What the first frame header of a ``.mib`` file says.

    Attributes
    ----------
    header_bytes
        Bytes of each frame's header.
    sequence
        The first frame's sequence number.
    chips, layout
        Number of chips and sensor layout (``"1x1"``, ``"2x2"``, ...).
    pixel_type
        ``"U08"``, ``"U16"``, ``"U32"`` or ``"R64"``.
    bit_depth
        Counter depth: 1, 6, 12 or 24.
    sig_shape
        ``(height, width)`` of a frame as read.
    frame_bytes
        Bytes of a frame's pixels.
    dtype
        The native dtype frames are read into.
    """

    header_bytes: int
    sequence: int
    chips: int
    layout: str
    pixel_type: str
    bit_depth: int
    sig_shape: tuple[int, int]
    frame_bytes: int
    dtype: np.dtype

    @property
    def record_bytes(self) -> int:
        """Bytes of one frame with its header."""
        return self.header_bytes + self.frame_bytes


def read_mib_header(path: str | os.PathLike[str]) -> MIBHeader:
    """Parse the first frame header of a ``.mib`` file.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DataSetException
        If the file does not start with a MIB header, or uses a pixel type or
        layout this reader does not decode.

    Examples
    --------
    >>> p = tmp_path / "one.mib"
    >>> head = b"MQ1,000001,00384,01,0004,0002,U16,   1x1,01,ts,0,0,0,0,12,"
    >>> _ = p.write_bytes(head.ljust(384, b"\\0") + bytes(16))
    >>> h = read_mib_header(p)
    >>> h.sig_shape, h.dtype, h.bit_depth
    ((2, 4), dtype('uint16'), 12)
    """
    p = as_path(path, "mib", "Merlin .mib file")
    check_file(p, "mib")
    with p.open("rb") as f:
        start = f.read(64)
        fields = start.decode("ascii", "replace").split(",")
        if fields[0] != "MQ1" or len(fields) < 3 or not fields[2].strip().isdigit():
            raise DataSetException(
                f"{str(p)!r} is not a Merlin .mib file: it starts with {start[:16]!r}, "
                "expected a frame header 'MQ1,<sequence>,<header size>,...'"
            )
        header_bytes = int(fields[2])
        f.seek(0)
        raw = f.read(header_bytes)
    if len(raw) < header_bytes:
        raise DataSetException(
            f"{str(p)!r} has {len(raw)} bytes; its first frame header alone is "
            f"{header_bytes} bytes. The file is truncated"
        )
    parts = [s.strip() for s in raw.decode("ascii", "replace").split(",")]
    parts = [s for s in parts if s.strip("\x00 ")]
    try:
        sequence, chips = int(parts[1]), int(parts[3])
        width, height = int(parts[4]), int(parts[5])
        pixel_type = parts[6].upper()
        layout = parts[7]
        bit_depth = int(parts[-1])
    except (IndexError, ValueError) as e:
        raise DataSetException(f"{str(p)!r} has a broken MIB frame header: {e}") from e
    if pixel_type in _PIXEL_TYPES:
        dtype = np.dtype(_PIXEL_TYPES[pixel_type])
        sig = (height, width)
        frame_bytes = width * height * dtype.itemsize
    elif pixel_type == "R64":
        if bit_depth not in _RAW_DTYPES:
            raise DataSetException(
                f"{str(p)!r} is a raw (R64) MIB file of counter depth {bit_depth}; "
                f"expected one of {sorted(_RAW_DTYPES)}"
            )
        if chips != 1:
            raise DataSetException(
                f"{str(p)!r} is a raw (R64) MIB file from {chips} chips (layout {layout!r}); "
                "the mib adapter reads raw files from single chips only. Save quad data "
                "as U08, U16 or U32 in the Merlin software"
            )
        dtype = np.dtype(_RAW_DTYPES[bit_depth])
        if bit_depth == 24:  # two 12-bit frames side by side in the header's width
            width //= 2
        sig = (height, width)
        n = width * height
        frame_bytes = {1: n // 8, 6: n, 12: 2 * n, 24: 4 * n}[bit_depth]
        if frame_bytes % 8 or (bit_depth == 1 and n % 64):
            raise DataSetException(
                f"{str(p)!r} is a raw (R64) MIB file with {width}x{height} pixels; raw "
                "frames are whole 64-bit words, so that size cannot be decoded"
            )
    else:
        raise DataSetException(
            f"{str(p)!r} has pixel type {parts[6]!r}; expected U08, U16, U32 or R64"
        )
    return MIBHeader(
        header_bytes=header_bytes,
        sequence=sequence,
        chips=chips,
        layout=layout,
        pixel_type=pixel_type,
        bit_depth=bit_depth,
        sig_shape=sig,
        frame_bytes=frame_bytes,
        dtype=dtype,
    )


def read_hdr(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``key: value`` lines of a Merlin ``.hdr`` acquisition header.

    Examples
    --------
    >>> p = tmp_path / "a.hdr"
    >>> _ = p.write_text("HDR,\\t\\nFrames in Acquisition (Number):\\t12\\nEnd\\t")
    >>> read_hdr(p)
    {'Frames in Acquisition (Number)': '12'}
    """
    text = Path(path).read_text(encoding="utf-8", errors="ignore")
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith(("HDR", "End")) or "\t" not in line:
            continue
        key, value = line.split("\t", 1)
        out[key.strip().rstrip(":")] = value.strip()
    return out


def _nav_shape_from_hdr(hdr: dict[str, str]) -> tuple[int, ...] | None:
    """The scan shape an acquisition header gives, as LiberTEM reads it; None if none."""
    try:
        if "ScanX" in hdr and "ScanY" in hdr:
            return (int(hdr["ScanY"]), int(hdr["ScanX"]))
        frames = int(hdr["Frames in Acquisition (Number)"])
        per_trigger = int(hdr["Frames per Trigger (Number)"])
    except (KeyError, ValueError):
        return None
    if frames < 1:
        return None
    if per_trigger < 1:
        return (frames,)
    return (frames // per_trigger, per_trigger)


def _mib_files(p: Path, disable_glob: bool) -> list[Path]:
    """The .mib files of a data set named by ``p`` (a .mib file or the .hdr file)."""
    suffix = p.suffix.lower()
    check_file(p, "mib .hdr" if suffix == ".hdr" else "mib")
    if suffix not in (".mib", ".hdr"):
        raise DataSetException(
            f"path is {str(p)!r}; expected a .mib file or the .hdr file of a MIB data set"
        )
    if suffix == ".mib":
        if disable_glob:
            return [p]
        prefix = re.sub(r"[0-9]+$", "", p.stem)
    else:
        prefix = p.stem
    found = [
        q
        for q in p.parent.iterdir()
        if q.suffix.lower() == ".mib" and q.stem.startswith(prefix) and q.is_file()
    ]
    if not found:
        raise FileNotFoundError(f"no .mib files named {str(p.parent / prefix)!r}*.mib")
    return found


@dataclass(frozen=True)
class _MIBReader(OffsetFrameReader):
    pixel_type: str = "U16"
    bit_depth: int = 12

    def decode(self, pixels: np.ndarray) -> np.ndarray:
        n = len(pixels)
        if self.pixel_type != "R64":
            values = pixels.view(self.file_dtype).reshape((n, *self.raw_sig))
            return values.astype(self.dtype)
        # R64: big-endian 64-bit words, first pixel in the least significant bits;
        # reversing each word's bytes puts the pixels in order, little-endian
        words = np.ascontiguousarray(pixels.reshape(n, -1, 8)[:, :, ::-1]).reshape(n, -1)
        if self.bit_depth == 1:
            values = np.unpackbits(words, axis=1, bitorder="little")
        elif self.bit_depth == 6:
            values = words
        elif self.bit_depth == 12:
            values = words.view("<u2")
        else:  # 24: high 12 bits in the first half-frame, low 12 in the second
            half = words.view("<u2").astype(np.uint32)
            size = math.prod(self.raw_sig)
            values = (half[:, :size] << 12) | half[:, size:]
        return values.reshape((n, *self.raw_sig)).astype(self.dtype, copy=False)


class MIBAdapter(Adapter):
    """The ``mib`` source: Quantum Detectors Merlin ``.mib`` files.

    Examples
    --------
    >>> ds = ctx.load("mib", path=mib_path, nav_shape=(4, 6))  # doctest: +SKIP
    """

    name = "mib"
    description = "Quantum Detectors Merlin .mib files (U08/U16/U32 and single-chip R64)"
    url = "https://quantumdetectors.com/products/merlinem/"
    extensions = (".mib", ".hdr")

    @staticmethod
    def open(
        path: str | os.PathLike[str] | None = None,
        *,
        tileshape: Sequence[int] | None = None,
        scan_size: Sequence[int] | None = None,
        disable_glob: bool = False,
        nav_shape: Sequence[int] | None = None,
        sig_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        num_partitions: int | None = None,
        partition_bytes: int = DEFAULT_PARTITION_BYTES,
        min_partitions: int = 1,
        dims: Sequence[str] | None = None,
    ) -> DataSet:
        """Open a MIB data set; only the first header of each file is read.

        Parameters
        ----------
        path
            One ``.mib`` file or the ``.hdr`` file. As in LiberTEM, the data set is
            every ``.mib`` file in the folder whose name starts like ``path``'s without
            its trailing digits (``scan1.mib`` finds ``scan1.mib``, ``scan2.mib``, ...),
            in the order of their first frames' sequence numbers.
        tileshape
            Frames per tile (its first entry), as for ``memory``.
        scan_size
            Old name of ``nav_shape``.
        disable_glob
            Read only the file ``path`` names.
        nav_shape, sig_shape, sync_offset
            As in LiberTEM; see :func:`dataflow.sources.make_layout`. ``nav_shape``
            defaults to the ``.hdr`` file's scan shape (``<path without extension>.hdr``
            if it exists), else one navigation axis over all frames.
        num_partitions, partition_bytes, min_partitions, dims
            As for ``npy``.

        Raises
        ------
        FileNotFoundError
            If ``path`` or its ``.mib`` files do not exist.
        DataSetException
            If a file is not a MIB file, is truncated (its size is not a whole number
            of frames), or differs from the first in header or frame size.
        """
        p = as_path(path, "mib", "Merlin .mib or .hdr file")
        if not isinstance(disable_glob, bool):
            raise TypeError(f"disable_glob is {disable_glob!r}; expected True or False")
        nav_shape = merge_nav_shape(nav_shape, scan_size)
        files = _mib_files(p, disable_glob)
        headers = {q: read_mib_header(q) for q in files}
        files.sort(key=lambda q: (headers[q].sequence, q.name))
        first = headers[files[0]]
        entries = []
        n_raw = 0
        for q in files:
            h = headers[q]
            if (h.record_bytes, h.sig_shape, h.dtype, h.pixel_type) != (
                first.record_bytes,
                first.sig_shape,
                first.dtype,
                first.pixel_type,
            ):
                raise DataSetException(
                    f"{str(q)!r} holds {h.pixel_type} frames of shape {h.sig_shape} with "
                    f"{h.header_bytes}-byte headers; {str(files[0])!r} holds {first.pixel_type} "
                    f"frames of shape {first.sig_shape} with {first.header_bytes}-byte headers. "
                    "Pass disable_glob=True to read one file"
                )
            size = q.stat().st_size
            count, rest = divmod(size, h.record_bytes)
            if rest or not count:
                raise DataSetException(
                    f"{str(q)!r} has {size} bytes; MIB frames of {h.record_bytes} bytes "
                    f"({h.header_bytes} header + {h.frame_bytes} pixels) need a multiple of "
                    f"{h.record_bytes}: {count} whole frames are {count * h.record_bytes} bytes, "
                    f"{count + 1} are {(count + 1) * h.record_bytes}. The file is truncated"
                )
            entries.append((str(q), n_raw, count, 0))
            n_raw += count
        if nav_shape is None:
            hdr = p if p.suffix.lower() == ".hdr" else p.with_suffix(".hdr")
            if hdr.is_file():
                nav_shape = _nav_shape_from_hdr(read_hdr(hdr))
        layout = make_layout(
            (n_raw, *first.sig_shape),
            2,
            nav_shape=nav_shape,
            sig_shape=sig_shape,
            sync_offset=sync_offset,
            source=repr(str(p)),
        )
        reader = _MIBReader(
            layout=layout,
            dtype=first.dtype,
            files=tuple(entries),
            record_bytes=first.record_bytes,
            skip=first.header_bytes,
            frame_bytes=first.frame_bytes,
            file_dtype=np.dtype(first.dtype).newbyteorder(">"),
            raw_sig=first.sig_shape,
            pixel_type=first.pixel_type,
            bit_depth=first.bit_depth,
        )
        dims_, coords, attrs = labels(None, layout, (n_raw,), first.sig_shape, dims=dims)
        attrs["mib"] = {
            "pixel_type": first.pixel_type,
            "bit_depth": first.bit_depth,
            "chips": first.chips,
            "layout": first.layout,
            "files": len(files),
        }
        return reader_dataset(
            reader,
            name="mib",
            identity=file_token(files),
            num_partitions=num_partitions,
            partition_bytes=partition_bytes,
            min_partitions=min_partitions,
            dims=dims_,
            coords=coords,
            attrs=attrs,
            tileshape=tileshape,
        )
