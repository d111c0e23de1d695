"""``DaskJobExecutor`` on a ``dask.distributed`` cluster: connecting, and the data path.

The cluster tests start their own ``LocalCluster`` of worker processes on loopback
(one per module, closed after it). What they pin down:

* the three ways onto a cluster: ``Context.make_with("dask")`` (a cluster owned and
  closed by the context), ``DaskJobExecutor.connect(address)``, and ``Context()``
  inside ``with Client(...)``; the tasks run in the workers' processes;
* the data path: partition tasks read their data on the workers, the merge tree runs
  there, and the client asks the scheduler for the finishing task's key only, whose
  value is the size of the results; the graph sent to the scheduler holds recipes
  (path and slice) for file sources, each partition's slice once for an in-memory
  array, and the UDFs' clean copies once.
"""

from __future__ import annotations

import os
import re
import time
import warnings

import dask
import distributed
import numpy as np
import pytest
from dask.core import get_deps
from dask.utils import parse_bytes

from dataflow.api import Context
from dataflow.executor.dask import DaskJobExecutor
from dataflow.graph import build_graph
from dataflow.partition import BLOCK_ALIGNMENT, aligned
from dataflow.plan import make_plan
from dataflow.udf import UDF
from dataflow.udf.sum import SumUDF
from dataflow.udf.sumsigudf import SumSigUDF

#: seconds any wait on the cluster may take before the test fails
TIMEOUT = 60


class PidUDF(UDF):
    """Records, per frame, the id of the process that ran its partition."""

    def get_result_buffers(self):
        return {"pid": self.buffer(kind="nav", dtype="int64")}

    def process_partition(self, partition):
        self.results.pid[:] = os.getpid()


class ParamSumUDF(UDF):
    """A sum over frames that carries a large constructor parameter (``weights``)."""

    def get_result_buffers(self):
        return {"intensity": self.buffer(kind="sig", dtype="float64")}

    def process_tile(self, tile):
        self.results.intensity[:] += tile.sum(axis=0) * self.params.weights[0]

    def merge(self, dest, src):
        dest.intensity[:] += src.intensity


class _Recorder(distributed.diagnostics.plugin.SchedulerPlugin):
    """Scheduler plugin: which keys clients want, and the size of every computed key."""

    name = "dataflow-test-recorder"

    def __init__(self, scheduler):
        self.scheduler = scheduler
        self.wanted = []
        self.nbytes = {}

    def update_graph(self, scheduler, *, keys, **kwargs):
        self.wanted.append(set(keys))

    def transition(self, key, start, finish, *args, **kwargs):
        if finish == "memory":
            ts = self.scheduler.tasks.get(key)
            if ts is not None:
                self.nbytes[key] = ts.nbytes


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as c:
        yield c


@pytest.fixture(scope="module")
def client(cluster):
    with distributed.Client(cluster, set_as_default=False, timeout=TIMEOUT) as c:
        c.wait_for_workers(2, timeout=TIMEOUT)
        yield c


@pytest.fixture
def recorder(cluster):
    rec = _Recorder(cluster.scheduler)
    cluster.scheduler.add_plugin(rec)
    yield rec
    cluster.scheduler.remove_plugin(name=rec.name)


@pytest.fixture
def data():
    return np.random.default_rng(3).integers(0, 100, size=(16, 16, 32, 32)).astype("float32")


def _wait_until_idle(client):
    """Every task of earlier runs has left the scheduler (released asynchronously)."""
    deadline = time.monotonic() + TIMEOUT
    while client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)):
        assert time.monotonic() < deadline, "tasks of a finished run stay on the scheduler"
        time.sleep(0.05)


def _check_sums(ctx, ds, data):
    total, per_frame, pids = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF(), PidUDF()])
    np.testing.assert_array_equal(total["intensity"].data, data.sum(axis=(0, 1)))
    np.testing.assert_array_equal(per_frame["intensity"].data, data.sum(axis=(2, 3)))
    return set(np.unique(pids["pid"].data).tolist())


# connecting -----------------------------------------------------------------------------------


@pytest.mark.distributed
def test_make_with_dask_starts_a_local_cluster_and_closes_it(by_value, data):
    with Context.make_with("dask", cpus=2) as ctx:
        executor = ctx.executor
        assert isinstance(executor, DaskJobExecutor)
        client = executor.client
        cluster = client.cluster
        assert executor.n_workers == 2
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        workers = set(client.run(os.getpid).values())
        assert len(workers) == 2
        assert os.getpid() not in workers  # worker processes, not threads
        try:
            default = distributed.default_client()
        except ValueError:
            default = None
        assert default is not client  # never made the default client behind our back
        ds = ctx.load("memory", data=data)
        assert ds.get_num_partitions() >= 2  # one per worker at least
        assert _check_sums(ctx, ds, data) <= workers
    assert client.status == "closed"
    assert cluster.status == distributed.core.Status.closed


@pytest.mark.distributed
def test_connect_by_address(by_value, cluster, client, data):
    workers = set(client.run(os.getpid).values())
    with Context(executor=DaskJobExecutor.connect(cluster.scheduler_address)) as ctx:
        own = ctx.executor.client
        assert own is not client
        assert own.scheduler.address == cluster.scheduler_address
        assert ctx.executor.n_workers == 2
        ds = ctx.load("memory", data=data)
        assert _check_sums(ctx, ds, data) <= workers
        parts = list(ctx.run_udf_iter(dataset=ds, udf=SumUDF()))
        assert len(parts) == ds.get_num_partitions()
        np.testing.assert_array_equal(parts[-1].buffers[0]["intensity"].data, data.sum(axis=(0, 1)))
    assert own.status == "closed"  # the executor made this client, and closed it
    assert cluster.status == distributed.core.Status.running  # not the cluster
    assert client.submit(sum, [1, 2]).result(timeout=TIMEOUT) == 3


@pytest.mark.distributed
def test_passed_client_stays_open(by_value, cluster, client, data):
    with Context(executor=DaskJobExecutor(client)) as ctx:
        _check_sums(ctx, ctx.load("memory", data=data), data)
    assert client.status == "running"


@pytest.mark.distributed
def test_default_context_uses_the_active_client(by_value, cluster, client, data):
    workers = set(client.run(os.getpid).values())
    ctx = Context()
    with distributed.Client(cluster, timeout=TIMEOUT):  # the default client in this block
        assert ctx.executor.n_workers == 2
        ds = ctx.load("memory", data=data)
        assert _check_sums(ctx, ds, data) <= workers
        parts = list(ctx.run_udf_iter(dataset=ds, udf=[SumUDF(), PidUDF()]))
        assert set(np.unique(parts[-1].buffers[1]["pid"].data).tolist()) <= workers
    # without an active client, Context() runs on threads in this process
    assert _check_sums(ctx, ctx.load("memory", data=data), data) == {os.getpid()}


# the data path ----------------------------------------------------------------------------------


def _write_source(kind, tmp_path, data):
    """Keyword arguments of ``ctx.load`` for ``data`` stored as ``kind``."""
    if kind == "npy":
        np.save(tmp_path / "scan.npy", data)
        return "npy", {"path": tmp_path / "scan.npy"}
    if kind == "zarr":
        import zarr

        z = zarr.create_array(
            str(tmp_path / "scan.zarr"),
            shape=data.shape,
            chunks=(1, *data.shape[1:]),
            dtype=data.dtype,
        )
        z[...] = data
        return "zarr", {"path": tmp_path / "scan.zarr"}
    return "memory", {"data": data}


@pytest.mark.parametrize("kind", ["npy", "memory"])
def test_finishing_task_receives_merge_results_only(tmp_path, data, kind):
    """In the graph, input data feeds partition tasks only; the finish sees merged results.

    A file source's partition tasks read their frames themselves (no data keys); an
    in-memory source's blocks are keys, each read by its partition task only.
    """
    ctx = Context.make_with("inline")
    filetype, kwargs = _write_source(kind, tmp_path, data)
    ds = ctx.load(filetype, num_partitions=16, **kwargs)
    udfs = [SumUDF(), SumSigUDF()]
    graph = build_graph(make_plan(ds, udfs), split_every=4)
    dsk = dict(graph.graph)
    deps, dependents = get_deps(dsk)
    spec_keys = [k for k in dsk if "-spec-" in str(k)]
    assert len(spec_keys) == 1  # the UDFs' clean copies: one key
    nav_keys = {k for k in dsk if isinstance(k, tuple) and "-nav-" in k[0]}
    top = {k for k in graph.merge_keys if k[1] == max(m[1] for m in graph.merge_keys)}
    assert deps[graph.final_key] == {*spec_keys, *top, *nav_keys}
    data_keys = {k for k in dsk if isinstance(k, tuple) and k[0] == ds.partition_array.name}
    if kind == "npy":
        assert data_keys == set()
        assert all(deps[k] == set(spec_keys) for k in graph.partition_keys)
        assert len(dsk) == len(graph.partition_keys) + len(graph.merge_keys) + 2 + len(nav_keys)
    else:
        assert len(data_keys) == 16
    for key in data_keys:  # each block is read once, by its partition task only
        assert dependents[key] < set(graph.partition_keys)
        assert len(dependents[key]) == 1
    for key in [*graph.partition_keys, *graph.merge_keys, *nav_keys, graph.final_key]:
        assert spec_keys[0] in deps[key]


def _graph_bytes(record):
    """Sizes of the graphs sent to the scheduler, from distributed's large-graph warnings."""
    sizes = []
    for w in record:
        m = re.search(r"Sending large graph of size ([\d.]+ \w+)", str(w.message))
        if m:
            sizes.append(parse_bytes(m.group(1)))
    return sizes


@pytest.mark.distributed
@pytest.mark.parametrize("kind", ["npy", "zarr", "memory"])
def test_client_receives_only_the_results(by_value, client, recorder, tmp_path, data, kind):
    filetype, kwargs = _write_source(kind, tmp_path, data)
    ctx = Context(executor=DaskJobExecutor(client))
    ds = ctx.load(filetype, num_partitions=16, **kwargs)
    _wait_until_idle(client)
    # a threshold of one byte: distributed reports the size of every graph it sends
    with (
        dask.config.set({"distributed.admin.large-graph-warning-threshold": "1B"}),
        warnings.catch_warnings(record=True) as record,
    ):
        warnings.simplefilter("always")
        total, per_frame = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
    np.testing.assert_array_equal(total["intensity"].data, data.sum(axis=(0, 1)))
    np.testing.assert_array_equal(per_frame["intensity"].data, data.sum(axis=(2, 3)))

    # the client asked for one key, the finishing task's, in one graph; in-memory
    # data is sent once before (scattered, then aligned under the blocks' own keys)
    blocks = {(ds.partition_array.name, i, 0, 0) for i in range(16)}
    graphs = [keys for keys in recorder.wanted if keys != blocks]
    assert len(recorder.wanted) - len(graphs) == (kind == "memory")
    assert len(graphs) == 1
    (final,) = graphs[0]
    assert "-finish-" in final
    # ... whose value is the results, nothing more
    results = total["intensity"].raw_data.nbytes + per_frame["intensity"].raw_data.nbytes
    received = recorder.nbytes[final]
    assert results <= received <= results + 16 * 2**10, (received, results)
    assert received < data.nbytes / 10
    # partition results were merged on the workers: every partition and merge key was
    # computed there and none of them was asked for by the client
    parts = [k for k in recorder.nbytes if isinstance(k, tuple) and "-partition-" in k[0]]
    merges = [k for k in recorder.nbytes if isinstance(k, tuple) and "-merge-" in k[0]]
    assert len(parts) == 16
    assert len(merges) == 2  # 16 partitions, 8 children per node

    sizes = _graph_bytes(record)
    assert len(sizes) == 1 + (kind == "memory")  # the run's, after the aligning one
    # recipes: path and slice per partition, no array bytes; in-memory data goes to
    # the workers beside the graph, once (test_in_memory_data_is_sent_once)
    assert max(sizes) <= 64 * 2**10, sizes


def _held_keys(client):
    """Keys whose data the workers hold."""
    return client.run_on_scheduler(
        lambda dask_scheduler: {k for k, t in dask_scheduler.tasks.items() if t.state == "memory"}
    )


@pytest.mark.distributed
@pytest.mark.parametrize("kind", ["memory", "dask", "memory-padded"])
def test_in_memory_data_is_sent_once(by_value, client, tmp_path, data, kind, monkeypatch):
    """In-memory data reaches the workers on the first run only; they drop it with the
    dataset. Counted: the bytes scattered, and the size of every graph sent."""
    import gc

    import dask.array as da

    scattered = []
    real_scatter = client.scatter

    def counting_scatter(values, **kwargs):
        scattered.append(sum(v.nbytes for v in values))
        return real_scatter(values, **kwargs)

    monkeypatch.setattr(client, "scatter", counting_scatter)
    ex = DaskJobExecutor(client)
    ctx = Context(executor=ex)
    _wait_until_idle(client)
    before = _held_keys(client)
    if kind == "dask":
        ds = ctx.load("dask", dask_array=da.from_array(data, chunks=(2, 16, 32, 32)))
        expected = data
    elif kind == "memory-padded":  # a partition padded with zero frames: made by a task
        ds = ctx.load("memory", data=data, num_partitions=4, sync_offset=-8)
        expected = np.concatenate([np.zeros((8, 32, 32), data.dtype), data.reshape(-1, 32, 32)])
        expected = expected[:256].reshape(data.shape)
    else:
        ds = ctx.load("memory", data=data, num_partitions=16)
        expected = data
    assert ds.resident
    with (
        dask.config.set({"distributed.admin.large-graph-warning-threshold": "1B"}),
        warnings.catch_warnings(record=True) as record,
    ):
        warnings.simplefilter("always")
        for _ in range(3):
            total, per_frame = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
            np.testing.assert_array_equal(total["intensity"].data, expected.sum(axis=(0, 1)))
            np.testing.assert_array_equal(per_frame["intensity"].data, expected.sum(axis=(2, 3)))
    sent = _graph_bytes(record)
    if kind == "memory":  # the blocks, straight to the workers, then aligned there
        assert scattered == [data.nbytes]
        assert sent[0] <= 16 * 2**10  # the aligning graph: references, no data
        runs = sent[1:]
    else:  # graphs that make the blocks (with their NumPy data), run on the workers once
        assert scattered == []
        assert sent[0] >= data.nbytes - 8 * 32 * 32 * 4
        runs = sent[1:]
    assert len(runs) == 3
    assert max(runs) <= 64 * 2**10, runs  # no run carries the data
    deadline = time.monotonic() + TIMEOUT
    while len(_held_keys(client) - before) > ds.get_num_partitions():  # runs' keys go
        assert time.monotonic() < deadline, _held_keys(client) - before
        time.sleep(0.05)
    assert len(_held_keys(client) - before) == ds.get_num_partitions()  # the blocks stay
    del ds, total, per_frame
    gc.collect()
    deadline = time.monotonic() + TIMEOUT
    while _held_keys(client) - before:  # released with the dataset
        assert time.monotonic() < deadline, "the workers keep the data of a dropped dataset"
        time.sleep(0.05)


@pytest.mark.distributed
def test_released_data_is_sent_again(by_value, client, data):
    ex = DaskJobExecutor(client)
    ctx = Context(executor=ex)
    ds = ctx.load("memory", data=data, num_partitions=4)
    first = ex.input_array(ds)
    assert ex.input_array(ds) is first
    ex.release(ds)
    again = ex.input_array(ds)
    assert again is not first
    total = ctx.run_udf(dataset=ds, udf=SumUDF())
    np.testing.assert_array_equal(total["intensity"].data, data.sum(axis=(0, 1)))


@pytest.mark.distributed
def test_udf_parameters_travel_once(by_value, client, tmp_path, data):
    """A large UDF parameter is sent once per graph (in the spec key), not once per task."""
    filetype, kwargs = _write_source("npy", tmp_path, data)
    ctx = Context(executor=DaskJobExecutor(client))
    ds = ctx.load(filetype, num_partitions=16, **kwargs)
    weights = np.ones(2**18)  # 2 MiB
    with (
        dask.config.set({"distributed.admin.large-graph-warning-threshold": "1B"}),
        warnings.catch_warnings(record=True) as record,
    ):
        warnings.simplefilter("always")
        res = ctx.run_udf(dataset=ds, udf=ParamSumUDF(weights=weights))
    np.testing.assert_array_equal(res["intensity"].data, data.sum(axis=(0, 1)))
    (sent,) = _graph_bytes(record)
    assert weights.nbytes <= sent <= weights.nbytes + 64 * 2**10, (sent, weights.nbytes)


@pytest.mark.distributed
def test_partial_results_stream_from_the_cluster(by_value, client, data):
    ctx = Context(executor=DaskJobExecutor(client))
    ds = ctx.load("memory", data=data, num_partitions=8)
    covered = []
    for part in ctx.run_udf_iter(dataset=ds, udf=[SumUDF(), SumSigUDF()]):
        covered.append(int(part.damage.data.sum()))
        frames = part.damage.data
        np.testing.assert_array_equal(part.buffers[0]["intensity"].data, data[frames].sum(axis=0))
    assert covered == sorted(covered)
    assert len(covered) == 8
    assert covered[-1] == 256


def test_blocks_are_realigned():
    """A block unpacked at an odd address is copied to an aligned one; others are kept."""
    raw = np.zeros(4 * 64 + 1, dtype=np.uint8)[1:]  # a float32 view one byte off
    odd = raw.view(np.float32).reshape(8, 8)
    odd[...] = np.arange(64, dtype=np.float32).reshape(8, 8)
    assert odd.ctypes.data % BLOCK_ALIGNMENT != 0
    fixed = aligned(odd)
    assert fixed.ctypes.data % BLOCK_ALIGNMENT == 0
    np.testing.assert_array_equal(fixed, odd)
    fine = np.ones((8, 8), np.float32)
    assert aligned(fine) is fine


@pytest.mark.distributed
def test_resident_blocks_are_aligned_on_the_workers(client, data):
    ctx = Context(executor=DaskJobExecutor(client))
    ds = ctx.load("memory", data=data, num_partitions=16)
    total = ctx.run_udf(dataset=ds, udf=SumUDF())
    np.testing.assert_array_equal(total["intensity"].data, data.sum(axis=(0, 1)))
    name = ds.partition_array.name

    def addresses(dask_worker):
        return [
            (k[1], v.ctypes.data % BLOCK_ALIGNMENT)
            for k, v in dask_worker.data.items()
            if isinstance(k, tuple) and k[0] == name
        ]

    held = [a for found in client.run(addresses).values() for a in found]
    # every block as sent has an aligned copy; a worker that fetched one from another
    # (a stolen task) may hold a misaligned replica, which run_partition copies
    assert {i for i, offset in held if offset == 0} == set(range(16))
