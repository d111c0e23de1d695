"""The ``zarr`` adapter: an array in a zarr store (format 2 or 3), local or remote.

A source is a local directory, a URL read through fsspec (``s3://bucket/scan.zarr``
with ``storage_options=``), or a zarr store, group or array object. Opening reads
metadata only (consolidated metadata where the store has it).

Partitions are runs of whole frames in flattened navigation order whose boundaries
fall on storage chunk (or shard) boundaries, so that no run reads a chunk twice; one
dask task per partition, however small the chunks. A partition is read with one
zarr call per rectangular region of the navigation axes (a partial first row, whole
rows, a partial last row), straight into the output array. With a ROI, the dataset's
``reader`` reads only the chunks that hold selected frames.

Arrays in a local directory whose chunks are plain bytes, or bytes under one
compressor (zstd, blosc, gzip; any numcodecs compressor in format 2), without
sharding or filters, are read by :class:`_ChunkFiles`: each chunk file straight
into the output array (``readinto``), or decompressed into it, in the task's own
thread. zarr-python's codec pipeline copies every chunk several times and decodes
on one event loop, which made reads run at a fraction of the page cache's speed.
Every other array (remote, sharded, filtered, other codecs) is read through zarr.

Credentials never travel in the graph unless asked to: ``storage_options`` entries
other than a short list of harmless settings (``anon``, ``endpoint_url``, ...) stay
in the process that loaded the dataset, and the graph carries an opaque reference to
them (see :meth:`ZarrAdapter.open`). zarr is imported only when a store is opened.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import re
import sys
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import dask.array as da
import numpy as np
from dask.base import tokenize

from dataflow.sources.adapter import Adapter
from dataflow.sources import (
    DEFAULT_PARTITION_BYTES,
    DataSet,
    FrameLayout,
    check_sig_dims,
    make_layout,
    plan_partitions,
)
from dataflow.errors import DataflowError, DataflowWarning, DataSetException

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

__all__ = ["ZarrAdapter", "ZarrReadError", "chunk_boundaries", "nav_regions"]

_METADATA_FILES = ("zarr.json", ".zarray", ".zgroup")
_METADATA_KEYS = frozenset((*_METADATA_FILES, ".zattrs", ".zmetadata"))

#: storage_options entries that hold no credentials: these travel with the graph.
#: Everything else stays in the loading process (see ``ZarrAdapter.open``).
_PUBLIC_OPTIONS = frozenset(
    {
        "anon",
        "endpoint_url",
        "region_name",
        "use_ssl",
        "requester_pays",
        "profile",
        "version_aware",
        "cache_regions",
        "default_block_size",
        "default_cache_type",
        "default_fill_cache",
        "use_listings_cache",
        "listings_expiry_time",
        "skip_instance_cache",
        "account_name",
        "project",
        "client_kwargs",
        "config_kwargs",
    }
)

#: the private storage_options of this process, by reference (never pickled)
_PRIVATE_OPTIONS: dict[str, dict[str, Any]] = {}


class ZarrReadError(DataflowError, OSError):
    """A zarr store could not be read: a corrupt or missing chunk, or no credentials."""


# sources ---------------------------------------------------------------------------------


def _is_url(text: str) -> bool:
    return "://" in text and not text.startswith("file://")


def _display_url(url: str) -> str:
    """``url`` without user info or query (they may hold credentials), for messages."""
    return re.sub(r"^([a-zA-Z][\w+.-]*://)[^/@]*@", r"\1", url).split("?", 1)[0]


def _split_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``options`` split into entries that hold no credentials and all the others."""
    public: dict[str, Any] = {}
    private: dict[str, Any] = {}
    for key, value in options.items():
        if key in _PUBLIC_OPTIONS and isinstance(value, Mapping):
            pub, priv = _split_options(value)
            if pub:
                public[key] = pub
            if priv:
                private[key] = priv
        elif key in _PUBLIC_OPTIONS and isinstance(value, (str, int, float, bool, type(None))):
            public[key] = value
        else:
            private[key] = value
    return public, private


def _merge_options(public: Mapping[str, Any], private: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(public)
    for key, value in private.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge_options(out[key], value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True, repr=False)
class _Source:
    """How to reach a store: a local directory, a URL, or a store object.

    Picklable, and safe to pickle: credentials in ``storage_options`` are held by
    reference (``private_ref``) unless ``shipped`` carries them by request.
    """

    kind: Literal["local", "url", "store"]
    #: the directory, the URL, or ``repr(store)``: what messages call the store
    name: str
    location: str = ""
    store: Any = None
    options: Mapping[str, Any] = field(default_factory=dict)
    private_ref: str | None = None
    private_keys: tuple[str, ...] = ()
    shipped: Mapping[str, Any] | None = None

    def __repr__(self) -> str:
        return f"<zarr source {self.name!r}>"

    def open_store(self) -> Any:
        """A read-only zarr store (a new object for paths and URLs)."""
        import zarr.storage

        if self.kind == "store":
            return self.store
        if self.kind == "local":
            return zarr.storage.LocalStore(self.location, read_only=True)
        private: Mapping[str, Any] = {}
        if self.shipped is not None:
            private = self.shipped
        elif self.private_ref is not None:
            found = _PRIVATE_OPTIONS.get(self.private_ref)
            if found is None:
                raise ZarrReadError(
                    f"cannot open {self.name!r} here: its storage_options "
                    f"{', '.join(repr(k) for k in self.private_keys)} may hold credentials, so "
                    "they stay in the process that loaded the dataset, and this process (a "
                    "worker) has not got them. Give the workers credentials of their own "
                    "(environment variables, a profile, an instance role) and load without "
                    "those options, or load with credentials_in_graph=True to send them with "
                    "the task graph"
                )
            private = found
        options = _merge_options(self.options, private)
        return zarr.storage.FsspecStore.from_url(
            self.location, storage_options=options or None, read_only=True
        )


def _as_source(path: Any, storage_options: Any, credentials_in_graph: bool) -> tuple[_Source, str]:
    """Normalise every accepted form of ``path``; returns the source and a path inside it.

    Accepts a local path (str or os.PathLike), a URL (str), a zarr store, a
    ``StorePath``, a ``zarr.Group`` or a ``zarr.Array``. Raises TypeError for anything
    else, FileNotFoundError for a local path that does not exist.
    """
    if path is None:
        raise TypeError(
            "ctx.load('zarr', ...) needs path=<local directory, URL, zarr store or array>"
        )
    if storage_options is not None and not isinstance(storage_options, Mapping):
        raise TypeError(
            f"storage_options is a {type(storage_options).__name__}; expected a dict of "
            "fsspec options such as {'anon': True}"
        )
    if isinstance(path, str) and _is_url(path):
        public, private = _split_options(storage_options or {})
        ref = None
        if private and not credentials_in_graph:
            ref = uuid.uuid4().hex
            _PRIVATE_OPTIONS[ref] = private
        source = _Source(
            "url",
            _display_url(path),
            location=path.rstrip("/"),
            options=public,
            private_ref=ref,
            private_keys=tuple(private),
            shipped=private if private and credentials_in_graph else None,
        )
        return source, ""
    if storage_options:
        raise TypeError(
            f"storage_options is given, but path is a {type(path).__name__} "
            f"({_describe(path)}); storage_options apply to URLs such as 's3://bucket/scan.zarr'"
        )
    if isinstance(path, (str, os.PathLike)):
        text = os.fspath(path)
        if isinstance(text, str) and text.startswith("file://"):
            text = text[len("file://") :]
        p = Path(text).expanduser().absolute()
        if not p.exists():
            raise FileNotFoundError(f"no such zarr store: {str(p)!r}")
        if not p.is_dir():
            raise NotADirectoryError(
                f"{str(p)!r} is a file; expected the directory of a zarr store"
            )
        return _Source("local", str(p), location=str(p)), ""
    zarr = sys.modules.get("zarr")
    if zarr is not None:
        from zarr.abc.store import Store
        from zarr.storage import StorePath

        if isinstance(path, Store):
            return _Source("store", repr(path), store=path), ""
        if isinstance(path, StorePath):
            return _Source("store", repr(path.store), store=path.store), path.path
        if isinstance(path, (zarr.Array, zarr.Group)):
            return _Source("store", repr(path.store), store=path.store), path.path
    raise TypeError(
        f"path is a {type(path).__name__}; expected a local path (str or os.PathLike), a URL "
        "such as 's3://bucket/scan.zarr', a zarr store, a zarr.Group or a zarr.Array"
    )


def _describe(path: Any) -> str:
    text = os.fspath(path) if isinstance(path, (str, os.PathLike)) else type(path).__name__
    return repr(text)


def _normalize_ds_path(ds_path: Any) -> str:
    if ds_path is None:
        return ""
    if not isinstance(ds_path, str):
        raise TypeError(
            f"ds_path is a {type(ds_path).__name__}; expected a str naming an array in the "
            "group, such as 'intensity'"
        )
    return ds_path.strip("/")


def _join(*parts: str) -> str:
    return "/".join(p for p in parts if p)


def _list_arrays(group: Any, prefix: str = "") -> list[str]:
    """Paths of all arrays below ``group``, depth first."""
    names = [f"{prefix}{name}" for name, _ in group.arrays()]
    for name, sub in group.groups():
        names.extend(_list_arrays(sub, f"{prefix}{name}/"))
    return sorted(names)


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
                f"({', '.join(_METADATA_FILES)})"
            ) from e
        raise DataSetException(
            f"{where} is not a zarr store: found no zarr metadata "
            f"({', '.join(_METADATA_FILES)}) in it"
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


def _pickle_codecs(arr: Any) -> list[str]:
    """Names of codecs, filters or compressors of ``arr`` that unpickle data."""
    try:
        meta = arr.metadata.to_dict()
    except Exception:  # noqa: BLE001 (metadata that does not serialize: nothing to find)
        return []
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


def _listing(group: Any) -> str:
    return ", ".join(repr(a) for a in _list_arrays(group)) or "none"


def _dims_of(arr: Any) -> tuple[str, ...] | None:
    """Dimension names stored with the array by xarray (format 2) or zarr (format 3)."""
    names = arr.attrs.get("_ARRAY_DIMENSIONS")
    if names is None:
        names = getattr(getattr(arr, "metadata", None), "dimension_names", None)
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


def _metadata_mtime(path: Path, ds_path: str) -> int:
    for name in _METADATA_FILES:
        meta = path / ds_path / name
        if meta.exists():
            return meta.stat().st_mtime_ns
    return path.stat().st_mtime_ns


# partitions and regions ---------------------------------------------------------------------


def chunk_boundaries(nav_shape: Sequence[int], nav_chunks: Sequence[int]) -> np.ndarray:
    """Flat frame indices where a partition boundary cuts no storage chunk.

    Between two neighbouring indices lie whole chunks only. Leading navigation axes
    with chunks of one index are skipped, so a store chunked one row at a time gets
    boundaries inside rows.

    Parameters
    ----------
    nav_shape
        Navigation shape.
    nav_chunks
        Storage chunk (or shard) shape of the navigation axes.

    Returns
    -------
    numpy.ndarray
        Sorted indices, from 0 to the number of frames.

    Examples
    --------
    >>> chunk_boundaries((8, 4), (3, 4)).tolist()
    [0, 12, 24, 32]
    >>> chunk_boundaries((2, 6), (1, 4)).tolist()
    [0, 4, 6, 10, 12]
    """
    nav_shape = tuple(int(s) for s in nav_shape)
    k = 0
    while k < len(nav_shape) - 1 and int(nav_chunks[k]) == 1:
        k += 1
    outer = math.prod(nav_shape[:k])
    inner = math.prod(nav_shape[k + 1 :])
    starts = np.arange(0, nav_shape[k], max(1, int(nav_chunks[k])))
    bounds = (np.arange(outer)[:, None] * nav_shape[k] + starts[None, :]) * inner
    return np.append(bounds.ravel(), math.prod(nav_shape))


def nav_regions(start: int, stop: int, nav_shape: Sequence[int]) -> list[tuple[slice, ...]]:
    """Frames ``start:stop`` of the flattened navigation axis as rectangular regions.

    Parameters
    ----------
    start, stop
        A range of flat frame indices.
    nav_shape
        Navigation shape.

    Returns
    -------
    list of tuple of slice
        Regions of the navigation axes, in order; their frames, flattened and
        concatenated, are frames ``start:stop``. For a 2D scan: a partial first
        row, whole rows, a partial last row (each one only if needed).

    Examples
    --------
    >>> nav_regions(3, 14, (4, 5))
    [(slice(0, 1, None), slice(3, 5, None)), (slice(1, 2, None), slice(0, 5, None)), (slice(2, 3, None), slice(0, 4, None))]
    """
    if start >= stop:
        return []
    if len(nav_shape) == 1:
        return [(slice(start, stop),)]
    rest = tuple(nav_shape[1:])
    inner = math.prod(rest)
    i0, r0 = divmod(start, inner)
    i1, r1 = divmod(stop, inner)
    if i0 == i1:
        return [(slice(i0, i0 + 1), *sub) for sub in nav_regions(r0, r1, rest)]
    regions: list[tuple[slice, ...]] = []
    if r0:
        regions += [(slice(i0, i0 + 1), *sub) for sub in nav_regions(r0, inner, rest)]
        i0 += 1
    if i1 > i0:
        regions.append((slice(i0, i1), *(slice(0, n) for n in rest)))
    if r1:
        regions += [(slice(i1, i1 + 1), *sub) for sub in nav_regions(0, r1, rest)]
    return regions


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of True in a 1D boolean array."""
    padded = np.concatenate([[False], flags, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1]).tolist()
    return list(zip(edges[::2], edges[1::2], strict=True))


def _boxes(needed: np.ndarray) -> list[tuple[tuple[int, int], ...]]:
    """Disjoint boxes, ``(start, stop)`` per axis, that cover exactly the True cells.

    Runs along the last axis, merged along each earlier axis where they repeat, so a
    rectangular selection is one box.
    """
    if needed.ndim == 1:
        return [(run,) for run in _runs(needed)]
    boxes: list[tuple[tuple[int, int], ...]] = []
    opened: dict[tuple[tuple[int, int], ...], int] = {}
    for i in range(needed.shape[0] + 1):
        subs = set(_boxes(needed[i])) if i < needed.shape[0] else set()
        closed = [s for s in opened if s not in subs]
        boxes.extend(((opened.pop(sub), i), *sub) for sub in closed)
        for sub in subs:
            opened.setdefault(sub, i)
    return boxes


def _selected_boxes(
    region: tuple[slice, ...], mask: np.ndarray, chunks: Sequence[int]
) -> list[tuple[slice, ...]]:
    """Sub-regions of ``region`` (local slices) covering the chunks that hold a True frame."""
    edges = []
    needed = mask
    for axis, (s, c) in enumerate(zip(region, chunks, strict=True)):
        inner = np.arange((s.start // c + 1) * c, s.stop, c) - s.start
        e = np.concatenate([[0], inner, [s.stop - s.start]]).astype(np.intp)
        needed = np.logical_or.reduceat(needed, e[:-1], axis=axis)
        edges.append(e)
    return [
        tuple(slice(int(e[a]), int(e[b])) for e, (a, b) in zip(edges, box, strict=True))
        for box in _boxes(needed)
    ]


# reading -----------------------------------------------------------------------------------


@functools.cache
def _strict_store_class() -> type:
    """A zarr store wrapper that raises for missing chunks (``missing_chunks="raise"``)."""
    from zarr.storage import WrapperStore

    class StrictStore(WrapperStore):  # type: ignore[misc, type-arg]
        def __init__(self, store: Any, name: str) -> None:
            super().__init__(store)
            self.name = name

        def _with_store(self, store: Any) -> Any:
            return type(self)(store, self.name)

        async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
            value = await self._store.get(key, prototype, byte_range)
            if value is None and key.rsplit("/", 1)[-1] not in _METADATA_KEYS:
                raise ZarrReadError(
                    f"the zarr array {self.name} has no chunk {key!r} (missing_chunks='raise'; "
                    "pass missing_chunks='fill' to read missing chunks as the fill value)"
                )
            return value

    return StrictStore


def _chunk_parts(
    full: tuple[slice, ...], chunks: tuple[int, ...]
) -> Iterator[tuple[tuple[int, ...], tuple[slice, ...]]]:
    """``(chunk index, the part of full that chunk holds)`` for every chunk full touches."""
    grids = [range(s.start // c, (s.stop - 1) // c + 1) for s, c in zip(full, chunks, strict=True)]
    for index in itertools.product(*grids):
        yield (
            index,
            tuple(
                slice(max(s.start, i * c), min(s.stop, (i + 1) * c))
                for s, i, c in zip(full, index, chunks, strict=True)
            ),
        )


def _numcodecs_decoder(arr: Any) -> Any:
    """The numcodecs codec that undoes ``arr``'s compressor, None for none.

    Raises ``LookupError`` if the array's chunks are not plain bytes under at most one
    compressor this reader knows.
    """
    import numcodecs
    import zarr.codecs

    compressors = tuple(arr.compressors)
    if not compressors:
        return None
    if len(compressors) > 1:
        raise LookupError("more than one compressor")
    (codec,) = compressors
    if arr.metadata.zarr_format == 2:
        if not hasattr(codec, "decode"):
            raise LookupError(f"compressor {codec!r}")
        return codec
    simple = {
        zarr.codecs.ZstdCodec: numcodecs.Zstd,
        zarr.codecs.BloscCodec: numcodecs.Blosc,
        zarr.codecs.GzipCodec: numcodecs.GZip,
    }
    for kind, decoder in simple.items():
        if type(codec) is kind:
            return decoder()
    raise LookupError(f"compressor {codec!r}")


def _chunk_files(
    arr: Any, directory: str, name: str, ds_path: str, missing_chunks: str
) -> _ChunkFiles | None:
    """A :class:`_ChunkFiles` reader for ``arr`` in ``directory``, or None if its chunks
    are not simple files (sharded, filtered, transposed, byte-swapped, other codecs)."""
    import zarr.codecs

    dtype = np.dtype(arr.dtype)
    if dtype.hasobject or not dtype.isnative or getattr(arr, "shards", None) is not None:
        return None
    if tuple(arr.filters) or getattr(arr.metadata, "order", "C") != "C":
        return None
    serializer = arr.serializer
    if serializer is not None:
        endian = getattr(serializer, "endian", None)
        if type(serializer) is not zarr.codecs.BytesCodec or (
            endian is not None and dtype.itemsize > 1 and endian.value != sys.byteorder
        ):
            return None
    try:
        codec = _numcodecs_decoder(arr)
    except LookupError:
        return None
    fill = arr.metadata.fill_value
    return _ChunkFiles(
        directory=directory,
        name=name,
        ds_path=ds_path,
        metadata=arr.metadata,
        shape=tuple(int(n) for n in arr.shape),
        chunks=tuple(int(c) for c in arr.chunks),
        dtype=dtype,
        fill_value=0 if fill is None else fill,
        codec=codec,
        missing_chunks=missing_chunks,
    )


@dataclass(frozen=True, repr=False)
class _ChunkFiles:
    """Reads regions of a local zarr array from its chunk files, without zarr.

    Each chunk a region needs is read once: straight into the output where the whole
    chunk lands in a contiguous stretch of it, otherwise decoded into a scratch
    array and copied. A missing chunk file is the fill value (or an error, with
    ``missing_chunks="raise"``); a short, long or undecodable file is an error that
    names the chunk's key.
    """

    directory: str
    #: the array, as messages name it
    name: str
    #: the array's path in its store: messages give chunk keys from the store's root
    ds_path: str
    #: the array's zarr metadata: its chunk key encoding
    metadata: Any
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype
    fill_value: Any
    #: numcodecs codec of the compressor, or None for plain bytes
    codec: Any
    missing_chunks: str

    def read(self, region: tuple[slice, ...], dest: np.ndarray) -> None:
        """``array[region]`` (the leading axes; all of the others) into ``dest``."""
        full = region + tuple(slice(0, n) for n in self.shape[len(region) :])
        for index, inside in _chunk_parts(full, self.chunks):
            target = dest[
                tuple(
                    slice(i.start - s.start, i.stop - s.start)
                    for i, s in zip(inside, full, strict=True)
                )
            ]
            whole = all(i.stop - i.start == c for i, c in zip(inside, self.chunks, strict=True))
            if whole and target.flags.c_contiguous:
                self._load(index, target)
            else:
                chunk = np.empty(self.chunks, dtype=self.dtype)
                self._load(index, chunk)
                target[...] = chunk[
                    tuple(
                        slice(i.start - n * c, i.stop - n * c)
                        for i, n, c in zip(inside, index, self.chunks, strict=True)
                    )
                ]

    def _load(self, index: tuple[int, ...], out: np.ndarray) -> None:
        """Chunk ``index`` into ``out`` (its shape); the fill value if the file is missing."""
        relative = self.metadata.encode_chunk_key(index)
        path = os.path.join(self.directory, *relative.split("/"))
        key = _join(self.ds_path, relative)
        try:
            f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed below
        except FileNotFoundError:
            if self.missing_chunks == "raise":
                raise ZarrReadError(
                    f"the zarr array {self.name} has no chunk {key!r} (missing_chunks='raise'; "
                    "pass missing_chunks='fill' to read missing chunks as the fill value)"
                ) from None
            out[...] = self.fill_value
            return
        with f:
            size = os.fstat(f.fileno()).st_size
            if self.codec is None:
                if size != out.nbytes:
                    raise ZarrReadError(
                        f"the zarr array {self.name}: chunk {key!r} could not be read (it has "
                        f"{size} bytes; an uncompressed chunk of shape {self.chunks} and dtype "
                        f"{self.dtype} has {out.nbytes})"
                    )
                f.readinto(memoryview(out).cast("B"))
                return
            encoded = f.read()
        try:
            self.codec.decode(encoded, out=out)
        except Exception as e:  # any codec error: name the chunk
            raise ZarrReadError(
                f"the zarr array {self.name}: chunk {key!r} could not be read "
                f"({type(e).__name__}: {e})"
            ) from e


@dataclass(frozen=True, repr=False)
class _ZarrReader:
    """``reader(start, stop, mask)``: dataset frames ``start:stop`` from the store.

    Picklable; opens the array by path in the calling process. With a ``mask``, reads
    only the chunks holding frames where it is True; other frames stay zero.
    """

    source: _Source
    ds_path: str
    zarr_format: int
    raw_shape: tuple[int, ...]
    sig_dims: int
    dtype: np.dtype
    #: chunk shape zarr decodes (inner chunks of a sharded array)
    read_chunks: tuple[int, ...]
    #: shape of one stored object: a shard, or a chunk if the array is not sharded
    storage_chunks: tuple[int, ...]
    layout: FrameLayout
    missing_chunks: str = "fill"
    #: reads chunk files directly (a local array of plain or compressed bytes), or None
    files: _ChunkFiles | None = None

    @property
    def name(self) -> str:
        """The array, as messages name it."""
        return repr(self.source.name) + (f" (ds_path {self.ds_path!r})" if self.ds_path else "")

    def __repr__(self) -> str:
        return f"<zarr reader {self.name}>"

    def open_array(self) -> Any:
        """The zarr array, opened by path; checks it has not changed shape."""
        import zarr

        store = self.source.open_store()
        if self.missing_chunks == "raise":
            store = _strict_store_class()(store, self.name)
        arr = zarr.open_array(
            store=store, path=self.ds_path, mode="r", zarr_format=self.zarr_format
        )
        if tuple(arr.shape) != self.raw_shape:
            raise ZarrReadError(
                f"the zarr array {self.name} has shape {tuple(arr.shape)}; it had shape "
                f"{self.raw_shape} when it was opened. Load it again"
            )
        return arr

    def __call__(self, start: int, stop: int, mask: np.ndarray | None = None) -> np.ndarray:
        layout = self.layout
        raw_sig = self.raw_shape[len(self.raw_shape) - self.sig_dims :]
        raw_nav = self.raw_shape[: len(self.raw_shape) - self.sig_dims]
        a, b, pre, post = layout.raw_window(start, stop)
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (stop - start,):
                raise ValueError(
                    f"mask has shape {mask.shape}; frames {start}:{stop} need shape "
                    f"({stop - start},)"
                )
            if mask.all():
                mask = None
        alloc = np.zeros if (mask is not None or pre or post) else np.empty
        out = alloc((stop - start, *raw_sig), dtype=self.dtype)
        if b > a and (mask is None or mask[pre : pre + b - a].any()):
            arr = self.open_array()
            raw = out[pre : pre + b - a]
            raw_mask = None if mask is None else mask[pre : pre + b - a]
            pos = 0
            nav_chunks = self.read_chunks[: len(raw_nav)]
            for region in nav_regions(a, b, raw_nav):
                shape = tuple(s.stop - s.start for s in region)
                n = math.prod(shape)
                slab = raw[pos : pos + n].reshape(shape + raw_sig)
                if raw_mask is None:
                    self._read(arr, region, slab)
                else:
                    sub_mask = raw_mask[pos : pos + n].reshape(shape)
                    for box in _selected_boxes(region, sub_mask, nav_chunks):
                        sub = tuple(
                            slice(r.start + s.start, r.start + s.stop)
                            for r, s in zip(region, box, strict=True)
                        )
                        self._read(arr, sub, slab[box])
                pos += n
        return out.reshape((stop - start, *layout.sig_shape))

    def _read(self, arr: Any, region: tuple[slice, ...], dest: np.ndarray) -> None:
        """One zarr call: ``arr[region]`` (whole frames) into ``dest``."""
        from zarr.core.buffer import default_buffer_prototype

        if self.files is not None:
            self.files.read(region, dest)
            return

        selection = region + (slice(None),) * self.sig_dims
        try:
            arr.get_basic_selection(selection, out=default_buffer_prototype().nd_buffer(dest))
        except (ZarrReadError, MemoryError):
            raise
        except Exception as e:  # noqa: BLE001 - any codec or store error: find the chunk
            self._raise_for_chunk(arr, region, e)

    def _raise_for_chunk(self, arr: Any, region: tuple[slice, ...], error: Exception) -> None:
        """Find the stored chunk that fails to read, and raise an error naming its key."""
        from zarr.core.buffer import default_buffer_prototype

        full = region + tuple(slice(0, n) for n in self.raw_shape[len(region) :])
        for index, part in _chunk_parts(full, self.storage_chunks):
            scratch = np.empty(tuple(p.stop - p.start for p in part), dtype=self.dtype)
            try:
                arr.get_basic_selection(part, out=default_buffer_prototype().nd_buffer(scratch))
            except Exception as e:
                key = _join(self.ds_path, arr.metadata.encode_chunk_key(index))
                raise ZarrReadError(
                    f"the zarr array {self.name}: chunk {key!r} could not be read "
                    f"({type(e).__name__}: {e})"
                ) from e
        raise ZarrReadError(
            f"the zarr array {self.name}: reading region "
            f"{tuple((s.start, s.stop) for s in region)} of the navigation axes failed "
            f"({type(error).__name__}: {error})"
        ) from error


def _read_block(*, reader: _ZarrReader, block_info: dict | None = None) -> np.ndarray:
    """Block of ``partition_array``: frames ``block_info[None]["array-location"][0]``."""
    start, stop = block_info[None]["array-location"][0]  # type: ignore[index]
    return reader(start, stop, None)


# the adapter -------------------------------------------------------------------------------


def _check_flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} is {value!r}; expected True or False")
    return value


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
    extensions: tuple[str, ...] = (".zarr",)

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
        return p.is_dir() and any((p / name).exists() for name in _METADATA_FILES)

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
        allow_pickle = _check_flag("allow_pickle", allow_pickle)
        credentials_in_graph = _check_flag("credentials_in_graph", credentials_in_graph)
        if consolidated is not None:
            consolidated = _check_flag("consolidated", consolidated)
        if missing_chunks not in ("fill", "raise"):
            raise ValueError(f"missing_chunks is {missing_chunks!r}; expected 'fill' or 'raise'")
        min_partitions = _positive("min_partitions", min_partitions)
        partition_bytes = _positive("partition_bytes", partition_bytes)
        source, base = _as_source(path, storage_options, credentials_in_graph)
        arr = _open_array(source, base, ds_path, consolidated)
        full_path = arr.path
        reader_name = repr(source.name) + (f" (ds_path {full_path!r})" if full_path else "")
        where = f"the zarr array {reader_name}"
        dtype = np.dtype(arr.dtype)
        if dtype.hasobject and not allow_pickle:
            raise DataSetException(
                f"{where} has dtype object: its chunks decode to Python objects; pass "
                "allow_pickle=True to load it, for stores you trust only"
            )
        pickling = _pickle_codecs(arr)
        if pickling and not allow_pickle:
            raise DataSetException(
                f"{where} is encoded with {pickling}, which unpickles its chunks; pass "
                "allow_pickle=True to load it, for stores you trust only"
            )
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
        read_chunks = tuple(int(c) for c in arr.chunks)
        storage_chunks = tuple(int(c) for c in (getattr(arr, "shards", None) or arr.chunks))
        frame_bytes = math.prod(layout.sig_shape) * dtype.itemsize
        bounds = layout.dataset_boundaries(
            chunk_boundaries(raw_nav, storage_chunks[: len(raw_nav)]).tolist()
        )
        if num_partitions is None:
            # as many as asked by size and workers, but no chunk read twice
            wanted = max(min_partitions, math.ceil(layout.n_frames * frame_bytes / partition_bytes))
            n = max(1, min(wanted, layout.n_frames, len(bounds) - 1))
            largest = max(np.diff(bounds)) * frame_bytes if n < wanted else 0
            if largest > 4 * partition_bytes:
                warnings.warn(
                    f"{where} is stored in chunks of {storage_chunks}: whole chunks hold up to "
                    f"{_size(largest)} of frames, so its {n} partitions are larger than "
                    f"partition_bytes ({_size(partition_bytes)}). Pass "
                    "num_partitions= to split chunks between partitions (each is then read by "
                    "every partition that holds its frames), or rechunk the store",
                    DataflowWarning,
                    stacklevel=3,
                )
        else:
            n = num_partitions
        partitions = plan_partitions(
            layout.n_frames,
            frame_bytes,
            row_length=layout.nav_shape[-1],
            num_partitions=n,
            chunk_boundaries=bounds,
        )
        reader = _ZarrReader(
            source=source,
            ds_path=full_path,
            zarr_format=int(arr.metadata.zarr_format),
            raw_shape=shape,
            sig_dims=sig_dims,
            dtype=dtype,
            read_chunks=read_chunks,
            storage_chunks=storage_chunks,
            layout=layout,
            missing_chunks=missing_chunks,
            files=(
                _chunk_files(
                    arr,
                    os.path.join(source.location, full_path),
                    reader_name,
                    full_path,
                    missing_chunks,
                )
                if source.kind == "local"
                else None
            ),
        )
        if source.kind == "local":
            identity: Any = (source.location, _metadata_mtime(Path(source.location), full_path))
        else:  # a remote or in-memory store: no cheap way to tell it changed
            identity = (source.name, uuid.uuid4().hex)
        sizes = tuple(p.n_frames for p in partitions)
        token = f"zarr-{tokenize(identity, full_path, shape, dtype.str, layout, missing_chunks)}"
        array = da.map_blocks(
            _read_block,
            chunks=(sizes, *((s,) for s in layout.sig_shape)),
            dtype=dtype,
            meta=np.empty((0,) * (1 + len(layout.sig_shape)), dtype=dtype),
            name=f"zarr-{tokenize(token, sizes)}",
            reader=reader,
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
        return DataSet(
            array,
            nav_shape=layout.nav_shape,
            partitions=partitions,
            token=token,
            dims=dims if dims is not None else stored_dims,
            coords=coords,
            attrs=attrs,
            layout=layout,
            reader=reader,
        )


def _size(nbytes: float) -> str:
    return f"{nbytes / 2**20:.1f} MiB" if nbytes >= 2**20 else f"{int(nbytes)} bytes"


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} is {value!r}; expected a positive integer")
    if value < 1:
        raise ValueError(f"{name} is {value!r}; expected a positive integer")
    return int(value)
