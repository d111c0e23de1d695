"""Execute every notebook in ``notebooks/`` and fail on any cell error.

Each notebook runs from a copy in a temporary directory (it writes nothing into the
repository), on the ``python3`` kernel, which runs this interpreter: ipykernel's
kernelspec starts ``sys.executable``. ``nbclient`` and ``nbformat`` come with the
``test`` extra; without them this module fails to import rather than skipping.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest
from nbformat.v4 import new_code_cell

NOTEBOOK_DIR = Path(__file__).parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))

# Prepended to the executed copy only: the kernel must run this environment's Python,
# so that the notebooks exercise the dataflow installed here.
_CHECK_INTERPRETER = (
    "import sys as _sys\n"
    f"assert _sys.prefix == {sys.prefix!r}, "
    "f'the kernel runs {_sys.executable} (prefix {_sys.prefix}), not the test environment'\n"
    "del _sys"
)


def test_notebooks_found() -> None:
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_saved_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, f"{path.name}: code cells {dirty} have outputs; save the notebook clean"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the kernel inherits the environment: draw off screen
    monkeypatch.setenv("MPLBACKEND", "Agg")
    copy = tmp_path / path.name
    shutil.copyfile(path, copy)
    nb = nbformat.read(copy, as_version=4)
    nb.cells.insert(0, new_code_cell(_CHECK_INTERPRETER))
    client = nbclient.NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    # raises CellExecutionError (with the cell's source and traceback) on any error
    client.execute()
    errors = [
        (i, out.get("ename"), out.get("evalue"))
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.output_type == "error"
    ]
    assert not errors, errors
