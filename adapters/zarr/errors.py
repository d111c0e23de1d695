"""The error the zarr source raises when a store cannot be read."""

from __future__ import annotations

from dataflow.errors import DataflowError

__all__ = ["ZarrReadError"]


class ZarrReadError(DataflowError, OSError):
    """A zarr store could not be read: a corrupt or missing chunk, or no credentials."""
