"""SumSigUDF against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from dataflow.udf.sumsigudf import SumSigUDF, run_sumsig

DTYPES = ["uint8", "uint16", "int32", "float32", "float64", "complex64"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("roi_kind", [None, "all-true", "all-false", "random"])
def test_sumsig_matches_numpy(ctx, data_factory, rng, dtype, roi_kind):
    data = data_factory((6, 7, 5, 4), dtype)
    roi = {
        None: None,
        "all-true": np.ones((6, 7), bool),
        "all-false": np.zeros((6, 7), bool),
        "random": rng.random((6, 7)) < 0.5,
    }[roi_kind]
    ds = ctx.load("memory", data=data, num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF(), roi=roi)["intensity"]
    dt = np.result_type(data.dtype, np.float32)
    assert res.dtype == dt
    expected = data.astype(dt).sum(axis=(2, 3))
    rtol = 1e-5 if dt in (np.float32, np.complex64) else 1e-12
    if roi is None:
        np.testing.assert_allclose(res.data, expected, rtol=rtol, atol=1e-4)
        return
    np.testing.assert_allclose(res.raw_data, expected[roi], rtol=rtol, atol=1e-4)
    assert np.isnan(res.data[~roi]).all()


@pytest.mark.parametrize("sig_shape", [(9,), (5, 4)])
@pytest.mark.parametrize("nav_shape", [(12,), (3, 4), (2, 3, 2)])
def test_sumsig_over_ranks(ctx, rng, nav_shape, sig_shape):
    data = rng.random(nav_shape + sig_shape, dtype=np.float32)
    ds = ctx.load("memory", data=data, sig_dims=len(sig_shape), num_partitions=2)
    res = run_sumsig(ctx, ds)["intensity"]
    sig_axes = tuple(range(len(nav_shape), data.ndim))
    assert res.data.shape == nav_shape
    np.testing.assert_allclose(res.data, data.sum(axis=sig_axes), rtol=1e-5)
