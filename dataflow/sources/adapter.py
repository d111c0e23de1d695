"""The base class of data sources: what ``ctx.load`` finds in the adapter registry."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from dataflow.sources.model import DataSet

__all__ = ["Adapter"]


class Adapter:
    """Base class of adapters: one file format or store, opened as a DataSet.

    Subclasses set ``name`` (the ``ctx.load`` file type), ``description``, ``url`` and
    ``extensions`` (file name endings it reads, for ``ctx.load("auto", ...)``), and
    implement :meth:`open` with every keyword written out. Register the class under
    the ``dataflow.adapters`` entry point group (see ``dataflow.registry``).

    Examples
    --------
    >>> class Scans(Adapter):
    ...     name = "scans"
    ...     extensions = (".scan",)
    >>> Scans.guess_can_open("run1.SCAN"), Scans.guess_can_open("run1.npy")
    (True, False)
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    url: ClassVar[str] = ""
    extensions: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def guess_can_open(cls, path: Any) -> bool:
        """Whether ``path`` looks like this format: its name ends with one of ``extensions``."""
        if not cls.extensions or not isinstance(path, (str, os.PathLike)):
            return False
        return os.fspath(path).lower().rstrip("/\\").endswith(cls.extensions)

    @staticmethod
    def open(*args: Any, **kwargs: Any) -> DataSet:
        """Open the source as a DataSet; reads metadata only."""
        raise NotImplementedError
