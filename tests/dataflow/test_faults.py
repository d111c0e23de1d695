"""Faults on a ``dask.distributed`` cluster: lost workers, failing UDFs, bad data, memory.

One ``LocalCluster`` of two single-threaded worker processes (600 MiB each) on
loopback serves the module and is closed after it. No test depends on timing:

* workers are killed (SIGKILL) at a point of the run fixed by an event, never by a
  delay: the moment the first partition result is computed (a scheduler plugin), or
  when the first partial result reaches ``run_udf_iter``'s caller;
* cancellation is checked with a gate: the first partition task to start runs, every
  other one waits for a file the test creates only after the scheduler has dropped
  the run, so at most one blocked task per worker thread can ever have started;
* every wait has a deadline (:data:`TIMEOUT`), and a watchdog closes the client of a
  run that hangs, so a fault fails the test instead of stalling the suite.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
import uuid
from pathlib import Path

import distributed
import numpy as np
import pytest

from dataflow.adapters.zarr import ZarrReadError
from dataflow.api import Context
from dataflow.executor.dask import DaskJobExecutor
from dataflow.testing import FrameCopyUDF
from dataflow.udf import UDF
from dataflow.udf.sum import SumUDF
from dataflow.udf.sumsigudf import SumSigUDF

pytestmark = pytest.mark.distributed

#: seconds any wait may take before the test fails
TIMEOUT = 60
MEMORY_LIMIT = 600 * 2**20


class FrameError(Exception):
    """A UDF's own exception type: it must reach the client as itself."""


class SlowSumUDF(UDF):
    """Sums frames, sleeping ``delay`` seconds per frame; ``frames`` counts what was merged."""

    def get_result_buffers(self):
        return {
            "intensity": self.buffer(kind="sig", dtype="float64"),
            "per_frame": self.buffer(kind="nav", dtype="float64"),
            "frames": self.buffer(kind="single", dtype="int64"),
        }

    def process_frame(self, frame):
        time.sleep(self.params.delay)
        self.results.intensity[:] += frame
        self.results.per_frame[:] = frame.sum()
        self.results.frames[:] += 1

    def merge(self, dest, src):
        dest.intensity[:] += src.intensity
        dest.per_frame[:] = src.per_frame
        dest.frames[:] += src.frames


def _wait_for(path, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} was not created within {timeout} s")
        time.sleep(0.01)


class GateUDF(UDF):
    """Sums whole partitions behind a gate.

    Every partition task leaves a ``started-*`` file in ``workdir``. The first one to
    start runs at once (and raises :class:`FrameError` if ``fail``); every other one
    waits until ``workdir/gate`` exists.
    """

    def get_result_buffers(self):
        return {
            "total": self.buffer(kind="single", dtype="float64"),
            "frames": self.buffer(kind="single", dtype="int64"),
        }

    def process_partition(self, partition):
        work = Path(self.params.workdir)
        start = self.meta.slice.origin[0]
        (work / f"started-{start}-{uuid.uuid4().hex}").touch()
        try:
            os.close(os.open(work / "first", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            _wait_for(work / "gate")
        else:
            (work / "first").write_text(str(start))
            if self.params.fail:
                raise FrameError(f"cannot process the frame at {start}")
        self.results.total[:] += partition.sum()
        self.results.frames[:] += len(partition)

    def merge(self, dest, src):
        dest.total[:] += src.total
        dest.frames[:] += src.frames


class _KillFirstHolder(distributed.diagnostics.plugin.SchedulerPlugin):
    """Scheduler plugin: SIGKILL the worker that computed the run's first partition result.

    It kills at the moment that result is stored, so the run is in flight for sure and
    the result, which the merge tree still needs, is lost with the worker.
    """

    name = "dataflow-test-kill"

    def __init__(self, scheduler, pids):
        self.scheduler = scheduler
        self.pids = pids
        self.killed = None

    def transition(self, key, start, finish, *args, **kwargs):
        if self.killed is not None or finish != "memory":
            return
        if not (isinstance(key, tuple) and "-partition-" in key[0]):
            return
        (ws,) = self.scheduler.tasks[key].who_has
        self.killed = (key, ws.address, self.pids[ws.address])
        os.kill(self.pids[ws.address], signal.SIGKILL)


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        memory_limit=MEMORY_LIMIT,
    ) as c:
        yield c


@pytest.fixture(scope="module")
def client(cluster):
    with distributed.Client(cluster, set_as_default=False, timeout=TIMEOUT) as c:
        yield c


@pytest.fixture
def ctx(client):
    """A context on the module's cluster, with both workers up and no task left over."""
    client.wait_for_workers(2, timeout=TIMEOUT)
    _wait_until_idle(client)
    return Context(executor=DaskJobExecutor(client))


def _wait_until_idle(client):
    """Wait until the scheduler holds no task; fail after :data:`TIMEOUT`."""
    deadline = time.monotonic() + TIMEOUT
    while n := client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)):
        assert time.monotonic() < deadline, f"{n} tasks of an ended run stay on the scheduler"
        time.sleep(0.05)


@contextlib.contextmanager
def _watchdog(client, seconds=TIMEOUT):
    """Fail instead of hanging: close ``client`` if the block runs longer than ``seconds``."""
    fired = threading.Event()

    def fire():
        fired.set()
        client.close()

    timer = threading.Timer(seconds, fire)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        assert not fired.is_set(), f"the run took longer than {seconds} s; its client was closed"


def _events(client, action, since, topic="all"):
    """The scheduler's events of ``action`` logged since ``since``.

    ``topic="all"`` gives the cluster-wide ones, ``topic=None`` the workers' own.
    """
    return [
        m
        for name, events in client.get_events().items()
        if (name == "all") == (topic == "all")
        for t, m in events
        if t >= since and isinstance(m, dict) and m.get("action") == action
    ]


def _keys(keys):
    return {tuple(k) if isinstance(k, list) else k for k in keys}


@pytest.fixture
def scan(tmp_path):
    """An npy scan of 16 x 16 frames of 8 x 8 integers, read on the workers."""
    data = np.random.default_rng(11).integers(0, 50, size=(16, 16, 8, 8)).astype("float32")
    np.save(tmp_path / "scan.npy", data)
    return tmp_path / "scan.npy", data


# lost workers -----------------------------------------------------------------------------------


def _check_complete(res, data):
    np.testing.assert_array_equal(res["intensity"].data, data.sum(axis=(0, 1)))
    np.testing.assert_array_equal(res["per_frame"].data, data.sum(axis=(2, 3)))
    assert res["frames"].data[0] == data.shape[0] * data.shape[1]


def _check_restarted(client, pids, killed_pid):
    """The nanny replaced the killed worker process; the other one lived on."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        now = client.run(os.getpid, on_error="ignore")  # a dead worker may still be listed
        if len(now) == 2 and killed_pid not in now.values():
            break
        assert time.monotonic() < deadline, f"worker {killed_pid} was not replaced: {now}"
        time.sleep(0.1)
    assert len(set(now.values()) & set(pids.values())) == 1


def test_worker_lost_during_run_udf(by_value, ctx, client, cluster, scan):
    path, data = scan
    ds = ctx.load("npy", path=path, num_partitions=16)
    udf = SlowSumUDF(delay=0.002)
    reference = ctx.run_udf(dataset=ds, udf=udf)
    _check_complete(reference, data)
    pids = client.run(os.getpid)
    killer = _KillFirstHolder(cluster.scheduler, pids)
    since = time.time()
    cluster.scheduler.add_plugin(killer)
    try:
        with _watchdog(client):
            res = ctx.run_udf(dataset=ds, udf=udf)
    finally:
        cluster.scheduler.remove_plugin(name=killer.name)
    assert killer.killed is not None
    key, address, pid = killer.killed
    for name in reference:
        np.testing.assert_array_equal(res[name].data, reference[name].data)
    (removed,) = [m for m in _events(client, "remove-worker", since) if m["worker"] == address]
    assert key in _keys(removed["lost-computed-tasks"])  # so that partition ran again
    assert not removed["expected"]
    _check_restarted(client, pids, pid)


def _busy_worker(client):
    """A worker running a partition task, if there is one, else any worker."""
    processing = client.processing()
    for address, keys in processing.items():
        if any("-partition-" in str(k) for k in keys):
            return address
    return next(iter(processing))


def test_worker_lost_during_run_udf_iter(by_value, ctx, client, scan):
    path, data = scan
    ds = ctx.load("npy", path=path, num_partitions=16)
    n_frames = data.shape[0] * data.shape[1]
    udf = SlowSumUDF(delay=0.002)
    reference = ctx.run_udf(dataset=ds, udf=udf)
    pids = client.run(os.getpid)
    killed = None
    covered = []
    with _watchdog(client):
        for part in ctx.run_udf_iter(dataset=ds, udf=udf):
            if killed is None:
                killed = pids[_busy_worker(client)]
                os.kill(killed, signal.SIGKILL)
            damage = part.damage.data
            res = part.buffers[0]
            # every frame merged once: the counter, the damage and the sums agree
            assert res["frames"].data[0] == damage.sum() <= n_frames
            np.testing.assert_array_equal(res["intensity"].data, data[damage].sum(axis=0))
            covered.append(int(damage.sum()))
    assert covered == sorted(covered)
    assert covered[-1] == n_frames
    for name in reference:
        np.testing.assert_array_equal(res[name].data, reference[name].data)
    _check_restarted(client, pids, killed)


# failures inside a UDF ------------------------------------------------------------------------


def _run(ctx, how, ds, udf):
    if how == "run_udf":
        return ctx.run_udf(dataset=ds, udf=udf)
    *_, last = ctx.run_udf_iter(dataset=ds, udf=udf)
    return last.buffers[0]


def _check_usable(ctx, ds, data, tmp_path):
    """A run after the fault gives the right numbers."""
    work = tmp_path / "after"
    work.mkdir()
    (work / "gate").touch()
    res = ctx.run_udf(dataset=ds, udf=GateUDF(workdir=str(work), fail=False))
    assert res["total"].data[0] == data.sum(dtype="float64")
    assert res["frames"].data[0] == data.shape[0] * data.shape[1]


@pytest.mark.parametrize("how", ["run_udf", "run_udf_iter"])
def test_udf_error_surfaces_and_the_run_is_cancelled(by_value, ctx, client, scan, tmp_path, how):
    path, data = scan
    ds = ctx.load("npy", path=path, num_partitions=12)
    work = tmp_path / "failing"
    work.mkdir()
    with _watchdog(client), pytest.raises(FrameError, match="cannot process the frame") as info:
        _run(ctx, how, ds, GateUDF(workdir=str(work), fail=True))
    start = int((work / "first").read_text())
    (p,) = [p for p in ds.partitions if p.start == start]
    note = (
        f"dataflow: raised in GateUDF.process_partition on partition {p.index} "
        f"(frames {p.start}..{p.stop - 1} of the flattened navigation axis)"
    )
    assert info.value.__notes__ == [note]
    # the scheduler drops the run while the other started tasks still wait at the gate
    _wait_until_idle(client)
    started = len(list(work.glob("started-*")))
    (work / "gate").touch()
    assert started <= 3  # the failing one, and one waiting task per worker thread
    _check_usable(ctx, ds, data, tmp_path)


def test_closing_run_udf_iter_cancels_the_rest(by_value, ctx, client, scan, tmp_path):
    path, data = scan
    ds = ctx.load("npy", path=path, num_partitions=12)
    work = tmp_path / "closed"
    work.mkdir()
    with _watchdog(client):
        gen = ctx.run_udf_iter(dataset=ds, udf=GateUDF(workdir=str(work), fail=False))
        first = next(gen)
        gen.close()
    start = int((work / "first").read_text())
    (p,) = [p for p in ds.partitions if p.start == start]
    assert first.damage.data.sum() == p.n_frames
    assert first.buffers[0]["frames"].data[0] == p.n_frames
    _wait_until_idle(client)
    started = len(list(work.glob("started-*")))
    (work / "gate").touch()
    assert started <= 3 < len(ds.partitions)
    _check_usable(ctx, ds, data, tmp_path)


# bad data on the cluster ------------------------------------------------------------------------


@pytest.fixture
def zarr_scan(tmp_path):
    import zarr

    data = np.random.default_rng(5).integers(1, 1000, size=(6, 7, 8, 9)).astype("uint16")
    path = tmp_path / "scan.zarr"
    z = zarr.create_array(
        str(path), shape=data.shape, chunks=(2, 7, 8, 9), dtype=data.dtype, fill_value=0
    )
    z[...] = data
    return path, data


def test_corrupt_zarr_chunk(ctx, client, zarr_scan):
    path, data = zarr_scan
    (path / "c/1/0/0/0").write_bytes(b"not a chunk" * 7)
    ds = ctx.load("zarr", path=path, num_partitions=3)
    with _watchdog(client), pytest.raises(ZarrReadError, match="could not be read") as info:
        ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
    assert "chunk 'c/1/0/0/0'" in str(info.value)
    assert repr(str(path)) in str(info.value)
    _wait_until_idle(client)
    roi = np.zeros(data.shape[:2], bool)
    roi[0, 0] = roi[5, 6] = True  # no frame in the bad chunk: that run succeeds
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF(), roi=roi)
    np.testing.assert_array_equal(res["frames"].raw_data, data[roi])


def test_missing_zarr_chunk(ctx, client, zarr_scan):
    path, data = zarr_scan
    (path / "c/1/0/0/0").unlink()
    ds = ctx.load("zarr", path=path, num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF())
    expected = data.copy()
    expected[2:4] = 0  # the fill value
    np.testing.assert_array_equal(res["frames"].data, expected)
    ds = ctx.load("zarr", path=path, num_partitions=3, missing_chunks="raise")
    with _watchdog(client), pytest.raises(ZarrReadError, match="has no chunk 'c/1/0/0/0'"):
        ctx.run_udf(dataset=ds, udf=FrameCopyUDF())
    _wait_until_idle(client)


# memory -------------------------------------------------------------------------------------------


def _run_one_gib(ctx, client, cluster, zarr, path):
    shape = (64, 64, 256, 256)
    z = zarr.create_array(
        str(path), shape=shape, chunks=(1, 64, 256, 256), dtype="float32", compressors=None
    )
    pattern = (np.arange(256 * 256).reshape(256, 256) % 4).astype("float32")
    offsets = (np.arange(64)[:, None] + np.arange(64)[None, :]) % 4  # per frame
    for y in range(shape[0]):  # one scan row (16 MiB) at a time
        z[y] = pattern + offsets[y][:, None, None].astype("float32")
    assert z.nbytes == 2**30

    limits = {ws.memory_limit for ws in cluster.scheduler.workers.values()}
    assert limits == {MEMORY_LIMIT}
    # a worker holds up to two partitions at once (one processed, the next read) next to
    # its own ~200 MiB: ctx.load sizes partitions from the workers' memory limit itself
    ds = ctx.load("zarr", path=path)
    frame_bytes = 256 * 256 * 4
    sizes = [p.n_frames * frame_bytes for p in ds.partitions]
    assert sum(sizes) == 2**30
    assert max(sizes) <= MEMORY_LIMIT // 4  # near the target of a eighth, on chunk rows

    pids = client.run(os.getpid)
    since = time.time()
    with _watchdog(client):
        total, per_frame = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
    # integers in float32: the sums are exact
    np.testing.assert_array_equal(total["intensity"].data, 4096 * pattern + offsets.sum())
    np.testing.assert_array_equal(per_frame["intensity"].data, pattern.sum() + offsets * 2**16)
    assert client.run(os.getpid) == pids  # no worker was restarted
    assert not _events(client, "remove-worker", since)
    changes = _events(client, "worker-status-change", since, topic=None)
    paused = [m for m in changes if m["status"] != "running"]
    assert not paused
    assert {ws.status.name for ws in cluster.scheduler.workers.values()} == {"running"}


@pytest.mark.slow
def test_one_gib_zarr_within_the_worker_memory_limit(ctx, client, cluster, tmp_path):
    """1 GiB of float32 on two workers of 600 MiB: no worker paused or restarted."""
    import zarr

    path = tmp_path / "big.zarr"
    try:
        _run_one_gib(ctx, client, cluster, zarr, path)
    finally:
        shutil.rmtree(path, ignore_errors=True)  # pytest keeps the last runs' tmp_path
