"""scripts/evidence_page.py: the headline verdicts, commit and wall time come from the run
folders' own files; unfinished runs are listed; the page is spliced between its markers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import evidence_page  # noqa: E402


def _finished_run(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(
        json.dumps(
            {
                "config": {"hook": "blocks.15.hook_resid_post"},
                "splits": {"fold0": {"n_test": 408}, "fold1": {"n_test": 409}},
                "model": {"model_name": "HuggingFaceTB/SmolLM2-135M-Instruct", "dtype": "float32"},
                "library_version": "0.2.0",
                "torch_version": "2.13.0",
                "processes": 1,
                "wall_s": 1234.0,
            }
        )
    )
    rows = [
        (
            "all",
            "ODESteer",
            "CAA",
            "mc2",
            0.0021,
            -0.004,
            0.0081,
            817,
            0.0090,
            "tie (could have detected ±0.009)",
            "validation",
        ),
        ("all", "ODESteer", "CAA", "mc1", 0.0, -0.01, 0.01, 817, 0.01, "tie", "validation"),
        ("all", "none", "CAA", "mc2", -0.03, -0.04, -0.02, 817, 0.01, "lower", "validation"),
        (
            "all",
            "ODESteer@paper",
            "ODESteer",
            "mc2",
            0.1,
            0.05,
            0.15,
            817,
            0.01,
            "higher",
            "design",
        ),
    ]
    cols = [
        "group",
        "method",
        "baseline",
        "metric",
        "estimate",
        "ci_low",
        "ci_high",
        "n_units",
        "mde",
        "verdict",
        "baseline_chosen_by",
    ]
    pd.DataFrame(rows, columns=cols).to_csv(folder / "paired.csv", index=False)
    (folder / "report.md").write_text("### truthfulqa_mc\n\n| method | mc2 |\n|---|---|\n")
    (folder / "steerability.png").write_bytes(b"\x89PNG fake")
    (folder.parent / f"{folder.name}.time").write_text(
        "start truthfulqa_mc --set n_test=null 2026-12-03T10:00:00Z commit aaaaaaa\n"
        "end 2026-12-03T10:05:00Z rc 143 wall_s 300\n"
        "start truthfulqa_mc --set n_test=null --methods none,CAA,ODESteer "
        "2026-12-03T11:00:00Z commit bbbbbbb\n"
        "end 2026-12-03T12:02:00Z rc 0 wall_s 3720\n"
    )


def test_page_from_run_folders(tmp_path: Path) -> None:
    _finished_run(tmp_path / "runs" / "mc")
    (tmp_path / "runs" / "beh" / "parts").mkdir(parents=True)
    (tmp_path / "runs" / "beh" / "parts" / "refusal_CAA_test_0_1.0-abc.csv").write_text("x")
    page = tmp_path / "docs" / "EVIDENCE.md"
    page.parent.mkdir()
    page.write_text(
        f"# Evidence\n\nintro\n\n{evidence_page.BEGIN}\nold\n{evidence_page.END}\n\ntail\n"
    )
    assert (
        evidence_page.main(
            [
                "--run",
                f"smollm2:truthfulqa_mc={tmp_path / 'runs' / 'mc'}",
                "--run",
                f"smollm2:behaviors={tmp_path / 'runs' / 'beh'}",
                "--out",
                str(page),
                "--figures",
                "smollm2:truthfulqa_mc",
            ]
        )
        == 0
    )
    text = page.read_text()
    assert text.startswith("# Evidence\n\nintro\n\n") and text.endswith("\ntail\n")
    assert "\nold\n" not in text
    head = [line for line in text.splitlines() if line.startswith("| smollm2 | truthfulqa_mc")]
    # Only the primary metric's row against the validation-chosen one-step baseline.
    assert head == [
        "| smollm2 | truthfulqa_mc | all | mc2 | CAA | +0.0021 [-0.0040, +0.0081] | 817 | "
        "±0.0090 | **tie (could have detected ±0.009)** |"
    ]
    # A resumed run: both processes' commits, and their wall times added up.
    assert "Commits `aaaaaaa`, `bbbbbbb` (a resumed run" in text and "wall time 1 h 07 min" in text
    assert "--methods none,CAA,ODESteer --out runs/mc" in text
    assert "smollm2 / behaviors: not finished.** The resumable store holds 1 scored part" in text
    figure = page.parent / "evidence" / "smollm2" / "truthfulqa_mc" / "steerability.png"
    assert figure.read_bytes() == b"\x89PNG fake"
    assert "(evidence/smollm2/truthfulqa_mc/steerability.png)" in text
    assert not list(page.parent.glob("*.tmp"))
