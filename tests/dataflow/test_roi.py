"""Every ROI form LiberTEM accepts gives the same run as the equivalent boolean mask."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse

from dataflow.errors import DataflowWarning, RoiError
from dataflow.roi import normalize_roi
from dataflow.udf.sumsigudf import SumSigUDF


@pytest.fixture
def ds(ctx):
    data = np.arange(4 * 5 * 2 * 2, dtype="float32").reshape(4, 5, 2, 2)
    return ctx.load("memory", data=data, num_partitions=3)


def _mask(*coords):
    mask = np.zeros((4, 5), bool)
    for c in coords:
        mask[c] = True
    return mask


@pytest.mark.parametrize(
    ("roi", "expected"),
    [
        (_mask((1, 2), (3, 4)), _mask((1, 2), (3, 4))),
        (_mask((1, 2)).reshape(-1), _mask((1, 2))),  # any array of the navigation size
        ((1, 2), _mask((1, 2))),
        ([((0, 0), True), ((3, 4), True), ((1, 1), False)], _mask((0, 0), (3, 4))),
        (scipy.sparse.csr_matrix(_mask((2, 2), (0, 4))), _mask((2, 2), (0, 4))),
        (scipy.sparse.coo_array(_mask((3, 3))), _mask((3, 3))),
    ],
)
def test_roi_forms(ctx, ds, roi, expected):
    np.testing.assert_array_equal(normalize_roi(roi, (4, 5)), expected)
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF(), roi=roi)["intensity"]
    np.testing.assert_array_equal(~np.isnan(res.data), expected)


def test_pydata_sparse_roi(ctx, ds):
    sparse = pytest.importorskip("sparse")  # the optional pydata package (extra 'sparse')
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF(), roi=sparse.COO(_mask((1, 1))))
    assert np.count_nonzero(~np.isnan(res["intensity"].data)) == 1


def test_roi_is_copied(ctx, ds):
    roi = _mask((0, 0))
    gen = ctx.run_udf_iter(dataset=ds, udf=SumSigUDF(), roi=roi)
    roi[:] = True  # changing the caller's array after the call changes nothing
    *_, last = gen
    assert np.count_nonzero(~np.isnan(last.buffers[0]["intensity"].data)) == 1


def test_non_bool_roi_warns_and_converts(ctx, ds):
    roi = np.zeros((4, 5), "uint8")
    roi[2, 3] = 7
    with pytest.warns(DataflowWarning, match="roi has dtype uint8; it is converted to bool"):
        res = ctx.run_udf(dataset=ds, udf=SumSigUDF(), roi=roi)
    assert np.count_nonzero(~np.isnan(res["intensity"].data)) == 1


@pytest.mark.parametrize(
    ("roi", "error", "match"),
    [
        (
            np.ones((3, 3), bool),
            RoiError,
            r"roi has shape \(3, 3\); the navigation shape is \(4, 5\)",
        ),
        ((7, 0), RoiError, r"roi coordinate \(7, 0\) lies outside the navigation shape \(4, 5\)"),
        ("abc", TypeError, "roi is a str"),
        ({"a": 1}, TypeError, "roi is a dict"),
    ],
)
def test_bad_rois(ctx, ds, roi, error, match):
    with pytest.raises(error, match=match):
        ctx.run_udf(dataset=ds, udf=SumSigUDF(), roi=roi)
