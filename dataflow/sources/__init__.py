"""The toolkit every data source builds on, and the in-memory sources.

- :mod:`~dataflow.sources.model`: the :class:`DataSet` (a dask array of shape
  ``nav + sig`` with dims, coords, attrs and partitions);
- :mod:`~dataflow.sources.layout`: how ``nav_shape``, ``sig_shape`` and
  ``sync_offset`` lay a dataset over a source's frames;
- :mod:`~dataflow.sources.partitions`: partitions on storage-chunk boundaries;
- :mod:`~dataflow.sources.regions`: runs of selected frames, rectangles and chunks of
  the navigation axes;
- :mod:`~dataflow.sources.checks`: argument checks made before any data is read;
- :mod:`~dataflow.sources.reader`: :class:`FrameReader`, the base every file source
  reads through, and :func:`reader_dataset`;
- :mod:`~dataflow.sources.filemaps`: memory maps kept open between tasks;
- :mod:`~dataflow.sources.adapter`: :class:`Adapter`, the base class of sources;
- :mod:`~dataflow.sources.arrays`: the ``memory``, ``dask`` and ``xarray`` sources.

File formats live in ``dataflow.adapters`` and import from here, never the reverse.
"""

from __future__ import annotations

from dataflow.sources.adapter import Adapter
from dataflow.sources.arrays import DaskAdapter, MemoryAdapter, XarrayAdapter
from dataflow.sources.checks import (
    as_path,
    check_count,
    check_file,
    check_flag,
    check_integer,
    check_shape,
    check_sig_dims,
    merge_nav_shape,
    tile_depth,
    warn_ignored,
)
from dataflow.sources.layout import FrameLayout, make_layout, pad_frames
from dataflow.sources.model import DataSet, DataSetMeta, default_dims
from dataflow.sources.partitions import (
    DEFAULT_PARTITION_BYTES,
    Partition,
    chunk_boundaries,
    plan_partitions,
    whole_chunk_count,
)
from dataflow.sources.reader import FrameReader, file_token, reader_dataset
from dataflow.sources.regions import (
    chunk_boxes,
    chunk_parts,
    frame_run_axis,
    frame_run_chunks,
    index_runs,
    mask_runs,
    nav_regions,
    run_bounds,
)

__all__ = [
    "DEFAULT_PARTITION_BYTES",
    "Adapter",
    "DaskAdapter",
    "DataSet",
    "DataSetMeta",
    "FrameLayout",
    "FrameReader",
    "MemoryAdapter",
    "Partition",
    "XarrayAdapter",
    "as_path",
    "check_count",
    "frame_run_axis",
    "frame_run_chunks",
    "check_file",
    "check_flag",
    "check_integer",
    "check_shape",
    "check_sig_dims",
    "chunk_boundaries",
    "chunk_boxes",
    "chunk_parts",
    "default_dims",
    "file_token",
    "index_runs",
    "make_layout",
    "mask_runs",
    "merge_nav_shape",
    "nav_regions",
    "pad_frames",
    "plan_partitions",
    "reader_dataset",
    "run_bounds",
    "tile_depth",
    "warn_ignored",
    "whole_chunk_count",
]
