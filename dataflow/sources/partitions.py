"""Partitions: contiguous runs of whole frames, on storage-chunk boundaries, sized by bytes."""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dataflow.errors import DataflowWarning, DataSetException
from dataflow.sources.checks import check_count

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "DEFAULT_PARTITION_BYTES",
    "Partition",
    "chunk_boundaries",
    "plan_partitions",
    "whole_chunk_count",
]

#: Target partition size in bytes of native data.
DEFAULT_PARTITION_BYTES = 128 * 2**20


@dataclass(frozen=True)
class Partition:
    """Frames ``start:stop`` of the flattened navigation axis.

    Examples
    --------
    >>> p = Partition(index=1, start=64, stop=128)
    >>> p.n_frames, p.slice
    (64, slice(64, 128, None))
    """

    index: int
    start: int
    stop: int

    @property
    def n_frames(self) -> int:
        """Number of frames in the partition."""
        return self.stop - self.start

    @property
    def slice(self) -> slice:
        """The partition as a slice of the flattened navigation axis."""
        return slice(self.start, self.stop)


def _pick_boundaries(candidates: np.ndarray, n_parts: int) -> list[int]:
    """``n_parts + 1`` boundaries from ``candidates`` (sorted, first 0, last N), near-even."""
    total = int(candidates[-1])
    last = len(candidates) - 1
    chosen = [0]
    for k in range(1, n_parts):
        ideal = k * total / n_parts
        i = int(np.searchsorted(candidates, ideal))
        if i > 0 and (i > last or ideal - candidates[i - 1] <= candidates[i] - ideal):
            i -= 1
        i = max(i, chosen[-1] + 1)  # strictly increasing
        i = min(i, last - (n_parts - k))  # leave room for the rest
        chosen.append(i)
    chosen.append(last)
    return [int(candidates[i]) for i in chosen]


def plan_partitions(
    n_frames: int,
    frame_bytes: int,
    *,
    row_length: int = 1,
    num_partitions: int | None = None,
    min_partitions: int = 1,
    target_bytes: int = DEFAULT_PARTITION_BYTES,
    chunk_boundaries: Sequence[int] | None = None,
) -> tuple[Partition, ...]:
    """Split ``n_frames`` frames into contiguous partitions.

    Partitions are sized near ``target_bytes`` (at least ``min_partitions`` of them,
    e.g. one per worker thread) unless ``num_partitions`` is given. Boundaries fall on
    storage chunk boundaries and whole scan rows where enough such boundaries exist.

    Examples
    --------
    >>> [p.n_frames for p in plan_partitions(256, 4096, row_length=16, num_partitions=7)]
    [32, 48, 32, 32, 32, 48, 32]
    """
    if n_frames < 1:
        raise DataSetException("the dataset has no frames: its navigation shape has size 0")
    target_bytes = check_count("partition_bytes", target_bytes)
    if num_partitions is not None:
        n = check_count("num_partitions", num_partitions)
        if n > n_frames:
            raise ValueError(
                f"num_partitions is {n}; the dataset has only {n_frames} frames, so at most "
                f"{n_frames} partitions are possible"
            )
    else:
        n = max(min_partitions, math.ceil(n_frames * frame_bytes / target_bytes))
        n = min(n, n_frames)
    every = np.arange(n_frames + 1)
    rows = every[:: max(1, row_length)] if n_frames % max(1, row_length) == 0 else every
    options = [rows, every]
    if chunk_boundaries is not None:
        chunks = np.asarray(sorted(set(chunk_boundaries) | {0, n_frames}))
        options = [np.intersect1d(chunks, rows), chunks, *options]
    candidates = next(c for c in options if len(c) - 1 >= n)
    # a regular grid (equal partitions, a smaller last one) where it gives n partitions:
    # results then have regular chunks, which formats such as zarr require
    step = -(-(len(candidates) - 1) // n)
    grid = list(candidates[::step])
    if grid[-1] != candidates[-1]:
        grid.append(candidates[-1])
    regular = len(grid) - 1 == n and all(
        b - a == grid[1] - grid[0] for a, b in itertools.pairwise(grid[:-1])
    )
    bounds = [int(b) for b in grid] if regular else _pick_boundaries(candidates, n)
    return tuple(
        Partition(index=i, start=b0, stop=b1)
        for i, (b0, b1) in enumerate(itertools.pairwise(bounds))
    )


def chunk_boundaries(nav_shape: Sequence[int], nav_chunks: Sequence[int]) -> np.ndarray:
    """Flat frame indices where a partition boundary cuts no storage chunk.

    Between two neighbouring indices lie whole chunks only. Leading navigation axes
    with chunks of one index are skipped, so a store chunked one row at a time gets
    boundaries inside rows.

    Parameters
    ----------
    nav_shape
        Navigation shape.
    nav_chunks
        Storage chunk (or shard) shape of the navigation axes.

    Returns
    -------
    numpy.ndarray
        Sorted indices, from 0 to the number of frames.

    Examples
    --------
    >>> chunk_boundaries((8, 4), (3, 4)).tolist()
    [0, 12, 24, 32]
    >>> chunk_boundaries((2, 6), (1, 4)).tolist()
    [0, 4, 6, 10, 12]
    """
    nav_shape = tuple(int(s) for s in nav_shape)
    k = 0
    while k < len(nav_shape) - 1 and int(nav_chunks[k]) == 1:
        k += 1
    outer = math.prod(nav_shape[:k])
    inner = math.prod(nav_shape[k + 1 :])
    starts = np.arange(0, nav_shape[k], max(1, int(nav_chunks[k])))
    bounds = (np.arange(outer)[:, None] * nav_shape[k] + starts[None, :]) * inner
    return np.append(bounds.ravel(), math.prod(nav_shape))


def whole_chunk_count(
    n_frames: int,
    frame_bytes: int,
    bounds: Sequence[int],
    *,
    min_partitions: int,
    target_bytes: int,
    where: str,
    chunk_shape: Sequence[int],
) -> int:
    """How many partitions to make so that no storage chunk is read by two of them.

    As many as ``target_bytes`` and ``min_partitions`` ask for, but no more than there
    are runs of whole chunks between ``bounds``. Warns when that leaves partitions more
    than four times ``target_bytes``, naming ``where`` and the chunk shape.
    """
    wanted = max(min_partitions, math.ceil(n_frames * frame_bytes / target_bytes))
    n = max(1, min(wanted, n_frames, len(bounds) - 1))
    largest = int(max(np.diff(bounds))) * frame_bytes if n < wanted else 0
    if largest > 4 * target_bytes:
        warnings.warn(
            f"{where} is stored in chunks of {tuple(chunk_shape)}: whole chunks hold up to "
            f"{_size(largest)} of frames, so its {n} partitions are larger than "
            f"partition_bytes ({_size(target_bytes)}). Pass num_partitions= to split chunks "
            "between partitions (each is then read by every partition that holds its "
            "frames), or rechunk the store",
            DataflowWarning,
            stacklevel=4,
        )
    return n


def _size(nbytes: float) -> str:
    return f"{nbytes / 2**20:.1f} MiB" if nbytes >= 2**20 else f"{int(nbytes)} bytes"
