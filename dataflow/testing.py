"""Test helpers for adapter authors: the shared conformance suite ``AdapterTests``.

Subclass it in a pytest module, name the file type and implement :meth:`write`::

    class TestMyFormat(AdapterTests):
        filetype = "myformat"

        def write(self, path, data):
            my_writer(path / "scan.myf", data)
            return {"path": path / "scan.myf"}

Every adapter then gets the same checks: results equal to NumPy on the data it was
written from (several shapes, dtypes and partition counts, with and without a ROI),
shape, dtype and dimension names, a small picklable graph, a ROI that reads only the
frames it selects, ``nav_shape``/``sync_offset`` where supported, and clear errors for
missing paths.
"""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pytest

from dataflow.api import Context
from dataflow.executor.inline import InlineJobExecutor
from dataflow.udf.base import UDF
from dataflow.udf.sum import SumUDF
from dataflow.udf.sumsigudf import SumSigUDF

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["AdapterTests", "FrameCopyUDF", "reference_data"]


class FrameCopyUDF(UDF):
    """Copies every frame into a nav buffer: the whole dataset, as the UDF saw it."""

    def get_result_buffers(self) -> dict[str, Any]:
        sig = tuple(self.meta.dataset_shape.sig)
        return {"frames": self.buffer(kind="nav", extra_shape=sig, dtype=self.meta.input_dtype)}

    def get_preferred_input_dtype(self) -> Any:
        return self.USE_NATIVE_DTYPE

    def process_tile(self, tile: np.ndarray) -> None:
        self.results.frames[:] = tile


def reference_data(shape: tuple[int, ...], dtype: Any, seed: int = 0) -> np.ndarray:
    """Random data of ``dtype`` whose sums are exact in float32/float64."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind in "ui":
        high = min(int(np.iinfo(dt).max), 1000)
        low = 0 if dt.kind == "u" else -high
        return rng.integers(low, high, size=shape).astype(dt)
    if dt.kind == "c":
        return (rng.integers(-50, 50, size=shape) + 1j * rng.integers(-50, 50, size=shape)).astype(
            dt
        )
    return rng.integers(-1000, 1000, size=shape).astype(dt) / 8


class AdapterTests:
    """Conformance tests every adapter should pass; subclass in a test module.

    Class attributes
    ----------------
    filetype
        The name ``ctx.load`` knows the adapter by.
    shapes, dtypes
        What :meth:`write` must be able to write.
    supports_layout
        Whether ``open`` takes ``nav_shape``, ``sig_shape`` and ``sync_offset``.
    max_graph_bytes
        Upper bound on the pickled partition graph: file sources keep paths and
        offsets in it, never data.
    """

    filetype: ClassVar[str] = ""
    shapes: ClassVar[list[tuple[int, ...]]] = [(4, 6, 8, 8), (5, 16, 12)]
    dtypes: ClassVar[list[str]] = ["uint16", "float32"]
    supports_layout: ClassVar[bool] = True
    max_graph_bytes: ClassVar[int] = 64 * 1024

    def write(self, path: Path, data: np.ndarray) -> dict[str, Any]:
        """Write ``data`` (nav + sig, two signal dimensions) below ``path``.

        Returns the keywords for ``ctx.load(self.filetype, **kwargs)``.
        """
        raise NotImplementedError

    def sig_dims(self, data: np.ndarray) -> int:
        """Signal dimensions of ``data`` as written (2 unless the format differs)."""
        return 2

    # fixtures ------------------------------------------------------------------------------

    @pytest.fixture
    def ctx(self) -> Any:
        with Context(executor=InlineJobExecutor(debug=True)) as c:
            yield c

    def _open(self, ctx: Context, tmp_path: Path, data: np.ndarray, **extra: Any) -> Any:
        kwargs = self.write(tmp_path, data)
        kwargs.update(extra)
        return ctx.load(self.filetype, **kwargs)

    # the suite -------------------------------------------------------------------------------

    @pytest.mark.parametrize("num_partitions", [1, 3])
    def test_same_results_as_numpy(self, ctx: Context, tmp_path: Path, num_partitions: int) -> None:
        for i, shape in enumerate(self.shapes):
            for dtype in self.dtypes:
                data = reference_data(shape, dtype)
                where = tmp_path / f"{i}-{dtype}"
                where.mkdir()
                ds = self._open(ctx, where, data, num_partitions=num_partitions)
                sig_dims = self.sig_dims(data)
                assert tuple(ds.shape) == shape
                assert ds.dtype == data.dtype
                assert ds.get_num_partitions() == num_partitions
                nav_axes = tuple(range(len(shape) - sig_dims))
                sig_axes = tuple(range(len(shape) - sig_dims, len(shape)))
                total, per_frame, copied = ctx.run_udf(
                    dataset=ds, udf=[SumUDF(), SumSigUDF(), FrameCopyUDF()]
                )
                dt = np.result_type(data.dtype, np.float32)
                np.testing.assert_array_equal(
                    total["intensity"].data, data.astype(dt).sum(axis=nav_axes)
                )
                np.testing.assert_array_equal(
                    per_frame["intensity"].data, data.astype(dt).sum(axis=sig_axes)
                )
                np.testing.assert_array_equal(copied["frames"].data, data)

    def test_roi_matches_numpy(self, ctx: Context, tmp_path: Path) -> None:
        shape = self.shapes[0]
        data = reference_data(shape, self.dtypes[0], seed=1)
        sig_dims = self.sig_dims(data)
        ds = self._open(ctx, tmp_path, data, num_partitions=2)
        nav = shape[: len(shape) - sig_dims]
        roi = np.random.default_rng(2).random(nav) < 0.3
        roi.reshape(-1)[-1] = True
        res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF(), roi=roi)
        np.testing.assert_array_equal(res["frames"].raw_data, data[roi])

    def test_dims_and_array(self, ctx: Context, tmp_path: Path) -> None:
        data = reference_data(self.shapes[0], self.dtypes[0])
        ds = self._open(ctx, tmp_path, data)
        assert len(ds.dims) == data.ndim
        assert len(set(ds.dims)) == data.ndim
        np.testing.assert_array_equal(ds.array.compute(), data)

    def test_graph_is_small_and_pickles(self, ctx: Context, tmp_path: Path) -> None:
        data = reference_data(self.shapes[0], self.dtypes[0])
        ds = self._open(ctx, tmp_path, data, num_partitions=2)
        import cloudpickle

        graph = dict(ds.partition_array.__dask_graph__())
        payload = cloudpickle.dumps(graph)
        assert len(payload) < self.max_graph_bytes, (
            f"the partition graph pickles to {len(payload)} bytes: it carries data or handles"
        )
        restored = pickle.loads(payload)
        assert set(restored) == set(graph)
        if ds.reader is not None:
            pickle.loads(cloudpickle.dumps(ds.reader))

    def test_roi_reads_through_the_reader(self, ctx: Context, tmp_path: Path) -> None:
        data = reference_data(self.shapes[0], self.dtypes[0])
        ds = self._open(ctx, tmp_path, data, num_partitions=1)
        assert ds.reader is not None, "file sources should give a reader that honours ROI masks"
        n = ds.layout.n_frames
        mask = np.zeros(n, bool)
        mask[[0, n - 1]] = True
        frames = ds.reader(0, n, mask)
        flat = data.reshape((n, *ds.shape.sig))
        np.testing.assert_array_equal(frames[mask], flat[mask])

    def test_nav_shape_and_sync_offset(self, ctx: Context, tmp_path: Path) -> None:
        if not self.supports_layout:
            pytest.skip(f"{self.filetype} has no nav_shape/sync_offset keywords")
        data = reference_data(self.shapes[0], self.dtypes[0])
        sig_dims = self.sig_dims(data)
        n = int(np.prod(data.shape[: data.ndim - sig_dims]))
        flat = data.reshape((n, *data.shape[data.ndim - sig_dims :]))
        for offset in (3, -2):
            where = tmp_path / f"offset{offset}"
            where.mkdir()
            ds = self._open(ctx, where, data, nav_shape=(n,), sync_offset=offset)
            res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF())
            expected = np.zeros_like(flat)
            for i in range(n):
                if 0 <= i + offset < n:
                    expected[i] = flat[i + offset]
            np.testing.assert_array_equal(res["frames"].data, expected)

    def test_missing_path_raises(self, ctx: Context, tmp_path: Path) -> None:
        data = reference_data(self.shapes[0], self.dtypes[0])
        kwargs = self.write(tmp_path, data)
        if "path" not in kwargs:
            pytest.skip(f"{self.filetype} is not opened from a path")
        kwargs["path"] = tmp_path / "does-not-exist"
        with pytest.raises(FileNotFoundError, match="does-not-exist"):
            ctx.load(self.filetype, **kwargs)
