"""Where a zarr store is, and how its credentials stay out of the task graph.

A source is a local directory, a URL read through fsspec (``s3://bucket/scan.zarr``
with ``storage_options=``), or a zarr store, group or array object; :func:`_as_source`
accepts each of them and gives a :class:`_Source`, which the graph carries.

Credentials never travel in the graph unless asked to: ``storage_options`` entries
other than a short list of harmless settings (``anon``, ``endpoint_url``, ...) stay
in the process that loaded the dataset, in a vault (``_PRIVATE_OPTIONS``), and the
graph carries an opaque reference to them. The vault entry lives as long as the
source that refers to it (held by the dataset, its arrays and their graphs): when the
last of them is garbage collected, the credentials are dropped too.
"""

from __future__ import annotations

import os
import re
import sys
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dataflow.adapters.zarr.errors import ZarrReadError

__all__: list[str] = []

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


def _forget(ref: str) -> None:
    """Drop the private options ``ref`` from the vault (the source that held it is gone)."""
    _PRIVATE_OPTIONS.pop(ref, None)


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

    def __dask_tokenize__(self) -> Any:
        # never the credentials, nor a store object's contents: the dataset's identity
        # (a fresh uuid for URLs and store objects) tells loads apart
        return (
            "zarr-source",
            self.kind,
            self.name,
            self.location,
            sorted((str(k), repr(v)) for k, v in self.options.items()),
            self.private_ref,
            self.private_keys,
            self.shipped is not None,
            None if self.store is None else id(self.store),
        )

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
        return _url_source(path, storage_options or {}, credentials_in_graph), ""
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
    zarr = sys.modules.get("zarr")  # a zarr object means zarr is imported
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


def _url_source(url: str, options: Mapping[str, Any], credentials_in_graph: bool) -> _Source:
    """The source of a URL: private options in the vault (or shipped, if asked)."""
    public, private = _split_options(options)
    ref = None
    if private and not credentials_in_graph:
        ref = uuid.uuid4().hex
        _PRIVATE_OPTIONS[ref] = private
    source = _Source(
        "url",
        _display_url(url),
        location=url.rstrip("/"),
        options=public,
        private_ref=ref,
        private_keys=tuple(private),
        shipped=private if private and credentials_in_graph else None,
    )
    if ref is not None:
        weakref.finalize(source, _forget, ref)
    return source


def _describe(path: Any) -> str:
    text = os.fspath(path) if isinstance(path, (str, os.PathLike)) else type(path).__name__
    return repr(text)
