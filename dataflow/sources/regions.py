"""Runs and regions: which frames, chunks and rectangles of the navigation axes a read needs.

One copy of each helper, for every source and for the partition task:

- :func:`mask_runs`: runs of True in a frame mask (ROI reads);
- :func:`run_bounds` / :func:`index_runs`: runs of consecutive values in increasing
  frame indices (the partition task's ROI tiles);
- :func:`nav_regions`: a range of flat frame indices as rectangles of the navigation
  axes (HDF5 and zarr read rectangles);
- :func:`chunk_boxes`: the chunk-aligned sub-rectangles of a region that hold a
  selected frame (chunked stores read only the chunks a ROI needs);
- :func:`chunk_parts`: the storage chunks a region touches, and what it takes of each;
- :func:`frame_run_axis` / :func:`frame_run_chunks`: chunks that each hold a run of
  consecutive whole frames, and the chunks a range of frames takes (chunked files
  hand a partition its frames chunk by chunk).
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

__all__ = [
    "chunk_boxes",
    "chunk_parts",
    "frame_run_axis",
    "frame_run_chunks",
    "index_runs",
    "mask_runs",
    "nav_regions",
    "run_bounds",
]


def mask_runs(mask: np.ndarray | None, n: int) -> list[tuple[int, int]]:
    """Runs ``(start, stop)`` of True in the 1-D boolean ``mask`` (all of ``0:n`` if None).

    Examples
    --------
    >>> mask_runs(np.array([1, 1, 0, 0, 1, 0, 1], bool), 7)
    [(0, 2), (4, 5), (6, 7)]
    >>> mask_runs(None, 3)
    [(0, 3)]
    """
    if mask is None:
        return [(0, n)] if n else []
    m = np.asarray(mask, dtype=bool).reshape(-1)
    if m.size != n:
        raise ValueError(f"mask has {m.size} entries; expected one per frame, {n}")
    edges = np.flatnonzero(np.diff(np.concatenate(([0], m.view(np.int8), [0]))))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def run_bounds(rows: np.ndarray, lo: int, hi: int) -> list[int]:
    """Where runs of consecutive values of ``rows[lo:hi]`` (increasing) start, and ``hi``.

    Examples
    --------
    >>> run_bounds(np.array([3, 4, 5, 9, 10, 12]), 0, 6)
    [0, 3, 5, 6]
    """
    breaks = np.flatnonzero(np.diff(rows[lo:hi]) != 1) + (lo + 1)
    return [lo, *breaks.tolist(), hi]


def index_runs(rows: np.ndarray) -> list[tuple[int, int]]:
    """``rows`` (increasing, not empty) as ``(first, count)`` runs of consecutive values.

    Examples
    --------
    >>> index_runs(np.array([3, 4, 5, 9, 10, 12]))
    [(3, 3), (9, 2), (12, 1)]
    """
    return [(int(rows[i]), j - i) for i, j in itertools.pairwise(run_bounds(rows, 0, len(rows)))]


def nav_regions(start: int, stop: int, nav_shape: Sequence[int]) -> list[tuple[slice, ...]]:
    """Frames ``start:stop`` of the flattened navigation axis as rectangular regions.

    Parameters
    ----------
    start, stop
        A range of flat frame indices.
    nav_shape
        Navigation shape.

    Returns
    -------
    list of tuple of slice
        Regions of the navigation axes, in order; their frames, flattened and
        concatenated, are frames ``start:stop``. For a 2D scan: a partial first
        row, whole rows, a partial last row (each one only if needed).

    Examples
    --------
    >>> nav_regions(3, 14, (4, 5))
    [(slice(0, 1, None), slice(3, 5, None)), (slice(1, 2, None), slice(0, 5, None)), (slice(2, 3, None), slice(0, 4, None))]
    """
    if start >= stop:
        return []
    if len(nav_shape) == 1:
        return [(slice(start, stop),)]
    rest = tuple(nav_shape[1:])
    inner = math.prod(rest)
    i0, r0 = divmod(start, inner)
    i1, r1 = divmod(stop, inner)
    if i0 == i1:
        return [(slice(i0, i0 + 1), *sub) for sub in nav_regions(r0, r1, rest)]
    regions: list[tuple[slice, ...]] = []
    if r0:
        regions += [(slice(i0, i0 + 1), *sub) for sub in nav_regions(r0, inner, rest)]
        i0 += 1
    if i1 > i0:
        regions.append((slice(i0, i1), *(slice(0, n) for n in rest)))
    if r1:
        regions += [(slice(i1, i1 + 1), *sub) for sub in nav_regions(0, r1, rest)]
    return regions


def _boxes(needed: np.ndarray) -> list[tuple[tuple[int, int], ...]]:
    """Disjoint boxes, ``(start, stop)`` per axis, that cover exactly the True cells.

    Runs along the last axis, merged along each earlier axis where they repeat, so a
    rectangular selection is one box.
    """
    if needed.ndim == 1:
        return [(run,) for run in mask_runs(needed, needed.size)]
    boxes: list[tuple[tuple[int, int], ...]] = []
    opened: dict[tuple[tuple[int, int], ...], int] = {}
    for i in range(needed.shape[0] + 1):
        subs = set(_boxes(needed[i])) if i < needed.shape[0] else set()
        closed = [s for s in opened if s not in subs]
        boxes.extend(((opened.pop(sub), i), *sub) for sub in closed)
        for sub in subs:
            opened.setdefault(sub, i)
    return boxes


def chunk_boxes(
    region: tuple[slice, ...], mask: np.ndarray, chunks: Sequence[int]
) -> list[tuple[slice, ...]]:
    """Sub-regions of ``region`` (local slices) covering the chunks that hold a True frame.

    ``mask`` has the region's shape; ``chunks`` is the storage chunk shape of the same
    axes. Each sub-region is a box of whole chunks (clipped to the region).

    Examples
    --------
    >>> mask = np.zeros((4, 4), bool)
    >>> mask[0, 0] = mask[3, 3] = True
    >>> chunk_boxes((slice(0, 4), slice(0, 4)), mask, (2, 2))
    [(slice(0, 2, None), slice(0, 2, None)), (slice(2, 4, None), slice(2, 4, None))]
    """
    edges = []
    needed = mask
    for axis, (s, c) in enumerate(zip(region, chunks, strict=True)):
        inner = np.arange((s.start // c + 1) * c, s.stop, c) - s.start
        e = np.concatenate([[0], inner, [s.stop - s.start]]).astype(np.intp)
        needed = np.logical_or.reduceat(needed, e[:-1], axis=axis)
        edges.append(e)
    return [
        tuple(slice(int(e[a]), int(e[b])) for e, (a, b) in zip(edges, box, strict=True))
        for box in _boxes(needed)
    ]


def chunk_parts(
    full: tuple[slice, ...], chunks: tuple[int, ...]
) -> Iterator[tuple[tuple[int, ...], tuple[slice, ...]]]:
    """``(chunk index, the part of full that chunk holds)`` for every chunk ``full`` touches.

    Examples
    --------
    >>> list(chunk_parts((slice(1, 5),), (4,)))
    [((0,), (slice(1, 4, None),)), ((1,), (slice(4, 5, None),))]
    """
    grids = [range(s.start // c, (s.stop - 1) // c + 1) for s, c in zip(full, chunks, strict=True)]
    for index in itertools.product(*grids):
        yield (
            index,
            tuple(
                slice(max(s.start, i * c), min(s.stop, (i + 1) * c))
                for s, i, c in zip(full, index, chunks, strict=True)
            ),
        )


def frame_run_axis(shape: Sequence[int], chunks: Sequence[int], nav_dims: int) -> int | None:
    """The navigation axis along which each chunk is a run of whole frames, or None.

    A chunk (stored in C order, edge chunks padded to the full chunk shape) holds
    consecutive frames of the flattened navigation axis where it spans whole frames,
    one index of every navigation axis before this axis, and all of every axis after.

    Examples
    --------
    >>> frame_run_axis((6, 7, 8, 9), (2, 7, 8, 9), 2), frame_run_axis((6, 7, 8, 9), (1, 3, 8, 9), 2)
    (0, 1)
    >>> frame_run_axis((6, 7, 8, 9), (2, 3, 8, 9), 2) is None  # rows of part of a scan row
    True
    """
    nav, nav_chunks = tuple(shape[:nav_dims]), tuple(chunks[:nav_dims])
    if tuple(chunks[nav_dims:]) != tuple(shape[nav_dims:]) or not nav:
        return None
    axis = next((i for i, c in enumerate(nav_chunks) if c > 1), nav_dims - 1)
    if nav_chunks[axis + 1 :] != nav[axis + 1 :]:
        return None
    return axis


def frame_run_chunks(
    a: int, b: int, shape: Sequence[int], chunks: Sequence[int], nav_dims: int, axis: int
) -> Iterator[tuple[tuple[int, ...], int, int, int]]:
    """The chunks holding frames ``a:b``: ``(chunk index, r0, r1, first)`` each.

    Frames ``a + r0 : a + r1`` are in the chunk, from its frame ``first`` on;
    ``axis`` is :func:`frame_run_axis`.

    Examples
    --------
    >>> list(frame_run_chunks(5, 16, (3, 7, 2), (1, 7, 2), 2, 1))
    [((0, 0, 0), 0, 2, 5), ((1, 0, 0), 2, 9, 0), ((2, 0, 0), 9, 11, 0)]
    """
    nav = tuple(shape[:nav_dims])
    line = math.prod(nav[axis:])  # frames along the axis and after it
    step = chunks[axis] * (line // nav[axis])  # frames per chunk (but the last of a line)
    tail = (0,) * (len(shape) - axis - 1)
    pos = a
    while pos < b:
        lines, within = divmod(pos, line)
        k = within // step
        start = lines * line + k * step
        stop = min(start + step, (lines + 1) * line, b)
        head = tuple(int(i) for i in np.unravel_index(lines, nav[:axis]))
        yield (*head, k, *tail), pos - a, stop - a, pos - start
        pos = stop
