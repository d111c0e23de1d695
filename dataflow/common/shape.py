"""LiberTEM import path for :class:`~dataflow.shape.Shape`."""

from dataflow.shape import Shape

__all__ = ["Shape"]
