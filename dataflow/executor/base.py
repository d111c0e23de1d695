"""Executors: LiberTEM's executor names mapped onto dask schedulers.

An executor runs a compiled graph in one of two ways:

* :meth:`JobExecutor.get` computes the finishing key and returns its value;
* :meth:`JobExecutor.stream` yields an event per finished partition task, as it
  finishes, then the final value. Progress bars, live plots and ``run_udf_iter``
  consume it. On dask's local schedulers the graph runs in a background thread
  whose scheduler callbacks feed a queue; closing the stream cancels the tasks not
  yet started and waits for the running ones.
"""

from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dataflow._dask import TaskFeed, get_in_calling_thread, local_stream_kwargs

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    import dask.array as da

    from dataflow.sources import DataSet

__all__ = [
    "JobCancelledError",
    "JobExecutor",
    "LocalSchedulerExecutor",
    "PartitionDone",
    "RunFailed",
    "RunFinished",
    "StreamEvent",
    "cpu_count",
    "get_in_calling_thread",
]


@dataclass(frozen=True)
class PartitionDone:
    """A partition task finished: its index among the plan's tasks, and its result.

    ``result`` is the :class:`~dataflow.partition.PartitionResult`, or None where the
    stream was asked for no data (``want_data=False``).
    """

    index: int
    result: Any = None


@dataclass(frozen=True)
class RunFinished:
    """The finishing task's value: the last event of a stream."""

    value: Any


@dataclass(frozen=True)
class RunFailed:
    """The run raised ``error`` (internal to the local stream: raised to the consumer)."""

    error: BaseException


#: what :meth:`JobExecutor.stream` yields
StreamEvent = PartitionDone | RunFinished


def cpu_count() -> int:
    """Usable CPU cores of this process."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class JobExecutor:
    """Base class: runs dask graphs for a :class:`~dataflow.Context`."""

    #: the name ``Context.make_with`` knows this executor by
    name = "base"

    def get(self, dsk: Mapping, key: Any) -> Any:
        """Compute ``key`` of ``dsk`` and return its value."""
        raise NotImplementedError

    def get_small(self, dsk: Mapping, key: Any) -> Any:
        """Compute a graph whose data is small: where handing tasks to a pool of threads
        costs more than it saves, run it in the calling thread instead."""
        return self.get(dsk, key)

    def stream(
        self,
        dsk: Mapping,
        partition_keys: Sequence[Any],
        final_key: Any,
        *,
        want_data: bool,
        lockstep: bool = False,
    ) -> Iterator[StreamEvent]:
        """Events per finished partition (with its result if ``want_data``), then the final value.

        ``lockstep`` asks the executor not to run far ahead of the consumer.
        """
        raise NotImplementedError

    @property
    def n_workers(self) -> int:
        """Number of tasks that can run at once: the minimum number of partitions."""
        return 1

    @property
    def blas_threads(self) -> int | None:
        """BLAS threads per task: 1 where tasks run side by side, None for no limit."""
        return 1

    @property
    def supports_parameter_updates(self) -> bool:
        """Whether ``run_udf_iter``'s ``update_parameters_experimental`` reaches the tasks.

        True where tasks run in this process and share the plan's UDF objects; False
        on a ``dask.distributed`` cluster, whose workers hold their own copies.
        """
        return True

    @property
    def memory_per_thread(self) -> int | None:
        """Bytes of memory per worker thread where workers have a limit, else None.

        ``Context.load`` sizes partitions from it (an eighth of it, at most the
        default), so runs stay within worker memory limits.
        """
        return None

    def input_array(self, dataset: DataSet) -> da.Array:
        """The partition array runs of ``dataset`` on this executor read.

        By default the dataset's own; an executor whose workers hold copies of
        in-memory data returns an array of those.
        """
        return dataset.partition_array

    def close(self) -> None:
        """Release what the executor owns (pools, clusters)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} workers={self.n_workers}>"


class JobCancelledError(Exception):
    """Raised by a UDF or a data source to cancel the run it is part of.

    The run then raises :class:`~dataflow.errors.UDFRunCancelled` (LiberTEM:
    ``libertem.common.executor.JobCancelledError``).
    """


class LocalSchedulerExecutor(JobExecutor):
    """An executor backed by one of dask's local schedulers (sync, threads, processes)."""

    def _get_function(self) -> Callable[..., Any]:
        raise NotImplementedError

    def _pool_kwargs(self) -> dict[str, Any]:
        """Keywords that size the scheduler's pool to ``n_workers`` (for ``stream``)."""
        return {}

    def get(self, dsk: Mapping, key: Any) -> Any:
        return self._get_function()(dsk, key)

    def stream(
        self,
        dsk: Mapping,
        partition_keys: Sequence[Any],
        final_key: Any,
        *,
        want_data: bool,
        lockstep: bool = False,
    ) -> Iterator[StreamEvent]:
        """Run the graph in a background thread; yield its partition events as they come.

        With ``lockstep``, a partition task starts only while fewer than ``n_workers``
        finished partitions wait for the consumer: ``run_udf_iter`` on the synchronous
        scheduler then processes one partition per step, as LiberTEM's inline executor
        does, so parameter updates between steps take effect at the next partition.

        The scheduler's pool must have at most ``n_workers`` workers: dask prepares a
        batch of tasks (one per free worker) before it submits any, so a batch larger
        than the window would wait in ``_pretask`` for a result it has not yet started.
        """
        events: queue.SimpleQueue = queue.SimpleQueue()
        cancel = threading.Event()
        window = threading.Semaphore(self.n_workers) if lockstep else None
        index = {k: i for i, k in enumerate(partition_keys)}

        def done(i: int, result: Any) -> None:
            events.put(PartitionDone(i, result if want_data else None))

        feed = TaskFeed(index, done, cancel, window)
        get = self._get_function()

        def run() -> None:
            try:
                kwargs = {**local_stream_kwargs(feed), **self._pool_kwargs()}
                events.put(RunFinished(get(dsk, final_key, **kwargs)))
            except BaseException as e:  # noqa: BLE001 (handed to the consumer, raised there)
                events.put(RunFailed(e))

        worker = threading.Thread(target=run, name="dataflow-run", daemon=True)
        worker.start()
        try:
            while True:
                event = events.get()
                if isinstance(event, RunFailed):
                    raise event.error
                yield event
                if isinstance(event, RunFinished):
                    return
                if window is not None:
                    window.release()  # the consumer asks for more: one more may start
        finally:
            cancel.set()
            if window is not None:
                for _ in range(len(partition_keys) + 1):
                    window.release()  # unblock a waiting scheduler so it sees the cancel
            worker.join()
