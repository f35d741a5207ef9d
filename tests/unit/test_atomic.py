"""All-or-nothing writes: a failed write leaves the old file and no temporary file."""

from __future__ import annotations

from pathlib import Path

import pytest

from lens_odesteer._atomic import atomic_path


def test_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "table.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_suffix_is_kept_when_asked_and_folders_are_created(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "fig.png"
    with atomic_path(target, keep_suffix=True) as tmp:
        assert tmp.suffix == ".png" and tmp.parent == target.parent and tmp.name.startswith(".")
        tmp.write_bytes(b"png")
    assert target.read_bytes() == b"png" and len(list(target.parent.iterdir())) == 1
