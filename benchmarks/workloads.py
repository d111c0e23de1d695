"""The benchmark workloads: what dataflow runs, what NumPy runs, and how both are scored.

A :class:`Workload` bundles a dataset shape, a dataflow run, a NumPy reference and a
:class:`Unit` that turns seconds into the reported number. Add a workload by
appending one to :data:`WORKLOADS`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dataflow import UDF
from dataflow.udf.sum import SumUDF
from dataflow.udf.sumsigudf import SumSigUDF

if TYPE_CHECKING:
    from collections.abc import Callable

    from dataflow import Context, DataSet

__all__ = [
    "GIB_PER_S",
    "MS",
    "US_PER_FRAME",
    "WORKLOADS",
    "FrameSumUDF",
    "Unit",
    "Workload",
    "get_workloads",
    "random_data",
]


@dataclass(frozen=True)
class Unit:
    """How a measured time becomes the reported number.

    Attributes
    ----------
    name
        Shown in the table and the JSON, e.g. ``"GiB/s"``.
    higher_is_better
        True for throughputs, False for times.
    convert
        ``convert(seconds, data, sig_dims)``: the number reported for one run.
    """

    name: str
    higher_is_better: bool
    convert: Callable[[float, np.ndarray, int], float]


def _n_frames(data: np.ndarray, sig_dims: int) -> int:
    return math.prod(data.shape[:-sig_dims])


GIB_PER_S = Unit("GiB/s", True, lambda s, data, sig_dims: data.nbytes / s / 2**30)
US_PER_FRAME = Unit(
    "µs/frame", False, lambda s, data, sig_dims: s / _n_frames(data, sig_dims) * 1e6
)
MS = Unit("ms", False, lambda s, data, sig_dims: s * 1e3)


@functools.cache
def random_data(shape: tuple[int, ...], dtype: str = "float32") -> np.ndarray:
    """Uniform random data in [0, 1), made once per process and shape (seed 0).

    Workloads of the same shape share the array: do not write to it.
    """
    return np.random.default_rng(0).random(shape, dtype=np.dtype(dtype))


def load_memory(ctx: Context, data: np.ndarray, sig_dims: int) -> DataSet:
    """The in-memory source: ``ctx.load("memory", data=data, sig_dims=sig_dims)``."""
    return ctx.load("memory", data=data, sig_dims=sig_dims)


@dataclass(frozen=True)
class Workload:
    """One benchmark: a dataflow run and the NumPy code that computes the same result.

    Attributes
    ----------
    name
        Used by ``--only`` and in the records.
    description
        One line for the README and ``--help``.
    unit
        How times are reported.
    shape, quick_shape
        Dataset shape of the full and of the ``--quick`` run.
    run_dataflow
        ``run_dataflow(ctx, dataset)``: one run, its result as a NumPy array.
    run_reference
        ``run_reference(data)``: the NumPy code being compared with, its result.
    expected
        ``expected(data)``: the correct result, if ``run_reference`` is not
        vectorised NumPy itself (both runs are checked against it).
    load
        ``load(ctx, data, sig_dims)``: the source; in memory by default.
    sig_dims
        Number of signal dimensions of ``shape``.
    rtol
        Relative tolerance of the result check.
    """

    name: str
    description: str
    unit: Unit
    shape: tuple[int, ...]
    quick_shape: tuple[int, ...]
    run_dataflow: Callable[[Context, DataSet], np.ndarray]
    run_reference: Callable[[np.ndarray], np.ndarray]
    expected: Callable[[np.ndarray], np.ndarray] | None = None
    load: Callable[[Context, np.ndarray, int], DataSet] = load_memory
    sig_dims: int = 2
    dtype: str = "float32"
    rtol: float = 1e-5

    def setup(self, quick: bool = False) -> np.ndarray:
        """The input data of the full or the ``--quick`` run."""
        return random_data(self.quick_shape if quick else self.shape, self.dtype)


# the dataflow side -----------------------------------------------------------------------


class FrameSumUDF(UDF):
    """A user UDF in its plainest form: one Python call and one value per frame."""

    def get_result_buffers(self) -> dict[str, Any]:
        return {"x": self.buffer(kind="nav", dtype="float32")}

    def process_frame(self, frame: np.ndarray) -> None:
        self.results.x[:] = frame.sum()


def _run_udf(udf_class: type[UDF], name: str) -> Callable[[Context, DataSet], np.ndarray]:
    def run(ctx: Context, dataset: DataSet) -> np.ndarray:
        return np.asarray(ctx.run_udf(dataset=dataset, udf=udf_class())[name].data)

    run.__name__ = f"run_{udf_class.__name__}"
    return run


# the NumPy side ----------------------------------------------------------------------------


def _sum_nav(data: np.ndarray) -> np.ndarray:
    return data.sum(axis=(0, 1))


def _sum_sig(data: np.ndarray) -> np.ndarray:
    return data.sum(axis=(2, 3))


def _frame_loop(data: np.ndarray) -> np.ndarray:
    """What ``FrameSumUDF`` does, as a bare Python loop over the frames."""
    frames = data.reshape(-1, *data.shape[2:])
    out = np.empty(len(frames), dtype=np.float32)
    for i, frame in enumerate(frames):
        out[i] = frame.sum()
    return out.reshape(data.shape[:2])


WORKLOADS: list[Workload] = [
    Workload(
        name="sum",
        description="SumUDF (sum over the scan) vs arr.sum(axis=(0, 1)); memory-bound",
        unit=GIB_PER_S,
        shape=(64, 64, 256, 256),
        quick_shape=(16, 16, 64, 64),
        run_dataflow=_run_udf(SumUDF, "intensity"),
        run_reference=_sum_nav,
    ),
    Workload(
        name="sumsig",
        description="SumSigUDF (sum of each frame) vs arr.sum(axis=(2, 3)); memory-bound",
        unit=GIB_PER_S,
        shape=(64, 64, 256, 256),
        quick_shape=(16, 16, 64, 64),
        run_dataflow=_run_udf(SumSigUDF, "intensity"),
        run_reference=_sum_sig,
    ),
    Workload(
        name="process-frame",
        description="a process_frame UDF writing a nav buffer vs a Python loop over frames",
        unit=US_PER_FRAME,
        shape=(256, 256, 32, 32),
        quick_shape=(32, 32, 16, 16),
        run_dataflow=_run_udf(FrameSumUDF, "x"),
        run_reference=_frame_loop,
        expected=_sum_sig,
    ),
    Workload(
        name="tiny-sum",
        description="latency of one run_udf(SumUDF) on a tiny dataset vs arr.sum(axis=(0, 1))",
        unit=MS,
        shape=(16, 16, 32, 32),
        quick_shape=(16, 16, 32, 32),
        run_dataflow=_run_udf(SumUDF, "intensity"),
        run_reference=_sum_nav,
    ),
]


def get_workloads(names: list[str] | None = None) -> list[Workload]:
    """The registered workloads, all of them or those named, in registry order.

    Raises
    ------
    ValueError
        If a name is not registered.
    """
    if names is None:
        return list(WORKLOADS)
    known = [w.name for w in WORKLOADS]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown workloads {unknown!r}; known workloads: {', '.join(known)}")
    return [w for w in WORKLOADS if w.name in names]
