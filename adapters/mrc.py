"""The ``mrc`` adapter: MRC files (a stack of frames), read frame by frame.

An MRC file is a 1024-byte header, ``NEXT`` bytes of extended header, and then
``NZ`` frames of ``NY`` by ``NX`` values of the type ``MODE`` names, little-endian.
For 4D-STEM the frames are the scan positions; pass ``nav_shape`` to give the scan
its shape, as in LiberTEM.

Opening goes through RosettaSciIO's lazy reader (``rsciio.mrc.file_reader(path,
lazy=True)``) for the header, the dtype and the axes: the pixel size is ``Xlen / MX``
(Angstrom, reported in nm) where the header sets both; a header without them gives
plain pixel indices and no units. RosettaSciIO's dask array is not used: each
partition task opens the file by path and reads its frames at ``1024 + NEXT``
onwards, so the graph holds a path and offsets only. Compressed MRCZ files are
refused (their frames are not at fixed offsets).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
    reader_dataset,
)
from dataflow.sources.adapter import Adapter

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence

__all__ = ["MRCAdapter"]

#: the fixed MRC header before the extended header
HEADER_BYTES = 1024


def _calibrated(axis: Axis, length: float, grid: int) -> Axis:
    """``axis`` as RosettaSciIO reports it, or plain indices if the header has no size."""
    if length > 0 and grid > 0:
        return axis
    return Axis(axis.name, axis.size)


class MRCAdapter(Adapter):
    """The ``mrc`` source: an MRC file holding a stack of frames.

    Examples
    --------
    >>> ds = ctx.load("mrc", path="movie.mrc", nav_shape=(64, 64))  # doctest: +SKIP
    """

    name = "mrc"
    description = "MRC files (a stack of 2D frames), as written by DE cameras, IMOD, MRCZ"
    url = "https://www.ccpem.ac.uk/mrc_format/mrc2014.php"
    extensions = (".mrc",)

    @staticmethod
    def open(
        path: str | os.PathLike[str] | None = None,
        *,
        nav_shape: Sequence[int] | None = None,
        sig_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        num_partitions: int | None = None,
        partition_bytes: int = DEFAULT_PARTITION_BYTES,
        min_partitions: int = 1,
        dims: Sequence[str] | None = None,
    ) -> DataSet:
        """Open an MRC file; only its header is read.

        Parameters
        ----------
        path
            The ``.mrc`` file.
        nav_shape, sig_shape, sync_offset
            As in LiberTEM; see :func:`dataflow.sources.make_layout`. By default one
            navigation axis of ``NZ`` frames of ``(NY, NX)``.
        num_partitions, partition_bytes, min_partitions, dims
            As for ``npy``.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        ImportError
            If RosettaSciIO is not installed (``pip install 'dataflow-udf[microscopy]'``).
        DataSetException
            If the file is not an uncompressed MRC file, or is shorter than its header
            says.
        """
        p = as_path(path, "mrc", "MRC file")
        stat = check_file(p, "mrc")
        if stat.st_size < HEADER_BYTES:
            raise DataSetException(
                f"{str(p)!r} has {stat.st_size} bytes; an MRC header alone is {HEADER_BYTES}"
            )
        mrc = import_rsciio("mrc", "mrc")
        try:
            found = mrc.file_reader(str(p), lazy=True, metadata_file=None)[0]
        except ValueError as e:  # an unknown MODE: not MRC, compressed MRCZ or big-endian
            raise DataSetException(
                f"{str(p)!r} is not an uncompressed little-endian MRC file that RosettaSciIO "
                f"reads: {e}. Decompress MRCZ files first (mrcz.readMRC, then write with "
                "compressor=None)"
            ) from e
        h = found["original_metadata"]["std_header"]
        nx, ny, nz = (int(h[k]) for k in ("NX", "NY", "NZ"))
        dtype = np.dtype(found["data"].dtype)
        offset = HEADER_BYTES + int(h["NEXT"])
        if not (nx and ny and nz):
            raise DataSetException(
                f"{str(p)!r} has a header with NX={nx}, NY={ny}, NZ={nz}; none may be 0"
            )
        frame_bytes = nx * ny * dtype.itemsize
        expected = offset + nz * frame_bytes
        if stat.st_size < expected:
            raise DataSetException(
                f"{str(p)!r} has {stat.st_size} bytes; its header ({nz} frames of {ny} x {nx} "
                f"{dtype} after {offset} header bytes) expects {expected} bytes. The file is "
                "truncated"
            )
        axes = axes_from_rsciio(found["axes"])
        if len(axes) == 3 and [a.size for a in axes] == [nz, ny, nx]:
            axes = [
                _calibrated(axes[0], float(h["Zlen"]), int(h["MZ"])),
                _calibrated(axes[1], float(h["Ylen"]), int(h["MY"])),
                _calibrated(axes[2], float(h["Xlen"]), int(h["MX"])),
            ]
        else:  # RosettaSciIO squeezed a length-1 axis away: no calibration here
            axes = [Axis("z", nz), Axis("y", ny), Axis("x", nx)]
        raw_sig = (ny, nx)
        layout = make_layout(
            (nz, *raw_sig),
            2,
            nav_shape=nav_shape,
            sig_shape=sig_shape,
            sync_offset=sync_offset,
            source=repr(str(p)),
        )
        dims_, coords, attrs = labels(axes, layout, (nz,), raw_sig, dims=dims)
        attrs["mrc"] = {"mode": int(h["MODE"]), "extended_header_bytes": int(h["NEXT"])}
        reader = OffsetFrameReader(
            layout=layout,
            dtype=dtype.newbyteorder("="),
            files=((str(p), 0, nz, offset),),
            record_bytes=frame_bytes,
            skip=0,
            frame_bytes=frame_bytes,
            file_dtype=dtype.newbyteorder("<"),
            raw_sig=raw_sig,
        )
        return reader_dataset(
            reader,
            name="mrc",
            identity=file_token([p]),
            num_partitions=num_partitions,
            partition_bytes=partition_bytes,
            min_partitions=min_partitions,
            dims=dims_,
            coords=coords,
            attrs=attrs,
        )
