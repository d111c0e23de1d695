"""Tests of the ``mib`` adapter (``adapters/mib.py``), on MIB files written byte by byte."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import ClassVar

import numpy as np
import pytest

from dataflow import registry
from dataflow.adapters import mib
from dataflow.adapters.mib import MIBAdapter, read_mib_header
from dataflow.errors import DataSetException
from dataflow.testing import AdapterTests, FrameCopyUDF, reference_data

NAME, TARGET = "mib", "dataflow.adapters.mib:MIBAdapter"


def test_entry_point_is_installed():
    """pyproject.toml registers the adapter under its name."""
    found = {ep.name: ep.value for ep in entry_points(group=registry.GROUP)}
    assert found.get(NAME) == TARGET


# writing MIB files from the documented layout --------------------------------------------

_TYPES = {"uint8": ("U08", 6), "uint16": ("U16", 12), "uint32": ("U32", 24)}


def frame_header(
    seq: int,
    width: int,
    height: int,
    pixel_type: str,
    bit_depth: int,
    *,
    header_bytes: int = 384,
    chips: int = 1,
    layout: str = "1x1",
) -> bytes:
    """A Merlin frame header: comma-separated ASCII, NUL-padded to ``header_bytes``."""
    fields = [
        "MQ1",
        f"{seq:06d}",
        f"{header_bytes:05d}",
        f"{chips:02d}",
        f"{width:04d}",
        f"{height:04d}",
        pixel_type,
        f"{layout:>6}",
        "01",
        "2024-05-06 07:08:09.123456",
        "0.001000",
        "0",
        "0",
        "0",
        "1.000000E+1",
        "5.110000E+2",
        *["0.000000E+0"] * 6,
        "3RX",
        *["000"] * 8,
        "MQ1A",
        "2024-05-06T07:08:09.123456789Z",
        "1000000ns",
        str(bit_depth),
        "",
    ]
    return ",".join(fields).encode("ascii").ljust(header_bytes, b"\0")


def encode_raw(frame: np.ndarray, bit_depth: int) -> bytes:
    """One frame in R64 layout: per 64-bit word, pixels in reverse order, big-endian."""
    flat = frame.reshape(-1)
    if bit_depth == 1:  # 8 bytes of 8 pixels each, LSB first, bytes reversed per word
        packed = np.packbits(flat.reshape(-1, 8).astype(np.uint8), axis=1, bitorder="little")
        return packed.reshape(-1, 8)[:, ::-1].tobytes()
    if bit_depth == 6:
        return flat.astype("u1").reshape(-1, 8)[:, ::-1].tobytes()
    if bit_depth == 12:
        return flat.reshape(-1, 4)[:, ::-1].astype(">u2").tobytes()
    # 24: a 12-bit frame of the high bits, then one of the low bits
    return encode_raw(flat >> 12, 12) + encode_raw(flat & 0xFFF, 12)


def write_mib(
    path,
    frames: np.ndarray,
    pixel_type: str = "U16",
    bit_depth: int = 12,
    *,
    first_seq: int = 1,
    header_bytes: int = 384,
) -> None:
    """Write ``frames`` (n, height, width) as one MIB file, a header before each frame."""
    _, height, width = frames.shape
    head_width = 2 * width if (pixel_type, bit_depth) == ("R64", 24) else width
    dtype = {"U08": ">u1", "U16": ">u2", "U32": ">u4"}.get(pixel_type)
    with open(path, "wb") as f:
        for i, frame in enumerate(frames):
            f.write(
                frame_header(
                    first_seq + i,
                    head_width,
                    height,
                    pixel_type,
                    bit_depth,
                    header_bytes=header_bytes,
                )
            )
            f.write(frame.astype(dtype).tobytes() if dtype else encode_raw(frame, bit_depth))


def write_hdr(path, frames: int, per_trigger: int) -> None:
    lines = [
        "HDR,\t",
        "Time and Date Stamp (day, mnth, yr, hr, min, s):\t06/05/2024 07:08:09",
        "Chip ID:\tW530_L8,-,-,-",
        f"Frames in Acquisition (Number):\t{frames}",
        f"Frames per Trigger (Number):\t{per_trigger}",
        "End\t",
    ]
    path.write_text("\r\n".join(lines))


def _flat(data: np.ndarray) -> np.ndarray:
    return data.reshape((-1, *data.shape[-2:]))


class TestMIB(AdapterTests):
    filetype = "mib"
    dtypes: ClassVar[list[str]] = ["uint16", "uint32", "uint8"]  # 12, 24 and 6-bit counters

    def write(self, path, data):
        pixel_type, depth = _TYPES[data.dtype.name]
        write_mib(path / "scan.mib", _flat(data), pixel_type, depth)
        return {"path": path / "scan.mib", "nav_shape": data.shape[:-2]}


# formats -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bit_depth", "high", "dtype"),
    [(1, 2, "uint8"), (6, 64, "uint8"), (12, 4096, "uint16"), (24, 2**24, "uint32")],
)
def test_raw_r64_single_chip(ctx, tmp_path, bit_depth, high, dtype):
    rng = np.random.default_rng(bit_depth)
    data = rng.integers(0, high, size=(3, 4, 8, 64)).astype(dtype)
    write_mib(tmp_path / "raw.mib", _flat(data), "R64", bit_depth)
    ds = MIBAdapter.open(tmp_path / "raw.mib", nav_shape=(3, 4), num_partitions=2)
    assert tuple(ds.shape) == data.shape
    assert ds.dtype == np.dtype(dtype)
    assert ds.attrs["mib"]["pixel_type"] == "R64"
    assert ds.attrs["mib"]["bit_depth"] == bit_depth
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF())
    np.testing.assert_array_equal(res["frames"].data, data)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32"])
def test_rosettasciio_reads_the_same_frames(tmp_path, dtype):
    """RosettaSciIO's MIB parser agrees with the bytes these tests write."""
    qd = pytest.importorskip("rsciio.quantumdetector")
    data = reference_data((5, 12, 16), dtype)
    write_mib(tmp_path / "a.mib", data, *_TYPES[dtype])
    theirs = np.asarray(qd.load_mib_data(str(tmp_path / "a.mib")))
    ours = MIBAdapter.open(tmp_path / "a.mib").array.compute()
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(ours, data)


def test_header_fields(tmp_path):
    data = reference_data((2, 6, 10), "uint16")
    write_mib(tmp_path / "h.mib", data, header_bytes=512)
    h = read_mib_header(tmp_path / "h.mib")
    assert (h.header_bytes, h.sig_shape, h.bit_depth, h.pixel_type) == (512, (6, 10), 12, "U16")
    assert h.frame_bytes == 6 * 10 * 2
    assert h.dtype == np.dtype("uint16")


# files, .hdr and layout ----------------------------------------------------------------------


def test_sequence_of_files_and_hdr(ctx, tmp_path):
    data = reference_data((4, 5, 8, 8), "uint16")
    flat = _flat(data)
    # files named so that name order and sequence order differ
    write_mib(tmp_path / "default10.mib", flat[12:], first_seq=13)
    write_mib(tmp_path / "default2.mib", flat[4:12], first_seq=5)
    write_mib(tmp_path / "default1.mib", flat[:4], first_seq=1)
    write_mib(tmp_path / "other1.mib", flat[:2])
    write_hdr(tmp_path / "default.hdr", frames=20, per_trigger=5)
    ds = ctx.load("mib", path=tmp_path / "default.hdr", num_partitions=3)
    assert tuple(ds.shape) == data.shape
    assert ds.attrs["mib"]["files"] == 3
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF())
    np.testing.assert_array_equal(res["frames"].data, data)
    # a .mib path finds its siblings too; disable_glob reads that file alone
    one = MIBAdapter.open(tmp_path / "default2.mib", nav_shape=(20,))
    np.testing.assert_array_equal(one.array.compute(), flat)
    alone = MIBAdapter.open(tmp_path / "default2.mib", disable_glob=True)
    assert tuple(alone.shape) == (8, 8, 8)
    np.testing.assert_array_equal(alone.array.compute(), flat[4:12])


def test_hdr_beside_the_mib_file_gives_the_scan_shape(tmp_path):
    data = reference_data((3, 4, 8, 8), "uint8")
    write_mib(tmp_path / "scan.mib", _flat(data), "U08", 6)
    assert tuple(MIBAdapter.open(tmp_path / "scan.mib").shape) == (12, 8, 8)
    write_hdr(tmp_path / "scan.hdr", frames=12, per_trigger=4)
    assert tuple(MIBAdapter.open(tmp_path / "scan.mib").shape) == (3, 4, 8, 8)
    assert tuple(MIBAdapter.open(tmp_path / "scan.mib", scan_size=(2, 6)).shape) == (2, 6, 8, 8)


def test_sig_shape_and_sync_offset(ctx, tmp_path):
    data = reference_data((3, 4, 8, 8), "uint16")
    flat = _flat(data)
    write_mib(tmp_path / "s.mib", flat)
    ds = ctx.load("mib", path=tmp_path / "s.mib", nav_shape=(2, 4), sig_shape=(64,), sync_offset=5)
    assert tuple(ds.shape) == (2, 4, 64)
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF())
    want = np.zeros((8, 64), "uint16")
    want[:7] = flat[5:].reshape(7, 64)
    np.testing.assert_array_equal(res["frames"].data.reshape(8, 64), want)


def test_uncalibrated_axes_give_indices_without_units(tmp_path):
    data = reference_data((2, 3, 8, 6), "uint16")
    write_mib(tmp_path / "c.mib", _flat(data))
    ds = MIBAdapter.open(tmp_path / "c.mib", nav_shape=(2, 3), dims=("y", "x", "ky", "kx"))
    assert ds.dims == ("y", "x", "ky", "kx")
    for dim, n in zip(ds.dims, data.shape, strict=True):
        np.testing.assert_array_equal(ds.coords[dim], np.arange(n))
    assert "units" not in ds.attrs


# reads -----------------------------------------------------------------------------------------


def test_roi_reads_only_selected_frames(ctx, tmp_path, monkeypatch):
    data = reference_data((4, 6, 8, 8), "uint16")
    write_mib(tmp_path / "r.mib", _flat(data))
    ds = MIBAdapter.open(tmp_path / "r.mib", nav_shape=(4, 6), num_partitions=3)
    reads = []
    original = mib._MIBReader.read_frames

    def spy(self, handle, a, b, out):
        reads.append((a, b))
        return original(self, handle, a, b, out)

    monkeypatch.setattr(mib._MIBReader, "read_frames", spy)
    roi = np.zeros((4, 6), bool)
    roi[1, 2:4] = True
    roi[3, 5] = True
    res = ctx.run_udf(dataset=ds, udf=FrameCopyUDF(), roi=roi)
    np.testing.assert_array_equal(res["frames"].raw_data, data[roi])
    read = sorted(i for a, b in reads for i in range(a, b))
    assert read == sorted(np.flatnonzero(roi.reshape(-1)).tolist())


def test_open_reads_no_frames(tmp_path, monkeypatch):
    data = reference_data((4, 6, 8, 8), "uint16")
    write_mib(tmp_path / "o.mib", _flat(data))
    calls = []
    monkeypatch.setattr(mib._MIBReader, "read_frames", lambda *a: calls.append(a))
    MIBAdapter.open(tmp_path / "o.mib", nav_shape=(4, 6), num_partitions=3)
    assert calls == []


# bad input -----------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.mib"):
        MIBAdapter.open(tmp_path / "nope.mib", disable_glob=True)
    with pytest.raises(FileNotFoundError, match=r"nope\.hdr"):
        MIBAdapter.open(tmp_path / "nope.hdr")


def test_truncated_file_names_both_sizes(tmp_path):
    data = reference_data((3, 8, 8), "uint16")
    path = tmp_path / "t.mib"
    write_mib(path, data)
    record = 384 + 8 * 8 * 2
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataSetException, match=f"has {3 * record - 10} bytes") as e:
        MIBAdapter.open(path)
    assert f"{2 * record} bytes" in str(e.value)
    assert f"{3 * record}" in str(e.value)


def test_not_a_mib_file(tmp_path):
    path = tmp_path / "x.mib"
    path.write_bytes(b"\x93NUMPY" + bytes(500))
    with pytest.raises(DataSetException, match=r"not a Merlin \.mib file"):
        MIBAdapter.open(path)


def test_mixed_files_are_refused(tmp_path):
    write_mib(tmp_path / "m1.mib", reference_data((2, 8, 8), "uint16"))
    write_mib(tmp_path / "m2.mib", reference_data((2, 8, 8), "uint8"), "U08", 6, first_seq=3)
    with pytest.raises(DataSetException, match="disable_glob=True"):
        MIBAdapter.open(tmp_path / "m1.mib")


def test_raw_quad_is_refused(tmp_path):
    path = tmp_path / "q.mib"
    head = frame_header(1, 1024, 256, "R64", 12, header_bytes=768, chips=4, layout="2x2")
    path.write_bytes(head + bytes(1024 * 256 * 2))
    with pytest.raises(DataSetException, match="4 chips"):
        MIBAdapter.open(path)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"nav_shape": (5, 5)}, None, None),  # more frames than the file: zeros, allowed
        ({"sig_shape": (7, 7)}, DataSetException, "sig_shape"),
        ({"sync_offset": 12}, DataSetException, "sync_offset"),
        ({"sync_offset": 1.5}, TypeError, "sync_offset"),
        ({"nav_shape": (0, 3)}, ValueError, "nav_shape"),
        ({"nav_shape": (3,), "scan_size": (3,)}, ValueError, "scan_size"),
        ({"disable_glob": "yes"}, TypeError, "disable_glob"),
        ({"tileshape": (0, 8, 8)}, ValueError, "tileshape"),
        ({"num_partitions": 0}, ValueError, "num_partitions"),
        ({"endianess": "<"}, TypeError, "endianess"),
    ],
)
def test_bad_keywords_raise_at_load(tmp_path, kwargs, error, match):
    write_mib(tmp_path / "k.mib", reference_data((12, 8, 8), "uint16"))
    if error is None:
        MIBAdapter.open(tmp_path / "k.mib", **kwargs)
        return
    with pytest.raises(error, match=match):
        MIBAdapter.open(tmp_path / "k.mib", **kwargs)


def test_path_must_be_a_path(tmp_path):
    with pytest.raises(TypeError, match="path is a list"):
        MIBAdapter.open([tmp_path / "a.mib"])
    with pytest.raises(TypeError, match="needs path="):
        MIBAdapter.open()
    (tmp_path / "a.raw").write_bytes(b"")
    with pytest.raises(DataSetException, match=r"expected a \.mib file"):
        MIBAdapter.open(tmp_path / "a.raw")
