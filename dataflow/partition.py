"""What one partition task does inside a worker: run every UDF of a run over its frames.

The data is read once per partition and cut into tiles, stacks of whole frames. A
tile is a view of the partition's block wherever possible; where the input dtype
differs from the native dtype, or a ROI leaves gaps, it is copied into a reusable
cache-sized scratch buffer. Frame-wise UDFs get views of the tile's frames, and all
buffer views for a tile are prepared before its frames are processed.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from dataflow.buffers import UDFData, allocate
from dataflow.sources.regions import index_runs, run_bounds
from dataflow.udf.base import UDFMeta, UDFMethod, _Cursor

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator

    import numpy.typing as npt

    from dataflow.plan import PartitionTask, RunSpec, UDFPlan
    from dataflow.udf.base import UDF

__all__ = ["PartitionResult", "PieceReader", "read_partition", "run_partition"]


@dataclass
class PartitionResult:
    """The buffers of every UDF after one partition, with the frames they cover."""

    index: int
    #: index of the first frame among all ROI-selected frames, and the frame count
    offset: int
    n_frames: int
    #: per UDF: buffer name -> array (nav buffers hold this partition's frames)
    buffers: tuple[dict[str, npt.NDArray[Any]], ...]


class _OneBlasThread:
    """One BLAS thread while partition tasks run side by side.

    BLAS libraries start a thread per core for every call; with a task per core
    already running, matrix products then fight over the cores. The limit is
    process-wide, and entering and restoring threadpoolctl's limit around every task
    cost more than small tasks themselves, so:

    - in a worker process (not the one that planned the run) the first task that asks
      for it (``blas_threads == 1``) sets it, for the life of the process;
    - in the process that planned the run (the user's, with the threads scheduler) it
      is held for as long as any run or task holds it (:meth:`hold`, reference
      counted), then the user's own setting is restored: ``run_udf`` holds it for the
      whole run, so its tasks only count.

    Runs that never ask for it (one task at a time, ``blas_threads`` None) leave BLAS
    alone.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._forever = False
        self._count = 0
        self._limiter: Any = None
        self._controller: Any = None
        self._modules_seen = 0

    def _limit(self) -> Any:
        from threadpoolctl import ThreadpoolController

        # Finding the loaded BLAS libraries reads the process's memory map (milliseconds,
        # more than a small run): done again only when modules were imported since.
        if self._controller is None or len(sys.modules) != self._modules_seen:
            self._controller = ThreadpoolController()
            self._modules_seen = len(sys.modules)
        return self._controller.limit(limits=1, user_api="blas")

    def ensure(self) -> None:
        """Limit BLAS to one thread in this (worker) process for good, unless done already."""
        if self._forever:  # the fast path: no lock once set
            return
        with self._lock:
            if not self._forever:
                if self._limiter is None:
                    self._limiter = self._limit()
                self._forever = True

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """One BLAS thread while the block runs (and any other holder's does)."""
        with self._lock:
            if self._count == 0 and self._limiter is None:
                self._limiter = self._limit()
            self._count += 1
        try:
            yield
        finally:
            with self._lock:
                self._count -= 1
                if self._count == 0 and not self._forever and self._limiter is not None:
                    self._limiter.restore_original_limits()
                    self._limiter = None


def blas_limit(spec: RunSpec) -> contextlib.AbstractContextManager[None]:
    """What a run holds in the calling process: one BLAS thread if its tasks ask for it."""
    if spec.blas_threads == 1:
        return _BLAS_ONE_THREAD.hold()
    return contextlib.nullcontext()


_BLAS_ONE_THREAD = _OneBlasThread()


class _Runner:
    """One UDF inside one partition task."""

    __slots__ = ("arrays", "dtype", "method", "nav", "udf", "uplan")

    def __init__(
        self, uplan: UDFPlan, udf: UDF, arrays: dict[str, np.ndarray], frame_indices: np.ndarray
    ) -> None:
        self.uplan = uplan
        self.udf = udf
        self.arrays = arrays
        self.method = uplan.method
        self.dtype = uplan.input_dtype
        results = udf.results.__dict__
        # (namespace, name, partition array, has extra_shape) of everything whose view
        # moves with the unit: nav result buffers, and nav aux parameters
        self.nav = [
            (results, name, arrays[name], bool(uplan.buffers[name].extra_shape))
            for name in uplan.nav_names
        ]
        params = udf.params.__dict__
        for name, aux in params["_df_aux"].items():
            if aux.kind == "nav":
                part = aux.for_frames(frame_indices)
                params[name] = part
                self.nav.append((params, name, part, bool(aux.extra_shape)))

    def set_whole(self) -> None:
        for ns, name, arr, _ in self.nav:
            ns[name] = arr


def _tile_depth(spec: RunSpec, runners: list[_Runner], copies: bool) -> int:
    if spec.tile_depth is not None:
        return spec.tile_depth
    frame_items = math.prod(spec.sig_shape)
    itemsize = max([r.dtype.itemsize for r in runners] + [spec.dataset_dtype.itemsize])
    # tiles that are copies stay in cache; views can be larger (no copy is made). Both
    # sizes are the settings copy-tile-bytes / view-tile-bytes, read at plan time
    budget: float = spec.copy_tile_bytes if copies else spec.view_tile_bytes
    depth: float = budget
    for r in runners:
        budget = min(budget, r.uplan.tile_bytes)
        depth = min(depth, r.uplan.tile_depth)
    by_size = max(1, int(budget // max(1, frame_items * itemsize)))
    return int(max(1, min(by_size, depth)))


def _make_udf(
    spec: RunSpec, uplan: UDFPlan, task: PartitionTask, frame_indices: np.ndarray, cursor: _Cursor
) -> tuple[UDF, dict[str, np.ndarray]]:
    udf = uplan.udf.copy()
    udf.meta = UDFMeta(
        dataset_shape=spec.dataset_shape,
        dataset_dtype=spec.dataset_dtype,
        input_dtype=uplan.input_dtype,
        roi=spec.roi,
        partition_offset=task.offset,
        frame_indices=frame_indices,
        cursor=cursor,
    )
    arrays = allocate(uplan.buffers, task.n_frames, spec.sig_shape)
    udf.results = UDFData(arrays, uplan.buffers)
    udf.task_data = UDFData(udf.get_task_data() or {})
    return udf, arrays


def run_partition(spec: RunSpec, block: npt.ArrayLike, index: int) -> PartitionResult:
    """Run every UDF of ``spec`` over the frames of one partition.

    Parameters
    ----------
    spec
        The run: UDF plans, dataset shape and dtype, ROI, partition tasks.
    block
        All frames of the partition, shape ``(n,) + sig``, in native dtype.
    index
        Which of ``spec.tasks`` this is.
    """
    task = spec.tasks[index]
    p = task.partition
    block = np.asarray(block)
    if block.shape[0] != p.n_frames:
        raise ValueError(
            f"partition {p.index} expected {p.n_frames} frames, got a block of shape {block.shape}"
        )
    return _enter(spec, task, _Frames(aligned(block), None))


#: the alignment NumPy gives its own arrays; blocks at other addresses are copied
BLOCK_ALIGNMENT = 16


def aligned(block: np.ndarray) -> np.ndarray:
    """``block`` itself, or a copy if its data does not start on a ``BLOCK_ALIGNMENT``
    boundary.

    A block a dask worker received from another is unpacked wherever it sat in the
    message; NumPy and BLAS read misaligned data several times slower (a float32 block
    at an odd address: 4x) than the copy costs.
    """
    if block.ctypes.data % BLOCK_ALIGNMENT == 0:
        return block
    return block.copy()


def read_partition(spec: RunSpec, reader: PieceReader, index: int) -> PartitionResult:
    """:func:`run_partition`, reading the partition's frames itself, piece by piece.

    ``reader.pieces(start, stop, mask)`` yields the partition's frames as pieces
    (views of memory maps, or chunks decoded into a buffer the reader reuses); tiles
    are cut from each piece as it comes, so the partition is never assembled in
    memory unless a UDF processes whole partitions.
    """
    task = spec.tasks[index]
    p = task.partition
    return _enter(spec, task, _Frames(None, reader.pieces(p.start, p.stop, task.roi)))


class PieceReader(Protocol):
    """What :func:`read_partition` reads through (see ``FrameReader.pieces``)."""

    def pieces(
        self, start: int, stop: int, mask: np.ndarray | None
    ) -> Generator[tuple[int, np.ndarray]]: ...


class _Frames:
    """A partition's frames: one block in memory, or pieces read as they are used.

    A piece ``(row, frames)`` holds partition rows ``row:row + len(frames)`` and is
    valid until the next one is asked for. Rows no piece covers are unselected frames
    or positions outside the source: never processed.
    """

    def __init__(
        self, block: np.ndarray | None, pieces: Generator[tuple[int, np.ndarray]] | None
    ) -> None:
        self.block = block
        self._pieces = pieces

    def pieces(self, task: PartitionTask, spec: RunSpec) -> Iterator[tuple[int, np.ndarray]]:
        if self.block is not None:
            yield 0, self.block
            return
        assert self._pieces is not None
        n = task.partition.n_frames
        end = 0
        for row, frames in self._pieces:
            if (
                row < end
                or row + len(frames) > n
                or frames.shape[1:] != spec.sig_shape
                or frames.dtype != spec.dataset_dtype
            ):
                raise ValueError(
                    f"partition {task.partition.index} ({n} frames): a piece at row {row} of "
                    f"shape {frames.shape} and dtype {frames.dtype}, after row {end}; expected "
                    f"frames of shape {spec.sig_shape} and dtype {spec.dataset_dtype} in order"
                )
            end = row + len(frames)
            yield row, frames

    def whole(self, task: PartitionTask, spec: RunSpec) -> np.ndarray:
        """The partition as one block (pieces copied into it; zeros between them)."""
        if self.block is None:
            n = task.partition.n_frames
            block: np.ndarray | None = None
            for row, frames in self.pieces(task, spec):
                if block is None:
                    if row == 0 and len(frames) == n:
                        # one piece of it all: kept, so not advanced past (it stays
                        # valid until close)
                        block = frames
                        break
                    block = np.zeros((n, *spec.sig_shape), dtype=frames.dtype)
                block[row : row + len(frames)] = frames
            if block is None:
                block = np.zeros((n, *spec.sig_shape), dtype=spec.dataset_dtype)
            self.block = block
        return self.block

    def close(self) -> None:
        """Let the reader take back its buffers: the partition's frames are done with."""
        if self._pieces is not None:
            self._pieces.close()


def _enter(spec: RunSpec, task: PartitionTask, frames: _Frames) -> PartitionResult:
    sel = None if task.roi is None else np.flatnonzero(task.roi)
    p = task.partition
    frame_indices = np.arange(p.start, p.stop) if sel is None else p.start + sel
    cursor = _Cursor(0, task.n_frames)
    with contextlib.closing(frames):
        if spec.blas_threads == 1:
            if os.getpid() != spec.client_pid:
                _BLAS_ONE_THREAD.ensure()
            else:
                with _BLAS_ONE_THREAD.hold():
                    return _run(spec, frames, task, sel, frame_indices, cursor)
        return _run(spec, frames, task, sel, frame_indices, cursor)


def _run(
    spec: RunSpec,
    frames: _Frames,
    task: PartitionTask,
    sel: np.ndarray | None,
    frame_indices: np.ndarray,
    cursor: _Cursor,
) -> PartitionResult:
    stage = "get_task_data"
    uplan = spec.udfs[0]
    try:
        runners = []
        for uplan in spec.udfs:
            stage = "get_task_data"
            udf, arrays = _make_udf(spec, uplan, task, frame_indices, cursor)
            runner = _Runner(uplan, udf, arrays, frame_indices)
            runners.append(runner)
            if uplan.has_preprocess:
                stage = "preprocess"
                udf.preprocess()
        lo, hi = task.processed
        for runner in runners:
            if runner.method is UDFMethod.PARTITION and hi > lo:
                uplan, stage = runner.uplan, "process_partition"
                data = _whole(spec, frames.whole(task, spec), sel, runner.dtype)
                if task.data is not None:  # positions outside the source: not processed
                    data = data[lo:hi]
                    cursor.start, cursor.stop = lo, hi
                    for ns, name, arr, _ in runner.nav:
                        ns[name] = arr[lo:hi]
                runner.udf.process_partition(data)
                runner.set_whole()
        tiled = [r for r in runners if r.method is not UDFMethod.PARTITION]
        if tiled and hi > lo:
            _process_tiles(spec, frames, sel, task, tiled, cursor)
        cursor.start, cursor.stop = 0, task.n_frames
        for runner in runners:
            uplan = runner.uplan
            runner.set_whole()
            if uplan.has_postprocess:
                stage = "postprocess"
                runner.udf.postprocess()
            stage = "cleanup"
            runner.udf.cleanup()
    except Exception as e:
        _annotate(e, f"{uplan.name}.{stage}", task)
        raise
    return PartitionResult(
        index=task.index,
        offset=task.offset,
        n_frames=task.n_frames,
        buffers=tuple(r.arrays for r in runners),
    )


def _annotate(e: BaseException, where: str, task: PartitionTask) -> None:
    """Add a note naming the UDF method and the partition, once."""
    if any(n.startswith("dataflow:") for n in getattr(e, "__notes__", ())):
        return
    p = task.partition
    e.add_note(
        f"dataflow: raised in {where} on partition {p.index} "
        f"(frames {p.start}..{p.stop - 1} of the flattened navigation axis)"
    )


def _whole(spec: RunSpec, block: np.ndarray, sel: np.ndarray | None, dtype: np.dtype) -> np.ndarray:
    data = block if sel is None else block[sel]
    corrections = spec.corrections
    if corrections is None:
        return data.astype(dtype, copy=False)
    data = data.astype(dtype, copy=data is block)  # never correct the dataset's own memory
    corrections.apply(data)
    return data


def _process_tiles(
    spec: RunSpec,
    frames: _Frames,
    sel: np.ndarray | None,
    task: PartitionTask,
    runners: list[_Runner],
    cursor: _Cursor,
) -> None:
    lo, hi = task.processed
    native = spec.dataset_dtype
    corrections = spec.corrections
    converts = corrections is not None or any(r.dtype != native for r in runners)
    # With a ROI and nothing else to copy for, tiles are views of runs of consecutive
    # selected frames: no gather, each selected frame is read once, by the UDF.
    # Small frames are still gathered, where a call per isolated frame would cost more
    # than the copy.
    views = sel is not None and not converts and _views_pay(spec, runners)
    depth = _tile_depth(spec, runners, copies=converts or (sel is not None and not views))
    scratch: dict[Any, np.ndarray] = {}

    def buffer(dtype: np.dtype, m: int) -> np.ndarray:
        buf = scratch.get(dtype)
        if buf is None:
            buf = scratch[dtype] = np.empty((depth, *spec.sig_shape), dtype=dtype)
        return buf[:m]

    delay = spec.tile_delay
    for row0, block in frames.pieces(task, spec):
        # the processed frames [a0, a1) whose rows this piece holds
        row1 = row0 + len(block)
        if sel is None:
            a0, a1, rows = max(lo, row0), min(hi, row1), None
        else:
            a0 = max(lo, int(np.searchsorted(sel, row0)))
            a1 = min(hi, int(np.searchsorted(sel, row1)))
            rows = sel - row0 if row0 else sel
        for a, b, row in _tiles(a0, a1, depth, rows, views, row0):
            if delay:
                time.sleep(delay)
            m = b - a
            tile = None if row is None else block[row : row + m]
            if tile is not None and not converts:  # every UDF gets a view of the block
                for r in runners:
                    _process(r, tile, a, b, cursor, task)
                continue
            # copies: converted to each dtype the UDFs want, and corrected; where a ROI
            # leaves gaps, gathered straight into those copies
            runs: list[tuple[int, int]] = []
            if tile is None:  # rows are missing from the block only where a ROI leaves gaps
                assert rows is not None
                runs = index_runs(rows[a:b])
            converted: dict[np.dtype, np.ndarray] = {}
            for r in runners:
                data = converted.get(r.dtype)
                if data is None:
                    data = buffer(r.dtype, m)
                    if tile is not None:
                        np.copyto(data, tile, casting="unsafe")
                    else:
                        _gather(block, runs, data)
                    if corrections is not None:
                        corrections.apply(data)
                    converted[r.dtype] = data
                _process(r, data, a, b, cursor, task)


def _process(
    r: _Runner, data: np.ndarray, a: int, b: int, cursor: _Cursor, task: PartitionTask
) -> None:
    """Hand the frames ``[a, b)`` (processed-frame numbers) to one UDF."""
    try:
        if r.method is UDFMethod.TILE:
            cursor.start, cursor.stop = a, b
            for ns, name, arr, _ in r.nav:
                ns[name] = arr[a:b]
            r.udf.process_tile(data)
        else:
            _frames(r, data, a, cursor)
    except Exception as e:
        _annotate(e, f"{r.uplan.name}.process_{r.method.value}", task)
        raise


#: With a ROI, frames of at least this size are handed to tile-wise UDFs as views of
#: runs of consecutive frames instead of being gathered into a scratch tile.
VIEW_FRAME_BYTES = 64 * 2**10


def _views_pay(spec: RunSpec, runners: list[_Runner]) -> bool:
    if all(r.method is UDFMethod.FRAME for r in runners):
        return True  # frames are views one by one anyway
    return math.prod(spec.sig_shape) * spec.dataset_dtype.itemsize >= VIEW_FRAME_BYTES


def _tiles(
    lo: int, n: int, depth: int, sel: np.ndarray | None, views: bool, row0: int = 0
) -> list[tuple[int, int, int | None]]:
    """Tiles as ``(a, b, row)``: processed frames ``[a, b)``, at most ``depth`` of them.

    ``row`` is the block row of frame ``a`` where the tile's frames are consecutive rows
    of the block (a view), None where a ROI leaves gaps (a gather). ``sel`` holds the
    block rows of the selected frames, or is None when frame ``a`` is block row
    ``a - row0``; with ``views``, tiles end at every gap.
    """
    if sel is None:
        return [(a, min(n, a + depth), a - row0) for a in range(lo, n, depth)]
    if views:
        rows = sel.tolist()
        return [
            (a, min(stop, a + depth), rows[a])
            for start, stop in itertools.pairwise(run_bounds(sel, lo, n))
            for a in range(start, stop, depth)
        ]
    starts = np.arange(lo, n, depth)
    stops = np.minimum(starts + depth, n)
    contiguous = sel[stops - 1] - sel[starts] == stops - 1 - starts
    return [
        (a, b, row if ok else None)
        for a, b, row, ok in zip(
            starts.tolist(), stops.tolist(), sel[starts].tolist(), contiguous.tolist(), strict=True
        )
    ]


def _gather(block: np.ndarray, runs: list[tuple[int, int]], out: np.ndarray) -> None:
    """Copy (and convert) runs of rows of ``block`` into ``out``, one slice per run.

    A slice copy per run is about twice as fast as ``np.take`` on large frames.
    """
    j = 0
    for first, count in runs:
        np.copyto(out[j : j + count], block[first : first + count], casting="unsafe")
        j += count


def _frames(r: _Runner, tile: np.ndarray, a: int, cursor: _Cursor) -> None:
    """The per-frame loop: one nav view per buffer and frame, nothing else allocated."""
    process_frame = r.udf.process_frame
    nav = r.nav
    if len(nav) == 1 and not nav[0][3]:  # the common case: one plain nav buffer
        ns, name, arr, _ = nav[0]
        for i, frame in enumerate(tile, a):
            cursor.start = i
            cursor.stop = i + 1
            ns[name] = arr[i : i + 1]
            process_frame(frame)
        return
    for i, frame in enumerate(tile, a):
        cursor.start = i
        cursor.stop = i + 1
        for ns, name, arr, extra in nav:
            ns[name] = arr[i] if extra else arr[i : i + 1]
        process_frame(frame)
