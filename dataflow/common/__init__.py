"""LiberTEM's ``libertem.common`` import paths, re-exported from dataflow's modules."""

from dataflow.shape import Shape, Slice

__all__ = ["Shape", "Slice"]
