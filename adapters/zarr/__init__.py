"""The ``zarr`` source: an array in a zarr store (format 2 or 3), local or remote.

- :mod:`~dataflow.adapters.zarr.adapter`: :class:`ZarrAdapter` and the metadata it
  reads on open;
- :mod:`~dataflow.adapters.zarr.reader`: the :class:`~dataflow.sources.FrameReader`
  the partitions read through;
- :mod:`~dataflow.adapters.zarr.chunks`: local chunk files read without zarr;
- :mod:`~dataflow.adapters.zarr.credentials`: sources, and credentials kept out of
  the task graph;
- :mod:`~dataflow.adapters.zarr._internals`: every use of zarr-python's private parts.
"""

from __future__ import annotations

from dataflow.adapters.zarr.adapter import ZarrAdapter
from dataflow.adapters.zarr.errors import ZarrReadError

__all__ = ["ZarrAdapter", "ZarrReadError"]
