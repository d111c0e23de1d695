"""``InlineJobExecutor``: dask's synchronous scheduler, one task after another."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dask.local

from dataflow._dask import get_in_calling_thread
from dataflow.executor.base import LocalSchedulerExecutor

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["InlineJobExecutor"]


class InlineJobExecutor(LocalSchedulerExecutor):
    """Run everything in the calling process, in order, on dask's synchronous scheduler.

    Parameters
    ----------
    debug
        Check that the UDFs and their parameters survive a cloudpickle round trip, as
        they must on any other scheduler.
    inline_threads
        Accepted for LiberTEM compatibility; BLAS and numba threads are left alone.

    Examples
    --------
    >>> from dataflow.api import Context
    >>> ctx = Context(executor=InlineJobExecutor())
    """

    name = "inline"

    def __init__(
        self, debug: bool = False, inline_threads: int | None = None, main_process_gpu: Any = None
    ) -> None:
        self.debug = debug
        self.inline_threads = inline_threads

    def _get_function(self) -> Callable[..., Any]:
        return dask.local.get_sync

    @property
    def blas_threads(self) -> int | None:
        return None  # one task at a time: BLAS may use every core

    def get_small(self, dsk: Mapping, key: Any) -> Any:
        return get_in_calling_thread(dsk, key)
