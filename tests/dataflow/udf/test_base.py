"""The UDF interface end to end: buffers, views, methods, dtypes, params, task data, meta.

The matrix test runs one UDF per process method that fills every kind of buffer, with
and without ``extra_shape``, object buffers included, and compares every buffer with a
NumPy reference over navigation ranks 1-3, signal ranks 1-2, six native dtypes and four
kinds of ROI, on the synchronous scheduler.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from dataflow.api import Context
from dataflow.buffers import UDFData
from dataflow.errors import UDFException
from dataflow.udf import UDF, UDFMeta


class _Sink(UDF):
    """Fills every kind of buffer; subclasses choose the process method."""

    def __init__(self, scale=1):
        super().__init__(scale=scale)

    def get_result_buffers(self):
        dt = self.meta.input_dtype
        wide = np.result_type(dt, np.float64)
        return {
            "fsum": self.buffer(kind="nav", dtype=dt),
            "pair": self.buffer(kind="nav", extra_shape=(2,), dtype=dt),
            "label": self.buffer(kind="nav", dtype=object),
            "total": self.buffer(kind="sig", dtype=dt),
            "moments": self.buffer(kind="sig", extra_shape=(2,), dtype=dt),
            "count": self.buffer(kind="single", dtype=np.int64),
            "stats": self.buffer(kind="single", extra_shape=(2,), dtype=wide),
            "frames": self.buffer(kind="single", dtype=object),
        }

    def preprocess(self):
        self.results.frames[0] = []

    def _frames(self, stack):
        """Update every buffer from a stack of frames; nav views are (N,) here."""
        scale = self.params.scale
        sig_axes = tuple(range(1, stack.ndim))
        flat = stack.reshape(len(stack), -1)
        return scale * stack.sum(axis=sig_axes), flat[:, 0], sig_axes

    def _coords(self):
        return [tuple(int(c) for c in row) for row in self.meta.coordinates]

    def merge(self, dest, src):
        dest.total[:] += src.total
        dest.moments[:] += src.moments
        dest.count[:] += src.count
        dest.stats[:] += src.stats
        dest.frames[0] = dest.frames[0] + src.frames[0]
        dest.fsum[:] = src.fsum
        dest.pair[:] = src.pair
        dest.label[:] = src.label


class FrameSink(_Sink):
    def process_frame(self, frame):
        assert frame.shape == tuple(self.meta.dataset_shape.sig)
        assert self.results.fsum.shape == (1,)
        assert self.results.pair.shape == (2,)
        assert self.results.total.shape == frame.shape
        self.results.fsum[:] = self.params.scale * frame.sum()
        self.results.pair[:] = (frame.sum(), frame.ravel()[0])
        (coords,) = self._coords()
        self.results.label[0] = coords
        self.results.total[:] += frame
        self.results.moments[..., 0] += frame
        self.results.moments[..., 1] += np.abs(frame) ** 2
        self.results.count[:] += 1
        self.results.stats[:] += (frame.sum(), 1)
        self.results.frames[0].append(coords)


class TileSink(_Sink):
    def process_tile(self, tile):
        n = len(tile)
        assert self.results.fsum.shape == (n,)
        assert self.results.pair.shape == (n, 2)
        sums, first, sig_axes = self._frames(tile)
        self.results.fsum[:] = sums
        self.results.pair[:, 0] = tile.sum(axis=sig_axes)
        self.results.pair[:, 1] = first
        coords = self._coords()
        for i, c in enumerate(coords):
            self.results.label[i] = c
        self.results.total += tile.sum(axis=0)
        self.results.moments[..., 0] += tile.sum(axis=0)
        self.results.moments[..., 1] += (np.abs(tile) ** 2).sum(axis=0)
        self.results.count[:] += n
        self.results.stats[:] += (tile.sum(), n)
        self.results.frames[0].extend(coords)


class PartitionSink(TileSink):
    def get_method(self):
        return UDF.UDF_METHOD.PARTITION

    def process_partition(self, partition):
        assert len(partition) == self.meta.partition_shape[0]
        self.process_tile(partition)


def _reference(data, nav_shape, roi, scale=1):
    """Expected .data of every buffer of _Sink, in the input dtype LiberTEM would use."""
    sig_dims = data.ndim - len(nav_shape)
    dt = np.result_type(data.dtype, np.float32)
    x = data.astype(dt).reshape((math.prod(nav_shape), *data.shape[len(nav_shape) :]))
    sel = np.ones(len(x), bool) if roi is None else roi.reshape(-1)
    xs = x[sel]
    sig_axes = tuple(range(1, 1 + sig_dims))
    wide = np.result_type(dt, np.float64)
    coords = [tuple(int(c) for c in np.unravel_index(i, nav_shape)) for i in np.flatnonzero(sel)]
    return {
        "fsum": scale * xs.sum(axis=sig_axes) if xs.size else np.zeros(0, dt),
        "pair": np.stack([xs.sum(axis=sig_axes), xs.reshape(len(xs), -1)[:, 0]], axis=1)
        if len(xs)
        else np.zeros((0, 2), dt),
        "label": coords,
        "total": xs.sum(axis=0),
        "moments": np.stack([xs.sum(axis=0), (np.abs(xs) ** 2).sum(axis=0)], axis=-1),
        "count": np.array([len(xs)]),
        "stats": np.array([xs.sum(), len(xs)], dtype=wide),
        "frames": coords,
        "_sel": sel,
        "_dt": dt,
    }


def _check(res, ref, nav_shape):
    dt = ref["_dt"]
    rtol = 1e-4 if dt in (np.float32, np.complex64) else 1e-10
    sel = ref["_sel"]
    n_sel = int(sel.sum())
    assert res["fsum"].dtype == dt
    assert res["fsum"].raw_data.shape == (n_sel,)
    np.testing.assert_allclose(res["fsum"].raw_data, ref["fsum"], rtol=rtol, atol=1e-3)
    full = res["fsum"].data.reshape(-1)
    assert res["fsum"].data.shape == tuple(nav_shape)
    assert np.all(np.isnan(full[~sel]))
    assert res["pair"].data.shape == (*nav_shape, 2)
    np.testing.assert_allclose(res["pair"].raw_data, ref["pair"], rtol=rtol, atol=1e-3)
    assert [tuple(c) for c in res["label"].raw_data] == ref["label"]
    labels = res["label"].data.reshape(-1)
    assert all(v is None for v in labels[~sel])
    np.testing.assert_allclose(res["total"].data, ref["total"], rtol=rtol, atol=1e-3)
    np.testing.assert_allclose(res["moments"].data, ref["moments"], rtol=rtol, atol=1e-3)
    np.testing.assert_array_equal(res["count"].data, ref["count"])
    np.testing.assert_allclose(res["stats"].data, ref["stats"], rtol=rtol, atol=1e-3)
    assert sorted(res["frames"].data[0]) == sorted(ref["frames"])


NAV_SHAPES = [(6,), (4, 5), (2, 3, 4)]
SIG_SHAPES = [(7,), (5, 6)]
DTYPES = ["uint8", "uint16", "int32", "float32", "float64", "complex64"]
ROIS = ["none", "all-true", "all-false", "random"]


def _roi(kind, nav_shape, rng):
    if kind == "none":
        return None
    if kind == "all-true":
        return np.ones(nav_shape, bool)
    if kind == "all-false":
        return np.zeros(nav_shape, bool)
    roi = rng.random(nav_shape) < 0.5
    roi.reshape(-1)[0] = True
    return roi


@pytest.mark.parametrize("udf_class", [FrameSink, TileSink, PartitionSink])
@pytest.mark.parametrize("nav_shape", NAV_SHAPES)
@pytest.mark.parametrize("sig_shape", SIG_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("roi_kind", ROIS)
def test_every_buffer_kind_matches_numpy(
    ctx, data_factory, rng, udf_class, nav_shape, sig_shape, dtype, roi_kind
):
    data = data_factory(nav_shape + sig_shape, dtype)
    ds = ctx.load("memory", data=data, sig_dims=len(sig_shape), num_partitions=3)
    roi = _roi(roi_kind, nav_shape, rng)
    res = ctx.run_udf(dataset=ds, udf=udf_class(scale=2), roi=roi)
    _check(res, _reference(data, nav_shape, roi, scale=2), nav_shape)


@pytest.mark.parametrize("num_partitions", [1, 2, 7, 64])
@pytest.mark.parametrize("udf_class", [FrameSink, TileSink, PartitionSink])
def test_partitioning_does_not_change_results(ctx, data_factory, num_partitions, udf_class):
    data = data_factory((8, 8, 4, 4), "uint16")
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=num_partitions)
    assert ds.get_num_partitions() == num_partitions
    res = ctx.run_udf(dataset=ds, udf=udf_class())
    _check(res, _reference(data, (8, 8), None), (8, 8))


def test_several_udfs_share_one_pass(ctx, data_factory):
    data = data_factory((6, 5, 4, 3), "float64")
    ds = ctx.load("memory", data=data, num_partitions=4)
    reads = []
    original = ds.partition_array

    def count(block, block_info=None):
        reads.append(block_info[0]["chunk-location"])
        return block

    ds.partition_array = original.map_blocks(count, dtype=original.dtype)
    a, b, c = ctx.run_udf(dataset=ds, udf=[FrameSink(), TileSink(scale=3), PartitionSink()])
    assert len(reads) == 4  # one read per partition for all three UDFs
    _check(a, _reference(data, (6, 5), None), (6, 5))
    _check(b, _reference(data, (6, 5), None, scale=3), (6, 5))
    _check(c, _reference(data, (6, 5), None), (6, 5))


# views, as LiberTEM gives them (reference, section 1.3) ----------------------------------


class ShapeSpy(UDF):
    """Records the shape of every view it sees into object buffers."""

    def get_result_buffers(self):
        return {
            "nav": self.buffer(kind="nav", dtype=object),
            "nav2": self.buffer(kind="nav", extra_shape=(2,), dtype="float32"),
            "sig": self.buffer(kind="sig", dtype="float32"),
            "single": self.buffer(kind="single", dtype=object),
            "single3": self.buffer(kind="single", extra_shape=(3,), dtype="float32"),
        }

    def _record(self, where):
        r = self.results
        shapes = (where, r.nav.shape, r.nav2.shape, r.sig.shape, r.single.shape, r.single3.shape)
        if self.results.single[0] == 0:
            self.results.single[0] = []
        self.results.single[0].append(shapes)

    def preprocess(self):
        self._record("preprocess")

    def postprocess(self):
        self._record("postprocess")

    def merge(self, dest, src):
        if dest.single[0] == 0:
            dest.single[0] = []
        dest.single[0] = dest.single[0] + src.single[0]
        dest.single[0].append(("merge", dest.nav2.shape, src.nav2.shape, dest.sig.shape))


class FrameSpy(ShapeSpy):
    def process_frame(self, frame):
        self._record("frame")


class TileSpy(ShapeSpy):
    def process_tile(self, tile):
        self._record(("tile", len(tile)))


class PartitionSpy(ShapeSpy):
    def process_partition(self, partition):
        self._record(("partition", len(partition)))


@pytest.mark.parametrize("udf_class", [FrameSpy, TileSpy, PartitionSpy])
def test_views_match_libertem(ctx, udf_class):
    # LiberTEM 0.16 verified with a 4x5x8x6 dataset in 2 partitions
    ds = ctx.load("memory", data=np.zeros((4, 5, 8, 6), "float32"), num_partitions=2)
    sizes = [p.n_frames for p in ds.partitions]
    log = ctx.run_udf(dataset=ds, udf=udf_class())["single"].data[0]
    for entry in log:
        where = entry[0]
        if where == "merge":
            _, dest_nav2, src_nav2, sig = entry
            assert dest_nav2 == src_nav2
            assert dest_nav2[0] in sizes or dest_nav2[0] == 20
            assert sig == (8, 6)
            continue
        _, nav, nav2, sig, single, single3 = entry
        assert sig == (8, 6)
        assert single == (1,)
        assert single3 == (3,)
        if where == "frame":
            assert nav == (1,)
            assert nav2 == (2,)  # extra_shape views lose the leading 1
        elif where == "preprocess":  # per partition, and on the accumulator (all frames)
            assert nav[0] in [*sizes, 20]
            assert nav2 == (nav[0], 2)
        elif where == "postprocess":
            assert nav[0] in sizes
            assert nav2 == (nav[0], 2)
        else:
            n = where[1]
            assert nav == (n,)
            assert nav2 == (n, 2)
    wheres = [e[0] if isinstance(e[0], str) else e[0][0] for e in log]
    assert wheres.count("preprocess") == 2 + 1  # per partition, and the accumulator
    assert wheres.count("postprocess") == 2
    assert wheres.count("merge") == 2  # n partitions make n merges


def test_object_buffers_start_as_integer_zero(ctx):
    class Probe(UDF):
        def get_result_buffers(self):
            return {"o": self.buffer(kind="nav", dtype=object)}

        def process_frame(self, frame):
            self.results.o[0] = ("seen", self.results.o[0])

    ds = ctx.load("memory", data=np.zeros((2, 2, 3, 3)), num_partitions=2)
    out = ctx.run_udf(dataset=ds, udf=Probe())["o"].data
    assert all(v == ("seen", 0) for v in out.reshape(-1))


def test_assignment_sugar(ctx):
    class Sugar(UDF):
        def get_result_buffers(self):
            return {
                "n": self.buffer(kind="nav"),
                "s": self.buffer(kind="sig"),
                "one": self.buffer(kind="single"),
            }

        def process_frame(self, frame):
            self.results.n = frame.sum()  # assigns into the (1,) view
            self.results.s += frame
            self.results.one += 1

        def merge(self, dest, src):
            dest.s += src.s
            dest.one = dest.one + src.one
            dest.n = src.n

    data = np.arange(2 * 3 * 4 * 4, dtype="float32").reshape(2, 3, 4, 4)
    ds = ctx.load("memory", data=data, num_partitions=2)
    res = ctx.run_udf(dataset=ds, udf=Sugar())
    np.testing.assert_array_equal(res["n"].data, data.sum(axis=(2, 3)))
    np.testing.assert_array_equal(res["s"].data, data.sum(axis=(0, 1)))
    assert res["one"].data[0] == 6


def test_results_attributes_cannot_be_rebound_to_unknown_names(ctx):
    class Typo(UDF):
        def get_result_buffers(self):
            return {"x": self.buffer(kind="nav")}

        def process_frame(self, frame):
            self.results.y = 1

    ds = ctx.load("memory", data=np.zeros((2, 2, 3, 3)))
    with pytest.raises(AttributeError, match=r"'y'.*declared: \['x'\]"):
        ctx.run_udf(dataset=ds, udf=Typo())


# params and the clean copy ----------------------------------------------------------------


class Counted(UDF):
    instances = 0

    def __init__(self, factor=None, **kwargs):
        if factor is None:
            factor = 2.5
        Counted.instances += 1
        super().__init__(factor=factor, **kwargs)

    def get_result_buffers(self):
        return {"x": self.buffer(kind="nav"), "p": self.buffer(kind="single", dtype=object)}

    def process_frame(self, frame):
        self.results.x[:] = self.params.factor * frame.sum()
        self.results.p[0] = (self.params.factor, self.params.get("extra"), "extra" in self.params)

    def merge(self, dest, src):
        dest.x[:] = src.x
        dest.p[:] = src.p


def test_params_and_clean_copies(ctx):
    data = np.ones((4, 4, 2, 2), "float32")
    ds = ctx.load("memory", data=data, num_partitions=4)
    Counted.instances = 0
    udf = Counted(extra="e")
    udf.unpicklable_state = lambda: None  # must not travel: clean copies are made
    res = ctx.run_udf(dataset=ds, udf=udf)
    np.testing.assert_array_equal(res["x"].data, np.full((4, 4), 10.0))
    assert res["p"].data[0] == (2.5, "e", True)
    # the user's object, one clean copy shipped, one per partition, merge and accumulator
    assert Counted.instances > 1 + 4
    assert udf.params.factor == 2.5
    with pytest.raises(AttributeError, match="read-only"):
        udf.params.factor = 3


def test_constructor_that_does_not_pass_its_parameters_on_fails_clearly(ctx):
    class Broken(UDF):
        def __init__(self, radius):
            super().__init__(r=radius)  # the clean copy calls Broken(r=...)

        def get_result_buffers(self):
            return {"x": self.buffer(kind="nav")}

        def process_frame(self, frame):
            pass

    ds = ctx.load("memory", data=np.zeros((2, 2, 3, 3)))
    with pytest.raises(TypeError, match="unexpected keyword argument 'r'"):
        ctx.run_udf(dataset=ds, udf=Broken(radius=3))


def test_task_data_is_per_partition(ctx):
    class WithTaskData(UDF):
        def get_task_data(self):
            # available after buffers are allocated, before preprocess
            assert self.results.x.shape == (self.meta.partition_shape[0],)
            return {"frames": [], "offset": self.meta.slice.origin[0]}

        def get_result_buffers(self):
            return {"x": self.buffer(kind="nav", dtype="int64")}

        def process_frame(self, frame):
            self.task_data.frames.append(self.meta.slice.origin[0])
            self.results.x[:] = self.task_data.offset

    ds = ctx.load("memory", data=np.zeros((3, 4, 2, 2)), num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=WithTaskData())
    expected = np.concatenate([np.full(p.n_frames, p.start) for p in ds.partitions])
    np.testing.assert_array_equal(res["x"].raw_data, expected)


# meta --------------------------------------------------------------------------------------


def test_meta_inside_a_run(ctx):
    class MetaSpy(UDF):
        def get_result_buffers(self):
            assert isinstance(self.meta, UDFMeta)
            assert self.meta.slice is None  # on the client
            return {
                "origin": self.buffer(kind="nav", dtype="int64"),
                "coords": self.buffer(kind="nav", extra_shape=(2,), dtype="int64"),
                "info": self.buffer(kind="single", dtype=object),
            }

        def process_frame(self, frame):
            s = self.meta.slice
            assert tuple(s.shape) == (1, 3, 3)
            self.results.origin[:] = s.origin[0]
            self.results.coords[:] = self.meta.coordinates[0]
            m = self.meta
            self.results.info[0] = (
                tuple(m.dataset_shape),
                tuple(m.dataset_shape.nav),
                tuple(m.dataset_shape.sig),
                m.dataset_dtype,
                m.input_dtype,
                m.roi is not None,
            )

        def merge(self, dest, src):
            dest.origin[:] = src.origin
            dest.coords[:] = src.coords
            dest.info[:] = src.info

    roi = np.zeros((4, 5), bool)
    roi[1, 2] = roi[3, 0] = roi[3, 4] = True
    ds = ctx.load("memory", data=np.zeros((4, 5, 3, 3), "uint16"), num_partitions=2)
    res = ctx.run_udf(dataset=ds, udf=MetaSpy(), roi=roi)
    # slice origins are in flattened, ROI-compressed coordinates; coordinates are true ones
    np.testing.assert_array_equal(res["origin"].raw_data, [0, 1, 2])
    np.testing.assert_array_equal(res["coords"].raw_data, [[1, 2], [3, 0], [3, 4]])
    info = res["info"].data[0]
    assert info == ((4, 5, 3, 3), (4, 5), (3, 3), np.dtype("uint16"), np.dtype("float32"), True)


@pytest.mark.parametrize(
    ("native", "expected"),
    [
        ("uint8", "float32"),
        ("uint16", "float32"),
        ("int16", "float32"),
        ("bool", "float32"),
        ("float16", "float32"),
        ("int32", "float64"),
        ("uint32", "float64"),
        ("int64", "float64"),
        ("float64", "float64"),
        ("complex64", "complex64"),
    ],
)
def test_input_dtype_rule(ctx, native, expected):
    class DtypeSpy(UDF):
        def get_result_buffers(self):
            return {"d": self.buffer(kind="nav", dtype=object)}

        def process_tile(self, tile):
            self.results.d[:] = str(tile.dtype)

    class NativeSpy(DtypeSpy):
        def get_preferred_input_dtype(self):
            return self.USE_NATIVE_DTYPE

    ds = ctx.load("memory", data=np.zeros((2, 2, 3, 3), native))
    a = ctx.run_udf(dataset=ds, udf=DtypeSpy())
    b = ctx.run_udf(dataset=ds, udf=NativeSpy())
    assert set(a["d"].raw_data) == {expected}
    assert set(b["d"].raw_data) == {native}
    # UDFs of one run share one input dtype: the result_type of all their preferences
    a, b = ctx.run_udf(dataset=ds, udf=[DtypeSpy(), NativeSpy()])
    assert set(a["d"].raw_data) == set(b["d"].raw_data) == {expected}


def test_method_precedence_tile_over_frame_over_partition(ctx):
    class All(UDF):
        def get_result_buffers(self):
            return {"m": self.buffer(kind="nav", dtype=object)}

        def process_tile(self, tile):
            self.results.m[:] = "tile"

        def process_frame(self, frame):
            self.results.m[:] = "frame"

        def process_partition(self, partition):
            self.results.m[:] = "partition"

    class FrameAndPartition(All):
        process_tile = None

    class PartitionOnly(FrameAndPartition):
        process_frame = None

    ds = ctx.load("memory", data=np.zeros((2, 2, 3, 3)))
    a, b, c = ctx.run_udf(dataset=ds, udf=[All(), FrameAndPartition(), PartitionOnly()])
    assert set(a["m"].raw_data) == {"tile"}
    assert set(b["m"].raw_data) == {"frame"}
    assert set(c["m"].raw_data) == {"partition"}


def test_udf_without_process_method_is_rejected_before_reading(ctx):
    class Nothing(UDF):
        def get_result_buffers(self):
            return {}

    ds = ctx.load("memory", data=np.zeros((2, 2, 3, 3)))
    with pytest.raises(UDFException, match="implements none of process_tile"):
        ctx.run_udf(dataset=ds, udf=Nothing())


def test_get_method_that_is_not_implemented_is_rejected(ctx):
    class Liar(UDF):
        def get_result_buffers(self):
            return {}

        def process_frame(self, frame):
            pass

        def get_method(self):
            return "tile"

    ds = ctx.load("memory", data=np.zeros((2, 2, 3, 3)))
    with pytest.raises(UDFException, match="does not implement process_tile"):
        ctx.run_udf(dataset=ds, udf=Liar())


def test_default_merge_rejects_sig_buffers(ctx):
    class NoMerge(UDF):
        def get_result_buffers(self):
            return {"s": self.buffer(kind="sig")}

        def process_frame(self, frame):
            self.results.s += frame

    ds = ctx.load("memory", data=np.zeros((2, 2, 3, 3)))
    with pytest.raises(NotImplementedError, match="Default merging only works for kind='nav'"):
        ctx.run_udf(dataset=ds, udf=NoMerge())


@pytest.mark.parametrize(
    ("decls", "error", "match"),
    [
        ("not a dict", UDFException, "expected a dict"),
        ({"1x": "buffer"}, UDFException, "must be Python identifiers"),
        ({"x": "buffer"}, UDFException, "expected self.buffer"),
    ],
)
def test_invalid_buffer_declarations(ctx, decls, error, match):
    class Bad(UDF):
        def get_result_buffers(self):
            return decls

        def process_frame(self, frame):
            pass

    ds = ctx.load("memory", data=np.zeros((2, 2, 3, 3)))
    with pytest.raises(error, match=match):
        ctx.run_udf(dataset=ds, udf=Bad())


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"kind": "both"}, ValueError, "buffer kind is 'both'"),
        ({"kind": "nav", "extra_shape": (-1,)}, ValueError, "extra_shape is \\(-1,\\)"),
        ({"kind": "nav", "extra_shape": "ab"}, ValueError, "extra_shape is 'ab'"),
        ({"kind": "nav", "dtype": "notadtype"}, TypeError, "dtype is 'notadtype'"),
        ({"kind": "nav", "use": "public"}, ValueError, "buffer use is 'public'"),
    ],
)
def test_buffer_declaration_errors_name_the_value(kwargs, error, match):
    with pytest.raises(error, match=match):
        UDF().buffer(**kwargs)


def test_udf_exception_names_udf_and_partition(ctx):
    class Fails(UDF):
        def get_result_buffers(self):
            return {"x": self.buffer(kind="nav")}

        def process_frame(self, frame):
            if self.meta.coordinates[0, 0] == 2:
                raise ZeroDivisionError("boom")

    ds = ctx.load("memory", data=np.zeros((4, 4, 3, 3)), num_partitions=4)
    with pytest.raises(ZeroDivisionError, match="boom") as info:
        ctx.run_udf(dataset=ds, udf=Fails())
    notes = "\n".join(info.value.__notes__)
    assert "Fails.process_frame" in notes
    assert "partition 2 (frames 8..11" in notes


def test_get_results_custom_and_checked(ctx):
    class Mean(UDF):
        def get_result_buffers(self):
            return {
                "total": self.buffer(kind="sig", dtype="float64", use="private"),
                "n": self.buffer(kind="single", dtype="int64", use="private"),
                "mean": self.buffer(kind="sig", dtype="float64", use="result_only"),
            }

        def process_frame(self, frame):
            self.results.total += frame
            self.results.n += 1

        def merge(self, dest, src):
            dest.total += src.total
            dest.n += src.n

        def get_results(self):
            return {"mean": self.results.total / self.results.n}

    data = np.random.default_rng(0).random((3, 4, 5, 5))
    ds = ctx.load("memory", data=data, num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=Mean())
    assert list(res) == ["mean"]
    np.testing.assert_allclose(res["mean"].data, data.mean(axis=(0, 1)))

    class ReturnsPrivate(Mean):
        def get_results(self):
            return {"total": self.results.total, "mean": self.results.total}

    with pytest.raises(UDFException, match="private buffer"):
        ctx.run_udf(dataset=ds, udf=ReturnsPrivate())

    class WrongKind(Mean):
        def get_results(self):
            return {"mean": np.zeros((5, 5), dtype="int64")}

    with pytest.raises(UDFException, match=r"dtype int64.*declared with dtype float64"):
        ctx.run_udf(dataset=ds, udf=WrongKind())

    class Forgets(Mean):
        def get_results(self):
            return {}

    with pytest.raises(UDFException, match="result_only"):
        ctx.run_udf(dataset=ds, udf=Forgets())


def test_meta_slices_as_liberTEM_relates_them():
    """meta.slice.sig is meta.sig_slice, the only entry of meta.tiling_scheme."""
    seen = []

    class Check(UDF):
        def get_result_buffers(self):
            return {"n": self.buffer(kind="nav")}

        def process_tile(self, tile):
            meta = self.meta
            assert tile.shape[1:] == tuple(meta.sig_slice.shape)
            assert meta.slice.sig == meta.sig_slice
            assert meta.tiling_scheme[meta.tiling_scheme_idx] == meta.sig_slice
            assert meta.slice.nav.shape.sig_dims == 0
            seen.append((meta.slice.nav.origin, tuple(meta.slice.nav.shape)))
            self.results.n[:] = 1

    data = np.zeros((3, 4, 5, 6), dtype="float32")
    with Context.make_with("inline") as ctx:
        ds = ctx.load("memory", data=data, num_partitions=2)
        ctx.run_udf(dataset=ds, udf=Check())
        parts = list(ds.get_partitions())
        assert len(parts) == 2
        assert sorted(seen) == [((p.start,), (p.stop - p.start,)) for p in parts]


def test_a_udf_without_process_method_is_a_type_error():
    class Nothing(UDF):
        def get_result_buffers(self):
            return {}

    with pytest.raises(TypeError, match="implements none of process_tile"):
        Nothing().get_method()
    with pytest.raises(UDFException, match="implements none of process_tile"):
        Nothing().get_method()


def test_result_only_buffers_are_none_until_get_results():
    """LiberTEM allocates result_only buffers for get_results alone: None elsewhere."""
    seen = set()

    class Doubled(UDF):
        def get_result_buffers(self):
            return {
                "d": self.buffer(kind="nav", dtype="float32"),
                "s": self.buffer(kind="sig", dtype="float32"),
                "r": self.buffer(kind="nav", dtype="float32", use="result_only"),
            }

        def process_frame(self, frame):
            seen.add(("process_frame", self.results.r))
            self.results.d[:] = frame.sum()
            self.results.s[:] += frame

        def merge(self, dest, src):
            seen.add(("merge", dest.r, src.r))
            dest.d[:] = src.d
            dest.s[:] += src.s

        def get_results(self):
            return {"r": self.results.d * 2, "d": self.results.d, "s": self.results.s}

    data = np.arange(2 * 3 * 4 * 5, dtype="float32").reshape(2, 3, 4, 5)
    with Context.make_with("inline") as ctx:
        ds = ctx.load("memory", data=data, num_partitions=2)
        res = ctx.run_udf(dataset=ds, udf=Doubled())
    assert seen == {("process_frame", None), ("merge", None, None)}
    np.testing.assert_allclose(res["r"].data, 2 * data.sum(axis=(2, 3)))
    with pytest.raises(AttributeError, match="no buffer or value named 'nope'"):
        UDFData({}, {}).nope


def test_get_results_with_an_undeclared_name_is_a_key_error():
    class Extra(UDF):
        def get_result_buffers(self):
            return {"d": self.buffer(kind="nav", dtype="float32")}

        def process_frame(self, frame):
            self.results.d[:] = frame.sum()

        def get_results(self):
            return {"d": self.results.d, "extra": self.results.d}

    data = np.ones((2, 3, 4, 5), dtype="float32")
    with Context.make_with("inline") as ctx:
        ds = ctx.load("memory", data=data)
        for error in (KeyError, UDFException):
            with pytest.raises(error, match=r"returned 'extra', which is not a declared buffer"):
                ctx.run_udf(dataset=ds, udf=Extra())
