"""Buffers readers decode into, kept between tasks and runs (one pool per process).

A fresh NumPy array of a few MiB or more is new memory from the kernel: writing it
the first time costs a page fault per 4 KiB page, which halves the speed of a decode
into it. Readers that hand a task its frames piece by piece
(:meth:`~dataflow.sources.FrameReader.pieces`) therefore take a buffer from
:data:`SCRATCH` for the call and give it back when the call is done; the next call of
the same shape finds it with its pages in place.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["SCRATCH", "ScratchPool"]


class ScratchPool:
    """Free buffers by size, at most ``capacity`` bytes of them kept.

    Examples
    --------
    >>> pool = ScratchPool(2**20)
    >>> with pool.borrow((4, 4), np.dtype("uint16")) as a:
    ...     a.shape
    (4, 4)
    >>> with pool.borrow((32,), np.dtype("uint8")) as b:  # the same 32 bytes again
    ...     b.ctypes.data == a.ctypes.data
    True
    """

    def __init__(self, capacity: int = 512 * 2**20) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._free: dict[int, list[np.ndarray]] = {}

    @contextmanager
    def borrow(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> Iterator[np.ndarray]:
        """An uninitialised array of ``shape`` and ``dtype``, for the ``with`` block only."""
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        with self._lock:
            free = self._free.get(nbytes)
            raw = free.pop() if free else None
        if raw is None:
            raw = np.empty(nbytes, dtype=np.uint8)
        try:
            yield raw.view(dtype).reshape(shape)
        finally:
            with self._lock:
                kept = sum(a.nbytes for bufs in self._free.values() for a in bufs)
                if kept + nbytes <= self.capacity:
                    self._free.setdefault(nbytes, []).append(raw)

    def clear(self) -> None:
        """Drop every free buffer."""
        with self._lock:
            self._free.clear()


#: the pool of this process
SCRATCH = ScratchPool()
