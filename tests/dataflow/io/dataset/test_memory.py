"""LiberTEM's MemoryDataSet constructor and dataset helpers."""

from __future__ import annotations

import numpy as np
import pytest

from dataflow.io.dataset.memory import MemoryDataSet
from dataflow.udf import UDF
from dataflow.udf.sum import SumUDF


class TileSizes(UDF):
    def get_result_buffers(self):
        return {"n": self.buffer(kind="nav", dtype="int64")}

    def process_tile(self, tile):
        self.results.n[:] = len(tile)


def test_memory_dataset_like_libertem_tests(ctx):
    data = np.random.default_rng(0).random((16, 16, 8, 8), dtype=np.float32)
    ds = MemoryDataSet(data=data, tileshape=(4, 8, 8), num_partitions=2, sig_dims=2)
    assert ds.get_num_partitions() == 2
    res = ctx.run_udf(dataset=ds, udf=[SumUDF(), TileSizes()])
    np.testing.assert_allclose(res[0]["intensity"].data, data.sum(axis=(0, 1)), rtol=1e-5)
    assert set(res[1]["n"].raw_data) == {4}  # tileshape forces 4 frames per tile
    assert ds.data is data  # LiberTEM tests read the array back


def test_memory_dataset_made_from_a_shape_exposes_its_random_data(ctx):
    ds = MemoryDataSet(datashape=(4, 4, 2, 2), num_partitions=2)
    res = ctx.run_udf(dataset=ds, udf=SumUDF())
    np.testing.assert_allclose(res["intensity"].data, ds.data.sum(axis=(0, 1)), rtol=1e-5)


def test_memory_dataset_defaults_and_random_data(ctx):
    ds = MemoryDataSet(datashape=(4, 4, 2, 2))
    assert ds.shape == (4, 4, 2, 2)
    assert ds.dtype == np.float32
    assert 1 <= ds.get_num_partitions() <= 16
    with pytest.raises(TypeError, match="needs data="):
        MemoryDataSet()


def test_tiledelay_slows_tiles(ctx):
    import time

    ds = MemoryDataSet(
        data=np.zeros((2, 2, 2, 2)), tileshape=(1, 2, 2), tiledelay=0.01, num_partitions=1
    )
    t0 = time.perf_counter()
    ctx.run_udf(dataset=ds, udf=TileSizes())
    assert time.perf_counter() - t0 >= 4 * 0.01


def test_roi_helper_and_meta(ctx):
    ds = ctx.load("memory", data=np.zeros((4, 5, 2, 2), "uint16"))
    mask = ds.roi[1:3, 0]
    assert mask.shape == (4, 5)
    assert mask.sum() == 2
    assert mask[1, 0]
    assert mask[2, 0]
    meta = ds.meta
    assert meta.shape == (4, 5, 2, 2)
    assert meta.dtype == np.uint16
    assert meta.image_count == 20
