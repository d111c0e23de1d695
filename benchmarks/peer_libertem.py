"""The LiberTEM side of the benchmarks, run by the Python of LiberTEM's own environment.

The benchmark runner (``python -m benchmarks --peer libertem``) starts this file as a
script with the peer's interpreter; it never runs in the project's environment::

    PEER_PYTHON peer_libertem.py --version
    PEER_PYTHON peer_libertem.py --jobs jobs.json
    PEER_PYTHON peer_libertem.py --workload sum --udf sum --source memory \
        --data sum.npy --shape 16 16 64 64 --dtype float32 \
        --executors inline threads --repeat 5 --result-dir out/

Each job names a workload, the UDF to run, where the data is (the ``.npy`` file of
the in-memory runs, or the ``.npy``, raw file, zarr store or HDF5 file read from disk), its
shape and dtype, the executors and the number of timed calls. Per executor, the job
gets one untimed warm-up, whose result is saved to ``result_dir`` for the runner to
check against NumPy, and then ``repeat`` timed calls, each turning its result into a
NumPy array. The script prints one line, ``BENCHMARK-PEER-RESULT {json}``, on stdout.

At module level this file imports only the standard library and NumPy, so the
benchmark runner can import it for :func:`mask_stack` and :func:`parse_args`;
libertem (and dask and zarr, for zarr stores) are imported where they are used. HDF5
files are read with LiberTEM's own ``hdf5`` dataset, the array at :data:`HDF5_DATASET`.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "EXECUTORS",
    "HDF5_DATASET",
    "MARKER",
    "SOURCES",
    "UDFS",
    "job_from_args",
    "jobs_from_file",
    "main",
    "mask_stack",
    "parse_args",
]

#: the prefix of the one line of stdout that holds the results
MARKER = "BENCHMARK-PEER-RESULT "
#: LiberTEM executors this script runs (``Context.make_with`` names)
EXECUTORS = ("inline", "threads", "dask")
#: UDFs by the name a job gives
UDFS = ("sum", "sumsig", "stddev", "masks", "frame-sum", "tile-sums")
#: where a job's data comes from: ``memory`` loads the ``.npy`` file into RAM first
SOURCES = ("memory", "npy", "raw", "zarr", "hdf5")
#: the path of the array in the benchmarks' HDF5 files (as ``benchmarks.decode``)
HDF5_DATASET = "/data"

_JOB_KEYS = {
    "workload",
    "udf",
    "source",
    "data",
    "shape",
    "dtype",
    "sig_dims",
    "executors",
    "repeat",
    "roi",
}


def mask_stack(sig_shape: tuple[int, ...]) -> np.ndarray:
    """Four dense float32 masks of ``sig_shape`` (2D): a disk, a ring, and two ramps.

    The same function makes the masks on both sides of the comparison.
    """
    ny, nx = sig_shape
    y, x = np.mgrid[0:ny, 0:nx].astype(np.float32)
    cy, cx = (ny - 1) / 2, (nx - 1) / 2
    r = np.hypot(y - cy, x - cx) / (min(ny, nx) / 2)
    return np.stack(
        [
            (r < 0.25).astype(np.float32),
            ((r >= 0.3) & (r < 0.45)).astype(np.float32),
            x / nx,
            y / ny,
        ]
    )


# arguments --------------------------------------------------------------------------------


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return n


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="peer_libertem.py",
        description="Time LiberTEM UDF runs for the dataflow benchmarks; print JSON.",
    )
    parser.add_argument("--version", action="store_true", help="print the versions only")
    parser.add_argument("--jobs", type=Path, metavar="PATH", help="a JSON file of jobs")
    parser.add_argument("--workload", help="the benchmark workload's name (echoed back)")
    parser.add_argument("--udf", choices=UDFS, help="the UDF to run")
    parser.add_argument("--source", choices=SOURCES, default="memory", help="how to load data")
    parser.add_argument(
        "--data", type=Path, metavar="PATH", help="the .npy, raw file, zarr store or HDF5 file"
    )
    parser.add_argument("--shape", type=_positive, nargs="+", metavar="N", help="data shape")
    parser.add_argument("--dtype", default="float32", help="data dtype (default: float32)")
    parser.add_argument("--sig-dims", type=_positive, default=2, metavar="N")
    parser.add_argument("--roi", type=Path, metavar="PATH", help="a .npy of a boolean nav mask")
    parser.add_argument(
        "--executors", nargs="+", choices=EXECUTORS, default=list(EXECUTORS), metavar="NAME"
    )
    parser.add_argument("--repeat", type=_positive, default=5, metavar="N")
    parser.add_argument("--cpus", type=_positive, default=2, metavar="N")
    parser.add_argument("--result-dir", type=Path, metavar="PATH", help="where results go")
    return parser


def _check_job(job: dict[str, Any], where: str) -> dict[str, Any]:
    """The job with defaults filled in; ValueError naming the first bad entry."""
    missing = {"workload", "udf", "data", "shape"} - set(job)
    if missing:
        raise ValueError(f"{where} lacks {sorted(missing)!r}; it has {sorted(job)!r}")
    unknown = set(job) - _JOB_KEYS
    if unknown:
        raise ValueError(
            f"{where} has unknown keys {sorted(unknown)!r}; known: {sorted(_JOB_KEYS)}"
        )
    job = {
        "source": "memory",
        "dtype": "float32",
        "sig_dims": 2,
        "executors": list(EXECUTORS),
        "repeat": 5,
        "roi": None,
        **job,
    }
    if job["udf"] not in UDFS:
        raise ValueError(f"{where}: udf is {job['udf']!r}; expected one of {', '.join(UDFS)}")
    if job["source"] not in SOURCES:
        raise ValueError(
            f"{where}: source is {job['source']!r}; expected one of {', '.join(SOURCES)}"
        )
    bad = [e for e in job["executors"] if e not in EXECUTORS]
    if bad or not job["executors"]:
        raise ValueError(
            f"{where}: executors is {job['executors']!r}; expected names of {', '.join(EXECUTORS)}"
        )
    shape = job["shape"]
    if not isinstance(shape, list) or not all(isinstance(n, int) and n > 0 for n in shape):
        raise ValueError(f"{where}: shape is {shape!r}; expected a list of positive integers")
    if not 0 < job["sig_dims"] < len(shape):
        raise ValueError(f"{where}: sig_dims is {job['sig_dims']!r} for shape {shape!r}")
    if not isinstance(job["repeat"], int) or job["repeat"] < 1:
        raise ValueError(f"{where}: repeat is {job['repeat']!r}; expected a positive integer")
    np.dtype(job["dtype"])  # raises TypeError for a bad dtype
    return job


def job_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The one job that command-line arguments describe."""
    job = {
        "workload": args.workload,
        "udf": args.udf,
        "source": args.source,
        "data": None if args.data is None else str(args.data),
        "shape": args.shape,
        "dtype": args.dtype,
        "sig_dims": args.sig_dims,
        "executors": args.executors,
        "repeat": args.repeat,
        "roi": None if args.roi is None else str(args.roi),
    }
    return _check_job({k: v for k, v in job.items() if v is not None}, "the arguments")


def jobs_from_file(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The jobs of a ``--jobs`` file, and its settings (``cpus``, ``result_dir``)."""
    spec = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(spec, dict) or not isinstance(spec.get("jobs"), list):
        raise TypeError(f"{str(path)!r} holds no {{'jobs': [...]}} object")
    jobs = [_check_job(dict(j), f"{str(path)!r}, job {i}") for i, j in enumerate(spec["jobs"])]
    settings = {k: spec[k] for k in ("cpus", "result_dir") if k in spec}
    return jobs, settings


def parse_args(argv: list[str] | None = None) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """``("version", [], {})`` or ``("run", jobs, settings)``; exits on bad arguments."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        return "version", [], {}
    settings: dict[str, Any] = {"cpus": args.cpus}
    if args.result_dir is not None:
        settings["result_dir"] = str(args.result_dir)
    try:
        if args.jobs is not None:
            if args.workload is not None or args.udf is not None:
                parser.error("pass either --jobs or one job's --workload, --udf, ...; not both")
            jobs, from_file = jobs_from_file(args.jobs)
            settings.update(from_file)
        else:
            jobs = [job_from_args(args)]
    except (ValueError, TypeError, OSError) as exc:
        parser.error(str(exc))
    if "result_dir" not in settings:
        parser.error("--result-dir is missing (or result_dir in the --jobs file)")
    return "run", jobs, settings


# running ----------------------------------------------------------------------------------

_START = time.perf_counter()


def _log(msg: str) -> None:
    print(f"[peer {time.perf_counter() - _START:6.1f} s] {msg}", file=sys.stderr, flush=True)


def _versions() -> dict[str, Any]:
    import libertem

    try:
        import zarr

        zarr_version = zarr.__version__
    except ImportError:
        zarr_version = None
    return {
        "libertem": libertem.__version__,
        "numpy": np.__version__,
        "zarr": zarr_version,
        "python": platform.python_version(),
        "executable": sys.executable,
    }


def _user_udfs() -> dict[str, type]:
    """The user UDFs of the benchmarks, written against LiberTEM's UDF class."""
    from libertem.udf import UDF

    class FrameSumUDF(UDF):
        def get_result_buffers(self):
            return {"x": self.buffer(kind="nav", dtype="float32")}

        def process_frame(self, frame):
            self.results.x[:] = frame.sum()

    class TileSumsUDF(UDF):
        def get_result_buffers(self):
            return {
                "sigsum": self.buffer(kind="sig", dtype="float32"),
                "navsum": self.buffer(kind="nav", dtype="float32"),
            }

        def process_tile(self, tile):
            self.results.sigsum[:] += tile.sum(axis=0)
            self.results.navsum[:] += tile.reshape(tile.shape[0], -1).sum(axis=1)

        def merge(self, dest, src):
            dest.sigsum[:] += src.sigsum
            dest.navsum[:] = src.navsum

    return {"frame-sum": FrameSumUDF, "tile-sums": TileSumsUDF}


def _make_udf(job: dict[str, Any]) -> tuple[Any, Any]:
    """The UDF of a job, and a function from its run's results to one NumPy array."""
    name = job["udf"]
    if name == "sum":
        from libertem.udf.sum import SumUDF

        return SumUDF(), lambda res: res["intensity"].data
    if name == "sumsig":
        from libertem.udf.sumsigudf import SumSigUDF

        return SumSigUDF(), lambda res: res["intensity"].data
    if name == "stddev":
        from libertem.udf.stddev import StdDevUDF

        return StdDevUDF(), lambda res: res["std"].data
    if name == "masks":
        from libertem.udf.masks import ApplyMasksUDF

        sig_shape = tuple(job["shape"][-job["sig_dims"] :])
        udf = ApplyMasksUDF(
            mask_factories=lambda: mask_stack(sig_shape), use_sparse=False, mask_count=4
        )
        return udf, lambda res: res["intensity"].data
    udf_class = _user_udfs()[name]
    if name == "frame-sum":
        return udf_class(), lambda res: res["x"].data
    return udf_class(), lambda res: np.concatenate(
        [res["sigsum"].data.ravel(), res["navsum"].data.ravel()]
    )


class _Data:
    """The in-memory arrays of ``source="memory"`` jobs: the last one loaded is kept."""

    def __init__(self) -> None:
        self.path: str | None = None
        self.array: np.ndarray | None = None

    def get(self, path: str) -> np.ndarray:
        if path != self.path:
            self.path, self.array = None, None
            gc.collect()
            self.array, self.path = np.load(path), path  # mmap_mode=None: read into RAM
        assert self.array is not None
        return self.array


def _load(ctx: Any, job: dict[str, Any], data: _Data) -> Any:
    shape, sig_dims = tuple(job["shape"]), job["sig_dims"]
    nav_shape, sig_shape = shape[:-sig_dims], shape[-sig_dims:]
    source = job["source"]
    if source == "memory":
        arr = data.get(job["data"])
        if arr.shape != shape or arr.dtype != np.dtype(job["dtype"]):
            raise ValueError(
                f"{job['data']!r} holds {arr.dtype} data of shape {arr.shape}; the job "
                f"says {job['dtype']} of shape {shape}"
            )
        return ctx.load("memory", data=arr, sig_dims=sig_dims)
    if source == "npy":
        return ctx.load("npy", path=job["data"], sig_dims=sig_dims)
    if source == "raw":
        return ctx.load(
            "raw", path=job["data"], dtype=job["dtype"], nav_shape=nav_shape, sig_shape=sig_shape
        )
    if source == "hdf5":
        return ctx.load("hdf5", path=job["data"], ds_path=HDF5_DATASET, sig_dims=sig_dims)
    try:
        import dask.array as da
        import zarr  # noqa: F401  (dask.array.from_zarr needs it)
    except ImportError as exc:
        raise ImportError(
            f"source 'zarr' needs zarr in the peer's environment ({exc}); install it there: "
            f"{sys.executable} -m pip install zarr"
        ) from None
    return ctx.load("dask", da.from_zarr(job["data"]), sig_dims=sig_dims)


def _make_context(name: str, cpus: int) -> Any:
    from libertem.api import Context

    if name == "inline":
        return Context.make_with("inline")
    return Context.make_with(name, cpus=cpus)


def _run_one(ctx: Any, job: dict[str, Any], executor: str, data: _Data, out: Path) -> dict:
    dataset = _load(ctx, job, data)
    roi = None if job["roi"] is None else np.load(job["roi"]).astype(bool)
    udf, result_of = _make_udf(job)

    def run() -> np.ndarray:
        return np.asarray(result_of(ctx.run_udf(dataset=dataset, udf=udf, roi=roi)))

    np.save(out, run())  # the untimed warm-up; the runner checks it
    gc.collect()
    times = []
    for _ in range(job["repeat"]):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return {
        "times_s": times,
        "result": str(out),
        "partitions": dataset.get_num_partitions(),
        "error": None,
    }


def run_jobs(jobs: list[dict[str, Any]], settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Run every job on each of its executors; a record per job and executor.

    A job that raises gets a record with ``error`` (the exception) and no times;
    the other jobs still run. One Context per executor serves all jobs, except the
    dask executor's: its local cluster is started for each job and closed after it.
    """
    result_dir = Path(settings["result_dir"])
    result_dir.mkdir(parents=True, exist_ok=True)
    contexts: dict[str, Any] = {}
    data = _Data()
    records = []
    try:
        for i, job in enumerate(jobs):
            for executor in job["executors"]:
                record = {"workload": job["workload"], "executor": executor}
                try:
                    if executor not in contexts:
                        contexts[executor] = _make_context(executor, int(settings.get("cpus", 2)))
                        _log(f"LiberTEM's {executor!r} executor is ready")
                    out = result_dir / f"{i:03d}-{job['workload']}-{executor}.npy"
                    record.update(_run_one(contexts[executor], job, executor, data, out))
                    median = statistics.median(record["times_s"])
                    _log(f"{job['workload']}: LiberTEM on {executor!r}, median {median:.4g} s")
                except Exception as exc:  # noqa: BLE001  (one failing job must not stop the rest)
                    traceback.print_exc(file=sys.stderr)
                    record.update(
                        times_s=[],
                        result=None,
                        partitions=None,
                        error=f"{type(exc).__name__}: {exc}",
                    )
                records.append(record)
                if executor == "dask" and executor in contexts:
                    # its idle cluster must not share the cores with the next series
                    contexts.pop(executor).close()
    finally:
        for ctx in contexts.values():
            ctx.close()
    return records


def main(argv: list[str] | None = None) -> int:
    """Run the jobs and print the one result line; the exit status."""
    mode, jobs, settings = parse_args(argv)
    report: dict[str, Any] = _versions()
    if mode == "run":
        report["cpus"] = settings.get("cpus", 2)
        report["results"] = run_jobs(jobs, settings)
    sys.stdout.write(MARKER + json.dumps(report) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    # run as a script, this file's folder is sys.path[0]: drop it, so that the benchmark
    # modules beside this file cannot shadow a package that LiberTEM imports
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or os.curdir) == here:
        del sys.path[0]
    sys.exit(main())
