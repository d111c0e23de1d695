"""``DaskJobExecutor``: runs on a ``dask.distributed`` cluster.

``make_local`` starts a local cluster owned (and closed) by the executor;
``connect`` attaches to a running scheduler; ``DaskJobExecutor(client)`` uses a
client the caller already has. The client is never made the default one unless
asked for (``make_with("dask-make-default")``).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from dataflow._dask import array_from_blocks
from dataflow.executor.base import (
    JobExecutor,
    PartitionDone,
    RunFinished,
    StreamEvent,
    cpu_count,
)
from dataflow.partition import aligned

if TYPE_CHECKING:
    import dask.array as da
    from distributed import Client

    from dataflow.sources import DataSet

__all__ = [
    "DaskJobExecutor",
    "client_memory_per_thread",
    "client_stream",
    "cluster_spec",
]


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ImportError(
            "running on a dask cluster needs dask.distributed: "
            "pip install 'dataflow-udf[distributed]'"
        ) from None
    return distributed


def cluster_spec(cpus: int | Sequence[int] | None = None, **kwargs: Any) -> dict[str, Any]:
    """Keyword arguments for ``distributed.LocalCluster`` with one single-threaded worker per CPU."""
    n = len(cpus) if isinstance(cpus, Sequence) else (cpus or cpu_count())
    spec = {"n_workers": n, "threads_per_worker": 1, "processes": True}
    spec.update(kwargs)
    return spec


def client_memory_per_thread(client: Client) -> int | None:
    """The smallest memory limit per thread among the client's workers, or None."""
    limits = []
    for info in client.scheduler_info().get("workers", {}).values():
        limit, threads = info.get("memory_limit"), info.get("nthreads") or 1
        if limit:
            limits.append(int(limit) // threads)
    return min(limits) if limits else None


def client_stream(
    client: Client, dsk: Mapping, partition_keys: Sequence[Any], final_key: Any, *, want_data: bool
) -> Iterator[StreamEvent]:
    """Submit ``dsk`` to ``client``; yield partitions as they finish, then the final value.

    Partition results stay on the workers unless ``want_data``. Closing the
    iterator early cancels everything of the run that has not finished.
    """
    distributed = _distributed()
    futures = client.get(dict(dsk), [*partition_keys, final_key], sync=False)
    parts, final = futures[:-1], futures[-1]
    index = {f.key: i for i, f in enumerate(parts)}
    done = False
    try:
        for fut in distributed.as_completed(parts, loop=client.loop):
            if fut.status == "error" or want_data:
                value = fut.result()
            else:
                value = None
            yield PartitionDone(index[fut.key], value)
            fut.release()
        value = final.result()
        done = True
        yield RunFinished(value)
    finally:
        if not done:
            client.cancel(futures)


def _send_once(client: Client, array: da.Array) -> da.Array:
    """``array`` with its blocks held by ``client``'s workers: the same keys, as futures.

    Blocks that are NumPy arrays in the graph (the memory source) are scattered to
    the workers directly, not through the scheduler; other graphs (blocks made by
    tasks: a dask array of NumPy, zero padding) are persisted.
    """
    graph = dict(array.__dask_graph__())
    keys = [(array.name, *index) for index in np.ndindex(*array.numblocks)]
    if not all(isinstance(graph.get(k), np.ndarray) for k in keys):
        persisted: da.Array = client.persist(array)
        return persisted
    # hash=False: the blocks are views of the user's array, known by their keys
    sent = client.scatter([graph[k] for k in keys], hash=False)
    # A worker may unpack a block at any byte offset of the message it came in (a
    # float32 block at an odd address summed 4x slower: 31 against 8 ms for 128 MiB),
    # so such blocks are copied once, on the worker, rather than by every run. They
    # are kept under the array's own keys: a graph entry whose future has its own key
    # is the block itself (as in a persisted collection), where another key would add
    # an alias task per block to every run.
    futures = client.map(aligned, sent, key=keys, pure=False)
    del sent  # the workers drop what was sent once the aligned blocks exist
    blocks = {k[1:]: f for k, f in zip(keys, futures, strict=True)}
    return array_from_blocks(array.name, blocks, array.chunks, array.dtype)


class DaskJobExecutor(JobExecutor):
    """Run on a ``dask.distributed`` cluster through ``client``.

    Parameters
    ----------
    client
        A ``distributed.Client``.
    is_local
        Whether the executor owns the client and its cluster and closes them.

    Examples
    --------
    >>> ex = DaskJobExecutor.make_local(cpus=2)  # doctest: +SKIP
    >>> ex = DaskJobExecutor.connect("tcp://scheduler:8786")  # doctest: +SKIP
    """

    name = "dask"

    def __init__(self, client: Client, is_local: bool = False, lt_resources: Any = None) -> None:
        self.client = client
        self.is_local = is_local
        #: close the client (not its cluster) with the executor: ``connect`` made it
        self._owns_client = False
        #: in-memory datasets -> their partition arrays held by the workers; an entry
        #: (and with it the workers' copy) goes when its dataset is garbage collected
        self._resident: weakref.WeakKeyDictionary[DataSet, da.Array] = weakref.WeakKeyDictionary()
        self._resident_lock = threading.Lock()

    @classmethod
    def make_local(
        cls,
        spec: Mapping[str, Any] | None = None,
        cluster_kwargs: Mapping[str, Any] | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
        preload: Any = None,
        snooze_timeout: float | None = None,
        main_process_gpu: Any = None,
        *,
        cpus: int | Sequence[int] | None = None,
    ) -> DaskJobExecutor:
        """Start a local cluster of worker processes and an executor that owns it."""
        distributed = _distributed()
        kwargs = dict(spec) if spec is not None else cluster_spec(cpus)
        kwargs.setdefault("dashboard_address", None)
        kwargs.update(cluster_kwargs or {})
        cluster = distributed.LocalCluster(**kwargs)
        ckw = {"set_as_default": False, **(client_kwargs or {})}
        try:
            client = distributed.Client(cluster, **ckw)
        except BaseException:
            cluster.close()
            raise
        return cls(client, is_local=True)

    @classmethod
    def connect(
        cls,
        scheduler_uri: str,
        *args: Any,
        client_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> DaskJobExecutor:
        """Connect to the scheduler at ``scheduler_uri`` (e.g. ``"tcp://10.0.0.1:8786"``).

        The executor owns the client it makes here and closes it in :meth:`close`; the
        cluster keeps running.
        """
        distributed = _distributed()
        ckw = {"set_as_default": False, **(client_kwargs or {})}
        executor = cls(distributed.Client(scheduler_uri, *args, **ckw), is_local=False)
        executor._owns_client = True
        return executor

    @property
    def n_workers(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    @property
    def memory_per_thread(self) -> int | None:
        return client_memory_per_thread(self.client)

    @property
    def supports_parameter_updates(self) -> bool:
        return False  # the workers hold their own copies of the UDFs

    def get(self, dsk: Mapping, key: Any) -> Any:
        return self.client.get(dict(dsk), key, sync=True)

    def input_array(self, dataset: DataSet) -> da.Array:
        """In-memory data sent to the workers once, on its first run, and kept there.

        Without this every run's graph carried the data: the client pickled it and
        the scheduler passed it on, at a fraction of the workers' speed. The blocks
        are scattered straight to the workers (blocks made by tasks, such as zero
        padding, are computed there); the workers drop them when the dataset is
        garbage collected, or with :meth:`release`.
        """
        if not dataset.resident:
            return dataset.partition_array
        with self._resident_lock:
            held = self._resident.get(dataset)
            if held is None:
                held = self._resident[dataset] = _send_once(self.client, dataset.partition_array)
        return held

    def release(self, dataset: DataSet) -> None:
        """Let the workers drop their copy of ``dataset``'s data (sent again if it runs)."""
        with self._resident_lock:
            self._resident.pop(dataset, None)

    def stream(
        self,
        dsk: Mapping,
        partition_keys: Sequence[Any],
        final_key: Any,
        *,
        want_data: bool,
        lockstep: bool = False,
    ) -> Iterator[StreamEvent]:
        return client_stream(self.client, dsk, partition_keys, final_key, want_data=want_data)

    def close(self) -> None:
        """Close what the executor made: the cluster of ``make_local``, the client of ``connect``.

        A client passed in by the caller stays open, and so does a cluster the
        executor connected to. The workers' copies of in-memory data are dropped.
        """
        with self._resident_lock:
            self._resident.clear()
        if self.is_local:
            cluster = self.client.cluster
            self.client.close()
            if cluster is not None:
                cluster.close()
        elif self._owns_client:
            self.client.close()
