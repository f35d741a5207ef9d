"""Atomic result files and the part store that lets a long evaluation resume.

Every finished piece of work (one method at one strength on one split) is written as its own
CSV file under ``<out>/parts/`` through a temporary file and ``os.replace``, so a crash or a
Ctrl-C never leaves a half-written file: a part either exists complete or not at all. A rerun
with the same output folder and configuration reads the finished parts and computes only the
missing ones.

Example:
    >>> import tempfile, pandas as pd
    >>> store = PartStore(tempfile.mkdtemp())
    >>> store.has("a"), store.put("a", pd.DataFrame({"x": [1.0]})).x.tolist(), store.has("a")
    (False, [1.0], True)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from lens_odesteer._atomic import atomic_write_text
from lens_odesteer.errors import FileFormatError

__all__ = ["PartStore", "atomic_write_text", "read_json", "write_csv", "write_json"]

#: Columns that always hold text, never converted to numbers when a part is read back.
TEXT_COLUMNS = frozenset({"prompt", "continuation", "split", "method", "phase"})


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file written by :func:`write_json`."""
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FileFormatError(f"{str(p)!r} is not valid JSON ({exc.msg}).") from exc


def write_csv(path: str | os.PathLike[str], frame: pd.DataFrame) -> Path:
    """Write ``frame`` as CSV (no index), atomically."""
    return atomic_write_text(path, frame.to_csv(index=False))


def _slug(key: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.=-]+", "_", key)[:80]
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    return f"{safe}-{digest}"


class PartStore:
    """Finished parts of an evaluation, one atomic CSV per key, under ``<root>/parts``.

    ``fingerprint`` (a JSON-able config) is stored in ``<root>/parts/fingerprint.json``; a store
    opened with a different fingerprint refuses to mix results and raises
    :class:`~lens_odesteer.errors.FileFormatError` (use a new folder or ``fresh=True``).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        fingerprint: dict[str, Any] | None = None,
        *,
        fresh: bool = False,
    ) -> None:
        self.root = Path(root) / "parts"
        self.root.mkdir(parents=True, exist_ok=True)
        stamp = self.root / "fingerprint.json"
        if fresh:
            for old in self.root.glob("*.csv"):
                old.unlink()
            stamp.unlink(missing_ok=True)
        if fingerprint is not None:
            canon = json.loads(json.dumps(fingerprint, default=str, sort_keys=True))
            if stamp.exists():
                previous = read_json(stamp)
                if previous != canon:
                    changed = sorted(
                        k for k in set(previous) | set(canon) if previous.get(k) != canon.get(k)
                    )
                    raise FileFormatError(
                        f"{str(self.root.parent)!r} holds partial results of another "
                        f"configuration (differs in {changed}). Use another --out folder, or "
                        "pass fresh=True (--fresh) to discard them."
                    )
            else:
                write_json(stamp, canon)
        self.n_computed = 0
        self.n_reused = 0

    def path(self, key: str) -> Path:
        """The file of ``key``."""
        return self.root / f"{_slug(key)}.csv"

    def has(self, key: str) -> bool:
        """True when ``key`` has been finished and stored."""
        return self.path(key).exists()

    def get(self, key: str) -> pd.DataFrame:
        """Read a stored part: text columns stay text (``""`` is an empty string), numeric
        columns come back as numbers with ``""`` as NaN."""
        self.n_reused += 1
        frame = pd.read_csv(self.path(key), keep_default_na=False)
        for col in frame.columns:
            if col in TEXT_COLUMNS or pd.api.types.is_numeric_dtype(frame[col]):
                continue
            values = frame[col].astype(str)
            numbers = pd.to_numeric(values.where(values != ""), errors="coerce")
            if int(numbers.notna().sum()) == int((values != "").sum()):
                frame[col] = numbers
        return frame

    def put(self, key: str, frame: pd.DataFrame) -> pd.DataFrame:
        """Store a finished part atomically and return it."""
        write_csv(self.path(key), frame)
        self.n_computed += 1
        return frame

    def keys_on_disk(self) -> int:
        """Number of stored parts."""
        return sum(1 for _ in self.root.glob("*.csv"))
