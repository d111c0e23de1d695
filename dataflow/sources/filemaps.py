"""Whole files mapped read-only, kept open between tasks and runs (one cache per process)."""

from __future__ import annotations

import mmap
import os
import threading
from collections import OrderedDict

import numpy as np

from dataflow import config
from dataflow._dask import worker_memory_limit

__all__ = ["FILE_MAPS", "FileMaps", "map_bytes"]


def map_bytes(path: str, start: int, length: int) -> np.ndarray:
    """Bytes ``start:start + length`` of ``path``, mapped read-only, as a uint8 array.

    The map stays open as long as the array (or a view of it) lives.
    """
    aligned = start - start % mmap.ALLOCATIONGRANULARITY
    with open(path, "rb") as f:
        mapped = mmap.mmap(
            f.fileno(), length + start - aligned, access=mmap.ACCESS_READ, offset=aligned
        )
    return np.frombuffer(mapped, dtype=np.uint8, count=length, offset=start - aligned)


def _default_capacity() -> int:
    """1/16 of the machine's memory; in a dask worker with a memory limit, 1/8 of that."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows)
        return 0
    limit = worker_memory_limit()
    if limit is not None:
        return min(memory // 16, limit // 8)
    return memory // 16


class FileMaps:
    """Whole files mapped read-only, kept open between tasks and runs (per process).

    Mapping a file costs little; what costs is the kernel making a page-table entry for
    every 4 KiB page on first access, again for every new map: on page-cached data
    that halves the read speed (about 9 against 17 GiB/s on two threads measured on a
    2-core machine). Files of up to ``capacity`` bytes in all therefore stay mapped, the
    least recently used dropped first; larger ones are mapped per task. A file is
    mapped again when its size, modification time or inode changes.

    Mapped pages of the page cache count in the process's resident set size (they are
    the kernel's to reclaim), which is why the capacity is a small share of memory:
    the setting ``dataflow.file-map-bytes`` (see :mod:`dataflow.config`; 0 switches
    the cache off), by default 1/16 of the machine's memory, and in a dask.distributed
    worker with a memory limit at most 1/8 of that limit (the worker counts mapped
    pages against it, and pauses or restarts when they push it over). It is read at
    each call, unless ``capacity`` is given.
    """

    def __init__(self, capacity: int | None = None) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._maps: OrderedDict[str, tuple[tuple[int, int, int], np.ndarray]] = OrderedDict()

    @property
    def capacity(self) -> int:
        """Bytes of files kept mapped, at most."""
        if self._capacity is not None:
            return self._capacity
        configured = config.get("file-map-bytes")
        return _default_capacity() if configured is None else int(configured)

    def get(self, path: str, stat: os.stat_result) -> np.ndarray | None:
        """All bytes of ``path`` as a read-only uint8 array, or None if it is too large."""
        size = stat.st_size
        capacity = self.capacity
        if size == 0 or size > capacity:
            return None
        ident = (stat.st_ino, size, stat.st_mtime_ns)
        with self._lock:
            entry = self._maps.get(path)
            if entry is not None and entry[0] == ident:
                self._maps.move_to_end(path)
                return entry[1]
        whole = map_bytes(path, 0, size)
        with self._lock:
            self._maps[path] = (ident, whole)
            self._maps.move_to_end(path)
            # dropping an entry unmaps it once no array uses it any more
            while sum(len(m) for _, m in self._maps.values()) > capacity:
                self._maps.popitem(last=False)
        return whole

    def clear(self) -> None:
        """Forget every map (each closes when no array uses it any more)."""
        with self._lock:
            self._maps.clear()


#: the maps of this process
FILE_MAPS = FileMaps()
