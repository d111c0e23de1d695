"""Result objects: .data / .raw_data with ROI, the array protocol, and xarray output."""

from __future__ import annotations

import numpy as np
import pytest

from dataflow.buffers import fill_value
from dataflow.udf import UDF
from dataflow.udf.sum import SumUDF
from dataflow.udf.sumsigudf import SumSigUDF


class Typed(UDF):
    """One nav buffer of a given dtype, filled with the frame index + 1."""

    def __init__(self, dtype="float32"):
        super().__init__(dtype=dtype)

    def get_result_buffers(self):
        return {"v": self.buffer(kind="nav", dtype=self.params.dtype)}

    def process_frame(self, frame):
        value = self.meta.slice.origin[0] + 1
        if np.dtype(self.params.dtype).kind == "U":
            value = str(value)
        self.results.v[:] = value


@pytest.mark.parametrize(
    ("dtype", "fill"),
    [
        ("float32", np.nan),
        ("complex64", np.nan),
        ("int32", 0),
        ("uint8", 0),
        ("bool", False),
        ("U4", ""),
        ("object", None),
    ],
)
def test_fill_values_outside_roi(ctx, dtype, fill):
    roi = np.zeros((3, 4), bool)
    roi[1, 1] = roi[2, 3] = True
    ds = ctx.load("memory", data=np.zeros((3, 4, 2, 2)), num_partitions=2)
    res = ctx.run_udf(dataset=ds, udf=Typed(dtype=dtype), roi=roi)["v"]
    assert res.raw_data.shape == (2,)
    assert res.data.shape == (3, 4)
    outside = res.data[~roi]
    if isinstance(fill, float) and np.isnan(fill):
        assert np.all(np.isnan(outside))
    else:
        assert all(v == fill for v in outside)
        assert fill_value(np.dtype(dtype)) == fill
    inside = res.data[roi]
    assert list(inside) == list(res.raw_data)
    assert res.valid_mask.tolist() == roi.tolist()
    assert res.masked_data.mask.tolist() == (~roi).tolist()


def test_array_protocol_and_attributes(ctx, rng):
    data = rng.random((4, 4, 3, 3), dtype=np.float32)
    ds = ctx.load("memory", data=data)
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF())["intensity"]
    assert res.kind == "nav"
    assert res.extra_shape == ()
    assert res.dtype == np.float32
    assert res.shape == (16,)
    np.testing.assert_array_equal(np.array(res), res.data)
    assert np.sum(res) == pytest.approx(float(res.data.sum()))
    assert np.asarray(res, dtype="float64").dtype == np.float64
    assert "intensity" in repr(res)


@pytest.mark.parametrize(
    ("shape", "sig_dims", "dims"),
    [
        ((4, 5, 6, 7), 2, ("scan_y", "scan_x", "det_y", "det_x")),
        ((4, 6, 7), 2, ("nav_0", "det_y", "det_x")),
        ((2, 3, 4, 7), 1, ("nav_0", "nav_1", "nav_2", "sig_0")),
        ((4, 5, 7), 1, ("scan_y", "scan_x", "sig_0")),
    ],
)
def test_to_xarray_dims_and_coords(ctx, rng, shape, sig_dims, dims):
    data = rng.random(shape, dtype=np.float32)
    ds = ctx.load("memory", data=data, sig_dims=sig_dims)
    assert ds.dims == dims
    res_sum, res_sig = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
    nav, sig = dims[: len(shape) - sig_dims], dims[len(shape) - sig_dims :]
    xs = res_sum.to_xarray()
    assert xs["intensity"].dims == sig
    xn = res_sig.to_xarray()
    assert xn["intensity"].dims == nav
    for d in dims[: len(shape) - sig_dims]:
        np.testing.assert_array_equal(xn[d].values, np.arange(ds.shape[dims.index(d)]))
    np.testing.assert_allclose(
        xn["intensity"].values, data.sum(axis=tuple(range(len(nav), len(shape)))), rtol=1e-5
    )
    assert xn.attrs["udf"] == "SumSigUDF"


def test_to_xarray_names_extra_dims_after_the_buffer_and_marks_the_roi(ctx):
    class Extra(UDF):
        def get_result_buffers(self):
            return {
                "pair": self.buffer(kind="nav", extra_shape=(2,)),
                "moments": self.buffer(kind="sig", extra_shape=(3,)),
                "table": self.buffer(kind="single", extra_shape=(2, 5)),
            }

        def process_frame(self, frame):
            self.results.pair[:] = (1, 2)
            self.results.moments[..., 0] += frame

        def merge(self, dest, src):
            dest.pair[:] = src.pair
            dest.moments += src.moments
            dest.table += src.table

    roi = np.ones((3, 4), bool)
    roi[0, 0] = False
    ds = ctx.load("memory", data=np.ones((3, 4, 5, 6)))
    x = ctx.run_udf(dataset=ds, udf=Extra(), roi=roi).to_xarray()
    assert x["pair"].dims == ("scan_y", "scan_x", "pair_0")
    assert x["moments"].dims == ("det_y", "det_x", "moments_0")
    assert x["table"].dims == ("table_0", "table_1")
    assert x["roi"].dims == ("scan_y", "scan_x")
    np.testing.assert_array_equal(x["roi"].values, roi)
    assert np.isnan(x["pair"].values[0, 0]).all()
    np.testing.assert_array_equal(x["moments"].values[..., 0], np.full((5, 6), 11.0))


def test_results_keep_custom_coords_and_attrs(ctx):
    data = np.ones((2, 3, 4, 4), "float32")
    coords = {"scan_x": np.array([0.0, 0.5, 1.0])}
    ds = ctx.load("memory", data=data, coords=coords, attrs={"source": "test"})
    x = ctx.run_udf(dataset=ds, udf=SumSigUDF()).to_xarray()
    np.testing.assert_array_equal(x["scan_x"].values, [0.0, 0.5, 1.0])
    assert x.attrs["source"] == "test"
