"""Running a planned run: plain runs, streamed runs, iterated runs and lazy runs.

This module only orchestrates; the client side of a streamed run (progress, plots,
partial results, the client-side fold) sits behind :class:`~dataflow.live.LiveRun`,
and result attributes are :mod:`dataflow.results`'.

* :func:`plan_run` inspects the run once (ROI, UDFs, corrections); the plan carries
  the ROI and everything else from there on.
* :func:`run` without progress or plots computes the finishing key and wraps it.
  With progress or plots the graph is streamed: every event goes to the ``LiveRun``.
* :func:`run_iter` streams as well and yields a :class:`~dataflow.results.UDFResults`
  per partition; the last one comes from the graph's finishing task, so it equals
  ``run_udf``'s result. ``get_results`` runs on the client, only when ``.buffers`` is
  read.
* :func:`run_lazy` computes nothing: results as dask arrays of the run's graph.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import uuid
from typing import TYPE_CHECKING, Any

import cloudpickle

from dataflow import config
from dataflow.errors import UDFRunCancelled
from dataflow.executor.base import JobCancelledError, PartitionDone, RunFinished
from dataflow.graph import DEFAULT_SPLIT_EVERY, build_graph
from dataflow.live import LiveRun
from dataflow.partition import blas_limit
from dataflow.plan import make_plan
from dataflow.results import run_context, run_udf_attrs, wrap
from dataflow.udf.base import _reset_kwargs

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator, Mapping, Sequence

    from dataflow.executor.base import JobExecutor
    from dataflow.graph import UDFGraph
    from dataflow.plan import RunPlan
    from dataflow.plot import Live2DPlot
    from dataflow.results import UDFResultDict, UDFResults
    from dataflow.sources import DataSet
    from dataflow.udf.base import UDF

__all__ = ["ResultGenerator", "plan_run", "run", "run_iter", "run_lazy"]


def _check_dataset(dataset: Any) -> None:
    """Raise unless ``dataset`` is a DataSet, before anything else looks at it."""
    from dataflow.sources import DataSet

    if not isinstance(dataset, DataSet):
        raise TypeError(
            f"dataset is a {type(dataset).__name__}; expected a DataSet made with "
            "ctx.load(...), such as ctx.load('memory', data=array) for a NumPy array"
        )


def plan_run(
    dataset: DataSet,
    udfs: Sequence[UDF],
    roi: Any = None,
    corrections: Any = None,
    executor: JobExecutor | None = None,
) -> RunPlan:
    """Inspect a run before any data is read; the plan holds the ROI from here on.

    ``executor`` decides whether BLAS is limited to one thread inside tasks (its
    ``blas_threads``); without one (lazy runs) it is.
    """
    _check_dataset(dataset)
    blas_threads = 1 if executor is None else executor.blas_threads
    return make_plan(dataset, udfs, roi, corrections, blas_threads)


def _graph_dict(
    plan: RunPlan, executor: JobExecutor, split_every: int, with_results: bool
) -> tuple[UDFGraph, dict[Any, Any]]:
    graph = build_graph(
        plan,
        split_every=split_every,
        with_results=with_results,
        data=executor.input_array(plan.dataset),
        run_id=uuid.uuid4().hex[:12],
    )
    if getattr(executor, "debug", False):
        # what any other scheduler does: the spec must pickle. (Not loaded back here:
        # loading a class pickled by value in the same process resets its methods.)
        cloudpickle.dumps(plan.spec)
    return graph, graph.to_dict()


def run(
    executor: JobExecutor,
    plan: RunPlan,
    progress: Any = False,
    plots: Any = None,
    plot_class: type[Live2DPlot] | None = None,
    split_every: int = DEFAULT_SPLIT_EVERY,
) -> tuple[tuple[UDFResultDict, ...], list[Live2DPlot]]:
    """Run ``plan`` on ``executor``; the results and the plots made."""
    live = LiveRun(plan, progress, plots, plot_class)
    graph, dsk = _graph_dict(plan, executor, split_every, with_results=True)
    if not live.active:
        # runs over less data than the setting small-run-bytes (at 8 bytes per value)
        # skip the thread pool: handing their few tasks to threads costs more than it saves
        limit = config.get("small-run-bytes")
        small = plan.spec.n_frames * math.prod(plan.spec.sig_shape) * 8 <= limit
        get = executor.get_small if small else executor.get
        with _cancellation(lambda: 0), blas_limit(plan.spec):
            collected = get(dsk, graph.final_key)
        return wrap(collected, run_context(plan), None, run_udf_attrs(plan)), []
    live.start()
    stream = executor.stream(dsk, graph.partition_keys, graph.final_key, want_data=live.want_data)
    try:
        with _cancellation(lambda: live.done), blas_limit(plan.spec):
            for event in stream:
                if isinstance(event, RunFinished):
                    collected = event.value
                else:
                    live.partition(event)
    finally:
        live.close()
    return live.finish(collected).buffers, live.plots


def run_lazy(
    plan: RunPlan, split_every: int = DEFAULT_SPLIT_EVERY, labelled: bool = True
) -> tuple[Any, ...]:
    """The results of ``plan``, computing nothing.

    ``labelled``: per UDF an ``xarray.Dataset`` of dask arrays; otherwise a dict of
    :class:`~dataflow.executor.delayed.DelayedBufferResult` (LiberTEM's delayed results).
    """
    from dataflow.lazy import lazy_buffers, lazy_datasets

    graph = build_graph(plan, split_every=split_every, with_results=True)
    base = run_context(plan)
    contexts = [dataclasses.replace(base, udf_attrs=a) for a in run_udf_attrs(plan)]
    if labelled:
        return lazy_datasets(graph, contexts)
    from dataflow.executor.delayed import DelayedBufferResult, DelayedResultDict

    return tuple(
        DelayedResultDict((name, DelayedBufferResult(b, ctx)) for name, b in buffers.items())
        for buffers, ctx in zip(lazy_buffers(graph), contexts, strict=True)
    )


def run_iter(
    executor: JobExecutor,
    plan: RunPlan,
    progress: Any = False,
    plots: Any = None,
    plot_class: type[Live2DPlot] | None = None,
    split_every: int = DEFAULT_SPLIT_EVERY,
) -> ResultGenerator:
    """Yield partial results as partitions finish; the last one is complete.

    The plan is inspected before this is called, so bad input raises at once; the
    data is read when the returned generator is iterated.
    """
    live = LiveRun(plan, progress, plots, plot_class, iterate=True)
    graph, dsk = _graph_dict(plan, executor, split_every, with_results=False)
    return ResultGenerator(_iterate(executor, graph, dsk, live), plan, executor)


class ResultGenerator:
    """What ``run_udf_iter`` returns: partial results, and control over the run.

    Iterate it for :class:`~dataflow.results.UDFResults`; ``close()`` cancels the
    partitions not yet started; ``update_parameters_experimental`` changes the UDFs'
    parameters for the partitions that start after the call (LiberTEM's API).
    """

    def __init__(
        self, gen: Generator[UDFResults, None, None], plan: RunPlan, executor: JobExecutor
    ) -> None:
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
        of the UDFs, so there (``make_with("dask")``, or ``Context()`` while a
        ``dask.distributed`` client is active) it raises ``NotImplementedError``.
        """
        if not self._executor.supports_parameter_updates:
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
            _reset_kwargs(uplan.udf, {**uplan.udf._kwargs, **new})


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
    executor: JobExecutor, graph: UDFGraph, dsk: dict[Any, Any], live: LiveRun
) -> Generator[UDFResults, None, None]:
    live.start()
    try:
        with _cancellation(lambda: live.done):
            stream = executor.stream(
                dsk, graph.partition_keys, graph.final_key, want_data=True, lockstep=True
            )
            for event in stream:
                if isinstance(event, PartitionDone):
                    partial = live.partition(event)
                    if partial is not None:
                        yield partial
                else:
                    yield live.finish(event.value)
    finally:
        live.close()
