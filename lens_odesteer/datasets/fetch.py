"""Download the evaluation data into the user's data folder, accepting only the pinned bytes.

:func:`fetch_data` downloads each file of :data:`~lens_odesteer.datasets.sources.DATA_FILES`
(or the ones named) from its pinned URL into :func:`~lens_odesteer.datasets.locate.download_dir`.
A file is streamed into a temporary file beside its target while its sha256 is computed; it is
renamed into place only when the byte count and the sha256 match the manifest, so a cut
connection or a changed upstream file never leaves a file that looks whole. Files already present
with the right sha256 are skipped. :func:`check_data` verifies the files found by the lookup.

``base_url`` (or ``$LENS_ODESTEER_DATA_URL``) replaces every upstream URL by
``<base_url>/<stored path>``: a mirror laid out like the data folder (an HTTP server, or a
``file://`` copy on a shared drive).

Only the standard library is used (``urllib``).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lens_odesteer._atomic import atomic_path
from lens_odesteer._version import __version__
from lens_odesteer.datasets.locate import download_dir, search_dirs
from lens_odesteer.datasets.sources import DataFile, select_files
from lens_odesteer.errors import ChecksumError, DownloadError, InvalidParameterError

__all__ = [
    "MIRROR_ENV",
    "CheckResult",
    "FetchResult",
    "check_data",
    "fetch_data",
    "file_sha256",
    "source_url",
]

#: Environment variable naming a mirror of the data folder (same as ``base_url``).
MIRROR_ENV = "LENS_ODESTEER_DATA_URL"
_CHUNK = 1 << 16
_SCHEMES = ("http", "https", "file")


@dataclass(frozen=True)
class FetchResult:
    """What :func:`fetch_data` did with one file.

    Attributes:
        file: its manifest entry.
        path: where it is stored.
        status: ``"fetched"`` (new), ``"replaced"`` (a wrong copy was there) or ``"present"``
            (already correct; nothing downloaded).
    """

    file: DataFile
    path: Path
    status: Literal["fetched", "replaced", "present"]


@dataclass(frozen=True)
class CheckResult:
    """The state of one file for :func:`check_data`.

    Attributes:
        file: its manifest entry.
        path: the copy found by the lookup (None: in no folder searched).
        status: ``"ok"``, ``"mismatch"`` (present with another sha256) or ``"missing"``.
        sha256: the digest of the copy found (None when missing).
    """

    file: DataFile
    path: Path | None
    status: Literal["ok", "mismatch", "missing"]
    sha256: str | None = None


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _mirror(base_url: str | None) -> str | None:
    base = base_url if base_url is not None else os.environ.get(MIRROR_ENV) or None
    if base is None:
        return None
    scheme = urllib.parse.urlsplit(base).scheme
    if scheme not in _SCHEMES:
        raise InvalidParameterError(
            f"`base_url` must be an http://, https:// or file:// URL of a folder laid out like "
            f"the data folder; got {base!r}."
        )
    return base.rstrip("/")


def source_url(file: DataFile, base_url: str | None = None) -> str:
    """The URL ``file`` is downloaded from: its pinned upstream URL, or ``<base_url>/<path>``.

    Example:
        >>> from lens_odesteer.datasets.sources import manifest_entry
        >>> source_url(manifest_entry("repe/emotions/anger.json"), "http://127.0.0.1:8000/")
        'http://127.0.0.1:8000/repe/emotions/anger.json'
    """
    base = _mirror(base_url)
    return file.url if base is None else f"{base}/{urllib.parse.quote(file.path)}"


def _by_hand(file: DataFile, target: Path) -> str:
    return (
        f"Without network access, download {file.url} on another machine"
        f"{' and gunzip it' if file.gzip else ''}, check that its sha256 is {file.sha256}, and "
        f"save it as {target}; or serve a copy of the data folder and pass --base-url URL (or "
        f"set {MIRROR_ENV}). Then run `lens-odesteer data check`."
    )


def _download(
    file: DataFile, url: str, target: Path, *, inflate: bool, timeout: float | int
) -> None:
    """Stream ``url`` into ``target`` atomically; raise unless the bytes are ``file``'s."""
    request = urllib.request.Request(url, headers={"User-Agent": f"lens-odesteer/{__version__}"})
    digest = hashlib.sha256()
    with atomic_path(target) as tmp:
        n_stored = n_received = 0
        announced: int | None = None
        complete = True
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response, open(
                tmp, "wb"
            ) as out:
                length = response.headers.get("Content-Length")
                announced = int(length) if length and length.isdigit() else None
                decoder = zlib.decompressobj(wbits=31) if inflate else None
                while chunk := response.read(_CHUNK):
                    n_received += len(chunk)
                    data = decoder.decompress(chunk) if decoder else chunk
                    n_stored += len(data)
                    if n_stored > file.size:  # more than the pinned file: stop reading
                        break
                    digest.update(data)
                    out.write(data)
                if decoder is not None and n_stored <= file.size:
                    tail = decoder.flush()
                    n_stored += len(tail)
                    digest.update(tail)
                    out.write(tail)
                    complete = decoder.eof
                out.flush()
                os.fsync(out.fileno())
        except urllib.error.HTTPError as exc:
            raise DownloadError(
                f"Could not download {file.path!r} from {url} (HTTP {exc.code} {exc.reason}). "
                f"{_by_hand(file, target)}"
            ) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError, zlib.error) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            why = f"{type(reason).__name__}: {reason}" if isinstance(reason, Exception) else reason
            raise DownloadError(
                f"Could not download {file.path!r} from {url} ({why}). "
                f"{_by_hand(file, target)}"
            ) from None
        if (announced is not None and n_received < announced) or not complete:
            expected = f"{announced} bytes" if announced is not None else "a complete gzip stream"
            raise DownloadError(
                f"Incomplete download of {file.path!r} from {url}: the connection ended after "
                f"{n_received} bytes, expected {expected}; nothing was saved. Run the command "
                "again to retry."
            )
        got = digest.hexdigest() if n_stored <= file.size else "(not computed)"
        if n_stored != file.size or got != file.sha256:
            size = f"more than {file.size}" if n_stored > file.size else str(n_stored)
            raise ChecksumError(
                f"Checksum mismatch for {file.path!r} downloaded from {url}: expected sha256 "
                f"{file.sha256} ({file.size} bytes), got {got} ({size} bytes); nothing was "
                "saved. The source no longer serves the pinned file: check the mirror given "
                f"with --base-url/{MIRROR_ENV}, or get the file by hand ({file.url})."
            )


def fetch_data(
    names: Iterable[str] | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    base_url: str | None = None,
    timeout: float | int = 60.0,
    log: Callable[[str], None] | None = None,
) -> list[FetchResult]:
    """Download the named data files (all by default) and verify their sha256.

    Main arguments:
        names: source folders (``"truthfulqa"``), sub-folders (``"caa/refusal"``) or stored
            paths; None: every file of the manifest (about 14 MB).
        data_dir: where to store them (default: ``$LENS_ODESTEER_DATA``, else the user cache).
        base_url: a mirror laid out like the data folder (default: ``$LENS_ODESTEER_DATA_URL``,
            else each file's pinned upstream URL).

    Other arguments:
        timeout: seconds to wait for the server on each connection and read.
        log: called with one line per file (e.g. ``print``); None: silent.

    Returns:
        One :class:`FetchResult` per file, in manifest order.

    Raises:
        DownloadError: a file could not be downloaded (the message gives the URL and how to get
            the file by hand); files fetched before it are kept.
        ChecksumError: a download had other bytes than the pinned ones; nothing was saved.
        InvalidParameterError: an unknown name or a bad ``base_url``.
    """
    files = select_files(names)
    mirror = _mirror(base_url)  # a bad URL is rejected before any download
    root = download_dir(data_dir)
    results = []
    for file in files:
        target = root / file.path
        status: Literal["fetched", "replaced", "present"] = "fetched"
        if target.is_file():
            if target.stat().st_size == file.size and file_sha256(target) == file.sha256:
                results.append(FetchResult(file, target, "present"))
                if log is not None:
                    log(f"present   {file.path}")
                continue
            status = "replaced"
        url = source_url(file, mirror)
        _download(file, url, target, inflate=file.gzip and mirror is None, timeout=timeout)
        results.append(FetchResult(file, target, status))
        if log is not None:
            log(f"{status:<9} {file.path} ({file.size} bytes) from {url}")
    return results


def check_data(
    names: Iterable[str] | None = None, *, data_dir: str | os.PathLike[str] | None = None
) -> list[CheckResult]:
    """Verify the sha256 of each named file (all by default) where the lookup finds it.

    Each file is looked for in the folders of
    :func:`~lens_odesteer.datasets.locate.search_dirs` (``data_dir`` alone when given), and the
    first copy found is hashed.
    """
    folders = [folder for folder, _ in search_dirs(data_dir)]
    results = []
    for file in select_files(names):
        path = next((f / file.path for f in folders if (f / file.path).is_file()), None)
        if path is None:
            results.append(CheckResult(file, None, "missing"))
            continue
        digest = file_sha256(path)
        status: Literal["ok", "mismatch"] = "ok" if digest == file.sha256 else "mismatch"
        results.append(CheckResult(file, path, status, digest))
    return results
