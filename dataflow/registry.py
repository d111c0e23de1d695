"""Find data sources by name: the ``dataflow.adapters`` entry point group.

Built-in and third-party adapters register the same way, in their package's
metadata::

    [project.entry-points."dataflow.adapters"]
    myformat = "mypackage.io:MyFormatAdapter"

An adapter is a class with a ``name``, a ``description``, ``extensions`` (file name
endings it reads) and ``open(source, *, <keywords>) -> DataSet``; optionally
``guess_can_open(path) -> bool`` for ``ctx.load("auto", path=...)``. The group is read
once; modules are imported only when their adapter is requested.
"""

from __future__ import annotations

import functools
import warnings
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from dataflow.errors import AdapterNotFoundError, DataflowWarning

__all__ = ["GROUP", "get_adapter", "guess_adapter", "list_adapters", "refresh_adapters"]

GROUP = "dataflow.adapters"

# The engine's own sources, also listed in pyproject.toml; kept here so a source
# checkout without installed metadata still finds them.
_BUILTIN = {
    "memory": "dataflow.dataset:MemoryAdapter",
    "dask": "dataflow.dataset:DaskAdapter",
}


@functools.cache
def _entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {
        name: EntryPoint(name=name, value=value, group=GROUP) for name, value in _BUILTIN.items()
    }
    seen: dict[str, str] = {}
    for ep in entry_points(group=GROUP):
        if ep.name in seen and seen[ep.name] != ep.value:
            warnings.warn(
                f"two adapters are registered as {ep.name!r}: {seen[ep.name]} and {ep.value}; "
                f"using {seen[ep.name]}",
                DataflowWarning,
                stacklevel=2,
            )
            continue
        seen[ep.name] = ep.value
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


def guess_adapter(path: Any) -> Any:
    """The first adapter that claims ``path``, by ``guess_can_open`` or file extension."""
    text = str(path).lower().rstrip("/")
    for name in list_adapters():
        try:
            adapter = _load(name)
        except ImportError:
            continue
        guess = getattr(adapter, "guess_can_open", None)
        if guess is not None:
            if guess(path):
                return adapter
        elif any(text.endswith(ext) for ext in getattr(adapter, "extensions", ())):
            return adapter
    raise AdapterNotFoundError(
        f"no adapter recognises {str(path)!r}; pass the filetype explicitly, one of "
        f"{', '.join(list_adapters())}"
    )
