"""Run each workload on dataflow and its peers: warm up, check, time, and report.

Every series is one untimed warm-up, whose result is checked against the NumPy
answer, then ``repeat`` timed calls, each turning its result into a NumPy array.
Per workload the series are: the NumPy reference (one thread); dataflow on each
executor (one Context per executor for the whole run); plain dask.array on the
threaded scheduler; for memory-bound workloads the roofline, a NumPy streaming read
of the same array on 1 and on ``cpus`` threads, and, when they read a compressed copy,
the decode roofline, numcodecs decoding the copy's chunk bytes from memory on 1 and on
``cpus`` threads (see :mod:`benchmarks.decode`); for workloads with a
``distributed_block``, on executors with a ``dask.distributed`` client, a plain graph
of the same shape as dataflow's run on that client (see :mod:`benchmarks.taskgraph`);
and LiberTEM, whose series all run first, in one subprocess in LiberTEM's own
environment (see :mod:`benchmarks.peer`).
"""

from __future__ import annotations

import functools
import gc
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask
import numpy as np

import dataflow
from benchmarks.data import SOURCES, DataCache, dask_chunks, stored_nbytes
from benchmarks.decode import DecodePool, first_mismatch
from benchmarks.taskgraph import PlainGraph, dataflow_graph_shape
from dataflow import Context
from dataflow.udf.sum import SumUDF

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from benchmarks.peer import LiberTEMPeer, PeerResult
    from benchmarks.workloads import Workload

__all__ = [
    "BenchmarkCheckError",
    "Results",
    "Settings",
    "check",
    "format_table",
    "machine_info",
    "roofline_times",
    "run_benchmarks",
    "run_workload",
]

#: the peers, by the ``tool`` of their series
PEERS = ("numpy", "dask", "distributed", "libertem", "roofline", "decode_roofline")
#: peers that are limits of the machine, not tools: no ``vs base``
_LIMITS = ("roofline", "decode_roofline")


class BenchmarkCheckError(AssertionError):
    """A benchmarked run computed a wrong result."""


def check(got: Any, expected: Any, *, what: str, rtol: float = 1e-5) -> None:
    """Raise unless ``got`` equals ``expected`` within ``rtol`` (``np.allclose``).

    Parameters
    ----------
    got, expected
        The result of a run and the NumPy answer.
    what
        Names the run in the message, e.g. ``"sum on 'threads'"``.

    Raises
    ------
    BenchmarkCheckError
        If the shapes differ or a value is off by more than ``rtol``.
    """
    got, expected = np.asarray(got), np.asarray(expected)
    if got.shape != expected.shape:
        raise BenchmarkCheckError(
            f"{what}: the result has shape {got.shape}; the NumPy reference has shape "
            f"{expected.shape}"
        )
    if not np.allclose(got, expected, rtol=rtol):
        diff = np.abs(got.astype(np.float64) - expected)
        rel = diff / np.maximum(np.abs(expected), np.finfo(np.float64).tiny)
        worst = np.unravel_index(int(np.argmax(rel)), rel.shape)
        raise BenchmarkCheckError(
            f"{what}: the result differs from the NumPy reference beyond rtol={rtol!r}: "
            f"{int(np.count_nonzero(~np.isclose(got, expected, rtol=rtol)))} of {got.size} "
            f"values, worst at index {tuple(int(i) for i in worst)}: got {got[worst]!r}, "
            f"expected {expected[worst]!r} (relative error {rel[worst]:.3g})"
        )


def _time(
    fn: Callable[[], Any], repeat: int, settle: Callable[[], None] | None = None
) -> list[float]:
    """Times of ``repeat`` calls of ``fn``; ``settle()`` runs, untimed, after each."""
    gc.collect()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if settle is not None:
            settle()
    return times


#: free disk space kept beyond the data files a run writes (as for the 8 GiB store)
DISK_MARGIN = 2**30

#: executors that run in processes of their own: closed after each workload, so that
#: their idle processes never share the cores with other series
_PROCESS_EXECUTORS = ("dask", "processes")


def _scheduler_forgets(ctx: Context, timeout: float = 30.0) -> None:
    """Wait until a dask.distributed scheduler has finished with the last run.

    The client releases a run's keys after gathering its result, and the scheduler
    forgets them a moment later; the next repetition starts once no task is left
    to run or to forget. In-memory datasets stay on the workers between runs (their
    blocks are held in memory, and tasks they were made from stay released).
    """
    client = getattr(ctx.executor, "client", None)
    if client is None:
        return

    def busy(dask_scheduler: Any) -> int:
        return sum(t.state not in ("memory", "released") for t in dask_scheduler.tasks.values())

    deadline = time.monotonic() + timeout
    while client.run_on_scheduler(busy):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the dask scheduler still holds tasks after {timeout} s")
        time.sleep(0.01)


def roofline_times(data: np.ndarray, threads: int, repeat: int) -> list[float]:
    """Times of a NumPy streaming read of all of ``data`` on ``threads`` threads.

    Each thread sums its contiguous share of the array's bytes, viewed as uint64
    (the fastest NumPy reduction per byte; it releases the GIL).
    """
    flat = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    words = flat[: flat.size // 8 * 8].view(np.uint64)
    parts = np.array_split(words, threads)
    if threads == 1:
        return _time(words.sum, repeat)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(np.sum, parts))  # start the threads before timing
        return _time(lambda: list(pool.map(np.sum, parts)), repeat)


def decode_roofline_times(pool: DecodePool, repeat: int) -> list[float]:
    """Times of decoding every chunk once in ``pool``, after one untimed pass."""
    pool()
    return _time(pool, repeat)


@dataclass
class Settings:
    """What a benchmark run does and where; shared by every workload of the run."""

    executors: Sequence[str]
    quick: bool = False
    repeat: int = 5
    #: threads of the threads executors and of dask, workers of dask clusters
    cpus: int = 2
    cache: DataCache = field(default_factory=DataCache)
    libertem: LiberTEMPeer | None = None
    log: Callable[[str], None] = print
    skipped: list[dict[str, str]] = field(default_factory=list)

    def skip(self, workload: str, reason: str) -> None:
        """Note that ``workload`` (or part of it) did not run, and why."""
        self.log(f"{workload}: skipped: {reason}")
        self.skipped.append({"workload": workload, "reason": reason})


@dataclass
class Results:
    """Everything a run measured.

    Attributes
    ----------
    records
        One per workload and dataflow executor, with the peers' figures and ratios.
    series
        One per workload and peer series (NumPy, dask, each LiberTEM executor, each
        roofline thread count), with their own figures and ``vs_base``.
    skipped
        Workloads, or parts, that did not run, with the reason.
    peer
        The LiberTEM peer's versions, if it ran.
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    series: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    peer: dict[str, Any] = field(default_factory=dict)


def _summary(prefix: str, times: list[float], w: Workload, data: np.ndarray) -> dict[str, Any]:
    median_s, min_s = statistics.median(times), min(times)
    convert = w.unit.convert
    return {
        f"{prefix}median": convert(median_s, data, w.sig_dims),
        # the value of the fastest call: the highest throughput, or the shortest time
        f"{prefix}best": convert(min_s, data, w.sig_dims),
        f"{prefix}median_s": median_s,
        f"{prefix}min_s": min_s,
        f"{prefix}times_s": times,
    }


def _better(w: Workload, a: float, b: float) -> bool:
    return a > b if w.unit.higher_is_better else a < b


class _Run:
    """The state of one benchmark run: contexts, the LiberTEM results, base figures."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.results = Results(skipped=settings.skipped)
        self.contexts: dict[str, Context] = {}
        self.libertem: dict[tuple[str, str], PeerResult] = {}
        self.rooflines: dict[tuple, list[float]] = {}
        self.decode_rooflines: dict[tuple[Path, int], list[float]] = {}
        #: median seconds by (workload, tool, executor), for ``vs_base``
        self.medians: dict[tuple[str, str, str], float] = {}
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def close(self) -> None:
        for ctx in self.contexts.values():
            ctx.close()
        self.contexts.clear()
        if self._tmp is not None:
            self._tmp.cleanup()

    def context(self, name: str) -> Context:
        if name not in self.contexts:
            cpus = None if name in ("inline", "dask-integration") else self.settings.cpus
            self.contexts[name] = Context.make_with(name, cpus=cpus)
        return self.contexts[name]

    # data and the LiberTEM peer ---------------------------------------------------------------

    def prepare(self, workloads: Sequence[Workload]) -> list[Workload]:
        """Write every data file the workloads read (not timed); the workloads that can run.

        Files are written once. A workload whose missing files would leave less than
        :data:`DISK_MARGIN` of free disk space (each file counted at the array's size,
        an upper bound for the compressed copies) is skipped.
        """
        s = self.settings
        ready = []
        for w in workloads:
            if w.custom is not None:
                ready.append(w)
                continue
            shape = w.shape_for(s.quick)
            source = SOURCES[w.source]
            pending = s.cache.pending(source, shape, w.dtype, w.data)
            if pending:
                s.cache.root.mkdir(parents=True, exist_ok=True)
                need = len(pending) * math.prod(shape) * np.dtype(w.dtype).itemsize + DISK_MARGIN
                free = shutil.disk_usage(s.cache.root).free
                if free < need:
                    s.skip(
                        w.name,
                        f"{free / 2**30:.1f} GiB free in {str(s.cache.root)!r}; its data "
                        f"({', '.join(p.name for p in pending)}) needs {need / 2**30:.1f} GiB",
                    )
                    continue
                s.log(f"{w.name}: writing {', '.join(p.name for p in pending)} (once)")
            s.cache.path(source, shape, w.dtype, w.sig_dims, w.data)
            if w.roi_fraction is not None:
                s.cache.roi(shape[: -w.sig_dims], w.roi_fraction)
            ready.append(w)
        return ready

    def run_libertem(self, workloads: Sequence[Workload]) -> None:
        """Run every LiberTEM series of the run in one peer process."""
        from benchmarks.peer_libertem import EXECUTORS as LIBERTEM_EXECUTORS

        s = self.settings
        if s.libertem is None:
            return
        executors = [e for e in s.executors if e in LIBERTEM_EXECUTORS]
        if not executors:
            s.skip("libertem", f"none of the executors {list(s.executors)!r} exists in LiberTEM")
            return
        jobs = []
        for w in workloads:
            if w.libertem_udf is None or w.custom is not None:
                continue
            shape = w.shape_for(s.quick)
            source = SOURCES[w.source]
            roi = None
            if w.roi_fraction is not None:
                roi = str(s.cache.roi(shape[: -w.sig_dims], w.roi_fraction))
            jobs.append(
                {
                    "workload": w.name,
                    "udf": w.libertem_udf,
                    "source": source.libertem,
                    "data": str(s.cache.path(source, shape, w.dtype, w.sig_dims, w.data)),
                    "shape": list(shape),
                    "dtype": w.dtype,
                    "sig_dims": w.sig_dims,
                    "executors": executors,
                    "repeat": s.repeat,
                    "roi": roi,
                }
            )
        if not jobs:
            return
        self._tmp = tempfile.TemporaryDirectory(prefix="libertem-", dir=s.cache.root)
        s.log(f"LiberTEM: {len(jobs)} workloads on {', '.join(executors)}, in its own process")
        self.libertem = s.libertem.run(jobs, Path(self._tmp.name))
        self.results.peer = dict(s.libertem.info)

    # one workload -------------------------------------------------------------------------------

    def _series(
        self,
        w: Workload,
        data: np.ndarray,
        tool: str,
        executor: str,
        times: list[float],
        error: str | None = None,
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "workload": w.name,
            "tool": tool,
            "executor": executor,
            "unit": w.unit.name,
            "higher_is_better": w.unit.higher_is_better,
        }
        if error is not None:
            record["error"] = error
            return record
        record.update(_summary("", times, w, data))
        self.medians[(w.name, tool, executor)] = record["median_s"]
        record["vs_base"] = self._vs_base(w, tool, executor, record["median_s"])
        return record

    def _vs_base(self, w: Workload, tool: str, executor: str, median_s: float) -> float | None:
        """This series against the same tool's series of ``w.base``: a throughput ratio for
        throughputs, a time ratio for times."""
        if w.base is None or tool in _LIMITS or (w.base, tool, executor) not in self.medians:
            return None
        base_s = self.medians[(w.base, tool, executor)]
        return base_s / median_s if w.unit.higher_is_better else median_s / base_s

    def workload(self, w: Workload) -> list[dict[str, Any]]:
        s = self.settings
        if w.custom is not None:
            records = w.custom(s, w)
            self.results.records.extend(records)
            return records
        log, repeat = s.log, s.repeat
        shape = w.shape_for(s.quick)
        data = w.setup(s.cache, s.quick)
        source = SOURCES[w.source]
        path = s.cache.path(source, shape, w.dtype, w.sig_dims, w.data)
        series = []

        # NumPy, one thread: the reference every result is checked against
        reference = functools.partial(w.run_reference, source.open_numpy(path, data))
        got = reference()
        expected = got if w.expected is None else w.expected(data)
        check(got, expected, what=f"{w.name}: the NumPy reference", rtol=w.rtol)
        numpy_times = _time(reference, repeat)
        log(f"{w.name}: NumPy, median {statistics.median(numpy_times):.4g} s")
        series.append(self._series(w, data, "numpy", "1 thread", numpy_times))

        # dataflow, on each executor
        dataflow_runs = []
        worker_threads: dict[str, list[int]] = {}
        for name in s.executors:
            if w.executors is not None and name not in w.executors:
                s.skip(w.name, f"executor {name!r}: runs only on {', '.join(w.executors)}")
                continue
            ctx = self.context(name)
            dataset = source.open_dataflow(ctx, path, data, w.sig_dims)
            run = functools.partial(w.run_dataflow, ctx, dataset)
            check(run(), expected, what=f"{w.name} on executor {name!r}", rtol=w.rtol)
            settle = functools.partial(_scheduler_forgets, ctx)
            settle()
            times = _time(run, repeat, settle)
            log(f"{w.name}: dataflow on {name!r}, median {statistics.median(times):.4g} s")
            dataflow_runs.append((name, dataset.get_num_partitions(), times))
            client = getattr(ctx.executor, "client", None)
            if client is not None:  # the cluster's workers, and their threads each
                worker_threads[name] = sorted(client.nthreads().values())
            # plain dask.distributed, on the same client, a graph of the same shape
            if w.distributed_block is not None and client is not None:
                series.append(
                    self._plain_distributed(w, ctx, client, name, dataset, data, expected)
                )
            if name in _PROCESS_EXECUTORS:
                del dataset
                self.contexts.pop(name).close()

        # plain dask.array on the threaded scheduler
        if w.run_dask is not None:
            chunks = dask_chunks(shape, np.dtype(w.dtype).itemsize, w.sig_dims, s.cpus)
            darr = source.open_dask(path, data, chunks)

            def run_dask() -> np.ndarray:
                x = w.run_dask(darr)
                return np.asarray(x.compute(scheduler="threads", num_workers=s.cpus))

            label = f"threads ({s.cpus})"
            check(run_dask(), expected, what=f"{w.name} on dask {label}", rtol=w.rtol)
            times = _time(run_dask, repeat)
            log(f"{w.name}: dask, median {statistics.median(times):.4g} s")
            series.append(self._series(w, data, "dask", label, times))

        # the roofline: a streaming read of the same bytes, on 1 and on cpus threads
        if w.roofline:
            for threads in sorted({1, s.cpus}):
                key = (data.shape, data.dtype.str, threads)
                if key not in self.rooflines:
                    self.rooflines[key] = roofline_times(data, threads, repeat)
                label = f"{threads} thread{'s' if threads > 1 else ''}"
                series.append(self._series(w, data, "roofline", label, self.rooflines[key]))

        # the decode roofline: numcodecs decoding the copy's chunks, already in memory
        if w.roofline and source.encoded is not None:
            series += self._decode_roofline(w, data, path)

        # LiberTEM: timed in its own process already; check its warm-up's result here
        for (workload, executor), r in self.libertem.items():
            if workload != w.name:
                continue
            if r.error is not None:
                log(f"{w.name}: LiberTEM on {executor!r} failed: {r.error}")
                series.append(self._series(w, data, "libertem", executor, [], error=r.error))
                continue
            assert r.result is not None
            check(
                np.load(r.result),
                expected,
                what=f"{w.name} on LiberTEM executor {executor!r}",
                rtol=w.rtol,
            )
            series.append(self._series(w, data, "libertem", executor, r.times_s))
            series[-1]["partitions"] = r.partitions

        records = [
            self._record(w, data, name, partitions, times, series)
            for name, partitions, times in dataflow_runs
        ]
        # every executor against dataflow's own threads executor, in the same run
        on_threads = next((x for x in records if x["executor"] == "threads"), None)
        for rec in records:
            rec["vs_threads"] = (
                None
                if on_threads is None or rec is on_threads
                else rec["median"] / on_threads["median"]
            )
            rec["worker_threads"] = worker_threads.get(rec["executor"])
        self.results.series.extend(series)
        self.results.records.extend(records)
        return records

    def _plain_distributed(
        self,
        w: Workload,
        ctx: Context,
        client: Any,
        executor: str,
        dataset: Any,
        data: np.ndarray,
        expected: np.ndarray,
    ) -> dict[str, Any]:
        """The plain dask.distributed series on ``client``, the dask.distributed client of
        ``ctx``'s executor: dataflow's graph of this run, rebuilt by hand.

        The graph is counted from a compiled (not run) ``SumUDF`` run of ``dataset``;
        its blocks are scattered to the workers once, untimed, as dataflow's in-memory
        blocks are; each timed call builds the graph under fresh names and computes it
        with ``client.get``, as dataflow's ``dask`` executor does.

        A graph the plain one cannot mirror (see
        :func:`benchmarks.taskgraph.dataflow_graph_shape`) is noted as the series' error.

        Raises
        ------
        BenchmarkCheckError
            If the plain graph computes a wrong result.
        """
        assert w.distributed_block is not None
        s = self.settings
        label = f"client of {executor!r} ({len(client.nthreads())} workers)"
        try:
            shape = dataflow_graph_shape(ctx, dataset, SumUDF())
        except ValueError as exc:
            s.log(f"{w.name}: no plain distributed graph: {exc}")
            record = self._series(w, data, "distributed", label, [], error=str(exc))
            record["against"] = executor
            return record
        frames = data.reshape(-1, *data.shape[-w.sig_dims :])
        blocks = client.scatter([frames[a:b] for a, b in shape.partitions], hash=False)
        plain = PlainGraph(shape, blocks, w.distributed_block)

        def run() -> np.ndarray:
            dsk, final = plain.graph()
            return np.asarray(client.get(dsk, final, sync=True))

        check(run(), expected, what=f"{w.name} on plain distributed, {label}", rtol=w.rtol)
        settle = functools.partial(_scheduler_forgets, ctx)
        settle()
        times = _time(run, s.repeat, settle)
        s.log(
            f"{w.name}: plain distributed graph of {shape.tasks} tasks ({shape.keys} keys), "
            f"median {statistics.median(times):.4g} s"
        )
        record = self._series(w, data, "distributed", label, times)
        record.update(
            against=executor,
            tasks=shape.tasks,
            keys=shape.keys,
            partitions=len(shape.partitions),
            merge_nodes=shape.merge_nodes,
        )
        return record

    def _decode_roofline(self, w: Workload, data: np.ndarray, path: Path) -> list[dict[str, Any]]:
        """The decode roofline's series, on 1 and on ``cpus`` threads; measured once per copy.

        Raises
        ------
        BenchmarkCheckError
            If the chunks do not decode to the array (the chunk reader misread the copy).
        """
        s = self.settings
        source = SOURCES[w.source]
        assert source.encoded is not None
        counts = sorted({1, s.cpus})
        if any((path, n) not in self.decode_rooflines for n in counts):
            encoded = source.encoded(path)  # the chunks' bytes, read once (not timed)
            mismatch = first_mismatch(encoded, data)
            if mismatch is not None:
                raise BenchmarkCheckError(f"{w.name}: the decode roofline: {mismatch}")
            for threads in counts:
                with DecodePool(encoded, threads) as pool:
                    self.decode_rooflines[(path, threads)] = decode_roofline_times(pool, s.repeat)
                median = statistics.median(self.decode_rooflines[(path, threads)])
                label = f"{threads} thread{'s' if threads > 1 else ''}"
                s.log(f"{w.name}: decode roofline on {label}, median {median:.4g} s")
            del encoded
        series = []
        for threads in counts:
            label = f"{threads} thread{'s' if threads > 1 else ''}"
            times = self.decode_rooflines[(path, threads)]
            series.append(self._series(w, data, "decode_roofline", label, times))
        return series

    def _record(
        self,
        w: Workload,
        data: np.ndarray,
        executor: str,
        partitions: int,
        times: list[float],
        series: list[dict[str, Any]],
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "workload": w.name,
            "executor": executor,
            "unit": w.unit.name,
            "higher_is_better": w.unit.higher_is_better,
            "shape": list(data.shape),
            "dtype": str(data.dtype),
            "nbytes": data.nbytes,
            "source": w.source,
            "data": w.data,
            "partitions": partitions,
            "repeat": len(times),
            **_summary("", times, w, data),
        }
        self.medians[(w.name, "dataflow", executor)] = record["median_s"]
        source = SOURCES[w.source]
        if source.encoded is not None:
            path = self.settings.cache.path(
                source, tuple(data.shape), data.dtype, w.sig_dims, w.data
            )
            record["stored_bytes"] = stored_nbytes(path)
            # above 1: the copy is smaller than the array
            record["compression_ratio"] = data.nbytes / record["stored_bytes"]
        else:
            record["stored_bytes"] = record["compression_ratio"] = None
        record["base"] = w.base
        record["vs_base"] = self._vs_base(w, "dataflow", executor, record["median_s"])
        for tool in PEERS:
            # a series run against one executor (the plain distributed graph, on its
            # client) counts for that executor only
            ok = [
                x
                for x in series
                if x["tool"] == tool and "error" not in x and x.get("against", executor) == executor
            ]
            if not ok:
                record[f"ratio_{tool}"] = None
                continue
            best = ok[0]
            for x in ok[1:]:
                if _better(w, x["median"], best["median"]):
                    best = x
            record[f"{tool}_executor"] = best["executor"]
            record.update({f"{tool}_{k}": v for k, v in best.items() if k in _SUMMARY_KEYS})
            if tool == "distributed":
                record.update({f"{tool}_{k}": best[k] for k in _GRAPH_KEYS})
            record[f"ratio_{tool}"] = record["median"] / best["median"]
        errors = [x for x in series if "error" in x and x.get("against", executor) == executor]
        if errors:
            record["peer_errors"] = {f"{x['tool']} {x['executor']}": x["error"] for x in errors}
        # the first version of the suite called the ratio to NumPy "ratio"
        record["ratio"] = record["ratio_numpy"]
        return record


_SUMMARY_KEYS = ("median", "best", "median_s", "min_s", "times_s")
#: the plain distributed series' count of dataflow's graph
_GRAPH_KEYS = ("tasks", "keys", "partitions", "merge_nodes")


def run_workload(
    w: Workload,
    executors: Sequence[str],
    *,
    quick: bool = False,
    repeat: int = 5,
    log: Callable[[str], None] = print,
    cpus: int = 2,
    cache: DataCache | None = None,
) -> list[dict[str, Any]]:
    """Benchmark one workload on each executor against NumPy, dask and the roofline.

    Returns
    -------
    list of dict
        One record per executor; see the README for the fields.

    Raises
    ------
    BenchmarkCheckError
        If the warm-up of the reference, of a peer or of a dataflow run computes a
        wrong result.
    """
    settings = Settings(
        executors, quick=quick, repeat=repeat, cpus=cpus, cache=cache or DataCache(), log=log
    )
    run = _Run(settings)
    try:
        return [r for x in run.prepare([w]) for r in run.workload(x)]
    finally:
        run.close()


def run_benchmarks(workloads: Sequence[Workload], settings: Settings) -> Results:
    """Run every workload, LiberTEM first (in its own process), then the rest in order.

    Raises
    ------
    BenchmarkCheckError
        If a warm-up computes a wrong result.
    benchmarks.peer.PeerError
        If the LiberTEM peer fails as a whole (a failing job is noted in its series).
    """
    run = _Run(settings)
    try:
        workloads = run.prepare(workloads)
        run.run_libertem(workloads)
        for i, w in enumerate(workloads):
            run.workload(w)
            # free the arrays no later workload reads (1 GiB each at full size)
            later = workloads[i + 1 :]
            settings.cache.release(
                (x.shape_for(settings.quick), x.dtype, x.data) for x in later if x.custom is None
            )
    finally:
        run.close()
    return run.results


def machine_info() -> dict[str, Any]:
    """Where the numbers were measured: CPUs, memory, load, platform and versions."""
    import distributed
    import zarr

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "dask": dask.__version__,
        "distributed": distributed.__version__,
        "zarr": zarr.__version__,
        "dataflow": dataflow.__version__,
    }
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _memory_gib() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


# tables -----------------------------------------------------------------------------------


def _num(x: Any, fmt: str = ".4g") -> str:
    return "-" if x is None else format(x, fmt)


def _table(header: Sequence[str], rows: list[Sequence[str]], right: range) -> str:
    """Columns right-aligned if their index is in ``right``, else left-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(wd) if i in right else c.ljust(wd)
            for i, (c, wd) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * wd for wd in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


_COLUMNS = (
    "workload",
    "executor",
    "unit",
    "better if",
    "median",
    "best",
    "numpy",
    "/numpy",
    "/dask",
    "/distributed",
    "/libertem",
    "/roofline",
    "/decode",
    "decoded/stored",
    "vs base",
    "vs threads",
)

_LEGEND = """\
/X: dataflow's median / X's median, in the unit: above 1 is better for GiB/s, below 1 for
times (X = NumPy on 1 thread; dask.array on the threaded scheduler; distributed, a plain
graph of dataflow's shape on the same dask.distributed client, dask executor only, target
<= 1.2; LiberTEM's best executor; the roofline, NumPy streaming the same bytes, best of 1
and N threads; decode, numcodecs decoding the copy's chunk bytes from memory, best of 1
and N threads).
decoded/stored: the compression ratio, array bytes / bytes of the copy on disk.
vs base: the same tool's run of the base workload (disk reads: GiB/s / in-memory GiB/s;
sum-roi*: time / full time, target <= 0.15; memory: peak RSS at 8 GiB / at 1 GiB).
vs threads: this executor's median / dataflow's threads executor's, same workload and
run (the 4g workloads' target for dask: >= 0.8)."""


def format_table(records: Sequence[dict[str, Any]], series: Sequence[dict[str, Any]] = ()) -> str:
    """Plain-text tables: dataflow against its peers, then every peer series."""
    rows = [
        (
            r["workload"],
            r["executor"],
            r["unit"],
            "higher" if r["higher_is_better"] else "lower",
            _num(r["median"]),
            _num(r["best"]),
            _num(r.get("numpy_median")),
            _num(r.get("ratio_numpy"), ".3f"),
            _num(r.get("ratio_dask"), ".3f"),
            _num(r.get("ratio_distributed"), ".3f"),
            _num(r.get("ratio_libertem"), ".3f"),
            _num(r.get("ratio_roofline"), ".3f"),
            _num(r.get("ratio_decode_roofline"), ".3f"),
            _num(r.get("compression_ratio"), ".3f"),
            _num(r.get("vs_base"), ".3f"),
            _num(r.get("vs_threads"), ".3f"),
        )
        for r in records
    ]
    out = [_table(_COLUMNS, rows, right=range(4, len(_COLUMNS))), _LEGEND]
    if series:
        peer_rows = [
            (
                x["workload"],
                x["tool"],
                x["executor"],
                x["unit"],
                _num(x.get("median")),
                _num(x.get("best")),
                _num(x.get("vs_base"), ".3f"),
                x.get("error", "")[:60],
            )
            for x in series
        ]
        header = ("workload", "peer", "executor", "unit", "median", "best", "vs base", "error")
        out += ["", _table(header, peer_rows, right=range(4, 7))]
    summary = _summary_rows(records, series)
    if summary:
        header = ("workload", "unit", "dataflow best", "LiberTEM best", "dataflow/LiberTEM")
        out += ["", _table(header, summary, right=range(2, 5))]
    return "\n".join(out)


def _summary_rows(
    records: Sequence[dict[str, Any]], series: Sequence[dict[str, Any]]
) -> list[tuple[str, ...]]:
    """Per workload: the best dataflow executor against the best LiberTEM executor."""
    rows = []
    for name in dict.fromkeys(r["workload"] for r in records):
        mine = [r for r in records if r["workload"] == name]
        theirs = [
            x for x in series if x["workload"] == name and x["tool"] == "libertem" and "median" in x
        ]
        if not theirs:
            continue
        hib = mine[0]["higher_is_better"]
        pick = max if hib else min
        a = pick(mine, key=lambda r: r["median"])
        b = pick(theirs, key=lambda x: x["median"])
        rows.append(
            (
                name,
                a["unit"],
                f"{a['median']:.4g} ({a['executor']})",
                f"{b['median']:.4g} ({b['executor']})",
                f"{a['median'] / b['median']:.3f}",
            )
        )
    return rows
