"""xarray in and out: the xarray source, the accessor, labels and units."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import dataflow  # noqa: F401 (registers the accessor)
from dataflow.errors import DataflowWarning
from dataflow.udf.sum import SumUDF
from dataflow.udf.sumsigudf import SumSigUDF


@pytest.fixture
def calibrated(rng):
    data = rng.random((6, 5, 4, 3), dtype=np.float32)
    return xr.DataArray(
        data,
        dims=("y", "x", "ky", "kx"),
        coords={
            "y": ("y", np.arange(6) * 2.5, {"units": "nm"}),
            "x": ("x", np.arange(5) * 2.5, {"units": "nm"}),
            "ky": ("ky", np.linspace(-1, 1, 4), {"units": "mrad"}),
        },
        attrs={"detector": "test"},
    )


@pytest.mark.parametrize("backing", ["numpy", "dask"])
def test_xarray_source_keeps_labels(ctx, calibrated, backing):
    arr = calibrated if backing == "numpy" else calibrated.chunk({"y": 2})
    ds = ctx.load("xarray", arr, sig_dims=("ky", "kx"))
    assert ds.dims == ("y", "x", "ky", "kx")
    a, b = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
    pattern = a.to_xarray()["intensity"]
    frames = b.to_xarray()["intensity"]
    assert pattern.dims == ("ky", "kx")
    assert frames.dims == ("y", "x")
    np.testing.assert_array_equal(frames["y"].values, np.arange(6) * 2.5)
    assert frames["y"].attrs == {"units": "nm"}
    assert pattern["ky"].attrs == {"units": "mrad"}
    assert "units" not in pattern["kx"].attrs  # uncalibrated: pixel indices, no invented unit
    np.testing.assert_allclose(frames.values, calibrated.values.sum(axis=(2, 3)), rtol=1e-5)
    assert b.to_xarray().attrs["detector"] == "test"


def test_signal_dims_chosen_by_name_in_any_order(ctx, calibrated):
    moved = calibrated.transpose("ky", "y", "kx", "x")
    ds = ctx.load("xarray", moved, sig_dims=("ky", "kx"))
    assert ds.dims == ("y", "x", "ky", "kx")
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF())
    np.testing.assert_allclose(res["intensity"].data, calibrated.values.sum(axis=(2, 3)), rtol=1e-5)


def test_accessor(calibrated):
    roi = np.zeros((6, 5), bool)
    roi[1:3] = True
    out = calibrated.dataflow.run_udf(SumSigUDF(), roi=roi, sig_dims=("ky", "kx"))
    assert isinstance(out, xr.Dataset)
    assert out["intensity"].dims == ("y", "x")
    assert np.isnan(out["intensity"].values[~roi]).all()
    np.testing.assert_array_equal(out["roi"].values, roi)
    lazy = calibrated.dataflow.run_udf([SumUDF(), SumSigUDF()], sig_dims=("ky", "kx"), lazy=True)
    assert isinstance(lazy[0]["intensity"].data, da.Array)


def test_chunked_signal_dimensions_are_merged_with_a_warning(ctx, calibrated):
    arr = calibrated.chunk({"y": 6, "x": 5, "ky": 2, "kx": 3})
    with pytest.warns(DataflowWarning, match="the signal dimensions are chunked"):
        ds = ctx.load("xarray", arr, sig_dims=("ky", "kx"), partition_bytes=64)
    res = ctx.run_udf(dataset=ds, udf=SumUDF())
    np.testing.assert_allclose(res["intensity"].data, calibrated.values.sum((0, 1)), rtol=1e-5)


def test_xarray_source_errors(ctx, calibrated):
    with pytest.raises(TypeError, match=r"needs an xarray\.DataArray; got ndarray"):
        ctx.load("xarray", calibrated.values)
    with pytest.raises(ValueError, match=r"sig_dims names \['q'\], which the DataArray lacks"):
        ctx.load("xarray", calibrated, sig_dims=("q",))
    with pytest.raises(ValueError, match="at least one of the DataArray's dims"):
        ctx.load("xarray", calibrated, sig_dims=("y", "x", "ky", "kx"))


def test_results_quantify_with_pint_xarray(ctx, calibrated):
    pint_xarray = pytest.importorskip("pint_xarray")  # in the test extra; optional for users
    assert pint_xarray is not None
    ds = ctx.load("xarray", calibrated, sig_dims=("ky", "kx"))
    quantified = ctx.run_udf(dataset=ds, udf=SumSigUDF()).to_xarray().pint.quantify()
    assert str(quantified["y"].data.units) == "nanometer"


def test_udf_parameters_in_attrs_and_named_extra_dims(ctx, calibrated):
    from dataflow.udf import UDF

    class Pairs(UDF):
        def get_result_buffers(self):
            return {"p": self.buffer(kind="nav", extra_shape=(2,), extra_dims=("component",))}

        def process_frame(self, frame):
            self.results.p[:] = (frame.min(), frame.max())

    ds = ctx.load("xarray", calibrated, sig_dims=("ky", "kx"))
    out = ctx.run_udf(dataset=ds, udf=SumUDF(dtype="float64")).to_xarray()
    assert out.attrs["udf"] == "SumUDF"
    assert out.attrs["udf_params"] == '{"dtype": "float64"}'
    pairs = ctx.run_udf(dataset=ds, udf=Pairs()).to_xarray()
    assert pairs["p"].dims == ("y", "x", "component")


def test_results_of_results_do_not_inherit_stale_result_attrs(ctx, calibrated):
    first = ctx.run_udf(
        dataset=ctx.load("xarray", calibrated, sig_dims=("ky", "kx")), udf=SumSigUDF(), lazy=True
    )["intensity"]
    assert first.attrs["kind"] == "nav"
    nxt = ctx.load("xarray", first.expand_dims(k=2, axis=-1), sig_dims="k")
    second = ctx.run_udf(dataset=nxt, udf=SumUDF(), lazy=True)
    assert second["intensity"].attrs["kind"] == "sig"
    assert "kind" not in second.attrs
    assert second.attrs["udf"] == "SumUDF"
