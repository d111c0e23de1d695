"""A built-in example: a generated 4D-STEM scan whose diffraction disk shifts with position.

The scan shows a specimen with a few round particles. Each frame holds the bright
central disk of a convergent beam: its centre is deflected by a smooth, position-
dependent field (as a specimen's electric field deflects the beam, which is what
centre-of-mass imaging measures), and inside a particle it is dimmer and scatters
more intensity into a diffuse ring. Poisson noise makes it look measured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    from dataflow.api import Context
    from dataflow.sources import DataSet

__all__ = ["example_dataset", "make_example_data"]


def make_example_data(
    nav_shape: Sequence[int] = (32, 32),
    sig_shape: Sequence[int] = (64, 64),
    *,
    dtype: Any = "float32",
    seed: int = 0,
    disk_radius: float | None = None,
    max_shift: float | None = None,
    counts: float = 200.0,
) -> np.ndarray:
    """A 4D-STEM scan of shape ``nav_shape + sig_shape``.

    Parameters
    ----------
    nav_shape, sig_shape
        Scan and detector shape (both 2D).
    dtype
        dtype of the result; counts are integers before conversion.
    seed
        Seed of the random particles and the noise.
    disk_radius
        Radius of the central disk in pixels; ``sig_shape[0] / 8`` by default.
    max_shift
        Largest deflection of the disk in pixels; ``disk_radius / 2`` by default.
    counts
        Mean counts per pixel inside the undeflected disk.

    Examples
    --------
    >>> data = make_example_data((8, 8), (32, 32))
    >>> data.shape, data.dtype
    ((8, 8, 32, 32), dtype('float32'))
    """
    ny, nx = (int(s) for s in nav_shape)
    sy, sx = (int(s) for s in sig_shape)
    rng = np.random.default_rng(seed)
    r = disk_radius if disk_radius is not None else sy / 8
    shift = max_shift if max_shift is not None else r / 2
    yy, xx = np.mgrid[0:ny, 0:nx]
    # deflection field: a smooth vortex-like pattern across the scan
    fy = shift * np.sin(2 * np.pi * xx / max(nx, 1)) * np.cos(np.pi * yy / max(ny, 1))
    fx = shift * np.cos(2 * np.pi * yy / max(ny, 1)) * np.sin(np.pi * xx / max(nx, 1))
    # a few particles: inside, the disk is dimmer and a diffuse ring appears
    particles = np.zeros((ny, nx))
    for _ in range(max(1, ny * nx // 200)):
        cy, cx = rng.uniform(0, ny), rng.uniform(0, nx)
        rad = rng.uniform(1.5, max(2.0, min(ny, nx) / 6))
        particles = np.maximum(particles, (yy - cy) ** 2 + (xx - cx) ** 2 < rad**2)
    dy, dx = np.mgrid[0:sy, 0:sx]
    dy = dy - (sy - 1) / 2
    dx = dx - (sx - 1) / 2
    out = np.empty((ny, nx, sy, sx), dtype=dtype)
    ring = np.exp(-(((np.hypot(dy, dx) - 2.2 * r) / (0.3 * r)) ** 2))
    for iy in range(ny):
        rows = []
        for ix in range(nx):
            dist = np.hypot(dy - fy[iy, ix], dx - fx[iy, ix])
            disk = np.clip(r + 0.5 - dist, 0, 1)  # antialiased edge
            p = particles[iy, ix]
            rows.append(counts * ((1 - 0.3 * p) * disk + 0.15 * p * ring + 0.01))
        out[iy] = rng.poisson(np.stack(rows)).astype(dtype, copy=False)
    return out


def example_dataset(ctx: Context, **kwargs: Any) -> DataSet:
    """Load :func:`make_example_data` (keywords passed on) as an in-memory DataSet.

    Examples
    --------
    >>> ds = example_dataset(ctx, nav_shape=(8, 8), sig_shape=(32, 32))
    >>> tuple(ds.shape)
    (8, 8, 32, 32)
    """
    return ctx.load("memory", data=make_example_data(**kwargs), sig_dims=2)
