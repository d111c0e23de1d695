"""The in-memory sources: ``memory`` (a NumPy array), ``dask`` (a dask array) and
``xarray`` (a DataArray), registered like the file adapters."""

from __future__ import annotations

import math
import uuid
import warnings
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np

from dataflow._dask import array_from_blocks, task
from dataflow.errors import DataflowWarning, DataSetException
from dataflow.sources.adapter import Adapter
from dataflow.sources.checks import check_sig_dims, tile_depth, warn_ignored
from dataflow.sources.layout import make_layout, pad_frames
from dataflow.sources.model import DataSet
from dataflow.sources.partitions import DEFAULT_PARTITION_BYTES, plan_partitions

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["DaskAdapter", "MemoryAdapter", "XarrayAdapter"]


class MemoryAdapter(Adapter):
    """The ``memory`` source: a NumPy array, wrapped without a copy and without hashing."""

    name = "memory"
    description = "an in-memory NumPy array"
    extensions = ()

    @staticmethod
    def open(
        data: Any = None,
        *,
        sig_dims: int | None = None,
        num_partitions: int | None = None,
        partition_bytes: int = DEFAULT_PARTITION_BYTES,
        nav_shape: Sequence[int] | None = None,
        sig_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        tileshape: Sequence[int] | None = None,
        tiledelay: float | None = None,
        dims: Sequence[str] | None = None,
        coords: Mapping[str, Any] | None = None,
        attrs: Mapping[str, Any] | None = None,
        min_partitions: int = 1,
        datashape: Sequence[int] | None = None,
    ) -> DataSet:
        """Wrap ``data`` (nav + sig) as a DataSet.

        Parameters
        ----------
        data
            The array, navigation dimensions first.
        sig_dims
            Number of signal dimensions; 2 by default (``len(sig_shape)`` if given).
        num_partitions
            Number of partitions; by default about ``partition_bytes`` each.
        nav_shape, sig_shape, sync_offset
            Reshape the frames; see :func:`make_layout`.
        tileshape
            Force tiles of ``tileshape[0]`` frames (tiles always span whole frames).
        tiledelay
            Seconds to sleep per tile, to make runs slow in tests.
        datashape
            Without ``data``: the shape of random float32 data to make (as LiberTEM).
        dims, coords, attrs
            Dimension names, coordinates and attributes of the dataset.
        """
        if data is None and datashape is not None:
            data = np.random.default_rng().random(tuple(datashape), dtype=np.float32)
        if data is None:
            raise TypeError("ctx.load('memory', ...) needs data=<numpy array> (or datashape=)")
        if not isinstance(data, np.ndarray):
            if hasattr(data, "__dask_graph__"):
                raise TypeError(
                    f"data is a {type(data).__name__}; use ctx.load('dask', array, sig_dims=...)"
                )
            data = np.asarray(data)
        if sig_dims is None:
            sig_dims = 2 if sig_shape is None else len(tuple(sig_shape))
        sig_dims = check_sig_dims(sig_dims, data.shape)
        if not data.flags.c_contiguous:
            warnings.warn(
                f"data is not C-contiguous; dataflow made a contiguous copy "
                f"({data.nbytes / 2**20:.1f} MiB). Pass np.ascontiguousarray(data) to own it.",
                DataflowWarning,
                stacklevel=3,
            )
            data = np.ascontiguousarray(data)
        layout = make_layout(
            data.shape, sig_dims, nav_shape=nav_shape, sig_shape=sig_shape, sync_offset=sync_offset
        )
        raw = data.reshape((layout.n_raw, *layout.sig_shape))  # a view: data is C-contiguous
        partitions = plan_partitions(
            layout.n_frames,
            raw[0].nbytes if layout.n_raw else 0,
            row_length=layout.nav_shape[-1],
            num_partitions=num_partitions,
            min_partitions=min_partitions,
            target_bytes=partition_bytes,
        )
        token = uuid.uuid4().hex
        name = f"memory-{token}"
        # each partition's frames are one literal view of `data`: no copy, no hash; only
        # partitions that reach past the data (sync_offset, a larger nav_shape) get a task
        # that pads them with zero frames
        zeros = (0,) * len(layout.sig_shape)
        blocks: dict[tuple[int, ...], Any] = {}
        for p in partitions:
            a, b, pre, post = layout.raw_window(p.start, p.stop)
            view = raw[a:b]
            padded = pre or post
            blocks[(p.index, *zeros)] = (
                task(pad_frames, view, pre, post, layout.sig_shape) if padded else view
            )
        chunks = (tuple(p.n_frames for p in partitions), *((s,) for s in layout.sig_shape))
        array = array_from_blocks(name, blocks, chunks, raw.dtype)
        return DataSet(
            array,
            nav_shape=layout.nav_shape,
            partitions=partitions,
            token=token,
            dims=dims,
            coords=coords,
            attrs=attrs,
            layout=layout,
            tile_depth=tile_depth(tileshape),
            tile_delay=tiledelay,
            resident=True,
        )


class DaskAdapter(Adapter):
    """The ``dask`` source: any dask array; its chunks become partition boundaries."""

    name = "dask"
    description = "a dask array"
    extensions = ()

    @staticmethod
    def open(
        dask_array: Any = None,
        *,
        sig_dims: int | None = None,
        num_partitions: int | None = None,
        partition_bytes: int = DEFAULT_PARTITION_BYTES,
        nav_shape: Sequence[int] | None = None,
        sig_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        dims: Sequence[str] | None = None,
        coords: Mapping[str, Any] | None = None,
        attrs: Mapping[str, Any] | None = None,
        min_partitions: int = 1,
        preserve_dimensions: bool = True,
        min_size: float | None = None,
        io_backend: Any = None,
    ) -> DataSet:
        """Wrap ``dask_array`` (nav + sig) as a DataSet.

        Partition boundaries follow the array's chunks (flattened over the navigation
        axes) where enough of them exist; signal chunks are merged into whole frames.
        ``min_size`` (bytes) is LiberTEM's name for ``partition_bytes``.
        """
        warn_ignored(
            "dask", io_backend=(io_backend, None), preserve_dimensions=(preserve_dimensions, True)
        )
        if not isinstance(dask_array, da.Array):
            raise TypeError(
                f"ctx.load('dask', ...) needs a dask.array.Array; got {type(dask_array).__name__}"
            )
        if any(math.isnan(s) for s in dask_array.shape):
            raise DataSetException(
                "the array has unknown chunk sizes; call .compute_chunk_sizes() first"
            )
        if sig_dims is None:
            sig_dims = 2 if sig_shape is None else len(tuple(sig_shape))
        sig_dims = check_sig_dims(sig_dims, dask_array.shape)
        if min_size is not None:
            partition_bytes = int(min_size)
        layout = make_layout(
            dask_array.shape,
            sig_dims,
            nav_shape=nav_shape,
            sig_shape=sig_shape,
            sync_offset=sync_offset,
        )
        n_nav = dask_array.ndim - sig_dims
        # whole frames per block, then flatten the navigation axes
        whole = dask_array.rechunk(dict.fromkeys(range(n_nav, dask_array.ndim), -1))
        raw = whole.reshape((layout.n_raw, *layout.sig_shape))
        raw_bounds = np.concatenate([[0], np.cumsum(raw.chunks[0])]).tolist()
        flat = raw
        if not layout.is_identity:
            a, b, pre, post = layout.raw_window(0, layout.n_frames)
            pieces = [raw[a:b]]
            if pre:
                pieces.insert(0, da.zeros((pre, *layout.sig_shape), dtype=raw.dtype))
            if post:
                pieces.append(da.zeros((post, *layout.sig_shape), dtype=raw.dtype))
            flat = da.concatenate(pieces) if len(pieces) > 1 else pieces[0]
        frame_bytes = math.prod(layout.sig_shape) * dask_array.dtype.itemsize
        partitions = plan_partitions(
            layout.n_frames,
            frame_bytes,
            row_length=layout.nav_shape[-1],
            num_partitions=num_partitions,
            min_partitions=min_partitions,
            target_bytes=partition_bytes,
            chunk_boundaries=layout.dataset_boundaries(raw_bounds),
        )
        sizes = tuple(p.n_frames for p in partitions)
        part_array = flat.rechunk({0: sizes}) if sizes != flat.chunks[0] else flat
        return DataSet(
            part_array,
            nav_shape=layout.nav_shape,
            partitions=partitions,
            token=f"dask-{dask_array.name}-{sizes}-{layout}",
            dims=dims,
            coords=coords,
            attrs=attrs,
            array=dask_array
            if layout.is_identity and tuple(layout.sig_shape) == tuple(dask_array.shape[n_nav:])
            else None,
            layout=layout,
            resident=_holds_its_data(dask_array),
        )


class XarrayAdapter(Adapter):
    """The ``xarray`` source: a DataArray, NumPy- or dask-backed, with its labels.

    Signal dimensions are chosen by name; the others are the navigation dimensions,
    in the DataArray's order. Dimension names, coordinates (with their ``units``
    attributes) and attributes are carried into the results.
    """

    name = "xarray"
    description = "an xarray.DataArray (NumPy- or dask-backed)"
    extensions = ()

    @staticmethod
    def open(
        data_array: Any = None,
        *,
        sig_dims: Sequence[str] | int | None = None,
        num_partitions: int | None = None,
        partition_bytes: int = DEFAULT_PARTITION_BYTES,
        min_partitions: int = 1,
    ) -> DataSet:
        """Wrap ``data_array``; ``sig_dims`` names its signal dimensions (default: last 2)."""
        import xarray as xr

        if not isinstance(data_array, xr.DataArray):
            raise TypeError(
                f"ctx.load('xarray', ...) needs an xarray.DataArray; got "
                f"{type(data_array).__name__}"
            )
        names = _signal_names(data_array, sig_dims)
        nav = [d for d in data_array.dims if d not in names]
        arr = data_array.transpose(*nav, *names)
        dims = tuple(str(d) for d in arr.dims)
        coords = {str(d): np.asarray(arr[d].values) for d in arr.dims if d in arr.coords}
        units = {
            str(d): arr[d].attrs["units"]
            for d in arr.dims
            if d in arr.coords and "units" in arr[d].attrs
        }
        attrs = dict(arr.attrs)
        if isinstance(attrs.get("units"), str):  # the data's own unit
            attrs["data_units"] = attrs.pop("units")
        if units:
            attrs["units"] = units
        common: dict[str, Any] = {
            "sig_dims": len(names),
            "num_partitions": num_partitions,
            "partition_bytes": partition_bytes,
            "dims": dims,
            "coords": coords,
            "attrs": attrs,
            "min_partitions": min_partitions,
        }
        if isinstance(arr.data, da.Array):
            _warn_signal_chunks(arr.data, len(names), partition_bytes)
            return DaskAdapter.open(arr.data, **common)
        return MemoryAdapter.open(np.asarray(arr.data), **common)


def _holds_its_data(array: da.Array) -> bool:
    """Whether ``array``'s graph holds its data as NumPy arrays (``da.from_array`` of one).

    True when the NumPy literals in the graph are at least as large as the array:
    nothing is read from storage or computed at any cost to make it.
    """
    held = sum(v.nbytes for v in dict(array.__dask_graph__()).values() if isinstance(v, np.ndarray))
    return bool(held >= array.nbytes)


def _signal_names(data_array: Any, sig_dims: Sequence[str] | int | None) -> tuple[str, ...]:
    dims = tuple(str(d) for d in data_array.dims)
    if sig_dims is None:
        sig_dims = 2
    if isinstance(sig_dims, (int, np.integer)):  # a bool is refused here
        check_sig_dims(sig_dims, data_array.shape, f"the DataArray with dims {dims}")
        return dims[len(dims) - int(sig_dims) :]
    if isinstance(sig_dims, str):
        sig_dims = (sig_dims,)
    names = tuple(str(d) for d in sig_dims)
    missing = [d for d in names if d not in dims]
    if missing:
        raise ValueError(f"sig_dims names {missing}, which the DataArray lacks; its dims: {dims}")
    if len(names) >= len(dims):
        raise ValueError(
            f"sig_dims is {names}; at least one of the DataArray's dims {dims} must be left "
            "for navigation"
        )
    return names


def _warn_signal_chunks(array: da.Array, sig_dims: int, partition_bytes: int) -> None:
    """Warn when merging signal chunks into whole frames makes large intermediate blocks."""
    sig_chunks = array.chunks[array.ndim - sig_dims :]
    if all(len(c) == 1 for c in sig_chunks):
        return
    nav_block = math.prod(max(c) for c in array.chunks[: array.ndim - sig_dims])
    frame_bytes = math.prod(array.shape[array.ndim - sig_dims :]) * array.dtype.itemsize
    block = nav_block * frame_bytes
    if block > partition_bytes:
        warnings.warn(
            f"the signal dimensions are chunked {tuple(max(c) for c in sig_chunks)}; dataflow "
            f"processes whole frames, so it merges them into blocks of {block / 2**20:.0f} MiB "
            f"(partitions are near {partition_bytes / 2**20:.0f} MiB). Rechunk the navigation "
            "dimensions smaller, or the signal dimensions whole, to avoid it.",
            DataflowWarning,
            stacklevel=4,
        )
