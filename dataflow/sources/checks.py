"""Argument checks that every source makes before it reads any data.

Each raises ``TypeError`` for a value of the wrong type and ``ValueError`` (or
:class:`~dataflow.errors.DataSetException`) for a bad value, naming the argument, what
was given and what was expected.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dataflow.errors import DataflowWarning, DataSetException

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "as_path",
    "check_count",
    "check_file",
    "check_flag",
    "check_integer",
    "check_shape",
    "check_sig_dims",
    "merge_nav_shape",
    "tile_depth",
    "warn_ignored",
]


def check_count(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an ``int`` of at least ``minimum``; TypeError or ValueError naming ``name``.

    Examples
    --------
    >>> check_count("num_partitions", 3)
    3
    >>> check_count("num_partitions", 0)
    Traceback (most recent call last):
    ...
    ValueError: num_partitions is 0; expected an integer >= 1
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} is {value!r}; expected an integer >= {minimum}")
    if value < minimum:
        raise ValueError(f"{name} is {value!r}; expected an integer >= {minimum}")
    return int(value)


def check_integer(name: str, value: Any) -> int:
    """``value`` as an ``int`` of any sign; TypeError naming ``name`` for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} is {value!r}; expected an integer")
    return int(value)


def check_flag(name: str, value: Any) -> bool:
    """``value`` if it is True or False; TypeError naming ``name`` otherwise."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} is {value!r}; expected True or False")
    return bool(value)


def check_shape(name: str, shape: Any) -> tuple[int, ...]:
    """``shape`` as a non-empty tuple of positive integers (TypeError or ValueError naming ``name``).

    Examples
    --------
    >>> check_shape("nav_shape", [4, 5])
    (4, 5)
    >>> check_shape("nav_shape", (4, 0))
    Traceback (most recent call last):
    ...
    ValueError: nav_shape is (4, 0); expected a tuple of positive integers
    """
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
        raise TypeError(f"{name} is {shape!r}; expected a tuple of positive integers")
    items = tuple(shape)
    out = []
    for s in items:
        if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"{name} is {items!r}; expected a tuple of positive integers")
        out.append(int(s))
    if not out or min(out) < 1:
        raise ValueError(f"{name} is {items!r}; expected a tuple of positive integers")
    return tuple(out)


def check_sig_dims(sig_dims: Any, shape: Sequence[int], source: str = "the data") -> int:
    """Validate ``sig_dims`` for data of ``shape``: at least one navigation dimension.

    Parameters
    ----------
    sig_dims
        Number of trailing signal dimensions.
    shape
        Shape of the data.
    source
        How to name the data in messages, e.g. a file path.

    Examples
    --------
    >>> check_sig_dims(2, (4, 4, 8, 8))
    2
    >>> check_sig_dims(4, (4, 4, 8, 8))
    Traceback (most recent call last):
    ...
    ValueError: sig_dims is 4; the data has shape (4, 4, 8, 8) (4 dimensions), so sig_dims must be from 1 to 3
    """
    shape = tuple(shape)
    ndim = len(shape)
    if isinstance(sig_dims, bool) or not isinstance(sig_dims, (int, np.integer)):
        raise TypeError(f"sig_dims is {sig_dims!r}; expected an integer from 1 to {ndim - 1}")
    if ndim < 2:
        raise DataSetException(
            f"{source} has shape {shape}; expected at least 2 dimensions (navigation + signal)"
        )
    if not 1 <= sig_dims <= ndim - 1:
        raise ValueError(
            f"sig_dims is {sig_dims!r}; {source} has shape {shape} ({ndim} dimensions), so "
            f"sig_dims must be from 1 to {ndim - 1}"
        )
    return int(sig_dims)


def as_path(path: Any, filetype: str, what: str = "file") -> Path:
    """``path`` as an absolute :class:`~pathlib.Path`; TypeError for anything else.

    Examples
    --------
    >>> as_path("scan.mib", "mib").name
    'scan.mib'
    >>> as_path(3, "mib")
    Traceback (most recent call last):
    ...
    TypeError: path is a int; expected a str or os.PathLike naming a file
    """
    if path is None:
        raise TypeError(f"ctx.load({filetype!r}, ...) needs path=<path of a {what}>")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"path is a {type(path).__name__}; expected a str or os.PathLike naming a {what}"
        )
    return Path(path).expanduser().absolute()


def check_file(path: Path, filetype: str) -> os.stat_result:
    """``os.stat`` of ``path``; FileNotFoundError or IsADirectoryError naming it."""
    if not path.exists():
        raise FileNotFoundError(f"no such {filetype} file: {str(path)!r}")
    if path.is_dir():
        raise IsADirectoryError(f"{str(path)!r} is a directory; expected a {filetype} file")
    return path.stat()


def warn_ignored(filetype: str, **options: tuple[Any, Any]) -> None:
    """Warn for each of LiberTEM's options that is given but has no effect here.

    Each keyword is an option's name, its value a ``(given, default)`` pair: a value
    other than the default gets a :class:`~dataflow.errors.DataflowWarning`.

    Examples
    --------
    >>> warn_ignored("npy", io_backend=(None, None))  # the default: no warning
    """
    for name, (value, default) in options.items():
        if value is default or value == default:
            continue
        warnings.warn(
            f"{name}={value!r} has no effect on ctx.load({filetype!r}, ...): dataflow reads "
            f"data its own way (LiberTEM's {name} has no counterpart). Leave it out",
            DataflowWarning,
            stacklevel=4,
        )


def merge_nav_shape(
    nav_shape: Sequence[int] | None, scan_size: Sequence[int] | None
) -> Sequence[int] | None:
    """LiberTEM's deprecated ``scan_size`` as ``nav_shape``; both at once is an error."""
    if scan_size is None:
        return nav_shape
    if nav_shape is not None:
        raise ValueError(
            f"scan_size is {tuple(scan_size)!r} and nav_shape is {tuple(nav_shape)!r}; "
            "pass only nav_shape (scan_size is its old name)"
        )
    return scan_size


def tile_depth(tileshape: Sequence[int] | None) -> int | None:
    """Frames per tile from LiberTEM's ``tileshape`` (its first entry), or None."""
    if tileshape is None:
        return None
    return check_shape("tileshape", tileshape)[0]
