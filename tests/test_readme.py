"""The README runs as written: every Python block on its own, and its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def _run(block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Run one block in a fresh namespace, in an empty folder (a reader's new session)."""
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "readme"}
    exec(compile(block, str(README), "exec"), namespace)
    return namespace


def test_readme_opens_with_exactly_the_two_commands() -> None:
    first = re.search(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    assert first is not None
    lines = [ln.split("#")[0].strip() for ln in first.group(1).strip().splitlines()]
    assert lines == ["bash scripts/dev.sh demo", "bash scripts/dev.sh test"]
    ci = (README.parent / ".ci" / "run").read_text()
    assert "bash scripts/dev.sh test" in ci


def test_readme_is_short_and_links_only_inside_the_repo() -> None:
    text = README.read_text()
    assert len(text.splitlines()) < 260
    assert "../shared" not in text
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if not target.startswith("http"):
            assert (README.parent / target).exists(), target


def test_readme_block_count() -> None:
    assert len(_python_blocks()) == 4


def test_readme_composition_block_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ns = _run(_python_blocks()[1], tmp_path, monkeypatch)
    assert "flow" in capsys.readouterr().out
    assert ns["ode"].steps == 5  # type: ignore[attr-defined]


@pytest.mark.slow
def test_readme_quickstart_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(_python_blocks()[0], tmp_path, monkeypatch)
    out = capsys.readouterr().out
    assert out.count("[") >= 1, "lo.generate prints a list of completions"
    assert "Our trip to the mountains" in out, "model.generate prints prompt + completion"


@pytest.mark.slow
def test_readme_analysis_script_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(_python_blocks()[2], tmp_path, monkeypatch)
    lines = [ln.split() for ln in capsys.readouterr().out.strip().splitlines()]
    assert [int(ln[0]) for ln in lines] == [15, 20, 29]
    assert all(float(ln[1]) > 0 for ln in lines), "the edit reaches every later layer"


@pytest.mark.slow
def test_readme_figures_block_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _run(_python_blocks()[3], tmp_path, monkeypatch)
    assert (tmp_path / "figures" / "level_sets.html").is_file()
    assert (tmp_path / "figures" / "profile.html").is_file()
