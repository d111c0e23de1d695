"""The installed distribution: packages, entry points, light import, doctests."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import subprocess
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest

import dataflow

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {
        ".".join(("dataflow", *p.parent.relative_to(ROOT / "dataflow").parts))
        for p in (ROOT / "dataflow").rglob("__init__.py")
    }
    found.add("dataflow.adapters")
    assert found <= listed, f"not packaged: {sorted(found - listed)}"


def test_adapters_are_installed_as_dataflow_adapters():
    import dataflow.adapters

    assert importlib.util.find_spec("adapters") is None or "site-packages" not in str(
        importlib.util.find_spec("adapters").origin
    )
    assert dataflow.adapters.__name__ == "dataflow.adapters"


def test_entry_points_name_the_builtin_sources():
    names = {ep.name for ep in entry_points(group="dataflow.adapters")}
    assert {"memory", "dask", "npy", "zarr"} <= names


def test_import_dataflow_stays_light(tmp_path):
    # (xarray is not in the list: dask.array imports it whenever it is installed)
    code = (
        "import sys, dataflow, dataflow.api, dataflow.udf.sum, dataflow.cli;"
        "import dataflow.adapters.npy, dataflow.adapters.zarr;"
        "heavy = {'zarr', 'h5py', 'rsciio', 'matplotlib', 'distributed', 'tqdm'};"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    # from elsewhere than the source tree, so the installed package is imported
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.strip() == "[]"


def _modules():
    for info in pkgutil.walk_packages(dataflow.__path__, "dataflow."):
        if info.name.endswith("__main__"):
            continue
        yield info.name


@pytest.mark.parametrize("name", sorted(_modules()))
def test_docstring_examples(name, tmp_path, monkeypatch):
    """Every Examples section runs, with a small ``ctx``, ``dataset`` and ``data``."""
    from dataflow.api import Context

    module = importlib.import_module(name)
    monkeypatch.chdir(tmp_path)
    ctx = Context.make_with("inline")
    data = np.random.default_rng(0).random((16, 16, 32, 32), dtype=np.float32)
    globs = {
        "np": np,
        "ctx": ctx,
        "data": data,
        "dataset": ctx.load("memory", data=data, sig_dims=2),
        "tmp_path": tmp_path,
    }
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name, globs={**vars(module), **globs}):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0


def test_ci_tests_the_oldest_dask_zarr_and_xarray_that_pyproject_allows():
    import re

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    bounds = {}
    for spec in config["project"]["dependencies"]:
        m = re.fullmatch(r"([\w\[\]]+)>=([\w.]+)", spec)
        if m:
            bounds[m.group(1)] = m.group(2)
    ci = (ROOT / ".ci" / "run").read_text()
    pins = dict(re.findall(r"'([\w\[\]]+)==([\w.]+)'", ci))
    for name in ("dask[array]", "zarr", "xarray"):
        assert name in pins, f".ci/run does not test the oldest {name}"
        # a version equal to the lower bound, written with or without trailing zeros
        assert pins[name].split(".")[:2] == bounds[name].split(".")[:2], (name, pins, bounds)
