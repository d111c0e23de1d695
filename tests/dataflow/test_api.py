"""Context conveniences: map, export_dataset, make_dask_array, load('auto')."""

from __future__ import annotations

import numpy as np
import pytest

from dataflow.contrib.daskadapter import make_dask_array
from dataflow.udf import AutoUDF


@pytest.fixture
def data(rng):
    return rng.random((4, 5, 6, 6), dtype=np.float32)


def test_map_runs_an_auto_udf(ctx, data):
    ds = ctx.load("memory", data=data, num_partitions=3)
    res = ctx.map(dataset=ds, f=lambda frame: frame.max(axis=0))
    assert res.data.shape == (4, 5, 6)
    np.testing.assert_array_equal(res.data, data.max(axis=2))
    roi = np.zeros((4, 5), bool)
    roi[2, 3] = True
    res = ctx.map(dataset=ds, f=np.sum, roi=roi)
    assert np.isnan(res.data[~roi]).all()
    assert res.data[2, 3] == pytest.approx(data[2, 3].sum(), rel=1e-5)
    assert isinstance(AutoUDF(f=np.sum), AutoUDF)


@pytest.mark.parametrize("name", ["out.npy", "out.zarr"])
def test_export_dataset(ctx, data, tmp_path, name):
    ds = ctx.load("memory", data=data, num_partitions=3)
    path = tmp_path / name
    ctx.export_dataset(ds, path=path)
    back = ctx.load("auto", path=path)
    np.testing.assert_array_equal(back.array.compute(), data)
    with pytest.raises(FileExistsError, match=name):
        ctx.export_dataset(ds, path=path)


def test_make_dask_array(ctx, data):
    ds = ctx.load("memory", data=data, num_partitions=3)
    arr, workers = make_dask_array(ds, dtype="float64")
    assert arr.dtype == np.float64
    assert workers == {}
    np.testing.assert_array_equal(arr.compute(), data)
    roi = np.zeros((4, 5), bool)
    roi[0, 1] = roi[3, 4] = True
    arr, _ = make_dask_array(ds, roi=roi)
    np.testing.assert_array_equal(arr.compute(), data[roi])
    with pytest.raises(ValueError, match="array_backend is 'cupy'"):
        make_dask_array(ds, array_backend="cupy")


@pytest.mark.parametrize(("argument", "value"), [("progress", True), ("plots", True)])
def test_delayed_executor_warns_that_progress_and_plots_have_no_effect(data, argument, value):
    from dataflow import Context
    from dataflow.errors import DataflowWarning
    from dataflow.udf.sum import SumUDF

    with Context.make_with("delayed") as ctx:
        ds = ctx.load("memory", data=data, num_partitions=2)
        with pytest.warns(DataflowWarning, match=f"{argument}=True has no effect") as record:
            res = ctx.run_udf(dataset=ds, udf=SumUDF(), **{argument: value})
        assert record[0].filename == __file__  # stacklevel: the caller's line
        np.testing.assert_allclose(res["intensity"].data, data.sum(axis=(0, 1)), rtol=1e-5)
