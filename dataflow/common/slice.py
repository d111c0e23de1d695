"""LiberTEM import path for :class:`~dataflow.shape.Slice`."""

from dataflow.shape import Slice

__all__ = ["Slice"]
