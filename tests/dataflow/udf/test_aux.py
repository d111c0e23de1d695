"""Aux data parameters (``UDF.aux_data``) and valid masks (``UDF.with_mask``)."""

from __future__ import annotations

import numpy as np
import pytest

from dataflow.errors import InvalidMaskError
from dataflow.udf import UDF


class AuxFrame(UDF):
    """Adds each frame's aux entries to its sum; records the aux views it sees."""

    def get_result_buffers(self):
        assert self.params.shift.shape == (20, 2)  # the full, flat aux data
        return {
            "out": self.buffer(kind="nav", extra_shape=(2,), dtype="float64"),
            "scalar": self.buffer(kind="nav", dtype="float64"),
        }

    def process_frame(self, frame):
        assert self.params.shift.shape == (2,)
        assert self.params.weight.shape == (1,)
        self.results.out[:] = frame.sum() + self.params.shift
        self.results.scalar[:] = self.params.weight


class AuxTile(AuxFrame):
    process_frame = None

    def process_tile(self, tile):
        n = len(tile)
        assert self.params.shift.shape == (n, 2)
        assert self.params.weight.shape == (n,)
        self.results.out[:] = tile.sum(axis=(1, 2))[:, None] + self.params.shift
        self.results.scalar[:] = self.params.weight


class AuxPartition(AuxTile):
    process_tile = None

    def process_partition(self, partition):
        self.process_tile_impl(partition)

    def process_tile_impl(self, tile):
        AuxTile.process_tile(self, tile)


@pytest.mark.parametrize("udf_class", [AuxFrame, AuxTile, AuxPartition])
@pytest.mark.parametrize("with_roi", [False, True])
def test_aux_views_follow_frames_tiles_partitions_and_roi(ctx, udf_class, with_roi):
    data = np.arange(4 * 5 * 3 * 3, dtype="float64").reshape(4, 5, 3, 3)
    shift = np.arange(40, dtype="float64").reshape(4, 5, 2) * 10
    weight = np.arange(20, dtype="float32") + 0.5
    ds = ctx.load("memory", data=data, num_partitions=3)
    roi = None
    if with_roi:
        roi = np.zeros((4, 5), bool)
        roi.reshape(-1)[[1, 2, 6, 13, 19]] = True
    udf = udf_class(
        shift=UDF.aux_data(shift, kind="nav", extra_shape=(2,), dtype="float64"),
        weight=UDF.aux_data(weight, kind="nav", dtype="float32"),
    )
    res = ctx.run_udf(dataset=ds, udf=udf, roi=roi)
    sel = np.ones(20, bool) if roi is None else roi.reshape(-1)
    expected = data.reshape(20, -1).sum(axis=1)[:, None] + shift.reshape(20, 2)
    np.testing.assert_allclose(res["out"].raw_data, expected[sel])
    np.testing.assert_allclose(res["scalar"].raw_data, weight[sel])


def test_aux_in_merge_and_get_results_is_roi_compressed(ctx):
    class UsesAux(UDF):
        def get_result_buffers(self):
            return {"s": self.buffer(kind="sig"), "n": self.buffer(kind="single")}

        def process_frame(self, frame):
            self.results.s += frame * self.params.w[0]

        def merge(self, dest, src):
            dest.s += src.s

        def get_results(self):
            return {"s": self.results.s, "n": np.array([self.params.w.sum()], "float32")}

    w = np.arange(1, 17, dtype="float32")
    roi = np.zeros((4, 4), bool)
    roi[0] = True
    ds = ctx.load("memory", data=np.ones((4, 4, 2, 2), "float32"), num_partitions=2)
    res = ctx.run_udf(dataset=ds, udf=UsesAux(w=UDF.aux_data(w, kind="nav")), roi=roi)
    np.testing.assert_allclose(res["s"].data, np.full((2, 2), w[:4].sum()))
    assert res["n"].data[0] == w[:4].sum()


def test_aux_errors(ctx):
    with pytest.raises(TypeError, match="aux data has dtype int64; it was declared with dtype"):
        UDF.aux_data(np.zeros(4, "int64"), kind="nav", dtype="float32")
    with pytest.raises(ValueError, match="aux data kind is 'single'"):
        UDF.aux_data(np.zeros(4, "float32"), kind="single")

    class Takes(UDF):
        def get_result_buffers(self):
            return {"x": self.buffer(kind="nav")}

        def process_frame(self, frame):
            pass

    ds = ctx.load("memory", data=np.zeros((4, 4, 2, 2)))
    short = UDF.aux_data(np.zeros(10, "float32"), kind="nav")
    with pytest.raises(
        ValueError, match=r"aux parameter 'p' of Takes has 10 entries; .* 16 frames"
    ):
        ctx.run_udf(dataset=ds, udf=Takes(p=short))


def test_with_mask_sets_valid_mask(ctx):
    class Masked(UDF):
        def get_result_buffers(self):
            return {
                "nav": self.buffer(kind="nav"),
                "sig": self.buffer(kind="sig"),
            }

        def process_frame(self, frame):
            self.results.nav[:] = frame.sum()
            self.results.sig += frame

        def merge(self, dest, src):
            dest.nav[:] = src.nav
            dest.sig += src.sig

        def get_results(self):
            nav_mask = self.results.nav > 2
            sig_mask = np.zeros(self.results.sig.shape, bool)
            sig_mask[0] = True
            return {
                "nav": self.with_mask(self.results.nav, nav_mask),
                "sig": self.with_mask(self.results.sig, sig_mask),
            }

    data = np.zeros((2, 3, 2, 2), "float32")
    data[1] = 1
    roi = np.ones((2, 3), bool)
    roi[1, 2] = False
    ds = ctx.load("memory", data=data)
    res = ctx.run_udf(dataset=ds, udf=Masked(), roi=roi)
    np.testing.assert_array_equal(res["nav"].valid_mask, [[False] * 3, [True, True, False]])
    np.testing.assert_array_equal(res["sig"].valid_mask, [[True, True], [False, False]])
    assert res["nav"].masked_data.count() == 2
    assert res["nav"].raw_masked_data.count() == 2


def test_with_mask_errors():
    with pytest.raises(InvalidMaskError, match="does not broadcast"):
        UDF.with_mask(np.zeros((3, 4)), np.ones((2,), bool))
    with pytest.raises(InvalidMaskError, match="dtype int64; expected bool"):
        UDF.with_mask(np.zeros(3), np.ones(3, "int64"))
    assert UDF.with_mask(np.zeros(3), True).mask.all()
