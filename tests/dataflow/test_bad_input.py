"""Every wrong argument a user can give, in one place: a clear error before any task runs.

Each case is one ``pytest.param``: what is passed, the exception type, and a pattern
for a message that names what was given and what was expected. Arguments of a run go
through ``run_udf`` and ``run_udf_iter`` (which must raise when called, before it is
iterated) on a dataset whose data tasks raise ``AssertionError`` if they ever run; a
dask callback also checks that no task started at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np
import pytest
from dask.callbacks import Callback

from dataflow.api import Context
from dataflow.corrections import CorrectionSet
from dataflow.errors import (
    AdapterNotFoundError,
    DataflowWarning,
    DataSetException,
    ExecutorSpecException,
    RoiError,
    UDFException,
)
from dataflow.executor.inline import InlineJobExecutor
from dataflow.udf import UDF
from dataflow.udf.sum import SumUDF

if TYPE_CHECKING:
    from pathlib import Path

NAV = (4, 6)
SIG = (8, 8)


def _trap(block_info=None):
    raise AssertionError("a data task ran: bad input must be refused before that")


class _TaskCounter(Callback):
    """Records every task that dask's local schedulers start."""

    def __init__(self):
        super().__init__()
        self.started = []

    def _pretask(self, key, dsk, state):
        self.started.append(key)


@dataclass
class Env:
    ctx: Context
    ds: Any
    tmp_path: Path


@pytest.fixture
def env(tmp_path):
    ctx = Context(executor=InlineJobExecutor())
    trap = da.map_blocks(
        _trap,
        chunks=((2, 2), (NAV[1],), (SIG[0],), (SIG[1],)),
        dtype="float32",
        meta=np.empty((0, 0, 0, 0), dtype="float32"),
    )
    ds = ctx.load("dask", trap, sig_dims=2, num_partitions=2)
    return Env(ctx, ds, tmp_path)


# UDFs with one thing wrong ------------------------------------------------------------------------


class NoProcessUDF(UDF):
    def get_result_buffers(self):
        return {"x": self.buffer(kind="nav")}


class DeclaredUDF(UDF):
    """Declares one buffer from its parameters: ``DeclaredUDF(name=..., decl={...})``."""

    def get_result_buffers(self):
        return {self.params.name: self.buffer(**self.params.decl)}

    def process_frame(self, frame):
        pass

    def merge(self, dest, src):
        pass


class SigWithoutMergeUDF(UDF):
    def get_result_buffers(self):
        return {"acc": self.buffer(kind="sig")}

    def process_frame(self, frame):
        self.results.acc[:] += frame


class ListBuffersUDF(UDF):
    def get_result_buffers(self):
        return [self.buffer(kind="nav")]

    def process_frame(self, frame):
        pass


class BadDtypeUDF(SumUDF):
    def get_preferred_input_dtype(self):
        return "floaty"


class AuxUDF(UDF):
    def get_result_buffers(self):
        return {"x": self.buffer(kind="nav")}

    def process_frame(self, frame):
        self.results.x[:] = self.params.offsets


def _declared(name="x", **decl):
    return DeclaredUDF(name=name, decl=decl)


def _aux(n, extra_shape=()):
    values = np.zeros((n, *extra_shape), dtype="float32")
    return AuxUDF(offsets=UDF.aux_data(values, kind="nav", extra_shape=extra_shape))


def _m(*parts):
    """A pattern matching ``parts`` in this order, anything between them."""
    return ".*".join(re.escape(p) for p in parts)


# arguments of run_udf and run_udf_iter --------------------------------------------------------

_as_float_warnings = pytest.mark.filterwarnings("error::dataflow.errors.DataflowWarning")

RUN_CASES = [
    # the region of interest: shape, dtype, form
    pytest.param(
        {"roi": np.ones((3, 3), bool)},
        RoiError,
        _m("roi has shape (3, 3); the navigation shape is (4, 6)"),
        id="roi-shape",
    ),
    pytest.param(
        {"roi": np.ones(25, bool)},
        RoiError,
        _m("roi has shape (25,); the navigation shape is (4, 6)"),
        id="roi-size",
    ),
    pytest.param(
        {"roi": np.full(NAV, None, dtype=object)},
        TypeError,
        _m("roi is a ndarray of Python objects; expected a boolean array"),
        id="roi-dtype-object",
    ),
    pytest.param(
        {"roi": np.ones(NAV)},
        DataflowWarning,
        _m("roi has dtype float64; it is converted to bool"),
        id="roi-dtype-float-warns",
        marks=_as_float_warnings,
    ),
    pytest.param(
        {"roi": np.full(NAV, "yes")},
        DataflowWarning,
        _m("roi has dtype <U3; it is converted to bool"),
        id="roi-dtype-str-warns",
        marks=_as_float_warnings,
    ),
    pytest.param(
        {"roi": "all"},
        TypeError,
        _m("roi is a str; expected a boolean array of the navigation shape (4, 6)"),
        id="roi-form-str",
    ),
    pytest.param(
        {"roi": {"frames": [1, 2]}},
        TypeError,
        _m("roi is a dict; expected a boolean array"),
        id="roi-form-dict",
    ),
    pytest.param(
        {"roi": (4, 0)},
        RoiError,
        _m("roi coordinate (4, 0) lies outside the navigation shape (4, 6)"),
        id="roi-coordinate",
    ),
    pytest.param(
        {"roi": [((0, 0), True), ((0, 9), True)]},
        RoiError,
        _m("roi coordinate (0, 9) lies outside the navigation shape (4, 6)"),
        id="roi-pairs",
    ),
    # the dataset and the UDFs themselves
    pytest.param(
        {"dataset": np.zeros((*NAV, *SIG))},
        TypeError,
        _m("dataset is a ndarray; expected a DataSet", "ctx.load('memory', data=array)"),
        id="dataset-array",
    ),
    pytest.param(
        {"udf": SumUDF},
        TypeError,
        _m("udf is a type; expected a UDF or a list of UDFs"),
        id="udf-class",
    ),
    pytest.param(
        {"udf": []},
        ValueError,
        _m("udf is an empty list; pass at least one UDF"),
        id="udf-empty",
    ),
    pytest.param(
        {"udf": [SumUDF(), "SumUDF"]},
        TypeError,
        _m("udf contains a str; expected UDF instances"),
        id="udf-list-item",
    ),
    pytest.param(
        {"udf": NoProcessUDF()},
        UDFException,
        _m("NoProcessUDF implements none of process_tile, process_frame and process_partition"),
        id="udf-no-process-method",
    ),
    pytest.param(
        {"udf": SigWithoutMergeUDF()},
        NotImplementedError,
        _m("only works for kind='nav' buffers", "SigWithoutMergeUDF declares buffer 'acc'"),
        id="udf-sig-buffer-without-merge",
    ),
    pytest.param(
        {"udf": ListBuffersUDF()},
        UDFException,
        _m("ListBuffersUDF.get_result_buffers() returned a list; expected a dict"),
        id="udf-buffers-not-a-dict",
    ),
    pytest.param(
        {"udf": BadDtypeUDF()},
        UDFException,
        _m("BadDtypeUDF.get_preferred_input_dtype() returned 'floaty', not a dtype"),
        id="udf-preferred-dtype",
    ),
    # buffer declarations: kind, extra_shape, dtype, name
    pytest.param(
        {"udf": _declared(kind="frame")},
        ValueError,
        _m("buffer kind is 'frame'; expected one of ('nav', 'sig', 'single')"),
        id="buffer-kind",
    ),
    pytest.param(
        {"udf": _declared(kind="nav", use="secret")},
        ValueError,
        _m("buffer use is 'secret'; expected one of (None, 'private', 'result_only')"),
        id="buffer-use",
    ),
    pytest.param(
        {"udf": _declared(kind="nav", extra_shape=(-1,))},
        ValueError,
        _m("extra_shape is (-1,); expected a tuple of non-negative integers"),
        id="extra-shape-negative",
    ),
    pytest.param(
        {"udf": _declared(kind="nav", extra_shape=2.5)},
        TypeError,
        _m("extra_shape is 2.5; expected a tuple of non-negative integers"),
        id="extra-shape-float",
    ),
    pytest.param(
        {"udf": _declared(kind="sig", extra_shape="2x2")},
        ValueError,
        _m("extra_shape is '2x2'; expected a tuple of non-negative integers"),
        id="extra-shape-str",
    ),
    pytest.param(
        {"udf": _declared(kind="nav", dtype="floaty")},
        TypeError,
        _m("dtype is 'floaty'; expected a NumPy dtype or dtype name"),
        id="buffer-dtype-str",
    ),
    pytest.param(
        {"udf": _declared(kind="nav", dtype="f9")},
        TypeError,
        _m("dtype is 'f9'; expected a NumPy dtype or dtype name"),
        id="buffer-dtype-size",
    ),
    pytest.param(
        {"udf": _declared(name="my-buffer", kind="nav")},
        UDFException,
        _m("DeclaredUDF declares a buffer named 'my-buffer'; buffer names must be Python"),
        id="buffer-name",
    ),
    # aux data, corrections, backends
    pytest.param(
        {"udf": _aux(23)},
        ValueError,
        _m("aux parameter 'offsets' of AuxUDF has 23 entries", "(4, 6) has 24 frames"),
        id="aux-length",
    ),
    pytest.param(
        {"udf": _aux(12, extra_shape=(2,))},
        ValueError,
        _m("aux parameter 'offsets' of AuxUDF has 12 entries", "(4, 6) has 24 frames"),
        id="aux-length-extra-shape",
    ),
    pytest.param(
        {"corrections": CorrectionSet(dark=np.zeros((3, 3)))},
        ValueError,
        _m("dark has shape (3, 3); the dataset's signal shape is (8, 8)"),
        id="corrections-dark-shape",
    ),
    pytest.param(
        {"corrections": CorrectionSet(gain=np.ones((8, 9)))},
        ValueError,
        _m("gain has shape (8, 9); the dataset's signal shape is (8, 8)"),
        id="corrections-gain-shape",
    ),
    pytest.param(
        {"corrections": CorrectionSet(excluded_pixels=np.zeros((9, 8), bool))},
        ValueError,
        _m("excluded_pixels has shape (9, 8); the dataset's signal shape is (8, 8)"),
        id="corrections-excluded-shape",
    ),
    pytest.param(
        {"corrections": np.zeros(SIG)},
        TypeError,
        _m("corrections is a ndarray; expected a CorrectionSet"),
        id="corrections-type",
    ),
    pytest.param(
        {"backends": ("cupy",)},
        ValueError,
        _m("backends is ('cupy',); dataflow runs the 'numpy' backend only"),
        id="backends",
    ),
    # plots, progress, merge tree
    pytest.param(
        {"plots": [["nope"]]},
        ValueError,
        _m("plot channel 'nope' is not a buffer of SumUDF; its buffers: ['intensity']"),
        id="plots-unknown-buffer",
    ),
    pytest.param(
        {"plots": "intensity"},
        TypeError,
        _m("plots is 'intensity'; expected True"),
        id="plots-type",
    ),
    pytest.param(
        {"progress": "yes"},
        TypeError,
        _m("progress is 'yes'; expected True, False or a ProgressReporter"),
        id="progress-str",
    ),
    pytest.param(
        {"progress": 1},
        TypeError,
        _m("progress is 1; expected True, False or a ProgressReporter"),
        id="progress-int",
    ),
    pytest.param(
        {"split_every": 1},
        ValueError,
        _m("split_every is 1; expected an integer >= 2"),
        id="split-every",
    ),
]


@pytest.mark.parametrize("how", ["run_udf", "run_udf_iter"])
@pytest.mark.parametrize(("kwargs", "error", "match"), RUN_CASES)
def test_run_arguments(env, how, kwargs, error, match):
    call = {"dataset": env.ds, "udf": SumUDF(), **kwargs}
    with _TaskCounter() as counter, pytest.raises(error, match=match):
        getattr(env.ctx, how)(**call)  # run_udf_iter must raise before it is iterated
    assert counter.started == []


def test_the_trap_dataset_fails_loudly_when_read(env):
    """The check above means something: a run that starts its tasks raises AssertionError."""
    with _TaskCounter() as counter, pytest.raises(AssertionError, match="a data task ran"):
        env.ctx.run_udf(dataset=env.ds, udf=SumUDF())
    assert counter.started


# arguments of load, make_with and Context -----------------------------------------------------------


def _npy(tmp_path, truncate=0):
    path = tmp_path / "scan.npy"
    np.save(path, np.zeros((*NAV, *SIG), dtype="float32"))
    if truncate:
        with path.open("r+b") as f:
            f.truncate(path.stat().st_size - truncate)
    return path


def _raw(tmp_path, extra=0):
    path = tmp_path / "scan.raw"
    path.write_bytes(bytes(24 * 64 * 4 + extra))
    return path


def _memory(**kwargs):
    return lambda e: e.ctx.load("memory", data=np.zeros((*NAV, *SIG), dtype="float32"), **kwargs)


def _dask(**kwargs):
    return lambda e: e.ctx.load("dask", da.zeros((*NAV, *SIG), chunks=(2, 6, 8, 8)), **kwargs)


SETUP_CASES = [
    # where the data comes from: filetype, path, truncated files
    pytest.param(
        lambda e: e.ctx.load("tiff", path=e.tmp_path / "a.tif"),
        AdapterNotFoundError,
        _m("unknown filetype 'tiff'; known filetypes:", "npy", "zarr"),
        id="filetype-unknown",
    ),
    pytest.param(
        lambda e: e.ctx.load(3),
        TypeError,
        _m("filetype is a int; expected a string such as 'memory'"),
        id="filetype-type",
    ),
    pytest.param(
        lambda e: e.ctx.load("auto", path=e.tmp_path / "notes.txt"),
        FileNotFoundError,
        _m("no such file or directory:", "notes.txt"),
        id="auto-missing-path",
    ),
    pytest.param(
        lambda e: e.ctx.load("npy", path=e.tmp_path / "missing.npy"),
        FileNotFoundError,
        _m("no such .npy file:", "missing.npy"),
        id="npy-missing-path",
    ),
    pytest.param(
        lambda e: e.ctx.load(
            "raw", path=e.tmp_path / "missing.raw", dtype="f4", nav_shape=NAV, sig_shape=SIG
        ),
        FileNotFoundError,
        _m("no such raw file:", "missing.raw"),
        id="raw-missing-path",
    ),
    pytest.param(
        lambda e: e.ctx.load("zarr", path=e.tmp_path / "missing.zarr"),
        FileNotFoundError,
        _m("no such zarr store:", "missing.zarr"),
        id="zarr-missing-path",
    ),
    pytest.param(
        lambda e: e.ctx.load("npy", path=_npy(e.tmp_path, truncate=100)),
        DataSetException,
        _m("has 6172 bytes; its header (shape (4, 6, 8, 8), dtype float32) expects 6272 bytes"),
        id="npy-truncated",
    ),
    pytest.param(
        lambda e: e.ctx.load(
            "raw", path=_raw(e.tmp_path, extra=-3), dtype="float32", nav_shape=NAV, sig_shape=SIG
        ),
        DataSetException,
        _m("has 6141 bytes, which is not a whole number of frames", "has 256 bytes"),
        id="raw-truncated",
    ),
    pytest.param(
        lambda e: e.ctx.load(
            "raw", path=_raw(e.tmp_path), dtype="floaty", nav_shape=NAV, sig_shape=SIG
        ),
        TypeError,
        _m("dtype is 'floaty', which is not a NumPy dtype", "expected e.g. 'uint16'"),
        id="raw-dtype-str",
    ),
    pytest.param(
        lambda e: e.ctx.load(
            "raw", path=_raw(e.tmp_path), dtype="U4", nav_shape=NAV, sig_shape=SIG
        ),
        TypeError,
        _m("dtype is 'U4' (<U4); expected a numeric dtype"),
        id="raw-dtype-kind",
    ),
    pytest.param(
        lambda e: e.ctx.load("memory"),
        TypeError,
        _m("ctx.load('memory', ...) needs data=<numpy array>"),
        id="memory-no-data",
    ),
    pytest.param(
        lambda e: e.ctx.load("dask", np.zeros((*NAV, *SIG))),
        TypeError,
        _m("ctx.load('dask', ...) needs a dask.array.Array; got ndarray"),
        id="dask-numpy",
    ),
    # the dataset's shape
    pytest.param(
        _memory(sig_dims=4),
        ValueError,
        _m("sig_dims is 4;", "shape (4, 6, 8, 8) (4 dimensions), so sig_dims must be from 1 to 3"),
        id="sig-dims-too-large",
    ),
    pytest.param(
        _memory(sig_dims=0),
        ValueError,
        _m("sig_dims is 0;", "so sig_dims must be from 1 to 3"),
        id="sig-dims-zero",
    ),
    pytest.param(
        _dask(sig_dims=-1),
        ValueError,
        _m("sig_dims is -1;", "so sig_dims must be from 1 to 3"),
        id="sig-dims-negative-dask",
    ),
    pytest.param(
        lambda e: e.ctx.load("npy", path=_npy(e.tmp_path), sig_dims=4),
        ValueError,
        _m("sig_dims is 4;", "scan.npy", "so sig_dims must be from 1 to 3"),
        id="sig-dims-npy",
    ),
    pytest.param(
        _memory(sig_dims="2"),
        TypeError,
        _m("sig_dims is '2'; expected an integer from 1 to 3"),
        id="sig-dims-str",
    ),
    pytest.param(
        _memory(nav_shape=(0, 6)),
        ValueError,
        _m("nav_shape is (0, 6); expected a tuple of positive integers"),
        id="nav-shape",
    ),
    pytest.param(
        _memory(sig_shape=(7, 8)),
        DataSetException,
        _m("sig_shape is (7, 8), 56 elements per frame", "have shape (8, 8), 64 elements"),
        id="sig-shape",
    ),
    pytest.param(
        _memory(sync_offset=24),
        DataSetException,
        _m("sync_offset is 24; the data has 24 frames, so it must lie in (-24, 24)"),
        id="sync-offset",
    ),
    # partitions
    pytest.param(
        _memory(num_partitions=0),
        ValueError,
        _m("num_partitions is 0; expected an integer >= 1"),
        id="num-partitions-zero",
    ),
    pytest.param(
        _memory(num_partitions=-2),
        ValueError,
        _m("num_partitions is -2; expected an integer >= 1"),
        id="num-partitions-negative",
    ),
    pytest.param(
        _dask(num_partitions=0),
        ValueError,
        _m("num_partitions is 0; expected an integer >= 1"),
        id="num-partitions-zero-dask",
    ),
    pytest.param(
        lambda e: e.ctx.load("npy", path=_npy(e.tmp_path), num_partitions=-1),
        ValueError,
        _m("num_partitions is -1; expected an integer >= 1"),
        id="num-partitions-negative-npy",
    ),
    pytest.param(
        _memory(num_partitions=1.5),
        TypeError,
        _m("num_partitions is 1.5; expected an integer >= 1"),
        id="num-partitions-float",
    ),
    pytest.param(
        _memory(num_partitions=25),
        ValueError,
        _m("num_partitions is 25; the dataset has only 24 frames"),
        id="num-partitions-more-than-frames",
    ),
    pytest.param(
        _memory(partition_bytes=0),
        ValueError,
        _m("partition_bytes is 0"),
        id="partition-bytes-zero",
    ),
    pytest.param(
        _dask(partition_bytes=-1),
        ValueError,
        _m("partition_bytes is -1"),
        id="partition-bytes-negative",
    ),
    pytest.param(
        _memory(tileshape=(0, 8, 8)),
        ValueError,
        _m("tileshape is (0, 8, 8); expected a tuple of positive integers"),
        id="tileshape",
    ),
    # executors
    pytest.param(
        lambda e: Context.make_with("gpu"),
        ExecutorSpecException,
        _m("unknown executor 'gpu'; known executors: inline", "dask"),
        id="executor-unknown",
    ),
    pytest.param(
        lambda e: Context.make_with(3),
        TypeError,
        _m("executor_spec is 3; expected a name such as 'threads'"),
        id="executor-spec-type",
    ),
    pytest.param(
        lambda e: Context(executor="threads"),
        TypeError,
        _m("executor is a str; expected a JobExecutor"),
        id="executor-type",
    ),
    pytest.param(
        lambda e: Context.make_with("threads", cpus=0),
        ValueError,
        _m("the worker count is 0; expected a positive integer"),
        id="cpus-zero",
    ),
    pytest.param(
        lambda e: Context.make_with("threads", cpus="4"),
        TypeError,
        _m("cpus is '4'"),
        id="cpus-str",
    ),
    pytest.param(
        lambda e: Context.make_with("threads", gpus=1),
        ExecutorSpecException,
        _m("gpus is 1; dataflow runs on CPUs only"),
        id="gpus",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), SETUP_CASES)
def test_setup_arguments(env, call, error, match):
    with _TaskCounter() as counter, pytest.raises(error, match=match):
        call(env)
    assert counter.started == []
