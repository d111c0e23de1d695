"""Running a compiled plan: plain runs, runs with progress and plots, and partial results.

* ``run_udf`` without progress or plots computes the finishing key and wraps it.
* With progress or plots the graph is streamed: every finished partition advances
  the bar; for plots its result is also merged on the client, in completion order,
  into accumulators that feed the plots.
* ``run_udf_iter`` streams as well and yields a :class:`~dataflow.results.UDFResults`
  per partition from the client-side accumulators; the last one comes from the
  graph's finishing task, so it equals ``run_udf``'s result. ``get_results`` runs on
  the client, only when ``.buffers`` is read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import cloudpickle
import numpy as np

from dataflow.buffers import BufferWrapper
from dataflow.errors import UDFRunCancelled
from dataflow.executor.base import JobCancelledError
from dataflow.graph import build_graph
from dataflow.merge import (
    Accumulator,
    Block,
    client_udf,
    collect_results,
    fresh_accumulator,
    merge_all,
    merge_into,
)
from dataflow.plan import make_plan
from dataflow.plot import make_plots
from dataflow.progress import ProgressState, make_reporter
from dataflow.results import BufferResult, ResultContext, UDFResultDict, UDFResults, wrap
from dataflow.udf.base import UDFKwargsWrapper

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from dataflow.executor.base import JobExecutor
    from dataflow.plan import RunPlan, RunSpec
    from dataflow.plot import Live2DPlot
    from dataflow.sources import DataSet
    from dataflow.udf.base import UDF

__all__ = ["ResultGenerator", "run", "run_iter", "run_lazy"]

_DAMAGE = BufferWrapper("nav", dtype=bool)
#: runs over less data than this (at 8 bytes per value) skip the thread pool: handing
#: their few tasks to threads costs more than the threads save
SMALL_RUN_BYTES = 4 * 2**20


def _context(plan: RunPlan) -> ResultContext:
    ds = plan.dataset
    return ResultContext(
        nav_shape=tuple(ds.shape.nav),
        sig_shape=tuple(ds.shape.sig),
        dims=ds.dims,
        coords=ds.coords,
        roi=plan.spec.roi,
        attrs=dict(ds.attrs),
    )


def _udf_attrs(plan: RunPlan) -> list[dict[str, Any]]:
    return [udf_attrs(u.udf) for u in plan.spec.udfs]


def udf_attrs(udf: UDF) -> dict[str, Any]:
    """Attributes naming a UDF and its parameters, as strings that any format stores."""
    import json

    params = {k: _describe(v) for k, v in udf._kwargs.items()}
    cls = type(udf)
    return {
        "udf": cls.__name__,
        "udf_class": f"{cls.__module__}.{cls.__qualname__}",
        "udf_params": json.dumps(params, sort_keys=True),
    }


def _describe(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return f"<array shape={value.shape} dtype={value.dtype}>"
    if isinstance(value, (list, tuple)) and len(value) <= 16:
        return [_describe(v) for v in value]
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


class _ClientFold:
    """LiberTEM's fold on the client: merge partition results in completion order."""

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        self.accs = [fresh_accumulator(spec, u) for u in spec.udfs]
        self.damage = np.zeros(spec.n_frames, dtype=bool)
        self.seen: list[Block] = []  # for UDFs that only have merge_all

    def add(self, part: Any) -> None:
        self.damage[part.offset : part.offset + part.n_frames] = True
        for k, uplan in enumerate(self.spec.udfs):
            if uplan.strategy != "merge_all":
                merge_into(
                    self.spec, uplan, self.accs[k], part.offset, part.n_frames, part.buffers[k]
                )
        if any(u.strategy == "merge_all" for u in self.spec.udfs):
            self.seen.append(Block(part.offset, part.n_frames, part.buffers))
            ordered = sorted(self.seen, key=lambda b: b.offset)
            for k, uplan in enumerate(self.spec.udfs):
                if uplan.strategy == "merge_all":
                    acc = merge_all(self.spec, uplan, k, ordered)
                    acc.merged = self.damage.copy()
                    self.accs[k] = acc


def _snapshot(spec: RunSpec, accs: Sequence[Accumulator]) -> list[Accumulator]:
    out = []
    for uplan, acc in zip(spec.udfs, accs, strict=True):
        arrays = {k: v.copy() for k, v in acc.arrays.items()}
        out.append(Accumulator(client_udf(spec, uplan, arrays), arrays, acc.merged.copy()))
    return out


class _LazyBuffers:
    """The buffers of one (partial) result: ``get_results`` runs on first access.

    While ``live``, ``accs`` are the client's accumulators, which later merges change;
    :meth:`freeze` copies them first, so every partial result stays consistent with
    its damage even when read after the generator has moved on.
    """

    def __init__(
        self, plan: RunPlan, accs: Sequence[Accumulator], damage: np.ndarray, live: bool
    ) -> None:
        self.plan = plan
        self.accs = accs
        self.damage = damage
        self.live = live

    def freeze(self) -> None:
        if self.live:
            self.accs = _snapshot(self.plan.spec, self.accs)
            self.live = False

    def __call__(self) -> tuple[UDFResultDict, ...]:
        self.freeze()
        spec = self.plan.spec
        pairs = zip(spec.udfs, self.accs, strict=True)
        collected = [collect_results(spec, u, a) for u, a in pairs]
        valid = self.damage if not self.damage.all() else None
        return wrap(collected, _context(self.plan), valid, _udf_attrs(self.plan))


def _results(plan: RunPlan, buffers: Any, damage: np.ndarray) -> UDFResults:
    damage_res = BufferResult("damage", _DAMAGE, damage, _context(plan))
    return UDFResults(buffers, damage_res)


def _graph_dict(
    plan: RunPlan, executor: JobExecutor, split_every: int, with_results: bool
) -> tuple[Any, dict]:
    graph = build_graph(plan, split_every=split_every, with_results=with_results)
    if getattr(executor, "debug", False):
        # what any other scheduler does: the spec must pickle. (Not loaded back here:
        # loading a class pickled by value in the same process resets its methods.)
        cloudpickle.dumps(plan.spec)
    return graph, graph.to_dict()


class _Progress:
    def __init__(self, progress: Any, plan: RunPlan) -> None:
        self.reporter = make_reporter(progress)
        self.plan = plan
        self.done = 0
        self.frames = 0

    def _state(self) -> ProgressState:
        tasks = self.plan.tasks
        return ProgressState(
            num_frames_total=self.plan.spec.n_frames,
            num_frames_complete=self.frames,
            num_part_total=len(tasks),
            num_part_complete=self.done,
            num_part_in_progress=0,
            progress_id=self.plan.label,
        )

    def start(self) -> None:
        if self.reporter is not None:
            self.reporter.start(self._state())

    def partition(self, index: int) -> None:
        self.done += 1
        self.frames += self.plan.tasks[index].n_frames
        if self.reporter is not None:
            self.reporter.update(self._state())

    def end(self) -> None:
        if self.reporter is not None:
            self.reporter.end(self._state())


def _check_dataset(dataset: Any) -> None:
    """Raise unless ``dataset`` is a DataSet, before anything else looks at it."""
    from dataflow.sources import DataSet

    if not isinstance(dataset, DataSet):
        raise TypeError(
            f"dataset is a {type(dataset).__name__}; expected a DataSet made with "
            "ctx.load(...), such as ctx.load('memory', data=array) for a NumPy array"
        )


def run(
    executor: JobExecutor,
    dataset: DataSet,
    udfs: Sequence[UDF],
    roi: Any = None,
    progress: Any = False,
    plots: Any = None,
    plot_class: type[Live2DPlot] | None = None,
    split_every: int = 8,
    corrections: Any = None,
) -> tuple[tuple[UDFResultDict, ...], list[Live2DPlot]]:
    """Run ``udfs`` over ``dataset``; the results and the plots made."""
    _check_dataset(dataset)
    plan = make_plan(dataset, udfs, roi, corrections, executor.blas_threads)
    tracker = _Progress(progress, plan)
    live = _make_live(plots, plot_class, plan)
    graph, dsk = _graph_dict(plan, executor, split_every, with_results=True)
    context = _context(plan)
    if tracker.reporter is None and not live:
        small = plan.spec.n_frames * math.prod(plan.spec.sig_shape) * 8 <= SMALL_RUN_BYTES
        get = executor.get_small if small else executor.get
        with _cancellation(lambda: 0):
            collected = get(dsk, graph.final_key)
        return wrap(collected, context, None, _udf_attrs(plan)), []
    fold = _ClientFold(plan.spec) if live else None
    tracker.start()
    stream = executor.stream(dsk, graph.partition_keys, graph.final_key, want_data=fold is not None)
    try:
        with _cancellation(lambda: tracker.done):
            for event in stream:
                if event[0] == "final":
                    collected = event[1]
                    continue
                tracker.partition(event[1])
                if fold is not None:
                    fold.add(event[2])
                    damage = fold.damage.copy()
                    lazy = _LazyBuffers(plan, fold.accs, damage, live=False)
                    partial = _results(plan, lazy, damage)
                    _update_plots(live, partial)
    finally:
        tracker.end()
    results = wrap(collected, context, None, _udf_attrs(plan))
    final = UDFResults(
        results, BufferResult("damage", _DAMAGE, np.ones(plan.spec.n_frames, bool), context)
    )
    _update_plots(live, final, force=True)
    return results, [p for _, p in live]


class _OneUDF(Mapping):
    """One UDF's result mapping from a (partial) result, computed on first access."""

    def __init__(self, results: UDFResults, index: int) -> None:
        self._results = results
        self._index = index

    def _mapping(self) -> UDFResultDict:
        return self._results.buffers[self._index]

    def __getitem__(self, name: str) -> Any:
        return self._mapping()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._mapping())

    def __len__(self) -> int:
        return len(self._mapping())


def _update_plots(
    live: Sequence[tuple[int, Any]], results: UDFResults, force: bool = False
) -> None:
    """Offer (partial) results to the plots: ``new_data(udf_results, damage, force)``."""
    for i, plot in live:
        plot.new_data(_OneUDF(results, i), results.damage.data, force=force)


def _make_live(plots: Any, plot_class: Any, plan: RunPlan) -> list[tuple[int, Live2DPlot]]:
    if plots is None or plots is False:
        return []
    if plot_class is None:
        from dataflow.plot import MPLLive2DPlot

        plot_class = MPLLive2DPlot
    return make_plots(
        plots, plot_class, plan.dataset, plan.spec.udfs, plan.user_udfs, plan.spec.roi
    )


def run_lazy(
    dataset: DataSet,
    udfs: Sequence[UDF],
    roi: Any = None,
    split_every: int = 8,
    corrections: Any = None,
    labelled: bool = True,
) -> tuple[Any, ...]:
    """The results of ``udfs``, computing nothing.

    ``labelled``: per UDF an ``xarray.Dataset`` of dask arrays; otherwise a dict of
    :class:`~dataflow.executor.delayed.DelayedBufferResult` (LiberTEM's delayed results).
    """
    from dataflow.lazy import lazy_buffers, lazy_datasets

    _check_dataset(dataset)
    plan = make_plan(dataset, udfs, roi, corrections)
    graph = build_graph(plan, split_every=split_every, with_results=True)
    base = _context(plan)
    contexts = [dataclasses.replace(base, udf_attrs=a) for a in _udf_attrs(plan)]
    if labelled:
        return lazy_datasets(graph, contexts)
    from dataflow.executor.delayed import DelayedBufferResult, DelayedResultDict

    return tuple(
        DelayedResultDict((name, DelayedBufferResult(b, ctx)) for name, b in buffers.items())
        for buffers, ctx in zip(lazy_buffers(graph), contexts, strict=True)
    )


def run_iter(
    executor: JobExecutor,
    dataset: DataSet,
    udfs: Sequence[UDF],
    roi: Any = None,
    progress: Any = False,
    plots: Any = None,
    plot_class: type[Live2DPlot] | None = None,
    split_every: int = 8,
    corrections: Any = None,
) -> ResultGenerator:
    """Yield partial results as partitions finish; the last one is complete.

    Inspection happens when this is called, so bad input raises at once; the data is
    read when the returned generator is iterated.
    """
    _check_dataset(dataset)
    plan = make_plan(dataset, udfs, roi, corrections, executor.blas_threads)
    tracker = _Progress(progress, plan)
    live = _make_live(plots, plot_class, plan)
    graph, dsk = _graph_dict(plan, executor, split_every, with_results=False)
    return ResultGenerator(_iterate(executor, plan, graph, dsk, tracker, live), plan, executor)


class ResultGenerator:
    """What ``run_udf_iter`` returns: partial results, and control over the run.

    Iterate it for :class:`~dataflow.results.UDFResults`; ``close()`` cancels the
    partitions not yet started; ``update_parameters_experimental`` changes the UDFs'
    parameters for the partitions that start after the call (LiberTEM's API).
    """

    def __init__(self, gen: Iterator[UDFResults], plan: RunPlan, executor: JobExecutor) -> None:
        self._gen = gen
        self._plan = plan
        self._executor = executor

    def __iter__(self) -> ResultGenerator:
        return self

    def __next__(self) -> UDFResults:
        return next(self._gen)

    def close(self) -> None:
        """Stop the run: partitions not yet started are cancelled."""
        self._gen.close()

    def throw(self, *args: Any) -> UDFResults:
        """Raise an exception inside the run (as ``generator.throw``)."""
        return self._gen.throw(*args)

    def update_parameters_experimental(self, parameters: Sequence[Mapping[str, Any]]) -> None:
        """New keyword arguments for the UDFs, one dict per UDF, for partitions to come.

        Partitions start in step with iteration (one per worker ahead of the
        consumer), so a call between two iterations affects every later partition.
        Supported on dask's local schedulers; a cluster's workers hold their own copy
        of the UDFs, so there it raises ``NotImplementedError``.
        """
        if isinstance(self._executor, _cluster_executors()):
            raise NotImplementedError(
                "update_parameters_experimental is not supported on a dask.distributed "
                "cluster; start a new run with the new parameters instead"
            )
        udfs = self._plan.spec.udfs
        if len(parameters) != len(udfs):
            raise ValueError(
                f"parameters has {len(parameters)} entries; the run has {len(udfs)} UDFs"
            )
        for uplan, new in zip(udfs, parameters, strict=True):
            kwargs = {**uplan.udf._kwargs, **new}
            _reset_kwargs(uplan.udf, kwargs)


def _reset_kwargs(udf: UDF, kwargs: Mapping[str, Any]) -> None:
    """Point a UDF's clean-copy keywords at ``kwargs``: later ``copy()`` calls use them."""
    udf._kwargs = dict(kwargs)
    udf.params = UDFKwargsWrapper(kwargs)


def _cluster_executors() -> tuple[type, ...]:
    from dataflow.executor.dask import DaskJobExecutor

    return (DaskJobExecutor,)


def _dead() -> None:
    return None


def _is_cancellation(e: BaseException) -> bool:
    """A UDF or source raised JobCancelledError, or the cluster cancelled the run's tasks."""
    return isinstance(e, JobCancelledError) or type(e).__name__ in (
        "CancelledError",
        "FutureCancelledError",
    )


@contextlib.contextmanager
def _cancellation(done: Callable[[], int]) -> Iterator[None]:
    """Turn a cancelled run into UDFRunCancelled, saying how far it got."""
    try:
        yield
    except Exception as e:
        if _is_cancellation(e):
            raise UDFRunCancelled(f"UDF run cancelled after {done()} partitions") from e
        raise


def _iterate(
    executor: JobExecutor,
    plan: RunPlan,
    graph: Any,
    dsk: dict,
    tracker: _Progress,
    live: list[tuple[int, Live2DPlot]],
) -> Iterator[UDFResults]:
    fold = _ClientFold(plan.spec)
    last: Any = _dead
    n_tasks = len(plan.tasks)
    seen = 0
    tracker.start()
    try:
        stream = executor.stream(
            dsk, graph.partition_keys, graph.final_key, want_data=True, lockstep=True
        )
        for event in stream:
            if event[0] == "partition":
                seen += 1
                tracker.partition(event[1])
                if seen == n_tasks:
                    continue  # the complete result comes from the finishing task
                previous = last()
                if previous is not None:
                    previous.freeze()
                fold.add(event[2])
                damage = fold.damage.copy()
                lazy = _LazyBuffers(plan, fold.accs, damage, live=True)
                last = weakref.ref(lazy)
                partial = _results(plan, lazy, damage)
                _update_plots(live, partial)
                yield partial
            else:
                done = np.ones(plan.spec.n_frames, bool)
                final = _results(plan, _LazyBuffers(plan, event[1], done, live=False), done)
                _update_plots(live, final, force=True)
                yield final
    except Exception as e:
        if _is_cancellation(e):
            raise UDFRunCancelled(f"UDF run cancelled after {seen} partitions") from e
        raise
    finally:
        tracker.end()
