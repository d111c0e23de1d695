"""SumUDF against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from dataflow.udf.base import UDF
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


class TileDtype(UDF):
    """Records the dtype of the tiles it is given; asks for the native dtype."""

    def get_preferred_input_dtype(self):
        return self.USE_NATIVE_DTYPE

    def get_result_buffers(self):
        return {"kinds": self.buffer(kind="nav", dtype="U8")}

    def process_tile(self, tile):
        self.results.kinds[:] = tile.dtype.str


def test_sum_reads_native_tiles_and_sums_in_the_wider_dtype(ctx, data_factory):
    data = data_factory((5, 6, 64, 64), "uint16")
    ds = ctx.load("memory", data=data, num_partitions=2)
    probe = TileDtype()
    res, seen = ctx.run_udf(dataset=ds, udf=[SumUDF(), probe])
    # nothing asks for float32, so every UDF of the run gets the native tiles
    assert set(seen["kinds"].data.ravel()) == {np.dtype("uint16").str}
    assert res["intensity"].dtype == np.float32
    np.testing.assert_array_equal(res["intensity"].data, data.sum(axis=(0, 1), dtype="float64"))
    # with a UDF that prefers float32 (the default), all get float32, as in LiberTEM
    _, seen, _ = ctx.run_udf(dataset=ds, udf=[SumUDF(), TileDtype(), NoOpFloat()])
    assert set(seen["kinds"].data.ravel()) == {np.dtype("float32").str}


class NoOpFloat(UDF):
    def get_result_buffers(self):
        return {}

    def process_tile(self, tile):
        pass


class SquaredSum(SumUDF):
    """A subclass whose process_tile relies on LiberTEM's float32 tiles."""

    def process_tile(self, tile):
        self.results.intensity[:] += np.sum(tile**2, axis=0)


def test_sum_subclass_with_its_own_process_tile_gets_converted_tiles(ctx, data_factory):
    data = data_factory((4, 5, 6, 7), "uint16")  # values up to 999: squares overflow uint16
    ds = ctx.load("memory", data=data, num_partitions=2)
    res = ctx.run_udf(dataset=ds, udf=SquaredSum())["intensity"]
    assert res.dtype == np.float32
    expected = (data.astype(np.float64) ** 2).sum(axis=(0, 1))
    np.testing.assert_allclose(res.data, expected, rtol=1e-6)


@pytest.mark.parametrize(
    ("dtype", "udf_dtype", "expected"),
    [
        ("uint16", "float32", "float32"),
        ("uint8", "float32", "float32"),
        ("int32", "float32", "float64"),
        ("float64", "float32", "float64"),
        ("float32", "float64", "float64"),
        ("complex64", "float32", "complex64"),
    ],
)
def test_sum_dtypes_are_libertems(ctx, data_factory, dtype, udf_dtype, expected):
    data = data_factory((3, 4, 5, 6), dtype)
    ds = ctx.load("memory", data=data, num_partitions=2)
    res = ctx.run_udf(dataset=ds, udf=SumUDF(dtype=udf_dtype))["intensity"]
    assert res.dtype == expected
    np.testing.assert_allclose(res.data, data.sum(axis=(0, 1)), rtol=1e-6, atol=1e-4)
