"""Compile a run into a dask graph: partition tasks, a merge tree, one finishing task.

For a plan with ``n`` partition tasks the graph holds one layer per stage:

* ``<label>-spec-<token>``: the :class:`~dataflow.plan.RunSpec` with the UDFs' clean
  copies; one key for the whole graph, so they travel once;
* ``(<label>-partition-<token>, i)``: one task per partition that has frames in the
  ROI, reading its block of ``dataset.partition_array`` once and running every UDF;
* ``(<label>-merge-<token>, level, j)``: the merge tree, ``split_every`` children per
  node, for UDFs with their own ``merge``. The finishing task merges the last
  ``split_every`` (or fewer) items itself, as ``dask.array.reduction``'s aggregate
  step does, so up to ``split_every`` partitions need no merge task at all;
* ``(<label>-chain-<token>, i)``: a merge chain for UDFs with ``MERGE_TREE = False``;
* ``(<label>-nav-<token>, i)``: each partition's nav slices of default-merge UDFs
  (and whole partial results of UDFs merged with ``merge_all``), so that only those,
  not whole partition results, move to the finishing task;
* ``<label>-finish-<token>``: the accumulator and ``get_results``; its output is all
  the client receives.

The layers are written as tasks of dask's graph specification (through
``dataflow._dask.task``/``ref``, so that a change of the specification touches one
module) and joined in
a ``HighLevelGraph`` with the dataset's own layers; a run executes it culled to what
the finishing task needs (partitions without ROI frames drop out, and so do their
reads), and lazy results keep the layer names as they are. Building
the same graph from ``dask.delayed`` calls cost 3 ms for two partitions, more than the
whole run of a small dataset; this costs about 0.05 ms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dask.highlevelgraph import HighLevelGraph

from dataflow._dask import cull_graph, ref, task
from dataflow.merge import MergeStrategy, block, chain_step, finish, merge_node
from dataflow.partition import read_partition, run_partition

if TYPE_CHECKING:
    from collections.abc import Mapping

    import dask.array as da

    from dataflow.plan import RunPlan

__all__ = ["DEFAULT_SPLIT_EVERY", "UDFGraph", "build_graph"]

#: Children per merge-tree node.
DEFAULT_SPLIT_EVERY = 8


@dataclass
class UDFGraph:
    """A compiled run, usable as a dask collection (``dask.compute(g)``).

    Attributes
    ----------
    graph : HighLevelGraph
        The whole graph, data layers included.
    partition_keys : list
        Keys of the partition tasks, in partition order.
    merge_keys : list
        Keys of the merge-tree nodes, ``(name, level, index)``.
    final_key
        Key of the finishing task.
    """

    plan: RunPlan
    graph: HighLevelGraph
    partition_keys: list[Any]
    merge_keys: list[Any]
    final_key: Any
    #: layer of the per-partition blocks (nav slices, merge_all partials), or None
    block_layer: str | None = None

    def to_dict(self) -> dict[Any, Any]:
        """The graph as a plain dict, reduced to what the finishing task needs.

        Partitions without ROI frames, and the reads they would make, drop out.
        """
        dsk = dict(self.graph)
        plan = self.plan
        if len(plan.tasks) < len(plan.dataset.partitions) or len(self.graph.layers) > 8:
            dsk = cull_graph(dsk, [self.final_key])
        return dsk

    def tree_depth(self) -> int:
        """Merge levels above the partitions, the finishing task's own merge included."""
        levels = len({k[1] for k in self.merge_keys})
        return levels + (1 if self.partition_keys else 0)

    # the dask collection protocol ---------------------------------------------------------

    def __dask_graph__(self) -> HighLevelGraph:
        return self.graph

    def __dask_keys__(self) -> list[Any]:
        return [self.final_key]

    def __dask_layers__(self) -> tuple[str, ...]:
        return (self.final_key,)

    def __dask_tokenize__(self) -> Any:
        return self.final_key

    def __dask_postcompute__(self) -> Any:
        return _first, ()

    @staticmethod
    def __dask_optimize__(dsk: Mapping[Any, Any], keys: Any, **kwargs: Any) -> Mapping[Any, Any]:
        return dsk

    def __dask_postpersist__(self) -> Any:
        raise NotImplementedError("persist a UDF graph by computing it")


def _first(results: Any) -> Any:
    return results[0]


def build_graph(
    plan: RunPlan,
    *,
    split_every: int = DEFAULT_SPLIT_EVERY,
    with_results: bool = True,
    data: da.Array | None = None,
    run_id: str | None = None,
) -> UDFGraph:
    """Compile ``plan`` into a dask graph.

    Parameters
    ----------
    plan
        The inspected run.
    split_every
        Fan-in of the merge tree: children per node (at least 2).
    with_results
        Run ``get_results`` in the finishing task; otherwise it returns the
        accumulators (``run_udf_iter`` calls ``get_results`` on the client).
    data
        The partition array to read, if not the dataset's own (the same blocks,
        held elsewhere: see ``JobExecutor.input_array``).
    run_id
        Made part of every key of the run: a run is an action, and a scheduler that
        still holds the results of an earlier run under the same keys (distributed's
        does, for a moment after they are released) would hand those back instead
        of running it. None for graphs that compose (lazy results): their keys say
        what they compute.
    """
    if isinstance(split_every, bool) or not isinstance(split_every, int) or split_every < 2:
        raise ValueError(f"split_every is {split_every!r}; expected an integer >= 2")
    spec = plan.spec
    token = f"{plan.token}-{split_every}-{int(with_results)}"
    if run_id is not None:
        token = f"{token}-{run_id}"
    label = plan.label
    layers: dict[str, Mapping[Any, Any]] = {}
    deps: dict[str, set[str]] = {}

    def layer(name: str, tasks: Mapping[Any, Any], depends: set[str]) -> None:
        layers[name] = tasks
        deps[name] = depends

    spec_key = f"{label}-spec-{token}"
    layer(spec_key, {spec_key: spec}, set())

    part_name = f"{label}-partition-{token}"
    parts = [(part_name, i) for i in range(len(plan.tasks))]
    # A partition of a file source (a FrameReader) reads its frames itself, piece by
    # piece, in its own task (only its selected frames, with a ROI): nothing of the
    # size of the data passes between tasks. Other partitions get their block of
    # partition_array.
    reader = plan.dataset.reader
    if reader is not None and callable(getattr(reader, "pieces", None)):
        layer(
            part_name,
            {key: task(read_partition, ref(spec_key), reader, i) for i, key in enumerate(parts)},
            {spec_key},
        )
    else:
        if data is None:
            data = plan.dataset.partition_array
        data_graph = data.__dask_graph__()
        if not isinstance(data_graph, HighLevelGraph):  # dask arrays have layered graphs
            data_graph = HighLevelGraph.from_collections(data.name, data_graph)
        layers.update(data_graph.layers)
        deps.update({k: set(v) for k, v in data_graph.dependencies.items()})
        tail = (0,) * (data.ndim - 1)
        # with a ROI, a plain ``reader(start, stop, mask)`` reads only selected frames
        read_name = f"{label}-read-{token}"
        reads: dict[Any, Any] = {}
        inputs: list[Any] = []  # per task, the key of its data
        for i, t in enumerate(plan.tasks):
            if reader is not None and t.roi is not None:
                reads[(read_name, i)] = task(reader, t.partition.start, t.partition.stop, t.roi)
                inputs.append((read_name, i))
            else:
                inputs.append((data.name, t.partition.index, *tail))
        part_deps = {spec_key, *data.__dask_layers__()}
        if reads:
            layer(read_name, reads, set())
            part_deps.add(read_name)
        layer(
            part_name,
            {
                key: task(run_partition, ref(spec_key), ref(b), i)
                for i, (key, b) in enumerate(zip(parts, inputs, strict=True))
            },
            part_deps,
        )
    uplans = spec.udfs
    final_deps = {spec_key}

    # the merge tree, down to at most split_every items for the finishing task
    strategies = {u.strategy for u in uplans}
    level: list[Any] = parts if MergeStrategy.TREE in strategies else []
    merge_keys: list[Any] = []
    depth = 0
    merge_name = f"{label}-merge-{token}"
    level_layers = {part_name}
    while len(level) > split_every:
        name = f"{merge_name}-{depth}"
        nodes: dict[Any, Any] = {}
        next_level = []
        for j in range(0, len(level), split_every):
            group = level[j : j + split_every]
            if len(group) == 1:  # a lone last item moves up unmerged
                next_level.append(group[0])
                continue
            key = (merge_name, depth, j // split_every)
            nodes[key] = task(merge_node, ref(spec_key), [ref(k) for k in group])
            next_level.append(key)
        layer(name, nodes, {spec_key, *level_layers})
        merge_keys.extend(nodes)
        level = next_level
        level_layers = level_layers | {name}
        depth += 1
    if level:
        final_deps |= level_layers

    chain: Any = None
    if parts and MergeStrategy.CHAIN in strategies:
        chain_name = f"{label}-chain-{token}"
        steps = {}
        for i, part in enumerate(parts):
            steps[(chain_name, i)] = task(chain_step, ref(spec_key), ref(chain), ref(part))
            chain = (chain_name, i)
        layer(chain_name, steps, {spec_key, part_name})
        final_deps.add(chain_name)

    blocks: list[Any] = []
    block_name = None
    if parts and strategies & {MergeStrategy.CONCAT, MergeStrategy.MERGE_ALL}:
        block_name = f"{label}-nav-{token}"
        tasks = {
            (block_name, i): task(block, ref(spec_key), ref(part)) for i, part in enumerate(parts)
        }
        layer(block_name, tasks, {spec_key, part_name})
        blocks = list(tasks)
        final_deps.add(block_name)

    final_key = f"{label}-finish-{token}"
    finishing = task(
        finish,
        ref(spec_key),
        [ref(k) for k in level],
        ref(chain),
        [ref(k) for k in blocks],
        with_results,
    )
    layer(final_key, {final_key: finishing}, final_deps)
    hlg = HighLevelGraph(layers, deps)
    return UDFGraph(plan, hlg, parts, merge_keys, final_key, block_name if blocks else None)
