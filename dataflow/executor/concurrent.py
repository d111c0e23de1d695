"""Executors on dask's threaded and multiprocessing schedulers, with pools they own."""

from __future__ import annotations

import concurrent.futures
import functools
import multiprocessing
from typing import TYPE_CHECKING, Any

import dask.local
import dask.multiprocessing
import dask.threaded

from dataflow._dask import get_in_calling_thread
from dataflow.executor.base import LocalSchedulerExecutor, cpu_count

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["ConcurrentJobExecutor", "ProcessesJobExecutor"]


def _check_workers(n: Any) -> int:
    if n is None:
        return cpu_count()
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the worker count is {n!r}; expected a positive integer")
    return n


class ConcurrentJobExecutor(LocalSchedulerExecutor):
    """Run partitions on a pool of threads with dask's threaded scheduler.

    NumPy releases the GIL in its loops, so tile-wise UDFs scale with threads;
    per-frame Python code does not.

    Parameters
    ----------
    n_threads
        Pool size; the number of usable cores by default.
    """

    name = "threads"

    def __init__(self, n_threads: int | None = None) -> None:
        self._n = _check_workers(n_threads)
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    @classmethod
    def make_local(
        cls, n_threads: int | None = None, main_process_gpu: Any = None
    ) -> ConcurrentJobExecutor:
        """An executor with ``n_threads`` threads (LiberTEM's constructor name)."""
        return cls(n_threads=n_threads)

    @property
    def n_workers(self) -> int:
        return self._n

    def get_small(self, dsk: Mapping, key: Any) -> Any:
        return get_in_calling_thread(dsk, key)

    def _get_function(self) -> Callable[..., Any]:
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                self._n, thread_name_prefix="dataflow"
            )
        return functools.partial(dask.threaded.get, pool=self._pool)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


class ProcessesJobExecutor(LocalSchedulerExecutor):
    """Run partitions in a pool of worker processes with dask's multiprocessing scheduler.

    Everything a task needs is pickled (with cloudpickle) to the workers, and every
    task's result comes back to this process: use it to test that UDFs pickle, and
    ``make_with("dask")`` for real work across processes.

    Parameters
    ----------
    n_processes
        Pool size; the number of usable cores by default.
    """

    name = "processes"

    def __init__(self, n_processes: int | None = None) -> None:
        self._n = _check_workers(n_processes)
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    @property
    def n_workers(self) -> int:
        return self._n

    def _get_function(self) -> Callable[..., Any]:
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self._n, mp_context=multiprocessing.get_context("spawn")
            )
        return functools.partial(dask.multiprocessing.get, pool=self._pool)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
