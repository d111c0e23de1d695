"""LiberTEM import path for the dataset base class and its exception."""

from dataflow.dataset import DataSet, DataSetMeta, Partition
from dataflow.errors import DataSetException

__all__ = ["DataSet", "DataSetException", "DataSetMeta", "Partition"]
