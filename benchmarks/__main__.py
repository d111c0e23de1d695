"""Command line: ``python -m benchmarks [--peer libertem] [--quick] [--json PATH] ...``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.data import DEFAULT_DATA_DIR, DataCache
from benchmarks.peer import DEFAULT_VENV, LiberTEMPeer, PeerError, ensure_venv
from benchmarks.runner import Settings, format_table, machine_info, run_benchmarks
from benchmarks.workloads import WORKLOADS, get_workloads

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]

#: executors the CLI accepts (``Context.make_with`` names)
EXECUTORS = ("inline", "threads", "processes", "dask", "dask-integration")
DEFAULT_EXECUTORS = ("inline", "threads", "dask")


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return n


def _parser() -> argparse.ArgumentParser:
    width = max(len(w.name) for w in WORKLOADS)
    workloads = "\n".join(f"  {w.name:{width}}  {w.description}" for w in WORKLOADS)
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=(
            "Time dataflow UDF runs against NumPy, dask.array, a memory-bandwidth roofline, "
            "a decode roofline for compressed copies and (with --peer libertem) LiberTEM "
            "0.16.0 in its own environment."
        ),
        epilog=f"workloads:\n{workloads}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="small shapes: the whole run takes about two minutes"
    )
    parser.add_argument(
        "--repeat",
        type=_positive,
        metavar="N",
        help="timed calls per series (default: 5; 3 with --quick)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write every number here")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        choices=[w.name for w in WORKLOADS],
        help="run only these workloads (and their base workloads)",
    )
    parser.add_argument(
        "--executors",
        nargs="+",
        metavar="NAME",
        choices=EXECUTORS,
        default=list(DEFAULT_EXECUTORS),
        help=f"dataflow executors, of {', '.join(EXECUTORS)} (default: inline threads dask); "
        "LiberTEM runs those of them it has",
    )
    parser.add_argument(
        "--cpus",
        type=_positive,
        default=2,
        metavar="N",
        help="threads of 'threads' and of dask.array, workers of 'dask', the rooflines' "
        "second thread count (default: 2)",
    )
    parser.add_argument(
        "--peer",
        nargs="+",
        choices=["libertem"],
        default=[],
        help="also run these peers in their own environments",
    )
    parser.add_argument(
        "--peer-python",
        type=Path,
        metavar="PATH",
        help="the Python of an environment with libertem==0.16.0 (instead of --peer-venv)",
    )
    parser.add_argument(
        "--peer-venv",
        type=Path,
        default=DEFAULT_VENV,
        metavar="PATH",
        help="LiberTEM's environment, made there if missing (default: .bench/libertem-venv)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        metavar="PATH",
        help="the data cache (default: .bench/data)",
    )
    parser.add_argument(
        "--big",
        action="store_true",
        help="add the memory workload (full mode: writes an 8 GiB zarr store once)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks, print the tables, write the JSON; the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 3 if args.quick else 5
    if args.json is not None and not args.json.parent.is_dir():
        parser.error(f"--json is {str(args.json)!r}; its folder does not exist")
    if args.peer_python is not None and "libertem" not in args.peer:
        parser.error("--peer-python is given without --peer libertem")

    start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - start:6.1f} s] {msg}", file=sys.stderr, flush=True)

    info = machine_info()
    log(
        f"dataflow {info['dataflow']}, numpy {info['numpy']}, dask {info['dask']}, "
        f"python {info['python']}, {info['usable_cpus']} usable CPUs; "
        f"{'quick' if args.quick else 'full'} run, {args.repeat} repetitions"
    )
    load = info["load_average"]
    if load is not None and load[0] >= 0.5:
        log(f"warning: load average {load[0]:.2f}: the figures include other work")

    peer = None
    if "libertem" in args.peer:
        try:
            python = args.peer_python or ensure_venv(args.peer_venv, log)
            peer = LiberTEMPeer(python, cpus=args.cpus, timeout=600 if args.quick else 4 * 3600)
            peer_info = peer.check(log)
        except PeerError as exc:
            parser.exit(2, f"python -m benchmarks: error: {exc}\n")
        log(f"LiberTEM {peer_info['libertem']} (numpy {peer_info['numpy']}) at {python}")

    settings = Settings(
        executors=args.executors,
        quick=args.quick,
        repeat=args.repeat,
        cpus=args.cpus,
        cache=DataCache(args.data_dir),
        libertem=peer,
        log=log,
    )
    try:
        results = run_benchmarks(get_workloads(args.only, big=args.big), settings)
    except PeerError as exc:
        parser.exit(2, f"python -m benchmarks: error: {exc}\n")
    print(format_table(results.records, results.series))
    if args.json is not None:
        info["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
        report = {
            "machine": info,
            "settings": {
                "quick": args.quick,
                "repeat": args.repeat,
                "cpus": args.cpus,
                "executors": list(args.executors),
                "peers": [
                    "numpy",
                    "dask",
                    "distributed",
                    "roofline",
                    "decode_roofline",
                    *args.peer,
                ],
                "data_dir": str(args.data_dir),
            },
            "peer": results.peer,
            "records": results.records,
            "series": results.series,
            "skipped": results.skipped,
        }
        args.json.write_text(
            json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
