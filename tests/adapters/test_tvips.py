"""Tests of the ``tvips`` adapter (``adapters/tvips.py``), on files from RosettaSciIO's writer."""

from __future__ import annotations

import warnings
from importlib.metadata import entry_points
from typing import ClassVar

import numpy as np
import pytest

from dataflow import registry
from dataflow.adapters import _rsciio
from dataflow.adapters.tvips import TVIPSAdapter
from dataflow.errors import DataSetException
from dataflow.testing import AdapterTests, FrameCopyUDF, reference_data

NAME, TARGET = "tvips", "dataflow.adapters.tvips:TVIPSAdapter"


def test_entry_point_is_installed():
    """pyproject.toml registers the adapter under its name."""
    found = {ep.name: ep.value for ep in entry_points(group=registry.GROUP)}
    assert found.get(NAME) == TARGET


def write_tvips(
    path, data, *, scale=2.0, offsets=(3.0, 5.0), units="1/nm", extra=0, max_file_size=None
):
    """Write ``data`` (nav + 2 signal dims) with RosettaSciIO's TVIPS writer.

    ``path`` is ``name.tvips``; the writer makes ``name_000.tvips`` (and ``_001``, ...).
    """
    tvips = pytest.importorskip("rsciio.tvips")
    n_nav = data.ndim - 2
    # the writer takes the pixel size from the first axis: give every axis the detector's scale
    axes = [
        {"name": f"n{i}", "size": s, "scale": scale, "offset": 0.0, "units": "", "navigate": True}
        for i, s in enumerate(data.shape[:n_nav])
    ] + [
        {"name": n, "size": s, "scale": scale, "offset": o, "units": units, "navigate": False}
        for n, s, o in zip(("dy", "dx"), data.shape[n_nav:], offsets, strict=True)
    ]
    signal = {
        "data": data,
        "axes": axes,
        "metadata": {"General": {"title": "", "date": "2024-05-06", "time": "07:08:09"}},
        "original_metadata": {},
        "attributes": {"_lazy": False},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "units could not be converted"
        tvips.file_writer(
            str(path),
            signal,
            frame_header_extra_bytes=extra,
            max_file_size=max_file_size,
            show_progressbar=False,
        )
    return path.parent / (path.stem + "_000.tvips")


class TestTVIPS(AdapterTests):
    filetype = "tvips"
    dtypes: ClassVar[list[str]] = ["uint16", "uint8"]

    def write(self, path, data):
        first = write_tvips(path / "scan.tvips", data)
        return {"path": first, "nav_shape": data.shape[:-2]}


def test_several_files(ctx, tmp_path):
    data = reference_data((4, 5, 8, 8), "uint16")
    record = 60 + 8 * 8 * 2
    first = write_tvips(tmp_path / "s.tvips", data, max_file_size=256 + 6 * record)
    assert (tmp_path / "s_002.tvips").exists()
    ds = ctx.load("tvips", path=tmp_path / "s_002.tvips", nav_shape=(4, 5), num_partitions=3)
    assert ds.attrs["tvips"]["files"] == 3
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF())
    np.testing.assert_array_equal(res["frames"].data, data)
    (tmp_path / "s_001.tvips").unlink()
    with pytest.raises(DataSetException, match="lacks file"):
        TVIPSAdapter.open(first)


def test_calibrated_axes_give_coords_and_units(tmp_path):
    data = reference_data((6, 8, 10), "uint16")
    first = write_tvips(tmp_path / "c.tvips", data, scale=2.0, offsets=(3.0, 5.0))
    ds = TVIPSAdapter.open(first)
    assert ds.dims == ("nav_0", "det_y", "det_x")
    np.testing.assert_allclose(ds.coords["det_y"], 3.0 + 2.0 * np.arange(8))
    np.testing.assert_allclose(ds.coords["det_x"], 5.0 + 2.0 * np.arange(10))
    np.testing.assert_array_equal(ds.coords["nav_0"], np.arange(6))
    assert ds.attrs["units"] == {"det_y": "1/nm", "det_x": "1/nm"}
    assert ds.attrs["tvips"]["mode"] == 2
    # what RosettaSciIO's reader reports for the detector axes
    tvips = pytest.importorskip("rsciio.tvips")
    theirs = tvips.file_reader(str(first))[0]
    np.testing.assert_array_equal(ds.array.compute(), theirs["data"])
    for dim, axis in zip(ds.dims[1:], theirs["axes"][1:], strict=True):
        want = axis["offset"] + axis["scale"] * np.arange(axis["size"])
        np.testing.assert_allclose(ds.coords[dim], want)
        assert ds.attrs["units"][dim] == axis["units"]


def test_uncalibrated_axes_give_indices_without_units(tmp_path):
    data = reference_data((2, 3, 8, 8), "uint8")
    first = write_tvips(tmp_path / "u.tvips", data, scale=0.4, offsets=(0.0, 0.0), units="")
    ds = TVIPSAdapter.open(first, nav_shape=(2, 3))
    for dim, n in zip(ds.dims, data.shape, strict=True):
        np.testing.assert_array_equal(ds.coords[dim], np.arange(n))
    assert "units" not in ds.attrs


def test_scan_start_and_width_from_frame_headers(ctx, tmp_path):
    """Scan positions in the frame headers give sync_offset and nav_shape, as in LiberTEM."""
    data = reference_data((14, 8, 8), "uint16")
    first = write_tvips(tmp_path / "d.tvips", data, extra=24)  # 84-byte frame headers
    record = 84 + 8 * 8 * 2
    positions = [(7, 7), (0, 0)] + [(0, x) for x in range(1, 4)]
    positions += [(y, x) for y in (1, 2) for x in range(4)] + [(3, 0), (3, 1), (3, 2), (3, 3)]
    with open(first, "r+b") as f:
        for i, (y, x) in enumerate(positions[:14]):
            f.seek(256 + i * record + 68)
            f.write(np.array([x, y], "<f4").tobytes())
    ds = ctx.load("tvips", path=first)
    assert ds.layout.sync_offset == 1
    assert tuple(ds.shape) == (3, 4, 8, 8)
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF())
    np.testing.assert_array_equal(res["frames"].data.reshape(12, 8, 8), data[1:13])
    # given values win over the headers'
    ds = TVIPSAdapter.open(first, sync_offset=0, nav_shape=(14,))
    assert (ds.layout.sync_offset, tuple(ds.shape)) == (0, (14, 8, 8))


def test_roi_reads_only_selected_frames(ctx, tmp_path, monkeypatch):
    data = reference_data((4, 6, 8, 8), "uint16")
    first = write_tvips(tmp_path / "r.tvips", data)
    ds = TVIPSAdapter.open(first, nav_shape=(4, 6), num_partitions=3)
    reads = []
    original = _rsciio.OffsetFrameReader.read_frames

    def spy(self, handle, a, b, out):
        reads.append((a, b))
        return original(self, handle, a, b, out)

    monkeypatch.setattr(_rsciio.OffsetFrameReader, "read_frames", spy)
    roi = np.zeros((4, 6), bool)
    roi[0, 5] = roi[2, 1:3] = True
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF(), roi=roi)
    np.testing.assert_array_equal(res["frames"].raw_data, data[roi])
    read = sorted(i for a, b in reads for i in range(a, b))
    assert read == np.flatnonzero(roi.reshape(-1)).tolist()


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope_000\.tvips"):
        TVIPSAdapter.open(tmp_path / "nope_000.tvips")
    data = reference_data((2, 8, 8), "uint16")
    write_tvips(tmp_path / "m.tvips", data, max_file_size=256 + 188)
    (tmp_path / "m_000.tvips").unlink()
    with pytest.raises(FileNotFoundError, match="series header"):
        TVIPSAdapter.open(tmp_path / "m_001.tvips")


def test_truncated_file_names_both_sizes(tmp_path):
    first = write_tvips(tmp_path / "t.tvips", reference_data((3, 8, 8), "uint16"))
    full = first.stat().st_size
    first.write_bytes(first.read_bytes()[:-5])
    with pytest.raises(DataSetException, match=rf"has {full - 5} bytes.* or {full} bytes"):
        TVIPSAdapter.open(first)


def test_not_a_tvips_file(tmp_path):
    (tmp_path / "x_000.tvips").write_bytes(bytes(1000))
    with pytest.raises(DataSetException, match="not a TVIPS file"):
        TVIPSAdapter.open(tmp_path / "x_000.tvips")
    (tmp_path / "x.tvips").write_bytes(bytes(1000))
    with pytest.raises(DataSetException, match="named like"):
        TVIPSAdapter.open(tmp_path / "x.tvips")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sig_shape": (7, 9)}, DataSetException, "sig_shape"),
        ({"sync_offset": 6}, DataSetException, "sync_offset"),
        ({"sync_offset": "1"}, TypeError, "sync_offset"),
        ({"nav_shape": (2, 0)}, ValueError, "nav_shape"),
        ({"num_partitions": 7}, ValueError, "num_partitions"),
        ({"scan_shape": (2, 3)}, TypeError, "scan_shape"),
    ],
)
def test_bad_keywords_raise_at_load(tmp_path, kwargs, error, match):
    first = write_tvips(tmp_path / "k.tvips", reference_data((6, 8, 8), "uint16"))
    with pytest.raises(error, match=match):
        TVIPSAdapter.open(first, **kwargs)
