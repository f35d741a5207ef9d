"""Reading data files as text: JSON, JSON Lines and CSV, with one set of rules for every loader.

* JSON Lines records are separated by ``"\\n"``, ``"\\r\\n"`` or ``"\\r"`` and nothing else.
  ``str.splitlines`` also splits on U+2028, U+2029, U+0085, form feeds and other characters that
  valid JSON may hold raw inside a string, which cut records in two.
* CSV is parsed from the whole text with ``newline=""`` semantics (the same rule), fields of any
  length are read (the text is already in memory, so the size is bounded by the file), and a
  header that names a column twice is refused instead of silently keeping the last one.
* JSON nested too deeply for Python's parser is refused with the library's error, not a
  ``RecursionError``.

Example:
    >>> list(json_lines('{"a": "x\\u2028y"}\\n\\n{"a": 2}\\r\\n'))
    [(1, '{"a": "x\\u2028y"}'), (3, '{"a": 2}')]
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lens_odesteer.errors import FileFormatError

__all__ = ["csv_records", "json_lines", "parse_json", "read_text"]

_CSV_LIMIT_LOCK = threading.Lock()
_LINE_END = re.compile(r"\r\n|\r|\n")


def read_text(path: Path, expected: str) -> str:
    """The UTF-8 text of ``path`` (a leading BOM dropped), line ends as they are in the file.

    No newline translation: a ``"\\r\\n"`` inside a quoted CSV field stays as written.

    Raises:
        FileFormatError: the file cannot be read or is not UTF-8 (the message names the byte).
    """
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileFormatError(
            f"{str(path)!r} is not UTF-8 text ({exc.reason} at byte {exc.start}). Expected "
            f"{expected}."
        ) from None
    except OSError as exc:
        raise FileFormatError(
            f"{str(path)!r} cannot be read ({exc.strerror or exc}). Expected {expected}."
        ) from None


def json_lines(text: str) -> Iterator[tuple[int, str]]:
    """``(line_number, line)`` for every non-blank line of a JSON Lines (or plain) text.

    Lines end at ``"\\n"``, ``"\\r\\n"`` or ``"\\r"`` (JSON holds neither raw inside a
    string). Characters that ``str.splitlines`` would also break on (U+2028, U+2029, U+0085,
    ``\\x0b``, ``\\x0c``, ``\\x1c`` to ``\\x1e``) stay inside their line.
    """
    for lineno, line in enumerate(_LINE_END.split(text), start=1):
        if line.strip():
            yield lineno, line


def parse_json(text: str, where: str, expected: str) -> Any:
    """``json.loads(text)``, with a :class:`FileFormatError` naming ``where`` on failure.

    Raises:
        FileFormatError: invalid JSON (message, line and column) or nesting too deep to parse.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FileFormatError(
            f"{where} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}). "
            f"Expected {expected}."
        ) from None
    except RecursionError:
        raise FileFormatError(
            f"{where} holds JSON nested too deeply to read (thousands of levels). Expected "
            f"{expected}."
        ) from None


def csv_records(
    text: str, where: str, required: Sequence[str], expected: str
) -> tuple[list[str], list[dict[str, str]]]:
    """The header and the rows of a CSV text, columns stripped of spaces.

    A short row gets ``""`` for its missing fields; extra fields beyond the header are ignored.

    Raises:
        FileFormatError: a header that names a column twice, missing ``required`` columns, or
            malformed CSV (e.g. a quote left open at the end of the file).
    """
    with _CSV_LIMIT_LOCK:
        # The csv module refuses fields over 131,072 characters by default; the whole text is
        # in memory already, so a field as long as the text costs nothing more.
        previous = csv.field_size_limit()
        csv.field_size_limit(max(previous, len(text) + 1))
        try:
            rows = list(csv.reader(io.StringIO(text, newline="")))
        except csv.Error as exc:
            raise FileFormatError(
                f"{where} is not valid CSV ({exc}). Expected {expected}."
            ) from None
        finally:
            csv.field_size_limit(previous)
    if not rows:
        raise FileFormatError(f"{where} has no header row. Expected {expected}.")
    header = [h.strip() for h in rows[0]]
    seen: set[str] = set()
    twice = []
    for h in header:
        if h and h in seen:  # unnamed columns ("a,b,,") are ignored anyway
            twice.append(h)
        seen.add(h)
    if twice:
        raise FileFormatError(
            f"{where} names the column(s) {sorted(set(twice))} more than once in its header "
            f"{header}; rename or drop the duplicates so each column is read. Expected {expected}."
        )
    missing = [c for c in required if c not in header]
    if missing:
        raise FileFormatError(
            f"{where} lacks the column(s) {missing}; found columns {header}. Expected {expected} "
            f"with columns {list(required)}."
        )
    records = []
    for row in rows[1:]:
        if not row:
            continue  # a blank line
        padded = row + [""] * (len(header) - len(row))
        records.append(dict(zip(header, padded[: len(header)], strict=True)))
    return header, records
