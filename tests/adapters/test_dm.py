"""Tests of the ``dm`` adapter (``adapters/dm.py``).

No DM3/DM4 file is made here (RosettaSciIO has no DM writer), so these tests cover
argument handling, errors raised before reading, and the frame reader the adapter
builds; reading real DM files is untested.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import numpy as np
import pytest

from dataflow import registry
from dataflow.adapters.dm import DMAdapter
from dataflow.errors import DataSetException

NAME, TARGET = "dm", "dataflow.adapters.dm:DMAdapter"


def test_entry_point_is_installed():
    """pyproject.toml registers the adapter under its name."""
    found = {ep.name: ep.value for ep in entry_points(group=registry.GROUP)}
    assert found.get(NAME) == TARGET


def test_needs_path_or_files(ctx, tmp_path):
    with pytest.raises(TypeError, match="needs path="):
        ctx.load("dm")
    with pytest.raises(TypeError, match="not both"):
        DMAdapter.open(tmp_path / "a.dm4", files=[tmp_path / "b.dm4"])


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.dm4"):
        DMAdapter.open(tmp_path / "nope.dm4")
    with pytest.raises(FileNotFoundError, match=r"gone\.dm3"):
        DMAdapter.open(files=[tmp_path / "gone.dm3"])


def test_not_a_dm_file(tmp_path):
    pytest.importorskip("rsciio.digitalmicrograph")
    path = tmp_path / "x.dm4"
    path.write_bytes(np.arange(64, dtype=">u4").tobytes())
    with pytest.raises(DataSetException, match="not a DM3/DM4 file"):
        DMAdapter.open(path)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"files": "a.dm4"}, TypeError, "files is"),
        ({"files": []}, ValueError, "files is empty"),
        ({"path": "a.dm4", "same_offset": 1}, TypeError, "same_offset"),
        ({"path": "a.dm4", "force_c_order": "no"}, TypeError, "force_c_order"),
        ({"path": "a.dm4", "nav_shape": (2,), "scan_size": (2,)}, ValueError, "scan_size"),
        ({"path": 4}, TypeError, "path is a int"),
    ],
)
def test_bad_keywords_raise_before_reading(kwargs, error, match):
    with pytest.raises(error, match=match):
        DMAdapter.open(**kwargs)


def test_dataset_index_type(tmp_path):
    path = tmp_path / "a.dm4"
    path.write_bytes(bytes(16))
    with pytest.raises(TypeError, match="dataset_index"):
        DMAdapter.open(path, dataset_index="0")
