"""Buffer declarations, their allocation, and the namespaces UDF code sees.

A :class:`BufferWrapper` is a frozen *declaration* (kind, extra shape, dtype, use);
the arrays live elsewhere: in a :class:`UDFData` namespace while a partition is
processed or merged, and in result objects afterwards. ``self.results.<name>`` on a
:class:`UDFData` is a view of the current frame, tile or partition.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from dataflow.errors import UseDiscouragedWarning

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    import numpy.typing as npt

__all__ = [
    "ArrayWithMask",
    "AuxBufferWrapper",
    "BufferKind",
    "BufferUse",
    "BufferWrapper",
    "MergeAttrMapping",
    "UDFData",
    "allocate",
    "check_cast",
    "fill_value",
]

BufferKind = Literal["nav", "sig", "single"]
BufferUse = Literal["private", "result_only"]
_KINDS = ("nav", "sig", "single")
_USES = (None, "private", "result_only")
_WHERES = (None, "device")


def _normalize_extra_shape(extra_shape: Any) -> tuple[int, ...]:
    if isinstance(extra_shape, (int, np.integer)):
        extra_shape = (extra_shape,)
    try:
        shape = tuple(extra_shape)
    except TypeError:
        raise TypeError(
            f"extra_shape is {extra_shape!r}; expected a tuple of non-negative integers"
        ) from None
    for s in shape:
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s < 0:
            raise ValueError(
                f"extra_shape is {extra_shape!r}; expected a tuple of non-negative integers"
            )
    return tuple(int(s) for s in shape)


def _normalize_dtype(dtype: Any) -> np.dtype:
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype is {dtype!r}; expected a NumPy dtype or dtype name") from None


@dataclass(frozen=True)
class BufferWrapper:
    """Declaration of one result buffer, as returned by ``UDF.buffer``.

    Parameters
    ----------
    kind
        ``"nav"``: one entry per frame; ``"sig"``: the shape of one frame;
        ``"single"``: only ``extra_shape``.
    extra_shape
        Axes appended to the kind's shape.
    dtype
        Any NumPy dtype, ``object`` included.
    where
        ``None`` or ``"device"`` (accepted for compatibility; dataflow runs on the CPU).
    use
        ``None``; ``"private"`` (merged, but not returned); ``"result_only"`` (never
        allocated on workers, filled by ``get_results``).
    extra_dims
        Names of the ``extra_shape`` axes in labelled (xarray) results; a dataflow
        extension. ``<buffer>_<i>`` by default.

    Examples
    --------
    >>> BufferWrapper("nav", extra_shape=(2,), dtype="float64")  # doctest: +ELLIPSIS
    BufferWrapper(kind='nav', extra_shape=(2,), dtype=dtype('float64'), where=None, use=None, ...)
    """

    kind: BufferKind
    extra_shape: tuple[int, ...] = ()
    dtype: np.dtype = field(default=np.dtype("float32"))
    where: str | None = None
    use: BufferUse | None = None
    #: names of the ``extra_shape`` axes in labelled results (``<name>_<i>`` if None)
    extra_dims: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"buffer kind is {self.kind!r}; expected one of {_KINDS}")
        if self.use not in _USES:
            raise ValueError(f"buffer use is {self.use!r}; expected one of {_USES}")
        if self.where not in _WHERES:
            raise ValueError(f"buffer where is {self.where!r}; expected one of {_WHERES}")
        object.__setattr__(self, "extra_shape", _normalize_extra_shape(self.extra_shape))
        object.__setattr__(self, "dtype", _normalize_dtype(self.dtype))
        if self.extra_dims is not None:
            names = tuple(self.extra_dims)
            if len(names) != len(self.extra_shape) or not all(isinstance(n, str) for n in names):
                raise ValueError(
                    f"extra_dims is {self.extra_dims!r}; expected {len(self.extra_shape)} names, "
                    f"one per axis of extra_shape {self.extra_shape}"
                )
            object.__setattr__(self, "extra_dims", names)

    def shape_for(self, n_frames: int, sig_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of this buffer for ``n_frames`` frames of ``sig_shape``."""
        if self.kind == "nav":
            return (n_frames, *self.extra_shape)
        if self.kind == "sig":
            return (*sig_shape, *self.extra_shape)
        return self.extra_shape or (1,)


class AuxBufferWrapper:
    """Per-frame input data for a UDF, made with ``UDF.aux_data`` and passed as a parameter.

    Inside a run, ``self.params.<name>`` is the slice for the current frame, tile or
    partition (ROI applied), as for a ``kind="nav"`` result buffer. ``kind="sig"``
    data is passed whole.

    Parameters
    ----------
    kind
        ``"nav"`` (one entry per frame) or ``"sig"`` (one frame-shaped array).
    extra_shape
        Shape of each frame's entry.
    dtype
        The dtype of ``data``.
    data
        The values: ``(n_frames, *extra_shape)`` after flattening the navigation axes.
    """

    def __init__(self, kind: BufferKind, extra_shape: Any, dtype: Any, data: Any) -> None:
        if kind not in ("nav", "sig"):
            raise ValueError(f"aux data kind is {kind!r}; expected 'nav' or 'sig'")
        self.kind = kind
        self.extra_shape = _normalize_extra_shape(extra_shape)
        self.dtype = _normalize_dtype(dtype)
        arr = np.asarray(data)
        if arr.dtype != self.dtype:
            raise TypeError(
                f"aux data has dtype {arr.dtype}; it was declared with dtype {self.dtype}. "
                "Convert it, e.g. data.astype(dtype)"
            )
        if kind == "nav":
            per_frame = math.prod(self.extra_shape)
            if per_frame and arr.size % per_frame:
                raise ValueError(
                    f"aux data of shape {arr.shape} does not split into entries of extra_shape "
                    f"{self.extra_shape}"
                )
            arr = arr.reshape((-1, *self.extra_shape))
        self._data = arr

    @property
    def raw_data(self) -> np.ndarray:
        """All values, navigation flattened."""
        return self._data

    def for_frames(self, indices: np.ndarray | None) -> np.ndarray:
        """The values of the frames at flat ``indices`` (all frames for None)."""
        if self.kind != "nav" or indices is None:
            return self._data
        return self._data[indices]

    def __repr__(self) -> str:
        return (
            f"AuxBufferWrapper(kind={self.kind!r}, extra_shape={self.extra_shape}, "
            f"dtype={self.dtype}, entries={len(self._data)})"
        )


class ArrayWithMask:
    """A ``get_results`` value with its own valid mask (made with ``UDF.with_mask``).

    ``mask`` is boolean and broadcastable to ``data``; ``True``/``False`` mean all valid
    or all invalid.
    """

    def __init__(self, data: Any, mask: Any) -> None:
        self.data = np.asarray(data)
        if mask is True or mask is False:
            mask = np.full(self.data.shape, mask, dtype=bool)
        mask = np.asarray(mask)
        if mask.dtype != bool:
            from dataflow.errors import InvalidMaskError

            raise InvalidMaskError(f"the valid mask has dtype {mask.dtype}; expected bool")
        try:
            self.mask = np.broadcast_to(mask, self.data.shape)
        except ValueError:
            from dataflow.errors import InvalidMaskError

            raise InvalidMaskError(
                f"the valid mask has shape {mask.shape}, which does not broadcast to the "
                f"data's shape {self.data.shape}"
            ) from None


def allocate(
    decls: Mapping[str, BufferWrapper], n_frames: int, sig_shape: tuple[int, ...]
) -> dict[str, npt.NDArray[Any]]:
    """Zero-filled arrays for every declaration except ``use="result_only"``.

    Object buffers hold the integer ``0`` in every element, as in LiberTEM.
    """
    return {
        name: np.zeros(decl.shape_for(n_frames, sig_shape), dtype=decl.dtype)
        for name, decl in decls.items()
        if decl.use != "result_only"
    }


def fill_value(dtype: npt.DTypeLike) -> Any:
    """The value that marks positions outside the ROI in ``.data``, per LiberTEM."""
    kind = np.dtype(dtype).kind
    if kind in "fc":
        return np.nan
    if kind == "b":
        return False
    if kind in "SU":
        return ""
    if kind in "mM":
        return np.datetime64("NaT") if kind == "M" else np.timedelta64("NaT")
    if kind == "O":
        return None
    return 0


def check_cast(fromvar: npt.ArrayLike, tovar: npt.ArrayLike) -> None:
    """Raise ``TypeError`` unless ``fromvar``'s dtype casts safely to ``tovar``'s."""
    from_dtype, to_dtype = np.asarray(fromvar).dtype, np.asarray(tovar).dtype
    if not np.can_cast(from_dtype, to_dtype, casting="safe"):
        raise TypeError(f"Unsafe automatic casting from {from_dtype} to {to_dtype}")


class UDFData:
    """Attribute access to named arrays: ``self.results.x``, ``self.task_data.y``, ``dest.x``.

    Each name maps to the *current view*: a frame, tile or partition slice of a nav
    buffer, or a whole sig or single buffer. Assigning to a name writes into the view
    (``ns.x = v`` is ``ns.x[...] = v``; ``ns.x += v`` adds in place), so buffers can
    never be rebound by accident. Dict-style access works but is discouraged inside UDF
    code and warns with :class:`~dataflow.errors.UseDiscouragedWarning`.
    """

    # Views live in the instance __dict__ under their buffer names, so the per-frame
    # attribute lookup in UDF code is a plain dict hit. Engine state uses `_df_` names.
    _df_arrays: dict[str, Any]
    _df_decls: Mapping[str, BufferWrapper] | None
    _df_writable: bool

    def __init__(
        self,
        arrays: Mapping[str, Any],
        decls: Mapping[str, BufferWrapper] | None = None,
        writable: bool = True,
    ) -> None:
        d = self.__dict__
        d["_df_arrays"] = dict(arrays)
        d["_df_decls"] = decls
        d["_df_writable"] = writable
        d.update(arrays)

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if name not in d["_df_arrays"]:
            raise AttributeError(
                f"cannot set {name!r}: it is not a declared buffer; declared: "
                f"{sorted(d['_df_arrays'])}"
            )
        current = d[name]
        if value is current:  # the tail of `ns.x += v`: already written in place
            return
        if not d["_df_writable"] or not isinstance(current, np.ndarray):
            raise AttributeError(f"{name!r} is read-only here")
        current[...] = value

    def __getattr__(self, name: str) -> Any:
        # only reached for names that are not set: report what exists
        if name.startswith("__"):
            raise AttributeError(name)
        decls = self.__dict__["_df_decls"]
        if decls is not None and name in decls and decls[name].use == "result_only":
            return None  # allocated only for get_results, as in LiberTEM
        raise AttributeError(
            f"no buffer or value named {name!r}; available: {sorted(self.__dict__['_df_arrays'])}"
        )

    def __getitem__(self, name: str) -> Any:
        warnings.warn(
            f"dict-style access [{name!r}] is discouraged; use attribute access .{name}",
            UseDiscouragedWarning,
            stacklevel=2,
        )
        return self.__dict__[name]

    def __setitem__(self, name: str, value: Any) -> None:
        warnings.warn(
            f"dict-style access [{name!r}] is discouraged; use attribute access .{name}",
            UseDiscouragedWarning,
            stacklevel=2,
        )
        self.__setattr__(name, value)

    def __contains__(self, name: object) -> bool:
        return name in self.__dict__["_df_arrays"]

    def __iter__(self) -> Iterator[str]:
        return iter(self.__dict__["_df_arrays"])

    def __len__(self) -> int:
        return len(self.__dict__["_df_arrays"])

    def __repr__(self) -> str:
        return f"<UDFData: {sorted(self.__dict__['_df_arrays'])}>"

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def get(self, name: str, default: Any = None) -> Any:
        """The current view of ``name``, or ``default``."""
        if name in self.__dict__["_df_arrays"]:
            return self.__dict__[name]
        return default

    def keys(self) -> Any:
        """The declared names."""
        return self.__dict__["_df_arrays"].keys()

    def items(self) -> Iterator[tuple[str, Any]]:
        """(name, current view) pairs."""
        d = self.__dict__
        return ((k, d[k]) for k in d["_df_arrays"])

    def as_dict(self) -> dict[str, Any]:
        """A dict of the current views."""
        return dict(self.items())

    def get_buffer(self, name: str) -> BufferWrapper:
        """The declaration of buffer ``name``."""
        decls = self.__dict__["_df_decls"]
        if decls is None or name not in decls:
            raise KeyError(name)
        return decls[name]


MergeAttrMapping = UDFData
