"""The UDF base class, its mixins, and the metadata a running UDF sees.

A UDF is a stateful object that writes into preallocated buffer views; the engine
(:mod:`dataflow.partition`, :mod:`dataflow.merge`) creates clean copies with
``cls(**kwargs)`` wherever work runs, so everything a UDF needs must arrive through
its constructor keywords (``self.params``).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, cast, runtime_checkable

import numpy as np

from dataflow.buffers import (
    ArrayWithMask,
    AuxBufferWrapper,
    BufferWrapper,
    MergeAttrMapping,
    UDFData,
    check_cast,
)
from dataflow.errors import UDFException, UDFMethodError
from dataflow.results import UDFResultDict, UDFResults
from dataflow.shape import Shape, Slice

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from dataflow.buffers import BufferKind, BufferUse

__all__ = [
    "MergeAttrMapping",
    "NoOpUDF",
    "TileDepthEnum",
    "TileSizeEnum",
    "TilingPreferences",
    "UDF",
    "UDFFrameMixin",
    "UDFKwargsWrapper",
    "UDFMergeAllMixin",
    "UDFResultDict",
    "UDFResults",
    "UDFMeta",
    "UDFMethod",
    "UDFPartitionMixin",
    "UDFPostprocessMixin",
    "UDFPreprocessMixin",
    "UDFTileMixin",
    "check_cast",
]


class UDFMethod(enum.Enum):
    """How a UDF consumes data: stacks of frames, single frames, or whole partitions."""

    TILE = "tile"
    FRAME = "frame"
    PARTITION = "partition"


class TileDepthEnum(enum.Enum):
    """Marker for the default tile depth."""

    TILE_DEPTH_DEFAULT = "tile-depth-default"


class TileSizeEnum(enum.Enum):
    """Marker for a tile size that fits the CPU cache."""

    TILE_SIZE_BEST_FIT = "tile-size-best-fit"


class TilingPreferences(TypedDict):
    """What ``UDF.get_tiling_preferences`` returns."""

    depth: int | float | TileDepthEnum
    total_size: int | float | TileSizeEnum


@runtime_checkable
class UDFTileMixin(Protocol):
    """A UDF that implements ``process_tile(tile)`` for stacks of whole frames."""

    def process_tile(self, tile: np.ndarray) -> None:
        """Process ``tile``, an array of shape ``(N,) + sig_shape``."""


@runtime_checkable
class UDFFrameMixin(Protocol):
    """A UDF that implements ``process_frame(frame)``."""

    def process_frame(self, frame: np.ndarray) -> None:
        """Process one frame of shape ``sig_shape``."""


@runtime_checkable
class UDFPartitionMixin(Protocol):
    """A UDF that implements ``process_partition(partition)``."""

    def process_partition(self, partition: np.ndarray) -> None:
        """Process all selected frames of a partition, shape ``(N,) + sig_shape``."""


@runtime_checkable
class UDFPreprocessMixin(Protocol):
    """A UDF that implements ``preprocess()`` to initialise buffers."""

    def preprocess(self) -> None:
        """Initialise buffers before any frame of a partition is processed."""


@runtime_checkable
class UDFPostprocessMixin(Protocol):
    """A UDF that implements ``postprocess()`` after a partition's frames."""

    def postprocess(self) -> None:
        """Finish a partition's buffers before they are merged."""


@runtime_checkable
class UDFMergeAllMixin(Protocol):
    """A UDF that implements ``merge_all(ordered_results)``."""

    def merge_all(self, ordered_results: Mapping[Any, Any]) -> Mapping[str, Any]:
        """Merge all partition results at once."""


class UDFKwargsWrapper:
    """``self.params``: the constructor keywords, by attribute.

    Examples
    --------
    >>> p = UDFKwargsWrapper({"radius": 3})
    >>> p.radius, p.get("missing", 0), "radius" in p
    (3, 0, True)
    """

    def __init__(self, kwargs: Mapping[str, Any]) -> None:
        d = self.__dict__
        d["_df_kwargs"] = dict(kwargs)
        d["_df_aux"] = {k: v for k, v in kwargs.items() if isinstance(v, AuxBufferWrapper)}
        d.update(kwargs)
        for name, aux in d["_df_aux"].items():
            d[name] = aux.raw_data

    def _df_set_aux_frames(self, indices: np.ndarray | None) -> None:
        """Show aux parameters for the frames at flat ``indices`` (None: all frames)."""
        for name, aux in self.__dict__["_df_aux"].items():
            self.__dict__[name] = aux.for_frames(indices)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(
            f"no parameter named {name!r}; parameters: {sorted(self.__dict__['_df_kwargs'])}"
        )

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"parameters are read-only; pass {name}=... to the UDF's constructor instead"
        )

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __contains__(self, name: object) -> bool:
        return name in self.__dict__["_df_kwargs"]

    def __iter__(self) -> Iterator[str]:
        return iter(self.__dict__["_df_kwargs"])

    def __getitem__(self, name: str) -> Any:
        return self.__dict__[name] if name in self else self.__dict__["_df_kwargs"][name]

    def __repr__(self) -> str:
        return f"<UDF parameters: {sorted(self.__dict__['_df_kwargs'])}>"

    def get(self, name: str, default: Any = None) -> Any:
        """The parameter ``name``, or ``default``."""
        return self.__dict__[name] if name in self else default

    def get_buffer(self, name: str) -> AuxBufferWrapper:
        """The aux data object behind parameter ``name``."""
        return self.__dict__["_df_aux"][name]

    def keys(self) -> Iterable[str]:
        """Parameter names."""
        return self.__dict__["_df_kwargs"].keys()


class _Cursor:
    """The unit (frame, tile, partition) being processed, in partition-local indices.

    The partition runner moves one cursor per task; ``UDFMeta.slice`` and
    ``UDFMeta.coordinates`` are computed from it only when asked for.
    """

    __slots__ = ("start", "stop")

    def __init__(self, start: int, stop: int) -> None:
        self.start = start
        self.stop = stop


class UDFMeta:
    """What a UDF knows about the data while it runs: ``self.meta``.

    On the client (``get_result_buffers`` during inspection, ``merge``,
    ``get_results``) ``slice`` is ``None`` and ``partition_shape`` raises; inside a
    partition task they describe the current frame, tile or partition.

    Attributes
    ----------
    dataset_shape : Shape
        The dataset's full shape, ROI ignored.
    dataset_dtype, input_dtype : numpy.dtype
        Native dtype, and the dtype the UDF receives after ``get_preferred_input_dtype``.
    roi : numpy.ndarray or None
        Boolean mask of the navigation shape.
    """

    def __init__(
        self,
        *,
        dataset_shape: Shape,
        dataset_dtype: np.dtype,
        input_dtype: np.dtype,
        roi: np.ndarray | None,
        partition_offset: int | None = None,
        frame_indices: np.ndarray | None = None,
        cursor: _Cursor | None = None,
        threads_per_worker: int | None = None,
    ) -> None:
        self._dataset_shape = dataset_shape
        self._dataset_dtype = np.dtype(dataset_dtype)
        self._input_dtype = np.dtype(input_dtype)
        self._roi = roi
        self._offset = partition_offset
        self._frame_indices = frame_indices
        self._cursor = cursor
        self._valid_nav_mask: np.ndarray | None = None
        self.threads_per_worker = threads_per_worker
        self.device_class = "cpu"
        self.array_backend = "numpy"
        self.corrections = None
        #: index of the current tile's signal slice in ``tiling_scheme``: tiles span
        #: whole frames, so the scheme has one entry
        self.tiling_scheme_idx = 0

    @property
    def dataset_shape(self) -> Shape:
        """The dataset's shape, ROI ignored."""
        return self._dataset_shape

    @property
    def dataset_dtype(self) -> np.dtype:
        """The dataset's native dtype."""
        return self._dataset_dtype

    @property
    def input_dtype(self) -> np.dtype:
        """The dtype of the data passed to the UDF."""
        return self._input_dtype

    @property
    def roi(self) -> np.ndarray | None:
        """Boolean navigation mask of the run, or ``None``."""
        return self._roi

    @property
    def slice(self) -> Slice | None:
        """The current unit in flattened, ROI-compressed navigation coordinates plus sig."""
        cursor = self._cursor
        if cursor is None or self._offset is None:
            return None
        sig = self._dataset_shape.sig
        return Slice(
            origin=(self._offset + cursor.start, *(0,) * len(sig)),
            shape=Shape((cursor.stop - cursor.start, *sig), sig_dims=len(sig)),
        )

    @property
    def tiling_scheme(self) -> tuple[Slice, ...]:
        """The signal slices tiles are cut into: the whole frame only, in dataflow.

        ``meta.tiling_scheme[meta.tiling_scheme_idx] == meta.sig_slice``, as in LiberTEM.
        """
        return (self.sig_slice,)

    @property
    def sig_slice(self) -> Slice:
        """The signal part of the current tile: always the whole frame in dataflow."""
        sig = self._dataset_shape.sig
        return Slice(origin=(0,) * len(sig), shape=sig)

    @property
    def partition_shape(self) -> Shape:
        """Shape of the current partition, ROI applied; only inside a partition task."""
        if self._frame_indices is None:
            raise AttributeError("partition_shape is only available inside a partition task")
        sig = self._dataset_shape.sig
        return Shape((len(self._frame_indices), *sig), sig_dims=len(sig))

    @property
    def coordinates(self) -> np.ndarray:
        """Navigation coordinates of the frames in the current unit, shape ``(n, nav_dims)``."""
        nav = tuple(self._dataset_shape.nav)
        indices = self._frame_indices
        if indices is None:  # client side: all selected frames
            n = int(np.prod(nav))
            indices = np.arange(n) if self._roi is None else np.flatnonzero(self._roi)
        elif self._cursor is not None:
            indices = indices[self._cursor.start : self._cursor.stop]
        return np.stack(np.unravel_index(indices, nav), axis=1)

    def get_valid_nav_mask(self, full_nav: bool = False) -> np.ndarray | None:
        """Flat mask of the navigation positions merged so far (``merge``, ``get_results``).

        Parameters
        ----------
        full_nav
            Return a mask over all navigation positions instead of the ROI-selected ones.
        """
        mask = self._valid_nav_mask
        if mask is None or not full_nav or self._roi is None:
            return mask
        full = np.zeros(int(np.prod(self._dataset_shape.nav)), dtype=bool)
        full[np.flatnonzero(self._roi)] = mask
        return full


def _implements(udf: Any, name: str) -> bool:
    return callable(getattr(udf, name, None))


class UDF:
    """Base class of user-defined functions.

    Subclass it, declare buffers in :meth:`get_result_buffers`, and implement one
    of ``process_tile``, ``process_frame`` or ``process_partition``. Keyword
    arguments to the constructor become ``self.params``; a custom ``__init__`` must
    pass all of them on to ``super().__init__`` and accept them again, because the
    engine re-creates the UDF with ``cls(**kwargs)`` wherever work runs.

    Examples
    --------
    >>> import numpy as np
    >>> class FrameMax(UDF):
    ...     def get_result_buffers(self):
    ...         return {"mx": self.buffer(kind="nav")}
    ...
    ...     def process_frame(self, frame):
    ...         self.results.mx[:] = frame.max()
    >>> res = ctx.run_udf(dataset=dataset, udf=FrameMax())
    >>> res["mx"].data.shape
    (16, 16)
    """

    USE_NATIVE_DTYPE = bool
    TILE_SIZE_BEST_FIT = TileSizeEnum.TILE_SIZE_BEST_FIT
    TILE_SIZE_MAX = np.inf
    TILE_DEPTH_DEFAULT = TileDepthEnum.TILE_DEPTH_DEFAULT
    TILE_DEPTH_MAX = np.inf
    BACKEND_NUMPY = "numpy"
    BACKEND_CUPY = "cupy"
    BACKEND_CUDA = "cuda"
    BACKEND_ALL = ("numpy",)
    CPU_BACKENDS = frozenset({"numpy"})
    UDF_METHOD = UDFMethod
    #: Merge partial results pairwise in a tree (``True``), or fold them in partition
    #: order on the workers (``False``), as LiberTEM's fold does literally.
    MERGE_TREE = True

    #: The engine sets these before it calls any method a UDF implements; they are
    #: ``None`` on a UDF that is not taking part in a run. Typed without ``None`` so
    #: that UDF code reads ``self.meta.dataset_shape`` without a check.
    task_data: UDFData
    results: UDFData
    meta: UDFMeta

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self.params = UDFKwargsWrapper(kwargs)
        self.task_data = cast("UDFData", None)
        self.results = cast("UDFData", None)
        self.meta = cast("UDFMeta", None)
        self._backend = "numpy"

    # the interface UDFs implement ------------------------------------------------

    def get_result_buffers(self) -> dict[str, BufferWrapper]:
        """Declare the result buffers: a dict of name to ``self.buffer(...)``."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement get_result_buffers() and return a dict "
            "of buffer declarations made with self.buffer(...)"
        )

    def get_task_data(self) -> dict[str, Any]:
        """Per-partition scratch data, available as ``self.task_data.<name>``."""
        return {}

    def merge(self, dest: UDFData, src: UDFData) -> None:
        """Merge ``src`` into ``dest``; the default copies ``kind="nav"`` buffers.

        Raises
        ------
        NotImplementedError
            If a buffer other than ``kind="nav"`` exists: such UDFs must implement
            ``merge``.
        """
        decls = self.results.__dict__["_df_decls"] if self.results is not None else None
        for name, src_view in src.items():
            decl = decls.get(name) if decls else None
            if decl is not None and decl.kind != "nav":
                raise NotImplementedError(
                    _default_merge_message(type(self).__name__, name, decl.kind)
                )
            dest_view = dest.get(name)
            check_cast(src_view, dest_view)
            dest_view[:] = src_view

    if TYPE_CHECKING:
        # The optional methods, for type checkers only: a UDF defines those it needs,
        # and the planner finds them with ``_implements`` (a definition here would make
        # every UDF look like it implements all of them).
        def preprocess(self) -> None: ...

        def postprocess(self) -> None: ...

        def process_tile(self, tile: np.ndarray) -> None: ...

        def process_frame(self, frame: np.ndarray) -> None: ...

        def process_partition(self, partition: np.ndarray) -> None: ...

        def merge_all(self, ordered_results: Mapping[Slice, UDFData]) -> Mapping[str, Any]: ...

    def get_results(self) -> dict[str, Any]:
        """The final results; the default returns every buffer that is not private."""
        decls = self.results.__dict__["_df_decls"] or {}
        result_only = [n for n, d in decls.items() if d.use == "result_only"]
        if result_only:
            raise UDFException(
                f"{type(self).__name__} declares result_only buffers {result_only} and must "
                "implement get_results() to compute them"
            )
        return {n: self.results.get(n) for n, d in decls.items() if d.use != "private"}

    def get_preferred_input_dtype(self) -> Any:
        """The dtype the UDF wants its input in; combined with the native dtype."""
        return np.float32

    def get_tiling_preferences(self) -> TilingPreferences:
        """Preferred tile depth and size in bytes."""
        return {"depth": UDF.TILE_DEPTH_DEFAULT, "total_size": UDF.TILE_SIZE_MAX}

    def get_backends(self) -> Any:
        """Array backends the UDF supports; dataflow runs NumPy."""
        return (self.BACKEND_NUMPY,)

    def get_method(self) -> UDFMethod:
        """The process method used: tile, then frame, then partition, as implemented."""
        if _implements(self, "process_tile"):
            return UDFMethod.TILE
        if _implements(self, "process_frame"):
            return UDFMethod.FRAME
        if _implements(self, "process_partition"):
            return UDFMethod.PARTITION
        raise UDFMethodError(
            f"{type(self).__name__} implements none of process_tile, process_frame and "
            "process_partition; implement one of them"
        )

    def cleanup(self) -> None:
        """Called after ``postprocess`` in each partition task."""

    # helpers for UDF code ------------------------------------------------------------

    def buffer(
        self,
        kind: BufferKind,
        extra_shape: tuple[int, ...] = (),
        dtype: Any = "float32",
        where: str | None = None,
        use: BufferUse | None = None,
        *,
        extra_dims: tuple[str, ...] | None = None,
    ) -> BufferWrapper:
        """Declare a buffer; see :class:`~dataflow.buffers.BufferWrapper`.

        ``extra_dims`` (a dataflow extension) names the ``extra_shape`` axes in
        labelled results.
        """
        return BufferWrapper(
            kind=kind,
            extra_shape=extra_shape,
            dtype=dtype,
            where=where,
            use=use,
            extra_dims=extra_dims,
        )

    @classmethod
    def aux_data(
        cls, data: Any, kind: BufferKind, extra_shape: tuple[int, ...] = (), dtype: Any = "float32"
    ) -> AuxBufferWrapper:
        """Per-frame input data, passed as a constructor keyword.

        Inside the run ``self.params.<name>`` is sliced like a ``kind="nav"`` buffer:
        ``(1,)`` or ``extra_shape`` per frame, ``(N, *extra_shape)`` per tile or partition,
        with the ROI applied.

        Examples
        --------
        >>> class Shifted(UDF):
        ...     def get_result_buffers(self):
        ...         return {"s": self.buffer(kind="nav")}
        ...
        ...     def process_frame(self, frame):
        ...         self.results.s[:] = frame.sum() + self.params.offset[0]
        >>> offsets = UDF.aux_data(np.arange(256, dtype="float32"), kind="nav")
        >>> res = ctx.run_udf(dataset=dataset, udf=Shifted(offset=offsets))
        >>> bool(np.allclose(res["s"].data, data.sum(axis=(2, 3)) + np.arange(256).reshape(16, 16)))
        True
        """
        return AuxBufferWrapper(kind, extra_shape, dtype, data)

    @staticmethod
    def with_mask(data: Any, mask: Any) -> ArrayWithMask:
        """Return ``data`` from ``get_results`` with its own valid mask.

        ``mask`` is boolean and broadcastable to ``data`` (``True``/``False`` for all).
        """
        return ArrayWithMask(data, mask)

    @property
    def xp(self) -> Any:
        """The array module for the current backend: NumPy."""
        return np

    def forbuf(self, arr: Any, target: Any) -> Any:
        """``arr`` converted to the backend of ``target``: a no-op on NumPy."""
        return arr

    def copy(self) -> UDF:
        """A clean copy: ``type(self)(**kwargs)``."""
        return type(self)(**self._kwargs)

    @property
    def requires_custom_merge(self) -> bool:
        """Whether a buffer other than ``kind="nav"`` (or ``result_only``) is declared."""
        decls = self.get_result_buffers()
        return any(d.kind != "nav" and d.use != "result_only" for d in decls.values())

    def __dask_tokenize__(self) -> Any:
        from dask.base import normalize_token

        cls = type(self)
        return (cls.__module__, cls.__qualname__, id(cls), normalize_token(self._kwargs))

    def __repr__(self) -> str:
        kw = ", ".join(f"{k}={_short_repr(v)}" for k, v in self._kwargs.items())
        return f"{type(self).__name__}({kw})"


def _short_repr(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"<array {value.shape} {value.dtype}>"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _reset_kwargs(udf: UDF, kwargs: Mapping[str, Any]) -> None:
    """Point a UDF's clean-copy keywords at ``kwargs``: later ``copy()`` calls use them.

    ``run_udf_iter``'s ``update_parameters_experimental`` changes the plan's UDFs so.
    """
    udf._kwargs = dict(kwargs)
    udf.params = UDFKwargsWrapper(kwargs)


def _default_merge_message(udf_name: str, buffer_name: str, kind: str = "") -> str:
    of_kind = f"of kind {kind!r}" if kind else "of another kind"
    return (
        "Default merging only works for kind='nav' buffers. Please implement a "
        f"suitable custom merge function: {udf_name} declares buffer {buffer_name!r} "
        f"{of_kind}."
    )


class NoOpUDF(UDF):
    """A UDF that reads every tile and does nothing with it (for overhead measurements).

    Parameters
    ----------
    preferred_input_dtype
        The input dtype to request; the native dtype by default.
    """

    def __init__(self, preferred_input_dtype: Any = UDF.USE_NATIVE_DTYPE) -> None:
        super().__init__(preferred_input_dtype=preferred_input_dtype)

    def get_result_buffers(self) -> dict[str, BufferWrapper]:
        return {}

    def get_preferred_input_dtype(self) -> Any:
        return self.params.preferred_input_dtype

    def process_tile(self, tile: np.ndarray) -> None:
        pass
