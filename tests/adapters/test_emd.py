"""Tests of the ``emd`` adapter (``adapters/emd.py``).

Files come from RosettaSciIO's NCEM EMD writer (which stores axes reversed) and from
the format description with h5py (axes in order, ``dim0`` first).
"""

from __future__ import annotations

from importlib.metadata import entry_points

import numpy as np
import pytest

from dataflow import registry
from dataflow.adapters import emd
from dataflow.adapters.emd import EMDAdapter
from dataflow.errors import DataSetException
from dataflow.testing import AdapterTests, FrameCopyUDF, reference_data

NAME, TARGET = "emd", "dataflow.adapters.emd:EMDAdapter"


def test_entry_point_is_installed():
    """pyproject.toml registers the adapter under its name."""
    found = {ep.name: ep.value for ep in entry_points(group=registry.GROUP)}
    assert found.get(NAME) == TARGET


def write_emd(path, data, *, names=None, scales=None, offsets=None, units=None, title="scan"):
    """Write ``data`` with RosettaSciIO's NCEM EMD writer."""
    rsciio_emd = pytest.importorskip("rsciio.emd")
    n = data.ndim
    names = names or [""] * n
    scales = scales or [1.0] * n
    offsets = offsets or [0.0] * n
    units = units or [""] * n
    axes = [
        {"name": a, "size": s, "scale": sc, "offset": o, "units": u, "navigate": i < n - 2}
        for i, (a, s, sc, o, u) in enumerate(
            zip(names, data.shape, scales, offsets, units, strict=True)
        )
    ]
    signal = {
        "data": data,
        "axes": axes,
        "metadata": {"General": {"title": title}, "Signal": {}},
        "original_metadata": {},
        "attributes": {"_lazy": False},
    }
    rsciio_emd.file_writer(str(path), signal)


def write_emd_in_order(path, groups):
    """An NCEM EMD file from the format description, arrays stored in order (``dim0``...)."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as f:
        f.attrs["version_major"] = 0
        f.attrs["version_minor"] = 2
        for name, data in groups.items():
            g = f.create_group(f"signals/{name}")
            g.attrs["emd_group_type"] = 1
            g.create_dataset("data", data=data, chunks=(1, *data.shape[1:]))
            for i, size in enumerate(data.shape):
                dim = g.create_dataset(f"dim{i}", data=np.arange(size) * 0.5 + 2.0)
                dim.attrs["name"] = f"axis{i}"
                dim.attrs["units"] = "[n_m]"


class TestEMD(AdapterTests):
    filetype = "emd"

    def write(self, path, data):
        write_emd(path / "scan.emd", data)
        return {"path": path / "scan.emd"}


def test_calibrated_and_named_axes(ctx, tmp_path):
    data = reference_data((3, 4, 8, 6), "uint16")
    write_emd(
        tmp_path / "c.emd",
        data,
        names=["sy", "sx", "ky", "kx"],
        scales=[1.0, 2.0, 0.5, 0.25],
        offsets=[0.0, 1.0, -2.0, -0.75],
        units=["", "nm", "1/nm", "1/nm"],
    )
    ds = ctx.load("emd", path=tmp_path / "c.emd", num_partitions=2)
    assert ds.dims == ("sy", "sx", "ky", "kx")
    np.testing.assert_array_equal(ds.coords["sy"], np.arange(3))  # uncalibrated: indices
    np.testing.assert_allclose(ds.coords["sx"], 1.0 + 2.0 * np.arange(4))
    np.testing.assert_allclose(ds.coords["ky"], -2.0 + 0.5 * np.arange(8))
    np.testing.assert_allclose(ds.coords["kx"], -0.75 + 0.25 * np.arange(6))
    assert ds.attrs["units"] == {"sx": "nm", "ky": "1 / nm", "kx": "1 / nm"}
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF())
    np.testing.assert_array_equal(res["frames"].data, data)


def test_uncalibrated_axes_give_indices_without_units(tmp_path):
    data = reference_data((2, 3, 8, 8), "float32")
    write_emd(tmp_path / "u.emd", data)
    ds = EMDAdapter.open(tmp_path / "u.emd")
    assert ds.dims == ("scan_y", "scan_x", "det_y", "det_x")
    for dim, n in zip(ds.dims, data.shape, strict=True):
        np.testing.assert_array_equal(ds.coords[dim], np.arange(n))
    assert "units" not in ds.attrs


def test_in_order_file_and_several_data_sets(ctx, tmp_path):
    a = reference_data((5, 7, 8, 8), "int16", seed=3)
    b = reference_data((4, 6, 6), "uint8", seed=4)
    write_emd_in_order(tmp_path / "o.emd", {"a": a, "b": b})
    assert emd.find_datasets(tmp_path / "o.emd") == ["signals/a/data", "signals/b/data"]
    with pytest.raises(DataSetException, match="pass dataset_path="):
        EMDAdapter.open(tmp_path / "o.emd")
    ds = ctx.load("emd", path=tmp_path / "o.emd", dataset_path="signals/a/data", num_partitions=3)
    assert ds.dims == ("axis0", "axis1", "axis2", "axis3")
    np.testing.assert_allclose(ds.coords["axis1"], 2.0 + 0.5 * np.arange(7))
    assert ds.attrs["units"]["axis1"] == "nm"
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF())
    np.testing.assert_array_equal(res["frames"].data, a)
    dsb = EMDAdapter.open(tmp_path / "o.emd", dataset_path="/signals/b/data")
    np.testing.assert_array_equal(dsb.array.compute(), b)
    with pytest.raises(DataSetException, match="holds the data sets"):
        EMDAdapter.open(tmp_path / "o.emd", dataset_path="signals/c/data")


def test_roi_reads_only_rows_of_selected_frames(ctx, tmp_path, monkeypatch):
    data = reference_data((4, 6, 8, 8), "uint16")
    write_emd(tmp_path / "r.emd", data)
    ds = EMDAdapter.open(tmp_path / "r.emd", num_partitions=2)
    reads = []
    original = emd._HDF5FrameReader.read_frames

    def spy(self, handle, a, b, out):
        reads.append((a, b))
        return original(self, handle, a, b, out)

    monkeypatch.setattr(emd._HDF5FrameReader, "read_frames", spy)
    roi = np.zeros((4, 6), bool)
    roi[1, 2] = roi[3, 0:2] = True
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF(), roi=roi)
    np.testing.assert_array_equal(res["frames"].raw_data, data[roi])
    read = sorted(i for a, b in reads for i in range(a, b))
    assert read == np.flatnonzero(roi.reshape(-1)).tolist()


def test_file_stays_closed_after_open(tmp_path):
    h5py = pytest.importorskip("h5py")
    write_emd(tmp_path / "w.emd", reference_data((2, 3, 8, 8), "uint16"))
    EMDAdapter.open(tmp_path / "w.emd")
    with h5py.File(tmp_path / "w.emd", "a") as f:  # writable: nobody holds it open
        f.attrs["touched"] = 1


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.emd"):
        EMDAdapter.open(tmp_path / "nope.emd")


def test_truncated_file_names_both_sizes(tmp_path):
    path = tmp_path / "t.emd"
    write_emd(path, reference_data((4, 6, 16, 16), "uint16"))
    full = path.stat().st_size
    path.write_bytes(path.read_bytes()[: full // 2])
    with pytest.raises(DataSetException, match=rf"truncated.*{full // 2}.*{full}"):
        EMDAdapter.open(path)


def test_not_an_emd_file(tmp_path):
    (tmp_path / "x.emd").write_bytes(b"IMGBLO" + bytes(600))
    with pytest.raises(DataSetException, match="not an HDF5"):
        EMDAdapter.open(tmp_path / "x.emd")
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "velox.emd", "w") as f:  # no emd_group_type groups
        f.create_dataset("Data/Image/abc/Data", data=np.zeros((4, 4, 2)))
    with pytest.raises(DataSetException, match="Velox"):
        EMDAdapter.open(tmp_path / "velox.emd")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sig_dims": 4}, ValueError, "sig_dims"),
        ({"sig_shape": (7, 9)}, DataSetException, "sig_shape"),
        ({"sync_offset": 6}, DataSetException, "sync_offset"),
        ({"nav_shape": (0,)}, ValueError, "nav_shape"),
        ({"dataset_path": 3}, TypeError, "dataset_path"),
        ({"dims": ("a", "b", "c")}, DataSetException, "dims"),
    ],
)
def test_bad_keywords_raise_at_load(tmp_path, kwargs, error, match):
    write_emd(tmp_path / "k.emd", reference_data((2, 3, 8, 8), "uint16"))
    with pytest.raises(error, match=match):
        EMDAdapter.open(tmp_path / "k.emd", **kwargs)
