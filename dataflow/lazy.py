"""Lazy results: every result buffer as a dask array of the run's own graph.

``ctx.run_udf(..., lazy=True)`` compiles the run as usual and returns, per UDF, an
``xarray.Dataset`` backed by dask arrays; nothing is computed. Each buffer is wired
to the place in the graph where it is final:

* nav buffers of UDFs that keep the default merge (and ``get_results``) come from
  each partition's nav block: one dask block per partition, in navigation order, so
  a map of per-frame values streams without a finishing step;
* everything else (sig and single buffers, custom merges, ``get_results``) is taken
  from the finishing task's output.

Outside the ROI, nav buffers hold the dtype's fill value (NaN for floats), filled in
by tasks of the same graph. Results of one run share the graph: computing several
of them together (``dask.compute(a, b)``, ``xr.merge([...]).compute()``) reads the
data once.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from dask.highlevelgraph import HighLevelGraph

from dataflow._dask import array_from_graph, ref, task
from dataflow.buffers import fill_value
from dataflow.merge import MergeStrategy

if TYPE_CHECKING:
    import dask.array as da
    import xarray as xr

    from dataflow.buffers import BufferWrapper
    from dataflow.graph import UDFGraph
    from dataflow.merge import Block
    from dataflow.plan import UDFPlan
    from dataflow.results import ResultContext

__all__ = ["LazyBuffer", "lazy_buffers", "lazy_datasets"]


class LazyBuffer:
    """One result buffer as dask arrays: ``data`` (navigation shape) and ``raw_data``."""

    def __init__(self, name: str, decl: BufferWrapper, raw: da.Array, data: da.Array) -> None:
        self.name = name
        self.decl = decl
        self.raw = raw
        self.data = data


# task functions -------------------------------------------------------------------------------


def _block_piece(block: Block, k: int, name: str) -> np.ndarray:
    buffers = block.buffers[k]
    if buffers is None:
        raise AssertionError(f"partition block has no buffers of UDF {k}")
    return buffers[name]


def _final_value(final: Any, k: int, name: str) -> np.ndarray:
    value: np.ndarray = final[k][name][1]
    return value


def _scatter(raw: np.ndarray, mask: np.ndarray | None, fill: Any) -> np.ndarray:
    """Selected frames ``raw`` spread over all frames of ``mask``, ``fill`` elsewhere."""
    if mask is None:
        return raw
    out = np.empty((len(mask), *raw.shape[1:]), dtype=raw.dtype)
    out[...] = fill
    out[mask] = raw
    return out


def _filled(shape: tuple[int, ...], dtype: np.dtype, fill: Any) -> np.ndarray:
    out = np.empty(shape, dtype=dtype)
    out[...] = fill
    return out


# building the arrays ----------------------------------------------------------------------


class _Builder:
    """Adds getter layers to a run's graph and wraps them as dask arrays."""

    def __init__(self, graph: UDFGraph) -> None:
        self.graph = graph
        hlg = graph.graph
        self.layers: dict[str, Any] = dict(hlg.layers)
        self.deps: dict[str, set[str]] = {k: set(v) for k, v in hlg.dependencies.items()}
        self.final_layer = graph.final_key
        self.block_layer = graph.block_layer
        self.token = graph.final_key.split("-finish-", 1)[1]

    def array(
        self,
        name: str,
        tasks: dict[Any, Any],
        depends: set[str],
        chunks: tuple[tuple[int, ...], ...],
        dtype: np.dtype[Any],
    ) -> da.Array:
        self.layers[name] = tasks
        self.deps[name] = depends
        meta = np.empty((0,) * len(chunks), dtype=dtype)
        # copies: HighLevelGraph keeps the mappings it is given, and later arrays add to ours
        hlg = HighLevelGraph(dict(self.layers), {k: set(v) for k, v in self.deps.items()})
        return array_from_graph(hlg, name, chunks, dtype, meta)

    def from_blocks(self, k: int, name: str, decl: BufferWrapper) -> tuple[da.Array, da.Array]:
        """A default-merge nav buffer from the partitions' nav blocks: (raw, full)."""
        plan = self.graph.plan
        spec = plan.spec
        block_layer = self.block_layer
        if block_layer is None:
            raise AssertionError("nav buffers from blocks need a graph with a block layer")
        extra = decl.extra_shape
        zeros = (0,) * len(extra)
        label = f"{plan.label}-{k}-{name}"
        raw_name = f"{label}-raw-{self.token}"
        raw_tasks = {
            (raw_name, i, *zeros): task(_block_piece, ref((block_layer, i)), k, name)
            for i in range(len(plan.tasks))
        }
        raw_chunks = (tuple(t.n_frames for t in plan.tasks), *((s,) for s in extra))
        raw = self.array(raw_name, raw_tasks, {block_layer}, raw_chunks, decl.dtype)
        if spec.roi is None:
            return raw, raw
        # with a ROI: one block per dataset partition, the fill value around the frames
        fill = fill_value(decl.dtype)
        flat_roi = spec.roi.reshape(-1)
        by_partition = {t.partition.index: i for i, t in enumerate(plan.tasks)}
        full_name = f"{label}-full-{self.token}"
        full_tasks: dict[Any, Any] = {}
        for p in plan.dataset.partitions:
            key = (full_name, p.index, *zeros)
            i = by_partition.get(p.index)
            if i is None:
                full_tasks[key] = task(_filled, (p.n_frames, *extra), decl.dtype, fill)
            else:
                full_tasks[key] = task(
                    _scatter, ref((raw_name, i, *zeros)), flat_roi[p.slice], fill
                )
        chunks = (tuple(p.n_frames for p in plan.dataset.partitions), *((s,) for s in extra))
        full = self.array(full_name, full_tasks, {raw_name}, chunks, decl.dtype)
        return raw, full

    def from_final(self, k: int, name: str, decl: BufferWrapper) -> tuple[da.Array, da.Array]:
        """A buffer from the finishing task's output: (raw, full)."""
        spec = self.graph.plan.spec
        shape = decl.shape_for(spec.n_frames, spec.sig_shape)
        zeros = (0,) * len(shape)
        label = f"{self.graph.plan.label}-{k}-{name}"
        raw_name = f"{label}-raw-{self.token}"
        raw = self.array(
            raw_name,
            {(raw_name, *zeros): task(_final_value, ref(self.final_layer), k, name)},
            {self.final_layer},
            tuple((s,) for s in shape),
            decl.dtype,
        )
        if decl.kind != "nav" or spec.roi is None:
            return raw, raw
        flat_roi = spec.roi.reshape(-1)
        full_shape = (len(flat_roi), *decl.extra_shape)
        full_name = f"{label}-full-{self.token}"
        scatter = task(_scatter, ref((raw_name, *zeros)), flat_roi, fill_value(decl.dtype))
        full = self.array(
            full_name,
            {(full_name, *zeros): scatter},
            {raw_name},
            tuple((s,) for s in full_shape),
            decl.dtype,
        )
        return raw, full


def _from_blocks(uplan: UDFPlan, decl: BufferWrapper) -> bool:
    from dataflow.udf.base import UDF

    default_results = type(uplan.udf).get_results is UDF.get_results
    return (
        uplan.strategy is MergeStrategy.CONCAT
        and decl.kind == "nav"
        and decl.use is None
        and default_results
    )


def lazy_buffers(graph: UDFGraph) -> list[dict[str, LazyBuffer]]:
    """Per UDF of the run: buffer name to :class:`LazyBuffer`, private buffers left out."""
    builder = _Builder(graph)
    spec = graph.plan.spec
    nav_shape = tuple(spec.dataset_shape.nav)
    out = []
    for k, uplan in enumerate(spec.udfs):
        buffers = {}
        for name, decl in uplan.buffers.items():
            if decl.use == "private":
                continue
            if _from_blocks(uplan, decl) and builder.block_layer is not None:
                raw, full = builder.from_blocks(k, name, decl)
            else:
                raw, full = builder.from_final(k, name, decl)
            if decl.kind == "nav" and full.shape[0] == math.prod(nav_shape):
                full = full.reshape((*nav_shape, *decl.extra_shape))
            buffers[name] = LazyBuffer(name, decl, raw, full)
        out.append(buffers)
    return out


def lazy_datasets(graph: UDFGraph, contexts: list[ResultContext]) -> tuple[xr.Dataset, ...]:
    """Per UDF of the run: its results as an ``xarray.Dataset`` of dask arrays."""
    import xarray as xr

    from dataflow.results import dataset_attrs, to_dataarray

    out = []
    for buffers, ctx in zip(lazy_buffers(graph), contexts, strict=True):
        arrays = {name: to_dataarray(name, b.decl, b.data, ctx) for name, b in buffers.items()}
        out.append(xr.Dataset(arrays, attrs=dataset_attrs(ctx)))
    return tuple(out)
