"""Where the evaluation data folder is: one lookup order for the tasks, the CLI and the tests.

A data folder is laid out as in :mod:`lens_odesteer.datasets.sources` (``truthfulqa/v1/...``,
``caa/<behaviour>/...``). It is looked for, in this order:

1. the folder passed explicitly (``data_dir=...``, ``--data-dir``);
2. ``$LENS_ODESTEER_DATA``;
3. the user cache, where ``lens-odesteer data fetch`` puts the files
   (``$XDG_CACHE_HOME/lens_odesteer/data``, by default ``~/.cache/lens_odesteer/data``;
   ``~/Library/Caches/lens_odesteer/data`` on macOS, ``%LOCALAPPDATA%\\lens_odesteer\\data`` on
   Windows);
4. ``../shared/data`` next to a source checkout of this repository.

An explicit folder or ``$LENS_ODESTEER_DATA`` is used alone: when the file is not there, the
lookup fails instead of reading another copy. Otherwise the first of 3 and 4 that holds every
file asked for is used.

Example:
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> find_data_dir(folder) == Path(folder)
    True
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

from lens_odesteer.datasets.sources import SOURCES
from lens_odesteer.errors import DataNotFoundError

__all__ = [
    "DATA_ENV",
    "checkout_data_dir",
    "download_dir",
    "find_data_dir",
    "find_data_file",
    "search_dirs",
    "user_cache_dir",
]

#: Environment variable naming the data folder (used alone when set).
DATA_ENV = "LENS_ODESTEER_DATA"


def user_cache_dir() -> Path:
    """The platform's per-user cache folder for the data (it may not exist yet)."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "lens_odesteer" / "data"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "lens_odesteer" / "data"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lens_odesteer" / "data"


def checkout_data_dir() -> Path:
    """``../shared/data`` beside the repository this package was imported from."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def search_dirs(data_dir: str | os.PathLike[str] | None = None) -> list[tuple[Path, str]]:
    """The folders searched for data, in order, each with where it came from.

    Example:
        >>> [why for _, why in search_dirs("/data")]
        ['--data-dir']
    """
    if data_dir is not None:
        return [(Path(data_dir).expanduser(), "--data-dir")]
    if os.environ.get(DATA_ENV):
        return [(Path(os.environ[DATA_ENV]).expanduser(), f"${DATA_ENV}")]
    return [(user_cache_dir(), "user cache"), (checkout_data_dir(), "checkout's shared data")]


def download_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where ``lens-odesteer data fetch`` writes: ``data_dir``, ``$LENS_ODESTEER_DATA`` or the
    user cache (never the checkout's shared folder)."""
    return search_dirs(data_dir)[0][0]


def _fetch_command(names: Iterable[str], data_dir: str | os.PathLike[str] | None) -> str:
    folders = sorted({name.split("/", 1)[0] for name in names})
    only = "" if not folders or set(folders) >= set(SOURCES) else f" --only {' '.join(folders)}"
    target = "" if data_dir is None else f" --data-dir {data_dir}"
    return f"lens-odesteer data fetch{only}{target}"


def find_data_dir(
    data_dir: str | os.PathLike[str] | None = None, *, need: Iterable[str] = ()
) -> Path:
    """The first data folder in the lookup order that holds every file of ``need``.

    Args:
        data_dir: an explicit folder (searched alone).
        need: stored paths that must be present, e.g. ``["truthfulqa/v1/mc_task.json"]``;
            empty: any existing folder.

    Raises:
        DataNotFoundError: no folder qualifies; the message names the missing files, the
            folders searched and the command that fetches them.
    """
    need = list(need)
    searched = search_dirs(data_dir)
    for folder, _ in searched:
        if folder.is_dir() and all((folder / rel).is_file() for rel in need):
            return folder
    where = "; ".join(
        f"{folder} ({why}{'' if folder.is_dir() else ', does not exist'})"
        for folder, why in searched
    )
    instead = (
        "pass a --data-dir that has it"
        if data_dir is not None
        else f"set {DATA_ENV} to a folder that has it"
    )
    if not need:
        raise DataNotFoundError(
            f"No evaluation data folder found; searched: {where}. Download the data with "
            f"`{_fetch_command([], data_dir)}`, or {instead}."
        )
    first = searched[0][0]
    missing = [rel for rel in need if not (first / rel).is_file()] or need
    shown = ", ".join(repr(m) for m in missing[:3])
    more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
    raise DataNotFoundError(
        f"Evaluation data file {shown}{more} not found; searched: {where}. Download it with "
        f"`{_fetch_command(missing, data_dir)}`, or {instead}."
    )


def find_data_file(relpath: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The stored file ``relpath`` in the first data folder that has it (see the module doc).

    Raises:
        DataNotFoundError: as :func:`find_data_dir`.
    """
    return find_data_dir(data_dir, need=[relpath]) / relpath
