"""Property tests: results do not depend on how the data is split, nor on where it is read from.

Hypothesis draws small datasets (nav 1-2 dims, sig 1-2 dims, under ~200 KB), partition
counts, ``split_every``, ROIs and ``sync_offset``. For the built-in UDFs and a custom UDF
with a custom ``merge``, the tree merge (as is) and the chain merge (a subclass with
``MERGE_TREE = False``) both equal NumPy; and every source (npy, raw, HDF5, zarr, dask)
gives the memory source's numbers exactly.

Semantics the NumPy references follow: dataset frame ``i`` is source frame
``i + sync_offset``; frames outside the source are not processed (they do not count in
``StdDevUDF``'s ``num_frames`` nor in a maximum), and their nav results hold 0 inside the
ROI. Positions outside the ROI hold NaN in ``.data``.

Tolerances: exact for integer data (every partial sum is an integer the accumulator holds
exactly) and for order-independent results (maximum, frame count, nav results computed
per frame); ``rtol=1e-5`` for float32 accumulations and ``1e-12`` for float64 ones, each
with an ``atol`` of the same factor times the sum of absolute terms (sums of signed data
can cancel to near zero, where no relative tolerance holds).

Set ``CI`` in the environment for the ``ci`` profile: derandomized, fewer examples.
"""

from __future__ import annotations

import math
import os
import tempfile

import dask.array as da
import h5py
import numcodecs
import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dataflow
from dataflow.udf import UDF
from dataflow.udf.logsum import LogsumUDF
from dataflow.udf.masks import ApplyMasksUDF
from dataflow.udf.stddev import StdDevUDF
from dataflow.udf.sum import SumUDF
from dataflow.udf.sumsigudf import SumSigUDF

settings.register_profile("ci", derandomize=True, max_examples=25, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


def _settings(n: int) -> settings:
    """``n`` examples, or the loaded profile's number if that is smaller."""
    return settings(
        max_examples=min(n, settings().max_examples),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


DTYPES = ["uint8", "uint16", "int32", "float32", "float64"]
MAX_BYTES = 200_000


@pytest.fixture(scope="module")
def pctx():
    """One inline context for the module (hypothesis reruns a test body many times)."""
    with dataflow.Context.make_with("inline") as c:
        yield c


# --------------------------------------------------------------------------------------
# strategies
# --------------------------------------------------------------------------------------


def make_array(seed: int, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Random data of ``dtype``; integer sums stay exact in a float32 accumulator."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "u":  # the whole range: 255 and 65535 included
        return rng.integers(0, np.iinfo(dt).max, size=shape, endpoint=True, dtype=dt)
    if dt.kind == "i":
        return rng.integers(-(2**20), 2**20, size=shape, dtype=dt)
    return rng.standard_normal(shape).astype(dt)


@st.composite
def shapes(draw):
    """(nav_shape, sig_shape), 1-2 dims each: at most 64 frames of 256 pixels.

    That is under MAX_BYTES for float64, and keeps integer sums exact in float32.
    """
    nav = tuple(draw(st.lists(st.integers(1, 8), min_size=1, max_size=2)))
    sig = tuple(draw(st.lists(st.integers(1, 16), min_size=1, max_size=2)))
    assert math.prod(nav) * math.prod(sig) * 8 < MAX_BYTES
    return nav, sig


@st.composite
def rois(draw, nav_shape: tuple[int, ...]):
    """None, or a boolean nav mask with at least one True."""
    if draw(st.booleans()):
        return None
    n = math.prod(nav_shape)
    flat = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    flat[draw(st.integers(0, n - 1))] = True
    return flat.reshape(nav_shape)


@st.composite
def cases(draw, dtypes=DTYPES, reshape: bool = False):
    """A dataset and a way to run over it: data, partitions, split_every, ROI, sync_offset.

    With ``reshape``, the dataset may ask for another nav shape, with fewer or more
    frames than stored (``nav_shape`` in ``make_layout``); ``case["nav_shape"]`` is then
    that shape, else None.
    """
    dtype = draw(st.sampled_from(dtypes))
    raw_nav, sig = draw(shapes())
    n_raw = math.prod(raw_nav)
    nav_shape = None
    if reshape and draw(st.booleans()):
        nav_shape = tuple(draw(st.lists(st.integers(1, 8), min_size=1, max_size=2)))
    nav = raw_nav if nav_shape is None else nav_shape
    n = math.prod(nav)
    return {
        "data": make_array(draw(st.integers(0, 2**32 - 1)), raw_nav + sig, dtype),
        "nav": nav,
        "sig": sig,
        "nav_shape": nav_shape,
        "num_partitions": draw(st.integers(1, n)),
        "split_every": draw(st.integers(2, 8)),
        "roi": draw(rois(nav)),
        # make_layout: -n_raw < sync_offset < n_raw
        "sync_offset": draw(st.integers(-(n_raw - 1), n_raw - 1)),
    }


# --------------------------------------------------------------------------------------
# NumPy references
# --------------------------------------------------------------------------------------


class Reference:
    """What a run over ``case`` selects: dataset frames, the ROI, the frames in the source."""

    def __init__(self, case):
        self.nav, self.sig = case["nav"], case["sig"]
        data = case["data"]
        n = math.prod(self.nav)
        frames = data.reshape(-1, *self.sig)
        so = case["sync_offset"]
        idx = np.arange(n) + so
        self.in_source = (idx >= 0) & (idx < len(frames))
        # dataset frames as float64, zeros where no source frame is
        self.padded = np.zeros((n, *self.sig), np.float64)
        self.padded[self.in_source] = frames[idx[self.in_source]]
        roi = case["roi"]
        self.roi = np.ones(n, bool) if roi is None else roi.reshape(-1)
        self.processed = self.roi & self.in_source
        self.frames = self.padded[self.processed]  # the frames a UDF sees

    def nav_result(self, per_frame: np.ndarray) -> np.ndarray:
        """``per_frame`` (one value, or row, per dataset frame): NaN outside the ROI."""
        out = np.where(self.roi.reshape(-1, *([1] * (per_frame.ndim - 1))), per_frame, np.nan)
        return out.reshape(*self.nav, *per_frame.shape[1:])


def tolerance(dtype) -> float:
    return 1e-5 if np.dtype(dtype) == np.float32 else 1e-12


def assert_matches(actual, expected, abs_terms, *, exact: bool, rtol: float):
    """``actual == expected``, exactly or within rtol (and rtol times the sum of |terms|)."""
    actual = np.asarray(actual)
    if exact:
        np.testing.assert_array_equal(actual, expected)
    else:
        np.testing.assert_allclose(
            actual, expected, rtol=rtol, atol=rtol * np.max(abs_terms, initial=1e-30)
        )


def run(ctx, case, udfs):
    ds = ctx.load(
        "memory",
        data=case["data"],
        sig_dims=len(case["sig"]),
        num_partitions=case["num_partitions"],
        sync_offset=case["sync_offset"],
    )
    return ctx.run_udf(dataset=ds, udf=udfs, roi=case["roi"], split_every=case["split_every"])


# --------------------------------------------------------------------------------------
# UDFs: each as is (tree merge) and as a subclass with MERGE_TREE = False (chain merge)
# --------------------------------------------------------------------------------------


class MaxUDF(UDF):
    """Maximum over frames: a sig buffer merged by a custom ``merge``."""

    def get_result_buffers(self):
        return {"max": self.buffer(kind="sig", dtype="float64")}

    def preprocess(self):
        self.results.max[:] = -np.inf

    def process_frame(self, frame):
        np.maximum(self.results.max, frame, out=self.results.max)

    def merge(self, dest, src):
        np.maximum(dest.max, src.max, out=dest.max)


class SumChain(SumUDF):
    MERGE_TREE = False


class SumSigChain(SumSigUDF):
    MERGE_TREE = False


class StdDevChain(StdDevUDF):
    MERGE_TREE = False


class MasksChain(ApplyMasksUDF):
    MERGE_TREE = False


class LogsumChain(LogsumUDF):
    MERGE_TREE = False


class MaxChain(MaxUDF):
    MERGE_TREE = False


def exact_int(data) -> bool:
    return data.dtype.kind in "iu"


# --------------------------------------------------------------------------------------
# tree merge == chain merge == NumPy
# --------------------------------------------------------------------------------------


@_settings(100)
@given(case=cases())
def test_sum_tree_chain_numpy(pctx, case):
    ref = Reference(case)
    tree, chain = run(pctx, case, [SumUDF(), SumChain()])
    data = case["data"]
    dtype = np.result_type(data.dtype, np.float32)
    expected = ref.frames.sum(axis=0)
    abs_terms = np.abs(ref.frames).sum(axis=0)
    for res in (tree, chain):
        assert res["intensity"].data.dtype == dtype
        assert_matches(
            res["intensity"].data,
            expected,
            abs_terms,
            exact=exact_int(data),
            rtol=tolerance(dtype),
        )
    assert_matches(
        tree["intensity"].data,
        chain["intensity"].data,
        abs_terms,
        exact=exact_int(data),
        rtol=tolerance(dtype),
    )


@_settings(100)
@given(case=cases())
def test_sumsig_tree_chain_numpy(pctx, case):
    ref = Reference(case)
    tree, chain = run(pctx, case, [SumSigUDF(), SumSigChain()])
    data = case["data"]
    dtype = np.result_type(data.dtype, np.float32)
    axes = tuple(range(1, 1 + len(ref.sig)))
    expected = ref.nav_result(ref.padded.sum(axis=axes))
    abs_terms = np.abs(ref.padded).sum(axis=axes)
    for res in (tree, chain):
        assert res["intensity"].data.shape == ref.nav
        # one value per frame, whatever the partitioning: tree and chain agree exactly
        np.testing.assert_array_equal(res["intensity"].data, tree["intensity"].data)
        assert_matches(
            res["intensity"].data,
            expected,
            abs_terms,
            exact=exact_int(data),
            rtol=tolerance(dtype),
        )


@_settings(100)
@given(case=cases())
def test_stddev_tree_chain_numpy(pctx, case):
    ref = Reference(case)
    tree, chain = run(pctx, case, [StdDevUDF(), StdDevChain()])
    data = case["data"]
    frames = ref.frames
    n = len(frames)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = frames.sum(axis=0) / n
        var = ((frames - mean) ** 2).sum(axis=0) / n
    # float32 and 8- or 16-bit data are shifted and squared in float32 (stddev.py)
    rtol = 1e-5 if data.dtype.itemsize <= 2 or data.dtype == np.float32 else 1e-12
    sq_terms = (frames**2).sum(axis=0)
    abs_terms = np.abs(frames).sum(axis=0)
    for res in (tree, chain):
        assert int(res["num_frames"].data[0]) == n
        assert_matches(res["mean"].data, mean, abs_terms / max(n, 1), exact=False, rtol=rtol)
        assert_matches(res["var"].data, var, sq_terms / max(n, 1), exact=False, rtol=rtol)
        # sqrt: an absolute error e in var is up to sqrt(e) in std
        np.testing.assert_allclose(
            res["std"].data,
            np.sqrt(var),
            rtol=rtol,
            atol=math.sqrt(rtol * np.max(sq_terms / max(n, 1), initial=1e-30)),
        )
    for key in ("mean", "var"):
        np.testing.assert_allclose(
            tree[key].data, chain[key].data, rtol=rtol, atol=rtol * np.max(sq_terms, initial=0)
        )


@st.composite
def mask_cases(draw):
    case = draw(cases())
    count = draw(st.integers(1, 2))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    # 0/1 masks: integer data keeps integer, exactly representable, dot products
    case["masks"] = [rng.integers(0, 2, size=case["sig"]).astype(np.float32) for _ in range(count)]
    return case


def _factories(masks):
    return [lambda m=m: m for m in masks]


@_settings(100)
@given(case=mask_cases())
def test_masks_tree_chain_numpy(pctx, case):
    ref = Reference(case)
    masks = case["masks"]
    tree, chain = run(pctx, case, [ApplyMasksUDF(_factories(masks)), MasksChain(_factories(masks))])
    data = case["data"]
    dtype = np.result_type(data.dtype, np.float32)
    stack = np.stack(masks).reshape(len(masks), -1).astype(np.float64)
    flat = ref.padded.reshape(len(ref.padded), -1)
    expected = ref.nav_result(flat @ stack.T)
    abs_terms = np.abs(flat) @ np.abs(stack.T)
    for res in (tree, chain):
        assert res["intensity"].data.shape == (*ref.nav, len(masks))
        np.testing.assert_array_equal(res["intensity"].data, tree["intensity"].data)
        assert_matches(
            res["intensity"].data,
            expected,
            abs_terms,
            exact=exact_int(data),
            rtol=tolerance(dtype),
        )


@_settings(100)
@given(case=cases())
def test_logsum_tree_chain_numpy(pctx, case):
    ref = Reference(case)
    tree, chain = run(pctx, case, [LogsumUDF(), LogsumChain()])
    frames = ref.frames
    axes = tuple(range(1, 1 + len(ref.sig)))
    # LiberTEM computes in float32 (the default input dtype): no wrap-around of uint8 + 1
    logs = np.log(frames - frames.min(axis=axes, keepdims=True) + 1)
    expected = logs.sum(axis=0)
    for res in (tree, chain):
        assert res["logsum"].data.dtype == np.float32
        # float32 logs summed in float32; all terms are >= 0
        np.testing.assert_allclose(res["logsum"].data, expected, rtol=1e-5, atol=1e-5)


@_settings(100)
@given(case=cases())
def test_custom_merge_tree_chain_numpy(pctx, case):
    ref = Reference(case)
    tree, chain = run(pctx, case, [MaxUDF(), MaxChain()])
    expected = np.max(ref.frames, axis=0, initial=-np.inf)
    for res in (tree, chain):
        np.testing.assert_array_equal(res["max"].data, expected)


# --------------------------------------------------------------------------------------
# every source gives the memory source's numbers
# --------------------------------------------------------------------------------------


@st.composite
def chunkings(draw, shape: tuple[int, ...]):
    """A chunk shape: 1..n along each dimension of ``shape``."""
    return tuple(draw(st.integers(1, n)) for n in shape)


def run_sums(ctx, ds, case):
    sums, sumsig = ctx.run_udf(
        dataset=ds, udf=[SumUDF(), SumSigUDF()], roi=case["roi"], split_every=case["split_every"]
    )
    return sums["intensity"].data, sumsig["intensity"].data


def load_kwargs(case):
    kwargs = {"num_partitions": case["num_partitions"], "sync_offset": case["sync_offset"]}
    if case["nav_shape"] is not None:
        kwargs["nav_shape"] = case["nav_shape"]
    return kwargs


def assert_like_memory(ctx, ds, case):
    """SumUDF and SumSigUDF over ``ds`` equal those over the memory source, exactly."""
    assert tuple(ds.shape) == (*case["nav"], *case["sig"])
    assert ds.dtype == case["data"].dtype
    mem = ctx.load("memory", data=case["data"], sig_dims=len(case["sig"]), **load_kwargs(case))
    expected = run_sums(ctx, mem, case)
    actual = run_sums(ctx, ds, case)
    for a, e in zip(actual, expected, strict=True):
        assert a.dtype == e.dtype
    # Exact for integer data, or when both split the frames alike. A chunked source may
    # split elsewhere (at chunk boundaries shifted by sync_offset), which reorders
    # SumUDF's float sums; and SumSigUDF's BLAS sums of one float frame depend on how
    # many frames share its tile (ulp differences).
    ref = Reference(case)
    same_split = [p.slice for p in ds.get_partitions()] == [p.slice for p in mem.get_partitions()]
    if exact_int(case["data"]) or same_split:
        np.testing.assert_array_equal(actual[0], expected[0])
        np.testing.assert_array_equal(actual[1], expected[1])  # NaN outside the ROI in both
    else:
        axes = tuple(range(1, 1 + len(ref.sig)))
        terms = (np.abs(ref.frames).sum(axis=0), np.abs(ref.padded).sum(axis=axes))
        for a, e, t in zip(actual, expected, terms, strict=True):
            rtol = tolerance(e.dtype)
            np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * np.max(t, initial=0))
    # and the memory source is NumPy's (the tests above hold it within tolerances)
    np.testing.assert_allclose(
        expected[0], ref.frames.sum(axis=0), rtol=1e-5, atol=1e-5 * np.abs(ref.frames).sum()
    )


@_settings(30)
@given(case=cases(reshape=True))
def test_npy_source_equals_memory(pctx, case):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "data.npy")
        np.save(path, case["data"])
        ds = pctx.load("npy", path=path, sig_dims=len(case["sig"]), **load_kwargs(case))
        assert_like_memory(pctx, ds, case)


@_settings(30)
@given(case=cases(reshape=True))
def test_raw_source_equals_memory(pctx, case):
    data = case["data"]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "data.raw")
        data.tofile(path)
        kwargs = {"nav_shape": case["nav"], **load_kwargs(case)}
        ds = pctx.load("raw", path=path, sig_shape=case["sig"], dtype=data.dtype, **kwargs)
        assert_like_memory(pctx, ds, case)


@st.composite
def hdf5_cases(draw):
    case = draw(cases(reshape=True))
    case["chunks"] = draw(st.none() | chunkings(case["data"].shape))
    return case


@_settings(30)
@given(case=hdf5_cases())
def test_hdf5_source_equals_memory(pctx, case):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "data.h5")
        with h5py.File(path, "w") as f:
            f.create_dataset("entry/data", data=case["data"], chunks=case["chunks"])
        ds = pctx.load(
            "hdf5",
            path=path,
            ds_path="entry/data",
            sig_dims=len(case["sig"]),
            **load_kwargs(case),
        )
        assert_like_memory(pctx, ds, case)


@st.composite
def zarr_cases(draw):
    case = draw(cases(reshape=True))
    case["chunks"] = draw(chunkings(case["data"].shape))
    case["zarr_format"] = draw(st.sampled_from([2, 3]))
    case["compress"] = draw(st.booleans())
    return case


@_settings(30)
@given(case=zarr_cases())
def test_zarr_source_equals_memory(pctx, case):
    compressors = None
    if case["compress"]:
        if case["zarr_format"] == 3:
            compressors = zarr.codecs.ZstdCodec()
        else:
            compressors = numcodecs.Zstd()
    data = case["data"]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "data.zarr")
        z = zarr.create_array(
            path,
            shape=data.shape,
            chunks=case["chunks"],
            dtype=data.dtype,
            zarr_format=case["zarr_format"],
            compressors=compressors,
        )
        z[...] = data
        ds = pctx.load("zarr", path=path, sig_dims=len(case["sig"]), **load_kwargs(case))
        assert_like_memory(pctx, ds, case)


@st.composite
def dask_cases(draw):
    case = draw(cases(reshape=True))
    case["chunks"] = draw(chunkings(case["data"].shape))
    return case


@_settings(30)
@given(case=dask_cases())
def test_dask_source_equals_memory(pctx, case):
    arr = da.from_array(case["data"], chunks=case["chunks"])
    ds = pctx.load("dask", arr, sig_dims=len(case["sig"]), **load_kwargs(case))
    assert_like_memory(pctx, ds, case)
