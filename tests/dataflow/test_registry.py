"""Tests of the adapter registry (``dataflow/registry.py``): names, ``auto``, plugins."""

from __future__ import annotations

import sys
import textwrap
import uuid

import numpy as np
import pytest

import dataflow
from dataflow import registry
from dataflow.errors import AdapterNotFoundError, DataflowWarning


@pytest.fixture(scope="module")
def ctx():
    with dataflow.Context.make_with("inline") as c:
        yield c


@pytest.fixture
def data():
    return np.arange(2 * 3 * 4 * 5, dtype="uint16").reshape(2, 3, 4, 5)


# names ---------------------------------------------------------------------------------------


def test_builtin_adapters_are_registered():
    names = set(registry.list_adapters())
    assert {"memory", "dask", "npy", "raw", "hdf5", "zarr"} <= names
    assert registry.list_adapters() == sorted(names)


def test_builtin_adapters_share_the_base_class():
    for name in registry.list_adapters():
        adapter = registry.get_adapter(name)
        assert issubclass(adapter, dataflow.Adapter), name
        assert adapter.open is not dataflow.Adapter.open, name


def test_base_class_guesses_by_extension():
    class Scans(dataflow.Adapter):
        extensions = (".scan", ".scan.gz")

    assert Scans.guess_can_open("run1.SCAN")
    assert Scans.guess_can_open("dir/run1.scan.gz")
    assert not Scans.guess_can_open("run1.npy")
    assert not Scans.guess_can_open(object())
    assert not dataflow.Adapter.guess_can_open("x.npy")  # no extensions: never guessed
    with pytest.raises(NotImplementedError):
        Scans.open("run1.scan")


@pytest.mark.parametrize("name", ["npy", "NPY", "raw", "hdf5", "zarr"])
def test_get_adapter(name):
    adapter = registry.get_adapter(name)
    assert adapter.name == name.lower()
    assert callable(adapter.open)
    assert isinstance(adapter.description, str)
    assert isinstance(adapter.url, str)
    assert all(ext.startswith(".") for ext in adapter.extensions)


def test_unknown_filetype_lists_the_known_ones(ctx):
    with pytest.raises(AdapterNotFoundError) as info:
        ctx.load("nosuchformat", path="x")
    msg = str(info.value)
    assert "unknown filetype 'nosuchformat'" in msg
    for name in ("dask", "hdf5", "memory", "npy", "raw", "zarr", "'auto'"):
        assert name in msg
    assert "entry point" in msg
    assert isinstance(info.value, ValueError)


def test_filetype_must_be_a_string(ctx):
    with pytest.raises(TypeError, match="filetype is a int"):
        ctx.load(3, path="x")


# auto ------------------------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path, data):
    """One file per format that ``auto`` recognises, all holding ``data``."""
    h5py = pytest.importorskip("h5py")
    import zarr

    out = {"npy": tmp_path / "scan.npy", "hdf5": tmp_path / "scan.H5", "zarr": tmp_path / "s.zarr"}
    np.save(out["npy"], data)
    with h5py.File(out["hdf5"], "w") as f:
        f.create_dataset("data", data=data)
    z = zarr.open_array(str(out["zarr"]), mode="w", shape=data.shape, dtype=data.dtype)
    z[...] = data
    return out


@pytest.mark.parametrize("filetype", ["npy", "hdf5", "zarr"])
def test_auto_picks_the_adapter(ctx, files, data, filetype):
    path = files[filetype]
    assert registry.guess_adapter(path).name == filetype
    assert registry.guess_adapter(str(path)).name == filetype
    ds = ctx.load("auto", path=path, num_partitions=2)
    np.testing.assert_array_equal(ds.array.compute(), data)
    assert ds.get_num_partitions() == 2


def test_auto_zarr_without_extension(ctx, tmp_path, data):
    import zarr

    path = tmp_path / "store"
    z = zarr.open_array(str(path), mode="w", shape=data.shape, dtype=data.dtype)
    z[...] = data
    assert registry.guess_adapter(path).name == "zarr"


def test_auto_needs_a_path(ctx):
    with pytest.raises(TypeError, match="needs path="):
        ctx.load("auto")


def test_auto_never_picks_raw(ctx, tmp_path, data):
    path = tmp_path / "scan.raw"
    data.tofile(path)
    with pytest.raises(AdapterNotFoundError) as info:
        ctx.load("auto", path=path)
    msg = str(info.value)
    assert "no adapter recognises" in msg
    assert "ctx.load('raw', path=..., dtype=..., nav_shape=..., sig_shape=...)" in msg
    assert "npy (.npy)" in msg
    assert "hdf5 (.h5, .hdf5, .hdf)" in msg
    ds = ctx.load("raw", path=path, dtype="uint16", nav_shape=(2, 3), sig_shape=(4, 5))
    np.testing.assert_array_equal(ds.array.compute(), data)


def test_auto_unknown_extension(ctx, tmp_path):
    path = tmp_path / "scan.xyz"
    path.write_bytes(b"\0" * 64)
    with pytest.raises(AdapterNotFoundError, match=r"no adapter recognises '.*scan\.xyz'"):
        ctx.load("auto", path=path)


def test_auto_missing_file(ctx, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.xyz"):
        ctx.load("auto", path=tmp_path / "nope.xyz")
    # an extension that names an adapter: the adapter reports the missing file
    with pytest.raises(FileNotFoundError, match=r"nope\.npy"):
        ctx.load("auto", path=tmp_path / "nope.npy")


# third-party adapters, through a distribution's entry points ---------------------------------


PLUGIN = '''
import numpy as np
from dataflow import Adapter
from dataflow.sources import MemoryAdapter


class TextAdapter(Adapter):
    """Frames written by np.savetxt, one row per frame; ``auto`` by its extension."""

    name = "textframes"
    description = "frames in a text file"
    url = "https://example.org"
    extensions = (".frames.txt",)

    @staticmethod
    def open(path=None, *, sig_shape=(4, 5), num_partitions=None, min_partitions=1):
        data = np.loadtxt(path, dtype="uint16", ndmin=2)
        data = data.reshape((len(data), *sig_shape))
        return MemoryAdapter.open(
            data, sig_dims=len(sig_shape), num_partitions=num_partitions,
            min_partitions=min_partitions,
        )


class GreedyNPY:
    """Claims .npy files too: the built-in npy adapter must still win ``auto``."""

    name = "greedy"
    description = "claims everything"
    extensions = (".npy",)

    @staticmethod
    def guess_can_open(path):
        return True

    @staticmethod
    def open(path=None, **kwargs):
        raise AssertionError("the greedy plugin was used")


class RaisingGuess:
    name = "raising"
    description = "guess_can_open raises"
    extensions = (".boom",)

    @staticmethod
    def guess_can_open(path):
        raise RuntimeError("cannot guess")

    @staticmethod
    def open(path=None, **kwargs):
        raise AssertionError("never opened")
'''


def _install_plugin(tmp_path, monkeypatch, entry_points):
    """A distribution with ``entry_points`` lines in the dataflow group, on sys.path."""
    package = f"dataflow_test_plugin_{uuid.uuid4().hex[:8]}"
    site = tmp_path / "site"
    (site / package).mkdir(parents=True)
    (site / package / "__init__.py").write_text(PLUGIN)
    (site / package / "broken.py").write_text("import a_dependency_that_is_not_installed\n")
    dist = site / f"{package}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n")
    lines = "\n".join(f"{name} = {value.format(pkg=package)}" for name, value in entry_points)
    (dist / "entry_points.txt").write_text(f"[{registry.GROUP}]\n{lines}\n")
    monkeypatch.syspath_prepend(str(site))
    registry.refresh_adapters()
    return package


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """Install a plugin distribution; forget it (and its modules) afterwards."""
    installed = []

    def install(*entry_points):
        package = _install_plugin(tmp_path, monkeypatch, entry_points)
        installed.append(package)
        return package

    yield install
    for package in installed:
        for name in [m for m in sys.modules if m.split(".")[0] == package]:
            del sys.modules[name]
    monkeypatch.undo()
    registry.refresh_adapters()


def test_third_party_adapter_by_name_and_auto(ctx, plugin, tmp_path, data):
    plugin(("textframes", "{pkg}:TextAdapter"))
    assert "textframes" in registry.list_adapters()
    path = tmp_path / "scan.frames.txt"
    np.savetxt(path, data.reshape(6, 20), fmt="%d")
    ds = ctx.load("textframes", path=path, num_partitions=2)
    np.testing.assert_array_equal(ds.array.compute(), data.reshape(6, 4, 5))
    auto = ctx.load("auto", path=path)  # no guess_can_open: by extension
    np.testing.assert_array_equal(auto.array.compute(), data.reshape(6, 4, 5))


def test_refresh_forgets_uninstalled_plugins(plugin, monkeypatch):
    plugin(("textframes", "{pkg}:TextAdapter"))
    assert "textframes" in registry.list_adapters()
    monkeypatch.undo()  # the distribution leaves sys.path
    assert "textframes" in registry.list_adapters()  # cached until refreshed
    registry.refresh_adapters()
    assert "textframes" not in registry.list_adapters()


def test_builtin_adapters_win_auto(ctx, plugin, files, data):
    plugin(("greedy", "{pkg}:GreedyNPY"))
    assert registry.guess_adapter(files["npy"]).name == "npy"
    ds = ctx.load("auto", path=files["npy"])
    np.testing.assert_array_equal(ds.array.compute(), data)


def test_broken_plugin_warns_and_auto_goes_on(ctx, plugin, files, data, tmp_path):
    package = plugin(
        ("broken", "{pkg}.broken:Adapter"),
        ("missing", "{pkg}:NoSuchClass"),
        ("raising", "{pkg}:RaisingGuess"),
    )
    assert {"broken", "missing", "raising"} <= set(registry.list_adapters())
    # a format a built-in adapter recognises: the plugins are never asked
    ds = ctx.load("auto", path=files["npy"])
    np.testing.assert_array_equal(ds.array.compute(), data)
    # a format nobody recognises: every plugin is asked, the broken ones warn
    path = tmp_path / "scan.boom"
    path.write_bytes(b"\0")
    with pytest.warns(DataflowWarning) as record, pytest.raises(AdapterNotFoundError):
        ctx.load("auto", path=path)
    messages = [str(w.message) for w in record]
    assert any(
        "'broken' adapter" in m and "a_dependency_that_is_not_installed" in m for m in messages
    )
    assert any("'missing' adapter" in m and "NoSuchClass" in m for m in messages)
    assert any("'raising' adapter's guess_can_open raised RuntimeError" in m for m in messages)
    # asked for by name, a broken plugin is an ImportError that names it
    with pytest.raises(ImportError, match=rf"'broken' adapter \({package}\.broken:Adapter\)"):
        ctx.load("broken", path=path)
    # the working adapters are unaffected
    assert registry.get_adapter("npy").name == "npy"


def test_duplicate_plugin_name_warns(plugin, tmp_path):
    plugin(("npy", "{pkg}:GreedyNPY"))
    with pytest.warns(DataflowWarning, match="two adapters are registered as 'npy'"):
        names = registry.list_adapters()
    assert "npy" in names
    assert registry.get_adapter("npy").__name__ == "NPYAdapter"


def test_plugin_module_is_imported_only_when_requested(ctx, plugin, tmp_path, data):
    package = plugin(("textframes", "{pkg}:TextAdapter"))
    registry.list_adapters()
    registry.get_adapter("npy")
    assert package not in sys.modules
    path = tmp_path / "scan.frames.txt"
    np.savetxt(path, data.reshape(6, 20), fmt="%d")
    ctx.load("textframes", path=path)
    assert package in sys.modules


def test_plugin_source_is_valid():
    compile(textwrap.dedent(PLUGIN), "<plugin>", "exec")
