"""2D results as images: which results are 2D, colour-mapped RGBA arrays, image files.

LiberTEM's ``libertem.viz`` helpers. matplotlib and Pillow are imported only inside the
functions that draw or encode.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["encode_image", "get_plottable_2D_channels", "visualize_simple"]


def get_plottable_2D_channels(buffers: Mapping[str, Any]) -> list[str]:
    """Names of the results whose ``.data`` is 2D once axes of length 1 are dropped.

    Parameters
    ----------
    buffers
        The results of one UDF, as ``ctx.run_udf`` returns them.

    Returns
    -------
    list of str
        The names, in the order of ``buffers``.

    Examples
    --------
    >>> from dataflow.udf.stddev import StdDevUDF
    >>> get_plottable_2D_channels(ctx.run_udf(dataset=dataset, udf=StdDevUDF()))
    ['varsum', 'sum', 'var', 'std', 'mean']
    """
    return [name for name, buf in buffers.items() if np.squeeze(buf.data).ndim == 2]


def _norm(
    values: np.ndarray, norm_cls: Any, vmin: Any, vmax: Any, damage: np.ndarray | None
) -> Any:
    """A ``norm_cls`` spanning the valid values; ``vmin``/``vmax`` win where given."""
    if vmin is not None and vmax is not None:
        return norm_cls(vmin=vmin, vmax=vmax)
    values = values.astype(np.float32)
    valid = values != 0 if damage is None else np.asarray(damage, dtype=bool)
    valid = valid & np.isfinite(values)
    if not valid.any():  # nothing to scale by: all zero, NaN or undamaged
        return norm_cls(vmin=1, vmax=1)
    lo = values[valid].min() if vmin is None else vmin
    hi = values[valid].max() if vmax is None else vmax
    return norm_cls(vmin=lo, vmax=hi)


def visualize_simple(
    result: Any,
    colormap: Any = None,
    logarithmic: bool = False,
    vmin: float | None = None,
    vmax: float | None = None,
    damage: Any = None,
) -> np.ndarray:
    """Colour-map a 2D array into RGBA bytes.

    Parameters
    ----------
    result
        The 2D array of intensities.
    colormap
        A matplotlib colormap (or its name); ``gist_earth`` by default.
    logarithmic
        Scale logarithmically, after shifting the smallest finite value to 1.
    vmin, vmax
        Limits of the colour scale; by default the smallest and largest valid value.
    damage
        Boolean mask of the valid values (``valid_mask`` of a partial result); by
        default every non-zero finite value counts.

    Returns
    -------
    numpy.ndarray
        ``uint8`` RGBA data of shape ``result.shape + (4,)``, for ``PIL.Image.fromarray``.

    Examples
    --------
    >>> rgba = visualize_simple(np.arange(6.0).reshape(2, 3))
    >>> rgba.shape, rgba.dtype
    ((2, 3, 4), dtype('uint8'))
    """
    from matplotlib import colormaps, colors

    values = np.asarray(result)
    if logarithmic:
        values = values.astype(np.result_type(values, np.int8))  # a dtype that subtracts
        finite = values[np.isfinite(values)]
        values = values - (finite.min() if finite.size else 0) + 1
        norm_cls: Any = colors.LogNorm
    else:
        norm_cls = colors.Normalize
    if colormap is None:
        colormap = colormaps["gist_earth"]
    elif isinstance(colormap, str):
        colormap = colormaps[colormap]
    norm = _norm(values, norm_cls, vmin, vmax, damage)
    scaled = norm(values.reshape(-1).astype(np.float64)).reshape(values.shape)
    return colormap(scaled, bytes=True)


def encode_image(result: Any, save_kwargs: Mapping[str, Any] | None = None) -> io.BytesIO:
    """Encode an RGB(A) or grey-scale array as an image file in memory.

    Parameters
    ----------
    result
        An array ``PIL.Image.fromarray`` accepts, such as the output of
        :func:`visualize_simple`; it is converted to RGB.
    save_kwargs
        Keywords of ``PIL.Image.Image.save``; ``{"format": "png"}`` by default.

    Returns
    -------
    io.BytesIO
        The encoded image, positioned at its start.

    Examples
    --------
    >>> buf = encode_image(visualize_simple(np.arange(6.0).reshape(2, 3)))
    >>> buf.read(4)
    b'\\x89PNG'
    """
    from PIL import Image

    kwargs = {"format": "png"} if save_kwargs is None else dict(save_kwargs)
    buf = io.BytesIO()
    Image.fromarray(np.asarray(result)).convert("RGB").save(buf, **kwargs)
    buf.seek(0)
    return buf
