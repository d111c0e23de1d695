"""Every use of dask's private or undocumented parts, in one module.

dataflow relies on a few parts of dask that are not (or not fully) public API. They
all live here, each with a note naming the public alternative where there is one, so
that a change in dask touches this module only. Other modules import these helpers
and never a private dask name.

* graph construction: task tuples of dask's (legacy) graph specification, written
  through :func:`task` and :func:`ref`, and arrays made from such graphs with
  :func:`array_from_graph` / :func:`array_from_blocks`;
* culling a materialized graph (:func:`cull_graph`) and computing it in the calling
  thread (:func:`get_in_calling_thread`);
* the local schedulers' callbacks: :class:`TaskFeed` reports finished partition
  tasks, throttles their start and cancels a run from inside ``_pretask``;
  :func:`local_stream_kwargs` passes it (in its private tuple form) and
  ``chunksize=1``;
* introspection: the size of a pool (:func:`pool_size`), the client behind a
  scheduler function (:func:`scheduler_client`) and the memory limit of the worker
  running a task (:func:`worker_memory_limit`).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from dask.callbacks import Callback

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Mapping

    import dask.array as da
    import numpy as np

__all__ = [
    "TaskFeed",
    "TaskFeedCancelled",
    "array_from_blocks",
    "array_from_graph",
    "configured_scheduler",
    "cull_graph",
    "get_in_calling_thread",
    "local_stream_kwargs",
    "pool_size",
    "ref",
    "scheduler_client",
    "task",
]


# graph construction ---------------------------------------------------------------------------


def task(func: Callable[..., Any], *args: Any) -> tuple[Any, ...]:
    """A task calling ``func(*args)``; arguments that are keys (:func:`ref`) are replaced by
    their values.

    Written as a tuple of dask's graph specification (``(func, *args)``), which dask
    still accepts and converts with ``dask._task_spec.convert_legacy_task``. Public
    alternative: ``dask.delayed`` and ``da.map_blocks``/``da.blockwise`` build tasks for
    you, at about 50 times the cost for a run's graph (see ``dataflow.graph``); the
    newer ``dask._task_spec.Task`` objects are private.
    """
    return (func, *args)


def ref(key: Any) -> Any:
    """A reference to the value of graph key ``key``, as an argument of :func:`task`.

    In the tuple specification a key is its own reference (``dask._task_spec.TaskRef``
    in the newer, private one).
    """
    return key


def array_from_graph(
    graph: Mapping[Any, Any],
    name: str,
    chunks: tuple[tuple[int, ...], ...],
    dtype: np.dtype,
    meta: np.ndarray,
) -> da.Array:
    """A dask array of the layer ``name`` of ``graph`` (a dict or a ``HighLevelGraph``).

    ``da.Array(graph, name, chunks, dtype, meta)`` is documented but marked as a
    low-level constructor. Public alternatives: ``da.from_delayed`` +
    ``da.concatenate`` (one layer per block, much slower to build) or
    ``da.map_blocks`` (needs an input array).
    """
    import dask.array as da

    return da.Array(graph, name, chunks, dtype=dtype, meta=meta)


def array_from_blocks(
    name: str,
    blocks: Mapping[tuple[int, ...], Any],
    chunks: tuple[tuple[int, ...], ...],
    dtype: np.dtype,
    meta: np.ndarray | None = None,
) -> da.Array:
    """A dask array whose block at index ``(i, j, ...)`` is ``blocks[(i, j, ...)]``.

    A block is a NumPy array (used as it is: no copy, no hash) or a :func:`task` that
    makes it. ``meta`` defaults to an empty array of ``dtype``.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.arange(6.0).reshape(3, 2)
    >>> x = array_from_blocks(
    ...     "x-1", {(0, 0): a[:2], (1, 0): task(np.ones, (1, 2))}, ((2, 1), (2,)), a.dtype
    ... )
    >>> x.compute().tolist()
    [[0.0, 1.0], [2.0, 3.0], [1.0, 1.0]]
    """
    import numpy as np

    dsk = {(name, *index): value for index, value in blocks.items()}
    if meta is None:
        meta = np.empty((0,) * len(chunks), dtype=dtype)
    return array_from_graph(dsk, name, chunks, dtype, meta)


def cull_graph(dsk: Mapping[Any, Any], keys: list[Any]) -> dict[Any, Any]:
    """``dsk`` reduced to what ``keys`` need.

    ``dask.optimization.cull`` is importable but not in dask's API reference.
    ``HighLevelGraph.cull`` is public, but renames layers that lazy results refer to.
    """
    from dask.optimization import cull

    culled: dict[Any, Any]
    culled, _ = cull(dsk, keys)
    return culled


def get_in_calling_thread(dsk: Mapping[Any, Any], key: Any) -> Any:
    """Compute ``key`` with dask's minimal executor: no pool, no ordering pass.

    That executor (``dask.core.get``, not in dask's API reference; public alternative:
    ``dask.local.get_sync``, which costs an ordering pass) runs every task of the
    graph it is given, so the graph is first culled to what ``key`` needs (reads of
    frames outside a ROI drop out). It calls no scheduler callbacks, so while any are
    registered (``dask.diagnostics``, a user's own; ``Callback.active`` is
    undocumented) the synchronous scheduler runs the graph instead.
    """
    import dask.core
    import dask.local

    if Callback.active:
        return dask.local.get_sync(dsk, key)
    return dask.core.get(cull_graph(dsk, [key]), key)


# scheduler callbacks of the local schedulers --------------------------------------------------


class TaskFeedCancelled(Exception):
    """Raised by :class:`TaskFeed` inside the scheduler to stop a local run early."""


class TaskFeed(Callback):
    """Scheduler callback: report finished partition tasks, throttle them, stop when cancelled.

    ``_pretask``/``_posttask`` are the documented way to subclass
    ``dask.callbacks.Callback``; what is not documented is that the scheduler calls
    ``_pretask`` in its own thread right before it submits a task, so that blocking
    there throttles the run and raising there aborts it. No public alternative on
    dask's local schedulers (``dask.distributed`` has ``as_completed`` and
    ``Future.cancel``).

    Parameters
    ----------
    index
        Partition task key -> task index.
    on_done
        Called as ``on_done(index, result)`` for every finished partition task.
    cancel
        When set, the next task to start raises :class:`TaskFeedCancelled`.
    window
        Acquired before each partition task starts (released by the consumer), or None.
    """

    def __init__(
        self,
        index: Mapping[Any, int],
        on_done: Callable[[int, Any], None],
        cancel: threading.Event,
        window: threading.Semaphore | None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # dask.callbacks is unannotated
        self._index = index
        self._on_done = on_done
        self._cancel = cancel
        self._window = window

    def _pretask(self, key: Any, dsk: Any, state: Any) -> None:
        if self._window is not None and key in self._index:
            self._window.acquire()  # wait until the consumer has taken enough results
        if self._cancel.is_set():
            raise TaskFeedCancelled

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        i = self._index.get(key)
        if i is not None:
            self._on_done(i, result)


def local_stream_kwargs(feed: TaskFeed) -> dict[str, Any]:
    """Keywords for a local scheduler's ``get`` that make it run ``feed`` step by step.

    * ``callbacks=[feed._callback]``: the private tuple form of a callback, which
      applies to this one call only. Public alternative: ``with feed:`` registers it
      globally (``Callback.active``), for every graph any thread computes meanwhile.
    * ``chunksize=1``: the scheduler prepares one task per free worker at a time, so
      waiting for the window in ``_pretask`` never holds back finished results (the
      multiprocessing scheduler batches 6 tasks per worker by default). The keyword
      is accepted by ``dask.local.get_async`` but not documented for ``dask.threaded.get``.
    """
    return {"callbacks": [feed._callback], "chunksize": 1}


# introspection ------------------------------------------------------------------------------


def pool_size(pool: Any) -> int:
    """Worker count of a ``concurrent.futures`` executor or a ``multiprocessing`` pool.

    Reads ``_max_workers`` / ``_processes``: neither pool has a public attribute for
    its size, and there is no public alternative.
    """
    size: Any = getattr(pool, "_max_workers", None) or getattr(pool, "_processes", 1)
    return int(size)


def worker_memory_limit() -> int | None:
    """The memory limit of the ``dask.distributed`` worker running this task, or None.

    ``distributed.get_worker`` is public; ``Worker.memory_manager.memory_limit`` is
    documented only in the worker memory guide. Never imports distributed: outside a
    worker process it has not been imported, and there is no limit to find.
    """
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None
    try:
        worker = distributed.get_worker()
    except (ValueError, AttributeError):  # not in a worker's task
        return None
    manager = getattr(worker, "memory_manager", None)
    limit = getattr(manager, "memory_limit", None)
    return int(limit) if limit else None


def configured_scheduler(scheduler: Any) -> Callable[..., Any]:
    """The scheduler function for a ``scheduler`` value of dask's configuration.

    ``dask.base.get_scheduler`` is what ``dask.compute`` uses, but it is not in dask's
    API reference; no public alternative.
    """
    from dask.base import get_scheduler

    get: Callable[..., Any] = get_scheduler(scheduler=scheduler)
    return get


def scheduler_client(get: Callable[..., Any]) -> Any:
    """The ``distributed.Client`` behind a scheduler function, or None.

    ``dask.base.get_scheduler`` returns a client's bound ``Client.get`` for
    ``scheduler=<client>``; its ``__self__`` is the client. Public alternative for the
    default client: ``distributed.default_client()``; none for a client set as
    ``scheduler=`` in dask's configuration.
    """
    client = getattr(get, "__self__", None)
    if client is not None and type(client).__name__ == "Client":
        return client
    return None
