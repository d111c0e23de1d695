"""Inspection of a run on the client, before any data is read.

:func:`make_plan` checks the ROI and every UDF (process method, buffer declarations,
dtypes, merge), decides which partitions need a task, and packs what the workers need
into one :class:`RunSpec` that travels once per graph.
"""

from __future__ import annotations

import dataclasses
import keyword
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cloudpickle
import numpy as np
from dask.base import tokenize

from dataflow import config
from dataflow.buffers import BufferWrapper, UDFData
from dataflow.corrections import CorrectionSet
from dataflow.errors import UDFException
from dataflow.merge import MergeStrategy
from dataflow.roi import normalize_roi
from dataflow.udf.base import UDF, UDFMeta, UDFMethod, _default_merge_message, _implements

if TYPE_CHECKING:
    from dataflow.shape import Shape
    from dataflow.sources import DataSet, Partition

__all__ = [
    "PartitionTask",
    "RunPlan",
    "RunSpec",
    "UDFPlan",
    "input_dtype",
    "make_plan",
]

_METHOD_NAMES = {
    UDFMethod.TILE: "process_tile",
    UDFMethod.FRAME: "process_frame",
    UDFMethod.PARTITION: "process_partition",
}


@dataclass(frozen=True)
class UDFPlan:
    """One UDF of a run, as inspected on the client."""

    udf: UDF
    name: str
    method: UDFMethod
    input_dtype: np.dtype
    buffers: Mapping[str, BufferWrapper]
    #: how partial results combine; see :class:`~dataflow.merge.MergeStrategy`
    strategy: MergeStrategy
    has_preprocess: bool
    has_postprocess: bool
    tile_depth: float
    tile_bytes: float

    #: names of the allocated ``kind="nav"`` buffers
    nav_names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        # derived once, here: plans are read by several threads (a run's client side
        # while its tasks are pickled), so nothing may be filled in lazily later
        navs = (n for n, d in self.buffers.items() if d.kind == "nav" and d.use != "result_only")
        object.__setattr__(self, "nav_names", tuple(navs))


@dataclass(frozen=True)
class PartitionTask:
    """One partition task: a partition and the ROI frames it processes."""

    index: int
    partition: Partition
    #: ROI mask over the partition's frames, or None when all are selected
    roi: np.ndarray | None
    #: index of the first selected frame among all selected frames
    offset: int
    n_frames: int
    #: ``(start, stop)`` of the selected frames that hold data, when ``sync_offset``
    #: puts some of the partition's positions outside the source; None: all of them.
    #: The others are not processed (LiberTEM skips them too); their nav results
    #: keep the buffers' initial values.
    data: tuple[int, int] | None = None

    @property
    def processed(self) -> tuple[int, int]:
        """``(start, stop)`` of the selected frames the UDFs process."""
        return (0, self.n_frames) if self.data is None else self.data


@dataclass(frozen=True)
class RunSpec:
    """Everything a task of the graph needs besides its data; one graph key."""

    udfs: tuple[UDFPlan, ...]
    dataset_shape: Shape
    dataset_dtype: np.dtype
    roi: np.ndarray | None
    n_frames: int
    tasks: tuple[PartitionTask, ...]
    #: frames per tile forced by the dataset (LiberTEM's tileshape), or None
    tile_depth: int | None = None
    #: seconds to sleep per tile (LiberTEM's tiledelay), or None
    tile_delay: float | None = None
    #: detector corrections applied to every tile, or None
    corrections: CorrectionSet | None = None
    #: 1: BLAS uses one thread inside tasks (several tasks run at once); None: no limit
    blas_threads: int | None = None
    #: the process that planned the run: there, tasks hold the BLAS limit only while
    #: they run (see ``partition._OneBlasThread``); elsewhere (workers) it is kept
    client_pid: int = 0
    #: tile size when tiles are views of the partition's block (setting ``view-tile-bytes``)
    view_tile_bytes: int = 256 * 2**20
    #: tile size when tiles are copies (setting ``copy-tile-bytes``)
    copy_tile_bytes: int = 1 * 2**20

    #: shape of one frame
    sig_shape: tuple[int, ...] = field(init=False)
    #: flat indices of the ROI-selected frames, or None when all are selected
    roi_index: np.ndarray | None = field(init=False)

    def __post_init__(self) -> None:  # derived once, see UDFPlan.__post_init__
        object.__setattr__(self, "sig_shape", tuple(self.dataset_shape.sig))
        roi_index = None if self.roi is None else np.flatnonzero(self.roi)
        object.__setattr__(self, "roi_index", roi_index)

    def main_meta(self, uplan: UDFPlan) -> UDFMeta:
        """The metadata a UDF sees on the client: no partition, no slice."""
        return UDFMeta(
            dataset_shape=self.dataset_shape,
            dataset_dtype=self.dataset_dtype,
            input_dtype=uplan.input_dtype,
            roi=self.roi,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Always cloudpickle: the UDF classes may live in a module the workers cannot
        # import (a notebook, a test module); cloudpickle sends those by value.
        # dask.distributed would otherwise use plain pickle, which sends them by name.
        values = tuple(getattr(self, f.name) for f in dataclasses.fields(self) if f.init)
        return (_load_spec, (cloudpickle.dumps(values),))


def _load_spec(payload: bytes) -> RunSpec:
    return RunSpec(*cloudpickle.loads(payload))


@dataclass(frozen=True)
class RunPlan:
    """A run, ready to compile: spec, tasks and the user's UDF objects."""

    spec: RunSpec
    tasks: tuple[PartitionTask, ...]
    dataset: DataSet
    user_udfs: tuple[UDF, ...]
    token: str
    label: str


#: names a buffer cannot have: UDFData's methods and attributes (a buffer is an
#: attribute of ``self.results``, ``dest`` and ``src``, so it would hide them) and the
#: mapping methods code may expect of it
RESERVED_BUFFER_NAMES = frozenset(
    {n for n in dir(UDFData) if not n.startswith("_")} | {"values", "get", "keys", "items"}
)


def _validate_buffers(udf: UDF, decls: Any) -> dict[str, BufferWrapper]:
    name = type(udf).__name__
    if not isinstance(decls, Mapping):
        raise UDFException(
            f"{name}.get_result_buffers() returned a {type(decls).__name__}; expected a dict "
            "of buffer name to self.buffer(...)"
        )
    for key, decl in decls.items():
        if not isinstance(key, str) or not key.isidentifier() or keyword.iskeyword(key):
            raise UDFException(
                f"{name} declares a buffer named {key!r}; buffer names must be Python identifiers"
            )
        if key in RESERVED_BUFFER_NAMES:
            raise ValueError(
                f"{name} declares a buffer named {key!r}, which is reserved: buffers are "
                f"attributes of self.results, dest and src, and would hide their method of "
                f"that name; reserved names: {sorted(RESERVED_BUFFER_NAMES)}. Rename the buffer"
            )
        if key.startswith("_df_"):
            raise UDFException(
                f"{name} declares buffer {key!r}; names starting with _df_ are reserved"
            )
        if not isinstance(decl, BufferWrapper):
            raise UDFException(
                f"{name} declares buffer {key!r} as a {type(decl).__name__}; expected "
                "self.buffer(kind=..., ...)"
            )
    return dict(decls)


def _method(udf: UDF) -> UDFMethod:
    method = udf.get_method()
    try:
        method = UDFMethod(method.value if isinstance(method, UDFMethod) else method)
    except ValueError:
        raise UDFException(
            f"{type(udf).__name__}.get_method() returned {method!r}; expected one of "
            f"{[m.value for m in UDFMethod]}"
        ) from None
    if not _implements(udf, _METHOD_NAMES[method]):
        raise UDFException(
            f"{type(udf).__name__}.get_method() returned {method.value!r}, but the UDF does not "
            f"implement {_METHOD_NAMES[method]}"
        )
    return method


def _tiling(udf: UDF) -> tuple[float, float]:
    prefs = udf.get_tiling_preferences() or {}
    depth = prefs.get("depth", UDF.TILE_DEPTH_DEFAULT)
    size = prefs.get("total_size", UDF.TILE_SIZE_MAX)
    depth = math.inf if not isinstance(depth, (int, float)) else max(1, depth)
    size = math.inf if not isinstance(size, (int, float)) else max(1, size)
    return depth, size


def input_dtype(dataset_dtype: Any, udfs: Sequence[UDF], corrections: Any = None) -> np.dtype:
    """The dtype every UDF of a run receives, as LiberTEM decides it.

    ``np.result_type`` of the native dtype, float32 when corrections are applied, and
    every UDF's ``get_preferred_input_dtype()``: UDFs that run together share one dtype.
    """
    dtype: np.dtype[Any] = np.dtype(dataset_dtype)
    if corrections is not None and corrections.have_corrections():
        dtype = np.result_type(np.float32, dtype)
    for udf in udfs:
        if not isinstance(udf, UDF):
            raise TypeError(
                f"udf is a {type(udf).__name__}; expected an instance of dataflow.udf.UDF"
            )
        preferred = udf.get_preferred_input_dtype()
        try:
            dtype = np.result_type(preferred, dtype)
        except TypeError as e:
            raise UDFException(
                f"{type(udf).__name__}.get_preferred_input_dtype() returned {preferred!r}, "
                f"not a dtype: {e}"
            ) from None
    return dtype


def _inspect(udf: UDF, dataset: DataSet, roi: np.ndarray | None, input_dtype: np.dtype) -> UDFPlan:
    name = type(udf).__name__
    n_nav = dataset.shape.nav.size
    for key, aux in udf.params.__dict__["_df_aux"].items():
        if aux.kind == "nav" and len(aux.raw_data) != n_nav:
            raise ValueError(
                f"aux parameter {key!r} of {name} has {len(aux.raw_data)} entries; the "
                f"navigation shape {tuple(dataset.shape.nav)} has {n_nav} frames"
            )
    udf.meta = UDFMeta(
        dataset_shape=dataset.shape,
        dataset_dtype=dataset.dtype,
        input_dtype=input_dtype,
        roi=roi,
    )
    method = _method(udf)
    buffers = _validate_buffers(udf, udf.get_result_buffers())
    strategy = _strategy(udf, buffers)
    depth, size = _tiling(udf)
    return UDFPlan(
        udf=udf.copy(),
        name=name,
        method=method,
        input_dtype=np.dtype(input_dtype),
        buffers=buffers,
        strategy=strategy,
        has_preprocess=_implements(udf, "preprocess"),
        has_postprocess=_implements(udf, "postprocess"),
        tile_depth=depth,
        tile_bytes=size,
    )


def _strategy(udf: UDF, buffers: Mapping[str, BufferWrapper]) -> MergeStrategy:
    """How the partial results of ``udf`` combine; see ``UDFPlan.strategy``."""
    custom_merge = type(udf).merge is not UDF.merge
    if custom_merge:
        return MergeStrategy.TREE if getattr(udf, "MERGE_TREE", True) else MergeStrategy.CHAIN
    others = [k for k, d in buffers.items() if d.kind != "nav" and d.use != "result_only"]
    if not others:
        return MergeStrategy.CONCAT
    if _implements(udf, "merge_all"):
        return MergeStrategy.MERGE_ALL
    raise NotImplementedError(
        _default_merge_message(type(udf).__name__, others[0], buffers[others[0]].kind)
    )


def _with_data(dataset: DataSet, p: Partition, mask: np.ndarray | None) -> tuple[int, int] | None:
    """The range of a task's frames that the source holds, or None if it holds all.

    Positions that ``sync_offset`` moves before the first or past the last source
    frame are at the ends of the dataset, so the rest form one range.
    """
    a, b, pre, post = dataset.layout.raw_window(p.start, p.stop)
    if not pre and not post:
        return None
    lo, hi = (pre, p.n_frames - post) if a < b else (0, 0)
    if mask is None:
        return lo, hi
    selected = np.flatnonzero(mask)
    return int(np.searchsorted(selected, lo)), int(np.searchsorted(selected, hi))


def make_plan(
    dataset: DataSet,
    udfs: Sequence[UDF],
    roi: Any = None,
    corrections: Any = None,
    blas_threads: int | None = 1,
) -> RunPlan:
    """Inspect ``udfs`` on ``dataset`` with ``roi`` and list the partition tasks.

    Raises before any data is read: bad ROI, UDFs without a process method, invalid
    buffer declarations, buffers other than ``kind="nav"`` without a ``merge``,
    corrections that do not fit the signal shape.
    """
    if not udfs:
        raise ValueError("udf is an empty list; pass at least one UDF")
    roi = normalize_roi(roi, dataset.shape.nav)
    if corrections is not None:
        if not isinstance(corrections, CorrectionSet):
            raise TypeError(
                f"corrections is a {type(corrections).__name__}; expected a CorrectionSet"
            )
        corrections.check(tuple(dataset.shape.sig))
        if not corrections.have_corrections():
            corrections = None
    dtype = input_dtype(dataset.dtype, udfs, corrections)
    plans = tuple(_inspect(u, dataset, roi, dtype) for u in udfs)
    flat_roi = None if roi is None else roi.reshape(-1)
    tasks: list[PartitionTask] = []
    offset = 0
    for p in dataset.partitions:
        if flat_roi is None:
            mask, count = None, p.n_frames
        else:
            mask = flat_roi[p.slice]
            count = int(np.count_nonzero(mask))
            if count == 0:
                continue
            if count == p.n_frames:
                mask = None
        tasks.append(
            PartitionTask(len(tasks), p, mask, offset, count, _with_data(dataset, p, mask))
        )
        offset += count
    if len(tasks) < 2:
        # a lone task never runs beside another of this run: BLAS may use every core
        blas_threads = None
    spec = RunSpec(
        udfs=plans,
        dataset_shape=dataset.shape,
        dataset_dtype=dataset.dtype,
        roi=roi,
        n_frames=offset,
        tasks=tuple(tasks),
        tile_depth=getattr(dataset, "tile_depth", None),
        tile_delay=getattr(dataset, "tile_delay", None),
        corrections=corrections,
        blas_threads=blas_threads,
        client_pid=os.getpid(),
        # settings are read here, on the client, so every worker tiles alike
        view_tile_bytes=int(config.get("view-tile-bytes")),
        copy_tile_bytes=int(config.get("copy-tile-bytes")),
    )
    token = tokenize(
        dataset,
        [(t.partition.start, t.partition.stop) for t in tasks],
        roi,
        list(udfs),
        corrections,
    )
    label = "-".join(dict.fromkeys(p.name.lower() for p in plans))
    if len(label) > 60:
        label = label[:60]
    return RunPlan(spec, tuple(tasks), dataset, tuple(udfs), token, label)
