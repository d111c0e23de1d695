"""The benchmark workloads: what dataflow runs, what its peers run, and how both are scored.

A :class:`Workload` bundles a dataset shape and dtype, where the data is read from
(a :class:`~benchmarks.data.Source`), a dataflow run, the same computation in NumPy
and in plain dask.array, the UDF the LiberTEM peer runs, and a :class:`Unit` that
turns seconds into the reported number. Add a workload by appending one to
:data:`WORKLOADS`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmarks.data import random_roi
from benchmarks.memory import BIG_SHAPE, run_memory
from benchmarks.peer_libertem import mask_stack
from dataflow import UDF
from dataflow.udf.masks import ApplyMasksUDF
from dataflow.udf.stddev import StdDevUDF
from dataflow.udf.sum import SumUDF
from dataflow.udf.sumsigudf import SumSigUDF

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import dask.array

    from benchmarks.data import DataCache
    from benchmarks.runner import Settings
    from dataflow import Context, DataSet

__all__ = [
    "GIB_PER_S",
    "MIB",
    "MS",
    "US_PER_FRAME",
    "WORKLOADS",
    "FrameSumUDF",
    "TileSumsUDF",
    "Unit",
    "Workload",
    "get_workloads",
]


@dataclass(frozen=True)
class Unit:
    """How a measured time becomes the reported number.

    Attributes
    ----------
    name
        Shown in the table and the JSON, e.g. ``"GiB/s"``.
    higher_is_better
        True for throughputs, False for times.
    convert
        ``convert(seconds, data, sig_dims)``: the number reported for one run.
    """

    name: str
    higher_is_better: bool
    convert: Callable[[float, np.ndarray, int], float]


def _n_frames(data: np.ndarray, sig_dims: int) -> int:
    return math.prod(data.shape[:-sig_dims])


#: bytes of the input as stored (uncompressed), per second
GIB_PER_S = Unit("GiB/s", True, lambda s, data, sig_dims: data.nbytes / s / 2**30)
US_PER_FRAME = Unit(
    "µs/frame", False, lambda s, data, sig_dims: s / _n_frames(data, sig_dims) * 1e6
)
MS = Unit("ms", False, lambda s, data, sig_dims: s * 1e3)
#: peak resident memory; not a time (the memory workload reports it itself)
MIB = Unit("MiB", False, lambda s, data, sig_dims: s)


@dataclass(frozen=True)
class Workload:
    """One benchmark: a dataflow run and the same computation in NumPy, dask and LiberTEM.

    Attributes
    ----------
    name
        Used by ``--only`` and in the records.
    description
        One line for the README and ``--help``.
    unit
        How times are reported.
    shape, quick_shape
        Dataset shape of the full and of the ``--quick`` run.
    run_dataflow
        ``run_dataflow(ctx, dataset)``: one run, its result as a NumPy array.
    run_reference
        ``run_reference(x)``: the NumPy code being compared with, its result. ``x`` is
        the source's NumPy input (see :class:`~benchmarks.data.Source`): the array
        itself, a memory map, or a zarr array.
    run_dask
        ``run_dask(darr)``: the same in plain dask.array, a dask array (computed by the
        runner with the threaded scheduler); None for no dask peer.
    expected
        ``expected(data)``: the correct result, if ``run_reference`` is not vectorised
        NumPy itself (every run is checked against it).
    source
        Where every tool reads the data: a key of :data:`benchmarks.data.SOURCES`.
        Throughput workloads with ``roofline`` that read a compressed copy are also
        compared with the decode roofline (see :mod:`benchmarks.decode`).
    data
        The kind of data, of :data:`benchmarks.data.KINDS`: ``uniform`` random
        values or detector ``counts``.
    libertem_udf
        The UDF the LiberTEM peer runs (a name of ``peer_libertem.UDFS``); None for no
        LiberTEM run.
    roi_fraction
        Run with a random ROI of this fraction of the frames (every tool the same).
    base
        The workload this one is compared with, tool by tool (``vs base``).
    roofline
        Compare with the memory-bandwidth roofline (for throughputs of memory-bound runs).
    opt_in
        Run only when named (``--only``) or with ``--big``.
    custom
        ``custom(settings, workload)``: a runner of its own, returning records.
    executors
        Run dataflow only on these executors (of those the run has); None for all.
    in_memory
        Load the data into memory for the run (the in-memory source and the roofline
        need it). False gives every tool a read-only memory map of the ``.npy`` file
        instead, for data too large to hold in memory beside the page cache of its
        copies (the 4 GiB cluster workloads).
    distributed_block
        ``distributed_block(frames)``: what each partition task of the plain
        dask.distributed peer computes from its block of frames (the scan flattened);
        the peer's merge tree adds the results (see :mod:`benchmarks.taskgraph`). The
        graph mirrored is that of a ``SumUDF`` run (a merge tree) of the dataset. It
        runs on dataflow executors that have a ``dask.distributed`` client, on the
        in-memory source; None for no such peer.
    sig_dims
        Number of signal dimensions of ``shape``.
    dtype
        dtype of the data.
    rtol
        Relative tolerance of the result check.
    """

    name: str
    description: str
    unit: Unit
    shape: tuple[int, ...]
    quick_shape: tuple[int, ...]
    run_dataflow: Callable[[Context, DataSet], np.ndarray]
    run_reference: Callable[[Any], np.ndarray]
    run_dask: Callable[[dask.array.Array], dask.array.Array] | None = None
    expected: Callable[[np.ndarray], np.ndarray] | None = None
    source: str = "memory"
    data: str = "uniform"
    libertem_udf: str | None = None
    roi_fraction: float | None = None
    base: str | None = None
    roofline: bool = False
    opt_in: bool = False
    custom: Callable[[Settings, Workload], list[dict[str, Any]]] | None = None
    executors: tuple[str, ...] | None = None
    in_memory: bool = True
    distributed_block: Callable[[np.ndarray], np.ndarray] | None = None
    sig_dims: int = 2
    dtype: str = "float32"
    rtol: float = 1e-5

    def shape_for(self, quick: bool = False) -> tuple[int, ...]:
        """The dataset shape of the full or the ``--quick`` run."""
        return self.quick_shape if quick else self.shape

    def setup(self, cache: DataCache, quick: bool = False) -> np.ndarray:
        """The input data of the full or the ``--quick`` run: in memory, or (without
        ``in_memory``) a read-only memory map of its ``.npy`` file."""
        if not self.in_memory:
            return cache.open(self.shape_for(quick), self.dtype, self.data)
        return cache.load(self.shape_for(quick), self.dtype, self.data)


# the dataflow side -----------------------------------------------------------------------


class FrameSumUDF(UDF):
    """A user UDF in its plainest form: one Python call and one value per frame."""

    def get_result_buffers(self) -> dict[str, Any]:
        return {"x": self.buffer(kind="nav", dtype="float32")}

    def process_frame(self, frame: np.ndarray) -> None:
        self.results.x[:] = frame.sum()


class TileSumsUDF(UDF):
    """A user UDF on tiles: the sum of all frames (sig) and the sum of each frame (nav)."""

    def get_result_buffers(self) -> dict[str, Any]:
        return {
            "sigsum": self.buffer(kind="sig", dtype="float32"),
            "navsum": self.buffer(kind="nav", dtype="float32"),
        }

    def process_tile(self, tile: np.ndarray) -> None:
        self.results.sigsum[:] += tile.sum(axis=0)
        self.results.navsum[:] += tile.reshape(tile.shape[0], -1).sum(axis=1)

    def merge(self, dest: Any, src: Any) -> None:
        dest.sigsum[:] += src.sigsum
        dest.navsum[:] = src.navsum


def _run_udf(
    make_udf: Callable[[DataSet], UDF],
    result: Callable[[Any], np.ndarray],
    roi_fraction: float | None = None,
) -> Callable[[Context, DataSet], np.ndarray]:
    def run(ctx: Context, dataset: DataSet) -> np.ndarray:
        roi = None
        if roi_fraction is not None:
            roi = random_roi(tuple(dataset.shape.nav), roi_fraction)
        return np.asarray(result(ctx.run_udf(dataset=dataset, udf=make_udf(dataset), roi=roi)))

    return run


def _buffer(name: str) -> Callable[[Any], np.ndarray]:
    return lambda res: res[name].data


def _tile_sums_result(res: Any) -> np.ndarray:
    return np.concatenate([np.ravel(res["sigsum"].data), np.ravel(res["navsum"].data)])


def _apply_masks(dataset: DataSet) -> UDF:
    sig_shape = tuple(dataset.shape.sig)
    return ApplyMasksUDF(
        mask_factories=functools.partial(mask_stack, sig_shape), use_sparse=False, mask_count=4
    )


_sum = _run_udf(lambda ds: SumUDF(), _buffer("intensity"))


# the NumPy side ----------------------------------------------------------------------------


def _sum_nav(data: Any) -> np.ndarray:
    """``x[...]`` reads a zarr array; for an array or a memory map it is a view."""
    return data[...].sum(axis=(0, 1))


def _sum_nav_f32(data: Any) -> np.ndarray:
    """As :func:`_sum_nav`, accumulating in float32 (for integer data)."""
    return data[...].sum(axis=(0, 1), dtype=np.float32)


def _sum_nav_by_row(data: Any) -> np.ndarray:
    """As :func:`_sum_nav`, a scan row at a time: 4 GiB of zarr are never read at once."""
    out = np.zeros(data.shape[2:], dtype=data.dtype)
    for i in range(data.shape[0]):
        out += data[i].sum(axis=0)
    return out


def _sum_frames(frames: np.ndarray) -> np.ndarray:
    """The sum of a block of frames (the scan flattened): a partition of ``SumUDF``."""
    return frames.sum(axis=0)


def _sum_nav_exact(data: np.ndarray) -> np.ndarray:
    return data.sum(axis=(0, 1), dtype=np.float64)


def _sum_sig(data: np.ndarray) -> np.ndarray:
    return data.sum(axis=(2, 3))


def _std(data: np.ndarray) -> np.ndarray:
    return data.std(axis=(0, 1))


def _std_exact(data: np.ndarray) -> np.ndarray:
    return data.std(axis=(0, 1), dtype=np.float64)


def _tensordot(data: np.ndarray) -> np.ndarray:
    return np.tensordot(data, mask_stack(data.shape[2:]), axes=((2, 3), (1, 2)))


def _frame_loop(data: np.ndarray) -> np.ndarray:
    """What ``FrameSumUDF`` does, as a bare Python loop over the frames."""
    frames = data.reshape(-1, *data.shape[2:])
    out = np.empty(len(frames), dtype=np.float32)
    for i, frame in enumerate(frames):
        out[i] = frame.sum()
    return out.reshape(data.shape[:2])


def _tile_sums(data: np.ndarray) -> np.ndarray:
    return np.concatenate([_sum_nav(data).ravel(), _sum_sig(data).ravel()])


def _roi_sum(data: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    roi = random_roi(data.shape[:2], fraction)
    return data.reshape(-1, *data.shape[2:])[roi.ravel()].sum(axis=0)


def _roi_sum_rows(data: Any, fraction: float = 0.1) -> np.ndarray:
    """As :func:`_roi_sum`, for a zarr array, which reads whole chunks (a scan row each):
    the scan rows that hold any selected frame, read in one call, then the frames."""
    roi = random_roi(data.shape[:2], fraction)
    rows = np.flatnonzero(roi.any(axis=1))
    return data[rows][roi[rows]].sum(axis=0)


# the dask.array side -----------------------------------------------------------------------


def _dask_sum_nav(x: dask.array.Array) -> dask.array.Array:
    return x.sum(axis=(0, 1))


def _dask_sum_nav_f32(x: dask.array.Array) -> dask.array.Array:
    return x.sum(axis=(0, 1), dtype=np.float32)


def _dask_sum_sig(x: dask.array.Array) -> dask.array.Array:
    return x.sum(axis=(2, 3))


def _dask_std(x: dask.array.Array) -> dask.array.Array:
    return x.std(axis=(0, 1))


def _dask_tensordot(x: dask.array.Array) -> dask.array.Array:
    import dask.array as da

    return da.tensordot(x, mask_stack(x.shape[2:]), axes=((2, 3), (1, 2)))


def _dask_frame_loop(x: dask.array.Array) -> dask.array.Array:
    return x.map_blocks(
        _frame_loop, drop_axis=(2, 3), dtype=np.float32, meta=np.empty((0, 0), np.float32)
    )


def _dask_tile_sums(x: dask.array.Array) -> dask.array.Array:
    import dask.array as da

    # one graph: both sums read each chunk once
    return da.concatenate([x.sum(axis=(0, 1)).ravel(), x.sum(axis=(2, 3)).ravel()])


def _dask_roi_sum(x: dask.array.Array, fraction: float = 0.1) -> dask.array.Array:
    roi = random_roi(x.shape[:2], fraction)
    return x.reshape(-1, *x.shape[2:])[roi.ravel()].sum(axis=0)


# the registry ------------------------------------------------------------------------------

_FULL = (64, 64, 256, 256)  # float32: 1 GiB
_QUICK = (16, 16, 64, 64)


#: counts data of 1 GiB: uint16 and uint8
_COUNTS_FULL = {"uint16": (128, 64, 256, 256), "uint8": (128, 128, 256, 256)}

#: the cluster workloads: float32, 4 GiB (16 MiB with --quick), 4 times the 'sum' array
_FULL_4G = (128, 128, 256, 256)
_QUICK_4G = (32, 32, 64, 64)


def _from_disk(source: str, what: str) -> Workload:
    return Workload(
        name=f"sum-{source}",
        description=f"SumUDF, the 'sum' data read from {what}",
        unit=GIB_PER_S,
        shape=_FULL,
        quick_shape=_QUICK,
        run_dataflow=_sum,
        run_reference=_sum_nav,
        run_dask=_dask_sum_nav,
        source=source,
        libertem_udf="sum",
        base="sum",
        roofline=True,
    )


def _cluster(source: str, what: str) -> Workload:
    """SumUDF over 4 GiB read from ``source``, on the threads and the dask executors only.

    The issue's target: the ``dask`` executor (``--cpus`` single-threaded workers) at
    0.8 or more of the ``threads`` executor (``--cpus`` threads), the ``vs threads``
    column. The data stay on disk (memory maps for NumPy and dask); LiberTEM does not
    run (its three executors would read the 4 GiB 18 times more, doubling the
    workload's time, for figures that do not bear on dask against threads).
    """
    return Workload(
        name=f"sum-{source}-4g",
        description=f"SumUDF, 4 GiB float32 from {what}: the dask executor vs threads",
        unit=GIB_PER_S,
        shape=_FULL_4G,
        quick_shape=_QUICK_4G,
        run_dataflow=_sum,
        run_reference=_sum_nav_by_row,
        run_dask=_dask_sum_nav,
        expected=_sum_nav_exact,
        source=source,
        executors=("threads", "dask"),
        in_memory=False,
    )


def _roi_from_disk(
    source: str, what: str, reference: Callable[[Any], np.ndarray] = _roi_sum
) -> Workload:
    """As ``sum-roi``, reading ``source``; compared with the full read, ``sum-<source>``.

    NumPy's ``reference`` reads the source's ``open_numpy`` object; :func:`_roi_sum`
    takes only the selected frames of a memory map.
    """
    return Workload(
        name=f"sum-roi-{source}",
        description=(
            f"SumUDF with a random 10% ROI, the 'sum' data read from {what}: time, and as "
            f"a fraction of 'sum-{source}'"
        ),
        unit=MS,
        shape=_FULL,
        quick_shape=_QUICK,
        run_dataflow=_run_udf(lambda ds: SumUDF(), _buffer("intensity"), roi_fraction=0.1),
        run_reference=reference,
        run_dask=_dask_roi_sum,
        expected=_roi_sum,
        source=source,
        libertem_udf="sum",
        roi_fraction=0.1,
        base=f"sum-{source}",
    )


def _counts(dtype: str, source: str = "memory", what: str = "in memory") -> Workload:
    """SumUDF on 1 GiB of counting-detector data of ``dtype``, read from ``source``."""
    base = f"sum-counts-{dtype}"
    return Workload(
        name=base if source == "memory" else f"{base}-{source}",
        description=f"SumUDF, 1 GiB of {dtype} detector counts, {what}",
        unit=GIB_PER_S,
        shape=_COUNTS_FULL[dtype],
        quick_shape=_QUICK,
        run_dataflow=_sum,
        run_reference=_sum_nav_f32,
        run_dask=_dask_sum_nav_f32,
        expected=_sum_nav_exact,
        source=source,
        data="counts",
        libertem_udf="sum",
        base=None if source == "memory" else base,
        roofline=True,
        dtype=dtype,
    )


def _counts_family(dtype: str) -> list[Workload]:
    return [
        _counts(dtype),
        _counts(dtype, "zarr-zstd", "zarr 3, zstd"),
        _counts(dtype, "zarr-blosc-lz4", "zarr 3, blosc lz4 + bitshuffle"),
        _counts(dtype, "hdf5-gzip", "HDF5, gzip level 1"),
    ]


WORKLOADS: list[Workload] = [
    Workload(
        name="sum",
        description="SumUDF (sum over the scan), 1 GiB float32 in memory; memory-bound",
        unit=GIB_PER_S,
        shape=_FULL,
        quick_shape=_QUICK,
        run_dataflow=_sum,
        run_reference=_sum_nav,
        run_dask=_dask_sum_nav,
        libertem_udf="sum",
        roofline=True,
    ),
    Workload(
        name="sumsig",
        description="SumSigUDF (sum of each frame), same data; memory-bound",
        unit=GIB_PER_S,
        shape=_FULL,
        quick_shape=_QUICK,
        run_dataflow=_run_udf(lambda ds: SumSigUDF(), _buffer("intensity")),
        run_reference=_sum_sig,
        run_dask=_dask_sum_sig,
        libertem_udf="sumsig",
        roofline=True,
    ),
    Workload(
        name="stddev",
        description="StdDevUDF (per-pixel std over the scan), same data",
        unit=GIB_PER_S,
        shape=_FULL,
        quick_shape=_QUICK,
        run_dataflow=_run_udf(lambda ds: StdDevUDF(), _buffer("std")),
        run_reference=_std,
        run_dask=_dask_std,
        expected=_std_exact,
        libertem_udf="stddev",
        roofline=True,
        rtol=1e-4,  # NumPy's float32 std, the peer, is itself off by up to ~1e-5
    ),
    Workload(
        name="masks",
        description="ApplyMasksUDF with 4 dense float32 masks vs np.tensordot, same data",
        unit=GIB_PER_S,
        shape=_FULL,
        quick_shape=_QUICK,
        run_dataflow=_run_udf(_apply_masks, _buffer("intensity")),
        run_reference=_tensordot,
        run_dask=_dask_tensordot,
        libertem_udf="masks",
        roofline=True,
        rtol=1e-4,  # float32 dot products of 65536 pixels, summed in different orders
    ),
    Workload(
        name="process-frame",
        description="a process_frame UDF writing a nav buffer vs a Python loop over frames",
        unit=US_PER_FRAME,
        shape=(256, 256, 32, 32),
        quick_shape=(32, 32, 16, 16),
        run_dataflow=_run_udf(lambda ds: FrameSumUDF(), _buffer("x")),
        run_reference=_frame_loop,
        run_dask=_dask_frame_loop,
        expected=_sum_sig,
        libertem_udf="frame-sum",
    ),
    Workload(
        name="process-tile",
        description="a process_tile UDF computing a sig sum and a nav sum, 1 GiB float32",
        unit=GIB_PER_S,
        shape=_FULL,
        quick_shape=_QUICK,
        run_dataflow=_run_udf(lambda ds: TileSumsUDF(), _tile_sums_result),
        run_reference=_tile_sums,
        run_dask=_dask_tile_sums,
        libertem_udf="tile-sums",
        roofline=True,
    ),
    Workload(
        name="sum-uint16",
        description="SumUDF on 1 GiB of uint16 (converted to float32 per tile); input GiB/s",
        unit=GIB_PER_S,
        shape=(128, 64, 256, 256),
        quick_shape=_QUICK,
        run_dataflow=_sum,
        run_reference=_sum_nav_f32,
        run_dask=_dask_sum_nav_f32,
        expected=_sum_nav_exact,
        libertem_udf="sum",
        roofline=True,
        dtype="uint16",
    ),
    Workload(
        name="tiny-sum",
        description=(
            "latency of one run_udf(SumUDF) on a tiny dataset vs arr.sum(axis=(0, 1)) "
            "and, on dask, a plain distributed graph of the same tasks"
        ),
        unit=MS,
        shape=(16, 16, 32, 32),
        quick_shape=(16, 16, 32, 32),
        run_dataflow=_sum,
        run_reference=_sum_nav,
        run_dask=_dask_sum_nav,
        libertem_udf="sum",
        distributed_block=_sum_frames,
    ),
    _from_disk("npy", "a .npy file"),
    _from_disk("raw", "a raw file"),
    _from_disk("zarr", "an uncompressed zarr 3 store"),
    _from_disk("zarr-zstd", "a zarr 3 store, default compressor (zstd)"),
    _from_disk("zarr-blosc-lz4", "a zarr 3 store, blosc lz4 + bitshuffle"),
    _from_disk("zarr-blosc-zstd", "a zarr 3 store, blosc zstd + byte shuffle"),
    _from_disk("zarr-gzip", "a zarr 3 store, gzip level 1"),
    _from_disk("zarr2-zstd", "a zarr 2 store, numcodecs Zstd"),
    _from_disk("zarr-sharded", "a zarr 3 store, shards of 8 rows, zstd"),
    _from_disk("hdf5-gzip", "an HDF5 file, gzip level 1"),
    *_counts_family("uint16"),
    *_counts_family("uint8"),
    Workload(
        name="sum-roi",
        description="SumUDF with a random 10% ROI, same data: time, and as a fraction of 'sum'",
        unit=MS,
        shape=_FULL,
        quick_shape=_QUICK,
        run_dataflow=_run_udf(lambda ds: SumUDF(), _buffer("intensity"), roi_fraction=0.1),
        run_reference=_roi_sum,
        run_dask=_dask_roi_sum,
        libertem_udf="sum",
        roi_fraction=0.1,
        base="sum",
    ),
    _roi_from_disk("npy", "a .npy file"),
    _roi_from_disk("zarr", "an uncompressed zarr 3 store", _roi_sum_rows),
    _cluster("npy", "a .npy file"),
    _cluster("zarr", "an uncompressed zarr 3 store"),
    Workload(
        name="memory",
        description="peak RSS of SumUDF over an 8 GiB zarr store vs the 1 GiB one (--big)",
        unit=MIB,
        shape=BIG_SHAPE,
        quick_shape=BIG_SHAPE,
        run_dataflow=_sum,
        run_reference=_sum_nav,
        source="zarr-zstd",
        opt_in=True,
        custom=run_memory,
    ),
]


def get_workloads(names: Sequence[str] | None = None, *, big: bool = False) -> list[Workload]:
    """The workloads to run, in registry order.

    Parameters
    ----------
    names
        Those to run; None for all but the opt-in ones. The ``base`` of a named
        workload is added, so that ``vs base`` has its figure.
    big
        Add the opt-in workloads (the 8 GiB memory run).

    Raises
    ------
    ValueError
        If a name is not registered.
    """
    known = [w.name for w in WORKLOADS]
    if names is None:
        wanted = {w.name for w in WORKLOADS if big or not w.opt_in}
    else:
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"unknown workloads {unknown!r}; known workloads: {', '.join(known)}")
        wanted = set(names) | ({w.name for w in WORKLOADS if w.opt_in} if big else set())
    by_name = {w.name: w for w in WORKLOADS}
    wanted |= {by_name[n].base for n in wanted if by_name[n].base is not None}
    return [w for w in WORKLOADS if w.name in wanted]
