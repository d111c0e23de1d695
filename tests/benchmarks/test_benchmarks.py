"""The benchmark suite (``python -m benchmarks``) in ``--quick`` mode: it runs, checks and reports."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest

# `benchmarks` lives beside `dataflow` in the repository but is not installed: put the
# repository root on sys.path before importing it
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from benchmarks.__main__ import main
from benchmarks.runner import BenchmarkCheckError, check, run_workload
from benchmarks.workloads import get_workloads

# one workload per unit: a throughput, a per-frame time and a latency
WORKLOADS = ["sum", "process-frame", "tiny-sum"]


def test_quick_run_writes_a_record_per_workload_and_executor(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["--quick", "--repeat", "1", "--executors", "inline", "--json", str(out)]
    assert main([*argv, "--only", *WORKLOADS]) == 0

    report = json.loads(out.read_text(encoding="utf-8"))
    assert {"cpu_count", "python", "numpy", "dask"} <= set(report["machine"])
    records = report["records"]
    assert [(r["workload"], r["executor"]) for r in records] == [(w, "inline") for w in WORKLOADS]
    for r in records:
        numbers = ["median", "best", "median_s", "min_s", "numpy_median", "numpy_best", "ratio"]
        assert all(r[k] > 0 for k in numbers), r
        assert len(r["times_s"]) == len(r["numpy_times_s"]) == 1
    assert {r["unit"] for r in records} == {"GiB/s", "µs/frame", "ms"}
    table = capsys.readouterr().out
    assert all(w in table for w in WORKLOADS)


def test_check_raises_on_a_wrong_reference():
    data = np.random.default_rng(1).random((4, 4, 8, 8), dtype=np.float32)
    got = data.sum(axis=(0, 1))
    check(got, data.sum(axis=(0, 1), dtype=np.float64), what="sum")  # within rtol
    with pytest.raises(BenchmarkCheckError, match=r"sum: the result differs .* rtol=1e-05"):
        check(got, got * 1.001, what="sum")
    with pytest.raises(BenchmarkCheckError, match=r"has shape \(8, 8\); .* shape \(4, 4\)"):
        check(got, data.sum(axis=(2, 3)), what="sum")


def test_a_wrong_reference_stops_the_workload():
    (w,) = get_workloads(["tiny-sum"])
    wrong = dataclasses.replace(w, run_reference=lambda data: data.sum(axis=(0, 1)) + 1)
    with pytest.raises(BenchmarkCheckError, match="tiny-sum on executor 'inline'"):
        run_workload(wrong, ["inline"], quick=True, repeat=1, log=lambda msg: None)


def test_unknown_workload_is_rejected():
    with pytest.raises(ValueError, match=r"unknown workloads.*known workloads: sum"):
        get_workloads(["nope"])
