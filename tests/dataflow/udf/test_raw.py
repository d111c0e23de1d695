"""PickUDF: the selected frames, unchanged, in ROI order."""

from __future__ import annotations

import numpy as np
import pytest

import dataflow.udf.raw
from dataflow.errors import DataflowWarning
from dataflow.udf.raw import PickUDF


def _picked(data, roi):
    frames = data.reshape((-1, *data.shape[-2:]))
    return frames if roi is None else frames[roi.reshape(-1)]


@pytest.mark.parametrize("dtype", ["float32", "uint16", "int32", "float64", "bool"])
@pytest.mark.parametrize("num_partitions", [1, 3, 7])
@pytest.mark.parametrize("roi_kind", [None, "random", "one"])
def test_pick_matches_numpy(ctx, data_factory, rng, dtype, num_partitions, roi_kind):
    data = data_factory((6, 7, 5, 4), dtype)
    roi = {
        None: None,
        "random": rng.random((6, 7)) < 0.3,
        "one": np.eye(6, 7, k=2, dtype=bool) & (np.arange(7) == 5),
    }[roi_kind]
    ds = ctx.load("memory", data=data, num_partitions=num_partitions)
    res = ctx.run_udf(dataset=ds, udf=PickUDF(), roi=roi)["intensity"]
    expected = _picked(data, roi)
    assert res.kind == "single"
    assert res.dtype == data.dtype  # native dtype, not float32
    assert res.extra_shape == expected.shape
    assert res.raw_data.dtype == data.dtype
    np.testing.assert_array_equal(res.raw_data, expected)
    np.testing.assert_array_equal(res.data, expected)


@pytest.mark.parametrize("split_every", [2, 3])
def test_pick_in_a_deep_merge_tree(ctx, data_factory, rng, split_every):
    data = data_factory((8, 8, 3, 2), "int32")
    roi = rng.random((8, 8)) < 0.5
    ds = ctx.load("memory", data=data, num_partitions=37)
    res = ctx.run_udf(dataset=ds, udf=PickUDF(), roi=roi, split_every=split_every)
    np.testing.assert_array_equal(res["intensity"].raw_data, _picked(data, roi))


def test_pick_nothing(ctx, data_factory):
    data = data_factory((4, 5, 3, 2), "uint16")
    ds = ctx.load("memory", data=data, num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=PickUDF(), roi=np.zeros((4, 5), bool))["intensity"]
    assert res.raw_data.shape == (0, 3, 2)
    assert res.raw_data.dtype == np.uint16


def test_pick_keeps_negative_zero_and_nan(ctx):
    data = np.zeros((2, 3, 2, 2), dtype="float32")
    data[0, 1, 0, 0] = np.nan
    data[1, 2, 1, 1] = -np.inf
    ds = ctx.load("memory", data=data, num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=PickUDF())["intensity"]
    np.testing.assert_array_equal(res.raw_data, data.reshape(-1, 2, 2))


def test_pick_warns_for_large_results(ctx, data_factory, monkeypatch):
    monkeypatch.setattr(dataflow.udf.raw, "_WARN_BYTES", 100)
    data = data_factory((4, 5, 3, 2), "float32")
    ds = ctx.load("memory", data=data, num_partitions=2)
    with pytest.warns(DataflowWarning, match=r"PickUDF loads 20 frames"):
        ctx.run_udf(dataset=ds, udf=PickUDF())
    with pytest.warns(DataflowWarning):
        ctx.run_udf(dataset=ds, udf=PickUDF(), roi=ds.roi[0])  # 5 frames: 120 bytes
    ctx.run_udf(dataset=ds, udf=PickUDF(), roi=ds.roi[0, 0])  # 24 bytes: quiet


def test_pick_on_threads(threads_ctx, data_factory, rng):
    data = data_factory((8, 8, 5, 4), "uint16")
    roi = rng.random((8, 8)) < 0.2
    ds = threads_ctx.load("memory", data=data, num_partitions=7)
    res = threads_ctx.run_udf(dataset=ds, udf=PickUDF(), roi=roi)["intensity"]
    np.testing.assert_array_equal(res.raw_data, _picked(data, roi))
