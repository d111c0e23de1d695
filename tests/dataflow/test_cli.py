"""Tests of the ``dataflow`` command (``dataflow/cli.py``, ``dataflow/__main__.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dataflow.cli import main
from dataflow.example import make_example_data


@pytest.fixture(scope="module")
def xr():
    import xarray  # a core dependency: a missing one fails, never skips

    return xarray


def _check_outputs(xr, out, data, nav_dims=("scan_y", "scan_x"), sig_dims=("det_y", "det_x")):
    assert (out / "summary.png").stat().st_size > 1000
    assert (out / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with xr.open_zarr(out / "results.zarr") as res:
        assert set(res.data_vars) == {"summed_pattern", "frame_sum"}
        assert res["summed_pattern"].dims == sig_dims
        assert res["frame_sum"].dims == nav_dims
        ref = data.astype(np.float64)
        n_nav = len(nav_dims)
        np.testing.assert_allclose(
            res["summed_pattern"].values, ref.sum(axis=tuple(range(n_nav))), rtol=1e-5
        )
        np.testing.assert_allclose(
            res["frame_sum"].values, ref.sum(axis=tuple(range(n_nav, data.ndim))), rtol=1e-5
        )


def test_example(xr, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--out", str(out), "--executor", "inline"]) == 0
    data = make_example_data()  # seeded: the same data the command generated
    _check_outputs(xr, out, data)
    printed = capsys.readouterr().out
    assert "(32, 32, 64, 64)" in printed
    assert "float32" in printed
    assert "MiB/s" in printed
    assert f"{float(data.sum(dtype=np.float64)):.6g}" in printed
    sums = data.sum(axis=(2, 3))
    iy, ix = np.unravel_index(np.argmax(sums), sums.shape)
    assert f"brightest:  frame at scan_y={iy}, scan_x={ix}" in printed
    iy, ix = np.unravel_index(np.argmin(sums), sums.shape)
    assert f"dimmest:    frame at scan_y={iy}, scan_x={ix}" in printed
    assert str(out / "results.zarr") in printed
    assert str(out / "summary.png") in printed


@pytest.mark.parametrize("executor", ["inline", "threads"])
def test_npy(xr, tmp_path, capsys, executor):
    data = np.random.default_rng(1).integers(0, 100, size=(5, 6, 7, 8)).astype("uint16")
    path = tmp_path / "scan.npy"
    np.save(path, data)
    out = tmp_path / "out"
    assert main([str(path), "--out", str(out), "--executor", executor]) == 0
    _check_outputs(xr, out, data)
    assert "(npy)" in capsys.readouterr().out


def test_npy_sig_dims(xr, tmp_path):
    data = np.random.default_rng(2).random((5, 6, 7)).astype("float32")
    path = tmp_path / "spectra.npy"
    np.save(path, data)
    out = tmp_path / "out"
    assert main([str(path), "--sig-dims", "1", "--out", str(out), "--executor", "inline"]) == 0
    _check_outputs(xr, out, data, nav_dims=("scan_y", "scan_x"), sig_dims=("sig_0",))


def test_zarr_group(xr, tmp_path, capsys):
    data = np.random.default_rng(3).random((4, 5, 6, 7)).astype("float32")
    dims = ("y", "x", "ky", "kx")
    store = tmp_path / "scan.zarr"
    xr.Dataset({"intensity": (dims, data)}).to_zarr(store, mode="w", consolidated=False)
    out = tmp_path / "out"
    args = [str(store), "--ds-path", "intensity", "--out", str(out), "--executor", "inline"]
    assert main(args) == 0
    _check_outputs(xr, out, data, nav_dims=("y", "x"), sig_dims=("ky", "kx"))
    assert "array 'intensity'" in capsys.readouterr().out


def test_zarr_group_without_ds_path(xr, tmp_path, capsys):
    store = tmp_path / "scan.zarr"
    xr.Dataset({"intensity": (("a", "b", "c"), np.zeros((2, 3, 4)))}).to_zarr(
        store, mode="w", consolidated=False
    )
    assert main([str(store), "--executor", "inline", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dataflow: error:")
    assert "'intensity'" in err
    assert "--ds-path" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}/missing.npy"], "no such file or directory: '{tmp}/missing.npy'"),
        (["{tmp}/notes.txt"], "expected a .npy file or a zarr store"),
        (["{tmp}/scan.npy", "--ds-path", "x"], "--ds-path is 'x'"),
        (["--ds-path", "x"], "no path was given"),
        (["--sig-dims", "0"], "--sig-dims is 0"),
        (["{tmp}/broken.npy"], "is not a .npy file"),
        (["--executor", "gpu"], "invalid choice: 'gpu'"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--out", "{tmp}/notes.txt"], "--out is '{tmp}/notes.txt', a file"),
    ],
)
def test_bad_arguments(tmp_path, capsys, args, message):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "broken.npy").write_bytes(b"not numpy" * 20)
    np.save(tmp_path / "scan.npy", np.zeros((2, 2, 2, 2)))
    argv = [a.format(tmp=tmp_path) for a in args]
    if "--out" not in args:
        argv += ["--out", str(tmp_path / "o")]
    if "--executor" not in args:
        argv += ["--executor", "inline"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "dataflow: error:" in captured.err
    assert message.format(tmp=tmp_path) in captured.err
    assert "Traceback" not in captured.err
    assert captured.out == ""
    assert not (tmp_path / "o").exists()


def test_help(capsys):
    assert main(["--help"]) == 0
    assert "--executor" in capsys.readouterr().out


def test_python_m_dataflow(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "dataflow", str(tmp_path / "missing.npy")],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,  # the installed package, not the source folder
    )
    assert proc.returncode == 2
    assert "dataflow: error: no such file or directory" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_python_m_dataflow_from_the_checkout_root(tmp_path):
    """The README's command, run where a user runs it: the root of a source checkout."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "adapters" / "__init__.py").is_file():
        pytest.fail("the test suite runs from a source checkout with adapters/ beside dataflow/")
    path = tmp_path / "scan.npy"
    np.save(path, np.ones((4, 4, 8, 8), dtype="float32"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dataflow",
            str(path),
            "--out",
            str(tmp_path / "out"),
            "--executor",
            "inline",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr
    assert "sum 64" in proc.stdout
    assert (tmp_path / "out" / "results.zarr").is_dir()
