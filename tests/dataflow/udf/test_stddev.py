"""StdDevUDF against NumPy: values, dtypes, stability, empty selections, merge orders."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from dataflow.buffers import UDFData
from dataflow.udf.stddev import StdDevUDF, consolidate_result, run_stddev

SIG_AXES = (-2, -1)


class ChainStdDevUDF(StdDevUDF):
    """The same UDF, merged in a chain in partition order instead of a tree."""

    MERGE_TREE = False


def _selected(data, roi):
    frames = data.reshape((-1, *data.shape[-2:]))
    return frames if roi is None else frames[roi.reshape(-1)]


#: how close the default computation (deviations in float32 for float32 and 16-bit
#: data) comes to float64, relative to the magnitudes summed
FLOAT32_RTOL = 2e-6


def _check_against_numpy(res, sel, rtol):
    ref = sel.astype(np.result_type(sel.dtype, np.float64))
    assert int(res["num_frames"].data[0]) == len(sel)
    # sums of mixed signs: errors scale with the sum of magnitudes
    scale = np.abs(ref).sum(axis=0).max()
    atol = max(1e-12, rtol * scale)
    np.testing.assert_allclose(res["sum"].data, ref.sum(axis=0), rtol=rtol, atol=atol)
    np.testing.assert_allclose(res["mean"].data, ref.mean(axis=0), rtol=rtol, atol=atol / len(sel))
    np.testing.assert_allclose(res["var"].data, ref.var(axis=0), rtol=rtol)
    np.testing.assert_allclose(res["std"].data, ref.std(axis=0), rtol=rtol)
    np.testing.assert_allclose(res["varsum"].data, ref.var(axis=0) * len(sel), rtol=rtol)


@pytest.mark.parametrize(
    ("dtype", "udf_dtype", "rtol"),
    [
        ("float32", None, FLOAT32_RTOL),
        ("uint16", None, FLOAT32_RTOL),
        ("int32", None, 1e-10),  # not exact in float32: computed in float64
        ("float64", None, 1e-10),
        ("float32", np.float64, 1e-10),  # asked for: float64 throughout
        ("uint16", np.float64, 1e-10),
    ],
)
@pytest.mark.parametrize("num_partitions", [1, 3, 7])
@pytest.mark.parametrize("roi_kind", [None, "random"])
def test_stddev_matches_numpy(
    ctx, data_factory, rng, dtype, udf_dtype, rtol, num_partitions, roi_kind
):
    data = data_factory((6, 7, 5, 4), dtype)
    roi = None if roi_kind is None else rng.random((6, 7)) < 0.5
    ds = ctx.load("memory", data=data, num_partitions=num_partitions)
    res = ctx.run_udf(dataset=ds, udf=StdDevUDF(dtype=udf_dtype), roi=roi)
    _check_against_numpy(res, _selected(data, roi), rtol=rtol)


@pytest.mark.parametrize("dtype", ["float32", "uint16"])
def test_stddev_on_deep_tiles_of_large_frames(ctx, data_factory, dtype):
    # chunks of 16 frames inside a tile, the last one short; tiles of many chunks
    data = data_factory((7, 9, 32, 48), dtype)
    ds = ctx.load("memory", data=data, num_partitions=2)
    res = ctx.run_udf(dataset=ds, udf=StdDevUDF())
    _check_against_numpy(res, _selected(data, None), rtol=FLOAT32_RTOL)
    exact = ctx.run_udf(dataset=ds, udf=StdDevUDF(dtype="float64"))
    _check_against_numpy(exact, _selected(data, None), rtol=1e-10)


@pytest.mark.parametrize(
    ("dtype", "udf_dtype", "expected"),
    [
        # (varsum, var, std) dtype, then (sum, mean) dtype: LiberTEM 0.16's declarations
        ("float32", None, ("float64", "float64")),
        ("uint16", None, ("float64", "float64")),
        ("int32", None, ("float64", "float64")),
        ("float32", "float32", ("float32", "float32")),
        ("uint16", "float32", ("float32", "float32")),
        ("int32", "float32", ("float32", "float64")),
        ("complex64", None, ("float64", "complex128")),
        ("complex64", "float32", ("float32", "complex64")),
    ],
)
def test_stddev_dtypes(ctx, data_factory, dtype, udf_dtype, expected):
    data = data_factory((4, 5, 3, 2), dtype)
    ds = ctx.load("memory", data=data, num_partitions=2)
    res = ctx.run_udf(dataset=ds, udf=StdDevUDF(dtype=udf_dtype))
    base, full = expected
    assert res["num_frames"].dtype == np.int64
    assert res["num_frames"].kind == "single"
    for name in ("varsum", "var", "std"):
        assert res[name].dtype == base, name
        assert res[name].data.dtype == base, name
    for name in ("sum", "mean"):
        assert res[name].dtype == full, name
        assert res[name].data.dtype == full, name
    assert {n: r.use for n, r in res.items()} == {
        "varsum": None,
        "num_frames": None,
        "sum": None,
        "var": "result_only",
        "std": "result_only",
        "mean": "result_only",
    }


def test_stddev_complex(ctx, data_factory):
    data = data_factory((5, 6, 3, 4), "complex64")
    ds = ctx.load("memory", data=data, num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=StdDevUDF())
    ref = data.astype(np.complex128).reshape(-1, 3, 4)
    np.testing.assert_allclose(res["mean"].data, ref.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(res["var"].data, ref.var(axis=0), rtol=1e-10)


@pytest.mark.parametrize("dtype", ["float32", "float64", "uint16"])
@pytest.mark.parametrize("num_partitions", [1, 7])
def test_stddev_is_stable_for_a_large_mean(ctx, rng, dtype, num_partitions):
    noise = rng.standard_normal((16, 16, 6, 5))
    if dtype == "uint16":
        data = (10_000 + np.round(noise)).astype(dtype)
    else:
        data = (10_000 + noise).astype(dtype)
    ds = ctx.load("memory", data=data, num_partitions=num_partitions, tileshape=(3, 6, 5))
    res = ctx.run_udf(dataset=ds, udf=StdDevUDF())
    ref = data.astype(np.float64).reshape(-1, 6, 5)
    assert res["var"].dtype == np.float64
    # the reference is two-pass in float64; a one-pass sum of squares would lose
    # about eight digits here (mean**2 / var ~ 1e8)
    np.testing.assert_allclose(res["var"].data, ref.var(axis=0), rtol=1e-6)
    np.testing.assert_allclose(res["mean"].data, ref.mean(axis=0), rtol=1e-12)


def test_stddev_all_false_roi(ctx, data_factory):
    data = data_factory((4, 5, 3, 2), "float32")
    ds = ctx.load("memory", data=data, num_partitions=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division warnings
        res = ctx.run_udf(dataset=ds, udf=StdDevUDF(), roi=np.zeros((4, 5), bool))
    assert res["num_frames"].data[0] == 0
    np.testing.assert_array_equal(res["sum"].data, 0)
    np.testing.assert_array_equal(res["varsum"].data, 0)
    for name in ("var", "std", "mean"):
        assert res[name].data.shape == (3, 2)
        assert np.isnan(res[name].data).all(), name


def test_stddev_single_frame_roi(ctx, data_factory):
    data = data_factory((4, 5, 3, 2), "float32")
    ds = ctx.load("memory", data=data, num_partitions=3)
    roi = np.zeros((4, 5), bool)
    roi[2, 3] = True
    res = ctx.run_udf(dataset=ds, udf=StdDevUDF(), roi=roi)
    np.testing.assert_array_equal(res["var"].data, 0)
    np.testing.assert_allclose(res["mean"].data, data[2, 3], rtol=1e-7)


@pytest.mark.parametrize("split_every", [2, 3, 8])
def test_stddev_tree_and_chain_agree_on_64_partitions(ctx, data_factory, rng, split_every):
    data = data_factory((8, 8, 5, 4), "float32") + np.float32(100)
    ds = ctx.load("memory", data=data, num_partitions=64)
    assert ds.get_num_partitions() == 64
    for roi in (None, rng.random((8, 8)) < 0.7):
        tree = ctx.run_udf(dataset=ds, udf=StdDevUDF(), roi=roi, split_every=split_every)
        chain = ctx.run_udf(dataset=ds, udf=ChainStdDevUDF(), roi=roi, split_every=split_every)
        for name in ("num_frames", "sum", "varsum", "var", "std", "mean"):
            np.testing.assert_allclose(tree[name].data, chain[name].data, rtol=1e-12)
        _check_against_numpy(tree, _selected(data, roi), rtol=FLOAT32_RTOL)


def _moments(frames):
    n = len(frames)
    s = frames.sum(axis=0)
    varsum = ((frames - frames.mean(axis=0)) ** 2).sum(axis=0) if n else np.zeros_like(s)
    return UDFData({"num_frames": np.array([n]), "sum": s, "varsum": varsum})


@pytest.mark.parametrize(
    ("n_dest", "n_src"), [(17, 23), (1, 40), (40, 1), (0, 12), (12, 0), (0, 0)]
)
def test_merge_of_several_partitions_each(data_factory, n_dest, n_src):
    # dest and src may each hold the moments of several partitions (tree nodes), or
    # none (an accumulator before its first merge, an empty selection)
    frames = data_factory((n_dest + n_src, 3, 2), "float64") * 3 + 1e4
    dest = _moments(frames[:n_dest])
    src = _moments(frames[n_dest:])
    StdDevUDF().merge(dest, src)
    expected = _moments(frames)
    assert dest.num_frames[0] == n_dest + n_src
    np.testing.assert_allclose(dest.sum, expected.sum, rtol=1e-13)
    np.testing.assert_allclose(dest.varsum, expected.varsum, rtol=1e-9, atol=1e-9)


def test_run_stddev_and_consolidate_result(ctx, data_factory, rng):
    data = data_factory((6, 7, 5, 4), "uint16")
    roi = rng.random((6, 7)) < 0.5
    ds = ctx.load("memory", data=data, num_partitions=3)
    stats = run_stddev(ctx, ds, roi=roi, progress=True, use_numba=False)
    assert set(stats) == {"num_frames", "varsum", "sum", "var", "std", "mean"}
    assert int(stats["num_frames"]) == int(roi.sum())
    ref = data[roi].astype(np.float64)
    np.testing.assert_allclose(stats["std"], ref.std(axis=0), rtol=FLOAT32_RTOL)
    res = ctx.run_udf(dataset=ds, udf=StdDevUDF(), roi=roi)
    again = consolidate_result(res)
    assert all(isinstance(v, np.ndarray) for k, v in again.items() if k != "num_frames")
    np.testing.assert_array_equal(again["var"], stats["var"])


def test_stddev_on_threads(threads_ctx, data_factory, rng):
    data = data_factory((8, 8, 5, 4), "float32")
    roi = rng.random((8, 8)) < 0.5
    ds = threads_ctx.load("memory", data=data, num_partitions=7)
    res = threads_ctx.run_udf(dataset=ds, udf=StdDevUDF(), roi=roi)
    _check_against_numpy(res, _selected(data, roi), rtol=FLOAT32_RTOL)
