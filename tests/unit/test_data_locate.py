"""The data manifest and the data-folder lookup order (explicit, env, user cache, checkout)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lens_odesteer.datasets import locate
from lens_odesteer.datasets.fetch import check_data
from lens_odesteer.datasets.locate import DATA_ENV, find_data_dir, find_data_file, search_dirs
from lens_odesteer.datasets.sources import DATA_FILES, SOURCES, select_files
from lens_odesteer.errors import DataNotFoundError, FileFormatError, InvalidParameterError
from lens_odesteer.evaluation.tasks import make_task
from lens_odesteer.evaluation.tasks.behaviors import BEHAVIORS, TEST_FILE, TRAIN_FILE
from lens_odesteer.evaluation.tasks.detox import RTP, TOXIGEN
from lens_odesteer.evaluation.tasks.sentiment import PROMPTS
from lens_odesteer.evaluation.tasks.truthfulqa_mc import DEFAULT_FILE

REL = "truthfulqa/v1/mc_task.json"


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Empty explicit, env, cache and checkout folders, wired into the lookup."""
    out = {k: tmp_path / k for k in ("explicit", "env", "xdg", "checkout")}
    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(out["xdg"]))
    monkeypatch.setattr(locate.sys, "platform", "linux")
    monkeypatch.setattr(locate, "checkout_data_dir", lambda: out["checkout"])
    out["cache"] = out["xdg"] / "lens_odesteer" / "data"
    return out


def _put(folder: Path, rel: str = REL) -> None:
    (folder / rel).parent.mkdir(parents=True, exist_ok=True)
    (folder / rel).write_text("[]")


def test_manifest_entries_are_pinned_and_complete() -> None:
    for path, f in DATA_FILES.items():
        assert f.path == path and f.dataset == path.split("/", 1)[0] and f.dataset in SOURCES
        assert re.fullmatch(r"[0-9a-f]{64}", f.sha256) and f.size > 0 and f.licence
        commit = SOURCES[f.dataset].commit
        assert re.fullmatch(r"[0-9a-f]{40}", commit)
        assert f.url.startswith(f"https://raw.githubusercontent.com/{SOURCES[f.dataset].repo}/")
        assert f"/{commit}/" in f.url
    assert DATA_FILES["hh_rlhf_harmless_base/test.jsonl"].gzip
    assert DATA_FILES["caa/refusal/generate_dataset.json"].url.endswith(
        "/Datasets/generate/refusal/generate_dataset.json"
    )


def test_every_file_a_task_reads_is_in_the_manifest() -> None:
    needed = {DEFAULT_FILE, PROMPTS, f"{RTP}/toxic.jsonl", f"{RTP}/nontoxic.jsonl"}
    needed |= {f"caa/{b}/{n}" for b in BEHAVIORS for n in (TRAIN_FILE, TEST_FILE)}
    assert needed <= set(DATA_FILES)
    assert any(p.startswith(f"{TOXIGEN}/race/") for p in DATA_FILES)


def test_manifest_matches_the_data_folder(eval_data: Path) -> None:
    results = check_data(data_dir=eval_data)
    assert [r.file.path for r in results if r.status != "ok"] == []


def test_select_files_by_folder_subfolder_and_path() -> None:
    assert {f.dataset for f in select_files(["repe"])} == {"repe"}
    assert len(select_files(["caa/refusal"])) == 3
    assert [f.path for f in select_files([REL, REL])] == [REL]
    with pytest.raises(InvalidParameterError, match="Unknown data name 'caa/refus'"):
        select_files(["caa/refus"])


def test_lookup_order(places: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("explicit", "env", "cache", "checkout"):
        _put(places[name])
    # Without explicit folder or env: the user cache, then the checkout.
    assert find_data_dir(need=[REL]) == places["cache"]
    (places["cache"] / REL).unlink()
    assert find_data_file(REL) == places["checkout"] / REL
    # $LENS_ODESTEER_DATA beats both; an explicit folder beats everything.
    monkeypatch.setenv(DATA_ENV, str(places["env"]))
    assert find_data_file(REL) == places["env"] / REL
    assert find_data_file(REL, places["explicit"]) == places["explicit"] / REL
    assert [why for _, why in search_dirs()] == [f"${DATA_ENV}"]


def test_env_folder_is_used_alone(places: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    _put(places["checkout"])
    monkeypatch.setenv(DATA_ENV, str(places["env"]))
    with pytest.raises(DataNotFoundError) as info:
        find_data_file(REL)
    message = str(info.value)
    assert repr(REL) in message and str(places["env"]) in message
    assert str(places["checkout"]) not in message  # not searched
    assert "lens-odesteer data fetch --only truthfulqa" in message


def test_missing_file_error_names_file_folders_and_command(places: dict[str, Path]) -> None:
    with pytest.raises(DataNotFoundError) as info:
        find_data_file(REL)
    message = str(info.value)
    assert repr(REL) in message
    assert f"{places['cache']} (user cache, does not exist)" in message
    assert f"{places['checkout']} (checkout's shared data, does not exist)" in message
    assert "`lens-odesteer data fetch --only truthfulqa`" in message
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, FileFormatError)
    with pytest.raises(DataNotFoundError, match=f"--only truthfulqa --data-dir {places['env']}"):
        find_data_file(REL, places["env"])


@pytest.mark.parametrize(
    ("task", "missing"),
    [
        ("truthfulqa_mc", DEFAULT_FILE),
        ("sentiment", PROMPTS),
        ("detox", f"{RTP}/toxic.jsonl"),
        ("behaviors", f"caa/{BEHAVIORS[0]}/{TRAIN_FILE}"),
    ],
)
def test_tasks_report_missing_data_with_the_fetch_command(
    task: str, missing: str, tmp_path: Path
) -> None:
    folder = str(tmp_path)
    with pytest.raises(DataNotFoundError) as info:
        make_task(task, data_dir=folder)
    message = str(info.value)
    assert repr(missing) in message and folder in message
    assert f"lens-odesteer data fetch --only {missing.split('/')[0]}" in message


def test_data_doc_lists_every_source_at_its_commit() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "DATA.md").read_text()
    for name, source in SOURCES.items():
        row = next((line for line in doc.splitlines() if line.startswith(f"| `{name}` |")), "")
        assert f"`{source.repo}` @ `{source.commit[:7]}`" in row, name
        assert source.licence.split(" ")[0].rstrip(";") in row, name
