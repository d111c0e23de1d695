"""SumUDF against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from dataflow.udf.sum import SumUDF

DTYPES = ["uint8", "uint16", "int32", "float32", "float64", "complex64"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("num_partitions", [1, 3])
@pytest.mark.parametrize("roi_kind", [None, "random"])
def test_sum_matches_numpy(ctx, data_factory, rng, dtype, num_partitions, roi_kind):
    data = data_factory((6, 7, 5, 4), dtype)
    roi = None if roi_kind is None else rng.random((6, 7)) < 0.5
    ds = ctx.load("memory", data=data, num_partitions=num_partitions)
    res = ctx.run_udf(dataset=ds, udf=SumUDF(), roi=roi)["intensity"]
    dt = np.result_type(data.dtype, np.float32)
    assert res.dtype == dt
    assert res.data.dtype == dt
    sel = data if roi is None else data[roi]
    expected = sel.astype(dt).sum(axis=(0, 1) if roi is None else 0)
    rtol = 1e-5 if dt in (np.float32, np.complex64) else 1e-12
    np.testing.assert_allclose(res.data, expected, rtol=rtol, atol=1e-4)


@pytest.mark.parametrize("sig_shape", [(9,), (5, 4)])
@pytest.mark.parametrize("nav_shape", [(12,), (3, 4), (2, 3, 2)])
def test_sum_over_navigation_ranks(ctx, rng, nav_shape, sig_shape):
    data = rng.random(nav_shape + sig_shape, dtype=np.float32)
    ds = ctx.load("memory", data=data, sig_dims=len(sig_shape), num_partitions=2)
    res = ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"]
    nav_axes = tuple(range(len(nav_shape)))
    np.testing.assert_allclose(res.data, data.sum(axis=nav_axes), rtol=1e-5)


def test_sum_dtype_parameter(ctx):
    data = np.full((4, 4, 3, 3), 2**20, dtype="int32")
    ds = ctx.load("memory", data=data)
    res = ctx.run_udf(dataset=ds, udf=SumUDF(dtype="int64"))["intensity"]
    assert res.dtype == np.int64
    np.testing.assert_array_equal(res.data, np.full((3, 3), 16 * 2**20))
