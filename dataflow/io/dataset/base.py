"""LiberTEM import path for the dataset base class and its exception."""

from dataflow.dataset import DataSet
from dataflow.errors import DataSetException

__all__ = ["DataSet", "DataSetException"]
