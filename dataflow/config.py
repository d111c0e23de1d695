"""dataflow's settings, in the ``dataflow`` namespace of dask's configuration.

Set them as any dask setting: ``dask.config.set({"dataflow.file-map-bytes": 0})`` in
code (for a block: ``with dask.config.set(...)``), a YAML file in dask's config
directories, or environment variables through dask's own mechanism
(``DASK_DATAFLOW__FILE_MAP_BYTES=0``). Workers of a ``dask.distributed`` cluster read
their own configuration; settings of the client reach them only where dask sends
its configuration along (``distributed``'s ``Client`` does, when the cluster starts
from it).

=========================  =============  ===============================================
setting                    default        meaning
=========================  =============  ===============================================
``file-map-bytes``         None           bytes of ``.npy``/raw files and zarr chunk
                                          files that stay memory mapped per process
                                          between tasks and runs; None: 1/16 of the
                                          machine's memory (in a dask worker, at most
                                          1/8 of its memory limit); 0: off
``view-tile-bytes``        256 MiB        tiles that are views of the data: at most this
``copy-tile-bytes``        1 MiB          tiles copied into scratch (dtype conversion,
                                          corrections, ROI gathers): at most this
``small-run-bytes``        4 MiB          runs over less data (at 8 bytes per value) are
                                          computed in the calling thread
``request-concurrency``    16             requests to a zarr store read through zarr
                                          (object storage, fsspec URLs, store objects)
                                          kept in flight per partition task; read when
                                          the dataset is loaded
=========================  =============  ===============================================
"""

from __future__ import annotations

from typing import Any

import dask.config

__all__ = ["DEFAULTS", "get", "request_concurrency"]

#: the defaults, registered with dask when dataflow is imported
DEFAULTS: dict[str, Any] = {
    "file-map-bytes": None,
    "view-tile-bytes": 256 * 2**20,
    "copy-tile-bytes": 1 * 2**20,
    "small-run-bytes": 4 * 2**20,
    "request-concurrency": 16,
}

dask.config.update_defaults({"dataflow": DEFAULTS})


def get(name: str) -> Any:
    """The current value of setting ``name`` (without the ``dataflow.`` prefix).

    Examples
    --------
    >>> import dask
    >>> with dask.config.set({"dataflow.copy-tile-bytes": 2**16}):
    ...     get("copy-tile-bytes")
    65536
    """
    if name not in DEFAULTS:
        raise KeyError(f"{name!r} is not a dataflow setting; the settings are {sorted(DEFAULTS)}")
    return dask.config.get(f"dataflow.{name}", DEFAULTS[name])


def request_concurrency() -> int:
    """The ``request-concurrency`` setting, checked: a positive integer.

    Examples
    --------
    >>> import dask
    >>> with dask.config.set({"dataflow.request-concurrency": 0}):
    ...     request_concurrency()
    Traceback (most recent call last):
    ...
    ValueError: dataflow.request-concurrency is 0; expected a positive integer
    """
    value = get("request-concurrency")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"dataflow.request-concurrency is {value!r}; expected a positive integer")
    return value
