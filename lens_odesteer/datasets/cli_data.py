"""The work behind ``lens-odesteer data list | fetch | check``: call the library, print results.

Progress goes to stderr, results to stdout. ``check`` returns exit code 1 when a file found has
the wrong sha256 (missing files are listed, with the command that fetches them).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence

from lens_odesteer.datasets.fetch import check_data, fetch_data
from lens_odesteer.datasets.locate import download_dir, search_dirs
from lens_odesteer.datasets.sources import SOURCES, DataFile, select_files
from lens_odesteer.errors import InvalidParameterError

__all__ = ["list_text", "run_data_command"]


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def _where(data_dir: str | None) -> list[str]:
    folders = ", ".join(
        f"{folder} ({why}{'' if folder.is_dir() else ', does not exist'})"
        for folder, why in search_dirs(data_dir)
    )
    return [f"data folders searched: {folders}", f"fetch writes to: {download_dir(data_dir)}"]


def list_text(
    names: Sequence[str] | None = None, *, data_dir: str | None = None, files: bool = False
) -> str:
    """One paragraph per dataset: size, licence, pinned source, tasks, files present."""
    folders = [folder for folder, _ in search_dirs(data_dir)]
    chosen = select_files(names)
    lines = [*_where(data_dir), ""]
    for name, source in SOURCES.items():
        mine = [f for f in chosen if f.dataset == name]
        if not mine:
            continue
        found = {f.path: next((d for d in folders if (d / f.path).is_file()), None) for f in mine}
        n_found = sum(v is not None for v in found.values())
        lines.append(
            f"{name}: {len(mine)} files, {_size(sum(f.size for f in mine))}, "
            f"{n_found}/{len(mine)} present"
        )
        lines.append(f"    {source.title}")
        lines.append(f"    licence: {source.licence}")
        lines.append(f"    source: {source.page}")
        if source.note:
            lines.append(f"    note: {source.note}")
        used = ", ".join(source.used_by) if source.used_by else "no task (library loaders)"
        lines.append(f"    used by: {used}")
        if files:
            for f in mine:
                where = found[f.path]
                state = "missing" if where is None else f"in {where}"
                lines.append(f"      {f.path}  {_size(f.size)}  sha256 {f.sha256[:16]}  {state}")
    return "\n".join(lines)


def _fetch_hint(missing: list[DataFile], data_dir: str | None) -> str:
    folders = sorted({f.dataset for f in missing})
    target = "" if data_dir is None else f" --data-dir {data_dir}"
    return f"lens-odesteer data fetch --only {' '.join(folders)}{target}"


def run_data_command(args: argparse.Namespace) -> int:
    """Run ``lens-odesteer data <list|fetch|check>``; return the exit code."""
    if args.data_command == "list":
        print(list_text(args.only, data_dir=args.data_dir, files=args.files))
        return 0
    if args.data_command == "fetch":
        if not args.timeout > 0:
            raise InvalidParameterError(f"--timeout must be > 0 seconds; got {args.timeout}.")
        fetched = fetch_data(
            args.only,
            data_dir=args.data_dir,
            base_url=args.base_url,
            timeout=args.timeout,
            log=lambda line: print(line, file=sys.stderr, flush=True),
        )
        counts = Counter(r.status for r in fetched)
        print(
            f"{counts['fetched']} fetched, {counts['replaced']} replaced, {counts['present']} "
            f"already present; all {len(fetched)} verified (sha256) in "
            f"{download_dir(args.data_dir)}"
        )
        return 0
    results = check_data(args.only, data_dir=args.data_dir)
    bad = [r for r in results if r.status == "mismatch"]
    missing = [r.file for r in results if r.status == "missing"]
    for r in bad:
        print(
            f"MISMATCH {r.path}: sha256 {r.sha256}, expected {r.file.sha256}; "
            "`lens-odesteer data fetch` replaces it"
        )
    for f in missing:
        print(f"missing  {f.path}")
    n_ok = len(results) - len(bad) - len(missing)
    print(f"{n_ok} ok, {len(bad)} wrong, {len(missing)} missing (of {len(results)})")
    if missing:
        print(f"fetch the missing files with: {_fetch_hint(missing, args.data_dir)}")
    return 1 if bad else 0
