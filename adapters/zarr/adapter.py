"""The ``zarr`` adapter: :class:`ZarrAdapter`, and what it reads from a store's metadata.

Opening reads metadata only (consolidated metadata where the store has it): the
array, its dimension names, the coordinate arrays and attributes stored beside it,
and its codecs, which are refused if they unpickle data (unless ``allow_pickle``).
zarr is imported only when a store is opened.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from dask.base import tokenize

from dataflow.adapters.zarr._internals import (
    METADATA_FILES,
    dimension_names,
    metadata_dict,
    zarr_format,
)
from dataflow.adapters.zarr.chunks import _chunk_files
from dataflow.adapters.zarr.credentials import _as_source, _is_url, _Source
from dataflow.adapters.zarr.reader import ZarrFrameReader
from dataflow.config import request_concurrency
from dataflow.errors import DataSetException
from dataflow.sources import (
    DEFAULT_PARTITION_BYTES,
    Adapter,
    check_count,
    check_flag,
    check_sig_dims,
    chunk_boundaries,
    make_layout,
    reader_dataset,
    whole_chunk_count,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from dataflow.sources import DataSet

__all__ = ["ZarrAdapter"]


def _normalize_ds_path(ds_path: Any) -> str:
    if ds_path is None:
        return ""
    if not isinstance(ds_path, str):
        raise TypeError(
            f"ds_path is a {type(ds_path).__name__}; expected a str naming an array in the "
            "group, such as 'intensity'"
        )
    return ds_path.strip("/")


def _list_arrays(group: Any, prefix: str = "") -> list[str]:
    """Paths of all arrays below ``group``, depth first."""
    names = [f"{prefix}{name}" for name, _ in group.arrays()]
    for name, sub in group.groups():
        names.extend(_list_arrays(sub, f"{prefix}{name}/"))
    return sorted(names)


def _listing(group: Any) -> str:
    return ", ".join(repr(a) for a in _list_arrays(group)) or "none"


def _open_array(source: _Source, base: str, ds_path: str, consolidated: bool | None) -> Any:
    """The zarr array ``ds_path`` of the node at ``base`` in ``source``; metadata only."""
    import zarr

    where = repr(source.name) + (f" (path {base!r})" if base else "")
    store = source.open_store()
    try:
        node = zarr.open(store=store, path=base, mode="r", use_consolidated=consolidated)
    except FileNotFoundError as e:
        if source.kind == "url":
            raise FileNotFoundError(
                f"no zarr array or group at {where}: found no zarr metadata "
                f"({', '.join(METADATA_FILES)})"
            ) from e
        raise DataSetException(
            f"{where} is not a zarr store: found no zarr metadata "
            f"({', '.join(METADATA_FILES)}) in it"
        ) from e
    except (ValueError, TypeError, KeyError) as e:
        if consolidated:
            raise DataSetException(
                f"consolidated is True; {where} could not be opened with consolidated "
                f"metadata ({type(e).__name__}: {e}). Pass consolidated=None to use "
                "consolidated metadata only where the store has it"
            ) from e
        raise DataSetException(f"{where} could not be opened as zarr: {e}") from e
    if isinstance(node, zarr.Array):
        if ds_path:
            raise DataSetException(
                f"{where} is a zarr array, not a group; ds_path is {ds_path!r}, expected None"
            )
        return node
    if not ds_path:
        raise DataSetException(
            f"{where} is a zarr group; pass ds_path= to name the array to load. "
            f"Arrays in the group: {_listing(node)}"
        )
    try:
        arr = node[ds_path]
    except KeyError as e:
        raise DataSetException(
            f"ds_path is {ds_path!r}; the group {where} has no such member. "
            f"Arrays in the group: {_listing(node)}"
        ) from e
    if not isinstance(arr, zarr.Array):
        raise DataSetException(
            f"ds_path is {ds_path!r}, a group in {where}; expected an array. "
            f"Arrays in the group: {_listing(node)}"
        )
    return arr


def _pickle_codecs(arr: Any) -> list[str] | None:
    """Names of codecs, filters or compressors of ``arr`` that unpickle data.

    None if they cannot be told: the array's metadata does not serialize.
    """
    try:
        meta = metadata_dict(arr)
    except Exception:  # noqa: BLE001 - unknown metadata: the caller refuses it
        return None
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("id", "name", "codec_id"):
                value = node.get(key)
                if isinstance(value, str) and "pickle" in value.lower():
                    found.append(value)
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    walk({k: meta.get(k) for k in ("codecs", "filters", "compressor", "compressors")})
    return found


def _check_codecs(arr: Any, where: str, allow_pickle: bool) -> None:
    """Refuse object dtypes and codecs that unpickle, or that cannot be checked."""
    dtype = np.dtype(arr.dtype)
    if dtype.hasobject and not allow_pickle:
        raise DataSetException(
            f"{where} has dtype object: its chunks decode to Python objects; pass "
            "allow_pickle=True to load it, for stores you trust only"
        )
    if allow_pickle:
        return
    pickling = _pickle_codecs(arr)
    if pickling is None:
        raise DataSetException(
            f"the codecs of {where} could not be checked (its metadata does not serialize), "
            "so they may unpickle its chunks; pass allow_pickle=True to load it, for stores "
            "you trust only"
        )
    if pickling:
        raise DataSetException(
            f"{where} is encoded with {pickling}, which unpickles its chunks; pass "
            "allow_pickle=True to load it, for stores you trust only"
        )


def _dims_of(arr: Any) -> tuple[str, ...] | None:
    """Dimension names stored with the array by xarray (format 2) or zarr (format 3)."""
    names = arr.attrs.get("_ARRAY_DIMENSIONS")
    if names is None:
        names = dimension_names(arr)
    if names is None or len(names) != arr.ndim or not all(isinstance(n, str) for n in names):
        return None
    return tuple(names)


def _coords_of(
    source: _Source, array_path: str, dims: tuple[str, ...], shape: tuple[int, ...]
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Coordinate arrays stored beside the array, as ``xarray.Dataset.to_zarr`` writes them.

    A 1-D array named after a dimension, of that dimension's length, in the same group
    is its coordinate; its ``units`` attribute becomes the dimension's unit.
    """
    import zarr

    if not array_path.strip("/"):  # the array is the store's root: no group around it
        return {}, {}
    parent = array_path.rsplit("/", 1)[0] if "/" in array_path else ""
    try:
        group = zarr.open_group(store=source.open_store(), path=parent, mode="r")
    except (FileNotFoundError, ValueError, TypeError, KeyError):
        return {}, {}
    coords: dict[str, np.ndarray] = {}
    units: dict[str, str] = {}
    for dim, size in zip(dims, shape, strict=True):
        if dim == array_path.rsplit("/", 1)[-1]:
            continue
        try:
            node = group[dim]
        except KeyError:
            continue
        if not isinstance(node, zarr.Array) or node.shape != (size,):
            continue
        coords[dim] = np.asarray(node[...])
        unit = node.attrs.get("units")
        if isinstance(unit, str):
            units[dim] = unit
    return coords, units


def _local_identity(directory: str) -> str:
    """What identifies the stored data of a local array: every file under ``directory``.

    Relative path, size and modification time of each (metadata and chunk files), so
    chunks rewritten in place give the dataset new keys; one ``stat`` per file, never
    the bytes.
    """
    names: list[str] = []
    sizes: list[int] = []
    mtimes: list[int] = []
    pending = [""]
    while pending:
        relative = pending.pop()
        with os.scandir(os.path.join(directory, relative)) as entries:
            for entry in entries:
                name = f"{relative}/{entry.name}" if relative else entry.name
                if entry.is_dir(follow_symlinks=False):
                    pending.append(name)
                    continue
                stat = entry.stat()
                names.append(name)
                sizes.append(stat.st_size)
                mtimes.append(stat.st_mtime_ns)
    order = np.argsort(names, kind="stable") if names else np.zeros(0, np.intp)
    return tokenize(
        "\n".join(names[i] for i in order),
        np.asarray(sizes, dtype=np.int64)[order],
        np.asarray(mtimes, dtype=np.int64)[order],
    )


def _identity(source: _Source, directory: str) -> Any:
    """The dataset's identity: its files for a local array, a fresh one otherwise."""
    import uuid

    if source.kind == "local":
        return (source.location, directory, _local_identity(directory))
    return (source.name, uuid.uuid4().hex)  # a remote or in-memory store: no cheap check


class ZarrAdapter(Adapter):
    """The ``zarr`` source: an array in a zarr store (format 2 or 3), local or remote.

    Examples
    --------
    >>> import zarr
    >>> z = zarr.open_array(
    ...     tmp_path / "scan.zarr", mode="w", shape=(4, 6, 8, 8), chunks=(1, 6, 8, 8)
    ... )
    >>> z[:] = 1
    >>> ds = ctx.load("zarr", path=tmp_path / "scan.zarr", num_partitions=2)
    >>> tuple(ds.shape), [(p.start, p.stop) for p in ds.partitions]
    ((4, 6, 8, 8), [(0, 12), (12, 24)])
    """

    name = "zarr"
    description = "an array in a zarr store (format 2 or 3): local, fsspec URL or store object"
    url = "https://zarr.readthedocs.io"
    extensions = (".zarr",)

    @staticmethod
    def guess_can_open(path: Any) -> bool:
        """True for a path ending in ``.zarr``, a directory holding zarr metadata, or a zarr object.

        Examples
        --------
        >>> ZarrAdapter.guess_can_open("scan.zarr/"), ZarrAdapter.guess_can_open("scan.npy")
        (True, False)
        """
        if not isinstance(path, (str, os.PathLike)):
            zarr = sys.modules.get("zarr")  # a zarr object means zarr is imported
            if zarr is None:
                return False
            from zarr.abc.store import Store

            return isinstance(path, (Store, zarr.Array, zarr.Group))
        if os.fspath(path).rstrip("/\\").lower().endswith(".zarr"):
            return True
        if isinstance(path, str) and _is_url(path):
            return False
        p = Path(path)
        return p.is_dir() and any((p / name).exists() for name in METADATA_FILES)

    @staticmethod
    def open(
        path: Any = None,
        *,
        ds_path: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        consolidated: bool | None = None,
        sig_dims: int | None = None,
        nav_shape: Sequence[int] | None = None,
        sig_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        num_partitions: int | None = None,
        partition_bytes: int = DEFAULT_PARTITION_BYTES,
        min_partitions: int = 1,
        dims: Sequence[str] | None = None,
        allow_pickle: bool = False,
        missing_chunks: Literal["fill", "raise"] = "fill",
        credentials_in_graph: bool = False,
    ) -> DataSet:
        """Open an array of a zarr store as a DataSet; only metadata is read.

        Parameters
        ----------
        path
            The store: a local directory, a URL read through fsspec (such as
            ``"s3://bucket/scan.zarr"``; install ``dataflow-udf[s3]`` for S3), a zarr
            store, a ``zarr.Group`` or a ``zarr.Array``. The node it names is an array
            or a group holding the array.
        ds_path
            Path of the array inside the group, such as ``"intensity"`` for a store
            written by ``xarray.Dataset.to_zarr``; None if ``path`` is an array.
        storage_options
            Options for the fsspec filesystem of a URL (``key``, ``secret``,
            ``endpoint_url``, ...). Entries that may hold credentials (all but
            ``anon``, ``endpoint_url``, ``region_name`` and similar settings) are kept
            out of the dataset's dask graph: it carries an opaque reference to them,
            valid in this process only. Threads and the synchronous scheduler read
            with them; workers in other processes need credentials of their own, or
            ``credentials_in_graph=True``. They never appear in reprs or messages.
        consolidated
            Use the group's consolidated metadata: None if present, True to require
            it, False to ignore it.
        sig_dims
            Number of trailing signal dimensions of the stored array; 2 by default
            (``len(sig_shape)`` if that is given).
        nav_shape, sig_shape, sync_offset
            Reshape the frames; see :func:`dataflow.sources.make_layout`.
        num_partitions
            Number of partitions. By default about ``partition_bytes`` each, but no
            more than there are runs of whole storage chunks (or shards), so that
            every chunk is read once; more than that, and chunks that straddle a
            partition boundary are read by each partition they hold frames of.
        partition_bytes
            Target partition size in bytes.
        min_partitions
            Fewest partitions (``ctx.load`` passes the number of workers), as far as
            the storage chunks allow.
        dims
            Dimension names, navigation first; by default those stored with the array
            (``_ARRAY_DIMENSIONS`` as written by xarray, or zarr 3 ``dimension_names``).
        allow_pickle
            Accept arrays of dtype object. Their chunks are decoded into Python
            objects by the codecs the store names: only for stores you trust.
        missing_chunks
            ``"fill"`` (zarr's default) reads a chunk absent from the store as the
            fill value; ``"raise"`` raises :class:`ZarrReadError` naming its key (for
            stores written with every chunk; zarr skips chunks equal to the fill value
            unless ``write_empty_chunks=True``).
        credentials_in_graph
            Send all ``storage_options`` with the task graph, so workers in other
            processes read with them. They are then pickled in plain text.

        Returns
        -------
        DataSet
            Partition boundaries on storage chunk boundaries; one task per partition.
            Its ``reader`` skips chunks without selected frames when a ROI is given.

        Raises
        ------
        FileNotFoundError
            If a local ``path`` does not exist, or a URL holds no zarr metadata.
        DataSetException
            If ``path`` is not a zarr store, is a group and ``ds_path`` is missing or
            names no array (the message lists the arrays), the dtype is not numeric,
            or the dtype is object and ``allow_pickle`` is False.
        TypeError
            If ``path`` is none of the accepted types, or ``storage_options`` is given
            for something other than a URL.

        Notes
        -----
        Reading a corrupt chunk raises :class:`ZarrReadError` naming the array and
        the chunk's key.
        """
        import zarr

        if int(zarr.__version__.split(".")[0]) < 3:
            raise ImportError(
                f"the zarr adapter needs zarr-python 3 or later; zarr {zarr.__version__} is "
                "installed. Upgrade it: pip install 'zarr>=3.1'"
            )
        ds_path = _normalize_ds_path(ds_path)
        allow_pickle = check_flag("allow_pickle", allow_pickle)
        credentials_in_graph = check_flag("credentials_in_graph", credentials_in_graph)
        if consolidated is not None:
            consolidated = check_flag("consolidated", consolidated)
        if missing_chunks not in ("fill", "raise"):
            raise ValueError(f"missing_chunks is {missing_chunks!r}; expected 'fill' or 'raise'")
        min_partitions = check_count("min_partitions", min_partitions)
        partition_bytes = check_count("partition_bytes", partition_bytes)
        source, base = _as_source(path, storage_options, credentials_in_graph)
        arr = _open_array(source, base, ds_path, consolidated)
        full_path = arr.path
        reader_name = repr(source.name) + (f" (ds_path {full_path!r})" if full_path else "")
        where = f"the zarr array {reader_name}"
        _check_codecs(arr, where, allow_pickle)
        dtype = np.dtype(arr.dtype)
        if dtype.kind in "SUTV":
            raise DataSetException(f"{where} has dtype {dtype}; expected a numeric dtype")
        shape = tuple(int(s) for s in arr.shape)
        if sig_dims is None:
            sig_dims = 2 if sig_shape is None else len(tuple(sig_shape))
        sig_dims = check_sig_dims(sig_dims, shape, where)
        layout = make_layout(
            shape,
            sig_dims,
            nav_shape=nav_shape,
            sig_shape=sig_shape,
            sync_offset=sync_offset,
            source=where,
        )
        raw_nav = shape[: len(shape) - sig_dims]
        storage_chunks = tuple(int(c) for c in (arr.shards or arr.chunks))
        directory = os.path.join(source.location, full_path)
        files = (
            _chunk_files(arr, directory, reader_name, full_path, missing_chunks)
            if source.kind == "local"
            else None
        )
        # partitions end on boundaries of what one read fetches: a stored object, or
        # an inner chunk of a shard where chunk files are read by byte range
        read_unit = tuple(int(c) for c in arr.chunks) if files is not None else storage_chunks
        bounds = layout.dataset_boundaries(
            chunk_boundaries(raw_nav, read_unit[: len(raw_nav)]).tolist()
        )
        if num_partitions is None:  # as many as asked by size and workers, no chunk read twice
            num_partitions = whole_chunk_count(
                layout.n_frames,
                math.prod(layout.sig_shape) * dtype.itemsize,
                bounds,
                min_partitions=min_partitions,
                target_bytes=partition_bytes,
                where=where,
                chunk_shape=read_unit,
            )
        reader = ZarrFrameReader(
            source=source,
            ds_path=full_path,
            zarr_format=zarr_format(arr),
            raw_shape=shape,
            sig_dims=sig_dims,
            dtype=dtype,
            read_chunks=tuple(int(c) for c in arr.chunks),
            storage_chunks=storage_chunks,
            layout=layout,
            missing_chunks=missing_chunks,
            request_concurrency=request_concurrency(),
            files=files,
        )
        same_frames = (
            layout.nav_shape == raw_nav and tuple(layout.sig_shape) == shape[len(raw_nav) :]
        )
        # stored attributes, without encoding details (_ARRAY_DIMENSIONS, _FillValue, ...)
        # that belong to the store, not to the data or to results written from it
        attrs = {k: v for k, v in arr.attrs.items() if not k.startswith("_")}
        stored_dims = _dims_of(arr) if same_frames else None
        coords: dict[str, np.ndarray] = {}
        if stored_dims is not None and dims is None:
            coords, units = _coords_of(source, full_path, stored_dims, shape)
            if units:
                attrs["units"] = units
            elif attrs.get("units") is not None and not isinstance(attrs["units"], dict):
                attrs["data_units"] = attrs.pop("units")  # the data's own unit, not per dim
        return reader_dataset(
            reader,
            name="zarr",
            identity=_identity(source, directory),
            num_partitions=num_partitions,
            partition_bytes=partition_bytes,
            min_partitions=min_partitions,
            chunk_boundaries=bounds,
            dims=dims if dims is not None else stored_dims,
            coords=coords,
            attrs=attrs,
        )
