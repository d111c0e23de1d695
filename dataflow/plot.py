"""Live plots of 2D result buffers, updated from partial results while a run goes on.

``ctx.run_udf(..., plots=True)`` plots every buffer whose ``.data`` is 2D. Plots are
refreshed at most every ``min_delta`` seconds from partial results, and once more
with the final result. Without a display matplotlib renders off screen, so plots
work headless (CI, remote kernels).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from dataflow.plan import UDFPlan
    from dataflow.sources import DataSet
    from dataflow.udf.base import UDF

__all__ = ["Dummy2DPlot", "Live2DPlot", "MPLLive2DPlot", "default_channels"]


def default_channels(uplan: UDFPlan, nav_dims: int, sig_dims: int) -> list[str]:
    """Names of the buffers whose ``.data`` is 2D."""
    out = []
    for name, decl in uplan.buffers.items():
        if decl.use == "private":
            continue
        base = {"nav": nav_dims, "sig": sig_dims, "single": 0}[decl.kind]
        if base + len(decl.extra_shape) == 2:
            out.append(name)
    return out


class Live2DPlot:
    """Base class of live plots of one channel of one UDF (LiberTEM's ``Live2DPlot``).

    Parameters
    ----------
    dataset
        The dataset of the run.
    udf
        The UDF whose result is plotted.
    roi
        The run's ROI.
    channel
        What to plot: a buffer name; ``(name, function)`` where ``function`` maps the
        buffer's ``.data`` to the 2D array to show; a function
        ``f(udf_results, damage) -> (data, damage)``; or None for the first buffer
        whose ``.data`` is 2D.
    title
        Plot title; ``"<UDF>: <channel>"`` by default.
    min_delta
        Minimum seconds between updates from partial results.
    """

    def __init__(
        self,
        dataset: DataSet,
        udf: UDF,
        roi: np.ndarray | None = None,
        channel: Any = None,
        title: str | None = None,
        min_delta: float = 0.0,
        udfresult: Any = None,
    ) -> None:
        self._func: Callable[..., Any] | None = None
        self._extractor: Callable[..., Any] | None = None
        if isinstance(channel, (tuple, list)):
            name, self._func = channel
        elif callable(channel):
            name, self._extractor = getattr(channel, "__name__", "custom"), channel
        elif channel is None:
            name = _first_2d(dataset, udf)
        else:
            name = channel
        self.dataset = dataset
        self.udf = udf
        self.roi = roi
        self.channel = name
        self.title = title or f"{type(udf).__name__}: {name}"
        self.min_delta = min_delta
        self.data: np.ndarray | None = None
        self.damage: np.ndarray | None = None
        self.n_updates = 0
        self._last = -math.inf

    def get_udf(self) -> UDF:
        """The UDF of this plot."""
        return self.udf

    def extract(self, udf_results: Mapping[str, Any], damage: Any) -> tuple[np.ndarray, Any]:
        """The 2D array to show and its valid mask, from one UDF's (partial) results."""
        if self._extractor is not None:
            return self._extractor(udf_results, damage)
        res = udf_results[self.channel]
        data = res.data
        mask = res.valid_mask
        if self._func is not None:
            data = np.asarray(self._func(data))
            mask = np.ones(data.shape, dtype=bool) if mask.shape != data.shape else mask
        return data, mask

    def new_data(self, udf_results: Mapping[str, Any], damage: Any, force: bool = False) -> bool:
        """Take new (partial) results; redraw if ``force`` or ``min_delta`` has passed."""
        now = time.monotonic()
        if not force and now - self._last < self.min_delta:
            return False
        self._last = now
        self.data, self.damage = self.extract(udf_results, damage)
        self.update(self.damage, force=force)
        self.n_updates += 1
        return True

    def display(self) -> None:
        """Show the (empty) plot."""
        raise NotImplementedError

    def update(self, damage: Any, force: bool = False) -> None:
        """Redraw from ``self.data``."""
        raise NotImplementedError


def _first_2d(dataset: DataSet, udf: UDF) -> str:
    from dataflow.plan import make_plan

    uplan = make_plan(dataset, [udf.copy()]).spec.udfs[0]
    names = default_channels(uplan, dataset.shape.nav_dims, dataset.shape.sig_dims)
    if not names:
        raise ValueError(f"{type(udf).__name__} has no buffer whose result is 2D to plot")
    return names[0]


class MPLLive2DPlot(Live2DPlot):
    """A matplotlib image that refreshes as partial results arrive.

    Attributes
    ----------
    fig, axes, im
        The matplotlib figure, axes and image, once displayed.
    """

    def __init__(
        self,
        dataset: DataSet,
        udf: UDF,
        roi: np.ndarray | None = None,
        channel: Any = None,
        title: str | None = None,
        min_delta: float = 0.5,
        udfresult: Any = None,
        cmap: str = "viridis",
    ) -> None:
        super().__init__(dataset, udf, roi, channel, title, min_delta, udfresult)
        self.cmap = cmap
        self.fig: Any = None
        self.axes: Any = None
        self.im: Any = None

    def display(self) -> None:
        import matplotlib.pyplot as plt

        self.fig, self.axes = plt.subplots()
        self.axes.set_title(self.title)

    def update(self, damage: np.ndarray, force: bool = False) -> None:
        if self.fig is None:
            self.display()
        data: Any = np.ma.array(self.data, mask=~damage) if damage is not None else self.data
        finite = np.asarray(data[~np.ma.getmaskarray(data)], dtype=float) if data.size else data
        finite = finite[np.isfinite(finite)] if finite.size else finite
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if self.im is None:
            self.im = self.axes.imshow(data, cmap=self.cmap, vmin=lo, vmax=hi)
            self.fig.colorbar(self.im, ax=self.axes)
        else:
            self.im.set_data(data)
            self.im.set_clim(lo, hi if hi > lo else lo + 1)
        self.fig.canvas.draw_idle()
        self.fig.canvas.flush_events()

    def close(self) -> None:
        """Close the figure."""
        if self.fig is not None:
            import matplotlib.pyplot as plt

            plt.close(self.fig)


class Dummy2DPlot(Live2DPlot):
    """A plot that draws nothing and keeps the data it was given (for tests)."""

    def display(self) -> None:
        pass

    def update(self, damage: np.ndarray, force: bool = False) -> None:
        pass


def _is_plot(obj: Any) -> bool:
    """A plot object: anything with ``get_udf()`` and ``new_data()``, as LiberTEM accepts."""
    return callable(getattr(obj, "get_udf", None)) and callable(getattr(obj, "new_data", None))


def make_plots(
    plots: Any,
    plot_class: type[Live2DPlot],
    dataset: DataSet,
    uplans: Sequence[UDFPlan],
    udfs: Sequence[UDF],
    roi: np.ndarray | None,
) -> list[tuple[int, Live2DPlot]]:
    """(UDF index, plot) pairs for a ``plots=`` argument of ``run_udf``."""
    if plots is None or plots is False:
        return []
    nav_dims, sig_dims = dataset.shape.nav_dims, dataset.shape.sig_dims
    if plots is True:
        channels = [default_channels(u, nav_dims, sig_dims) for u in uplans]
    elif isinstance(plots, Sequence) and plots and all(_is_plot(p) for p in plots):
        out = []
        for p in plots:
            target = p.get_udf()
            matches = [i for i, u in enumerate(udfs) if u is target]
            if not matches:
                raise ValueError(f"plot {p!r} is for a UDF that is not part of this run")
            out.append((matches[0], p))
        return out
    elif (
        isinstance(plots, Sequence)
        and len(plots) <= len(uplans)
        and all(isinstance(c, Sequence) and not isinstance(c, str) for c in plots)
    ):
        channels = [list(c) for c in plots] + [[]] * (len(uplans) - len(plots))
    else:
        raise TypeError(
            f"plots is {plots!r}; expected True, a list of plot objects, or up to one list of "
            f"channels per UDF ({len(uplans)} UDFs)"
        )
    out = []
    for i, (uplan, names) in enumerate(zip(uplans, channels, strict=True)):
        for ch in names:
            name = ch[0] if isinstance(ch, (tuple, list)) else ch
            if callable(ch):
                plot = plot_class(dataset, udfs[i], roi=roi, channel=ch)
                plot.display()
                out.append((i, plot))
                continue
            if name not in uplan.buffers:
                raise ValueError(
                    f"plot channel {name!r} is not a buffer of {uplan.name}; its buffers: "
                    f"{sorted(uplan.buffers)}"
                )
            plot = plot_class(dataset, udfs[i], roi=roi, channel=ch)
            plot.display()
            out.append((i, plot))
    return out
