"""Command line: ``python -m benchmarks [--quick] [--repeat N] [--json PATH] ...``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.runner import format_table, machine_info, run_benchmarks
from benchmarks.workloads import WORKLOADS, get_workloads

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]

#: executors the CLI accepts (``Context.make_with`` names)
EXECUTORS = ("inline", "threads", "processes", "dask", "dask-integration")


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return n


def _parser() -> argparse.ArgumentParser:
    workloads = "\n".join(f"  {w.name:14} {w.description}" for w in WORKLOADS)
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time dataflow UDF runs against the NumPy code computing the same result.",
        epilog=f"workloads:\n{workloads}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="small shapes: the whole run takes seconds"
    )
    parser.add_argument(
        "--repeat",
        type=_positive,
        default=5,
        metavar="N",
        help="timed calls per series (default: 5)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the records here")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        choices=[w.name for w in WORKLOADS],
        help="run only these workloads",
    )
    parser.add_argument(
        "--executors",
        nargs="+",
        metavar="NAME",
        choices=EXECUTORS,
        default=["inline", "threads"],
        help=f"dataflow executors, of {', '.join(EXECUTORS)} (default: inline threads)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks, print the table, write the JSON; the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.json is not None and not args.json.parent.is_dir():
        parser.error(f"--json is {str(args.json)!r}; its folder does not exist")
    info = machine_info()
    print(
        f"dataflow {info['dataflow']}, numpy {info['numpy']}, dask {info['dask']}, "
        f"python {info['python']}, {info['usable_cpus']} usable CPUs; "
        f"{'quick' if args.quick else 'full'} run, {args.repeat} repetitions",
        file=sys.stderr,
    )
    records = run_benchmarks(
        get_workloads(args.only),
        args.executors,
        quick=args.quick,
        repeat=args.repeat,
        log=lambda msg: print(msg, file=sys.stderr),
    )
    print(format_table(records))
    if args.json is not None:
        report = {
            "machine": info,
            "settings": {"quick": args.quick, "repeat": args.repeat},
            "records": records,
        }
        args.json.write_text(
            json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
