"""Shapes split into navigation and signal parts, and slices in flattened navigation space.

:class:`Shape` is a tuple, so it works wherever NumPy expects a shape
(``np.zeros(ds.shape.nav)``, ``np.random.choice(..., size=ds.shape.nav)``), and it
knows how many trailing dimensions belong to the signal.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Self, SupportsIndex

if TYPE_CHECKING:
    from collections.abc import Iterable

    import numpy as np

__all__ = ["Shape", "Slice"]


class Shape(tuple):
    """A shape whose last ``sig_dims`` dimensions are the signal.

    Parameters
    ----------
    shape
        The full shape, navigation dimensions first.
    sig_dims
        How many trailing dimensions form the signal (a frame).

    Examples
    --------
    >>> s = Shape((16, 16, 32, 32), sig_dims=2)
    >>> s.nav, s.sig
    (Shape((16, 16), sig_dims=0), Shape((32, 32), sig_dims=2))
    >>> s.flatten_nav()
    Shape((256, 32, 32), sig_dims=2)
    """

    sig_dims: int

    def __new__(cls, shape: Iterable[SupportsIndex], sig_dims: int) -> Self:
        self = super().__new__(cls, (int(s) for s in shape))
        if not 0 <= sig_dims <= len(self):
            raise ValueError(f"sig_dims is {sig_dims!r}; expected 0 to {len(self)} for {self!r}")
        self.sig_dims = int(sig_dims)
        return self

    def __getnewargs__(self) -> tuple[Any, ...]:  # type: ignore[override]
        return (tuple(self), self.sig_dims)

    def __repr__(self) -> str:
        return f"Shape({tuple(self)!r}, sig_dims={self.sig_dims})"

    @property
    def nav(self) -> Shape:
        """The navigation part, as a `Shape` with ``sig_dims=0``."""
        return Shape(self[: len(self) - self.sig_dims], sig_dims=0)

    @property
    def sig(self) -> Shape:
        """The signal part, as a `Shape` whose dimensions are all signal."""
        return Shape(self[len(self) - self.sig_dims :], sig_dims=self.sig_dims)

    @property
    def nav_dims(self) -> int:
        """Number of navigation dimensions."""
        return len(self) - self.sig_dims

    @property
    def dims(self) -> int:
        """Number of dimensions."""
        return len(self)

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self)

    def to_tuple(self) -> tuple[int, ...]:
        """The shape as a plain tuple."""
        return tuple(self)

    def flatten_nav(self) -> Shape:
        """The shape with all navigation dimensions merged into one."""
        return Shape((self.nav.size, *self.sig), sig_dims=self.sig_dims)

    def flatten_sig(self) -> Shape:
        """The shape with all signal dimensions merged into one."""
        return Shape((*self.nav, self.sig.size), sig_dims=1)


class Slice:
    """A hyperrectangle in flattened (and ROI-compressed) navigation space plus the signal.

    ``origin`` and ``shape`` have one navigation dimension followed by the signal
    dimensions, as LiberTEM's ``meta.slice`` does.

    Parameters
    ----------
    origin
        Start index per dimension.
    shape
        Extent per dimension, with ``sig_dims`` set.

    Examples
    --------
    >>> import numpy as np
    >>> s = Slice(origin=(4, 0, 0), shape=Shape((2, 3, 3), sig_dims=2))
    >>> s.get(nav_only=True)
    (slice(4, 6, None),)
    >>> s.get(np.arange(10), nav_only=True)
    array([4, 5])
    """

    __slots__ = ("origin", "shape")

    def __init__(self, origin: Iterable[SupportsIndex], shape: Shape) -> None:
        self.origin = tuple(int(o) for o in origin)
        self.shape = shape
        if len(self.origin) != len(shape):
            raise ValueError(f"origin {self.origin!r} and shape {shape!r} differ in length")

    def __repr__(self) -> str:
        return f"Slice(origin={self.origin!r}, shape={self.shape!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Slice)
            and self.origin == other.origin
            and tuple(self.shape) == tuple(other.shape)
            and self.shape.sig_dims == other.shape.sig_dims
        )

    def __hash__(self) -> int:
        return hash((self.origin, tuple(self.shape), self.shape.sig_dims))

    def get(
        self, arr: np.ndarray | None = None, sig_only: bool = False, nav_only: bool = False
    ) -> Any:
        """Index tuple for this slice, or ``arr`` indexed by it.

        Parameters
        ----------
        arr
            If given, return ``arr[index]``.
        sig_only, nav_only
            Restrict the index to the signal or the navigation dimensions.
        """
        if sig_only and nav_only:
            raise ValueError("pass at most one of sig_only and nav_only")
        nav = len(self.shape) - self.shape.sig_dims
        index = tuple(slice(o, o + s) for o, s in zip(self.origin, self.shape, strict=True))
        if sig_only:
            index = index[nav:]
        elif nav_only:
            index = index[:nav]
        if arr is None:
            return index
        return arr[index]

    def discard_nav(self) -> Slice:
        """The signal part of this slice."""
        nav = len(self.shape) - self.shape.sig_dims
        return Slice(self.origin[nav:], self.shape.sig)

    @property
    def sig(self) -> Slice:
        """The signal part of this slice (LiberTEM's ``Slice.sig``)."""
        return self.discard_nav()

    @property
    def nav(self) -> Slice:
        """The navigation part of this slice (LiberTEM's ``Slice.nav``)."""
        nav = len(self.shape) - self.shape.sig_dims
        return Slice(self.origin[:nav], self.shape.nav)
