"""Every use of private or undocumented parts of zarr-python, in one place.

The rest of the package uses zarr's public API only (``zarr.open``, ``zarr.Array`` and
its documented properties, ``zarr.storage``, ``zarr.codecs``, ``zarr.buffer``). What
is here reaches into the array metadata objects (classes of ``zarr.core.metadata``)
or into a store wrapper's internals; each function names the public alternative where
one exists, so a zarr upgrade that breaks one of them breaks it here only. zarr is
imported inside the functions: importing this module imports no zarr.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Literal

from dataflow.adapters.zarr.errors import ZarrReadError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "shard_index_layout",
    "bounded_store",
    "read_concurrently",
    "METADATA_FILES",
    "METADATA_KEYS",
    "array_metadata",
    "chunk_key",
    "dimension_names",
    "metadata_dict",
    "out_buffer",
    "stored_order",
    "strict_store",
    "zarr_format",
]

#: the files that make a directory a zarr node (format 3; format 2 arrays and groups)
METADATA_FILES = ("zarr.json", ".zarray", ".zgroup")
#: every store key that holds metadata, not chunk data
METADATA_KEYS = frozenset((*METADATA_FILES, ".zattrs", ".zmetadata"))


def array_metadata(arr: Any) -> Any:
    """``arr.metadata``: an ``ArrayV2Metadata`` or ``ArrayV3Metadata`` (``zarr.core.metadata``).

    ``zarr.Array.metadata`` is public, but the classes it returns live in
    ``zarr.core.metadata`` and their attributes are not documented API.
    """
    return arr.metadata


def zarr_format(arr: Any) -> Literal[2, 3]:
    """The array's zarr format, 2 or 3 (``arr.metadata.zarr_format``).

    No public ``zarr.Array`` property gives it in zarr 3.1.
    """
    return 2 if int(arr.metadata.zarr_format) == 2 else 3


def chunk_key(metadata: Any, index: tuple[int, ...]) -> str:
    """The store key of chunk ``index``, relative to the array (``encode_chunk_key``).

    No public alternative in zarr 3.1: the chunk key encoding (``/`` or ``.``
    separators, the ``c`` prefix of format 3) is applied by this metadata method.
    """
    return str(metadata.encode_chunk_key(index))


def metadata_dict(arr: Any) -> dict[str, Any]:
    """The array's metadata as a JSON-like dict (``arr.metadata.to_dict()``).

    The public alternatives, ``arr.filters``, ``arr.serializer`` and
    ``arr.compressors``, are codec objects with no common way to name them
    (numcodecs ``codec_id``, zarr 3 codec classes, numcodecs' zarr 3 wrappers); the
    dict names every codec as the store does.
    """
    return dict(arr.metadata.to_dict())


def stored_order(arr: Any) -> str:
    """``"C"`` or ``"F"``: the element order of stored chunks.

    ``arr.order`` (public) is the in-memory order of format 3 arrays, not how their
    chunks are stored (a ``TransposeCodec`` says that); format 2 metadata has
    ``order``.
    """
    return str(getattr(arr.metadata, "order", "C"))


def dimension_names(arr: Any) -> tuple[Any, ...] | None:
    """Format 3 ``dimension_names`` (None for format 2 metadata, which has none).

    No public ``zarr.Array`` property gives them in zarr 3.1.
    """
    names = getattr(arr.metadata, "dimension_names", None)
    return None if names is None else tuple(names)


def out_buffer(dest: np.ndarray) -> Any:
    """``dest`` as the ``NDBuffer`` that ``get_basic_selection(out=...)`` reads into.

    Public: ``zarr.buffer`` (not ``zarr.core.buffer``).
    """
    from zarr.buffer import default_buffer_prototype

    buffer_class: Any = default_buffer_prototype().nd_buffer
    return buffer_class(dest)


def strict_store(store: Any, name: str) -> Any:
    """``store`` wrapped so that a missing chunk raises (``missing_chunks="raise"``)."""
    return _strict_store_class()(store, name)


@functools.cache
def _wrapper_base() -> type:
    """``zarr.storage.WrapperStore`` with ``with_read_only`` that keeps the wrapper.

    ``zarr.open(mode="r")`` asks a store that is not read-only for a read-only copy
    with ``with_read_only``; zarr 3.1.0's ``WrapperStore`` raises NotImplementedError
    there (later versions forward it). Re-wrapping the inner store's read-only copy
    with ``_with_store`` (private, see :func:`_strict_store_class`) works on both.
    """
    from zarr.storage import WrapperStore

    class ReadOnlyWrapper(WrapperStore):  # type: ignore[type-arg]
        def with_read_only(self, read_only: bool = False) -> Any:
            return self._with_store(self._store.with_read_only(read_only))

    return ReadOnlyWrapper


@functools.cache
def _strict_store_class() -> type:
    """A ``zarr.storage.WrapperStore`` that raises :class:`ZarrReadError` for missing chunks.

    ``WrapperStore`` is public, but subclassing it relies on two private names:
    ``_with_store`` (zarr calls it to re-wrap the store it opens, e.g. read-only) and
    ``_store`` (the wrapped store). ``get`` is called as the ``Store.get`` ABC declares
    it, ``(key, prototype, byte_range)`` positionally. No public alternative: zarr 3.1
    has no setting that makes a missing chunk an error.
    """

    class StrictStore(_wrapper_base()):  # type: ignore[misc]
        def __init__(self, store: Any, name: str) -> None:
            super().__init__(store)
            self.name = name

        def _with_store(self, store: Any) -> Any:
            return type(self)(store, self.name)

        async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
            value = await self._store.get(key, prototype, byte_range)
            if value is None and key.rsplit("/", 1)[-1] not in METADATA_KEYS:
                raise ZarrReadError(
                    f"the zarr array {self.name} has no chunk {key!r} (missing_chunks='raise'; "
                    "pass missing_chunks='fill' to read missing chunks as the fill value)"
                )
            return value

    return StrictStore


def read_concurrently(arr: Any, jobs: list[tuple[tuple[slice, ...], np.ndarray]]) -> list[Any]:
    """``arr[selection]`` into each ``dest`` of ``jobs``, all requested at once.

    Returns one entry per job: None, or the exception its read raised. What
    ``Array.get_basic_selection(out=...)`` does, but for several selections on zarr's
    event loop together: ``AsyncArray._get_selection`` with a ``BasicIndexer``
    (``zarr.core.indexing``), run by ``zarr.core.sync.sync``, none of them public.
    The public ``Array.async_array.getitem`` batches too, but returns new arrays (a
    copy of every region more). ``Array.async_array`` is public from zarr 3.1.1; 3.1.0
    holds the same object as ``Array._async_array``.
    """
    import asyncio

    from zarr.buffer import default_buffer_prototype
    from zarr.core.indexing import BasicIndexer
    from zarr.core.sync import sync

    aarr = getattr(arr, "async_array", None) or arr._async_array
    prototype = default_buffer_prototype()

    async def read_all() -> list[Any]:
        return await asyncio.gather(
            *(
                aarr._get_selection(
                    BasicIndexer(sel, arr.shape, arr.metadata.chunk_grid),
                    prototype=prototype,
                    out=out_buffer(dest),
                )
                for sel, dest in jobs
            ),
            return_exceptions=True,
        )

    return [r if isinstance(r, BaseException) else None for r in sync(read_all())]


def bounded_store(store: Any, limit: int) -> Any:
    """``store`` wrapped so that at most ``limit`` of its reads are in flight at once."""
    return _bounded_store_class()(store, limit)


@functools.cache
def _bounded_store_class() -> type:
    """A ``zarr.storage.WrapperStore`` whose ``get`` waits for one of ``limit`` slots.

    The same two private names as :func:`_strict_store_class`. zarr's own bound
    (``async.concurrency``) applies per selection; this one holds over every
    selection read at once by :func:`read_concurrently`.
    """
    import asyncio

    class BoundedStore(_wrapper_base()):  # type: ignore[misc]
        def __init__(self, store: Any, limit: int, slots: Any = None) -> None:
            super().__init__(store)
            self.limit = limit
            self.slots = slots

        def _with_store(self, store: Any) -> Any:
            return type(self)(store, self.limit, self.slots)

        async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
            if self.slots is None:  # made on zarr's event loop, where it is used
                self.slots = asyncio.Semaphore(self.limit)
            async with self.slots:
                return await self._store.get(key, prototype, byte_range)

    return BoundedStore


def shard_index_layout(arr: Any) -> tuple[str, bool] | None:
    """Where a sharded array's shard index is, and whether a CRC32C follows it.

    ``("end" | "start", has_crc)`` for an index of little-endian ``(offset, nbytes)``
    uint64 pairs, the only kind the chunk-file reader parses; None for other index
    codecs. Reads the ``ShardingCodec`` in ``arr.metadata.codecs``: its
    ``index_codecs`` and ``index_location`` are not documented attributes (the
    sharding specification names them; no public ``zarr.Array`` property does).
    """
    import zarr.codecs

    codecs: tuple[Any, ...] = tuple(getattr(arr.metadata, "codecs", ()))
    if len(codecs) != 1 or type(codecs[0]) is not zarr.codecs.ShardingCodec:
        return None
    sharding = codecs[0]
    index = tuple(sharding.index_codecs)
    if not index or type(index[0]) is not zarr.codecs.BytesCodec:
        return None
    endian = index[0].endian
    if endian is not None and endian.value != "little":
        return None
    rest = index[1:]
    if rest and (len(rest) > 1 or type(rest[0]) is not zarr.codecs.Crc32cCodec):
        return None
    return str(sharding.index_location.value), bool(rest)
