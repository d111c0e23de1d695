"""LogsumUDF against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from dataflow.udf.logsum import LogsumUDF, run_logsum


def _reference(data, roi):
    frames = data.reshape((-1, *data.shape[-2:]))
    if roi is not None:
        frames = frames[roi.reshape(-1)]
    frames = frames.astype(np.result_type(data.dtype, np.float32))
    low = frames.min(axis=(1, 2), keepdims=True)
    return np.log(frames - low + 1).sum(axis=0, dtype=np.float64)


@pytest.mark.parametrize("dtype", ["float32", "uint16", "int32"])
@pytest.mark.parametrize("num_partitions", [1, 3, 7])
@pytest.mark.parametrize("roi_kind", [None, "random"])
def test_logsum_matches_numpy(ctx, data_factory, rng, dtype, num_partitions, roi_kind):
    data = data_factory((6, 7, 5, 4), dtype)
    roi = None if roi_kind is None else rng.random((6, 7)) < 0.5
    ds = ctx.load("memory", data=data, num_partitions=num_partitions)
    res = ctx.run_udf(dataset=ds, udf=LogsumUDF(), roi=roi)["logsum"]
    assert res.kind == "sig"
    assert res.dtype == np.float32
    assert res.data.dtype == np.float32
    np.testing.assert_allclose(res.data, _reference(data, roi), rtol=1e-5)


def test_logsum_all_false_roi(ctx, data_factory):
    data = data_factory((4, 5, 3, 2), "uint16")
    ds = ctx.load("memory", data=data, num_partitions=3)
    res = run_logsum(ctx, ds, roi=np.zeros((4, 5), bool))["logsum"]
    np.testing.assert_array_equal(res.data, np.zeros((3, 2), np.float32))


def test_logsum_of_constant_frames_is_zero(ctx):
    # frame - frame.min() + 1 == 1 everywhere
    ds = ctx.load("memory", data=np.full((3, 4, 5, 5), 7, dtype="uint8"), num_partitions=2)
    np.testing.assert_array_equal(run_logsum(ctx, ds)["logsum"].data, 0)


def test_run_logsum_with_roi(ctx, data_factory):
    data = data_factory((6, 7, 5, 4), "float32")
    roi = np.zeros((6, 7), bool)
    roi[1:3, 2:6] = True
    ds = ctx.load("memory", data=data, num_partitions=3)
    res = run_logsum(ctx, ds, roi=roi)
    np.testing.assert_allclose(res["logsum"].data, _reference(data, roi), rtol=1e-5)


def test_logsum_on_threads(threads_ctx, data_factory, rng):
    data = data_factory((8, 8, 5, 4), "int32")
    roi = rng.random((8, 8)) < 0.5
    ds = threads_ctx.load("memory", data=data, num_partitions=7)
    res = threads_ctx.run_udf(dataset=ds, udf=LogsumUDF(), roi=roi)["logsum"]
    np.testing.assert_allclose(res.data, _reference(data, roi), rtol=1e-5)
