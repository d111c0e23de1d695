"""dataflow: LiberTEM-style UDFs on Dask, with labelled xarray results.

>>> import dataflow
>>> ctx = dataflow.Context.make_with("inline")
>>> ds = ctx.load("memory", data=np.ones((4, 4, 8, 8), dtype="float32"))
>>> from dataflow.udf.sum import SumUDF
>>> ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data[0, 0]
np.float32(16.0)
"""

import importlib.util as _util
import sys as _sys
from pathlib import Path as _Path


def _adapters_from_source_tree() -> None:
    """In a source checkout, make ``adapters/`` importable as ``dataflow.adapters``.

    Installed, the folder *is* ``dataflow.adapters``. Run from the root of a checkout
    (``python -m dataflow scan.npy``), Python imports the ``dataflow/`` folder there,
    which has no ``adapters`` inside; point the name at the sibling folder instead.
    """
    here = _Path(__file__).resolve().parent
    source = here.parent / "adapters" / "__init__.py"
    if (here / "adapters").exists() or not source.is_file() or "dataflow.adapters" in _sys.modules:
        return
    spec = _util.spec_from_file_location(
        "dataflow.adapters", source, submodule_search_locations=[str(source.parent)]
    )
    if spec is None or spec.loader is None:
        return
    module = _util.module_from_spec(spec)
    _sys.modules["dataflow.adapters"] = module
    spec.loader.exec_module(module)
    globals()["adapters"] = module  # what the import system does for a subpackage


_adapters_from_source_tree()

import dataflow.accessor  # noqa: F401 (registers DataArray.dataflow)
from dataflow.api import Context
from dataflow.buffers import BufferWrapper
from dataflow.errors import (
    DataflowError,
    DataflowWarning,
    UDFException,
    UDFRunCancelled,
)
from dataflow.executor.inline import InlineJobExecutor
from dataflow.results import BufferResult, UDFResultDict, UDFResults
from dataflow.shape import Shape, Slice
from dataflow.sources import DataSet, Partition
from dataflow.sources.adapter import Adapter
from dataflow.udf.base import UDF

__version__ = "0.1.0"

__all__ = [
    "UDF",
    "Adapter",
    "BufferResult",
    "BufferWrapper",
    "Context",
    "DataSet",
    "DataflowError",
    "DataflowWarning",
    "InlineJobExecutor",
    "Partition",
    "Shape",
    "Slice",
    "UDFException",
    "UDFResultDict",
    "UDFResults",
    "UDFRunCancelled",
    "__version__",
]
