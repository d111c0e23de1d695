"""What a run would return, before it runs: ``Context.display``.

:func:`display` inspects UDFs on a dataset, as ``run_udf`` does before it reads any
data (:func:`dataflow.plan.make_plan`), and lists their result buffers: kind,
extra shape, dtype, use, and the shapes ``.data`` and ``.raw_data`` will have. In
Jupyter the result shows as an HTML table; ``print`` gives the same as text.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dataflow.plan import make_plan
from dataflow.udf.base import UDF

if TYPE_CHECKING:
    from dataflow.buffers import BufferWrapper
    from dataflow.sources import DataSet

__all__ = ["BufferInfo", "RunInfo", "UDFInfo", "display"]

_COLUMNS = ("UDF", "buffer", "kind", "extra_shape", "dtype", "use", "shape", "raw shape")


@dataclass(frozen=True)
class BufferInfo:
    """One result buffer as a run would return it."""

    udf: str
    name: str
    kind: str
    extra_shape: tuple[int, ...]
    dtype: np.dtype
    #: ``None``, ``"private"`` (not returned) or ``"result_only"`` (set by ``get_results``)
    use: str | None
    #: shape of ``.data``: the navigation shape for ``kind="nav"``
    shape: tuple[int, ...]
    #: shape of ``.raw_data``: the selected frames only, flattened, for ``kind="nav"``
    raw_shape: tuple[int, ...]

    def cells(self) -> tuple[str, ...]:
        """The row's values as text, in the order of the table's columns."""
        return (
            self.udf,
            self.name,
            self.kind,
            str(self.extra_shape),
            str(self.dtype),
            self.use or "-",
            str(self.shape),
            str(self.raw_shape),
        )


@dataclass(frozen=True)
class UDFInfo:
    """How a run would process the data for one UDF."""

    name: str
    method: str
    backends: tuple[str, ...]
    preferred_input_dtype: np.dtype
    #: the dtype the UDF receives (shared by all UDFs of a run)
    input_dtype: np.dtype


@dataclass(frozen=True)
class RunInfo:
    """What :func:`display` returns: the UDFs and result buffers of a run, unrun.

    ``print`` it, or let Jupyter show it as HTML.
    """

    dataset_shape: tuple[int, ...]
    dataset_dtype: np.dtype
    #: frames the run would process (the ROI's size)
    n_frames: int
    #: partition tasks the run would make
    n_tasks: int
    udfs: tuple[UDFInfo, ...]
    buffers: tuple[BufferInfo, ...]

    def _summary(self) -> list[str]:
        lines = [
            (
                f"dataset: shape {self.dataset_shape}, dtype {self.dataset_dtype}; "
                f"{self.n_frames} frames selected; partition tasks: {self.n_tasks}"
            )
        ]
        lines.extend(
            f"{u.name}: method {u.method}, backends {', '.join(u.backends)}, "
            f"preferred input dtype {_preferred(u.preferred_input_dtype)}, "
            f"input dtype {u.input_dtype}"
            for u in self.udfs
        )
        return lines

    def __repr__(self) -> str:
        rows = [_COLUMNS, *(b.cells() for b in self.buffers)]
        widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
        table = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        ]
        return "\n".join([*self._summary(), "", *table])

    def _repr_html_(self) -> str:
        e = html.escape
        head = "".join(f"<th>{e(c)}</th>" for c in _COLUMNS)
        body = "\n".join(
            "<tr>" + "".join(f"<td>{e(c)}</td>" for c in b.cells()) + "</tr>" for b in self.buffers
        )
        summary = "".join(f"<li>{e(line)}</li>" for line in self._summary())
        return (
            f"<ul>{summary}</ul>\n<table>\n<thead><tr>{head}</tr></thead>\n"
            f"<tbody>\n{body}\n</tbody>\n</table>"
        )


def _data_shape(
    decl: BufferWrapper, nav: tuple[int, ...], sig: tuple[int, ...], n_frames: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Shapes of ``.data`` and ``.raw_data`` of a declared buffer."""
    if decl.kind == "nav":
        return (*nav, *decl.extra_shape), (n_frames, *decl.extra_shape)
    shape = decl.shape_for(n_frames, sig)
    return shape, shape


def _backends(udf: UDF) -> tuple[str, ...]:
    backends = udf.get_backends()
    return (backends,) if isinstance(backends, str) else tuple(backends)


def display(dataset: DataSet, udf: UDF | Iterable[UDF], roi: Any = None) -> RunInfo:
    """The result buffers a run of ``udf`` on ``dataset`` would return; nothing is read.

    Parameters
    ----------
    dataset
        From ``ctx.load``.
    udf
        A UDF, or a list of UDFs as for ``run_udf`` (they share one input dtype).
    roi
        The ROI of the run, in any form ``run_udf`` accepts: it sets the number of
        selected frames, the ``raw_data`` shape of nav buffers, and what UDFs that
        read ``self.meta.roi`` declare.

    Returns
    -------
    RunInfo
        A table of the result buffers (``.buffers``) and of the UDFs (``.udfs``):
        text for ``print``, HTML in Jupyter.

    Raises
    ------
    UDFException, ValueError, NotImplementedError
        What ``run_udf`` raises before it reads data: a UDF without a process method
        or with invalid buffer declarations, a ROI that does not fit, buffers other
        than ``kind="nav"`` without a ``merge``.

    See Also
    --------
    dataflow.plan.make_plan : the inspection behind this.

    Notes
    -----
    As LiberTEM's ``ctx.display``, but for several UDFs at once, with private
    buffers listed (marked ``private``), and with the shapes of ``.data`` (the
    navigation shape) and ``.raw_data`` (LiberTEM's "Concrete Shape"). The input
    dtype is computed without corrections, as in LiberTEM. The UDFs are inspected on
    copies, so the ones passed in are left untouched.

    Examples
    --------
    >>> from dataflow.udf.sum import SumUDF
    >>> from dataflow.udf.sumsigudf import SumSigUDF
    >>> info = display(dataset, [SumUDF(), SumSigUDF()])
    >>> print(info)  # doctest: +NORMALIZE_WHITESPACE
    dataset: shape (16, 16, 32, 32), dtype float32; 256 frames selected; partition tasks: 1
    SumUDF: method tile, backends numpy, preferred input dtype native, input dtype float32
    SumSigUDF: method tile, backends numpy, preferred input dtype float32, input dtype float32
    <BLANKLINE>
    UDF        buffer     kind  extra_shape  dtype    use  shape     raw shape
    SumUDF     intensity  sig   ()           float32  -    (32, 32)  (32, 32)
    SumSigUDF  intensity  nav   ()           float32  -    (16, 16)  (256,)
    >>> [b.shape for b in info.buffers]
    [(32, 32), (16, 16)]
    """
    if isinstance(udf, UDF):
        udfs = [udf]
    elif isinstance(udf, Iterable) and not isinstance(udf, (str, bytes)):
        udfs = list(udf)
    else:
        raise TypeError(f"udf is a {type(udf).__name__}; expected a UDF or a list of UDFs")
    for u in udfs:
        if not isinstance(u, UDF):
            raise TypeError(f"udf contains a {type(u).__name__}; expected UDF instances")
    plan = make_plan(dataset, [u.copy() for u in udfs], roi)
    spec = plan.spec
    nav, sig = tuple(dataset.shape.nav), tuple(dataset.shape.sig)
    infos = []
    rows = []
    for user_udf, uplan in zip(udfs, spec.udfs, strict=True):
        infos.append(
            UDFInfo(
                name=uplan.name,
                method=uplan.method.value,
                backends=_backends(user_udf),
                preferred_input_dtype=np.dtype(user_udf.get_preferred_input_dtype()),
                input_dtype=uplan.input_dtype,
            )
        )
        for name, decl in uplan.buffers.items():
            shape, raw_shape = _data_shape(decl, nav, sig, spec.n_frames)
            rows.append(
                BufferInfo(
                    udf=uplan.name,
                    name=name,
                    kind=decl.kind,
                    extra_shape=decl.extra_shape,
                    dtype=decl.dtype,
                    use=decl.use,
                    shape=shape,
                    raw_shape=raw_shape,
                )
            )
    return RunInfo(
        dataset_shape=tuple(dataset.shape),
        dataset_dtype=np.dtype(dataset.dtype),
        n_frames=spec.n_frames,
        n_tasks=len(plan.tasks),
        udfs=tuple(infos),
        buffers=tuple(rows),
    )


def _preferred(dtype: np.dtype) -> str:
    """A preferred input dtype as text: ``UDF.USE_NATIVE_DTYPE`` (bool) reads "native"."""
    return "native" if dtype == np.dtype(bool) else str(dtype)
