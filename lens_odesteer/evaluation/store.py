"""Atomic result files and the part store that lets a long evaluation resume.

Every finished piece of work (one method at one strength on one split) is written as its own
CSV file under ``<out>/parts/`` through a temporary file and ``os.replace``, so a crash or a
Ctrl-C never leaves a half-written file. Renaming is not proof enough: a file can still be cut
short later (a full disk, a copy interrupted, an editor), so each stored file is *sealed*. After
the file is in place, a small JSON sidecar ``<file>.seal`` records its size, its sha256, its row
count and the configuration it belongs to, written atomically too. A rerun with the same output
folder reuses a file only when its seal matches it byte for byte; anything else (no seal, another
size or hash, another configuration, a seal that is itself damaged) is recomputed, and a line
says which file and why. The same seals cover the activation caches and the fitted steerers the
runner keeps beside the parts.

Example:
    >>> import tempfile, pandas as pd
    >>> lines = []
    >>> store = PartStore(tempfile.mkdtemp(), log=lines.append)
    >>> store.has("a"), store.put("a", pd.DataFrame({"x": [1.0]})).x.tolist(), store.has("a")
    (False, [1.0], True)
    >>> _ = store.path("a").write_text("x\\n")  # cut short after it was written
    >>> store.reuse("a") is None, lines[0].endswith("was written with 6; recomputing it")
    (True, True)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from lens_odesteer._atomic import atomic_write_text
from lens_odesteer.errors import FileFormatError
from lens_odesteer.evaluation.distributed import Shard

__all__ = ["PartStore", "atomic_write_text", "read_json", "write_csv", "write_json"]

#: Columns that always hold text, never converted to numbers when a part is read back.
TEXT_COLUMNS = frozenset({"prompt", "continuation", "split", "method", "phase"})
#: Suffix of the sidecar that proves a stored file is whole.
SEAL_SUFFIX = ".seal"
#: Version of the seal format (a seal of another version is not trusted).
SEAL_VERSION = 1
#: Folders of the output folder whose files are sealed (``fresh`` forgets their seals).
SEALED_FOLDERS = ("parts", "cache", "steerers")
#: Names of the temporary files atomic writes use (``.<name>.<8 hex>.tmp``).
_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file written by :func:`write_json`."""
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise FileFormatError(f"{str(p)!r} is not valid JSON ({exc}).") from None


def write_csv(path: str | os.PathLike[str], frame: pd.DataFrame) -> Path:
    """Write ``frame`` as CSV (no index), atomically."""
    return atomic_write_text(path, frame.to_csv(index=False))


def _slug(key: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.=-]+", "_", key)[:80]
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    return f"{safe}-{digest}"


def config_digest(fingerprint: dict[str, Any] | None) -> str:
    """A short hash of a configuration (canonical JSON); ``""`` for None."""
    if fingerprint is None:
        return ""
    canon = json.dumps(fingerprint, default=str, sort_keys=True)
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


def seal_path(path: Path) -> Path:
    """The sidecar of ``path``."""
    return path.with_name(path.name + SEAL_SUFFIX)


def _frame_from_csv(data: bytes) -> pd.DataFrame:
    """Parse a stored part: text columns stay text (``""`` is an empty string), numeric columns
    come back as numbers with ``""`` as NaN."""
    frame = pd.read_csv(io.BytesIO(data), keep_default_na=False)
    for col in frame.columns:
        if col in TEXT_COLUMNS or pd.api.types.is_numeric_dtype(frame[col]):
            continue
        values = frame[col].astype(str)
        numbers = pd.to_numeric(values.where(values != ""), errors="coerce")
        if int(numbers.notna().sum()) == int((values != "").sum()):
            frame[col] = numbers
    return frame


class PartStore:
    """Finished parts of an evaluation, one atomic, sealed CSV per key, under ``<root>/parts``.

    ``fingerprint`` (a JSON-able config) is stored in ``<root>/parts/fingerprint.json``; a store
    opened with a different fingerprint refuses to mix results and raises
    :class:`~lens_odesteer.errors.FileFormatError` (use a new folder or ``fresh=True``). A
    fingerprint file that is itself damaged is rewritten, with a line saying so: every part's seal
    names its configuration, so parts of another one are never reused.

    Args:
        root: the output folder.
        fingerprint: the configuration the results belong to.
        fresh: discard the stored parts and every seal under ``root`` (caches and steerers are
            then recomputed too).
        log: called with one line for each file that is recomputed because it is damaged
            (default: a ``UserWarning``).
        shard: this process of a data-parallel run (default: a single process). Rank 0 opens
            the folder first (``fresh``, removing temporaries, the fingerprint) while the other
            ranks wait at a barrier; then work item ``i`` (:meth:`owns`) is rank ``i % world``'s,
            and the other ranks read it when its seal appears (:meth:`wait_whole`).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        fingerprint: dict[str, Any] | None = None,
        *,
        fresh: bool = False,
        log: Callable[[str], None] | None = None,
        shard: Shard | None = None,
    ) -> None:
        self.shard = shard if shard is not None else Shard()
        self._items = 0
        self.base = Path(root)
        self.root = self.base / "parts"
        self._log = log
        self.digest = config_digest(fingerprint)
        self.damaged: list[str] = []
        if not self.shard.is_main:
            self.shard.barrier()  # rank 0 prepares the folder first
        else:
            self._prepare(fingerprint, fresh)
            self.shard.barrier()
        if not self.shard.is_main and fingerprint is not None:
            previous = self._read_stamp(self.root / "fingerprint.json")
            canon = json.loads(json.dumps(fingerprint, default=str, sort_keys=True))
            if previous != canon:
                raise FileFormatError(
                    f"Rank {self.shard.rank} sees another configuration in {str(self.base)!r} "
                    "than rank 0 wrote; every rank must run the same command."
                )
        self.n_computed = 0
        self.n_reused = 0

    def _prepare(self, fingerprint: dict[str, Any] | None, fresh: bool) -> None:
        """Create the folder, remove temporaries, apply ``fresh``, check the fingerprint."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._sweep_temporaries()
        stamp = self.root / "fingerprint.json"
        if fresh:
            for old in self.root.glob("*.csv"):
                old.unlink()
            for folder in SEALED_FOLDERS:
                for old in (self.base / folder).glob(f"*{SEAL_SUFFIX}"):
                    old.unlink()
            stamp.unlink(missing_ok=True)
        if fingerprint is not None:
            canon = json.loads(json.dumps(fingerprint, default=str, sort_keys=True))
            previous = self._read_stamp(stamp)
            if previous is None:
                write_json(stamp, canon)
            elif previous != canon:
                changed = sorted(
                    k for k in set(previous) | set(canon) if previous.get(k) != canon.get(k)
                )
                raise FileFormatError(
                    f"{str(self.base)!r} holds partial results of another "
                    f"configuration (differs in {changed}). Use another --out folder, or "
                    "pass fresh=True (--fresh) to discard them."
                )

    def _sweep_temporaries(self) -> None:
        """Delete the temporary files a killed run left (they were never renamed into place).

        Only names :func:`~lens_odesteer._atomic.atomic_path` makes are touched, in the output
        folder and its sealed folders. One evaluation writes to a folder at a time.
        """
        left = [
            p
            for folder in (self.base, *(self.base / f for f in SEALED_FOLDERS))
            if folder.is_dir()
            for p in folder.iterdir()
            if _TEMPORARY.match(p.name) and p.is_file()
        ]
        for path in left:
            path.unlink(missing_ok=True)
        if left:
            self.say(
                f"removed {len(left)} unfinished temporary file(s) an interrupted run left in "
                f"{str(self.base)!r}; their work is redone"
            )

    def _read_stamp(self, stamp: Path) -> dict[str, Any] | None:
        """The stored fingerprint, or None when there is none or it is damaged (said)."""
        if not stamp.exists():
            return None
        try:
            previous = read_json(stamp)
        except (FileFormatError, OSError) as exc:
            self.say(
                f"{str(stamp)!r} is damaged ({exc}); rewriting it (each part's seal is checked)"
            )
            return None
        if not isinstance(previous, dict):
            self.say(f"{str(stamp)!r} is not a JSON object; rewriting it")
            return None
        return previous

    def say(self, line: str) -> None:
        """Report one line (a file that is recomputed and why)."""
        self.damaged.append(line)
        if self._log is not None:
            self._log(line)
        else:
            warnings.warn(line, UserWarning, stacklevel=3)

    # -- sealed files -------------------------------------------------------------------------
    def seal(self, path: Path, *, rows: int | None = None, key: str | None = None) -> None:
        """Record that ``path`` (already in place) is whole: size, sha256, rows, configuration."""
        data = path.read_bytes()
        record = {
            "seal": SEAL_VERSION,
            "file": path.name,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "rows": rows,
            "config": self.digest,
            "key": key,
        }
        atomic_write_text(seal_path(path), json.dumps(record) + "\n")

    def unseal(self, path: Path) -> None:
        """Forget ``path``'s seal (before the file is rewritten)."""
        seal_path(path).unlink(missing_ok=True)

    def whole(self, path: Path, *, what: str, key: str | None = None) -> bytes | None:
        """The bytes of ``path`` if its seal proves it whole and of this configuration.

        None when there is nothing to reuse: no file (silently), or a file that is not proven
        whole (with a line naming ``what`` and the reason; the caller recomputes it).
        """
        if not path.exists():
            return None
        problem, data = self._check(path, key)
        if problem is None:
            return data
        self.say(f"{what} {str(path)!r} {problem}; recomputing it")
        return None

    def _check(self, path: Path, key: str | None) -> tuple[str | None, bytes]:
        try:
            data = path.read_bytes()
        except OSError as exc:
            return f"cannot be read ({exc.strerror or exc})", b""
        sidecar = seal_path(path)
        if not sidecar.exists():
            return "has no seal (it was not finished, or was written by an older version)", data
        try:
            record = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            return "has a damaged seal", data
        if not isinstance(record, dict) or record.get("seal") != SEAL_VERSION:
            return "has a seal this version does not read", data
        if record.get("config") != self.digest:
            return "belongs to another configuration", data
        if key is not None and record.get("key") != key:
            return f"is sealed as {record.get('key')!r}, not {key!r}", data
        if record.get("bytes") != len(data):
            return f"is {len(data)} bytes but was written with {record.get('bytes')}", data
        if record.get("sha256") != hashlib.sha256(data).hexdigest():
            return "does not match the sha256 it was written with", data
        return None, data

    def rows_of(self, path: Path) -> int | None:
        """The row count recorded in ``path``'s seal (None when not recorded)."""
        try:
            rows = json.loads(seal_path(path).read_text(encoding="utf-8")).get("rows")
        except (OSError, ValueError, AttributeError):
            return None
        return rows if isinstance(rows, int) and not isinstance(rows, bool) else None

    # -- data-parallel ----------------------------------------------------------------------
    def owns(self, what: str = "") -> bool:
        """Claim the next work item: True when this rank computes it (always, single process).

        Every rank must call this at the same points of the same work list (before looking for
        a stored file, so reuse on one rank cannot shift the count); item ``i`` belongs to rank
        ``i % world``. ``what`` only names the item.
        """
        index = self._items
        self._items += 1
        return self.shard.owner(index) == self.shard.rank

    def wait_whole(
        self,
        path: Path,
        *,
        what: str,
        key: str | None = None,
        timeout_s: float | None = None,
        poll_s: float = 0.05,
    ) -> bytes:
        """The bytes of ``path`` once its seal proves it whole (another rank is writing it).

        Nothing is logged while the file is missing or not yet sealed (its owner is working);
        a line is said every 10 minutes of waiting. ``timeout_s`` None waits as long as it
        takes (the launcher stops every rank if one fails).

        Raises:
            TimeoutError: ``timeout_s`` passed first.
        """
        start = last = time.monotonic()
        while True:
            if path.exists():
                problem, data = self._check(path, key)
                if problem is None:
                    return data
            now = time.monotonic()
            if timeout_s is not None and now - start > timeout_s:
                raise TimeoutError(
                    f"rank {self.shard.rank} waited {timeout_s:g} s for {what} {str(path)!r} "
                    "from another rank; is every rank running the same command?"
                )
            if now - last > 600:
                last = now
                if self._log is not None:
                    self._log(f"rank {self.shard.rank} still waiting for {what} {str(path)!r}")
            time.sleep(poll_s)
            poll_s = min(poll_s * 1.5, 1.0)

    def wait(self, key: str, *, timeout_s: float | None = None) -> pd.DataFrame:
        """The part ``key`` once another rank has stored it (see :meth:`wait_whole`)."""
        path = self.path(key)
        while True:
            self.wait_whole(path, what=f"part {key!r}", key=key, timeout_s=timeout_s)
            frame = self.reuse(key)
            if frame is not None:
                return frame

    def shared(self, path: Path, compute: Callable[[], Any], *, what: str) -> Any:
        """A JSON value computed once: by this rank if it owns the item, else read when sealed.

        A single process just returns ``compute()``. In a data-parallel run the value is kept in
        ``path`` (sealed; reused on a rerun) and every rank gets it as read back from JSON, so
        all ranks use exactly the same value (e.g. the candidate strengths that name the parts).
        """
        if self.shard.world == 1:
            return compute()
        if self.owns(what):
            data = self.whole(path, what=what)
            if data is not None:
                try:
                    return json.loads(data)
                except (ValueError, RecursionError):
                    pass
            value = json.loads(json.dumps(compute()))
            self.unseal(path)
            write_json(path, value)
            self.seal(path)
            return value
        return json.loads(self.wait_whole(path, what=what))

    # -- parts --------------------------------------------------------------------------------
    def path(self, key: str) -> Path:
        """The file of ``key``."""
        return self.root / f"{_slug(key)}.csv"

    def has(self, key: str) -> bool:
        """True when ``key`` has been finished, stored and is still whole."""
        path = self.path(key)
        return path.exists() and self._check(path, key)[0] is None

    def reuse(self, key: str) -> pd.DataFrame | None:
        """The stored part of ``key`` if it is whole, else None (a line says why)."""
        path = self.path(key)
        data = self.whole(path, what=f"part {key!r}", key=key)
        if data is None:
            return None
        try:
            frame = _frame_from_csv(data)
        except Exception as exc:  # sealed but unreadable: written by a broken writer
            self.say(f"part {key!r} {str(path)!r} cannot be parsed ({exc}); recomputing it")
            return None
        rows = self.rows_of(path)
        if rows is not None and len(frame) != rows:
            self.say(
                f"part {key!r} {str(path)!r} has {len(frame)} rows but was written with {rows}; "
                "recomputing it"
            )
            return None
        self.n_reused += 1
        return frame

    def get(self, key: str) -> pd.DataFrame:
        """Read a stored part (see :meth:`reuse`).

        Raises:
            FileFormatError: the part is missing or not proven whole.
        """
        frame = self.reuse(key)
        if frame is None:
            raise FileFormatError(
                f"Part {key!r} is missing or damaged in {str(self.root)!r}; recompute it."
            )
        return frame

    def put(self, key: str, frame: pd.DataFrame) -> pd.DataFrame:
        """Store a finished part atomically, seal it, and return it."""
        path = self.path(key)
        self.unseal(path)
        write_csv(path, frame)
        self.seal(path, rows=len(frame), key=key)
        self.n_computed += 1
        return frame

    def keys_on_disk(self) -> int:
        """Number of stored parts (whole or not)."""
        return sum(1 for _ in self.root.glob("*.csv"))
