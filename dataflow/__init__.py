"""dataflow: LiberTEM-style UDFs on Dask, with labelled xarray results.

>>> import dataflow
>>> ctx = dataflow.Context.make_with("inline")
>>> ds = ctx.load("memory", data=np.ones((4, 4, 8, 8), dtype="float32"))
>>> from dataflow.udf.sum import SumUDF
>>> ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data[0, 0]
np.float32(16.0)
"""

from dataflow.api import Context
from dataflow.buffers import BufferWrapper
from dataflow.dataset import DataSet, Partition
from dataflow.errors import (
    DataflowError,
    DataflowWarning,
    UDFException,
    UDFRunCancelled,
)
from dataflow.executor.inline import InlineJobExecutor
from dataflow.results import BufferResult, UDFResultDict, UDFResults
from dataflow.shape import Shape, Slice
from dataflow.udf.base import UDF

__version__ = "0.1.0"

__all__ = [
    "UDF",
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
