"""The live side of a run on the client: progress, plots, partial results.

A streamed run (``run_udf`` with progress or plots, ``run_udf_iter``) hands every
event of the executor's stream to one :class:`LiveRun`:

* every finished partition advances the progress bar;
* with plots, or when iterating, its result is merged on the client, in completion
  order, into accumulators (LiberTEM's fold, :class:`_ClientFold`), which feed the
  plots and ``run_udf_iter``'s partial results;
* the final value (from the graph's finishing task) becomes the complete result,
  offered to the plots once more with ``force=True``.

``run.py`` only orchestrates: it builds the graph, picks ``get`` or ``stream`` and
calls ``start``, ``partition``, ``finish`` and ``close``.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from dataflow.buffers import BufferWrapper
from dataflow.merge import (
    Accumulator,
    Block,
    MergeStrategy,
    client_udf,
    collect_results,
    fresh_accumulator,
    merge_all,
    merge_into,
)
from dataflow.plot import make_plots
from dataflow.progress import ProgressState, make_reporter
from dataflow.results import (
    BufferResult,
    UDFResultDict,
    UDFResults,
    run_context,
    run_udf_attrs,
    wrap,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from dataflow.executor.base import PartitionDone
    from dataflow.plan import RunPlan, RunSpec
    from dataflow.plot import Live2DPlot

__all__ = ["LiveRun"]

_DAMAGE = BufferWrapper("nav", dtype=np.dtype(bool))


class LiveRun:
    """Progress, plots and partial results of one streamed run.

    Parameters
    ----------
    plan
        The run.
    progress
        True for a progress bar, or a :class:`~dataflow.progress.ProgressReporter`.
    plots
        True, or what :func:`dataflow.plot.make_plots` accepts; None or False for none.
    plot_class
        The class of the plots (matplotlib by default).
    iterate
        ``run_udf_iter``: every partition but the last yields a partial result, and
        the final value is the finishing task's accumulators (``get_results`` then
        runs on the client); otherwise it is the collected results.
    """

    def __init__(
        self,
        plan: RunPlan,
        progress: Any = False,
        plots: Any = None,
        plot_class: type[Live2DPlot] | None = None,
        *,
        iterate: bool = False,
    ) -> None:
        self.plan = plan
        self._progress = _Progress(progress, plan)
        self._plots = _make_live(plots, plot_class, plan)
        self._iterate = iterate
        self._fold = _ClientFold(plan.spec) if iterate or self._plots else None
        self._last: Callable[[], _LazyBuffers | None] = _dead

    @property
    def active(self) -> bool:
        """Whether the run must be streamed: a progress bar, plots, or partial results."""
        return self._iterate or bool(self._plots) or self._progress.reporter is not None

    @property
    def want_data(self) -> bool:
        """Whether partition results must come back to the client (to be folded)."""
        return self._fold is not None

    @property
    def done(self) -> int:
        """Partitions finished so far."""
        return self._progress.done

    @property
    def plots(self) -> list[Live2DPlot]:
        """The live plots made for the run."""
        return [p for _, p in self._plots]

    def start(self) -> None:
        """The run starts: show the progress bar."""
        self._progress.start()

    def partition(self, event: PartitionDone) -> UDFResults | None:
        """A partition finished; the partial result it gives, if any."""
        self._progress.partition(event.index)
        fold = self._fold
        if fold is None:
            return None
        if self._iterate:
            if self._progress.done == len(self.plan.tasks):
                return None  # the complete result comes from the finishing task
            previous = self._last()
            if previous is not None:
                previous.freeze()
        fold.add(event.result)
        damage = fold.damage.copy()
        lazy = _LazyBuffers(self.plan, fold.accs, damage, live=self._iterate)
        if self._iterate:
            self._last = weakref.ref(lazy)
        partial = _results(self.plan, lazy, damage)
        _update_plots(self._plots, partial)
        return partial

    def finish(self, final: Any) -> UDFResults:
        """The finishing task's value, as the complete result; the plots get it too."""
        plan = self.plan
        done = np.ones(plan.spec.n_frames, bool)
        if self._iterate:
            buffers: Any = _LazyBuffers(plan, final, done, live=False)
        else:
            buffers = wrap(final, run_context(plan), None, run_udf_attrs(plan))
        results = _results(plan, buffers, done)
        _update_plots(self._plots, results, force=True)
        return results

    def close(self) -> None:
        """The run ended (finished, failed or cancelled): close the progress bar."""
        self._progress.end()


def _dead() -> None:
    return None


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
            if uplan.strategy is not MergeStrategy.MERGE_ALL:
                merge_into(
                    self.spec, uplan, self.accs[k], part.offset, part.n_frames, part.buffers[k]
                )
        if any(u.strategy is MergeStrategy.MERGE_ALL for u in self.spec.udfs):
            self.seen.append(Block(part.offset, part.n_frames, part.buffers))
            ordered = sorted(self.seen, key=lambda b: b.offset)
            for k, uplan in enumerate(self.spec.udfs):
                if uplan.strategy is MergeStrategy.MERGE_ALL:
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
        return wrap(collected, run_context(self.plan), valid, run_udf_attrs(self.plan))


def _results(plan: RunPlan, buffers: Any, damage: np.ndarray) -> UDFResults:
    damage_res = BufferResult("damage", _DAMAGE, damage, run_context(plan))
    return UDFResults(buffers, damage_res)


class _OneUDF(Mapping[str, Any]):
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
