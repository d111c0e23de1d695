"""Exceptions and warnings raised by dataflow.

Every exception derives from :class:`DataflowError` and, where one fits, from the
matching builtin, so callers can catch either (``except ValueError`` keeps working).
"""

from __future__ import annotations

__all__ = [
    "AdapterNotFoundError",
    "DataSetException",
    "DataflowError",
    "DataflowWarning",
    "ExecutorSpecException",
    "InvalidMaskError",
    "ResultNotFoundError",
    "RoiError",
    "UDFException",
    "UDFMethodError",
    "UDFRunCancelled",
    "UndeclaredBufferError",
    "UseDiscouragedWarning",
]


class DataflowError(Exception):
    """Base class of every exception dataflow raises on purpose."""


class UDFException(DataflowError):
    """A UDF is declared or behaves in a way the engine cannot run.

    Raised for missing ``process_*`` methods, invalid buffer declarations, and
    results that do not match their declarations (LiberTEM: ``UDFException``).
    """


class UDFMethodError(UDFException, TypeError):
    """A UDF implements none of the process methods (LiberTEM raises TypeError here)."""


class _PlainKeyError(KeyError):
    """A KeyError whose message prints as written (KeyError's own quotes it)."""

    def __str__(self) -> str:
        return str(self.args[0])


class UndeclaredBufferError(UDFException, _PlainKeyError):
    """``get_results`` returned a name that is not a declared buffer (LiberTEM: KeyError)."""


class UDFRunCancelled(DataflowError):
    """A UDF run was cancelled before all partitions were processed."""


class DataSetException(DataflowError, ValueError):
    """A dataset cannot be created from the given arguments."""


class ExecutorSpecException(DataflowError, ValueError):
    """An executor name or specification is not known."""


class InvalidMaskError(DataflowError, ValueError):
    """A valid mask returned with ``UDF.with_mask`` does not fit its data."""


class RoiError(DataflowError, ValueError):
    """A region of interest does not fit the dataset."""


class AdapterNotFoundError(DataflowError, ValueError):
    """No adapter is registered under the requested file type."""


class ResultNotFoundError(DataflowError, AttributeError, _PlainKeyError):
    """No result with the requested key; catch it as AttributeError or KeyError."""


class DataflowWarning(UserWarning):
    """Base class of the warnings dataflow emits."""


class UseDiscouragedWarning(DataflowWarning, FutureWarning):
    """An API is used in a way that works but is discouraged (LiberTEM's name)."""
