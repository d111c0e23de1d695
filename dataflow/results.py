"""Result objects: LiberTEM's ``BufferWrapper`` interface, plus labelled xarray output.

``ctx.run_udf`` returns a :class:`UDFResultDict` (a ``dict``) of buffer name to
:class:`BufferResult`. ``.raw_data`` holds the selected frames only (flat navigation
axis), ``.data`` the navigation shape with the dtype's fill value outside the ROI,
and ``.to_xarray()`` the same with named dimensions and the dataset's coordinates.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from dataflow.buffers import BufferWrapper, fill_value

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import numpy.typing as npt
    import xarray as xr

    from dataflow.plan import RunPlan
    from dataflow.udf.base import UDF

__all__ = [
    "BufferResult",
    "ResultContext",
    "UDFResultDict",
    "UDFResults",
    "run_context",
    "run_udf_attrs",
    "udf_attrs",
]


@dataclass(frozen=True)
class ResultContext:
    """What results need to know about the run: shapes, names, coordinates, ROI."""

    nav_shape: tuple[int, ...]
    sig_shape: tuple[int, ...]
    dims: tuple[str, ...]
    coords: Mapping[str, Any]
    roi: np.ndarray | None
    #: the dataset's attributes (its ``units`` mapping goes onto the coordinates)
    attrs: Mapping[str, Any] = field(default_factory=dict)
    #: the UDF's class and parameters, for every result variable
    udf_attrs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def units(self) -> Mapping[str, str]:
        """Unit per dimension, from the dataset's ``attrs["units"]``."""
        units = self.attrs.get("units")
        return units if isinstance(units, Mapping) else {}

    @cached_property
    def roi_index(self) -> np.ndarray | None:
        """Flat indices of the selected frames, or None for all."""
        return None if self.roi is None else np.flatnonzero(self.roi)

    @property
    def nav_dims(self) -> tuple[str, ...]:
        """Navigation dimension names."""
        return self.dims[: len(self.nav_shape)]

    @property
    def sig_dims(self) -> tuple[str, ...]:
        """Signal dimension names."""
        return self.dims[len(self.nav_shape) :]


def run_context(plan: RunPlan) -> ResultContext:
    """The :class:`ResultContext` of a planned run: its dataset's shapes and labels, its ROI."""
    ds = plan.dataset
    return ResultContext(
        nav_shape=tuple(ds.shape.nav),
        sig_shape=tuple(ds.shape.sig),
        dims=ds.dims,
        coords=ds.coords,
        roi=plan.spec.roi,
        attrs=dict(ds.attrs),
    )


def run_udf_attrs(plan: RunPlan) -> list[dict[str, Any]]:
    """:func:`udf_attrs` of every UDF of a planned run, in order."""
    return [udf_attrs(u.udf) for u in plan.spec.udfs]


def udf_attrs(udf: UDF) -> dict[str, Any]:
    """Attributes naming a UDF and its parameters, as strings that any format stores.

    Examples
    --------
    >>> from dataflow.udf.sum import SumUDF
    >>> udf_attrs(SumUDF())["udf"]
    'SumUDF'
    """
    import json

    params = {k: _describe(v) for k, v in udf._kwargs.items()}
    cls = type(udf)
    return {
        "udf": cls.__name__,
        "udf_class": f"{cls.__module__}.{cls.__qualname__}",
        "udf_params": json.dumps(params, sort_keys=True),
    }


def _describe(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return f"<array shape={value.shape} dtype={value.dtype}>"
    if isinstance(value, (list, tuple)) and len(value) <= 16:
        return [_describe(v) for v in value]
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


class BufferResult:
    """One result buffer of a run (LiberTEM: ``BufferWrapper`` as returned by ``run_udf``).

    Examples
    --------
    >>> from dataflow.udf.sumsigudf import SumSigUDF
    >>> res = ctx.run_udf(dataset=dataset, udf=SumSigUDF())["intensity"]
    >>> res.data.shape, res.raw_data.shape, res.kind
    ((16, 16), (256,), 'nav')
    >>> float(np.sum(res)) == float(res.data.sum())
    True
    """

    def __init__(
        self,
        name: str,
        decl: BufferWrapper,
        raw: np.ndarray,
        context: ResultContext,
        valid: np.ndarray | None = None,
        mask: np.ndarray | None = None,
    ) -> None:
        self.name = name
        self._decl = decl
        self._raw = raw
        self._ctx = context
        #: merged frames among the selected ones (nav buffers); None means all
        self._valid = valid
        #: a valid mask in raw shape from ``UDF.with_mask``, or None
        self._mask = mask

    # LiberTEM's BufferWrapper attributes ---------------------------------------------

    @property
    def kind(self) -> str:
        """``"nav"``, ``"sig"`` or ``"single"``."""
        return self._decl.kind

    @property
    def extra_shape(self) -> tuple[int, ...]:
        """Axes appended to the kind's shape."""
        return self._decl.extra_shape

    @property
    def dtype(self) -> np.dtype:
        """The declared dtype."""
        return self._decl.dtype

    @property
    def use(self) -> str | None:
        """The declared use."""
        return self._decl.use

    @property
    def where(self) -> str | None:
        """The declared location."""
        return self._decl.where

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of ``raw_data``."""
        return self._raw.shape

    @property
    def raw_data(self) -> npt.NDArray[Any]:
        """The buffer as computed: for nav buffers, the selected frames only, flattened."""
        return self._raw

    @cached_property
    def data(self) -> npt.NDArray[Any]:
        """The buffer in the dataset's navigation shape, fill value outside the ROI."""
        raw = self._raw
        if self.kind != "nav" or raw.shape[:1] != (self._n_selected,):
            return raw
        nav = self._ctx.nav_shape
        extra = raw.shape[1:]
        index = self._ctx.roi_index
        if index is None:
            return raw.reshape(nav + extra)
        full = np.empty((math.prod(nav), *extra), dtype=raw.dtype)
        full[...] = fill_value(raw.dtype)
        full[index] = raw
        return full.reshape(nav + extra)

    @property
    def _n_selected(self) -> int:
        index = self._ctx.roi_index
        return math.prod(self._ctx.nav_shape) if index is None else len(index)

    @cached_property
    def valid_mask(self) -> npt.NDArray[Any]:
        """Boolean, shaped like ``data``: True where the value is defined (merged, in the ROI)."""
        data = self.data
        nav = self._ctx.nav_shape
        if self._mask is not None:
            return self._embed_mask(self._mask)
        if self.kind != "nav" or data.shape[: len(nav)] != nav:
            return np.ones(data.shape, dtype=bool)
        flat = np.zeros(math.prod(nav), dtype=bool)
        index = self._ctx.roi_index
        selected = np.ones(self._n_selected, dtype=bool) if self._valid is None else self._valid
        if index is None:
            flat[:] = selected
        else:
            flat[index] = selected
        mask = flat.reshape(nav)
        return np.broadcast_to(mask.reshape(nav + (1,) * len(self.extra_shape)), data.shape)

    def _embed_mask(self, mask: np.ndarray) -> np.ndarray:
        """A raw-shaped mask in the shape of ``data`` (False outside the ROI)."""
        if self.data is self._raw or mask.shape == self.data.shape:
            return np.asarray(mask)
        nav = self._ctx.nav_shape
        full = np.zeros((math.prod(nav), *self._raw.shape[1:]), dtype=bool)
        index = self._ctx.roi_index
        full[slice(None) if index is None else index] = mask
        return full.reshape(self.data.shape)

    @property
    def masked_data(self) -> np.ma.MaskedArray:
        """``data`` as a masked array, invalid positions masked."""
        return np.ma.array(self.data, mask=~self.valid_mask)

    @property
    def raw_masked_data(self) -> np.ma.MaskedArray:
        """``raw_data`` as a masked array (unmerged frames masked)."""
        raw = self._raw
        if self._mask is not None:
            return np.ma.array(raw, mask=~self._mask)
        if self.kind != "nav" or self._valid is None:
            return np.ma.array(raw, mask=np.zeros(raw.shape, dtype=bool))
        mask = np.broadcast_to((~self._valid).reshape((-1,) + (1,) * (raw.ndim - 1)), raw.shape)
        return np.ma.array(raw, mask=mask)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> npt.NDArray[Any]:
        data = self.data
        if dtype is not None and np.dtype(dtype) != data.dtype:
            return data.astype(dtype)
        return data.copy() if copy else data

    def __repr__(self) -> str:
        return (
            f"<BufferResult {self.name!r} kind={self.kind!r} dtype={self.dtype} "
            f"shape={self.data.shape}>"
        )

    # labelled output -----------------------------------------------------------------------

    def to_xarray(self) -> xr.DataArray:
        """The buffer as an ``xarray.DataArray`` with named dimensions and coordinates."""
        return to_dataarray(self.name, self._decl, self.data, self._ctx)


def result_dims(
    name: str, decl: BufferWrapper, shape: tuple[int, ...], ctx: ResultContext
) -> tuple[str, ...]:
    """Dimension names of a result of ``shape``: the dataset's, then the extra axes'."""
    extra = decl.extra_dims or tuple(f"{name}_{i}" for i in range(len(decl.extra_shape)))
    nav, sig = ctx.nav_shape, ctx.sig_shape
    if decl.kind == "nav" and shape == (*nav, *decl.extra_shape):
        return ctx.nav_dims + extra
    if decl.kind == "sig" and shape == (*sig, *decl.extra_shape):
        return ctx.sig_dims + extra
    if decl.kind == "single" and shape == decl.extra_shape:
        return extra
    return tuple(f"{name}_{i}" for i in range(len(shape)))


def to_dataarray(name: str, decl: BufferWrapper, data: Any, ctx: ResultContext) -> xr.DataArray:
    """``data`` (NumPy or dask) labelled: dims, coordinates with units, ROI, attributes.

    Coordinates are the dataset's (pixel indices for uncalibrated sources, without a
    ``units`` attribute: no unit is invented); ``attrs`` hold the buffer kind and the
    UDF's class and parameters.
    """
    import xarray as xr

    dims = result_dims(name, decl, tuple(data.shape), ctx)
    units = ctx.units
    coords: dict[str, Any] = {}
    for d in dims:
        if d in ctx.coords:
            attrs = {"units": units[d]} if d in units else {}
            coords[d] = xr.Variable(d, np.asarray(ctx.coords[d]), attrs=attrs)
    if decl.kind == "nav" and ctx.roi is not None and set(ctx.nav_dims) <= set(dims):
        coords["roi"] = xr.Variable(ctx.nav_dims, ctx.roi)
    attrs = {"kind": decl.kind, **ctx.udf_attrs}
    return xr.DataArray(data, dims=dims, coords=coords, name=name, attrs=attrs)


def dataset_attrs(ctx: ResultContext) -> dict[str, Any]:
    """The dataset's attributes that serialize (JSON), without the per-dimension units."""
    import json

    out = {}
    for key, value in ctx.attrs.items():
        # per-dimension units live on the coordinates; kind and udf* describe one result
        # variable (an input that was itself a result carries them)
        if key in ("units", "kind", "udf", "udf_class", "udf_params"):
            continue
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        out[key] = value
    out.update(ctx.udf_attrs)
    return out


class UDFResultDict(dict):
    """The results of one UDF: a ``dict`` of buffer name to :class:`BufferResult`."""

    def to_xarray(self) -> xr.Dataset:
        """All buffers as one ``xarray.Dataset``."""
        import xarray as xr

        arrays = {name: res.to_xarray() for name, res in self.items()}
        attrs = next((dataset_attrs(res._ctx) for res in self.values()), {})
        return xr.Dataset(arrays, attrs=attrs)


class UDFResults:
    """A (partial) result of a run: ``.buffers``, one mapping per UDF, and ``.damage``.

    ``damage`` is a nav buffer of booleans: True for frames already merged into
    ``buffers``. ``run_udf_iter`` yields these; the last one is complete.
    """

    def __init__(self, buffers: Any, damage: BufferResult) -> None:
        self._buffers = buffers
        self.damage = damage

    @property
    def buffers(self) -> tuple[UDFResultDict, ...]:
        """One result mapping per UDF (``get_results`` runs on first access)."""
        if callable(self._buffers):
            self._buffers = tuple(self._buffers())
        return self._buffers

    def __getitem__(self, i: int) -> UDFResultDict:
        return self.buffers[i]

    def __len__(self) -> int:
        return len(self.buffers)

    def __iter__(self) -> Iterator[UDFResultDict]:
        return iter(self.buffers)

    def __repr__(self) -> str:
        done = int(np.count_nonzero(self.damage.raw_data))
        return f"<UDFResults: {done} of {self.damage.raw_data.size} frames>"


def wrap(
    collected: Sequence[Mapping[str, tuple[BufferWrapper, np.ndarray, np.ndarray | None]]],
    context: ResultContext,
    valid: np.ndarray | None = None,
    attrs: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[UDFResultDict, ...]:
    """Result mappings from what ``merge.collect_results`` returned, one per UDF."""
    out = []
    for k, per_udf in enumerate(collected):
        ctx = context if attrs is None else _with_attrs(context, attrs[k])
        out.append(
            UDFResultDict(
                (name, BufferResult(name, decl, arr, ctx, valid, mask))
                for name, (decl, arr, mask) in per_udf.items()
            )
        )
    return tuple(out)


def _with_attrs(context: ResultContext, attrs: Mapping[str, Any]) -> ResultContext:
    return dataclasses.replace(context, udf_attrs={**context.udf_attrs, **attrs})
