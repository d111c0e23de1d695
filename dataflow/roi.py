"""Regions of interest: every form LiberTEM accepts, turned into one boolean mask.

``roi=`` may be

* a boolean array of the navigation shape (any array of the navigation size is
  reshaped; another dtype is converted with a warning: non-zero selects a frame);
* a ``scipy.sparse`` or ``sparse`` (pydata) array of the navigation shape;
* a coordinate tuple, e.g. ``(3, 5)``: that one frame;
* an iterable of ``(coordinates, value)`` pairs, e.g. ``[((0, 0), True), ((3, 5), True)]``:
  those frames set to ``value``, all others unselected.

The mask is always a private copy: changing the caller's array later changes nothing.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from dataflow.errors import DataflowWarning, RoiError

__all__ = ["normalize_roi"]


def _is_coordinate(value: Any, nav_dims: int) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) == nav_dims
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    )


def _check_coordinate(coords: tuple[int, ...], nav_shape: tuple[int, ...]) -> None:
    if any(not -n <= c < n for c, n in zip(coords, nav_shape, strict=True)):
        raise RoiError(f"roi coordinate {coords} lies outside the navigation shape {nav_shape}")


def normalize_roi(roi: Any, nav_shape: Sequence[int]) -> np.ndarray | None:
    """A private boolean mask of the navigation shape for any accepted ``roi``, or None.

    Examples
    --------
    >>> normalize_roi((1, 2), (2, 3))
    array([[False, False, False],
           [False, False,  True]])
    >>> normalize_roi([((0, 0), True), ((1, 1), True)], (2, 3)).sum()
    np.int64(2)

    Raises
    ------
    RoiError
        If the size of ``roi`` differs from the navigation size, or a coordinate lies
        outside the navigation shape.
    TypeError
        If ``roi`` is none of the accepted forms.
    """
    if roi is None:
        return None
    nav_shape = tuple(int(n) for n in nav_shape)
    if _is_coordinate(roi, len(nav_shape)):
        _check_coordinate(roi, nav_shape)
        mask = np.zeros(nav_shape, dtype=bool)
        mask[roi] = True
        return mask
    if hasattr(roi, "todense") or hasattr(roi, "toarray"):  # pydata sparse, scipy.sparse
        dense = roi.toarray() if hasattr(roi, "toarray") else roi.todense()
        return _from_array(np.asarray(dense), nav_shape, type(roi).__name__)
    if isinstance(roi, np.ndarray) or hasattr(roi, "__array__"):
        return _from_array(np.asarray(roi), nav_shape, type(roi).__name__)
    if isinstance(roi, Iterable) and not isinstance(roi, (str, bytes, dict)):
        items = list(roi)
        if items and all(
            isinstance(it, tuple) and len(it) == 2 and _is_coordinate(tuple(it[0]), len(nav_shape))
            for it in items
        ):
            mask = np.zeros(nav_shape, dtype=bool)
            for coords, value in items:
                coords = tuple(coords)
                _check_coordinate(coords, nav_shape)
                mask[coords] = bool(value)
            return mask
        return _from_array(np.asarray(items), nav_shape, type(roi).__name__)
    raise TypeError(
        f"roi is a {type(roi).__name__}; expected a boolean array of the navigation shape "
        f"{nav_shape}, a sparse array, a coordinate tuple or ((coordinates), value) pairs"
    )


def _from_array(arr: np.ndarray, nav_shape: tuple[int, ...], given: str) -> np.ndarray:
    if arr.dtype == object:
        raise TypeError(f"roi is a {given} of Python objects; expected a boolean array")
    if arr.size != math.prod(nav_shape):
        raise RoiError(f"roi has shape {arr.shape}; the navigation shape is {nav_shape}")
    if arr.dtype != bool:
        warnings.warn(
            f"roi has dtype {arr.dtype}; it is converted to bool (non-zero selects a frame)",
            DataflowWarning,
            stacklevel=5,
        )
    return np.array(arr, dtype=bool, copy=True).reshape(nav_shape)
