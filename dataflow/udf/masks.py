"""``ApplyMasksUDF``: weighted sums of every frame with a stack of masks (virtual detectors).

The masks come from factories, functions without arguments that the UDF calls inside
each partition task: only the functions travel in the graph, never the mask arrays.
Each task prepares the stack once, in the result dtype and a contiguous
``(n_masks, n_pixels)`` layout, and then computes one matrix product per tile,
``tile.reshape(n, -1) @ masks.T`` (computed as ``(masks @ tile.T).T``, see
:class:`_DenseProduct`).

Sparse masks (``scipy.sparse`` or pydata ``sparse``) are multiplied without being
densified. Both libraries are optional: ``pip install 'dataflow-udf[sparse]'``.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from dataflow.buffers import AuxBufferWrapper
from dataflow.masks import is_sparse, to_dense
from dataflow.udf.base import UDF, UDFMethod

if TYPE_CHECKING:
    from dataflow.buffers import BufferWrapper

__all__ = ["ApplyMasksUDF"]

#: The sparse back-ends LiberTEM's ``use_sparse`` names (``True`` picks a default).
SPARSE_BACKENDS = (
    "scipy.sparse",
    "scipy.sparse.csr",
    "scipy.sparse.csc",
    "sparse.pydata",
    "sparse.pydata.GCXS",
)
_EXTRA_HINT = "install it with pip install 'dataflow-udf[sparse]'"

SparseMode = Literal[False] | str


def _require(module: str, why: str) -> None:
    """Raise ImportError now, on the client, if an optional package is missing."""
    if importlib.util.find_spec(module) is None:
        raise ImportError(f"{why} needs the optional package {module!r}; {_EXTRA_HINT}")


class _Stack:
    """The masks as computed from the factories: ``n`` rows of ``n_pixels`` each.

    ``rows`` is a NumPy array, a scipy.sparse CSR matrix or a pydata COO array, all of
    shape ``(n, n_pixels)``; ``mask_shape`` is the shape of one mask as returned.
    """

    __slots__ = ("dtype", "mask_shape", "mode", "rows")

    def __init__(self, rows: Any, mask_shape: tuple[int, ...], mode: SparseMode) -> None:
        self.rows = rows
        self.mask_shape = mask_shape
        self.mode = mode
        self.dtype = np.dtype(rows.dtype)

    def __len__(self) -> int:
        return int(self.rows.shape[0])


def _call_factories(factories: Any) -> list[tuple[Any, bool]]:
    """(result, is_stack) per factory: one callable returns a stack, a list one mask each."""
    if callable(factories):
        out = factories()
        if isinstance(out, (list, tuple)):  # a list of masks from one factory
            return [(m, False) for m in out]
        return [(out, True)]
    return [(f(), False) for f in factories]


def _shape_of(m: Any) -> tuple[int, ...]:
    return tuple(int(s) for s in (m.shape if hasattr(m, "shape") else np.shape(m)))


def _compute_stack(factories: Any, mode: SparseMode | None) -> _Stack:
    """Call the factories and stack their masks as rows, dense or sparse."""
    results = _call_factories(factories)
    if not results:
        raise ValueError("mask_factories is empty; expected at least one mask factory")
    parts = []  # (mask, n_rows, mask shape)
    for i, (m, is_stack) in enumerate(results):
        shape = _shape_of(m)
        if is_stack:
            if len(shape) < 2:
                raise ValueError(
                    f"mask_factories returned an array of shape {shape}; a single factory must "
                    "return a stack of masks of shape (n_masks, *frame_shape). For one mask, "
                    "return mask[np.newaxis], or pass a list of factories: [factory]"
                )
            parts.append((m, shape[0], shape[1:]))
        else:
            if shape[:1] == (1,) and len(shape) > 1:  # a stack of one
                shape = shape[1:]
            if not shape:
                raise ValueError(
                    f"mask_factories[{i}] returned a {type(m).__name__} of shape (); expected "
                    "a mask of the frame shape"
                )
            parts.append((m, 1, shape))
    shapes = {p[2] for p in parts}
    if len(shapes) > 1:
        raise ValueError(
            f"mask_factories returned masks of different shapes {sorted(shapes)}; expected "
            "all masks in the frame shape"
        )
    mask_shape = parts[0][2]
    n_pixels = math.prod(mask_shape)
    if mode is None:  # LiberTEM: sparse processing if every factory returned a sparse mask
        mode = False
        if all(is_sparse(m) for m, _, _ in parts):
            mode = "scipy.sparse" if importlib.util.find_spec("scipy") else "sparse.pydata"
    if mode is False:
        dtype = np.result_type(*(_dtype_of(m) for m, _, _ in parts))
        rows = np.concatenate([to_dense(m).reshape(n, n_pixels) for m, n, _ in parts])
        return _Stack(rows.astype(dtype, copy=False), mask_shape, False)
    if mode.startswith("scipy.sparse"):
        import scipy.sparse

        blocks = [_scipy_rows(m, n, n_pixels) for m, n, _ in parts]
        return _Stack(scipy.sparse.vstack(blocks, format="csr"), mask_shape, mode)
    import sparse

    blocks = [sparse.as_coo(_pydata_input(m)).reshape((n, n_pixels)) for m, n, _ in parts]
    return _Stack(sparse.concatenate(blocks, axis=0), mask_shape, mode)


def _dtype_of(m: Any) -> np.dtype:
    return np.dtype(m.dtype) if hasattr(m, "dtype") else np.asarray(m).dtype


def _scipy_rows(m: Any, n_rows: int, n_pixels: int) -> Any:
    import scipy.sparse

    if scipy.sparse.issparse(m):
        return scipy.sparse.csr_matrix(m.reshape((n_rows, n_pixels)))
    if is_sparse(m):  # pydata
        return scipy.sparse.csr_matrix(m.reshape((n_rows, n_pixels)).to_scipy_sparse())
    return scipy.sparse.csr_matrix(np.asarray(m).reshape(n_rows, n_pixels))


def _pydata_input(m: Any) -> Any:
    return m if is_sparse(m) else np.asarray(m)


# products of a flattened tile (n, n_pixels) with the masks: an (n, n_masks) array --------


class _DenseProduct:
    """``flat @ masks.T`` with the masks a C-contiguous ``(n_masks, n_pixels)`` array.

    Computed as ``(masks @ flat.T).T``: the same numbers, but OpenBLAS's kernel for a
    few long rows times a wide matrix streams the tile about 1.5 times as fast as the
    one for a tall tile times a few long columns (single-threaded, 4 masks of 65536
    pixels, tiles of 8 to 64 frames).
    """

    def __init__(self, stack: _Stack, dtype: np.dtype) -> None:
        self.masks = np.ascontiguousarray(stack.rows, dtype=dtype)

    def __call__(self, flat: np.ndarray) -> np.ndarray:
        return (self.masks @ flat.T).T


class _ScipyProduct:
    """Dense tile times scipy.sparse masks.

    scipy's own product (``masks @ flat.T``) first copies the whole tile into
    transposed order (scipy issue 13211), which costs as much as a dense product.
    Masks with few non-zeros (at most a quarter of a frame, over all masks) instead
    gather just their pixels from the tile, one mask at a time.
    """

    def __init__(self, stack: _Stack, dtype: np.dtype) -> None:
        rows = stack.rows.astype(dtype).tocsr()
        rows.sum_duplicates()
        self.rows = rows
        self.dtype = dtype
        self.gather = rows.nnz <= rows.shape[1] // 4

    def __call__(self, flat: np.ndarray) -> np.ndarray:
        rows = self.rows
        if not self.gather:
            return np.asarray(rows @ flat.T).T
        out = np.zeros((flat.shape[0], rows.shape[0]), dtype=self.dtype)
        ptr, indices, data = rows.indptr, rows.indices, rows.data
        for j in range(rows.shape[0]):
            a, b = ptr[j], ptr[j + 1]
            if b > a:
                out[:, j] = flat[:, indices[a:b]] @ data[a:b]
        return out


class _PydataProduct:
    """``flat @ masks.T`` with pydata ``sparse`` (COO, or GCXS for ``sparse.pydata.GCXS``)."""

    def __init__(self, stack: _Stack, dtype: np.dtype) -> None:
        import sparse

        masks = stack.rows.astype(dtype).T
        self.masks = sparse.GCXS(masks) if stack.mode == "sparse.pydata.GCXS" else masks

    def __call__(self, flat: np.ndarray) -> np.ndarray:
        return np.asarray(flat @ self.masks)


_Product = _DenseProduct | _ScipyProduct | _PydataProduct


def _make_product(stack: _Stack, dtype: np.dtype) -> _Product:
    if stack.mode is False:
        return _DenseProduct(stack, dtype)
    if stack.mode.startswith("scipy.sparse"):
        return _ScipyProduct(stack, dtype)
    return _PydataProduct(stack, dtype)


class _Shifter:
    """A frame moved by ``-shift``, zero where it has no data: ``out[p] = frame[p + shift]``.

    Multiplying it with the unshifted masks equals multiplying the frame with the masks
    shifted by ``+shift`` (LiberTEM: positive y moves the mask down, positive x right),
    mask pixels that leave the frame contributing nothing.
    """

    def __init__(self, sig_shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.out = np.zeros(sig_shape, dtype=dtype)
        self.last: tuple[int, ...] | None = None

    def __call__(self, frame: np.ndarray, shift: tuple[int, ...]) -> np.ndarray:
        out = self.out
        src, dst = [], []
        for d, n in zip(shift, out.shape, strict=True):
            if abs(d) >= n:  # no overlap at all
                out.fill(0)
                self.last = None
                return out
            src.append(slice(d, n) if d >= 0 else slice(0, n + d))
            dst.append(slice(0, n - d) if d >= 0 else slice(-d, n))
        if shift != self.last:  # the margins outside the copy must be zero
            out.fill(0)
            self.last = shift
        out[tuple(dst)] = frame[tuple(src)]
        return out


class ApplyMasksUDF(UDF):
    """Integrate every frame over each of a stack of masks (bright field, rings, ...).

    ``intensity[frame, i] = sum(frame * mask_i)``: binary masks select regions, float
    or complex masks weigh the pixels.

    Parameters
    ----------
    mask_factories
        A function without arguments that returns a stack of masks, shape
        ``(n_masks, *frame_shape)``; or a list of such functions that return one mask
        each, in the frame shape. Masks may be NumPy arrays, scipy.sparse matrices or
        pydata ``sparse`` arrays. The functions are called inside every partition task,
        so keep them small: make the masks there rather than closing over big arrays.
    use_torch
        Accepted for LiberTEM compatibility and ignored: the products run on NumPy's
        BLAS.
    use_sparse
        ``None``: sparse processing if every factory returns a sparse mask, else dense.
        ``False``: densify. ``True``: sparse, with ``"scipy.sparse"``. Or a back-end by name:
        ``"scipy.sparse"``, ``"scipy.sparse.csr"``, ``"scipy.sparse.csc"``,
        ``"sparse.pydata"``, ``"sparse.pydata.GCXS"``.
    mask_count
        The number of masks, so that a single factory need not be called on the client.
    mask_dtype
        The dtype the masks are converted to; it also decides the result dtype, so
        ``np.float32`` keeps float64 masks from making a float64 result.
    preferred_dtype
        Input dtype to ask for instead of float32 (e.g. an integer dtype with integer
        masks).
    backends
        Array back-ends; dataflow runs ``"numpy"``.
    shifts
        Move the masks relative to every frame by whole pixels ``(y, x)``: a length-2
        array for all frames, or per frame an aux buffer made with
        ``ApplyMasksUDF.aux_data(shifts, kind="nav", extra_shape=(2,), dtype=int)``.
        A positive y moves the masks down, a positive x to the right; mask pixels moved
        outside the frame contribute nothing, and a frame without overlap gives 0.
        Float shifts are truncated to integers. Shifts process frame by frame.
    **kwargs
        Further parameters, kept in ``self.params`` (e.g. for subclasses).

    Raises
    ------
    TypeError
        If ``mask_factories`` is neither callable nor a list of callables.
    ValueError
        For an unknown ``use_sparse``, or ``shifts`` that are not one shift per
        signal dimension.
    ImportError
        If the sparse back-end asked for is not installed.

    Notes
    -----
    The result ``intensity`` is a nav buffer with ``extra_shape=(n_masks,)`` and dtype
    ``np.result_type(input_dtype, mask_dtype)``. Masks are computed on the client
    only to find their count and dtype; pass ``mask_count`` and ``mask_dtype`` to skip
    that.

    Dense masks use one BLAS matrix product per tile and are usually the fastest
    choice on a CPU; sparse masks pay off when all of them together cover only a
    small part of the frame (thin rings, single pixels).

    Examples
    --------
    >>> from dataflow.masks import circular, ring
    >>> def detectors():
    ...     return np.stack([circular(16, 16, 32, 32, radius=6), ring(16, 16, 32, 32, 14, 8)])
    >>> res = ctx.run_udf(dataset=dataset, udf=ApplyMasksUDF(mask_factories=detectors))
    >>> res["intensity"].data.shape
    (16, 16, 2)
    >>> expected = np.tensordot(data, detectors(), axes=((2, 3), (1, 2)))
    >>> bool(np.allclose(res["intensity"].data, expected, rtol=1e-5))
    True

    One factory per mask, and a constant shift of the masks by 2 rows down:

    >>> udf = ApplyMasksUDF(
    ...     mask_factories=[lambda: circular(16, 16, 32, 32, radius=6)], shifts=(2, 0)
    ... )
    >>> shifted = ctx.run_udf(dataset=dataset, udf=udf)["intensity"].data[..., 0]
    >>> bool(np.allclose(shifted, (data * circular(16, 18, 32, 32, radius=6)).sum(axis=(2, 3))))
    True
    """

    def __init__(
        self,
        mask_factories: Callable[[], Any] | Iterable[Callable[[], Any]],
        use_torch: bool = True,
        use_sparse: bool | str | None = None,
        mask_count: int | None = None,
        mask_dtype: Any = None,
        preferred_dtype: Any = None,
        backends: Any = None,
        shifts: Any = None,
        **kwargs: Any,
    ) -> None:
        mask_factories = _check_factories(mask_factories)
        if use_sparse not in (None, True, False, *SPARSE_BACKENDS):
            raise ValueError(
                f"use_sparse is {use_sparse!r}; expected None, True, False or one of "
                f"{', '.join(map(repr, SPARSE_BACKENDS))}"
            )
        if mask_count is not None and (
            not isinstance(mask_count, (int, np.integer)) or mask_count < 1
        ):
            raise ValueError(f"mask_count is {mask_count!r}; expected a positive integer")
        if shifts is not None and not isinstance(shifts, AuxBufferWrapper):
            shifts = np.asarray(shifts)
            if shifts.ndim != 1 or shifts.dtype.kind not in "iuf":
                raise ValueError(
                    f"shifts is {shifts!r}; expected one (y, x) shift in whole pixels, or "
                    "per-frame shifts from ApplyMasksUDF.aux_data(..., kind='nav', "
                    "extra_shape=(2,), dtype=int)"
                )
        mode = _sparse_mode(use_sparse)
        if mode:
            _require(
                "scipy" if mode.startswith("scipy") else "sparse", f"use_sparse={use_sparse!r}"
            )
        super().__init__(
            mask_factories=mask_factories,
            use_torch=use_torch,
            use_sparse=use_sparse,
            mask_count=mask_count,
            mask_dtype=mask_dtype,
            preferred_dtype=preferred_dtype,
            backends=backends,
            shifts=shifts,
            **kwargs,
        )
        self._mask_cache: dict[Any, _Stack] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_mask_cache"] = {}  # masks are made where they are used, never shipped
        return state

    # masks ------------------------------------------------------------------------------

    def _sig_shape(self) -> tuple[int, ...] | None:
        return None if self.meta is None else tuple(self.meta.dataset_shape.sig)

    def _stack(self) -> _Stack:
        """The masks from the factories, computed once per UDF object and frame shape."""
        sig = self._sig_shape()
        stack = self._mask_cache.get(sig)
        if stack is None:
            p = self.params
            mode = _sparse_mode(p.use_sparse)
            stack = _compute_stack(p.mask_factories, mode)
            if sig is not None and stack.mask_shape not in (sig, (math.prod(sig),)):
                raise ValueError(
                    f"mask_factories returned masks of shape {stack.mask_shape}; the "
                    f"dataset's frames have shape {sig}"
                )
            self._mask_cache[sig] = stack
        return stack

    def get_mask_dtype(self) -> np.dtype:
        """The masks' dtype: ``mask_dtype``, or that of the computed masks."""
        if self.params.mask_dtype is not None:
            return np.dtype(self.params.mask_dtype)
        return self._stack().dtype

    def get_mask_count(self) -> int:
        """The number of masks: ``mask_count``, the number of factories, or the stack's length."""
        if self.params.mask_count is not None:
            return int(self.params.mask_count)
        if not callable(self.params.mask_factories):
            return len(self.params.mask_factories)
        return len(self._stack())

    # the UDF interface --------------------------------------------------------------------

    def get_preferred_input_dtype(self) -> Any:
        if self.params.preferred_dtype is None:
            return super().get_preferred_input_dtype()
        return self.params.preferred_dtype

    def get_backends(self) -> Any:
        backends = self.params.backends
        return self.BACKEND_ALL if backends is None else backends

    def get_method(self) -> UDFMethod:
        """Tiles, or frame by frame when the masks are shifted."""
        return UDFMethod.FRAME if self.params.get("shifts") is not None else UDFMethod.TILE

    def get_result_buffers(self) -> dict[str, BufferWrapper]:
        self._check_shifts()
        dtype = np.result_type(self.meta.input_dtype, self.get_mask_dtype())
        return {
            "intensity": self.buffer(
                kind="nav", extra_shape=(self.get_mask_count(),), dtype=dtype, where="device"
            )
        }

    def get_task_data(self) -> dict[str, Any]:
        stack = self._stack()
        count = self.get_mask_count()
        if len(stack) != count:
            raise ValueError(f"mask_factories returned {len(stack)} masks; mask_count is {count}")
        mask_dtype = self.get_mask_dtype()
        dtype = np.result_type(self.meta.input_dtype, mask_dtype)
        if mask_dtype != stack.dtype:  # round to mask_dtype first, as LiberTEM does
            stack = _Stack(stack.rows.astype(mask_dtype), stack.mask_shape, stack.mode)
        task_data: dict[str, Any] = {"product": _make_product(stack, dtype)}
        if self.params.shifts is not None:
            sig_shape = tuple(self.meta.dataset_shape.sig)
            task_data["shifter"] = _Shifter(sig_shape, self.meta.input_dtype)
        return task_data

    def process_tile(self, tile: np.ndarray) -> None:
        flat = tile.reshape(tile.shape[0], -1)
        self.results.intensity[:] += self.task_data.product(flat)

    def process_frame(self, frame: np.ndarray) -> None:
        shift = tuple(int(s) for s in np.asarray(self.params.shifts).astype(int).reshape(-1))
        moved = self.task_data.shifter(frame, shift)
        self.results.intensity[:] += self.task_data.product(moved.reshape(1, -1))[0]

    def _check_shifts(self) -> None:
        shifts = self._kwargs.get("shifts")
        if shifts is None:
            return
        n_sig = len(self.meta.dataset_shape.sig)
        if isinstance(shifts, AuxBufferWrapper):
            if shifts.kind != "nav" or shifts.extra_shape != (n_sig,):
                raise ValueError(
                    f"shifts is aux data of kind {shifts.kind!r} with extra_shape "
                    f"{shifts.extra_shape}; expected kind='nav', extra_shape=({n_sig},): one "
                    "shift per signal dimension and frame"
                )
        elif shifts.shape != (n_sig,):
            raise ValueError(
                f"shifts has shape {shifts.shape}; expected ({n_sig},): one shift per signal "
                f"dimension of the frame shape {tuple(self.meta.dataset_shape.sig)}"
            )


def _check_factories(mask_factories: Any) -> Any:
    if callable(mask_factories):
        return mask_factories
    if isinstance(mask_factories, (str, bytes, np.ndarray)) or not isinstance(
        mask_factories, Iterable
    ):
        raise TypeError(
            f"mask_factories is a {type(mask_factories).__name__}; expected a function that "
            "returns a stack of masks, or a list of functions that return one mask each "
            "(e.g. lambda: mask)"
        )
    factories = (
        mask_factories if isinstance(mask_factories, (list, tuple)) else list(mask_factories)
    )
    if not factories:
        raise ValueError("mask_factories is empty; expected at least one mask factory")
    for i, f in enumerate(factories):
        if not callable(f):
            raise TypeError(
                f"mask_factories[{i}] is a {type(f).__name__}; expected a function that "
                "returns a mask (e.g. lambda: mask)"
            )
    return factories


def _sparse_mode(use_sparse: Any) -> SparseMode | None:
    """None (decide from the masks), False (dense) or a back-end name; True is scipy.sparse."""
    return "scipy.sparse" if use_sparse is True else use_sparse
