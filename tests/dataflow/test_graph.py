"""The compiled graph's shape, inspected with dask's own graph tools."""

from __future__ import annotations

import math

import dask
import numpy as np
import pytest
from dask.core import get_dependencies

from dataflow.graph import build_graph
from dataflow.plan import make_plan
from dataflow.udf.sum import SumUDF
from dataflow.udf.sumsigudf import SumSigUDF


def _graph(ctx, num_partitions, udfs, split_every=8, roi=None, shape=(16, 16, 4, 4)):
    ds = ctx.load("memory", data=np.ones(shape, "float32"), num_partitions=num_partitions)
    return build_graph(make_plan(ds, udfs, roi), split_every=split_every)


def _layer_keys(dsk, marker):
    return [k for k in dsk if marker in (k[0] if isinstance(k, tuple) else k)]


@pytest.mark.parametrize("num_partitions", [1, 2, 7, 64])
def test_one_task_per_partition_and_one_finish(ctx, num_partitions):
    g = _graph(ctx, num_partitions, [SumUDF(), SumSigUDF()])
    dsk = dict(g.graph)
    assert len(_layer_keys(dsk, "-partition-")) == num_partitions
    assert len(_layer_keys(dsk, "-finish-")) == 1
    # the UDFs' clean copies travel once per graph: one spec key, used by every task
    (spec_key,) = _layer_keys(dsk, "-spec-")
    for key in _layer_keys(dsk, "-partition-"):
        assert spec_key in get_dependencies(dsk, key)


@pytest.mark.parametrize(
    ("num_partitions", "split_every"),
    [(1, 2), (2, 2), (7, 2), (64, 2), (64, 4), (64, 8), (7, 8), (9, 8), (64, 64)],
)
def test_tree_depth_for_fan_in(ctx, num_partitions, split_every):
    g = _graph(ctx, num_partitions, [SumUDF()], split_every=split_every)
    dsk = dict(g.graph)
    merges = _layer_keys(dsk, "-merge-")
    # levels of merge tasks above the partitions; the finishing task merges the last
    # (at most split_every) items itself
    levels = max(0, math.ceil(math.log(num_partitions, split_every)) - 1) if num_partitions else 0
    assert len({k[1] for k in merges}) == levels
    assert g.tree_depth() == levels + 1
    for key in merges:
        children = [d for d in get_dependencies(dsk, key) if "-spec-" not in str(d)]
        assert 2 <= len(children) <= split_every
    (final,) = _layer_keys(dsk, "-finish-")
    top = [d for d in get_dependencies(dsk, final) if "-spec-" not in str(d)]
    assert 1 <= len(top) <= split_every


def test_nav_only_udf_needs_no_merge_tree(ctx):
    g = _graph(ctx, 64, [SumSigUDF()], split_every=2)
    dsk = dict(g.graph)
    assert _layer_keys(dsk, "-merge-") == []
    assert len(_layer_keys(dsk, "-nav-")) == 64


def test_tasks_grow_with_partitions_not_frames(ctx):
    small = dict(_graph(ctx, 4, [SumUDF()], shape=(8, 8, 4, 4)).graph)
    large = dict(_graph(ctx, 4, [SumUDF()], shape=(64, 64, 4, 4)).graph)
    assert len(small) == len(large)


def test_roi_drops_partitions_without_frames(ctx):
    roi = np.zeros((16, 16), bool)
    roi[:4] = True  # only the first quarter of the frames
    g = _graph(ctx, 8, [SumUDF()], roi=roi)
    dsk = g.to_dict()
    assert len(_layer_keys(dsk, "-partition-")) == 2
    data_keys = [k for k in dsk if isinstance(k, tuple) and k[0].startswith("memory-")]
    assert len(data_keys) == 2  # blocks of skipped partitions are culled


def test_keys_are_deterministic_and_named(ctx):
    ds = ctx.load("memory", data=np.ones((8, 8, 4, 4), "float32"), num_partitions=2)
    a = build_graph(make_plan(ds, [SumUDF()]))
    b = build_graph(make_plan(ds, [SumUDF()]))
    assert a.final_key == b.final_key
    assert a.final_key.startswith("sumudf-finish-")
    c = build_graph(make_plan(ds, [SumUDF(dtype="float64")]))
    assert c.final_key != a.final_key


def test_graph_is_a_dask_collection(ctx):
    g = _graph(ctx, 3, [SumUDF()])
    (collected,) = dask.compute(g, scheduler="sync")
    (per_udf,) = collected
    decl, arr, _ = per_udf["intensity"]
    assert decl.kind == "sig"
    np.testing.assert_array_equal(arr, np.full((4, 4), 256.0))


def test_loading_memory_data_neither_copies_nor_hashes(ctx, monkeypatch):
    import dask.base

    def no_hashing(*args, **kwargs):
        raise AssertionError("the data was tokenized")

    data = np.ones((8, 8, 4, 4), "float32")
    monkeypatch.setattr(dask.base, "tokenize", no_hashing)
    ds = ctx.load("memory", data=data, num_partitions=3)
    blocks = list(dict(ds.partition_array.__dask_graph__()).values())
    assert len(blocks) == 3
    for block in blocks:
        assert isinstance(block, np.ndarray)
        assert np.shares_memory(block, data)


class _CountingReader:
    """A dataset reader that records which frames it was asked for."""

    def __init__(self, frames):
        self.frames = frames
        self.calls = []

    def __call__(self, start, stop, mask):
        self.calls.append((start, stop, None if mask is None else int(mask.sum())))
        out = np.zeros((stop - start, *self.frames.shape[1:]), self.frames.dtype)
        sel = np.arange(stop - start) if mask is None else np.flatnonzero(mask)
        out[sel] = self.frames[start + sel]
        return out


def test_roi_runs_read_through_the_dataset_reader(ctx):
    import dask.array as da

    from dataflow.sources import DataSet, plan_partitions

    frames = np.arange(64 * 4, dtype="float32").reshape(64, 2, 2)
    reader = _CountingReader(frames)
    parts = plan_partitions(64, 16, row_length=8, num_partitions=4)

    def block(block_info=None):
        start, stop = block_info[None]["array-location"][0]
        return reader(start, stop, None)

    array = da.map_blocks(
        block,
        chunks=(tuple(p.n_frames for p in parts), (2,), (2,)),
        dtype="float32",
        meta=np.empty((0, 0, 0), "float32"),
    )
    ds = DataSet(array, nav_shape=(8, 8), partitions=parts, token="counting", reader=reader)
    roi = np.zeros((8, 8), bool)
    roi[0, :3] = True  # three frames of the first partition
    roi[7, 7] = True  # and the last frame
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF(), roi=roi)
    np.testing.assert_array_equal(res["intensity"].raw_data, frames[roi.reshape(-1)].sum((1, 2)))
    assert sorted(reader.calls) == [(0, 16, 3), (48, 64, 1)]  # masks reach the reader
    reader.calls.clear()
    ctx.run_udf(dataset=ds, udf=SumSigUDF())
    assert sorted(reader.calls) == [(0, 16, None), (16, 32, None), (32, 48, None), (48, 64, None)]
