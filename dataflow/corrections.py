"""Detector corrections applied to every tile before UDFs see it: dark, gain, bad pixels.

``ctx.run_udf(..., corrections=CorrectionSet(dark=..., gain=..., excluded_pixels=...))``
subtracts the dark frame, multiplies by the gain map and replaces each excluded pixel
by the mean of its valid neighbours (the ``3**sig_dims - 1`` pixels around it inside
the frame that are not excluded themselves), as LiberTEM does. Corrections run on a
floating-point copy of each tile; the dataset's own data is never modified.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from dataflow.errors import DataflowError

__all__ = ["CorrectionSet", "RepairValueError"]


class RepairValueError(DataflowError, ValueError):
    """An excluded pixel has no valid neighbour to repair it from."""


def _as_mask(excluded: Any, sig_shape: tuple[int, ...] | None) -> np.ndarray:
    """A dense boolean mask from an array, a ``scipy.sparse``/``sparse`` array or coordinates."""
    if hasattr(excluded, "todense"):  # pydata sparse, scipy.sparse
        excluded = excluded.todense()
    elif hasattr(excluded, "toarray"):
        excluded = excluded.toarray()
    arr = np.asarray(excluded)
    if arr.dtype == bool or sig_shape is None or arr.shape == sig_shape:
        return arr.astype(bool)
    # coordinates: (sig_dims, k) integers
    if arr.ndim == 2 and arr.shape[0] == len(sig_shape) and arr.dtype.kind in "iu":
        mask = np.zeros(sig_shape, dtype=bool)
        mask[tuple(arr)] = True
        return mask
    raise TypeError(
        f"excluded_pixels has shape {arr.shape} and dtype {arr.dtype}; expected a boolean "
        f"mask of the signal shape {sig_shape}, a sparse array, or (sig_dims, k) coordinates"
    )


class CorrectionSet:
    """Dark frame, gain map and excluded pixels to correct every frame with.

    Parameters
    ----------
    dark
        Subtracted from every frame; the signal shape.
    gain
        Multiplied with every frame after the dark subtraction; the signal shape.
    excluded_pixels
        Pixels to replace by the mean of their valid neighbours: a boolean mask of
        the signal shape, a ``sparse.COO``/``scipy.sparse`` array like it, or integer
        coordinates of shape ``(sig_dims, k)``.
    allow_empty
        Leave an excluded pixel without valid neighbours uncorrected instead of
        raising :class:`RepairValueError`.

    Examples
    --------
    >>> from dataflow.udf.sum import SumUDF
    >>> dark = np.ones((32, 32), dtype="float32")
    >>> res = ctx.run_udf(dataset=dataset, udf=SumUDF(), corrections=CorrectionSet(dark=dark))
    >>> bool(np.allclose(res["intensity"].data, (data - 1).sum(axis=(0, 1)), rtol=1e-5))
    True
    """

    def __init__(
        self,
        dark: Any = None,
        gain: Any = None,
        excluded_pixels: Any = None,
        allow_empty: bool = False,
    ) -> None:
        self._dark = None if dark is None else np.asarray(dark)
        self._gain = None if gain is None else np.asarray(gain)
        shape = next((a.shape for a in (self._dark, self._gain) if a is not None), None)
        self._excluded = None if excluded_pixels is None else _as_mask(excluded_pixels, shape)
        self._allow_empty = allow_empty
        self._repair: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        if self._excluded is not None:
            self._repair = _repair_plan(self._excluded, allow_empty)

    def get_dark_frame(self) -> np.ndarray | None:
        """The dark frame, or None."""
        return self._dark

    def get_gain_map(self) -> np.ndarray | None:
        """The gain map, or None."""
        return self._gain

    def get_excluded_pixels(self) -> np.ndarray | None:
        """The excluded pixels as a boolean mask, or None."""
        return self._excluded

    def have_corrections(self) -> bool:
        """Whether anything is corrected at all."""
        has_excluded = self._excluded is not None and bool(self._excluded.any())
        return self._dark is not None or self._gain is not None or has_excluded

    def check(self, sig_shape: tuple[int, ...]) -> None:
        """Raise if a correction does not have the dataset's signal shape."""
        for name, arr in (
            ("dark", self._dark),
            ("gain", self._gain),
            ("excluded_pixels", self._excluded),
        ):
            if arr is not None and arr.shape != tuple(sig_shape):
                raise ValueError(
                    f"{name} has shape {arr.shape}; the dataset's signal shape is "
                    f"{tuple(sig_shape)}"
                )

    def apply(self, tile: np.ndarray) -> None:
        """Correct ``tile`` (frames, floating point) in place."""
        if self._dark is not None:
            np.subtract(tile, self._dark, out=tile, casting="unsafe")
        if self._gain is not None:
            np.multiply(tile, self._gain, out=tile, casting="unsafe")
        if self._repair is not None:
            targets, neighbours, counts = self._repair
            if len(targets):
                flat = tile.reshape(len(tile), -1)
                # neighbours are padded with a dummy index whose weight is zero
                gathered = flat[:, neighbours]
                weights = (neighbours >= 0) / np.maximum(counts, 1)[:, None]
                repaired = (gathered * weights).sum(axis=-1)
                keep = counts > 0
                flat[:, targets[keep]] = repaired[:, keep]

    def __dask_tokenize__(self) -> Any:
        from dask.base import normalize_token

        return (
            "CorrectionSet",
            normalize_token((self._dark, self._gain, self._excluded, self._allow_empty)),
        )

    def __repr__(self) -> str:
        parts = [
            n
            for n, a in (
                ("dark", self._dark),
                ("gain", self._gain),
                ("excluded_pixels", self._excluded),
            )
            if a is not None
        ]
        return f"CorrectionSet({', '.join(parts) or 'empty'})"


def _repair_plan(mask: np.ndarray, allow_empty: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat indices of excluded pixels, their valid neighbours (padded with -1), counts."""
    shape = mask.shape
    coords = np.argwhere(mask)
    offsets = [o for o in itertools.product((-1, 0, 1), repeat=len(shape)) if any(o)]
    neighbours = np.full((len(coords), len(offsets)), -1, dtype=np.intp)
    counts = np.zeros(len(coords), dtype=np.intp)
    for i, c in enumerate(coords):
        for o in offsets:
            n = c + o
            if np.all(n >= 0) and np.all(n < shape) and not mask[tuple(n)]:
                neighbours[i, counts[i]] = np.ravel_multi_index(tuple(n), shape)
                counts[i] += 1
    empty = np.flatnonzero(counts == 0)
    if len(empty) and not allow_empty:
        raise RepairValueError(
            f"excluded pixels {[tuple(int(x) for x in coords[i]) for i in empty]} have no valid "
            "neighbour to repair them from; pass allow_empty=True to leave them uncorrected"
        )
    flat = np.zeros(0, np.intp)
    if len(coords):
        flat = np.asarray(np.ravel_multi_index(tuple(coords.T), shape))
    # the -1 padding indexes the last pixel; its weight is zero
    return flat, neighbours, counts
