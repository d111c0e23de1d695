"""docs/porting-from-libertem.md stays true: every path, name, method and keyword it lists."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import dataflow.common
import dataflow.udf
from dataflow.registry import get_adapter, list_adapters

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "porting-from-libertem.md"


def _table(title: str) -> list[list[str]]:
    """The rows of the table under ``## title``, as lists of cells, header dropped."""
    text = GUIDE.read_text(encoding="utf-8")
    heading = f"\n## {title}\n"
    assert heading in text, f"the guide has no section {title!r}"
    start = text.index(heading) + len(heading)
    end = text.find("\n## ", start)
    rows = []
    for line in text[start : end if end != -1 else None].splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if all(set(c) <= set("-: ") for c in cells):  # the separator row
            continue
        rows.append(cells)
    assert rows, f"section {title!r} has no table"
    return rows[1:]


def _code(cell: str) -> list[str]:
    """The `code` spans of a cell."""
    return re.findall(r"`([^`]+)`", cell)


def _one(cell: str) -> str:
    [token] = _code(cell)
    return token


def _rename(path: str) -> str:
    assert path == "libertem" or path.startswith("libertem."), f"{path!r} is not a LiberTEM path"
    return "dataflow" + path[len("libertem") :]


def _resolve(path: str) -> object:
    """The module or attribute a dotted path names; raises LookupError if there is none."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        module_name = ".".join(parts[:i])
        try:
            obj: object = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name is not None and module_name.startswith(e.name):
                continue  # this prefix is not a module: try a shorter one
            raise  # a module that exists failed to import
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                raise LookupError(f"{module_name} has no {'.'.join(parts[i:])}")
            obj = getattr(obj, attr)
        return obj
    raise LookupError(f"no module of {path} exists")


def _resolves(path: str) -> bool:
    try:
        _resolve(path)
    except LookupError:
        return False
    return True


IMPORT_ROWS = _table("Import paths")
MISSING_ROWS = _table("Not provided")
CONTEXT_ROWS = _table("The Context")
LOAD_ROWS = _table("Loading data: `ctx.load`")


@pytest.mark.parametrize("row", IMPORT_ROWS, ids=[_one(r[0]) for r in IMPORT_ROWS])
def test_import_table_is_the_liberTEM_path_renamed_and_imports(row):
    liberTEM, ours, names = row
    module_name = _one(ours)
    assert module_name == _rename(_one(liberTEM))
    module = importlib.import_module(module_name)
    listed = _code(names)
    assert listed, f"no names listed for {module_name}"
    missing = [n for n in listed if not hasattr(module, n)]
    assert not missing, f"{module_name} lacks {missing}"


@pytest.mark.parametrize("row", MISSING_ROWS, ids=[_code(r[0])[0] for r in MISSING_ROWS])
def test_paths_listed_as_not_provided_are_not(row):
    liberTEM = _code(row[0])[0]
    assert not _resolves(_rename(liberTEM)), (
        f"{_rename(liberTEM)} imports now: move the row to the 'Import paths' table"
    )
    assert row[1], "say what to use instead"


def test_every_builtin_udf_and_common_module_is_listed():
    listed = {_one(r[1]) for r in IMPORT_ROWS}
    for package in (dataflow.udf, dataflow.common):
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            assert info.name in listed, f"{info.name} is missing from the guide's import table"


@pytest.mark.parametrize("row", CONTEXT_ROWS, ids=[_code(r[0])[0] for r in CONTEXT_ROWS])
def test_context_table_names_existing_methods(row, ctx):
    if row[1] == "—":  # not ported
        return
    owner, *attr = _one(row[1]).split(".")
    assert owner == "Context"
    if attr:
        assert hasattr(ctx, attr[0]), f"Context has no {attr[0]}"


def test_load_table_lists_every_filetype_with_its_keywords():
    listed = {_one(r[0]): _code(r[1]) for r in LOAD_ROWS}
    assert set(listed) == set(list_adapters())
    for filetype, keywords in listed.items():
        params = inspect.signature(get_adapter(filetype).open).parameters
        unknown = [k for k in keywords if k not in params]
        assert not unknown, f"ctx.load({filetype!r}) takes no {unknown}"


def test_guide_tables_parse():
    # guards the parser itself: a table row with a missing cell would shift columns
    for rows, width in ((IMPORT_ROWS, 3), (MISSING_ROWS, 2), (LOAD_ROWS, 3)):
        assert {len(r) for r in rows} == {width}
