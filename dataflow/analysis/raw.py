"""The pick analysis: one whole frame, in the dataset's own dtype."""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any

import numpy as np

from dataflow.analysis.base import (
    AnalysisResultSet,
    BaseAnalysis,
    intensity_results,
)
from dataflow.udf.raw import PickUDF

if TYPE_CHECKING:
    from dataflow.sources import DataSet

__all__ = ["PickFrameAnalysis", "PickResultSet"]

_AXES = ("z", "y", "x")


class PickResultSet(AnalysisResultSet):
    """What a :class:`PickFrameAnalysis` returns.

    Keys ``intensity`` (logarithmic picture) and ``intensity_lin`` (linear picture),
    both the frame. For complex data ``intensity`` is the log view of the magnitude,
    followed by ``intensity_lin``, ``_real``, ``_imag``, ``_angle`` and ``_complex``.
    """


class PickFrameAnalysis(BaseAnalysis):
    """Pick the frame at ``(z, y, x)`` with :class:`~dataflow.udf.raw.PickUDF`.

    Parameters
    ----------
    dataset
        A dataset with 1, 2 or 3 navigation dimensions.
    parameters
        ``x`` for 1D navigation; ``x`` and ``y`` for 2D; ``x``, ``y`` and ``z`` for 3D
        (``z`` is the first navigation axis, ``x`` the last).

    Raises
    ------
    ValueError
        If the navigation is not 1D to 3D, the coordinates given do not match it, or a
        coordinate lies outside the navigation shape.
    TypeError
        If a coordinate is not an integer.

    Notes
    -----
    A ``roi`` passed to ``Context.run`` replaces the picked position, as in
    LiberTEM: the result is the first frame the ``roi`` selects.

    Examples
    --------
    >>> res = ctx.run(ctx.create_pick_analysis(dataset=dataset, x=3, y=5))
    >>> res.keys()
    ['intensity', 'intensity_lin']
    >>> bool(np.array_equal(res.intensity.raw_data, data[5, 3]))
    True
    """

    def __init__(self, dataset: DataSet, parameters: dict[str, Any]) -> None:
        super().__init__(dataset, parameters)
        origin = self.get_origin()
        nav = tuple(dataset.shape.nav)
        for axis, c, n in zip(_AXES[-len(nav) :], origin, nav, strict=True):
            if not 0 <= c < n:
                raise ValueError(
                    f"{axis} is {c!r}; the navigation shape is {nav}, so {axis} must be in "
                    f"0..{n - 1}"
                )

    def get_origin(self) -> tuple[int, ...]:
        """The coordinates in navigation order, ``(z, y, x)`` cut to the navigation dims."""
        dims = len(tuple(self.dataset.shape.nav))
        if dims not in (1, 2, 3):
            raise ValueError(
                f"the dataset has {dims} navigation dimensions; the pick analysis handles 1, 2 or 3"
            )
        zyx = tuple(self.parameters.get(axis) for axis in _AXES)
        keep, drop = zyx[3 - dims :], zyx[: 3 - dims]
        if None in keep or any(c is not None for c in drop):
            need = " and ".join(_AXES[3 - dims :][::-1])
            given = ", ".join(f"{a}={c!r}" for a, c in zip(_AXES, zyx, strict=True))
            raise ValueError(f"got {given}; a dataset with {dims}D navigation needs exactly {need}")
        for axis, c in zip(_AXES[3 - dims :], keep, strict=True):
            if isinstance(c, bool) or not isinstance(c, numbers.Integral):
                raise TypeError(f"{axis} is {c!r}; expected an integer frame index")
        return tuple(int(c) for c in keep if c is not None)  # None was refused above

    def get_udf(self) -> PickUDF:
        return PickUDF()

    def get_roi(self) -> np.ndarray:
        roi = np.zeros(tuple(self.dataset.shape.nav), dtype=bool)
        roi[self.get_origin()] = True
        return roi

    def _coords(self) -> str:
        return " ".join(
            f"{axis}={int(self.parameters[axis])}"
            for axis in ("x", "y", "z")
            if self.parameters.get(axis) is not None
        )

    def get_udf_results(
        self, udf_results: Any, roi: np.ndarray | None, damage: Any
    ) -> PickResultSet:
        data = udf_results["intensity"].raw_data[0]
        coords = self._coords()
        if data.dtype.kind == "c":
            return PickResultSet(
                self.get_complex_results(
                    data,
                    key_prefix="intensity",
                    title="intensity",
                    desc=f"the frame at {coords}",
                    damage=True,
                    default_lin=False,
                )
            )
        return PickResultSet(intensity_results(data, f"the frame at {coords}", default_lin=False))
