"""Live plots of UDF results and 2D images of them (LiberTEM's ``libertem.viz``).

Nothing here imports matplotlib or bqplot until a plot is drawn.

Examples
--------
>>> from dataflow.viz import Dummy2DPlot
>>> from dataflow.udf.sum import SumUDF
>>> udf = SumUDF()
>>> plot = Dummy2DPlot(dataset, udf, channel="intensity")
>>> res = ctx.run_udf(dataset=dataset, udf=udf, plots=[plot])
>>> bool(np.array_equal(plot.data, res["intensity"].data))
True
"""

from dataflow.plot import Dummy2DPlot, Live2DPlot, MPLLive2DPlot
from dataflow.viz.bqp import BQLive2DPlot
from dataflow.viz.images import encode_image, get_plottable_2D_channels, visualize_simple

__all__ = [
    "BQLive2DPlot",
    "Dummy2DPlot",
    "Live2DPlot",
    "MPLLive2DPlot",
    "encode_image",
    "get_plottable_2D_channels",
    "visualize_simple",
]
