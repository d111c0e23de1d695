"""The memory workload: peak resident memory of a SumUDF run over an 8 GiB zarr store.

A run over a file must not hold the dataset in memory: its peak resident set size
(RSS) should be the same for 1 GiB and for 8 GiB of data. Each measurement runs in a
fresh subprocess (``python -m benchmarks.memory --store ... --executor ...``) that
opens a Context, loads the store with the default partition size, runs ``SumUDF``
once, and reports its own ``VmHWM`` (the kernel's high-water mark of its RSS) and,
on the ``dask`` executor, that of every worker.

The 8 GiB store (zarr 3, default compressor, one scan row per chunk, as the
``sum-zarr-zstd`` store) is written once into the data cache, a scan row at a time,
after checking for free disk space. It runs only in full mode, and only when asked
for (``--only memory`` or ``--big``).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmarks.data import ROOT, SEED, SOURCES, zarr_chunks

if TYPE_CHECKING:
    from benchmarks.runner import Settings
    from benchmarks.workloads import Workload

__all__ = ["BIG_SHAPE", "SMALL_SHAPE", "main", "peak_rss_kib", "run_memory", "write_big_store"]

#: float32: 8 GiB
BIG_SHAPE = (512, 64, 256, 256)
#: float32: 1 GiB, the store of ``sum-zarr-zstd``
SMALL_SHAPE = (64, 64, 256, 256)
#: executors the probe measures (processes would hide the work in children)
MEASURED = ("inline", "threads", "dask", "dask-integration")
MARKER = "BENCHMARK-MEMORY-RESULT "


def _status_kib(name: str) -> int | None:
    """A ``/proc/self/status`` field in KiB (``VmRSS``, ``VmHWM``); None off Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_kib() -> int:
    """This process's peak resident set size in KiB."""
    peak = _status_kib("VmHWM")
    if peak is not None:
        return peak
    import resource

    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss // 1024 if sys.platform == "darwin" else maxrss  # bytes on macOS


def _rss_kib() -> int:
    return _status_kib("VmRSS") or peak_rss_kib()


def write_big_store(path: Path, shape: tuple[int, ...], log: Any = print) -> Path:
    """Write the store a scan row at a time (seeded per row); its exact sum beside it.

    The sum (float64) goes to ``<path>.expected.npy``; the store is renamed into place
    last, so a store that exists is complete.
    """
    import zarr

    expected_path = path.with_name(path.name + ".expected.npy")
    tmp = path.with_name(f".{path.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    log(f"memory: writing the {np.prod(shape) * 4 / 2**30:.0f} GiB store {str(path)!r} (once)")
    z = zarr.create_array(
        store=str(tmp),
        shape=shape,
        chunks=zarr_chunks(shape, 2),
        dtype="float32",
        compressors="auto",
    )
    expected = np.zeros(shape[2:], dtype=np.float64)
    for i in range(shape[0]):
        block = np.random.default_rng([SEED, i]).random(shape[1:], dtype=np.float32)
        expected += block.sum(axis=0, dtype=np.float64)
        z[i] = block
    with open(expected_path, "wb") as f:
        np.save(f, expected)
    tmp.rename(path)
    return path


def _probe(settings: Settings, store: Path, executor: str, out: Path) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.memory",
        "--store",
        str(store),
        "--executor",
        executor,
        "--cpus",
        str(settings.cpus),
        "--result",
        str(out),
    ]
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(MARKER)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"the memory probe failed (exit status {done.returncode}); command: {' '.join(cmd)}"
        )
    return json.loads(lines[-1][len(MARKER) :])


def run_memory(settings: Settings, w: Workload) -> list[dict[str, Any]]:
    """Measure the peak RSS on the 1 GiB and the 8 GiB store; a record per executor."""
    from benchmarks.runner import check

    log, cache = settings.log, settings.cache
    if settings.quick:
        settings.skip(w.name, "full mode only: it writes an 8 GiB store")
        return []
    source = SOURCES["zarr-zstd"]
    big = cache.root / f"{cache.stem(BIG_SHAPE, 'float32')}{source.suffix}"
    if not big.exists():
        cache.root.mkdir(parents=True, exist_ok=True)
        need = int(np.prod(BIG_SHAPE)) * 4 + 2**30  # zstd barely shrinks random floats
        free = shutil.disk_usage(cache.root).free
        if free < need:
            settings.skip(
                w.name,
                f"{free / 2**30:.1f} GiB free in {str(cache.root)!r}; the 8 GiB store needs "
                f"{need / 2**30:.1f} GiB",
            )
            return []
        write_big_store(big, BIG_SHAPE, log)
    small = cache.path(source, SMALL_SHAPE, "float32", 2)
    expected = {
        small: np.load(cache.npy(SMALL_SHAPE, "float32"), mmap_mode="r").sum(
            axis=(0, 1), dtype=np.float64
        ),
        big: np.load(big.with_name(big.name + ".expected.npy")),
    }
    records = []
    for executor in settings.executors:
        if executor not in MEASURED:
            settings.skip(
                w.name, f"executor {executor!r} is not measured (its work is in children)"
            )
            continue
        probes = {}
        for store in (small, big):
            out = cache.root / f"memory-result-{executor}.npy"
            probe = _probe(settings, store, executor, out)
            check(np.load(out), expected[store], what=f"memory on executor {executor!r}")
            out.unlink()
            probes[store] = probe
        p_small, p_big = probes[small], probes[big]
        log(
            f"memory: dataflow on {executor!r}, peak RSS {p_small['total_peak_mib']:.0f} MiB "
            f"(1 GiB), {p_big['total_peak_mib']:.0f} MiB (8 GiB)"
        )
        records.append(
            {
                "workload": w.name,
                "executor": executor,
                "unit": w.unit.name,
                "higher_is_better": False,
                "shape": list(BIG_SHAPE),
                "dtype": "float32",
                "nbytes": int(np.prod(BIG_SHAPE)) * 4,
                "source": source.name,
                "partitions": p_big["partitions"],
                "repeat": 1,
                "median": p_big["total_peak_mib"],
                "best": p_big["total_peak_mib"],
                "peak_rss_mib": p_big["total_peak_mib"],
                "peak_rss_1gib_mib": p_small["total_peak_mib"],
                "growth": p_big["total_peak_mib"] / p_small["total_peak_mib"],
                "probe_8gib": p_big,
                "probe_1gib": p_small,
                "base": "memory on the 1 GiB store",
                "vs_base": p_big["total_peak_mib"] / p_small["total_peak_mib"],
            }
        )
    return records


# the probe, run as ``python -m benchmarks.memory`` --------------------------------------


def _worker_kib(field: str) -> int | None:
    return _status_kib(field)


def main(argv: list[str] | None = None) -> int:
    """Run SumUDF once over ``--store`` and print the peak RSS; the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory")
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--executor", default="inline")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)

    from dataflow import Context
    from dataflow.udf.sum import SumUDF

    cpus = None if args.executor in ("inline", "dask-integration") else args.cpus
    with Context.make_with(args.executor, cpus=cpus) as ctx:
        dataset = ctx.load("zarr", path=args.store)
        client = getattr(ctx.executor, "client", None)
        workers_before = client.run(_worker_kib, "VmRSS") if client is not None else {}
        baseline = _rss_kib()
        start = time.perf_counter()
        result = np.asarray(ctx.run_udf(dataset=dataset, udf=SumUDF())["intensity"].data)
        seconds = time.perf_counter() - start
        peak = peak_rss_kib()
        workers_peak = client.run(_worker_kib, "VmHWM") if client is not None else {}
    np.save(args.result, result)
    report = {
        "baseline_mib": baseline / 1024,
        "peak_mib": peak / 1024,
        "workers_baseline_mib": {k: v / 1024 for k, v in workers_before.items() if v},
        "workers_peak_mib": {k: v / 1024 for k, v in workers_peak.items() if v},
        "total_peak_mib": (peak + sum(v for v in workers_peak.values() if v)) / 1024,
        "seconds": seconds,
        "gib_per_s": math.prod(tuple(dataset.shape)) * dataset.dtype.itemsize / seconds / 2**30,
        "partitions": dataset.get_num_partitions(),
    }
    sys.stdout.write(MARKER + json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
