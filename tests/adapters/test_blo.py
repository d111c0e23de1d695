"""Tests of the ``blo`` adapter (``adapters/blo.py``).

Files come from RosettaSciIO's blockfile writer, and from the format description
(:func:`write_blo`) for what that writer cannot make (big-endian, uncalibrated).
"""

from __future__ import annotations

import warnings
from importlib.metadata import entry_points
from typing import ClassVar

import numpy as np
import pytest

from dataflow import registry
from dataflow.adapters import _rsciio
from dataflow.adapters.blo import BloAdapter, read_blo_header
from dataflow.errors import DataSetException
from dataflow.testing import AdapterTests, FrameCopyUDF, reference_data

NAME, TARGET = "blo", "dataflow.adapters.blo:BloAdapter"


def test_entry_point_is_installed():
    """pyproject.toml registers the adapter under its name."""
    found = {ep.name: ep.value for ep in entry_points(group=registry.GROUP)}
    assert found.get(NAME) == TARGET


def rsciio_write(path, data, *, step=(3.0, 2.5), k_scale=0.25) -> None:
    """Write 4D uint8 ``data`` with RosettaSciIO's writer: scan step in nm, detector in cm."""
    blockfile = pytest.importorskip("rsciio.blockfile")
    axes = [
        {"name": n, "size": s, "scale": sc, "offset": 0.0, "units": u, "navigate": nav}
        for n, s, sc, u, nav in zip(
            ("y", "x", "dy", "dx"),
            data.shape,
            (*step, k_scale, k_scale),
            ("nm", "nm", "cm", "cm"),
            (True, True, False, False),
            strict=True,
        )
    ]
    signal = {
        "data": data,
        "axes": axes,
        "metadata": {"General": {"title": "test"}},
        "original_metadata": {},
        "attributes": {"_lazy": False},
    }
    blockfile.file_writer(str(path), signal, show_progressbar=False)


def write_blo(path, data, *, endianess="<", sx=0.0, sy=0.0, sdp=0) -> None:
    """A blockfile from the format description: header, note, navigator, frame records."""
    e = endianess
    ny, nx, size, _ = data.shape
    header = np.zeros(
        1,
        dtype=[
            ("ID", "S6"),
            ("MAGIC", e + "u2"),
            ("Data_offset_1", e + "u4"),
            ("Data_offset_2", e + "u4"),
            ("UNKNOWN1", e + "u4"),
            ("DP_SZ", e + "u2"),
            ("DP_rotation", e + "u2"),
            ("NX", e + "u2"),
            ("NY", e + "u2"),
            ("Scan_rotation", e + "u2"),
            ("SX", e + "f8"),
            ("SY", e + "f8"),
            ("Beam_energy", e + "u4"),
            ("SDP", e + "u2"),
            ("Camera_length", e + "u4"),
            ("Acquisition_time", e + "f8"),
        ],
    )
    offset2 = 0x1000 + nx * ny + 16
    header[0] = (b"IMGBLO", 0x0102, 0x1000, offset2, 0, size, 0, nx, ny, 0, sx, sy, 0, sdp, 0, 0)
    records = np.zeros(
        nx * ny, dtype=[("MAGIC", e + "u2"), ("ID", e + "u4"), ("IMG", "u1", (size, size))]
    )
    records["MAGIC"] = 0x55AA
    records["ID"] = np.arange(nx * ny)
    records["IMG"] = data.reshape(-1, size, size)
    with open(path, "wb") as f:
        f.write(header.tobytes().ljust(offset2, b"\0"))
        f.write(records.tobytes())


class TestBlo(AdapterTests):
    filetype = "blo"
    shapes: ClassVar[list[tuple[int, ...]]] = [(4, 6, 8, 8), (3, 5, 16, 16)]
    dtypes: ClassVar[list[str]] = ["uint8"]

    def write(self, path, data):
        rsciio_write(path / "scan.blo", data)
        return {"path": path / "scan.blo"}


def test_calibrated_axes_give_coords_and_units(tmp_path):
    data = reference_data((3, 4, 8, 8), "uint8")
    rsciio_write(tmp_path / "c.blo", data, step=(3.0, 2.5), k_scale=0.25)
    ds = BloAdapter.open(tmp_path / "c.blo")
    assert ds.dims == ("scan_y", "scan_x", "det_y", "det_x")
    np.testing.assert_allclose(ds.coords["scan_y"], 3.0 * np.arange(3))
    np.testing.assert_allclose(ds.coords["scan_x"], 2.5 * np.arange(4))
    np.testing.assert_allclose(ds.coords["det_y"], 0.25 * np.arange(8))
    assert ds.attrs["units"] == {"scan_y": "nm", "scan_x": "nm", "det_y": "cm", "det_x": "cm"}
    # the same calibration RosettaSciIO reports
    blockfile = pytest.importorskip("rsciio.blockfile")
    theirs = blockfile.file_reader(str(tmp_path / "c.blo"))[0]
    np.testing.assert_array_equal(ds.array.compute(), theirs["data"])
    for dim, axis in zip(ds.dims, theirs["axes"], strict=True):
        want = axis["offset"] + axis["scale"] * np.arange(axis["size"])
        np.testing.assert_allclose(ds.coords[dim], want)
        assert ds.attrs["units"][dim] == axis["units"]


def test_uncalibrated_axes_give_indices_without_units(tmp_path):
    data = reference_data((2, 3, 8, 8), "uint8")
    write_blo(tmp_path / "u.blo", data)
    ds = BloAdapter.open(tmp_path / "u.blo")
    for dim, n in zip(ds.dims, data.shape, strict=True):
        np.testing.assert_array_equal(ds.coords[dim], np.arange(n))
    assert "units" not in ds.attrs
    np.testing.assert_array_equal(ds.array.compute(), data)


def test_new_nav_shape_drops_the_scan_calibration(tmp_path):
    data = reference_data((3, 4, 8, 8), "uint8")
    write_blo(tmp_path / "n.blo", data, sx=2.0, sy=2.0, sdp=400)
    ds = BloAdapter.open(tmp_path / "n.blo", nav_shape=(12,))
    np.testing.assert_array_equal(ds.coords["nav_0"], np.arange(12))
    assert ds.attrs["units"] == {"det_y": "cm", "det_x": "cm"}


def test_big_endian(ctx, tmp_path):
    data = reference_data((3, 4, 8, 8), "uint8")
    write_blo(tmp_path / "be.blo", data, endianess=">", sx=1.5, sy=1.5, sdp=200)
    assert read_blo_header(tmp_path / "be.blo", ">")["NX"] == 4
    ds = ctx.load("blo", path=tmp_path / "be.blo", endianess=">", num_partitions=2)
    np.testing.assert_allclose(ds.coords["det_x"], 0.5 * np.arange(8))
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF())
    np.testing.assert_array_equal(res["frames"].data, data)
    with pytest.raises(DataSetException, match=r"(none may be 0|expects)"):
        BloAdapter.open(tmp_path / "be.blo")  # read as little-endian: nonsense sizes


def test_roi_reads_only_selected_frames(ctx, tmp_path, monkeypatch):
    data = reference_data((4, 6, 8, 8), "uint8")
    write_blo(tmp_path / "r.blo", data)
    ds = BloAdapter.open(tmp_path / "r.blo", num_partitions=3)
    reads = []
    original = _rsciio.OffsetFrameReader.read_frames

    def spy(self, handle, a, b, out):
        reads.append((a, b))
        return original(self, handle, a, b, out)

    monkeypatch.setattr(_rsciio.OffsetFrameReader, "read_frames", spy)
    roi = np.zeros((4, 6), bool)
    roi[0, 1] = roi[2, 2:5] = True
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF(), roi=roi)
    np.testing.assert_array_equal(res["frames"].raw_data, data[roi])
    read = sorted(i for a, b in reads for i in range(a, b))
    assert read == np.flatnonzero(roi.reshape(-1)).tolist()


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.blo"):
        BloAdapter.open(tmp_path / "nope.blo")


def test_truncated_file_names_both_sizes(tmp_path):
    data = reference_data((2, 3, 8, 8), "uint8")
    path = tmp_path / "t.blo"
    write_blo(path, data)
    full = path.stat().st_size
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataSetException, match=rf"has {full - 100} bytes.*expects {full} bytes"):
        BloAdapter.open(path)


def test_not_a_blockfile(tmp_path):
    (tmp_path / "x.blo").write_bytes(b"MQ1,000001" + bytes(300))
    with pytest.raises(DataSetException, match="not a blockfile"):
        BloAdapter.open(tmp_path / "x.blo")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"endianess": "little"}, ValueError, "endianess"),
        ({"sig_shape": (7, 7)}, DataSetException, "sig_shape"),
        ({"sync_offset": -6}, DataSetException, "sync_offset"),
        ({"nav_shape": (6, -1)}, ValueError, "nav_shape"),
        ({"tileshape": "x"}, TypeError, "tileshape"),
        ({"dims": ("a", "b")}, DataSetException, "dims"),
        ({"scan_size": (2, 3)}, TypeError, "scan_size"),
    ],
)
def test_bad_keywords_raise_at_load(tmp_path, kwargs, error, match):
    write_blo(tmp_path / "k.blo", reference_data((2, 3, 8, 8), "uint8"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(error, match=match):
            BloAdapter.open(tmp_path / "k.blo", **kwargs)
