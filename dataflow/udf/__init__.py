"""UDFs: the base class, its mixins, and the built-in UDFs in their own modules."""

from dataflow.buffers import UDFData, check_cast
from dataflow.errors import UDFRunCancelled
from dataflow.udf.auto import AutoUDF
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
    "AutoUDF",
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
