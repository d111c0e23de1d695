"""Find data sources by name: the ``dataflow.adapters`` entry point group.

Built-in and third-party adapters register the same way, in their package's
metadata::

    [project.entry-points."dataflow.adapters"]
    myformat = "mypackage.io:MyFormatAdapter"

An adapter is a class with a ``name``, a ``description``, ``extensions`` (file name
endings it reads) and ``open(source, *, <keywords>) -> DataSet``; optionally
``guess_can_open(path) -> bool`` for ``ctx.load("auto", path=...)``. Subclassing
:class:`dataflow.Adapter` gives that guess from ``extensions``. The group is read
once; modules are imported only when their adapter is requested.
"""

from __future__ import annotations

import functools
import os
import warnings
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from dataflow.errors import AdapterNotFoundError, DataflowWarning

__all__ = ["GROUP", "get_adapter", "guess_adapter", "list_adapters", "refresh_adapters"]

GROUP = "dataflow.adapters"

# The engine's own sources, also listed in pyproject.toml; kept here so a source
# checkout without installed metadata still finds them.
_BUILTIN = {
    "memory": "dataflow.sources.arrays:MemoryAdapter",
    "dask": "dataflow.sources.arrays:DaskAdapter",
    "xarray": "dataflow.sources.arrays:XarrayAdapter",
}


def _own(ep: EntryPoint) -> bool:
    """Whether an entry point names one of this package's adapters."""
    return ep.value.startswith("dataflow.")


@functools.cache
def _entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {
        name: EntryPoint(name=name, value=value, group=GROUP) for name, value in _BUILTIN.items()
    }
    for ep in entry_points(group=GROUP):
        kept = found.get(ep.name)
        if kept is not None and kept.value != ep.value:
            # this package's own adapters win; among third-party ones, the first found
            if _own(ep) and not _own(kept):
                kept, ep = ep, kept
                found[ep.name] = kept
            warnings.warn(
                f"two adapters are registered as {ep.name!r}: {kept.value} and {ep.value}; "
                f"using {kept.value}",
                DataflowWarning,
                stacklevel=2,
            )
            continue
        found[ep.name] = ep
    return found


def refresh_adapters() -> None:
    """Forget the cached entry points (after installing a package with adapters)."""
    _entry_points.cache_clear()
    _load.cache_clear()


def list_adapters() -> list[str]:
    """Names of the registered adapters."""
    return sorted(_entry_points())


@functools.cache
def _load(name: str) -> Any:
    ep = _entry_points()[name]
    try:
        return ep.load()
    except ImportError as e:
        raise ImportError(
            f"the {name!r} adapter ({ep.value}) could not be imported: {e}. "
            "Install its dependencies, e.g. pip install 'dataflow-udf[all]'"
        ) from e


def get_adapter(name: str) -> Any:
    """The adapter class registered as ``name``.

    Raises
    ------
    AdapterNotFoundError
        If no adapter has that name; the message lists the known ones.
    """
    if not isinstance(name, str):
        raise TypeError(f"filetype is a {type(name).__name__}; expected a string such as 'memory'")
    key = name.lower()
    if key not in _entry_points():
        raise AdapterNotFoundError(
            f"unknown filetype {name!r}; known filetypes: {', '.join(list_adapters())} "
            "(and 'auto'). Other formats come with packages that register a "
            f"{GROUP!r} entry point."
        )
    return _load(key)


def _guess_order() -> list[str]:
    """Adapter names for ``auto``: this package's own first, then third-party ones, by name."""
    eps = _entry_points()
    return sorted(eps, key=lambda n: (not _own(eps[n]), n))


def guess_adapter(path: Any) -> Any:
    """The first adapter that claims ``path``, by ``guess_can_open`` or file extension.

    The adapters of this package are asked first, then third-party ones, each in order
    of name. An adapter that fails to import or whose ``guess_can_open`` raises is
    skipped with a :class:`~dataflow.errors.DataflowWarning`.

    Raises
    ------
    AdapterNotFoundError
        If no adapter claims ``path``; the message lists the adapters and the file
        extensions they recognise, and says which need an explicit filetype.
    FileNotFoundError
        If no adapter claims ``path`` and it does not exist.

    Examples
    --------
    >>> guess_adapter("scan.npy").name
    'npy'
    """
    text = str(path).lower().rstrip("/\\")
    known: list[str] = []
    by_extension: list[str] = []
    for name in _guess_order():
        try:
            adapter = _load(name)
        except Exception as e:  # noqa: BLE001 (a broken plugin must not stop the others)
            warnings.warn(
                f"the {name!r} adapter ({_entry_points()[name].value}) is skipped while "
                f"guessing the filetype of {str(path)!r}: it could not be loaded ({e})",
                DataflowWarning,
                stacklevel=2,
            )
            continue
        extensions = tuple(getattr(adapter, "extensions", ()) or ())
        if extensions:
            known.append(f"{name} ({', '.join(extensions)})")
        guess = getattr(adapter, "guess_can_open", None)
        if guess is None:
            if any(text.endswith(ext.lower()) for ext in extensions):
                return adapter
            continue
        try:
            if guess(path):
                return adapter
        except Exception as e:  # noqa: BLE001 (a broken plugin must not stop the others)
            warnings.warn(
                f"the {name!r} adapter's guess_can_open raised {type(e).__name__}: {e} for "
                f"{str(path)!r}; it is skipped",
                DataflowWarning,
                stacklevel=2,
            )
            continue
        if name != "raw" and any(text.endswith(ext.lower()) for ext in extensions):
            by_extension.append(name)
    local = isinstance(path, (str, os.PathLike)) and "://" not in str(path)
    if local and not os.path.exists(path):
        raise FileNotFoundError(f"no such file or directory: {str(path)!r}")
    hints = []
    if by_extension:
        hints.append(
            f"its extension belongs to {', '.join(repr(n) for n in by_extension)}, which "
            "cannot recognise files by themselves: pass the filetype and its keywords"
        )
    if "raw" in _entry_points():
        hints.append(
            "raw binary files are never recognised (they carry no description): use "
            "ctx.load('raw', path=..., dtype=..., nav_shape=..., sig_shape=...)"
        )
    raise AdapterNotFoundError(
        f"no adapter recognises {str(path)!r}; pass the filetype explicitly. File "
        f"extensions of the installed adapters: {'; '.join(known) or 'none'}. "
        + "".join(f"{h[0].upper()}{h[1:]}. " for h in hints)
        + f"All filetypes: {', '.join(list_adapters())}"
    )
