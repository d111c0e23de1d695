"""LiberTEM's ``libertem.viz.bqp``: a live plot drawn with bqplot, for Jupyter.

bqplot is optional: ``pip install 'dataflow-udf[bqplot]'``. It is imported when a
:class:`BQLive2DPlot` is created, never when this module is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from dataflow.plot import Live2DPlot

if TYPE_CHECKING:
    from collections.abc import Callable

    from dataflow.sources import DataSet
    from dataflow.udf.base import UDF

__all__ = ["BQLive2DPlot"]


def _import_bqplot() -> Any:
    try:
        import bqplot
    except ImportError as e:
        raise ImportError(
            "BQLive2DPlot needs the bqplot package, which is not installed: "
            "pip install 'dataflow-udf[bqplot]' (or pip install bqplot)"
        ) from e
    return bqplot


def _image(data: Any, damage: Any, channel: str) -> tuple[np.ndarray, float, float]:
    """The 2D float image to show (NaN where not valid) and its colour range."""
    arr = np.asarray(data)
    if arr.ndim > 2:
        arr = np.squeeze(arr)
    if arr.ndim != 2:
        raise ValueError(
            f"plot channel {channel!r} has shape {np.shape(data)}; BQLive2DPlot shows 2D "
            "data: pass (name, function) as the channel to reduce it to 2D"
        )
    if np.iscomplexobj(arr):
        arr = np.abs(arr)
    try:
        values = arr.astype(np.result_type(arr.dtype, np.float32))
    except (TypeError, ValueError):
        raise TypeError(
            f"plot channel {channel!r} has dtype {arr.dtype}; BQLive2DPlot shows numbers: "
            "pass (name, function) as the channel to convert it"
        ) from None
    valid = np.isfinite(values)
    if damage is not None:
        mask = np.asarray(damage, dtype=bool)
        if mask.size == values.size:
            mask = mask.reshape(values.shape)
        valid &= np.broadcast_to(mask, values.shape)
    image = np.where(valid, values, np.nan).astype(values.dtype)
    if not valid.any():
        return image, 0.0, 1.0
    lo, hi = float(values[valid].min()), float(values[valid].max())
    return image, lo, hi if hi > lo else lo + 1.0


class BQLive2DPlot(Live2DPlot):
    """A bqplot heat map of one result, refreshed as partial results arrive.

    For Jupyter: :meth:`display` shows the figure in the current cell, and updates
    reach it while the run goes on.

    Parameters
    ----------
    dataset, udf, roi, channel, title, udfresult
        As for :class:`~dataflow.plot.Live2DPlot`.
    min_delta
        Minimum seconds between updates from partial results (LiberTEM's 1/60).

    Attributes
    ----------
    figure : bqplot.Figure
        The figure; display it yourself, or with :meth:`display`.
    heatmap : bqplot.HeatMap or None
        The image, created with the first data; ``heatmap.color`` holds the values
        shown, NaN where they are not valid yet (not merged, outside the ROI).
    color_scale : bqplot.ColorScale
        Spans the smallest to the largest valid value.

    Raises
    ------
    ImportError
        If bqplot is not installed.

    Notes
    -----
    LiberTEM draws with ``bqplot_image_gl.ImageGL``, a WebGL extension; this class
    uses bqplot's own ``HeatMap`` and needs nothing else. As in LiberTEM, the first
    row is at the top.

    Examples
    --------
    >>> from dataflow.udf.sum import SumUDF
    >>> udf = SumUDF()
    >>> plot = BQLive2DPlot(dataset, udf, channel="intensity")  # doctest: +SKIP
    >>> plot.display()  # doctest: +SKIP
    >>> res = ctx.run_udf(dataset=dataset, udf=udf, plots=[plot])  # doctest: +SKIP
    """

    def __init__(
        self,
        dataset: DataSet,
        udf: UDF,
        roi: np.ndarray | None = None,
        channel: str | tuple[str, Callable[[np.ndarray], np.ndarray]] | None = None,
        title: str | None = None,
        min_delta: float = 1 / 60,
        udfresult: Any = None,
    ) -> None:
        bqplot = _import_bqplot()
        super().__init__(
            dataset,
            udf,
            roi=roi,
            channel=channel,
            title=title,
            min_delta=min_delta,
            udfresult=udfresult,
        )
        self.scale_x = bqplot.LinearScale()
        self.scale_y = bqplot.LinearScale(reverse=True)  # row 0 at the top
        self.color_scale = bqplot.ColorScale(scheme="viridis", min=0.0, max=1.0)
        axes = [
            bqplot.Axis(scale=self.scale_x, label="x", side="bottom"),
            bqplot.Axis(scale=self.scale_y, label="y", side="left"),
        ]
        self.figure = bqplot.Figure(marks=[], axes=axes, title=self.title)
        self.heatmap: Any = None

    def display(self) -> None:
        """Show the figure in the current Jupyter cell."""
        from IPython.display import display

        display(self.figure)

    def update(self, damage: np.ndarray, force: bool = False) -> None:
        """Show ``self.data``, valid where ``damage`` is True."""
        image, lo, hi = _image(self.data, damage, self.channel)
        height, width = image.shape
        x, y = np.arange(width), np.arange(height)
        if self.heatmap is None:
            bqplot = _import_bqplot()
            scales = {"x": self.scale_x, "y": self.scale_y, "color": self.color_scale}
            self.heatmap = bqplot.HeatMap(x=x, y=y, color=image, scales=scales)
            self.figure.marks = [self.heatmap]
        else:
            with self.heatmap.hold_sync():
                if self.heatmap.color.shape != image.shape:
                    self.heatmap.x, self.heatmap.y = x, y
                self.heatmap.color = image
        aspect = width / height if height else 1.0
        with self.figure.hold_sync():
            self.figure.min_aspect_ratio = aspect
            self.figure.max_aspect_ratio = aspect
        with self.color_scale.hold_sync():
            self.color_scale.min = lo
            self.color_scale.max = hi

    def close(self) -> None:
        """Close the figure's widgets."""
        if self.heatmap is not None:
            self.heatmap.close()
        self.figure.close()
