"""LiberTEM import path for the dataset base class and its exception."""

from dataflow.errors import DataSetException
from dataflow.sources import DataSet, DataSetMeta, Partition

__all__ = ["DataSet", "DataSetException", "DataSetMeta", "Partition"]
