"""AutoUDF: buffers from a function of one frame, against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from dataflow.udf.auto import AutoUDF


def _frames(data, roi):
    frames = data.reshape((-1, *data.shape[-2:]))
    return frames if roi is None else frames[roi.reshape(-1)]


def _column_sums(frame):
    return frame.sum(axis=0)


@pytest.mark.parametrize("dtype", ["float32", "uint16", "int32"])
@pytest.mark.parametrize("num_partitions", [1, 3, 7])
@pytest.mark.parametrize("roi_kind", [None, "random"])
def test_auto_matches_numpy(ctx, data_factory, rng, dtype, num_partitions, roi_kind):
    data = data_factory((6, 7, 5, 4), dtype)
    roi = None if roi_kind is None else rng.random((6, 7)) < 0.5
    ds = ctx.load("memory", data=data, num_partitions=num_partitions)
    res = ctx.run_udf(dataset=ds, udf=AutoUDF(f=_column_sums), roi=roi)
    assert list(res) == ["result"]
    result = res["result"]
    input_dtype = np.result_type(data.dtype, np.float32)  # float32 or float64
    expected = _frames(data, roi).astype(input_dtype).sum(axis=1)
    assert result.kind == "nav"
    assert result.extra_shape == (4,)
    assert result.dtype == input_dtype
    np.testing.assert_allclose(result.raw_data, expected, rtol=1e-6)
    if roi is None:
        np.testing.assert_allclose(result.data, expected.reshape(6, 7, 4), rtol=1e-6)
    else:
        assert np.isnan(result.data[~roi]).all()
        np.testing.assert_allclose(result.data[roi], expected, rtol=1e-6)


@pytest.mark.parametrize(
    ("f", "extra_shape", "dtype"),
    [
        (lambda frame: frame.max(), (), "float32"),
        (lambda frame: float(frame.max()), (), "float64"),
        (lambda frame: np.count_nonzero(frame > 0), (), "int64"),
        (lambda frame: frame[:2, :3] > 0, (2, 3), "bool"),
        (lambda frame: np.stack([frame.min(axis=1), frame.max(axis=1)]), (2, 5), "float32"),
    ],
)
def test_auto_buffer_follows_the_mock_frame_output(ctx, data_factory, f, extra_shape, dtype):
    data = data_factory((4, 5, 5, 4), "uint16")
    ds = ctx.load("memory", data=data, num_partitions=3)
    result = ctx.run_udf(dataset=ds, udf=AutoUDF(f=f))["result"]
    assert result.extra_shape == extra_shape
    assert result.dtype == dtype
    assert result.data.shape == (4, 5, *extra_shape)
    frames = data.reshape(-1, 5, 4).astype(np.float32)
    expected = np.stack([np.asarray(f(frame)) for frame in frames])
    np.testing.assert_array_equal(result.raw_data, expected)


def test_f_is_called_on_the_client_with_a_mock_frame(ctx, data_factory):
    calls = []

    def f(frame):
        calls.append((frame.shape, frame.dtype, bool((frame == 1).all())))
        return frame.sum()

    ds = ctx.load("memory", data=data_factory((2, 3, 4, 5), "int32"), num_partitions=2)
    ctx.run_udf(dataset=ds, udf=AutoUDF(f=f))
    # first the mock frame, on the client (before any task); the inline context then
    # runs the tasks in this process too: six frames
    assert calls[0] == ((4, 5), np.dtype("float64"), True)
    assert [c for c in calls if not c[2]] == [((4, 5), np.dtype("float64"), False)] * 6


@pytest.mark.parametrize("roi_kind", [None, "random"])
def test_auto_monitor(ctx, data_factory, rng, roi_kind):
    data = data_factory((6, 7, 5, 4), "float32")
    roi = None if roi_kind is None else rng.random((6, 7)) < 0.5
    ds = ctx.load("memory", data=data, num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=AutoUDF(f=_column_sums, monitor=True), roi=roi)
    assert list(res) == ["result", "monitor"]
    monitor = res["monitor"]
    assert monitor.kind == "single"
    assert monitor.use == "result_only"
    assert monitor.extra_shape == (4,)
    assert monitor.dtype == np.float32
    np.testing.assert_allclose(monitor.data, _frames(data, roi)[-1].sum(axis=0), rtol=1e-6)


def test_auto_monitor_partial_results(ctx, data_factory):
    data = data_factory((6, 7, 5, 4), "float32")
    ds = ctx.load("memory", data=data, num_partitions=3)
    frames = data.reshape(-1, 5, 4)
    for partial in ctx.run_udf_iter(dataset=ds, udf=AutoUDF(f=_column_sums, monitor=True)):
        last = np.flatnonzero(partial.damage.data.reshape(-1))[-1]
        monitor = partial.buffers[0]["monitor"].data
        np.testing.assert_allclose(monitor, frames[last].sum(axis=0), rtol=1e-6)


def test_auto_monitor_with_nothing_selected(ctx, data_factory):
    data = data_factory((4, 5, 3, 2), "float32")
    ds = ctx.load("memory", data=data, num_partitions=2)
    udf = AutoUDF(f=lambda frame: frame.max(), monitor=True)
    res = ctx.run_udf(dataset=ds, udf=udf, roi=np.zeros((4, 5), bool))
    assert res["result"].raw_data.shape == (0,)
    np.testing.assert_array_equal(res["monitor"].data, np.zeros(1, np.float32))


def test_auto_on_threads(threads_ctx, data_factory, rng):
    data = data_factory((8, 8, 5, 4), "int32")
    roi = rng.random((8, 8)) < 0.5
    ds = threads_ctx.load("memory", data=data, num_partitions=7)
    res = threads_ctx.run_udf(dataset=ds, udf=AutoUDF(f=_column_sums), roi=roi)
    expected = _frames(data, roi).astype(np.float64).sum(axis=1)
    np.testing.assert_array_equal(res["result"].raw_data, expected)
