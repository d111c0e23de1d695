"""LiberTEM's viz import paths, live plots updated by runs, and the image helpers."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import dataflow.plot
import dataflow.viz
from dataflow.api import Context
from dataflow.executor.inline import InlineJobExecutor
from dataflow.udf.base import NoOpUDF
from dataflow.udf.stddev import StdDevUDF
from dataflow.udf.sum import SumUDF
from dataflow.udf.sumsigudf import SumSigUDF
from dataflow.viz import base, images, mpl
from dataflow.viz.base import Dummy2DPlot
from dataflow.viz.mpl import MPLLive2DPlot


@pytest.fixture
def bqplot():
    return pytest.importorskip("bqplot")


@pytest.fixture
def dataset(ctx, data_factory):
    return ctx.load("memory", data=data_factory((8, 6, 4, 5)), num_partitions=4)


@pytest.fixture
def roi():
    mask = np.zeros((8, 6), dtype=bool)
    mask[2:5, 1:4] = True
    return mask


# import paths ---------------------------------------------------------------------------


def test_liberTEM_paths_are_the_plot_classes():
    from dataflow.viz.bqp import BQLive2DPlot

    assert base.Live2DPlot is dataflow.plot.Live2DPlot
    assert base.Dummy2DPlot is dataflow.plot.Dummy2DPlot
    assert mpl.MPLLive2DPlot is dataflow.plot.MPLLive2DPlot
    assert issubclass(BQLive2DPlot, dataflow.plot.Live2DPlot)
    for name in dataflow.viz.__all__:
        assert getattr(dataflow.viz, name) is not None
    assert base.visualize_simple is images.visualize_simple


def test_importing_viz_loads_no_plotting_library(tmp_path):
    code = (
        "import sys, dataflow.viz, dataflow.viz.base, dataflow.viz.mpl, dataflow.viz.bqp;"
        "import dataflow.common.viz;"
        "heavy = {'matplotlib', 'bqplot', 'PIL', 'IPython', 'ipywidgets'};"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.strip() == "[]"


# live plots through run_udf -------------------------------------------------------------


def test_dummy_plot_gets_every_partial_result_and_the_final_one(ctx, dataset):
    udf = SumUDF()
    plot = Dummy2DPlot(dataset, udf, channel="intensity", min_delta=0)
    res = ctx.run_udf(dataset=dataset, udf=udf, plots=[plot])
    assert plot.n_updates == dataset.get_num_partitions() + 1
    np.testing.assert_array_equal(plot.data, res["intensity"].data)
    assert plot.damage.all()


def test_dummy_plot_with_a_function_channel(ctx, dataset):
    udf = SumSigUDF()
    plot = Dummy2DPlot(dataset, udf, channel=("intensity", np.abs))
    res = ctx.run_udf(dataset=dataset, udf=udf, plots=[plot])
    np.testing.assert_allclose(plot.data, np.abs(res["intensity"].data))


def test_plots_of_two_udfs_go_to_their_own_udf(ctx, dataset, roi):
    sum_udf, sumsig_udf = SumUDF(), SumSigUDF()
    plots = [
        Dummy2DPlot(dataset, sumsig_udf, roi=roi, channel="intensity"),
        Dummy2DPlot(dataset, sum_udf, roi=roi, channel="intensity"),
    ]
    res_sum, res_sumsig = ctx.run_udf(
        dataset=dataset, udf=[sum_udf, sumsig_udf], roi=roi, plots=plots
    )
    np.testing.assert_array_equal(plots[0].data, res_sumsig["intensity"].data)
    np.testing.assert_array_equal(plots[0].damage, roi)
    np.testing.assert_array_equal(plots[1].data, res_sum["intensity"].data)


@pytest.mark.parametrize(
    ("plots", "func"),
    [(True, None), ([["intensity"]], None), ([[("intensity", np.abs)]], np.abs)],
    ids=["true", "names", "name-function"],
)
def test_plot_class_of_the_context_makes_the_plots(dataset, plots, func):
    with Context(executor=InlineJobExecutor(), plot_class=Dummy2DPlot) as ctx:
        res = ctx.run_udf(dataset=dataset, udf=SumUDF(), plots=plots)
        [plot] = ctx.plots
    assert isinstance(plot, Dummy2DPlot)
    expected = res["intensity"].data
    np.testing.assert_allclose(plot.data, expected if func is None else func(expected))


def test_plots_true_skips_udfs_without_2d_results(dataset):
    with Context(executor=InlineJobExecutor(), plot_class=Dummy2DPlot) as ctx:
        ctx.run_udf(dataset=dataset, udf=[NoOpUDF(), StdDevUDF()], plots=True)
        channels = [p.channel for p in ctx.plots]
    assert channels == ["varsum", "sum", "var", "std", "mean"]


def test_mpl_plot_shows_the_result(ctx, dataset, roi):
    pytest.importorskip("matplotlib")
    udf = SumSigUDF()
    plot = MPLLive2DPlot(dataset, udf, roi=roi, channel="intensity")
    try:
        res = ctx.run_udf(dataset=dataset, udf=udf, roi=roi, plots=[plot])
        shown = plot.im.get_array()
        np.testing.assert_array_equal(shown.mask, ~roi)
        np.testing.assert_array_equal(shown[roi], res["intensity"].data[roi])
        lo, hi = plot.im.get_clim()
        assert lo == pytest.approx(res["intensity"].raw_data.min())
        assert hi == pytest.approx(res["intensity"].raw_data.max())
    finally:
        plot.close()


# bqplot ---------------------------------------------------------------------------------


def test_bqplot_plot_shows_the_result(bqplot, ctx, dataset):
    from dataflow.viz.bqp import BQLive2DPlot

    udf = SumUDF()
    plot = BQLive2DPlot(dataset, udf, channel="intensity", min_delta=0)
    try:
        res = ctx.run_udf(dataset=dataset, udf=udf, plots=[plot])
        assert isinstance(plot.heatmap, bqplot.HeatMap)
        assert list(plot.figure.marks) == [plot.heatmap]
        np.testing.assert_array_equal(plot.heatmap.color, res["intensity"].data)
        np.testing.assert_array_equal(plot.heatmap.x, np.arange(5))
        np.testing.assert_array_equal(plot.heatmap.y, np.arange(4))
        assert plot.color_scale.min == pytest.approx(res["intensity"].data.min())
        assert plot.color_scale.max == pytest.approx(res["intensity"].data.max())
        assert plot.n_updates == dataset.get_num_partitions() + 1
    finally:
        plot.close()


def test_bqplot_plot_leaves_invalid_positions_empty(bqplot, ctx, dataset, roi):
    from dataflow.viz.bqp import BQLive2DPlot

    udf = SumSigUDF()
    plot = BQLive2DPlot(dataset, udf, roi=roi, channel="intensity")
    try:
        res = ctx.run_udf(dataset=dataset, udf=udf, roi=roi, plots=[plot])
        color = plot.heatmap.color
        assert np.isnan(color[~roi]).all()
        np.testing.assert_array_equal(color[roi], res["intensity"].data[roi])
        assert plot.color_scale.min == pytest.approx(res["intensity"].raw_data.min())
        assert plot.color_scale.max == pytest.approx(res["intensity"].raw_data.max())
    finally:
        plot.close()


def test_bqplot_plot_as_the_context_plot_class(bqplot, dataset):
    from dataflow.viz.bqp import BQLive2DPlot

    with Context(executor=InlineJobExecutor(), plot_class=BQLive2DPlot) as ctx:
        res = ctx.run_udf(dataset=dataset, udf=SumUDF(), plots=[[("intensity", np.square)]])
        [plot] = ctx.plots
    np.testing.assert_allclose(plot.heatmap.color, np.square(res["intensity"].data), rtol=1e-6)
    plot.close()


def test_bqplot_plot_rejects_data_that_is_not_2d(bqplot, ctx, dataset):
    from dataflow.viz.bqp import BQLive2DPlot

    udf = SumUDF()
    plot = BQLive2DPlot(dataset, udf, channel=("intensity", np.ravel))
    with pytest.raises(ValueError, match="shows 2D data"):
        ctx.run_udf(dataset=dataset, udf=udf, plots=[plot])
    plot.close()


def test_bqplot_missing_names_the_package(monkeypatch, dataset):
    from dataflow.viz.bqp import BQLive2DPlot

    monkeypatch.setitem(sys.modules, "bqplot", None)  # makes `import bqplot` fail
    with pytest.raises(ImportError, match=r"bqplot.*pip install 'dataflow-udf\[bqplot\]'"):
        BQLive2DPlot(dataset, SumUDF(), channel="intensity")


# image helpers --------------------------------------------------------------------------


def test_get_plottable_2d_channels_drops_axes_of_length_one(ctx, dataset):
    res = ctx.run_udf(dataset=dataset, udf=[SumUDF(), SumSigUDF(), StdDevUDF()])
    assert images.get_plottable_2D_channels(res[0]) == ["intensity"]
    assert images.get_plottable_2D_channels(res[1]) == ["intensity"]
    assert "num_frames" not in images.get_plottable_2D_channels(res[2])


@pytest.mark.parametrize("logarithmic", [False, True])
@pytest.mark.parametrize(
    "values",
    [
        np.full((4, 5), np.nan),
        np.zeros((4, 5)),
        np.ones((4, 5)),
        np.full((4, 5), -1.0),
        np.arange(20.0).reshape(4, 5) - 7,
    ],
    ids=["nan", "zeros", "ones", "negative", "ramp"],
)
def test_visualize_simple_gives_rgba_bytes_for_any_values(values, logarithmic):
    pytest.importorskip("matplotlib")
    rgba = images.visualize_simple(values, logarithmic=logarithmic)
    assert rgba.shape == (4, 5, 4)
    assert rgba.dtype == np.uint8


def test_visualize_simple_scales_between_the_valid_extremes():
    from matplotlib import colormaps

    values = np.array([[0.0, 1.0], [2.0, 4.0]])
    rgba = images.visualize_simple(values, colormap="viridis")
    cmap = colormaps["viridis"]
    # zeros do not count as valid by default: the scale runs from 1 to 4
    np.testing.assert_array_equal(rgba[0, 1], cmap(0.0, bytes=True))
    np.testing.assert_array_equal(rgba[1, 1], cmap(1.0, bytes=True))
    fixed = images.visualize_simple(values, colormap=cmap, vmin=0, vmax=8)
    np.testing.assert_array_equal(fixed[1, 1], cmap(0.5, bytes=True))
    damaged = images.visualize_simple(values, colormap=cmap, damage=values < 3)
    np.testing.assert_array_equal(damaged[1, 0], cmap(1.0, bytes=True))


def test_encode_image_writes_a_png_of_the_shape():
    from PIL import Image

    rgba = images.visualize_simple(np.arange(12.0).reshape(3, 4))
    buf = images.encode_image(rgba)
    with Image.open(buf) as im:
        assert im.format == "PNG"
        assert im.size == (4, 3)
    jpeg = images.encode_image(rgba, save_kwargs={"format": "jpeg", "quality": 90})
    assert jpeg.read(2) == b"\xff\xd8"
