"""The LiberTEM peer: its own virtual environment, its jobs, and its output.

LiberTEM (and its numba pin) never enters the project's environment. The runner
either uses the Python it is given (``--peer-python``) or a virtual environment of
its own (``--peer-venv``, ``.bench/libertem-venv`` by default), made on first use
with ``python -m venv`` and ``pip install libertem==0.16.0 zarr`` (zarr so that the
peer can read the zarr stores, through ``dask.array.from_zarr``). It then runs
``peer_libertem.py`` there once per benchmark run, with every job in one JSON file,
and reads the one result line the script prints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.data import ROOT
from benchmarks.peer_libertem import MARKER

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "DEFAULT_VENV",
    "LIBERTEM_REQUIREMENTS",
    "LIBERTEM_VERSION",
    "PEER_SCRIPT",
    "LiberTEMPeer",
    "PeerError",
    "PeerResult",
    "ensure_venv",
    "parse_output",
    "venv_python",
]

LIBERTEM_VERSION = "0.16.0"
#: what ``pip install`` puts into a new peer venv
LIBERTEM_REQUIREMENTS = (f"libertem=={LIBERTEM_VERSION}", "zarr>=3")
DEFAULT_VENV = ROOT / ".bench" / "libertem-venv"
PEER_SCRIPT = Path(__file__).with_name("peer_libertem.py")


class PeerError(RuntimeError):
    """The peer could not be set up, or did not answer as expected."""


@dataclass(frozen=True)
class PeerResult:
    """One job of the peer on one executor: its timed calls and its warm-up's result file."""

    workload: str
    executor: str
    times_s: list[float] = field(default_factory=list)
    result: Path | None = None
    partitions: int | None = None
    error: str | None = None


def venv_python(venv: Path) -> Path:
    """The interpreter of the virtual environment at ``venv``."""
    if os.name == "nt":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def ensure_venv(venv: Path, log: Callable[[str], None] = print) -> Path:
    """The Python of ``venv``, after making the environment if it has none.

    Raises
    ------
    PeerError
        If ``python -m venv`` or ``pip install`` fails.
    """
    python = venv_python(venv)
    if python.exists():
        return python
    log(f"making the LiberTEM peer's environment at {str(venv)!r} (once; not timed)")
    # the base interpreter, not the project venv's: the new venv must not see its packages
    base = getattr(sys, "_base_executable", sys.executable)
    steps = [
        [base, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        [str(python), "-m", "pip", "install", "--quiet", *LIBERTEM_REQUIREMENTS],
    ]
    for cmd in steps:
        log("  $ " + " ".join(cmd))
        done = subprocess.run(cmd, check=False)
        if done.returncode != 0:
            raise PeerError(
                f"{' '.join(cmd)!r} failed with exit status {done.returncode}; fix the "
                f"cause and remove {str(venv)!r}, or pass --peer-python with a Python "
                f"that has libertem=={LIBERTEM_VERSION}"
            )
    return python


def parse_output(stdout: str) -> dict[str, Any]:
    """The report of the peer's one result line (``MARKER`` + JSON) in ``stdout``.

    Raises
    ------
    PeerError
        If there is no such line, its JSON is malformed, or a result lacks a field.
    """
    lines = [ln for ln in stdout.splitlines() if ln.startswith(MARKER)]
    if not lines:
        tail = stdout.strip()[-2000:] or "(nothing)"
        raise PeerError(
            f"the peer printed no line starting with {MARKER.strip()!r}; stdout: {tail}"
        )
    try:
        report = json.loads(lines[-1][len(MARKER) :])
    except json.JSONDecodeError as exc:
        raise PeerError(f"the peer's result line is not JSON: {exc}") from None
    if not isinstance(report, dict) or "libertem" not in report:
        raise PeerError(f"the peer's report has no 'libertem' version: {report!r:.300}")
    for i, r in enumerate(report.get("results", [])):
        missing = {"workload", "executor", "times_s", "result", "error"} - set(r)
        if missing:
            raise PeerError(f"the peer's result {i} lacks {sorted(missing)!r}: {r!r:.300}")
        if r["error"] is None and (
            not r["times_s"] or not all(isinstance(t, (int, float)) and t > 0 for t in r["times_s"])
        ):
            raise PeerError(f"the peer's result {i} has bad times_s {r['times_s']!r}")
    return report


@dataclass
class LiberTEMPeer:
    """Runs ``peer_libertem.py`` with the peer's Python.

    Attributes
    ----------
    python
        The peer environment's interpreter.
    cpus
        Threads of its ``threads`` executor, workers of its ``dask`` executor.
    timeout
        Seconds the whole batch of jobs may take.
    """

    python: Path
    cpus: int = 2
    timeout: float = 3600.0
    info: dict[str, Any] = field(default_factory=dict)

    def _run(self, args: Sequence[str]) -> dict[str, Any]:
        cmd = [str(self.python), str(PEER_SCRIPT), *args]
        try:
            done = subprocess.run(
                cmd, stdout=subprocess.PIPE, text=True, timeout=self.timeout, check=False
            )
        except FileNotFoundError:
            raise PeerError(f"the peer's Python {str(self.python)!r} does not exist") from None
        except subprocess.TimeoutExpired:
            raise PeerError(f"the peer took longer than {self.timeout:g} s: {cmd!r}") from None
        if done.returncode != 0:
            raise PeerError(
                f"the peer exited with status {done.returncode} (its stderr is above); "
                f"command: {' '.join(cmd)}"
            )
        return parse_output(done.stdout)

    def check(self, log: Callable[[str], None] = print) -> dict[str, Any]:
        """Ask the peer for its versions; warn if LiberTEM is not the version compared with."""
        info = self._run(["--version"])
        if info["libertem"] != LIBERTEM_VERSION:
            log(
                f"warning: the peer has LiberTEM {info['libertem']}; the benchmarks compare "
                f"with {LIBERTEM_VERSION}"
            )
        if not info.get("zarr"):
            log("warning: the peer has no zarr: its zarr workloads will fail (pip install zarr)")
        self.info = info
        return info

    def run(self, jobs: list[dict[str, Any]], workdir: Path) -> dict[tuple[str, str], PeerResult]:
        """Run ``jobs`` in one process; results by ``(workload, executor)``."""
        workdir.mkdir(parents=True, exist_ok=True)
        spec = workdir / "jobs.json"
        spec.write_text(
            json.dumps({"cpus": self.cpus, "result_dir": str(workdir), "jobs": jobs}, indent=1),
            encoding="utf-8",
        )
        report = self._run(["--jobs", str(spec)])
        self.info = {k: v for k, v in report.items() if k != "results"}
        return {
            (r["workload"], r["executor"]): PeerResult(
                workload=r["workload"],
                executor=r["executor"],
                times_s=list(r["times_s"]),
                result=None if r["result"] is None else Path(r["result"]),
                partitions=r.get("partitions"),
                error=r["error"],
            )
            for r in report.get("results", [])
        }
