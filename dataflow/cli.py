"""The ``dataflow`` command: sum a dataset two ways, summarise, save results and a figure.

Run ``dataflow`` (or ``python -m dataflow``) without a path to process the built-in
example scan, or give a ``.npy`` file or a zarr store. One pass over the data runs
:class:`~dataflow.udf.sum.SumUDF` (the summed diffraction pattern) and
:class:`~dataflow.udf.sumsigudf.SumSigUDF` (the intensity of every frame). The command
prints a summary and writes ``results.zarr`` and ``summary.png`` to ``--out``.

Examples
--------
.. code-block:: console

    $ dataflow --executor inline --out /tmp/out
    $ dataflow scan.npy --sig-dims 2
    $ python -m dataflow scan.zarr --ds-path intensity --executor processes
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    import xarray as xr

    from dataflow.api import Context
    from dataflow.sources import DataSet

__all__ = ["main"]

PROG = "dataflow"
EXECUTORS = ("inline", "threads", "processes", "dask")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Sum a 4D-STEM dataset over the scan (the summed pattern) and over the detector "
            "(one value per frame) in one pass, print a summary and save the results as "
            "zarr and PNG. Without a path, the built-in example scan is generated."
        ),
    )
    parser.add_argument(
        "path",
        nargs="?",
        default=None,
        help="a .npy file or a zarr store (directory); default: the built-in example",
    )
    parser.add_argument(
        "--ds-path",
        default=None,
        help="the array inside a zarr group, such as 'intensity'",
    )
    parser.add_argument(
        "--sig-dims",
        type=int,
        default=2,
        help="number of trailing signal (detector) dimensions (default: 2)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("dataflow-output"),
        help="output directory (default: ./dataflow-output)",
    )
    parser.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="threads",
        help="where the work runs (default: threads)",
    )
    return parser


def _filetype(path: Path) -> str:
    """``"npy"`` or ``"zarr"`` for ``path``; FileNotFoundError or ValueError otherwise."""
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {str(path)!r}")
    if path.is_dir():
        return "zarr"
    if path.suffix.lower() == ".npy":
        return "npy"
    raise ValueError(
        f"cannot read {str(path)!r}; expected a .npy file or a zarr store (a directory)"
    )


def _check_args(args: argparse.Namespace) -> str | None:
    """The filetype of ``args.path`` (None for the example); raises for bad arguments.

    Runs before any executor is started, so a typo costs nothing.
    """
    if args.sig_dims < 1:
        raise ValueError(f"--sig-dims is {args.sig_dims}; expected an integer >= 1")
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out is {str(args.out)!r}, a file; expected a directory")
    if args.path is None:
        if args.ds_path is not None:
            raise ValueError(
                f"--ds-path is {args.ds_path!r}; it names an array in a zarr store, and no "
                "path was given"
            )
        return None
    path = Path(args.path)
    filetype = _filetype(path)
    if filetype == "npy" and args.ds_path is not None:
        raise ValueError(
            f"--ds-path is {args.ds_path!r}; it applies to zarr stores, and {str(path)!r} "
            "is a .npy file"
        )
    return filetype


def _load(ctx: Context, args: argparse.Namespace, filetype: str | None) -> tuple[DataSet, str]:
    """The dataset the arguments name, and a description of its source."""
    if filetype is None:
        from dataflow.example import make_example_data

        ds = ctx.load("memory", data=make_example_data(), sig_dims=args.sig_dims)
        return ds, "built-in example scan (dataflow.example.make_example_data, seed 0)"
    path = Path(args.path)
    if filetype == "npy":
        return ctx.load("npy", path=path, sig_dims=args.sig_dims), f"{path} (npy)"
    ds = ctx.load("zarr", path=path, ds_path=args.ds_path, sig_dims=args.sig_dims)
    inside = f", array {args.ds_path!r}" if args.ds_path else ""
    return ds, f"{path} (zarr{inside})"


def _results_dataset(summed: xr.Dataset, per_frame: xr.Dataset) -> xr.Dataset:
    """One Dataset: ``summed_pattern`` (signal dims) and ``frame_sum`` (navigation dims)."""
    import xarray as xr

    pattern = summed["intensity"].rename("summed_pattern")
    pattern.attrs["description"] = "sum of all frames (SumUDF)"
    frame_sum = per_frame["intensity"].rename("frame_sum")
    frame_sum.attrs["description"] = "sum of each frame (SumSigUDF)"
    return xr.Dataset(
        {"summed_pattern": pattern, "frame_sum": frame_sum},
        attrs={"created_by": "dataflow (python -m dataflow)"},
    )


def _write_zarr(results: xr.Dataset, target: Path) -> None:
    with warnings.catch_warnings():
        # zarr-python 3 warns that consolidated metadata is not in the format 3 spec;
        # xarray reads it fine, and consolidated stores open faster.
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        results.to_zarr(target, mode="w")


def _show(fig: Any, ax: Any, arr: xr.DataArray, title: str) -> None:
    """``arr`` as an image with a colorbar (a line plot if it is 1D)."""
    values = np.asarray(arr.values)
    if values.ndim == 1:
        ax.plot(values)
        ax.set_xlabel(arr.dims[0])
        ax.set_title(title)
        return
    if values.ndim > 2:  # fold leading axes into rows
        values = values.reshape((-1, values.shape[-1]))
        title = f"{title} ({' x '.join(str(d) for d in arr.dims[:-1])} folded)"
    im = ax.imshow(values, origin="upper", interpolation="nearest")
    ax.set_ylabel(arr.dims[-2] if arr.ndim == 2 else "rows")
    ax.set_xlabel(arr.dims[-1])
    ax.set_title(title)
    fig.colorbar(im, ax=ax, shrink=0.8)


def _write_png(results: xr.Dataset, target: Path, source: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed, and none used
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.5), layout="constrained")
    try:
        _show(fig, left, results["summed_pattern"], "summed pattern (sum of all frames)")
        _show(fig, right, results["frame_sum"], "intensity per frame (sum of each frame)")
        fig.suptitle(source, fontsize="medium")
        fig.savefig(target, dpi=100)
    finally:
        plt.close(fig)


def _position(index: int, ds: DataSet) -> str:
    coords = np.unravel_index(index, tuple(ds.shape.nav))
    return ", ".join(f"{d}={int(c)}" for d, c in zip(ds.nav_dims, coords, strict=True))


def _run(args: argparse.Namespace, filetype: str | None) -> int:
    from dataflow.api import Context
    from dataflow.udf.sum import SumUDF
    from dataflow.udf.sumsigudf import SumSigUDF

    try:
        ctx = Context.make_with(args.executor)
    except ImportError as e:
        _error(f"--executor {args.executor} needs a package that is not installed: {e}")
        return 2
    with ctx:
        try:
            ds, source = _load(ctx, args, filetype)
        except (OSError, ValueError) as e:
            hint = " (use --ds-path NAME)" if filetype == "zarr" and not args.ds_path else ""
            _error(f"{e}{hint}")
            return 2
        nbytes = math.prod(tuple(ds.shape)) * ds.dtype.itemsize
        print(f"source:     {source}")
        print(
            f"dataset:    shape {tuple(ds.shape)} (dims {', '.join(ds.dims)}), dtype {ds.dtype}, "
            f"{nbytes / 2**20:.1f} MiB, {ds.get_num_partitions()} partitions"
        )
        t0 = time.perf_counter()
        summed, per_frame = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
        elapsed = time.perf_counter() - t0

    frame_sums = np.asarray(per_frame["intensity"].data)
    flat = frame_sums.reshape(-1)
    i_max, i_min = int(np.argmax(flat)), int(np.argmin(flat))
    total = float(np.sum(summed["intensity"].data, dtype=np.float64))
    rate = nbytes / 2**20 / elapsed if elapsed > 0 else float("inf")
    print(
        f"run:        SumUDF + SumSigUDF in one pass on {args.executor!r}: "
        f"{elapsed:.3f} s, {rate:.1f} MiB/s"
    )
    print(f"total:      {total:.6g}")
    print(f"brightest:  frame at {_position(i_max, ds)} (sum {float(flat[i_max]):.6g})")
    print(f"dimmest:    frame at {_position(i_min, ds)} (sum {float(flat[i_min]):.6g})")

    results = _results_dataset(summed.to_xarray(), per_frame.to_xarray())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    zarr_path, png_path = out / "results.zarr", out / "summary.png"
    _write_zarr(results, zarr_path)
    _write_png(results, png_path, source)
    print(f"wrote:      {zarr_path}")
    print(f"            {png_path}")
    return 0


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``dataflow`` command.

    Parameters
    ----------
    argv
        Command line arguments without the program name; ``sys.argv[1:]`` by default.

    Returns
    -------
    int
        Exit code: 0 on success, 2 for bad arguments (an unreadable path, a wrong
        option), with a message on stderr.

    Examples
    --------
    >>> main(["--executor", "inline", "--out", str(tmp_path)])  # doctest: +SKIP
    0
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a usage error argparse already reported
        return e.code if isinstance(e.code, int) else 2
    try:
        filetype = _check_args(args)
    except (OSError, ValueError) as e:
        parser.print_usage(sys.stderr)
        _error(str(e))
        return 2
    return _run(args, filetype)
