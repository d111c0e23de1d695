"""UDFs: the base class, its mixins, and the built-in UDFs in their own modules."""

from dataflow.buffers import UDFData, check_cast
from dataflow.errors import UDFRunCancelled
from dataflow.udf.base import (
    UDF,
    NoOpUDF,
    UDFFrameMixin,
    UDFMergeAllMixin,
    UDFMeta,
    UDFMethod,
    UDFPartitionMixin,
    UDFPostprocessMixin,
    UDFPreprocessMixin,
    UDFTileMixin,
)

__all__ = [
    "UDF",
    "NoOpUDF",
    "UDFData",
    "UDFFrameMixin",
    "UDFMergeAllMixin",
    "UDFMeta",
    "UDFMethod",
    "UDFPartitionMixin",
    "UDFPostprocessMixin",
    "UDFPreprocessMixin",
    "UDFRunCancelled",
    "UDFTileMixin",
    "check_cast",
]
