"""Run each workload on each executor: warm up, check, time, and report.

Every series is one untimed warm-up, whose result is checked against the NumPy
answer, then ``repeat`` timed calls. The NumPy reference runs once per workload;
dataflow runs once per workload and executor, each in its own ``Context``.
"""

from __future__ import annotations

import functools
import gc
import os
import platform
import statistics
import sys
import time
from typing import TYPE_CHECKING, Any

import dask
import numpy as np

import dataflow
from dataflow import Context

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from benchmarks.workloads import Workload

__all__ = ["BenchmarkCheckError", "check", "format_table", "machine_info", "run_benchmarks"]


class BenchmarkCheckError(AssertionError):
    """A benchmarked run computed a wrong result."""


def check(got: Any, expected: Any, *, what: str, rtol: float = 1e-5) -> None:
    """Raise unless ``got`` equals ``expected`` within ``rtol`` (``np.allclose``).

    Parameters
    ----------
    got, expected
        The result of a run and the NumPy answer.
    what
        Names the run in the message, e.g. ``"sum on 'threads'"``.

    Raises
    ------
    BenchmarkCheckError
        If the shapes differ or a value is off by more than ``rtol``.
    """
    got, expected = np.asarray(got), np.asarray(expected)
    if got.shape != expected.shape:
        raise BenchmarkCheckError(
            f"{what}: the result has shape {got.shape}; the NumPy reference has shape "
            f"{expected.shape}"
        )
    if not np.allclose(got, expected, rtol=rtol):
        diff = np.abs(got.astype(np.float64) - expected)
        rel = diff / np.maximum(np.abs(expected), np.finfo(np.float64).tiny)
        worst = np.unravel_index(int(np.argmax(rel)), rel.shape)
        raise BenchmarkCheckError(
            f"{what}: the result differs from the NumPy reference beyond rtol={rtol!r}: "
            f"{int(np.count_nonzero(~np.isclose(got, expected, rtol=rtol)))} of {got.size} "
            f"values, worst at index {tuple(int(i) for i in worst)}: got {got[worst]!r}, "
            f"expected {expected[worst]!r} (relative error {rel[worst]:.3g})"
        )


def _time(fn: Callable[[], Any], repeat: int) -> list[float]:
    gc.collect()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _summary(prefix: str, times: list[float], w: Workload, data: np.ndarray) -> dict[str, Any]:
    median_s, min_s = statistics.median(times), min(times)
    convert = w.unit.convert
    return {
        f"{prefix}median": convert(median_s, data, w.sig_dims),
        # the value of the fastest call: the highest throughput, or the shortest time
        f"{prefix}best": convert(min_s, data, w.sig_dims),
        f"{prefix}median_s": median_s,
        f"{prefix}min_s": min_s,
        f"{prefix}times_s": times,
    }


def run_workload(
    w: Workload,
    executors: Sequence[str],
    *,
    quick: bool = False,
    repeat: int = 5,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Benchmark one workload on each executor against its NumPy reference.

    Returns
    -------
    list of dict
        One record per executor; see the README for the fields.

    Raises
    ------
    BenchmarkCheckError
        If the warm-up of the reference or of a dataflow run computes a wrong result.
    """
    data = w.setup(quick)
    reference = functools.partial(w.run_reference, data)
    got = reference()
    expected = got if w.expected is None else w.expected(data)
    check(got, expected, what=f"{w.name}: the NumPy reference", rtol=w.rtol)
    numpy_times = _time(reference, repeat)
    log(f"{w.name}: NumPy reference, median {statistics.median(numpy_times):.4g} s")
    records = []
    for name in executors:
        with Context.make_with(name) as ctx:
            dataset = w.load(ctx, data, w.sig_dims)
            run = functools.partial(w.run_dataflow, ctx, dataset)
            check(run(), expected, what=f"{w.name} on executor {name!r}", rtol=w.rtol)
            times = _time(run, repeat)
        log(f"{w.name}: dataflow on {name!r}, median {statistics.median(times):.4g} s")
        record = {
            "workload": w.name,
            "executor": name,
            "unit": w.unit.name,
            "higher_is_better": w.unit.higher_is_better,
            "shape": list(data.shape),
            "dtype": str(data.dtype),
            "nbytes": data.nbytes,
            "partitions": dataset.get_num_partitions(),
            "repeat": repeat,
            **_summary("", times, w, data),
            **_summary("numpy_", numpy_times, w, data),
        }
        record["ratio"] = record["median"] / record["numpy_median"]
        records.append(record)
    return records


def run_benchmarks(
    workloads: Sequence[Workload],
    executors: Sequence[str],
    *,
    quick: bool = False,
    repeat: int = 5,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run :func:`run_workload` for each workload; all records, in order."""
    return [
        record
        for w in workloads
        for record in run_workload(w, executors, quick=quick, repeat=repeat, log=log)
    ]


def machine_info() -> dict[str, Any]:
    """Where the numbers were measured: CPUs, platform and versions."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "dask": dask.__version__,
        "dataflow": dataflow.__version__,
    }


_COLUMNS = ("workload", "executor", "median", "best", "unit", "numpy median", "ratio", "better if")


def format_table(records: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of the records: one row per workload and executor."""
    rows = [
        (
            r["workload"],
            r["executor"],
            f"{r['median']:.4g}",
            f"{r['best']:.4g}",
            r["unit"],
            f"{r['numpy_median']:.4g}",
            f"{r['ratio']:.3f}",
            "higher" if r["higher_is_better"] else "lower",
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in [_COLUMNS, *rows]) for i in range(len(_COLUMNS))]
    numeric = {2, 3, 5, 6}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(wd) if i in numeric else c.ljust(wd)
            for i, (c, wd) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * wd for wd in widths)
    return "\n".join([line(_COLUMNS), rule, *(line(row) for row in rows)])
