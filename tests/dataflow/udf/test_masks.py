"""ApplyMasksUDF against np.tensordot: dense and sparse masks, ROIs, partitions, shifts."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from dataflow.masks import circular, ring
from dataflow.udf.base import UDFMethod
from dataflow.udf.masks import ApplyMasksUDF

NAV, SIG = (6, 7), (10, 12)


@pytest.fixture
def scipy_sparse():
    return pytest.importorskip("scipy.sparse")


@pytest.fixture
def pydata_sparse():
    return pytest.importorskip("sparse")


def apply(data, masks):
    """The reference: every frame times every mask, summed over the signal axes."""
    return np.tensordot(data, masks, axes=((-2, -1), (-2, -1)))


def shift_mask(mask, dy, dx):
    """``mask`` moved ``dy`` rows down and ``dx`` columns right, zero where it had no pixel."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    for y in range(h):
        for x in range(w):
            if 0 <= y - dy < h and 0 <= x - dx < w:
                out[y, x] = mask[y - dy, x - dx]
    return out


def run(ctx, data, udf, roi=None, num_partitions=3):
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=num_partitions)
    return ctx.run_udf(dataset=ds, udf=udf, roi=roi)["intensity"]


def check_roi(result, expected, roi, **tol):
    """``result.data`` equals ``expected`` inside the ROI and is the fill value outside."""
    if roi is None:
        np.testing.assert_allclose(result.data, expected, **tol)
        return
    np.testing.assert_allclose(result.data[roi], expected[roi], **tol)
    np.testing.assert_allclose(result.raw_data, expected[roi], **tol)
    outside = result.data[~roi]
    if outside.dtype.kind in "fc":
        assert np.isnan(outside).all()


@pytest.mark.parametrize("dtype", ["float32", "uint16", "int32"])
@pytest.mark.parametrize("num_partitions", [1, 3, 7])
@pytest.mark.parametrize("with_roi", [False, True])
def test_matches_tensordot(ctx, data_factory, rng, dtype, num_partitions, with_roi):
    data = data_factory(NAV + SIG, dtype)
    masks = rng.standard_normal((3, *SIG)).astype(np.float32)
    roi = rng.random(NAV) < 0.6 if with_roi else None
    res = run(ctx, data, ApplyMasksUDF(lambda: masks), roi, num_partitions)
    # input dtype: result_type(native, float32); the result: that and the masks' dtype
    dt = np.result_type(data.dtype, np.float32)
    assert res.dtype == dt
    assert res.data.shape == (*NAV, 3)
    expected = apply(data.astype(np.float64), masks.astype(np.float64))
    check_roi(res, expected, roi, rtol=1e-5, atol=1e-3)


def test_integer_input_and_masks_stay_exact(ctx, data_factory, rng):
    data = data_factory(NAV + SIG, "int32")
    masks = rng.integers(-3, 4, size=(4, *SIG)).astype(np.int64)
    res = run(ctx, data, ApplyMasksUDF(lambda: masks, preferred_dtype=np.int32))
    assert res.dtype == np.int64
    np.testing.assert_array_equal(res.data, apply(data.astype(np.int64), masks))


def test_64_masks(ctx, data_factory, rng):
    data = data_factory(NAV + SIG, "float32")
    masks = rng.random((64, *SIG))
    res = run(ctx, data, ApplyMasksUDF(lambda: masks), num_partitions=4)
    assert res.data.shape == (*NAV, 64)
    assert res.dtype == np.float64  # float64 masks make a float64 result
    np.testing.assert_allclose(
        res.data, apply(data.astype(np.float64), masks), rtol=1e-12, atol=1e-10
    )


def test_a_stack_from_one_factory_equals_a_list_of_factories(ctx, data_factory):
    data = data_factory(NAV + SIG, "float32")
    stack = np.stack([circular(5, 4, 12, 10, 3), ring(6, 5, 12, 10, 5, 2), np.ones(SIG)])
    one = run(ctx, data, ApplyMasksUDF(lambda: stack))
    many = run(ctx, data, ApplyMasksUDF([lambda m=m: m for m in stack]))
    as_list = run(ctx, data, ApplyMasksUDF(lambda: list(stack)))
    np.testing.assert_array_equal(one.data, many.data)
    np.testing.assert_array_equal(one.data, as_list.data)
    np.testing.assert_allclose(one.data, apply(data.astype(np.float64), stack), rtol=1e-12)


@pytest.mark.parametrize(
    ("mask_dtype", "masks_dtype", "expected"),
    [
        (None, bool, np.float32),
        (None, np.float64, np.float64),
        (np.float32, np.float64, np.float32),
        (None, np.complex64, np.complex64),
    ],
)
def test_result_dtype(ctx, data_factory, rng, mask_dtype, masks_dtype, expected):
    data = data_factory(NAV + SIG, "float32")
    values = rng.random((2, *SIG))
    if masks_dtype is bool:
        masks = values > 0.5
    else:
        masks = (values * (1 - 2j if masks_dtype == np.complex64 else 1)).astype(masks_dtype)
    res = run(ctx, data, ApplyMasksUDF(lambda: masks, mask_dtype=mask_dtype))
    assert res.dtype == expected
    assert res.data.dtype == expected
    rounded = masks.astype(mask_dtype) if mask_dtype is not None else masks
    np.testing.assert_allclose(res.data, apply(data, rounded.astype(expected)), rtol=1e-5)


@pytest.mark.parametrize("density", [0.02, 0.3])  # few pixels are gathered, many multiplied
def test_sparse_equals_dense_scipy(ctx, data_factory, rng, scipy_sparse, density):
    data = data_factory(NAV + SIG, "float32")
    masks = rng.random((5, *SIG)) * (rng.random((5, *SIG)) < density)
    dense = run(ctx, data, ApplyMasksUDF(lambda: masks, use_sparse=False))
    np.testing.assert_allclose(dense.data, apply(data.astype(np.float64), masks), rtol=1e-12)
    for use_sparse in (True, "scipy.sparse", "scipy.sparse.csr", "scipy.sparse.csc"):
        res = run(ctx, data, ApplyMasksUDF(lambda: masks, use_sparse=use_sparse))
        np.testing.assert_allclose(res.data, dense.data, rtol=1e-12)
    # factories returning scipy.sparse matrices choose sparse processing themselves
    factories = [lambda m=m: scipy_sparse.csr_matrix(m) for m in masks]
    res = run(ctx, data, ApplyMasksUDF(factories), roi=rng.random(NAV) < 0.5)
    valid = ~np.isnan(res.data[..., 0])
    np.testing.assert_allclose(res.data[valid], dense.data[valid], rtol=1e-12)


@pytest.mark.parametrize("use_sparse", [None, "sparse.pydata", "sparse.pydata.GCXS"])
def test_sparse_equals_dense_pydata(ctx, data_factory, rng, pydata_sparse, use_sparse):
    data = data_factory(NAV + SIG, "float32")
    masks = rng.random((4, *SIG)) * (rng.random((4, *SIG)) < 0.3)
    expected = apply(data.astype(np.float64), masks)
    res = run(
        ctx, data, ApplyMasksUDF(lambda: pydata_sparse.COO.from_numpy(masks), use_sparse=use_sparse)
    )
    np.testing.assert_allclose(res.data, expected, rtol=1e-12)


@pytest.mark.parametrize("with_roi", [False, True])
@pytest.mark.parametrize("shift", [(2, -1), (0, 0), (-3, 5), (10, 0), (1.7, -0.6)])
def test_constant_shift(ctx, data_factory, rng, shift, with_roi):
    data = data_factory(NAV + SIG, "float32")
    masks = rng.random((2, *SIG))
    roi = rng.random(NAV) < 0.5 if with_roi else None
    udf = ApplyMasksUDF(lambda: masks, shifts=shift)
    assert udf.get_method() is UDFMethod.FRAME
    res = run(ctx, data, udf, roi)
    dy, dx = (int(s) for s in shift)  # float shifts are truncated
    moved = np.stack([shift_mask(m, dy, dx) for m in masks])
    check_roi(res, apply(data.astype(np.float64), moved), roi, rtol=1e-12, atol=1e-12)


def test_shift_moves_the_mask_down_and_right(ctx, data_factory):
    data = data_factory(NAV + SIG, "float32")
    mask = np.zeros(SIG)
    mask[3, 4] = 1
    res = run(ctx, data, ApplyMasksUDF([lambda: mask], shifts=(2, -1)))
    np.testing.assert_array_equal(res.data[..., 0], data[..., 5, 3])


@pytest.mark.parametrize("use_sparse", [False, "scipy.sparse", "sparse.pydata"])
@pytest.mark.parametrize("with_roi", [False, True])
def test_per_frame_shifts_as_aux_data(ctx, data_factory, rng, use_sparse, with_roi):
    if use_sparse == "sparse.pydata":
        pytest.importorskip("sparse")
    if use_sparse == "scipy.sparse":
        pytest.importorskip("scipy.sparse")
    data = data_factory(NAV + SIG, "float32")
    masks = rng.random((3, *SIG)) * (rng.random((3, *SIG)) < 0.5)
    shifts = rng.integers(-13, 14, size=(*NAV, 2))
    roi = rng.random(NAV) < 0.6 if with_roi else None
    aux = ApplyMasksUDF.aux_data(
        shifts.reshape(-1), kind="nav", extra_shape=(2,), dtype=shifts.dtype
    )
    res = run(ctx, data, ApplyMasksUDF(lambda: masks, shifts=aux, use_sparse=use_sparse), roi)
    expected = np.zeros((*NAV, 3))
    for idx in np.ndindex(NAV):
        moved = np.stack([shift_mask(m, *shifts[idx]) for m in masks])
        expected[idx] = apply(data[idx].astype(np.float64), moved)
    check_roi(res, expected, roi, rtol=1e-12, atol=1e-12)


def test_masks_are_made_once_per_partition_task(ctx, data_factory):
    calls = []

    def factory():
        calls.append(1)
        return np.ones((2, *SIG), dtype=np.float32)

    data = data_factory(NAV + SIG, "float32")
    udf = ApplyMasksUDF(factory, mask_count=2, mask_dtype=np.float32)
    run(ctx, data, udf, num_partitions=3)
    assert len(calls) == 3  # count and dtype given: none on the client
    calls.clear()
    run(ctx, data, ApplyMasksUDF(factory), num_partitions=3)
    assert len(calls) == 4  # and once on the client to learn them


def test_threads_agree_with_numpy(threads_ctx, data_factory, rng):
    data = data_factory((8, 8, *SIG), "float32")
    masks = rng.random((4, *SIG)).astype(np.float32)
    shifts = rng.integers(-4, 5, size=(8, 8, 2))
    aux = ApplyMasksUDF.aux_data(
        shifts.reshape(-1), kind="nav", extra_shape=(2,), dtype=shifts.dtype
    )
    plain = run(threads_ctx, data, ApplyMasksUDF(lambda: masks), num_partitions=4)
    expected = apply(data, masks)
    # float32 sums of signed values: results near zero are cancellations, so the
    # tolerance is relative to the largest result, not to each one
    np.testing.assert_allclose(plain.data, expected, rtol=1e-5, atol=1e-5 * abs(expected).max())
    shifted = run(threads_ctx, data, ApplyMasksUDF(lambda: masks, shifts=aux), num_partitions=4)
    for idx in [(0, 0), (3, 5), (7, 7)]:
        moved = np.stack([shift_mask(m, *shifts[idx]) for m in masks])
        np.testing.assert_allclose(shifted.data[idx], apply(data[idx], moved), rtol=1e-5)


def test_values_computed_with_libertem(ctx):
    # regression numbers from LiberTEM 0.16.0's ApplyMasksUDF, computed by hand on the
    # same deterministic data, masks and per-frame shifts
    i = np.arange(5 * 6 * 10 * 8)
    data = (1 + (i * 7919) % 23).astype(np.float32).reshape(5, 6, 10, 8)

    def masks():
        return np.stack([circular(3.6, 4.3, 8, 10, 3, antialiased=True), ring(4, 5, 8, 10, 4, 2)])

    shifts = np.arange(60).reshape(30, 2) % 7 - 3
    aux = ApplyMasksUDF.aux_data(shifts, kind="nav", extra_shape=(2,), dtype=shifts.dtype)
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=2)
    res = ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(masks, shifts=aux))["intensity"].data
    np.testing.assert_allclose(res[1, 2], [342.978542232244, 418.0], rtol=1e-12)
    np.testing.assert_allclose(res[4, 5], [333.72734999611873, 410.0], rtol=1e-12)
    moved = np.stack([shift_mask(m, *shifts[8]) for m in masks()])  # frame (1, 2)
    np.testing.assert_allclose(res[1, 2], apply(data[1, 2].astype(np.float64), moved), rtol=1e-12)


# errors, raised before any data is read ------------------------------------------------------


def test_errors_name_what_was_given(ctx, data_factory):
    data = data_factory(NAV + SIG, "float32")
    with pytest.raises(TypeError, match="mask_factories is a ndarray"):
        ApplyMasksUDF(np.ones(SIG))
    with pytest.raises(TypeError, match=r"mask_factories\[1\] is a ndarray"):
        ApplyMasksUDF([lambda: np.ones(SIG), np.ones(SIG)])
    with pytest.raises(ValueError, match="mask_factories is empty"):
        ApplyMasksUDF([])
    with pytest.raises(ValueError, match="use_sparse is 'csr'"):
        ApplyMasksUDF(lambda: np.ones((1, *SIG)), use_sparse="csr")
    with pytest.raises(ValueError, match=r"shape \(3, 4\); the dataset's frames have shape"):
        run(ctx, data, ApplyMasksUDF(lambda: np.ones((2, 3, 4))))
    with pytest.raises(ValueError, match=r"mask\[np.newaxis\]"):
        run(ctx, data, ApplyMasksUDF(lambda: np.ones(12)))
    with pytest.raises(ValueError, match=r"shifts has shape \(3,\); expected \(2,\)"):
        run(ctx, data, ApplyMasksUDF(lambda: np.ones((1, *SIG)), shifts=(1, 2, 3)))
    with pytest.raises(ValueError, match="returned 1 masks; mask_count is 2"):
        run(ctx, data, ApplyMasksUDF(lambda: np.ones((1, *SIG)), mask_count=2, mask_dtype="f4"))


def test_missing_sparse_package_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "sparse" else real(name, *a)
    )
    monkeypatch.setitem(sys.modules, "sparse", None)
    with pytest.raises(ImportError, match=r"pip install 'dataflow-udf\[sparse\]'"):
        ApplyMasksUDF(lambda: np.ones((1, *SIG)), use_sparse="sparse.pydata")


def test_pickled_udf_carries_no_masks(ctx):
    import cloudpickle

    udf = ApplyMasksUDF(lambda: np.ones((64, 100, 100)))
    ds = ctx.load("memory", data=np.zeros((2, 2, 100, 100), dtype=np.float32), sig_dims=2)
    ctx.run_udf(dataset=ds, udf=udf)  # computes the masks on the client
    assert len(cloudpickle.dumps(udf)) < 100_000  # the masks alone are 5 MB
