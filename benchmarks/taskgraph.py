"""The plain dask.distributed peer: dataflow's graph of a run, rebuilt by hand around NumPy.

A run of dataflow on the ``dask`` executor submits one graph to the cluster's client
(``client.get``): a literal key holding the run's spec (the UDFs), the in-memory
dataset's blocks (held by the workers since the dataset's first run, as futures),
one task per partition, a merge tree of ``split_every`` children per node, and one
finishing task that merges the last level and makes the results (see
:mod:`dataflow.graph`). What dataflow adds to dask.distributed's own cost of such a
graph is planning, building the graph, its tasks' bookkeeping and wrapping the
results; that is what ``tiny-sum`` measures against this peer.

:func:`dataflow_graph_shape` compiles a run as dataflow does (``plan_run`` and
``build_graph``, with the executor's input array and the context's ``split_every``;
nothing runs) and counts its keys. :class:`PlainGraph` then builds, for every call, a
graph of the same keys and edges with fresh names: a literal :class:`PlainSpec`
(the block function and ``np.add``), the blocks (scattered to the workers once, as
dataflow's are), a task per partition applying the block function to its block, the
same merge tree adding its children, and a finishing task adding the last level.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from dataflow import UDF, Context, DataSet

__all__ = ["GraphShape", "PlainGraph", "PlainSpec", "dataflow_graph_shape", "merge_tree"]


@dataclass(frozen=True)
class GraphShape:
    """The keys of the graph a dataflow run submits, by kind.

    Attributes
    ----------
    partitions
        ``(start, stop)`` of each partition task's frames, of the flattened scan.
    split_every
        Children per merge-tree node.
    merge_nodes
        Nodes of the merge tree (the finishing task's own merge not counted).
    data_keys
        Keys of the dataset's blocks the partition tasks read (for an in-memory
        dataset on a cluster, futures of the blocks the workers hold).
    keys
        All keys of the graph as submitted: the spec, the data, the tasks.
    """

    partitions: tuple[tuple[int, int], ...]
    split_every: int
    merge_nodes: int
    data_keys: int
    keys: int

    @property
    def tasks(self) -> int:
        """Keys that are computed: the partition tasks, the merge nodes, the finishing task."""
        return len(self.partitions) + self.merge_nodes + 1


def merge_tree(n: int, split_every: int) -> list[list[list[int]]]:
    """The merge tree of ``n`` partition results, as :func:`dataflow.graph.build_graph`
    builds it: per level, the groups of the level below that a node merges.

    Items are indexes into the level below (level 0: the partitions). A level's items
    are taken ``split_every`` at a time; a lone last item moves up unmerged; levels are
    added while more than ``split_every`` items are left, which the finishing task
    then merges itself.

    Examples
    --------
    >>> merge_tree(3, 8)
    []
    >>> [[len(g) for g in level] for level in merge_tree(20, 8)]
    [[8, 8, 4]]
    >>> [[len(g) for g in level] for level in merge_tree(20, 3)]
    [[3, 3, 3, 3, 3, 3, 2], [3, 3, 1]]
    """
    levels = []
    width = n
    while width > split_every:
        groups = [list(range(j, min(j + split_every, width))) for j in range(0, width, split_every)]
        levels.append(groups)
        width = len(groups)
    return levels


def dataflow_graph_shape(ctx: Context, dataset: DataSet, udf: UDF) -> GraphShape:
    """The keys of the graph ``ctx.run_udf(dataset=dataset, udf=udf)`` submits, counted.

    The run is compiled as ``ctx.run_udf`` compiles it (``dataflow.run.plan_run``, then
    ``dataflow.graph.build_graph`` with the executor's input array, the context's
    ``split_every`` and a run id) and culled as it is before it is submitted; nothing
    runs. Only dataflow's public graph attributes (``partition_keys``, ``merge_keys``,
    ``final_key``, ``to_dict``) are read.

    Raises
    ------
    ValueError
        If the graph has keys other than the spec, the data blocks and the tree (a
        merge chain, nav blocks, reads of ROI frames): the plain graph mirrors only
        the tree.
    """
    from dataflow.graph import build_graph
    from dataflow.run import plan_run

    executor = ctx.executor
    plan = plan_run(dataset, [udf], executor=executor)
    data = executor.input_array(dataset)
    graph = build_graph(plan, split_every=ctx.split_every, data=data, run_id="count")
    dsk = graph.to_dict()
    data_keys = sum(1 for k in dsk if isinstance(k, tuple) and k[0] == data.name)
    shape = GraphShape(
        partitions=tuple((t.partition.start, t.partition.stop) for t in plan.tasks),
        split_every=ctx.split_every,
        merge_nodes=len(graph.merge_keys),
        data_keys=data_keys,
        keys=len(dsk),
    )
    tree = merge_tree(len(shape.partitions), shape.split_every)
    merges = sum(1 for level in tree for group in level if len(group) > 1)
    if (
        len(graph.partition_keys) != len(shape.partitions)
        or merges != shape.merge_nodes
        or shape.keys != 1 + data_keys + shape.tasks  # the spec, the blocks, the tasks
    ):
        raise ValueError(
            f"dataflow's graph has {shape.keys} keys: {len(graph.partition_keys)} partition "
            f"tasks, {shape.merge_nodes} merge nodes ({merges} expected), {data_keys} data "
            "blocks, a spec and a finishing task; the plain graph mirrors only those"
        )
    return shape


@dataclass(frozen=True)
class PlainSpec:
    """The literal of the plain graph, as dataflow's spec is of its graph: what to compute."""

    block: Callable[[np.ndarray], np.ndarray]
    merge: Callable[[np.ndarray, np.ndarray], np.ndarray]


def _partition(spec: PlainSpec, frames: np.ndarray) -> np.ndarray:
    return spec.block(frames)


def _merge(spec: PlainSpec, parts: Sequence[np.ndarray]) -> np.ndarray:
    return functools.reduce(spec.merge, parts)


class PlainGraph:
    """A graph of :class:`GraphShape`'s keys and edges, of NumPy functions only.

    Parameters
    ----------
    shape
        dataflow's graph, counted.
    blocks
        The partitions' frames, one per partition task: futures of blocks the
        workers hold (``client.scatter``), or the arrays themselves.
    block
        ``block(frames)``: what a partition task computes; the tree adds the results.
    """

    def __init__(
        self,
        shape: GraphShape,
        blocks: Sequence[Any],
        block: Callable[[np.ndarray], np.ndarray],
    ) -> None:
        if len(blocks) != len(shape.partitions):
            raise ValueError(f"{len(blocks)} blocks for {len(shape.partitions)} partitions")
        self.shape = shape
        self.blocks = list(blocks)
        self.spec = PlainSpec(block, np.add)

    def graph(self, token: str | None = None) -> tuple[dict[Any, Any], str]:
        """The graph and its final key, under names made of ``token`` (fresh if None).

        Fresh names for every run, as dataflow's run id: a scheduler that still holds
        the keys of the last run would hand back its results instead of running.
        """
        token = token or uuid.uuid4().hex[:12]
        spec = f"plain-spec-{token}"
        data = f"plain-data-{token}"
        part = f"plain-partition-{token}"
        merge = f"plain-merge-{token}"
        dsk: dict[Any, Any] = {spec: self.spec}
        level: list[Any] = []
        for i, block in enumerate(self.blocks):
            dsk[(data, i)] = block
            dsk[(part, i)] = (_partition, spec, (data, i))
            level.append((part, i))
        for depth, groups in enumerate(merge_tree(len(level), self.shape.split_every)):
            next_level = []
            for j, group in enumerate(groups):
                if len(group) == 1:  # a lone last item moves up unmerged
                    next_level.append(level[group[0]])
                    continue
                key = (merge, depth, j)
                dsk[key] = (_merge, spec, [level[g] for g in group])
                next_level.append(key)
            level = next_level
        final = f"plain-finish-{token}"
        dsk[final] = (_merge, spec, level)
        return dsk, final
