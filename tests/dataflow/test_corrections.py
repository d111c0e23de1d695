"""Detector corrections: dark, gain and excluded pixels, applied before UDFs see a tile."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse

from dataflow.corrections import CorrectionSet, RepairValueError
from dataflow.udf import UDF


class Frames(UDF):
    def get_result_buffers(self):
        sig = tuple(self.meta.dataset_shape.sig)
        return {"f": self.buffer(kind="nav", extra_shape=sig, dtype=self.meta.input_dtype)}

    def process_tile(self, tile):
        self.results.f[:] = tile


class PartitionFrames(Frames):
    process_tile = None

    def process_partition(self, partition):
        self.results.f[:] = partition


def _reference(frames, dark, gain, excluded):
    out = frames.astype(np.result_type(frames.dtype, np.float32))
    if dark is not None:
        out = out - dark
    if gain is not None:
        out = out * gain
    if excluded is not None:
        sig = excluded.shape
        for c in np.argwhere(excluded):
            values = []
            for o in itertools.product((-1, 0, 1), repeat=len(sig)):
                n = tuple(c + np.array(o))
                if any(o) and all(0 <= n[d] < sig[d] for d in range(len(sig))) and not excluded[n]:
                    values.append(out[(slice(None), *n)])
            out[(slice(None), *tuple(c))] = np.mean(values, axis=0)
    return out


@pytest.mark.parametrize("udf_class", [Frames, PartitionFrames])
@pytest.mark.parametrize("dtype", ["uint16", "float32", "float64"])
@pytest.mark.parametrize("with_roi", [False, True])
def test_dark_gain_and_excluded_pixels(ctx, rng, udf_class, dtype, with_roi):
    data = (rng.random((4, 5, 6, 7)) * 100).astype(dtype)
    dark = rng.random((6, 7)).astype("float32")
    gain = (1 + rng.random((6, 7))).astype("float32")
    excluded = np.zeros((6, 7), bool)
    excluded[0, 0] = excluded[3, 4] = excluded[3, 5] = excluded[5, 6] = True
    before = data.copy()
    ds = ctx.load("memory", data=data, num_partitions=3)
    roi = None
    if with_roi:
        roi = rng.random((4, 5)) < 0.5
        roi[0, 0] = True
    corr = CorrectionSet(dark=dark, gain=gain, excluded_pixels=excluded)
    res = ctx.run_udf(dataset=ds, udf=udf_class(), roi=roi, corrections=corr)["f"]
    assert res.dtype == np.result_type(dtype, np.float32)  # corrections force float
    expected = _reference(data.reshape(20, 6, 7), dark, gain, excluded)
    sel = np.ones(20, bool) if roi is None else roi.reshape(-1)
    np.testing.assert_allclose(res.raw_data, expected[sel], rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(data, before)  # the dataset's memory is untouched


@pytest.mark.parametrize(
    "form",
    ["mask", "coords", "scipy"],
)
def test_excluded_pixel_forms(ctx, form):
    data = np.arange(2 * 2 * 4 * 4, dtype="float32").reshape(2, 2, 4, 4)
    mask = np.zeros((4, 4), bool)
    mask[1, 2] = True
    excluded = {
        "mask": mask,
        "coords": np.array([[1], [2]]),
        "scipy": scipy.sparse.csr_matrix(mask),
    }[form]
    ds = ctx.load("memory", data=data)
    corr = CorrectionSet(excluded_pixels=excluded, gain=np.ones((4, 4)))
    res = ctx.run_udf(dataset=ds, udf=Frames(), corrections=corr)["f"].raw_data
    np.testing.assert_allclose(res, _reference(data.reshape(4, 4, 4), None, None, mask))


def test_errors():
    isolated = np.ones((3, 3), bool)
    isolated[1, 1] = True
    with pytest.raises(RepairValueError, match=r"no valid neighbour"):
        CorrectionSet(excluded_pixels=isolated)
    assert CorrectionSet(excluded_pixels=isolated, allow_empty=True).have_corrections()
    with pytest.raises(ValueError, match=r"dark has shape \(3, 3\); the dataset's signal shape"):
        CorrectionSet(dark=np.zeros((3, 3))).check((4, 4))


def test_corrections_checked_before_reading(ctx):
    ds = ctx.load("memory", data=np.zeros((2, 2, 4, 4)))
    with pytest.raises(ValueError, match=r"gain has shape \(5, 5\)"):
        ctx.run_udf(dataset=ds, udf=Frames(), corrections=CorrectionSet(gain=np.ones((5, 5))))
    with pytest.raises(TypeError, match="expected a CorrectionSet"):
        ctx.run_udf(dataset=ds, udf=Frames(), corrections={"dark": 1})


def test_backends(ctx):
    class CupyOnly(Frames):
        def get_backends(self):
            return (self.BACKEND_CUPY,)

    ds = ctx.load("memory", data=np.zeros((2, 2, 4, 4)))
    with pytest.raises(ValueError, match=r"CupyOnly.get_backends\(\) returned \('cupy',\) \(cupy"):
        ctx.run_udf(dataset=ds, udf=CupyOnly())
    with pytest.raises(ValueError, match="backends is \\('cupy',\\)"):
        ctx.run_udf(dataset=ds, udf=Frames(), backends=("cupy",))
    ctx.run_udf(dataset=ds, udf=Frames(), backends=("numpy",))
