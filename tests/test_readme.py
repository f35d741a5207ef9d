"""The README's quickstart runs as written (on the real default model) and its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_opens_with_exactly_the_two_commands() -> None:
    first = re.search(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    assert first is not None
    lines = [ln.split("#")[0].strip() for ln in first.group(1).strip().splitlines()]
    assert lines == ["bash scripts/dev.sh demo", "bash scripts/dev.sh test"]
    ci = (README.parent / ".ci" / "run").read_text()
    assert "bash scripts/dev.sh test" in ci


@pytest.mark.slow
def test_readme_quickstart_runs(tmp_path, monkeypatch, capsys) -> None:
    blocks = _python_blocks()
    assert blocks, "README has no python quickstart"
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "readme"}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    out = capsys.readouterr().out
    assert out.count("[") >= 2, "both generate calls print a list of completions"
    # The analysis block continues in the same session, as a reader would run it.
    for block in blocks[1:]:
        exec(compile(block, str(README), "exec"), namespace)
    if len(blocks) > 1:
        assert (tmp_path / "report" / "report.html").is_file()
        assert (tmp_path / "figures" / "level_sets.html").is_file()
