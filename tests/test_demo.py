"""The main job (``lens-odesteer demo``) end to end on SmolLM2, with a short generation."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from lens_odesteer.cli import main
from lens_odesteer.demo import DemoConfig, run_demo

pytestmark = pytest.mark.slow


def test_demo_writes_steerers_summary_and_report(tmp_path: Path) -> None:
    stream = io.StringIO()
    summary = run_demo(
        DemoConfig(n_prompts=2, max_new_tokens=6, out_dir=str(tmp_path)), stream=stream
    )
    text = stream.getvalue()
    assert "Comparison report:" in text and "Mean VADER compound" in text
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["hook"] == "blocks.15.hook_resid_post"
    assert set(saved["continuations"]) == {"unsteered", "CAA", "ODESteer"}
    h = saved["barrier_at_last_prompt_token"]
    # Both edits move the last prompt token up the ODESteer barrier.
    for method in ("CAA", "ODESteer"):
        assert all(a > b for a, b in zip(h[method], h["unsteered"], strict=True))
    report = Path(summary["report"])
    assert report.is_file() and report.parent == tmp_path / "report"
    assert 0.0 <= saved["relative_end_gap_ode_vs_step"] < 0.5
    # The headline gap is the full-dimensional one; a 2-D view shows far less of it.
    assert saved["relative_end_gap_in_view"] < saved["relative_end_gap_ode_vs_step"]
    assert saved["bent_barrier"] is not None or "no barrier" in text
    assert (tmp_path / "odesteer.safetensors").is_file()


def test_cli_reports_bad_arguments_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--strength", "0", "--no-report"]) == 2
    assert "strength" in capsys.readouterr().err
