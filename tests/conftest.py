"""Shared fixtures: contexts on each scheduler, small datasets, and helpers for workers."""

from __future__ import annotations

import os
import sys

import cloudpickle
import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

from dataflow.api import Context
from dataflow.executor.inline import InlineJobExecutor


@pytest.fixture
def ctx():
    """A context on dask's synchronous scheduler."""
    with Context(executor=InlineJobExecutor(debug=True)) as c:
        yield c


@pytest.fixture(scope="session")
def threads_ctx():
    with Context.make_with("threads", cpus=2) as c:
        yield c


@pytest.fixture(scope="session")
def processes_ctx():
    with Context.make_with("processes", cpus=2) as c:
        yield c


@pytest.fixture(scope="session")
def dask_ctx():
    """A context on a local dask.distributed cluster of two single-threaded worker processes."""
    pytest.importorskip("distributed")
    with Context.make_with("dask", cpus=2) as c:
        yield c


@pytest.fixture
def by_value(request):
    """Pickle the requesting test module by value, so spawned workers need not import it."""
    module = sys.modules[request.module.__name__]
    cloudpickle.register_pickle_by_value(module)
    yield
    cloudpickle.unregister_pickle_by_value(module)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def make_data(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Random data of ``dtype`` whose float32 sums are exact or well conditioned."""
    dt = np.dtype(dtype)
    if dt.kind == "u":
        return rng.integers(0, min(np.iinfo(dt).max, 1000), size=shape).astype(dt)
    if dt.kind == "i":
        return rng.integers(-1000, 1000, size=shape).astype(dt)
    if dt.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dt)
    return rng.standard_normal(shape).astype(dt)


@pytest.fixture
def data_factory(rng):
    return lambda shape, dtype="float32": make_data(rng, shape, dtype)


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    doctest_namespace["np"] = np
