"""Shared code of the microscopy adapters (mib, blo, emd, tvips, mrc, dm).

Two pieces (path and argument checks, windows, ROI reads and the DataSet itself come
from :mod:`dataflow.sources`):

- :class:`Axis` and :func:`labels`: RosettaSciIO's axes (``name``, ``size``,
  ``scale``, ``offset``, ``units``) turned into dimension names, coordinates
  (``offset + scale * arange(size)``) and ``attrs["units"]``;
- :class:`OffsetFrameReader`: a :class:`~dataflow.sources.FrameReader` of frames at
  fixed byte offsets in one or more files, which most of these formats are.

RosettaSciIO backs many lazy arrays with :class:`numpy.memmap`, which pickles by value;
its dask arrays never enter our graphs. It is imported only inside the adapters'
``open`` (see :func:`import_rsciio`).
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from dataflow.errors import DataSetException
from dataflow.sources import FrameLayout, FrameReader, default_dims

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from types import ModuleType

__all__ = ["Axis", "OffsetFrameReader", "axes_from_rsciio", "import_rsciio", "labels"]

#: The extra that installs RosettaSciIO and what its readers need.
EXTRA = "dataflow-udf[microscopy]"


def import_rsciio(module: str, filetype: str) -> ModuleType:
    """Import ``rsciio.<module>``, or explain which extra provides it."""
    try:
        return importlib.import_module(f"rsciio.{module}")
    except ImportError as e:
        raise ImportError(
            f"the {filetype!r} adapter reads through RosettaSciIO (rsciio.{module}), which could "
            f"not be imported: {e}. Install it with pip install '{EXTRA}'"
        ) from e


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


@dataclass(frozen=True)
class OffsetFrameReader(FrameReader):
    """Frames at fixed byte offsets in one or more files.

    Frame ``i`` of ``files[k] = (path, first, count, offset)`` (``first <= i <
    first + count``) is a record of ``record_bytes`` bytes at ``offset + (i - first) *
    record_bytes``; its pixels are ``frame_bytes`` bytes from ``skip`` into the record.
    :meth:`decode` turns the pixel bytes of ``n`` frames into native values.
    """

    layout: FrameLayout
    dtype: np.dtype
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

    def read_frames(self, handle: Any, a: int, b: int, out: np.ndarray) -> None:
        out = out.reshape((b - a, *self.raw_sig))  # a view: same items per frame
        for path, first, count, offset in self.files:
            lo, hi = max(a, first), min(b, first + count)
            if lo >= hi:
                continue
            n = hi - lo
            buf = np.empty(n * self.record_bytes, dtype=np.uint8)
            with open(path, "rb") as f:
                f.seek(offset + (lo - first) * self.record_bytes)
                got = f.readinto(buf.data)
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
