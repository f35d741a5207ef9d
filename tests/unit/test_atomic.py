"""All-or-nothing writes: a failed write leaves the old file and no temporary file; the file
written has the permissions ``open(path, "w")`` would give it (umask 022, 077, 002)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lens_odesteer._atomic import atomic_path, atomic_write_text


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


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    """Set the process umask for one test; the previous one is restored afterwards."""
    previous = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(previous)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_file_gets_the_mode_plain_open_would_give(
    umask: Callable[[int], None], tmp_path: Path, mask: int, mode: int
) -> None:
    umask(mask)
    plain = tmp_path / "plain.txt"
    with open(plain, "w") as handle:
        handle.write("x")
    target = tmp_path / "atomic.txt"
    atomic_write_text(target, "x")
    with atomic_path(tmp_path / "fig.png", keep_suffix=True) as tmp:
        tmp.unlink()  # a writer that replaces the temporary file with its own
        tmp.write_bytes(b"png")
        os.chmod(tmp, 0o600)
    for path in (target, tmp_path / "fig.png"):
        assert stat.S_IMODE(path.stat().st_mode) == mode == stat.S_IMODE(plain.stat().st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_rewriting_keeps_the_existing_mode(umask: Callable[[int], None], tmp_path: Path) -> None:
    umask(0o022)
    target = tmp_path / "results.json"
    atomic_write_text(target, "old")
    os.chmod(target, 0o640)
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o640
