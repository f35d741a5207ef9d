"""Atomic writes and the resumable part store (fast)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from lens_odesteer.errors import FileFormatError
from lens_odesteer.evaluation.store import PartStore, atomic_write_text


def test_atomic_write_leaves_old_file_and_no_temp_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")

    def boom(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_parts_round_trip_and_resume(tmp_path: Path) -> None:
    store = PartStore(tmp_path, {"task": "x", "n": 1})
    frame = pd.DataFrame(
        {"unit": [1, 2], "continuation": ["", "None"], "x": [0.5, 1.5], "ppl": [float("nan"), 3.0]}
    )
    store.put("fold0|CAA|test|0|1", frame)
    again = PartStore(tmp_path, {"task": "x", "n": 1})
    assert again.has("fold0|CAA|test|0|1") and not again.has("fold0|CAA|test|0|2")
    back = again.get("fold0|CAA|test|0|1")
    assert back["continuation"].tolist() == ["", "None"]  # no NA guessing
    assert back["x"].tolist() == [0.5, 1.5]
    assert back["ppl"].isna().tolist() == [True, False] and back["ppl"].iloc[1] == 3.0
    assert again.n_reused == 1


def test_store_refuses_other_configuration(tmp_path: Path) -> None:
    PartStore(tmp_path, {"task": "x", "n": 1}).put("k", pd.DataFrame({"a": [1]}))
    with pytest.raises(FileFormatError, match="differs in \\['n'\\]"):
        PartStore(tmp_path, {"task": "x", "n": 2})
    fresh = PartStore(tmp_path, {"task": "x", "n": 2}, fresh=True)
    assert not fresh.has("k")
