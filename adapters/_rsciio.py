"""Shared code of the microscopy adapters (mib, blo, emd, tvips, mrc, dm).

Three pieces:

- path and argument checks that every adapter makes before reading any data;
- :class:`Axis` and :func:`labels`: RosettaSciIO's axes (``name``, ``size``,
  ``scale``, ``offset``, ``units``) turned into dimension names, coordinates
  (``offset + scale * arange(size)``) and ``attrs["units"]``;
- :class:`FrameReader` and :class:`OffsetFrameReader`: small picklable objects that
  hold paths, byte offsets and dtypes and open the file inside the task. They are the
  ``reader`` hook of :class:`~dataflow.sources.DataSet` (``reader(start, stop, mask)``)
  and the body of every partition task, so a ROI skips unselected frames on disk.

RosettaSciIO backs many lazy arrays with :class:`numpy.memmap`, which pickles by value;
its dask arrays never enter our graphs. It is imported only inside the adapters'
``open`` (see :func:`import_rsciio`).
"""

from __future__ import annotations

import importlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np
from dask.base import tokenize

from dataflow.sources import DEFAULT_PARTITION_BYTES, DataSet, FrameLayout, default_dims
from dataflow.sources import plan_partitions as _plan_partitions
from dataflow.errors import DataSetException

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from types import ModuleType

__all__ = [
    "Axis",
    "FrameReader",
    "OffsetFrameReader",
    "as_path",
    "axes_from_rsciio",
    "check_file",
    "file_token",
    "import_rsciio",
    "labels",
    "make_dataset",
    "mask_runs",
    "merge_nav_shape",
    "tile_depth",
]

#: The extra that installs RosettaSciIO and what its readers need.
EXTRA = "dataflow-udf[microscopy]"


# paths and arguments -----------------------------------------------------------------------


def as_path(path: Any, filetype: str, what: str = "file") -> Path:
    """``path`` as an absolute :class:`~pathlib.Path`; TypeError for anything else.

    Examples
    --------
    >>> as_path("scan.mib", "mib").name
    'scan.mib'
    >>> as_path(3, "mib")
    Traceback (most recent call last):
    ...
    TypeError: path is a int; expected a str or os.PathLike naming a file
    """
    if path is None:
        raise TypeError(f"ctx.load({filetype!r}, ...) needs path=<path of a {what}>")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"path is a {type(path).__name__}; expected a str or os.PathLike naming a {what}"
        )
    return Path(path).expanduser().absolute()


def check_file(path: Path, filetype: str) -> os.stat_result:
    """``os.stat`` of ``path``; FileNotFoundError or IsADirectoryError naming it."""
    if not path.exists():
        raise FileNotFoundError(f"no such {filetype} file: {str(path)!r}")
    if path.is_dir():
        raise IsADirectoryError(f"{str(path)!r} is a directory; expected a {filetype} file")
    return path.stat()


def file_token(filetype: str, paths: Sequence[Path], *parts: Any) -> str:
    """A dataset token from paths, sizes and modification times (never the bytes)."""
    stats = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]
    return f"{filetype}-{tokenize(stats, *parts)}"


def import_rsciio(module: str, filetype: str) -> ModuleType:
    """Import ``rsciio.<module>``, or explain which extra provides it."""
    try:
        return importlib.import_module(f"rsciio.{module}")
    except ImportError as e:
        raise ImportError(
            f"the {filetype!r} adapter reads through RosettaSciIO (rsciio.{module}), which could "
            f"not be imported: {e}. Install it with pip install '{EXTRA}'"
        ) from e


def merge_nav_shape(
    nav_shape: Sequence[int] | None, scan_size: Sequence[int] | None
) -> Sequence[int] | None:
    """LiberTEM's deprecated ``scan_size`` as ``nav_shape``; both at once is an error."""
    if scan_size is None:
        return nav_shape
    if nav_shape is not None:
        raise ValueError(
            f"scan_size is {tuple(scan_size)!r} and nav_shape is {tuple(nav_shape)!r}; "
            "pass only nav_shape (scan_size is its old name)"
        )
    return scan_size


def tile_depth(tileshape: Sequence[int] | None) -> int | None:
    """Frames per tile from LiberTEM's ``tileshape`` (its first entry), or None."""
    if tileshape is None:
        return None
    try:
        shape = tuple(int(s) for s in tileshape)
    except (TypeError, ValueError):
        raise TypeError(
            f"tileshape is {tileshape!r}; expected a tuple of positive integers"
        ) from None
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"tileshape is {tileshape!r}; expected a tuple of positive integers")
    return shape[0]


# axes, coordinates and units -----------------------------------------------------------------


@dataclass(frozen=True)
class Axis:
    """One axis of a file: RosettaSciIO's ``name``, ``size``, ``scale``, ``offset``, ``units``.

    Examples
    --------
    >>> Axis("x", 4, scale=0.5, offset=1.0, units="nm").calibrated
    True
    >>> Axis("x", 4).calibrated
    False
    """

    name: str
    size: int
    scale: float = 1.0
    offset: float = 0.0
    units: str = ""

    @property
    def calibrated(self) -> bool:
        """Whether the axis says more than "pixel index" (a scale, an offset or units)."""
        return self.scale != 1 or self.offset != 0 or bool(self.units)

    def coordinate(self) -> np.ndarray:
        """``offset + scale * arange(size)``; plain indices for an uncalibrated axis."""
        if not self.calibrated:
            return np.arange(self.size)
        return self.offset + self.scale * np.arange(self.size, dtype=np.float64)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).strip()
    return "" if text in ("<undefined>", "None", "t.Undefined", "[]") else text


def _number(value: Any, default: float) -> float:
    try:
        out = float(np.asarray(value).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        return default
    return out if math.isfinite(out) else default


def axes_from_rsciio(axes: Sequence[Mapping[str, Any]]) -> list[Axis]:
    """RosettaSciIO's axis dictionaries, in array order, as :class:`Axis` objects.

    Examples
    --------
    >>> axes_from_rsciio(
    ...     [
    ...         {
    ...             "index_in_array": 0,
    ...             "size": 3,
    ...             "name": "x",
    ...             "scale": 2.0,
    ...             "offset": 0.0,
    ...             "units": "nm",
    ...             "navigate": True,
    ...         }
    ...     ]
    ... )
    [Axis(name='x', size=3, scale=2.0, offset=0.0, units='nm')]
    """
    ordered = sorted(enumerate(axes), key=lambda ia: (ia[1].get("index_in_array", ia[0]), ia[0]))
    return [
        Axis(
            name=_text(ax.get("name")),
            size=int(ax["size"]),
            scale=_number(ax.get("scale", 1.0), 1.0),
            offset=_number(ax.get("offset", 0.0), 0.0),
            units=_text(ax.get("units")),
        )
        for _, ax in ordered
    ]


def labels(
    axes: Sequence[Axis] | None,
    layout: FrameLayout,
    raw_nav: Sequence[int],
    raw_sig: Sequence[int],
    *,
    dims: Sequence[str] | None = None,
    use_names: bool = False,
) -> tuple[tuple[str, ...], dict[str, np.ndarray], dict[str, Any]]:
    """Dimension names, coordinates and attrs of a dataset laid out by ``layout``.

    ``axes`` describe the file's ``raw_nav + raw_sig`` axes. The navigation (signal)
    axes label the dataset only where ``layout`` keeps the file's navigation (signal)
    shape: a new ``nav_shape`` or ``sig_shape`` gets plain indices and no units.

    Parameters
    ----------
    axes
        The file's axes, navigation first, or None.
    layout
        The dataset's frame layout.
    raw_nav, raw_sig
        The file's navigation and signal shapes.
    dims
        Names given by the caller; they win.
    use_names
        Take dimension names from ``axes`` (when all are set and distinct); otherwise
        ``scan_y, scan_x, det_y, det_x`` (see :func:`~dataflow.sources.default_dims`).

    Returns
    -------
    dims, coords, attrs
        ``attrs["units"]`` maps each calibrated dimension with units to its unit.

    Examples
    --------
    >>> from dataflow.sources import make_layout
    >>> axes = [Axis("", 2), Axis("", 3), Axis("ky", 4, 0.5, -1.0, "1/nm"), Axis("kx", 4)]
    >>> dims, coords, attrs = labels(axes, make_layout((2, 3, 4, 4), 2), (2, 3), (4, 4))
    >>> dims, coords["det_y"], attrs
    (('scan_y', 'scan_x', 'det_y', 'det_x'), array([-1. , -0.5,  0. ,  0.5]), {'units': {'det_y': '1/nm'}})
    """
    nav, sig = tuple(layout.nav_shape), tuple(layout.sig_shape)
    names = list(default_dims(len(nav), len(sig)))
    keep_nav = axes is not None and nav == tuple(raw_nav)
    keep_sig = axes is not None and sig == tuple(raw_sig)
    kept: dict[int, Axis] = {}
    if axes is not None:
        n_raw_nav = len(raw_nav)
        if keep_nav:
            kept.update(dict(enumerate(axes[:n_raw_nav])))
        if keep_sig:
            kept.update({len(nav) + i: ax for i, ax in enumerate(axes[n_raw_nav:])})
    if use_names and len(kept) == len(names):
        found = [kept[i].name for i in range(len(names))]
        if all(n.isidentifier() for n in found) and len(set(found)) == len(found):
            names = found
    if dims is not None:
        names = list(dims)
        if len(names) != len(nav) + len(sig):
            raise DataSetException(
                f"dims has {len(names)} names {tuple(names)!r}; the dataset has "
                f"{len(nav) + len(sig)} dimensions {nav + sig}"
            )
    coords: dict[str, np.ndarray] = {}
    units: dict[str, str] = {}
    for i, ax in kept.items():
        if not ax.calibrated:
            continue
        coords[names[i]] = ax.coordinate()
        if ax.units:
            units[names[i]] = ax.units
    attrs: dict[str, Any] = {"units": units} if units else {}
    return tuple(names), coords, attrs


# reading frames inside tasks -----------------------------------------------------------------


def mask_runs(mask: np.ndarray) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of each run of True values in a 1-D boolean mask.

    Examples
    --------
    >>> list(mask_runs(np.array([1, 1, 0, 0, 1, 0, 1], bool)))
    [(0, 2), (4, 5), (6, 7)]
    """
    m = np.concatenate([[False], np.asarray(mask, bool), [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(m))
    return ((int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True))


@dataclass(frozen=True)
class FrameReader:
    """Dataset frames from a file, read inside the task; subclasses implement :meth:`read_raw`.

    Calling ``reader(start, stop, mask)`` returns dataset frames ``start:stop``,
    shaped ``(stop - start, *layout.sig_shape)``, reading only those where ``mask``
    is True (others stay zero); frames that ``layout`` (``sync_offset``,
    ``nav_shape``) puts outside the file are zeros.
    """

    layout: FrameLayout
    dtype: np.dtype

    def read_raw(self, a: int, b: int) -> np.ndarray:
        """Frames ``a:b`` of the file, as a new array of shape ``(b - a, ...)``."""
        raise NotImplementedError

    def __call__(self, start: int, stop: int, mask: np.ndarray | None = None) -> np.ndarray:
        sig = tuple(self.layout.sig_shape)
        a, b, pre, post = self.layout.raw_window(start, stop)
        if mask is None and not pre and not post:
            return self.read_raw(a, b).reshape((stop - start, *sig))
        out = np.zeros((stop - start, *sig), dtype=self.dtype)
        if a >= b:
            return out
        if mask is None:
            out[pre : pre + b - a] = self.read_raw(a, b).reshape((b - a, *sig))
            return out
        mask = np.asarray(mask, bool).reshape(-1)
        if mask.shape != (stop - start,):
            raise ValueError(
                f"mask has {mask.size} entries; frames {start}:{stop} need {stop - start}"
            )
        for r0, r1 in mask_runs(mask[pre : pre + b - a]):
            out[pre + r0 : pre + r1] = self.read_raw(a + r0, a + r1).reshape((r1 - r0, *sig))
        return out

    def block(self, block_info: dict | None = None) -> np.ndarray:
        """The block of ``partition_array`` that ``block_info`` names (for ``map_blocks``)."""
        start, stop = block_info[None]["array-location"][0]  # type: ignore[index]
        return self(start, stop)


@dataclass(frozen=True)
class OffsetFrameReader(FrameReader):
    """Frames at fixed byte offsets in one or more files.

    Frame ``i`` of ``files[k] = (path, first, count, offset)`` (``first <= i <
    first + count``) is a record of ``record_bytes`` bytes at ``offset + (i - first) *
    record_bytes``; its pixels are ``frame_bytes`` bytes from ``skip`` into the record.
    :meth:`decode` turns the pixel bytes of ``n`` frames into native values.
    """

    files: tuple[tuple[str, int, int, int], ...] = ()
    record_bytes: int = 0
    skip: int = 0
    frame_bytes: int = 0
    file_dtype: np.dtype = field(default_factory=lambda: np.dtype("u1"))
    raw_sig: tuple[int, ...] = ()

    def decode(self, pixels: np.ndarray) -> np.ndarray:
        """Bytes ``(n, frame_bytes)`` of ``n`` frames -> ``(n, *raw_sig)`` of :attr:`dtype`."""
        values = pixels.view(self.file_dtype).reshape((len(pixels), *self.raw_sig))
        return values.astype(self.dtype, copy=False)

    def read_raw(self, a: int, b: int) -> np.ndarray:
        out = np.empty((b - a, *self.raw_sig), dtype=self.dtype)
        for path, first, count, offset in self.files:
            lo, hi = max(a, first), min(b, first + count)
            if lo >= hi:
                continue
            n = hi - lo
            buf = np.empty(n * self.record_bytes, dtype=np.uint8)
            with open(path, "rb") as f:
                f.seek(offset + (lo - first) * self.record_bytes)
                got = f.readinto(memoryview(buf))
            # the last record may lack trailing bytes that follow its pixels
            need = (n - 1) * self.record_bytes + self.skip + self.frame_bytes
            if got < need:
                raise OSError(
                    f"{path!r}: read {got} bytes for frames {lo}:{hi}; expected {need}. "
                    "Was the file truncated after it was opened?"
                )
            if got < len(buf):
                buf[got:] = 0
            records = buf.reshape(n, self.record_bytes)
            pixels = records[:, self.skip : self.skip + self.frame_bytes]
            out[lo - a : hi - a] = self.decode(np.ascontiguousarray(pixels))
        return out


def _read_block(reader: FrameReader, block_info: dict | None = None) -> np.ndarray:
    return reader.block(block_info)


def make_dataset(
    reader: FrameReader,
    *,
    name: str,
    token: str,
    num_partitions: int | None = None,
    partition_bytes: int = DEFAULT_PARTITION_BYTES,
    min_partitions: int = 1,
    dims: Sequence[str] | None = None,
    coords: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
    tileshape: Sequence[int] | None = None,
) -> DataSet:
    """A :class:`~dataflow.sources.DataSet` whose partition tasks call ``reader``.

    The graph holds ``reader`` (paths, offsets, dtypes) once per partition task,
    never a handle, a memory map or data. ``reader`` is also the DataSet's ROI hook.
    """
    layout = reader.layout
    dtype = np.dtype(reader.dtype)
    frame_bytes = math.prod(layout.sig_shape) * dtype.itemsize
    partitions = _plan_partitions(
        layout.n_frames,
        frame_bytes,
        row_length=layout.nav_shape[-1],
        num_partitions=num_partitions,
        min_partitions=min_partitions,
        target_bytes=partition_bytes,
    )
    sizes = tuple(p.n_frames for p in partitions)
    ndim = 1 + len(layout.sig_shape)
    array = da.map_blocks(
        _read_block,
        chunks=(sizes, *((s,) for s in layout.sig_shape)),
        dtype=dtype,
        meta=np.empty((0,) * ndim, dtype=dtype),
        name=f"{name}-{tokenize(token, sizes, layout)}",
        reader=reader,
    )
    return DataSet(
        array,
        nav_shape=layout.nav_shape,
        partitions=partitions,
        token=f"{token}-{tokenize(layout)}",
        dims=dims,
        coords=coords,
        attrs=attrs,
        layout=layout,
        tile_depth=tile_depth(tileshape),
        reader=reader,
    )
