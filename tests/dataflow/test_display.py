"""display(): the buffers a run would return, as text and HTML, without reading data."""

from __future__ import annotations

import html

import dask.array as da
import numpy as np
import pytest

from dataflow.display import RunInfo, display
from dataflow.errors import UDFException
from dataflow.udf.base import UDF
from dataflow.udf.raw import PickUDF
from dataflow.udf.sum import SumUDF


class ReadError(Exception):
    pass


def _refuse(block):
    raise ReadError("the data was read")


@pytest.fixture
def unreadable(ctx):
    """A (6, 8, 4, 5) uint16 dataset whose every read raises ReadError."""
    arr = da.zeros((6, 8, 4, 5), dtype="uint16", chunks=(3, 8, 4, 5))
    return ctx.load("dask", arr.map_blocks(_refuse, dtype="uint16"), sig_dims=2)


class EveryKindUDF(UDF):
    """One buffer of each kind and use."""

    def get_result_buffers(self):
        return {
            "per_frame": self.buffer(kind="nav", dtype="float64"),
            "vectors": self.buffer(kind="nav", extra_shape=(2,), dtype="int32"),
            "frame_sum": self.buffer(kind="sig", dtype=self.meta.input_dtype),
            "stack": self.buffer(kind="sig", extra_shape=(3,), dtype="complex64"),
            "count": self.buffer(kind="single", dtype="uint64"),
            "table": self.buffer(kind="single", extra_shape=(2, 3), dtype=object),
            "scratch": self.buffer(kind="single", dtype="float32", use="private"),
            "ratio": self.buffer(kind="nav", dtype="float32", use="result_only"),
        }

    def process_frame(self, frame):
        self.results.per_frame[:] = frame.sum()

    def merge(self, dest, src):
        dest.per_frame[:] = src.per_frame

    def get_results(self):
        return {"ratio": self.results.per_frame.astype("float32")}


# (buffer, kind, extra_shape, dtype, use, .data shape, .raw_data shape) with the ROI below
EXPECTED = [
    ("per_frame", "nav", (), "float64", "-", (6, 8), (5,)),
    ("vectors", "nav", (2,), "int32", "-", (6, 8, 2), (5, 2)),
    ("frame_sum", "sig", (), "float32", "-", (4, 5), (4, 5)),
    ("stack", "sig", (3,), "complex64", "-", (4, 5, 3), (4, 5, 3)),
    ("count", "single", (), "uint64", "-", (1,), (1,)),
    ("table", "single", (2, 3), "object", "-", (2, 3), (2, 3)),
    ("scratch", "single", (), "float32", "private", (1,), (1,)),
    ("ratio", "nav", (), "float32", "result_only", (6, 8), (5,)),
]


@pytest.fixture
def roi():
    mask = np.zeros((6, 8), dtype=bool)
    mask[1, 2:7] = True
    return mask


def test_the_dataset_cannot_be_read(ctx, unreadable):
    with pytest.raises(ReadError):
        ctx.run_udf(dataset=unreadable, udf=SumUDF())


def test_rows_describe_every_buffer_without_reading(unreadable, roi):
    info = display(unreadable, EveryKindUDF(), roi=roi)
    assert isinstance(info, RunInfo)
    rows = [
        (b.name, b.kind, b.extra_shape, str(b.dtype), b.use or "-", b.shape, b.raw_shape)
        for b in info.buffers
    ]
    assert rows == EXPECTED
    assert {b.udf for b in info.buffers} == {"EveryKindUDF"}
    assert info.n_frames == 5
    assert info.dataset_shape == (6, 8, 4, 5)
    [udf_info] = info.udfs
    assert udf_info.method == "frame"
    assert udf_info.input_dtype == np.float32  # uint16 with the default float32 preference
    assert udf_info.backends == ("numpy",)


@pytest.mark.parametrize("render", [repr, str, RunInfo._repr_html_], ids=["repr", "str", "html"])
def test_text_and_html_show_every_buffer(unreadable, roi, render):
    out = render(display(unreadable, EveryKindUDF(), roi=roi))
    lines = out.splitlines()
    for name, kind, extra, dtype, use, shape, raw_shape in EXPECTED:
        cells = [name, kind, str(extra), dtype, use, str(shape), str(raw_shape)]
        if render is RunInfo._repr_html_:
            row = "".join(f"<td>{html.escape(c)}</td>" for c in ["EveryKindUDF", *cells])
            assert f"<tr>{row}</tr>" in out
        else:
            [line] = [ln for ln in lines if ln.split()[:2] == ["EveryKindUDF", name]]
            for cell in cells:
                assert cell in line
    for heading in ("buffer", "kind", "extra_shape", "dtype", "use", "shape", "raw shape"):
        assert heading in out
    assert "input dtype float32" in out
    assert "5 frames selected" in out


def test_several_udfs_share_one_input_dtype(unreadable):
    class NativeUDF(SumUDF):
        def get_preferred_input_dtype(self):
            return np.float64

    info = display(unreadable, [SumUDF(), NativeUDF()])
    assert [u.name for u in info.udfs] == ["SumUDF", "NativeUDF"]
    assert [u.input_dtype for u in info.udfs] == [np.float64, np.float64]
    assert [(b.udf, b.dtype) for b in info.buffers] == [
        ("SumUDF", np.float64),
        ("NativeUDF", np.float64),
    ]
    # SumUDF takes the native dtype (and sums in float32 or wider)
    assert [u.preferred_input_dtype for u in info.udfs] == [bool, np.float64]
    assert "SumUDF: method tile, backends numpy, preferred input dtype native" in str(info)


def test_shapes_that_depend_on_the_roi(unreadable, roi):
    info = display(unreadable, PickUDF(), roi=roi)
    [row] = info.buffers
    assert row.kind == "single"
    assert row.shape == (5, 4, 5)


def test_the_udf_passed_in_is_left_alone(unreadable, roi):
    udf = EveryKindUDF()
    display(unreadable, udf, roi=roi)
    assert udf.meta is None


def test_display_raises_what_a_run_raises_before_reading(unreadable):
    class NoProcess(UDF):
        def get_result_buffers(self):
            return {"x": self.buffer(kind="nav")}

    with pytest.raises(UDFException, match="process_tile"):
        display(unreadable, NoProcess())
    with pytest.raises(ValueError, match=r"\(6, 8\)"):
        display(unreadable, SumUDF(), roi=np.ones((4, 4), dtype=bool))
    with pytest.raises(TypeError, match="expected UDF instances"):
        display(unreadable, [SumUDF(), "SumUDF"])
    with pytest.raises(TypeError, match="expected a UDF or a list of UDFs"):
        display(unreadable, SumUDF)
