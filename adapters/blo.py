"""The ``blo`` adapter: NanoMegas ASTAR blockfiles (``.blo``), read frame by frame.

A blockfile starts with a fixed header (``IMGBLO``, a magic number, two data offsets,
the frame size ``DP_SZ``, the scan size ``NX`` by ``NY``, the scan step ``SX``/``SY``
in nm and the diffraction calibration ``SDP`` in 100 pixels per cm, ...), a note, a
virtual bright-field image of ``NX * NY`` bytes, and at ``Data_offset_2`` the frames:
each a 6-byte header (magic ``0x55AA`` and frame number) and ``DP_SZ**2`` unsigned
bytes. Byte order is given by ``endianess`` (little-endian by default).

Opening reads the header only; it gives the shape and the calibration that
RosettaSciIO's ``rsciio.blockfile`` reader reports (scan axes ``SY``, ``SX`` in nm,
detector axes ``100 / SDP`` in cm). RosettaSciIO's module is not imported to read,
because it imports scikit-image, which only its writer needs. Each partition task
opens the file by path and reads its frames, headers included, with one
``readinto``, so the graph holds a path and offsets only.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

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

__all__ = ["BloAdapter", "read_blo_header"]

#: bytes before each frame's pixels: a magic number (u2) and the frame number (u4)
FRAME_HEADER_BYTES = 6


def _header_dtype(endianess: str) -> np.dtype:
    e = endianess
    return np.dtype(
        [
            ("ID", "S6"),
            ("MAGIC", e + "u2"),
            ("Data_offset_1", e + "u4"),
            ("Data_offset_2", e + "u4"),
            ("UNKNOWN1", e + "u4"),
            ("DP_SZ", e + "u2"),
            ("DP_rotation", e + "u2"),
            ("NX", e + "u2"),
            ("NY", e + "u2"),
            ("Scan_rotation", e + "u2"),
            ("SX", e + "f8"),
            ("SY", e + "f8"),
            ("Beam_energy", e + "u4"),
            ("SDP", e + "u2"),
            ("Camera_length", e + "u4"),
            ("Acquisition_time", e + "f8"),
        ]
    )


def read_blo_header(path: str | os.PathLike[str], endianess: str = "<") -> dict[str, Any]:
    """The fixed header of a blockfile, as a dict of Python numbers.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DataSetException
        If the file does not start with ``IMGBLO`` or its header is cut short.
    """
    if endianess not in ("<", ">"):
        raise ValueError(f"endianess is {endianess!r}; expected '<' (little) or '>' (big)")
    p = as_path(path, "blo", "blockfile")
    check_file(p, "blo")
    dt = _header_dtype(endianess)
    with p.open("rb") as f:
        raw = f.read(dt.itemsize)
    if raw[:6] != b"IMGBLO":
        raise DataSetException(
            f"{str(p)!r} is not a blockfile: it starts with {raw[:8]!r}, expected b'IMGBLO'"
        )
    if len(raw) < dt.itemsize:
        raise DataSetException(
            f"{str(p)!r} has {len(raw)} bytes; a blockfile header alone is {dt.itemsize} bytes"
        )
    rec = np.frombuffer(raw, dtype=dt, count=1)[0]
    return {name: rec[name].item() for name in dt.names or () if name != "ID"}


class BloAdapter(Adapter):
    """The ``blo`` source: an ASTAR blockfile.

    Examples
    --------
    >>> ds = ctx.load("blo", path="scan.blo")  # doctest: +SKIP
    """

    name = "blo"
    description = "NanoMegas ASTAR blockfiles (.blo)"
    url = "https://hyperspy.org/rosettasciio/user_guide/supported_formats/blockfile.html"
    extensions = (".blo",)

    @staticmethod
    def open(
        path: str | os.PathLike[str] | None = None,
        *,
        tileshape: Sequence[int] | None = None,
        endianess: str = "<",
        nav_shape: Sequence[int] | None = None,
        sig_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        num_partitions: int | None = None,
        partition_bytes: int = DEFAULT_PARTITION_BYTES,
        min_partitions: int = 1,
        dims: Sequence[str] | None = None,
    ) -> DataSet:
        """Open a blockfile; only its header is read.

        Parameters
        ----------
        path
            The ``.blo`` file.
        tileshape
            Frames per tile (its first entry), as for ``memory``.
        endianess
            ``"<"`` (little-endian, the default) or ``">"``; LiberTEM's spelling.
        nav_shape, sig_shape, sync_offset
            As in LiberTEM; see :func:`dataflow.sources.make_layout`. By default the
            header's scan ``(NY, NX)`` and frame ``(DP_SZ, DP_SZ)``.
        num_partitions, partition_bytes, min_partitions, dims
            As for ``npy``.

        Returns
        -------
        DataSet
            ``uint8`` frames; ``coords`` in nm (scan) and cm (detector) where the header
            has a calibration, with ``attrs["units"]``.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        DataSetException
            If the file is not a blockfile, or is shorter than its header says.
        """
        p = as_path(path, "blo", "blockfile")
        header = read_blo_header(p, endianess)
        nx, ny, size = header["NX"], header["NY"], header["DP_SZ"]
        if not (nx and ny and size):
            raise DataSetException(
                f"{str(p)!r} has a header with scan {ny} x {nx} and frames of {size} x {size} "
                "pixels; none may be 0. Is endianess right?"
            )
        frame_bytes = size * size
        record = FRAME_HEADER_BYTES + frame_bytes
        offset = header["Data_offset_2"]
        n_raw = nx * ny
        file_size = p.stat().st_size
        expected = offset + n_raw * record
        if file_size < expected:
            raise DataSetException(
                f"{str(p)!r} has {file_size} bytes; its header (scan {ny} x {nx}, frames of "
                f"{size} x {size} bytes from byte {offset}) expects {expected} bytes. The file "
                "is truncated"
            )
        raw_nav, raw_sig = (ny, nx), (size, size)
        layout = make_layout(
            (*raw_nav, *raw_sig),
            2,
            nav_shape=nav_shape,
            sig_shape=sig_shape,
            sync_offset=sync_offset,
            source=repr(str(p)),
        )
        sx, sy, sdp = header["SX"], header["SY"], header["SDP"]
        nav_ok = all(math.isfinite(s) and s > 0 for s in (sx, sy))
        sig_scale = 100.0 / sdp if sdp else 1.0
        axes = [
            Axis("y", ny, sy, 0.0, "nm") if nav_ok else Axis("y", ny),
            Axis("x", nx, sx, 0.0, "nm") if nav_ok else Axis("x", nx),
            Axis("dy", size, sig_scale, 0.0, "cm") if sdp else Axis("dy", size),
            Axis("dx", size, sig_scale, 0.0, "cm") if sdp else Axis("dx", size),
        ]
        dims_, coords, attrs = labels(axes, layout, raw_nav, raw_sig, dims=dims)
        attrs["blo"] = {
            key: header[key]
            for key in ("Beam_energy", "Camera_length", "DP_rotation", "Scan_rotation")
        }
        reader = OffsetFrameReader(
            layout=layout,
            dtype=np.dtype("uint8"),
            files=((str(p), 0, n_raw, offset),),
            record_bytes=record,
            skip=FRAME_HEADER_BYTES,
            frame_bytes=frame_bytes,
            file_dtype=np.dtype("uint8"),
            raw_sig=raw_sig,
        )
        return reader_dataset(
            reader,
            name="blo",
            identity=(file_token([p]), endianess),
            num_partitions=num_partitions,
            partition_bytes=partition_bytes,
            min_partitions=min_partitions,
            dims=dims_,
            coords=coords,
            attrs=attrs,
            tileshape=tileshape,
        )
