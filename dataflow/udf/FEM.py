"""``FEMUDF``: fluctuation electron microscopy, the spread of intensity in a ring."""

# ruff: noqa: N999 (the module keeps LiberTEM's name, libertem.udf.FEM)

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from dataflow.udf.base import UDF

if TYPE_CHECKING:
    from collections.abc import Sequence

    from dataflow.api import Context
    from dataflow.buffers import BufferWrapper
    from dataflow.sources import DataSet

__all__ = ["FEMUDF", "run_fem"]


def _disk(cy: float, cx: float, shape: tuple[int, ...], radius: float) -> np.ndarray:
    """Pixels whose distance from ``(cy, cx)`` is at most ``radius`` (LiberTEM's disk)."""
    y = np.arange(shape[0])[:, np.newaxis] - cy
    x = np.arange(shape[1])[np.newaxis, :] - cx
    return y * y + x * x <= radius * radius


def _check_sig(name: str, sig_shape: tuple[int, ...]) -> None:
    if len(sig_shape) != 2:
        raise ValueError(
            f"{name} needs frames with 2 signal dimensions; the dataset's signal shape is "
            f"{sig_shape}. Load it with sig_dims=2"
        )


class FEMUDF(UDF):
    """Standard deviation of the pixels in a ring of each frame (Gibson and Treacy 1997).

    The ring holds the pixels whose distance ``d`` from ``center`` satisfies
    ``rad_in < d <= rad_out``: the outer border is part of it, the inner one is not.
    The result is ``intensity``, a float32 ``nav`` buffer with ``np.std`` of those
    pixels (the population standard deviation).

    Parameters
    ----------
    center
        Centre of the ring in pixels, as ``(y, x)``: ``center[0]`` is the row.
        (LiberTEM's documentation says ``(x, y)``, but its code uses ``center[0]``
        for rows, and so does this UDF.)
    rad_in, rad_out
        Inner and outer radius in pixels.

    Raises
    ------
    ValueError
        If ``center`` does not have two entries, the frames are not 2D, or the ring
        holds no pixel of the frame (before any data is read).

    Examples
    --------
    >>> res = ctx.run_udf(dataset=dataset, udf=FEMUDF(center=(16, 16), rad_in=4, rad_out=8))
    >>> res["intensity"].data.shape
    (16, 16)
    >>> yy, xx = np.mgrid[:32, :32]
    >>> d2 = (yy - 16) ** 2 + (xx - 16) ** 2
    >>> ring = (d2 > 4**2) & (d2 <= 8**2)
    >>> bool(np.allclose(res["intensity"].data, data[:, :, ring].std(axis=-1), rtol=1e-5))
    True
    """

    def __init__(self, center: Sequence[float], rad_in: float, rad_out: float) -> None:
        if np.shape(center) != (2,):
            raise ValueError(f"center is {center!r}; expected two coordinates (y, x) in pixels")
        super().__init__(center=center, rad_in=rad_in, rad_out=rad_out)

    def _ring(self) -> np.ndarray:
        sig_shape = tuple(self.meta.dataset_shape.sig)
        _check_sig("FEMUDF", sig_shape)
        cy, cx = self.params.center
        outer = _disk(cy, cx, sig_shape, self.params.rad_out)
        return outer & ~_disk(cy, cx, sig_shape, self.params.rad_in)

    def get_result_buffers(self) -> dict[str, BufferWrapper]:
        if not self._ring().any():
            p = self.params
            raise ValueError(
                f"the ring rad_in={p.rad_in!r} < d <= rad_out={p.rad_out!r} around "
                f"center={p.center!r} holds no pixel of the {tuple(self.meta.dataset_shape.sig)} "
                "frame; expected rad_in < rad_out and a ring that overlaps the frame"
            )
        return {"intensity": self.buffer(kind="nav", dtype="float32")}

    def get_task_data(self) -> dict[str, Any]:
        return {"ring": self._ring()}

    def process_frame(self, frame: np.ndarray) -> None:
        self.results.intensity[:] = np.std(frame[self.task_data.ring])


def run_fem(
    ctx: Context,
    dataset: DataSet,
    center: Sequence[float],
    rad_in: float,
    rad_out: float,
    roi: Any = None,
) -> Any:
    """Run :class:`FEMUDF` on ``dataset`` and return its result mapping.

    Parameters
    ----------
    ctx
        The context to run on.
    dataset
        Data with 2D frames.
    center
        Centre of the ring, ``(y, x)`` in pixels (see :class:`FEMUDF`).
    rad_in, rad_out
        Inner and outer radius in pixels.
    roi
        Boolean mask of the navigation shape.

    Returns
    -------
    dict
        ``intensity``: the standard deviation in the ring, per frame.

    Examples
    --------
    >>> run_fem(ctx, dataset, center=(16, 16), rad_in=0, rad_out=4)["intensity"].data.dtype
    dtype('float32')
    """
    udf = FEMUDF(center=center, rad_in=rad_in, rad_out=rad_out)
    return ctx.run_udf(dataset=dataset, udf=udf, roi=roi)
