"""LiberTEM's ``libertem.viz.mpl``: the matplotlib live plot."""

from dataflow.plot import MPLLive2DPlot

__all__ = ["MPLLive2DPlot"]
