"""LiberTEM's ``libertem.viz.base``: the live plot base classes and the image helpers."""

from dataflow.plot import Dummy2DPlot, Live2DPlot
from dataflow.viz.images import encode_image, get_plottable_2D_channels, visualize_simple

__all__ = [
    "Dummy2DPlot",
    "Live2DPlot",
    "encode_image",
    "get_plottable_2D_channels",
    "visualize_simple",
]
