"""Tests of the ``mrc`` adapter (``adapters/mrc.py``), on files from RosettaSciIO's MRCZ writer."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import ClassVar

import numpy as np
import pytest

from dataflow import registry
from dataflow.adapters import _rsciio
from dataflow.adapters.mrc import MRCAdapter
from dataflow.errors import DataSetException
from dataflow.testing import AdapterTests, FrameCopyUDF, reference_data

NAME, TARGET = "mrc", "dataflow.adapters.mrc:MRCAdapter"


def test_entry_point_is_installed():
    """pyproject.toml registers the adapter under its name."""
    found = {ep.name: ep.value for ep in entry_points(group=registry.GROUP)}
    assert found.get(NAME) == TARGET


def write_mrc(path, stack, *, pixel=(0.5, 0.25), grid=False) -> None:
    """Write a (frames, y, x) stack with RosettaSciIO's MRCZ writer, uncompressed.

    MRCZ stores the cell size (``Xlen``...) but leaves the grid size (``MX``...) 0;
    ``grid=True`` sets it to the frame size, as MRC2014 asks, so readers find a pixel size.
    """
    mrcz = pytest.importorskip("rsciio.mrcz")
    axes = [
        {"name": n, "size": s, "scale": sc, "offset": 0.0, "units": u, "navigate": nav}
        for n, s, sc, u, nav in zip(
            "zyx", stack.shape, (1.0, *pixel), ("", "nm", "nm"), (True, False, False), strict=True
        )
    ]
    signal = {
        "data": stack,
        "axes": axes,
        "metadata": {"General": {"title": ""}},
        "original_metadata": {},
        "attributes": {"_lazy": False},
    }
    mrcz.file_writer(str(path), signal, compressor=None)
    if grid:
        with open(path, "r+b") as f:
            f.seek(28)  # MX, MY, MZ follow NX, NY, NZ, MODE and the three starts
            f.write(np.array(stack.shape[::-1], "<u4").tobytes())


class TestMRC(AdapterTests):
    filetype = "mrc"
    dtypes: ClassVar[list[str]] = ["uint16", "float32", "int16"]

    def write(self, path, data):
        write_mrc(path / "scan.mrc", data.reshape((-1, *data.shape[-2:])))
        return {"path": path / "scan.mrc", "nav_shape": data.shape[:-2]}


def test_calibrated_axes_give_coords_and_units(tmp_path):
    stack = reference_data((6, 8, 10), "uint16")
    write_mrc(tmp_path / "c.mrc", stack, pixel=(0.5, 0.25), grid=True)
    ds = MRCAdapter.open(tmp_path / "c.mrc")
    assert ds.dims == ("nav_0", "det_y", "det_x")
    np.testing.assert_allclose(ds.coords["det_y"], 0.5 * np.arange(8), rtol=1e-6)
    np.testing.assert_allclose(ds.coords["det_x"], 0.25 * np.arange(10), rtol=1e-6)
    np.testing.assert_array_equal(ds.coords["nav_0"], np.arange(6))
    assert ds.attrs["units"] == {"det_y": "nm", "det_x": "nm"}
    # a new nav_shape keeps the detector calibration
    ds4 = MRCAdapter.open(tmp_path / "c.mrc", nav_shape=(2, 3))
    assert ds4.dims == ("scan_y", "scan_x", "det_y", "det_x")
    np.testing.assert_array_equal(ds4.coords["scan_x"], np.arange(3))
    assert ds4.attrs["units"] == {"det_y": "nm", "det_x": "nm"}


def test_uncalibrated_axes_give_indices_without_units(tmp_path):
    stack = reference_data((4, 8, 8), "float32")
    write_mrc(tmp_path / "u.mrc", stack)  # MX = MY = 0: no pixel size
    ds = MRCAdapter.open(tmp_path / "u.mrc")
    for dim, n in zip(ds.dims, stack.shape, strict=True):
        np.testing.assert_array_equal(ds.coords[dim], np.arange(n))
    assert "units" not in ds.attrs
    assert ds.attrs["mrc"]["extended_header_bytes"] > 0  # MRCZ's JSON metadata
    np.testing.assert_array_equal(ds.array.compute(), stack)


def test_roi_reads_only_selected_frames(ctx, tmp_path, monkeypatch):
    data = reference_data((4, 6, 8, 8), "uint16")
    write_mrc(tmp_path / "r.mrc", data.reshape(24, 8, 8))
    ds = MRCAdapter.open(tmp_path / "r.mrc", nav_shape=(4, 6), num_partitions=3)
    reads = []
    original = _rsciio.OffsetFrameReader.read_frames

    def spy(self, handle, a, b, out):
        reads.append((a, b))
        return original(self, handle, a, b, out)

    monkeypatch.setattr(_rsciio.OffsetFrameReader, "read_frames", spy)
    roi = np.zeros((4, 6), bool)
    roi[1, :2] = roi[3, 4] = True
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF(), roi=roi)
    np.testing.assert_array_equal(res["frames"].raw_data, data[roi])
    read = sorted(i for a, b in reads for i in range(a, b))
    assert read == np.flatnonzero(roi.reshape(-1)).tolist()


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.mrc"):
        MRCAdapter.open(tmp_path / "nope.mrc")


def test_truncated_file_names_both_sizes(tmp_path):
    path = tmp_path / "t.mrc"
    write_mrc(path, reference_data((3, 8, 8), "uint16"))
    full = path.stat().st_size
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DataSetException, match=rf"has {full - 7} bytes.*expects {full} bytes"):
        MRCAdapter.open(path)


def test_not_an_mrc_file(tmp_path):
    path = tmp_path / "x.mrc"
    path.write_bytes(np.full(2048, 0x7F, "u1").tobytes())
    with pytest.raises(DataSetException, match="not an uncompressed"):
        MRCAdapter.open(path)
    (tmp_path / "short.mrc").write_bytes(bytes(100))
    with pytest.raises(DataSetException, match="has 100 bytes"):
        MRCAdapter.open(tmp_path / "short.mrc")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sig_shape": (7, 9)}, DataSetException, "sig_shape"),
        ({"sync_offset": 6}, DataSetException, "sync_offset"),
        ({"nav_shape": (2, 0)}, ValueError, "nav_shape"),
        ({"dims": ("a",)}, DataSetException, "dims"),
        ({"endianess": "<"}, TypeError, "endianess"),
    ],
)
def test_bad_keywords_raise_at_load(tmp_path, kwargs, error, match):
    write_mrc(tmp_path / "k.mrc", reference_data((6, 8, 8), "uint16"))
    with pytest.raises(error, match=match):
        MRCAdapter.open(tmp_path / "k.mrc", **kwargs)
