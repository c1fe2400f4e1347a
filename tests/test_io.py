"""Tests of the crash-safe file writers."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from fer_fairness import io


def test_write_json_atomic_converts_numpy_and_nan(tmp_path):
    path = io.write_json_atomic(
        tmp_path / "metrics.json", {"n": np.int64(3), "ratio": float("nan"), "row": np.array([0.5])}
    )
    assert json.loads(path.read_text()) == {"n": 3, "ratio": None, "row": [0.5]}


def test_write_text_atomic_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "report.txt"
    path.write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError):
        with io.atomic_path(path) as temporary:
            temporary.write_text("half", encoding="utf-8")
            raise RuntimeError("crash while writing")
    assert path.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.txt"]


def test_atomic_path_keeps_suffix(tmp_path):
    with io.atomic_path(tmp_path / "model.keras") as temporary:
        assert temporary.suffix == ".keras"
        temporary.write_bytes(b"x")
    assert (tmp_path / "model.keras").read_bytes() == b"x"


def test_read_json_names_invalid_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{", encoding="utf-8")
    with pytest.raises(ValueError, match="broken.json is not valid JSON"):
        io.read_json(path)


def test_write_text_atomic_uses_umask_mode(tmp_path):
    previous = os.umask(0o022)
    try:
        path = io.write_text_atomic(tmp_path / "metrics.json", "{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
