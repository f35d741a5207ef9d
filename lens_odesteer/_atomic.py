"""Write a file completely or not at all: a temporary file beside it, renamed on success.

Readers never see a half-written steerer, result table or figure: the data goes to a
temporary file in the target's folder (same file system, so the rename is atomic) and
``os.replace`` puts it in place only when writing finished; on any error the temporary file is
removed and an existing target is left as it was.

The file gets the permissions a plain ``open(path, "w")`` would give it: a new file has
``0o666`` less the process umask (the kernel applies the umask when the temporary file is
created), and a file that already existed keeps its mode.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> target = Path(tempfile.mkdtemp()) / "out" / "a.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text(), [p.name for p in target.parent.iterdir()]
    ('done', ['a.txt'])
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_text"]


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` when the block succeeds.

    Args:
        path: the file to write (its folder is created if missing).
        keep_suffix: end the temporary name with ``path``'s suffix, for writers that infer the
            format from it (e.g. image export); otherwise it ends in ``.tmp``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = target.suffix if keep_suffix else ".tmp"
    tmp, new_mode = _create_beside(target, suffix)
    try:
        yield tmp
        try:
            mode = stat.S_IMODE(target.stat().st_mode)
        except FileNotFoundError:
            mode = new_mode
        # Set again: a writer may have replaced the temporary file with one of its own.
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _create_beside(target: Path, suffix: str, *, max_tries: int = 100) -> tuple[Path, int]:
    """Create a new empty hidden file beside ``target``; return it and its permission bits.

    ``tempfile.mkstemp`` would make it ``0o600`` whatever the umask. Creating it with ``0o666``
    lets the kernel apply the umask (and any default ACL) as for ``open(path, "w")``, and its
    resulting mode is that of a new file, read without touching the process-wide umask (which
    ``os.umask`` can only read by setting it, a race with other threads).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(max_tries):
        tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}{suffix}"
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        try:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
        return tmp, mode
    raise FileExistsError(f"Could not create a temporary file beside {str(target)!r}.")


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` with :func:`atomic_path`, synced to disk first."""
    target = Path(path)
    with atomic_path(target) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return target
