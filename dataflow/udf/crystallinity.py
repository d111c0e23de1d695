"""``CrystallinityUDF``: integrated Fourier amplitude in a ring, a measure of crystallinity."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from dataflow.udf.base import UDF

if TYPE_CHECKING:
    from collections.abc import Sequence

    from dataflow.api import Context
    from dataflow.buffers import BufferWrapper
    from dataflow.sources import DataSet

__all__ = ["CrystallinityUDF", "run_analysis_crystall"]


def _disk(cy: float, cx: float, shape: tuple[int, ...], radius: float) -> np.ndarray:
    """Pixels whose distance from ``(cy, cx)`` is at most ``radius``, as 0 and 1."""
    y = np.arange(shape[0])[:, np.newaxis] - cy
    x = np.arange(shape[1])[np.newaxis, :] - cx
    return (y * y + x * x <= radius * radius).astype(np.int64)


class CrystallinityUDF(UDF):
    """Sum of the Fourier amplitudes of each frame in a ring: ``intensity``.

    Per frame, optionally after zeroing a disk in real space (usually the zero-order
    peak), the amplitudes ``|rfft2(frame)|`` are summed over the spatial frequencies
    whose distance ``d`` (in pixels of the centred spectrum, whose centre is at
    ``(sig_y / 2, sig_x / 2)``) satisfies ``rad_in < d <= rad_out``. As in LiberTEM
    0.16, the sum runs over the half spectrum that ``numpy.fft.rfft2`` returns.
    The result is a float32 ``nav`` buffer.

    Parameters
    ----------
    rad_in, rad_out
        Inner and outer radius of the ring in Fourier space, in pixels.
    real_center
        ``(y, x)`` centre in pixels of the disk zeroed in real space, or None.
    real_rad
        Radius in pixels of that disk (its border included), or None. Nothing is
        zeroed if either ``real_center`` or ``real_rad`` is None.

    Examples
    --------
    >>> udf = CrystallinityUDF(rad_in=2, rad_out=6, real_center=(16, 16), real_rad=3)
    >>> res = ctx.run_udf(dataset=dataset, udf=udf)
    >>> res["intensity"].data.shape, res["intensity"].dtype
    ((16, 16), dtype('float32'))
    """

    def __init__(
        self,
        rad_in: float,
        rad_out: float,
        real_center: Sequence[float] | None,
        real_rad: float | None,
    ) -> None:
        if real_center is not None and np.shape(real_center) != (2,):
            raise ValueError(
                f"real_center is {real_center!r}; expected two coordinates (y, x) in pixels, "
                "or None"
            )
        super().__init__(rad_in=rad_in, rad_out=rad_out, real_center=real_center, real_rad=real_rad)

    def get_result_buffers(self) -> dict[str, BufferWrapper]:
        sig_shape = tuple(self.meta.dataset_shape.sig)
        if len(sig_shape) != 2:
            raise ValueError(
                f"CrystallinityUDF needs frames with 2 signal dimensions; the dataset's "
                f"signal shape is {sig_shape}. Load it with sig_dims=2"
            )
        return {"intensity": self.buffer(kind="nav", dtype="float32")}

    def get_task_data(self) -> dict[str, Any]:
        p = self.params
        sig_shape = tuple(self.meta.dataset_shape.sig)
        real_mask = None
        if p.real_center is not None and p.real_rad is not None:
            ry, rx = p.real_center
            real_mask = 1 - _disk(ry, rx, sig_shape, p.real_rad)
        cy, cx = sig_shape[0] * 0.5, sig_shape[1] * 0.5
        ring = _disk(cy, cx, sig_shape, p.rad_out) - _disk(cy, cx, sig_shape, p.rad_in)
        # the ring in unshifted frequencies, cut to the half that rfft2 returns
        half_ring = np.fft.fftshift(ring)[:, : sig_shape[1] // 2 + 1]
        return {"real_mask": real_mask, "half_ring": half_ring}

    def process_frame(self, frame: np.ndarray) -> None:
        real_mask = self.task_data.real_mask
        if real_mask is not None:
            frame = frame * real_mask
        spectrum = np.abs(np.fft.rfft2(frame))
        self.results.intensity[:] = np.sum(spectrum * self.task_data.half_ring)


def run_analysis_crystall(
    ctx: Context,
    dataset: DataSet,
    rad_in: float,
    rad_out: float,
    real_center: Sequence[float] | None = None,
    real_rad: float | None = None,
    roi: Any = None,
    progress: bool = False,
) -> Any:
    """Run :class:`CrystallinityUDF` on ``dataset`` and return its result mapping.

    Parameters
    ----------
    ctx
        The context to run on.
    dataset
        Data with 2D frames.
    rad_in, rad_out
        Inner and outer radius of the ring in Fourier space, in pixels.
    real_center, real_rad
        ``(y, x)`` centre and radius of a disk zeroed in real space; both or neither.
    roi
        Boolean mask of the navigation shape.
    progress
        Show a progress bar.

    Returns
    -------
    dict
        ``intensity``: the crystallinity value per frame.

    Examples
    --------
    >>> res = run_analysis_crystall(ctx, dataset, rad_in=2, rad_out=6, roi=dataset.roi[0])
    >>> int(np.count_nonzero(~np.isnan(res["intensity"].data)))
    16
    """
    udf = CrystallinityUDF(
        rad_in=rad_in, rad_out=rad_out, real_center=real_center, real_rad=real_rad
    )
    return ctx.run_udf(dataset=dataset, udf=udf, roi=roi, progress=progress)
