"""Merging partial results: tree nodes, chains, the accumulator and ``get_results``.

LiberTEM folds partition results, in completion order, into one accumulator that
starts as zeros and is then ``preprocess``-ed. dataflow does the same work as a tree
(see ``design.md``):

* a tree node merges its children into a copy of its first child, calling
  ``merge(dest, src)`` once per further child; ``src`` may cover several adjacent
  partitions. Nav buffers are carried through the tree as lists of slices and not
  merged there: ``dest.<nav>`` is a scratch array (zeros, then ``preprocess``) that
  is thrown away;
* the finishing task merges the root into a fresh accumulator, so each frame's nav
  slice meets the accumulator exactly once and ``n`` partitions make ``n`` merges.

UDFs with ``MERGE_TREE = False`` get a chain instead: one merge per partition into
the accumulator, in partition order. UDFs that keep the default merge have only nav
buffers; those are concatenated, never merged.
"""

from __future__ import annotations

import copy
import enum
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

from dataflow.buffers import ArrayWithMask, BufferWrapper, UDFData, allocate
from dataflow.errors import UDFException, UndeclaredBufferError
from dataflow.shape import Shape, Slice

if TYPE_CHECKING:
    import numpy.typing as npt

    from dataflow.partition import PartitionResult
    from dataflow.plan import RunSpec, UDFPlan
    from dataflow.udf.base import UDF

__all__ = [
    "Accumulator",
    "MergeStrategy",
    "MergeItem",
    "chain_step",
    "client_udf",
    "collect_results",
    "finish",
    "fresh_accumulator",
    "merge_into",
    "merge_all",
    "merge_node",
    "block",
    "Block",
]


class MergeStrategy(enum.Enum):
    """How the partial results of a UDF combine, chosen at inspection (``plan.py``)."""

    #: default ``merge``, only nav buffers: the partitions' slices are concatenated
    CONCAT = "concat"
    #: a custom ``merge``: a tree of ``merge(dest, src)`` calls
    TREE = "tree"
    #: a custom ``merge`` with ``MERGE_TREE = False``: merges in partition order
    CHAIN = "chain"
    #: default ``merge``, other buffers, ``merge_all`` defined: one ``merge_all`` call
    MERGE_ALL = "merge_all"


@dataclass
class MergeItem:
    """Merged buffers of adjacent partitions ``offset : offset + n_frames``.

    ``buffers[k]`` holds UDF ``k``'s non-nav arrays; ``nav[k]`` maps each nav buffer to
    the list of its per-partition slices, in order. Entries of UDFs not merged in the
    tree are ``None``.
    """

    offset: int
    n_frames: int
    buffers: list[dict[str, np.ndarray] | None]
    nav: list[dict[str, list[np.ndarray]] | None]


@dataclass
class Accumulator:
    """One UDF's full-size buffers (nav buffers span all selected frames) and its state."""

    udf: UDF
    arrays: dict[str, np.ndarray]
    #: frames already merged, over all ROI-selected frames
    merged: np.ndarray


_T = TypeVar("_T")


def _present(entry: _T | None) -> _T:
    """An entry that the UDF's merge strategy puts in every item: there, or a bug."""
    if entry is None:
        raise AssertionError("a merge item lacks the buffers of a UDF its strategy includes")
    return entry


def _copy(arr: np.ndarray) -> np.ndarray:
    return copy.deepcopy(arr) if arr.dtype == object else arr.copy()


def _is_tree(uplan: UDFPlan) -> bool:
    return uplan.strategy is MergeStrategy.TREE


def client_udf(spec: RunSpec, uplan: UDFPlan, arrays: Mapping[str, Any]) -> UDF:
    """A clean copy with client-side metadata and ``results`` bound to ``arrays``.

    Aux parameters show the ROI-selected frames, like the nav buffers of ``arrays``.
    """
    udf = uplan.udf.copy()
    udf.meta = spec.main_meta(uplan)
    udf.results = UDFData(arrays, uplan.buffers)
    udf.params._df_set_aux_frames(spec.roi_index)
    udf.task_data = cast("UDFData", None)  # task data exists only inside a partition
    return udf


def _leaf(spec: RunSpec, part: PartitionResult) -> MergeItem:
    buffers: list[dict[str, np.ndarray] | None] = []
    nav: list[dict[str, list[np.ndarray]] | None] = []
    for uplan, arrays in zip(spec.udfs, part.buffers, strict=True):
        if not _is_tree(uplan):
            buffers.append(None)
            nav.append(None)
            continue
        navnames = set(uplan.nav_names)
        buffers.append({k: v for k, v in arrays.items() if k not in navnames})
        nav.append({k: [arrays[k]] for k in uplan.nav_names})
    return MergeItem(part.offset, part.n_frames, buffers, nav)


def _as_item(spec: RunSpec, child: PartitionResult | MergeItem) -> MergeItem:
    return child if isinstance(child, MergeItem) else _leaf(spec, child)


def _joined(pieces: Sequence[np.ndarray]) -> np.ndarray:
    return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)


def _scratch_nav(spec: RunSpec, uplan: UDFPlan, n_frames: int) -> dict[str, np.ndarray]:
    """Nav buffers for ``n_frames`` frames as the accumulator has them: zeros, then preprocess."""
    if not uplan.has_preprocess:  # zeros: the other buffers are not needed
        return allocate({k: uplan.buffers[k] for k in uplan.nav_names}, n_frames, spec.sig_shape)
    arrays = allocate(uplan.buffers, n_frames, spec.sig_shape)
    client_udf(spec, uplan, arrays).preprocess()
    return {k: arrays[k] for k in uplan.nav_names}


def merge_node(spec: RunSpec, children: Sequence[PartitionResult | MergeItem]) -> MergeItem:
    """Merge adjacent children into a copy of the first one (a node of the merge tree)."""
    first = _as_item(spec, children[0])
    dest = MergeItem(
        first.offset,
        first.n_frames,
        [None if b is None else {k: _copy(v) for k, v in b.items()} for b in first.buffers],
        [None if n is None else {k: list(v) for k, v in n.items()} for n in first.nav],
    )
    udfs: dict[int, UDF] = {}
    for child in children[1:]:
        src = _as_item(spec, child)
        if src.offset != dest.offset + dest.n_frames:
            raise AssertionError("merge tree children must be adjacent")
        for k, uplan in enumerate(spec.udfs):
            dest_buffers = dest.buffers[k]
            if dest_buffers is None:  # not merged in the tree
                continue
            dest_nav, src_pieces = _present(dest.nav[k]), _present(src.nav[k])
            src_nav = {name: _joined(pieces) for name, pieces in src_pieces.items()}
            dest_ns = {**dest_buffers, **_scratch_nav(spec, uplan, src.n_frames)}
            src_ns = {**_present(src.buffers[k]), **src_nav}
            udf = udfs.get(k)
            if udf is None:
                udf = udfs[k] = client_udf(spec, uplan, dest_ns)
            merged = np.zeros(spec.n_frames, dtype=bool)
            merged[dest.offset : dest.offset + dest.n_frames] = True
            udf.meta._valid_nav_mask = merged
            dest_data = UDFData(dest_ns, uplan.buffers)
            udf.results = dest_data
            udf.merge(dest=dest_data, src=UDFData(src_ns, uplan.buffers))
            for name in uplan.nav_names:
                dest_nav[name].extend(src_pieces[name])
        dest.n_frames += src.n_frames
    return dest


def fresh_accumulator(spec: RunSpec, uplan: UDFPlan) -> Accumulator:
    """Full-size zero buffers, then ``preprocess``: LiberTEM's main-node accumulator."""
    arrays = allocate(uplan.buffers, spec.n_frames, spec.sig_shape)
    udf = client_udf(spec, uplan, arrays)
    if uplan.has_preprocess:
        udf.preprocess()
    return Accumulator(udf, arrays, np.zeros(spec.n_frames, dtype=bool))


def merge_into(
    spec: RunSpec,
    uplan: UDFPlan,
    acc: Accumulator,
    offset: int,
    n_frames: int,
    src: Mapping[str, np.ndarray],
) -> None:
    """``merge(dest, src)`` with ``dest`` the accumulator's view of ``src``'s frames."""
    stop = offset + n_frames
    navnames = set(uplan.nav_names)
    dest_ns = {k: (v[offset:stop] if k in navnames else v) for k, v in acc.arrays.items()}
    udf = acc.udf
    udf.meta._valid_nav_mask = acc.merged.copy()
    dest = UDFData(dest_ns, uplan.buffers)
    udf.results = dest
    udf.merge(dest=dest, src=UDFData(src, uplan.buffers))
    acc.merged[offset:stop] = True


def _merge_root(spec: RunSpec, k: int, acc: Accumulator, root: MergeItem) -> None:
    src = dict(root.buffers[k] or {})
    src.update({name: _joined(p) for name, p in (root.nav[k] or {}).items()})
    merge_into(spec, spec.udfs[k], acc, root.offset, root.n_frames, src)


def chain_step(
    spec: RunSpec, accs: Sequence[Accumulator | None] | None, part: PartitionResult
) -> list[Accumulator | None]:
    """One link of the merge chain (``MERGE_TREE = False``): merge ``part`` into a copy."""
    out: list[Accumulator | None] = []
    for k, uplan in enumerate(spec.udfs):
        if uplan.strategy is not MergeStrategy.CHAIN:
            out.append(None)
            continue
        prev = accs[k] if accs is not None else None
        if prev is None:
            acc = fresh_accumulator(spec, uplan)
        else:
            arrays = {name: _copy(v) for name, v in prev.arrays.items()}
            acc = Accumulator(client_udf(spec, uplan, arrays), arrays, prev.merged.copy())
        merge_into(spec, uplan, acc, part.offset, part.n_frames, part.buffers[k])
        out.append(acc)
    return out


@dataclass
class Block:
    """What one partition sends to the finishing task besides the merge tree and chain."""

    offset: int
    n_frames: int
    #: per UDF: nav slices (CONCAT), all buffers (MERGE_ALL), or None
    buffers: tuple[dict[str, np.ndarray] | None, ...]


def block(spec: RunSpec, part: PartitionResult) -> Block:
    """The nav slices of default-merge UDFs, and the partial results of merge_all UDFs."""
    out: list[dict[str, np.ndarray] | None] = []
    for uplan, arrays in zip(spec.udfs, part.buffers, strict=True):
        if uplan.strategy is MergeStrategy.CONCAT:
            out.append({name: arrays[name] for name in uplan.nav_names})
        elif uplan.strategy is MergeStrategy.MERGE_ALL:
            out.append(arrays)
        else:
            out.append(None)
    return Block(part.offset, part.n_frames, tuple(out))


def merge_all(spec: RunSpec, uplan: UDFPlan, k: int, blocks: Sequence[Block]) -> Accumulator:
    """One ``merge_all`` call over every partition's results, in partition order."""
    sig = spec.sig_shape
    ordered: OrderedDict[Slice, UDFData] = OrderedDict()
    for b in blocks:
        key = Slice((b.offset, *(0,) * len(sig)), Shape((b.n_frames, *sig), sig_dims=len(sig)))
        ordered[key] = UDFData(_present(b.buffers[k]), uplan.buffers, writable=False)
    arrays = allocate(uplan.buffers, spec.n_frames, sig)
    udf = client_udf(spec, uplan, arrays)
    merged = udf.merge_all(ordered)
    for name, value in merged.items():
        if name not in arrays:
            raise UDFException(
                f"{uplan.name}.merge_all() returned {name!r}, which is not an allocated "
                f"buffer; buffers: {sorted(arrays)}"
            )
        value = np.asarray(value)
        covered = sum(b.n_frames for b in blocks)
        if uplan.buffers[name].kind == "nav" and covered != spec.n_frames and len(value) == covered:
            # a partial run: the blocks' frames, concatenated; put them at their offsets
            start = 0
            for b in blocks:
                arrays[name][b.offset : b.offset + b.n_frames] = value[start : start + b.n_frames]
                start += b.n_frames
        else:
            arrays[name][...] = value
    return Accumulator(udf, arrays, np.ones(spec.n_frames, dtype=bool))


def finish(
    spec: RunSpec,
    top: Sequence[MergeItem | PartitionResult],
    chain: Sequence[Accumulator | None] | None,
    blocks: Sequence[Block],
    with_results: bool,
) -> tuple[Any, ...]:
    """The finishing task: one accumulator per UDF, then ``get_results`` if asked.

    ``top`` is the last level of the merge tree (at most ``split_every`` items); it is
    merged into its root here, then the root into the accumulator. Returns, per UDF,
    ``collect_results(...)`` output when ``with_results`` is true, otherwise the
    :class:`Accumulator` itself (for ``run_udf_iter``, whose ``get_results`` runs on
    the client).
    """
    root_item = None
    if top:
        root_item = merge_node(spec, top) if len(top) > 1 else _as_item(spec, top[0])
    out = []
    for k, uplan in enumerate(spec.udfs):
        if uplan.strategy is MergeStrategy.CONCAT and blocks:
            arrays = {
                name: _joined([_present(blk.buffers[k])[name] for blk in blocks])
                for name in uplan.nav_names
            }
            acc = Accumulator(
                client_udf(spec, uplan, arrays), arrays, np.ones(spec.n_frames, dtype=bool)
            )
        elif uplan.strategy is MergeStrategy.MERGE_ALL and blocks:
            acc = merge_all(spec, uplan, k, blocks)
        elif uplan.strategy is MergeStrategy.CHAIN and chain is not None:
            acc = _present(chain[k])
        else:
            acc = fresh_accumulator(spec, uplan)
            if root_item is not None and uplan.strategy is MergeStrategy.TREE:
                _merge_root(spec, k, acc, root_item)
        out.append(collect_results(spec, uplan, acc) if with_results else acc)
    return tuple(out)


def collect_results(
    spec: RunSpec, uplan: UDFPlan, acc: Accumulator
) -> dict[str, tuple[BufferWrapper, npt.NDArray[Any], npt.NDArray[np.bool_] | None]]:
    """Call ``get_results`` on the accumulator and check what it returns.

    Returns buffer name -> (declaration, array in raw shape, valid mask or None).
    Private buffers are left out; buffers the UDF did not return (``use=None``) are
    added as they are. A value made with ``UDF.with_mask`` brings its own valid mask.

    Raises
    ------
    UDFException
        For undeclared or private names, and for a value whose dtype or shape differs
        from the declaration (lazy results take their meta from it).
    """
    udf = acc.udf
    udf.results = UDFData(acc.arrays, uplan.buffers)
    udf.meta._valid_nav_mask = acc.merged.copy()
    returned = udf.get_results()
    if not isinstance(returned, Mapping):
        raise UDFException(
            f"{uplan.name}.get_results() returned a {type(returned).__name__}; expected a dict"
        )
    out: dict[str, tuple[BufferWrapper, np.ndarray, np.ndarray | None]] = {}
    for name, value in returned.items():
        decl = uplan.buffers.get(name)
        if decl is None:
            raise UndeclaredBufferError(
                f"{uplan.name}.get_results() returned {name!r}, which is not a declared buffer; "
                f"declared: {sorted(uplan.buffers)}"
            )
        if decl.use == "private":
            raise UDFException(
                f"{uplan.name}.get_results() returned {name!r}, a private buffer; private "
                "buffers are not results"
            )
        mask = None
        if isinstance(value, ArrayWithMask):
            arr, mask = value.data, value.mask
        else:
            arr = np.asarray(value)
        _check_result(spec, uplan, name, decl, arr)
        out[name] = (decl, arr, mask)
    for name, decl in uplan.buffers.items():
        if name in out or decl.use is not None:
            continue
        out[name] = (decl, acc.arrays[name], None)
    missing = [n for n, d in uplan.buffers.items() if d.use == "result_only" and n not in out]
    if missing:
        raise UDFException(
            f"{uplan.name}.get_results() did not return the result_only buffers {missing}"
        )
    return {n: out[n] for n in uplan.buffers if n in out}


def _check_result(
    spec: RunSpec, uplan: UDFPlan, name: str, decl: BufferWrapper, arr: np.ndarray
) -> None:
    """Raise unless ``arr`` has the declared dtype and shape of buffer ``name``."""
    shape = decl.shape_for(spec.n_frames, spec.sig_shape)
    if arr.dtype == decl.dtype and arr.shape == shape:
        return
    raise UDFException(
        f"{uplan.name}.get_results() returned {name!r} with dtype {arr.dtype} and shape "
        f"{arr.shape}; the buffer is declared with dtype {decl.dtype} and shape {shape} "
        f"(kind={decl.kind!r}, extra_shape={decl.extra_shape}): return "
        f"value.astype({str(decl.dtype)!r}) or declare the buffer as it is returned"
    )
