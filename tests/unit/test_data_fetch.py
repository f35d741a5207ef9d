"""`lens-odesteer data fetch/check` against a loopback HTTP server serving a copy of the data.

The server listens on 127.0.0.1 only and stops by itself after a minute; every download in this
module is checked to go to 127.0.0.1 (a guard around ``urllib.request.urlopen``).
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import shutil
import socket
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lens_odesteer.cli import main
from lens_odesteer.datasets import sources
from lens_odesteer.datasets.fetch import MIRROR_ENV, check_data, fetch_data
from lens_odesteer.datasets.sources import DataFile
from lens_odesteer.errors import ChecksumError, DownloadError

#: A handful of small files (about 20 kB in all) from three folders.
FILES = [
    "toxigen_demonstrations/LICENSE.txt",
    "toxigen_demonstrations/race/hate_asian_sentences.txt",
    "repe/emotions/anger.json",
    "caa/refusal/test_dataset_open_ended.json",
]
SERVER_LIFETIME_S = 60.0


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    requests: list[str]
    #: stored path -> "short" (Content-Length of the whole file, half the body, then close) or
    #: "unsized" (no Content-Length, half the body, then close).
    faults: dict[str, str]


class _Handler(http.server.SimpleHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        rel = urllib.parse.unquote(self.path.lstrip("/"))
        self.server.requests.append(rel)
        fault = self.server.faults.get(rel)
        if fault is None:
            super().do_GET()
            return
        body = (Path(self.directory) / rel).read_bytes()
        self.send_response(200)
        if fault == "short":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.close_connection = True

    def log_message(self, *args: Any) -> None:  # keep the test output clean
        pass


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any download that would leave this machine; ignore a mirror set in the shell."""
    real = urllib.request.urlopen
    monkeypatch.delenv(MIRROR_ENV, raising=False)

    def guarded(request: Any, *args: Any, **kwargs: Any) -> Any:
        url = request.full_url if isinstance(request, urllib.request.Request) else request
        host = urllib.parse.urlsplit(url).hostname
        assert host == "127.0.0.1", f"test tried to download from {url}"
        return real(request, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", guarded)


@pytest.fixture
def served(tmp_path: Path, eval_data: Path) -> Iterator[tuple[str, _Server, Path]]:
    """(base URL, server, served folder): a copy of FILES served on 127.0.0.1."""
    root = tmp_path / "served"
    for rel in FILES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(eval_data / rel, root / rel)
    server = _Server(("127.0.0.1", 0), lambda *a: _Handler(*a, directory=str(root)))
    server.requests, server.faults = [], {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    watchdog = threading.Timer(SERVER_LIFETIME_S, server.shutdown)
    watchdog.daemon = True
    watchdog.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", server, root
    finally:
        watchdog.cancel()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _all_files(folder: Path) -> list[str]:
    """Every file under ``folder`` (hidden temporary files included), relative, sorted."""
    if not folder.exists():
        return []
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_fetch_downloads_verifies_and_second_fetch_is_a_noop(
    served: tuple[str, _Server, Path], tmp_path: Path
) -> None:
    url, server, root = served
    data = tmp_path / "data"
    results = fetch_data(FILES, data_dir=data, base_url=url, timeout=5)
    assert [r.status for r in results] == ["fetched"] * len(FILES)
    assert _all_files(data) == sorted(FILES)
    for rel in FILES:
        assert (data / rel).read_bytes() == (root / rel).read_bytes()
    assert all(r.status == "ok" for r in check_data(FILES, data_dir=data))
    n_requests = len(server.requests)
    again = fetch_data(FILES, data_dir=data, base_url=url, timeout=5)
    assert [r.status for r in again] == ["present"] * len(FILES)
    assert len(server.requests) == n_requests  # nothing downloaded the second time


def test_wrong_checksum_is_rejected_and_nothing_is_left(
    served: tuple[str, _Server, Path], tmp_path: Path
) -> None:
    url, _, root = served
    rel = "repe/emotions/anger.json"
    tampered = (root / rel).read_bytes().replace(b"a", b"o", 1)
    (root / rel).write_bytes(tampered)
    data = tmp_path / "data"
    with pytest.raises(ChecksumError) as info:
        fetch_data([rel], data_dir=data, base_url=url, timeout=5)
    message = str(info.value)
    assert sources.DATA_FILES[rel].sha256 in message
    assert hashlib.sha256(tampered).hexdigest() in message
    assert "expected" in message and "nothing was saved" in message
    assert _all_files(data) == []


def test_wrong_download_never_replaces_a_good_file(
    served: tuple[str, _Server, Path], tmp_path: Path
) -> None:
    url, _, root = served
    rel = "toxigen_demonstrations/LICENSE.txt"
    data = tmp_path / "data"
    fetch_data([rel], data_dir=data, base_url=url, timeout=5)
    good = (data / rel).read_bytes()
    (data / rel).write_bytes(good + b"local edit")  # wrong: fetch must try to replace it
    (root / rel).write_bytes(good + b"server edit")  # ... but the server is wrong too
    with pytest.raises(ChecksumError):
        fetch_data([rel], data_dir=data, base_url=url, timeout=5)
    assert (data / rel).read_bytes() == good + b"local edit"
    assert _all_files(data) == [rel]


@pytest.mark.parametrize(("fault", "error"), [("short", DownloadError), ("unsized", ChecksumError)])
def test_cut_connection_leaves_no_file_and_no_temporary_file(
    served: tuple[str, _Server, Path], tmp_path: Path, fault: str, error: type[Exception]
) -> None:
    url, server, _ = served
    rel = "caa/refusal/test_dataset_open_ended.json"
    server.faults[rel] = fault
    data = tmp_path / "data"
    with pytest.raises(error) as info:
        fetch_data(FILES, data_dir=data, base_url=url, timeout=5)
    if fault == "short":
        assert "Incomplete download" in str(info.value)
    # Files before the cut one are kept whole; the cut one and later ones are absent.
    assert rel not in _all_files(data)
    assert all(not name.rsplit("/", 1)[-1].startswith(".") for name in _all_files(data))
    assert all(r.status == "ok" for r in check_data(_all_files(data), data_dir=data))


def test_unreachable_server_gives_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a loopback port with nobody listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    data = tmp_path / "data"
    rel = "repe/emotions/anger.json"
    with pytest.raises(DownloadError) as info:
        fetch_data([rel], data_dir=data, base_url=url, timeout=5)
    message = str(info.value)
    assert f"{url}{rel}" in message  # which URL failed
    assert sources.DATA_FILES[rel].url in message  # where to get it by hand
    assert sources.DATA_FILES[rel].sha256 in message and "--base-url" in message
    assert _all_files(data) == []


def test_gzip_upstream_is_stored_decompressed(
    served: tuple[str, _Server, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _, root = served
    raw = b'{"chosen": "a", "rejected": "b"}\n' * 50
    (root / "test.jsonl.gz").write_bytes(gzip.compress(raw))
    (root / "cut.jsonl.gz").write_bytes(gzip.compress(raw)[:-12])
    for name in ("test", "cut"):
        entry = DataFile(
            path=f"gz_probe/{name}.jsonl",
            url=f"{url}{name}.jsonl.gz",
            sha256=hashlib.sha256(raw).hexdigest(),
            size=len(raw),
            licence="MIT",
            dataset="gz_probe",
            gzip=True,
        )
        monkeypatch.setitem(sources.DATA_FILES, entry.path, entry)
    data = tmp_path / "data"
    fetch_data(["gz_probe/test.jsonl"], data_dir=data, timeout=5)
    assert (data / "gz_probe" / "test.jsonl").read_bytes() == raw
    with pytest.raises(DownloadError, match="Incomplete"):
        fetch_data(["gz_probe/cut.jsonl"], data_dir=data, timeout=5)
    assert _all_files(data) == ["gz_probe/test.jsonl"]


def test_cli_fetch_check_and_errors(
    served: tuple[str, _Server, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _, _ = served
    data = tmp_path / "data"
    only = ["--only", *FILES, "--data-dir", str(data)]
    assert main(["data", "fetch", *only, "--base-url", url, "--timeout", "5"]) == 0
    assert f"{len(FILES)} fetched" in capsys.readouterr().out
    assert main(["data", "check", *only]) == 0
    assert f"{len(FILES)} ok, 0 wrong, 0 missing" in capsys.readouterr().out
    (data / FILES[0]).write_text("changed")
    assert main(["data", "check", *only]) == 1
    assert f"MISMATCH {data / FILES[0]}" in capsys.readouterr().out
    assert main(["data", "fetch", "--only", "nonsense", "--data-dir", str(data)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lens-odesteer: error: Unknown data name 'nonsense'")
    assert err.count("\n") == 1
    bad_url = ["--base-url", "ftp://example.org/"]
    assert main(["data", "fetch", "--only", FILES[0], "--data-dir", str(data), *bad_url]) == 2
    assert "http://, https:// or file://" in capsys.readouterr().err
