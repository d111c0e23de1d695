"""Frame layout: how ``nav_shape``, ``sig_shape`` and ``sync_offset`` lay a dataset over
the frames of a source."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dataflow.errors import DataSetException
from dataflow.sources.checks import check_integer, check_shape

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["FrameLayout", "make_layout", "pad_frames"]


@dataclass(frozen=True)
class FrameLayout:
    """How the frames of a source (``n_raw`` of them, in order) map onto the dataset.

    Frame ``i`` of the dataset is frame ``i + sync_offset`` of the source; frames that
    fall before the source's first or after its last are zeros. ``nav_shape`` and
    ``sig_shape`` reshape the result.

    Examples
    --------
    >>> layout = FrameLayout(n_raw=10, nav_shape=(3, 4), sig_shape=(8,), sync_offset=-2)
    >>> layout.n_frames, layout.raw_window(0, 4)  # 2 zero frames, then source frames 0, 1
    (12, (0, 2, 2, 0))
    >>> layout.raw_window(8, 12)  # source frames 6..9, no padding
    (6, 10, 0, 0)
    """

    n_raw: int
    nav_shape: tuple[int, ...]
    sig_shape: tuple[int, ...]
    sync_offset: int

    @property
    def n_frames(self) -> int:
        """Frames in the dataset."""
        return math.prod(self.nav_shape)

    @property
    def is_identity(self) -> bool:
        """Whether dataset frame ``i`` is source frame ``i`` for every frame."""
        return self.sync_offset == 0 and self.n_frames == self.n_raw

    def raw_window(self, start: int, stop: int) -> tuple[int, int, int, int]:
        """For dataset frames ``start:stop``: source frames ``a:b``, zero frames before, after."""
        a, b = start + self.sync_offset, stop + self.sync_offset
        ra, rb = max(a, 0), min(b, self.n_raw)
        if ra >= rb:
            return 0, 0, stop - start, 0
        return ra, rb, ra - a, b - rb

    def dataset_boundaries(self, raw_boundaries: Sequence[int]) -> list[int]:
        """Source chunk boundaries as dataset frame indices, inside ``0..n_frames``."""
        shifted = (int(b) - self.sync_offset for b in raw_boundaries)
        return sorted({b for b in shifted if 0 <= b <= self.n_frames} | {0, self.n_frames})


def make_layout(
    raw_shape: Sequence[int],
    sig_dims: int,
    *,
    nav_shape: Sequence[int] | None = None,
    sig_shape: Sequence[int] | None = None,
    sync_offset: int = 0,
    source: str = "the data",
) -> FrameLayout:
    """Check ``nav_shape``, ``sig_shape`` and ``sync_offset`` against a source's shape.

    Parameters
    ----------
    raw_shape
        The source's shape; its last ``sig_dims`` dimensions are one frame.
    nav_shape, sig_shape
        The dataset's shapes; by default the source's. ``sig_shape`` must hold as many
        elements as a source frame; ``nav_shape`` may hold fewer or more frames than
        the source (missing frames are zeros).
    sync_offset
        Dataset frame ``i`` is source frame ``i + sync_offset``: positive skips frames
        at the start, negative inserts blank ones.
    """
    raw_shape = tuple(int(s) for s in raw_shape)
    raw_sig = raw_shape[len(raw_shape) - sig_dims :]
    n_raw = math.prod(raw_shape[: len(raw_shape) - sig_dims])
    sig = raw_sig if sig_shape is None else check_shape("sig_shape", sig_shape)
    if math.prod(sig) != math.prod(raw_sig):
        raise DataSetException(
            f"sig_shape is {sig}, {math.prod(sig)} elements per frame; the frames of {source} "
            f"have shape {raw_sig}, {math.prod(raw_sig)} elements"
        )
    nav = (
        raw_shape[: len(raw_shape) - sig_dims]
        if nav_shape is None
        else check_shape("nav_shape", nav_shape)
    )
    sync_offset = check_integer("sync_offset", sync_offset)
    if n_raw and not -n_raw < sync_offset < n_raw:
        raise DataSetException(
            f"sync_offset is {sync_offset}; {source} has {n_raw} frames, so it must lie in "
            f"({-n_raw}, {n_raw})"
        )
    return FrameLayout(n_raw, tuple(nav), tuple(sig), int(sync_offset))


def pad_frames(block: np.ndarray, pre: int, post: int, sig_shape: Sequence[int]) -> np.ndarray:
    """``block`` (frames, reshaped to ``sig_shape``) with zero frames before and after."""
    block = block.reshape((-1, *sig_shape))
    if not pre and not post:
        return block
    out = np.zeros((pre + len(block) + post, *sig_shape), dtype=block.dtype)
    out[pre : pre + len(block)] = block
    return out
