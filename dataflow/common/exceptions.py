"""LiberTEM import path for dataflow's exceptions."""

from dataflow.errors import (
    DataSetException,
    ExecutorSpecException,
    UDFException,
    UDFRunCancelled,
)

__all__ = ["DataSetException", "ExecutorSpecException", "UDFException", "UDFRunCancelled"]
