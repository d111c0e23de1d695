"""The executor of ``Context()``: whatever dask would use right now.

At each run it looks up dask's current scheduler: the ``scheduler`` set in dask's
configuration, else the active ``dask.distributed`` client, else the threaded
scheduler. It never starts or changes a client.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import dask
import dask.local
import dask.threaded

from dataflow._dask import (
    configured_scheduler,
    get_in_calling_thread,
    pool_size,
    scheduler_client,
)
from dataflow.executor.base import LocalSchedulerExecutor, StreamEvent, cpu_count
from dataflow.executor.dask import client_memory_per_thread, client_stream

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

__all__ = ["DaskIntegrationExecutor", "get_dask_integration_executor"]


def _active_client() -> Any:
    if "distributed" not in sys.modules:  # no client can exist; keep the import light
        return None
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None


class DaskIntegrationExecutor(LocalSchedulerExecutor):
    """Run on dask's current scheduler or client, looked up at every run."""

    name = "dask-integration"

    def _current(self) -> tuple[str, Any]:
        configured = dask.config.get("scheduler", None)
        if configured is not None:
            get = configured_scheduler(configured)
            client = scheduler_client(get)
            if client is not None:
                return "client", client
            return "local", get
        client = _active_client()
        if client is not None:
            return "client", client
        return "local", dask.threaded.get

    def _get_function(self) -> Callable[..., Any]:
        kind, value = self._current()
        if kind == "client":
            return value.get
        return value

    def _pool_kwargs(self) -> dict[str, Any]:
        kind, value = self._current()
        if kind == "local" and value is not dask.local.get_sync:
            # off the main thread, dask.threaded.get would otherwise make a pool of
            # Python's default size (cores + 4), larger than the run's window
            return {"num_workers": self.n_workers}
        return {}

    def get_small(self, dsk: Mapping, key: Any) -> Any:
        kind, value = self._current()
        if kind == "local" and value is dask.threaded.get:
            return get_in_calling_thread(dsk, key)
        return self.get(dsk, key)

    def get(self, dsk: Mapping, key: Any) -> Any:
        kind, value = self._current()
        if kind == "client":
            return value.get(dict(dsk), key, sync=True)
        return value(dsk, key)

    def stream(
        self,
        dsk: Mapping,
        partition_keys: Sequence[Any],
        final_key: Any,
        *,
        want_data: bool,
        lockstep: bool = False,
    ) -> Iterator[StreamEvent]:
        kind, value = self._current()
        if kind == "client":
            return client_stream(value, dsk, partition_keys, final_key, want_data=want_data)
        return super().stream(
            dsk, partition_keys, final_key, want_data=want_data, lockstep=lockstep
        )

    @property
    def blas_threads(self) -> int | None:
        return 1 if self.n_workers > 1 else None

    @property
    def supports_parameter_updates(self) -> bool:
        # a dask.distributed client's workers hold their own copies of the UDFs
        return self._current()[0] != "client"

    @property
    def memory_per_thread(self) -> int | None:
        kind, value = self._current()
        return client_memory_per_thread(value) if kind == "client" else None

    @property
    def n_workers(self) -> int:
        kind, value = self._current()
        if kind == "client":
            return max(1, sum(value.nthreads().values()))
        if value is dask.local.get_sync:
            return 1
        pool = dask.config.get("pool", None)  # a pool set in dask's config is used as it is
        if pool is not None:
            return pool_size(pool)
        return int(dask.config.get("num_workers", None) or cpu_count())


def get_dask_integration_executor() -> DaskIntegrationExecutor:
    """The executor that follows dask's current scheduler (LiberTEM's name)."""
    return DaskIntegrationExecutor()
