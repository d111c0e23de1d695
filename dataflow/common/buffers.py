"""LiberTEM import path for buffer declarations and mask errors."""

from dataflow.buffers import BufferWrapper
from dataflow.errors import InvalidMaskError

__all__ = ["BufferWrapper", "InvalidMaskError"]
