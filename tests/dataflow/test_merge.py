"""Merge semantics: the tree and the chain both equal LiberTEM's fold in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from dataflow.udf import UDF

C = 1000.0


class StartValue(UDF):
    """preprocess sets a start value C in a sig buffer that merge sums.

    LiberTEM folds n partition results, each starting at C, into an accumulator that
    also starts at C: the result is (n + 1) * C + sum. It also counts merges.
    """

    def get_result_buffers(self):
        return {
            "s": self.buffer(kind="sig", dtype="float64"),
            "merges": self.buffer(kind="single", dtype="int64"),
            "covered": self.buffer(kind="single", dtype="int64"),
        }

    def preprocess(self):
        self.results.s[:] = C

    def process_tile(self, tile):
        self.results.s += tile.sum(axis=0)

    def merge(self, dest, src):
        valid = self.meta.get_valid_nav_mask()
        assert valid is not None
        assert valid.dtype == bool
        dest.s += src.s
        dest.merges += src.merges + 1
        dest.covered[:] = max(int(dest.covered[0]), int(valid.sum()))


class StartValueChain(StartValue):
    MERGE_TREE = False


class NavFromMerge(UDF):
    """A custom merge that writes nav buffers from something other than src's nav."""

    def get_result_buffers(self):
        return {
            "idx": self.buffer(kind="nav", dtype="int64"),
            "pre": self.buffer(kind="nav", dtype="float64"),
        }

    def preprocess(self):
        self.results.pre[:] = -1

    def process_frame(self, frame):
        self.results.idx[:] = self.meta.slice.origin[0]

    def merge(self, dest, src):
        # dest's nav slice for src's frames holds zeros, then preprocess: -1
        assert np.all(dest.pre == -1)
        dest.idx[:] = src.idx * 2
        dest.pre[:] = src.pre


@pytest.mark.parametrize("num_partitions", [1, 2, 7, 64])
@pytest.mark.parametrize("split_every", [2, 3, 8])
@pytest.mark.parametrize("udf_class", [StartValue, StartValueChain])
def test_start_value_in_closed_form(ctx, num_partitions, split_every, udf_class):
    data = np.arange(8 * 8 * 2 * 2, dtype="float64").reshape(8, 8, 2, 2)
    ds = ctx.load("memory", data=data, num_partitions=num_partitions)
    res = ctx.run_udf(dataset=ds, udf=udf_class(), split_every=split_every)
    n = num_partitions
    np.testing.assert_array_equal(res["s"].data, (n + 1) * C + data.sum(axis=(0, 1)))
    assert res["merges"].data[0] == n  # n partitions make n merges
    assert res["covered"].data[0] <= 64


@pytest.mark.parametrize("num_partitions", [1, 3, 64])
@pytest.mark.parametrize("roi_kind", ["none", "half"])
def test_nav_written_by_merge_meets_accumulator_once(ctx, num_partitions, roi_kind):
    data = np.zeros((8, 8, 2, 2), "float32")
    ds = ctx.load("memory", data=data, num_partitions=num_partitions)
    roi = None
    if roi_kind == "half":
        roi = np.zeros((8, 8), bool)
        roi[::2] = True
    res = ctx.run_udf(dataset=ds, udf=NavFromMerge(), roi=roi)
    n_sel = 64 if roi is None else 32
    np.testing.assert_array_equal(res["idx"].raw_data, 2 * np.arange(n_sel))
    np.testing.assert_array_equal(res["pre"].raw_data, -np.ones(n_sel))


def test_tree_and_chain_agree_with_float_data(ctx, data_factory):
    data = data_factory((16, 16, 8, 8), "float32")
    ds = ctx.load("memory", data=data, num_partitions=13)
    tree = ctx.run_udf(dataset=ds, udf=StartValue(), split_every=2)
    chain = ctx.run_udf(dataset=ds, udf=StartValueChain())
    expected = 14 * C + data.astype("float64").sum(axis=(0, 1))
    # float32 tiles are summed in float32 before they reach the float64 buffer
    np.testing.assert_allclose(tree["s"].data, expected, rtol=1e-6)
    np.testing.assert_allclose(chain["s"].data, expected, rtol=1e-6)


def test_valid_nav_mask_in_get_results_covers_all_selected_frames(ctx):
    class Check(UDF):
        def get_result_buffers(self):
            return {"x": self.buffer(kind="nav"), "s": self.buffer(kind="sig")}

        def process_frame(self, frame):
            self.results.x[:] = 1
            self.results.s += frame

        def merge(self, dest, src):
            dest.x[:] = src.x
            dest.s += src.s

        def get_results(self):
            mask = self.meta.get_valid_nav_mask()
            full = self.meta.get_valid_nav_mask(full_nav=True)
            assert mask.shape == (5,)
            assert mask.all()
            assert full.shape == (16,)
            assert full.sum() == 5
            return {"x": self.results.x, "s": self.results.s}

    roi = np.zeros((4, 4), bool)
    roi.reshape(-1)[[0, 3, 7, 8, 15]] = True
    ds = ctx.load("memory", data=np.ones((4, 4, 2, 2), "float32"), num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=Check(), roi=roi)
    assert res["s"].data.sum() == 5 * 4


class SumAll(UDF):
    """Merges only with merge_all (no merge), as LiberTEM's delayed executor allows."""

    calls = 0

    def get_result_buffers(self):
        return {
            "s": self.buffer(kind="sig", dtype="float64"),
            "n": self.buffer(kind="nav", dtype="float64"),
        }

    def process_tile(self, tile):
        self.results.s += tile.sum(axis=0)
        self.results.n[:] = tile.sum(axis=(1, 2))

    def merge_all(self, ordered_results):
        SumAll.calls += 1
        slices = list(ordered_results)
        assert [s.origin[0] for s in slices] == sorted(s.origin[0] for s in slices)
        return {
            "s": np.sum([r.s for r in ordered_results.values()], axis=0),
            "n": np.concatenate([r.n for r in ordered_results.values()]),
        }


@pytest.mark.parametrize("num_partitions", [1, 5])
def test_merge_all_is_called_once_with_ordered_partials(ctx, num_partitions):
    data = np.arange(6 * 5 * 2 * 2, dtype="float64").reshape(6, 5, 2, 2)
    roi = np.ones((6, 5), bool)
    roi[1, 1] = False
    ds = ctx.load("memory", data=data, num_partitions=num_partitions)
    SumAll.calls = 0
    res = ctx.run_udf(dataset=ds, udf=SumAll(), roi=roi)
    assert SumAll.calls == 1
    np.testing.assert_array_equal(res["s"].data, data[roi].sum(axis=0))
    np.testing.assert_array_equal(res["n"].raw_data, data[roi].sum(axis=(1, 2)))
    parts = list(ctx.run_udf_iter(dataset=ds, udf=SumAll(), roi=roi))
    np.testing.assert_array_equal(parts[-1].buffers[0]["s"].data, data[roi].sum(axis=0))
    for p in parts[:-1]:
        covered = p.damage.data
        np.testing.assert_array_equal(p.buffers[0]["s"].data, data[covered].sum(axis=0))


class Returns(UDF):
    """get_results returns ``total`` with another dtype or shape than declared."""

    def __init__(self, how="dtype"):
        super().__init__(how=how)

    def get_result_buffers(self):
        return {
            "s": self.buffer(kind="sig", dtype="float32"),
            "total": self.buffer(kind="single", dtype="float32", use="result_only"),
        }

    def process_tile(self, tile):
        self.results.s += tile.sum(axis=0)

    def merge(self, dest, src):
        dest.s += src.s

    def get_results(self):
        total = self.results.s.sum()
        if self.params.how == "dtype":
            return {"total": np.asarray([total], dtype="float64")}
        if self.params.how == "shape":
            return {"total": np.asarray([total, total], dtype="float32")}
        return {"total": np.asarray([total], dtype="float32")}


@pytest.mark.parametrize(
    ("how", "message"),
    [("dtype", "dtype float64 and shape \\(1,\\)"), ("shape", "dtype float32 and shape \\(2,\\)")],
)
@pytest.mark.parametrize("lazy", [False, True])
def test_results_of_another_dtype_or_shape_than_declared_raise(ctx, how, message, lazy):
    from dataflow.errors import UDFException

    data = np.ones((4, 4, 3, 3), dtype="float32")
    ds = ctx.load("memory", data=data, num_partitions=2)
    expected = (
        rf"Returns.get_results\(\) returned 'total' with {message}; .*float32 and shape \(1,\)"
    )
    if lazy:
        res = ctx.run_udf(dataset=ds, udf=Returns(how=how), lazy=True)
        with pytest.raises(UDFException, match=expected):
            res["total"].compute()
    else:
        with pytest.raises(UDFException, match=expected):
            ctx.run_udf(dataset=ds, udf=Returns(how=how))
    res = ctx.run_udf(dataset=ds, udf=Returns(how="ok"), lazy=lazy)
    total = res["total"].values if lazy else res["total"].data
    np.testing.assert_array_equal(total, [144.0])
