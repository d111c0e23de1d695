"""LiberTEM import path for :func:`~dataflow.viz.images.encode_image`."""

from dataflow.viz.images import encode_image

__all__ = ["encode_image"]
