"""RecordUDF: the frames written to a .npy file, as LiberTEM writes them."""

from __future__ import annotations

import pickle

import cloudpickle
import numpy as np
import pytest

from dataflow.errors import RoiError
from dataflow.udf.record import RecordUDF


@pytest.mark.parametrize("dtype", ["float32", "uint16", "int32", "complex64"])
@pytest.mark.parametrize("num_partitions", [1, 3, 7])
def test_record_writes_the_frames(ctx, data_factory, tmp_path, dtype, num_partitions):
    data = data_factory((6, 7, 5, 4), dtype)
    ds = ctx.load("memory", data=data, num_partitions=num_partitions)
    path = tmp_path / "out.npy"
    assert ctx.run_udf(dataset=ds, udf=RecordUDF(path)) == {}
    written = np.load(path)
    assert written.dtype == data.dtype  # native, not float32
    np.testing.assert_array_equal(written, data)


def test_record_with_small_tiles(ctx, data_factory, tmp_path):
    data = data_factory((5, 6, 3, 4), "uint16")
    ds = ctx.load("memory", data=data, num_partitions=3, tileshape=(4, 3, 4))
    ctx.run_udf(dataset=ds, udf=RecordUDF(str(tmp_path / "out.npy")))
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), data)


def test_record_bakes_in_reshaping_and_sync_offset(ctx, data_factory, tmp_path):
    data = data_factory((4, 6, 3, 4), "int32")
    ds = ctx.load("memory", data=data, nav_shape=(5, 5), sync_offset=3, num_partitions=3)
    ctx.run_udf(dataset=ds, udf=RecordUDF(tmp_path / "out.npy"))
    expected = np.zeros((25, 3, 4), dtype="int32")
    expected[:21] = data.reshape(24, 3, 4)[3:]
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected.reshape(5, 5, 3, 4))


def test_record_overwrites_an_existing_file(ctx, data_factory, tmp_path):
    path = tmp_path / "out.npy"
    np.save(path, np.arange(10))
    data = data_factory((3, 4, 2, 2), "float32")
    ctx.run_udf(dataset=ctx.load("memory", data=data), udf=RecordUDF(path))
    np.testing.assert_array_equal(np.load(path), data)


def test_record_rejects_a_roi_before_creating_the_file(ctx, data_factory, tmp_path):
    ds = ctx.load("memory", data=data_factory((3, 4, 2, 2)), num_partitions=2)
    path = tmp_path / "out.npy"
    with pytest.raises(RoiError, match=r"roi selecting 4 of 12 frames"):
        ctx.run_udf(dataset=ds, udf=RecordUDF(path), roi=ds.roi[0])
    assert not path.exists()


def test_only_the_users_instance_is_the_master(tmp_path):
    udf = RecordUDF(tmp_path / "out.npy")
    assert udf._is_master
    assert not udf.copy()._is_master
    assert not pickle.loads(cloudpickle.dumps(udf.copy()))._is_master
    assert udf.params._is_master is False


def test_record_needs_a_path():
    with pytest.raises(TypeError, match=r"filename is a int"):
        RecordUDF(3)


def test_record_on_threads(threads_ctx, data_factory, tmp_path):
    data = data_factory((8, 8, 5, 4), "uint16")
    ds = threads_ctx.load("memory", data=data, num_partitions=7)
    threads_ctx.run_udf(dataset=ds, udf=RecordUDF(tmp_path / "out.npy"))
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), data)
