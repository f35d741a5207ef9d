"""The ``.time`` files that the evaluation shell wrappers write beside each run folder.

Each process of a run adds two lines: ``start [options] <UTC time> commit <sha>`` when it
starts and ``end <UTC time> rc <exit status> wall_s <seconds>`` when it ends. A resumed run has
several processes; the last one may have no end line yet. ``scripts/results_tables.py`` and
``scripts/evidence_page.py`` read them through :func:`read_processes`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

_START = re.compile(
    r"^start (?:(?P<options>.*) )?(?P<at>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) commit (?P<sha>\w+)$"
)
_END = re.compile(r"^end (?P<at>\S+) rc (?P<rc>\S+) wall_s (?P<wall>\d+)$")


def utc(stamp: str) -> datetime:
    """``2026-12-03T17:59:47Z`` as an aware datetime."""
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Process:
    """One process of a run: its start line and, once it ended, its end line."""

    started: datetime
    options: str
    commit: str
    ended: datetime | None = None
    rc: str | None = None
    wall_s: float | None = None


def read_processes(path: Path) -> list[Process]:
    """The processes of a ``.time`` file, in order (an end line closes the start before it)."""
    out: list[Process] = []
    for line in path.read_text().splitlines():
        start = _START.match(line)
        if start:
            out.append(Process(utc(start["at"]), start["options"] or "", start["sha"]))
            continue
        end = _END.match(line)
        if end and out and out[-1].ended is None:
            last = out[-1]
            out[-1] = Process(
                last.started, last.options, last.commit, utc(end["at"]), end["rc"],
                float(end["wall"]),
            )  # fmt: skip
    return out


def written_at(results_json: Path) -> datetime:
    """When a run's ``results.json`` was written (processes after it did not make it)."""
    return datetime.fromtimestamp(results_json.stat().st_mtime, timezone.utc)
