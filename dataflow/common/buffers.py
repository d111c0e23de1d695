"""LiberTEM import path for buffer declarations and mask errors."""

from dataflow.buffers import ArrayWithMask, AuxBufferWrapper, BufferWrapper
from dataflow.errors import InvalidMaskError

__all__ = ["ArrayWithMask", "AuxBufferWrapper", "BufferWrapper", "InvalidMaskError"]
