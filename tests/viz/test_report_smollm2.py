"""The comparison report on SmolLM2: HTML, CSV frames and exported figures, with their numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.errors import HookNameError, ShapeMismatchError
from lens_odesteer.report import comparison_report
from lens_odesteer.viz.export import static_export_status

pytestmark = pytest.mark.slow

FIGURES = (
    "level_sets",
    "level_sets_difference",
    "profile",
    "profile_difference",
    "heatmap",
    "targets",
    "slider",
)
BENT_FIGURES = ("level_sets_difference_bent", "profile_difference_bent", "heatmap_bent")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> object:
    torch.set_num_threads(1)
    model = lo.load_model(progress=False)
    hook = lo.resid_post(15)
    data = lo.load_builtin("sentiment")
    pos = lo.collect_activations(model, data.positive_texts()[:24], hook, progress=False)
    neg = lo.collect_activations(model, data.negative_texts()[:28], hook, progress=False)
    out = tmp_path_factory.mktemp("report")
    return comparison_report(
        model,
        hook,
        pos,
        neg[:24],
        out,
        start_acts=neg[24:],
        prompt="The movie was",
        targets=[" great"],
        resolution=25,
        static_formats=("png", "pdf"),
        bent=lo.ODESteer(lo.sketch_barrier(gamma=10.0, degree=3)).fit(pos, neg[:24]),
    )


def test_html_report_is_complete_and_self_contained(report) -> None:
    text = report.html_path.read_text()
    n = len(FIGURES) + len(BENT_FIGURES)
    assert set(report.figures) == set(FIGURES) | set(BENT_FIGURES)
    assert text.count('class="plotly-graph-div"') == n
    assert '<script src="http' not in text  # plotly.js is inlined: opens offline
    assert text.count("Plotly.newPlot") == n
    assert text.count("Plotly.addFrames('") == 1  # the slider animates without a server
    assert "Plotly.animate(" not in text  # and waits for the reader instead of playing
    for needle in ("blocks.15.hook_resid_post", "StepODESteer", "slice", "Summary", "bends"):
        assert needle in text


def test_frames_round_trip_through_csv(report) -> None:
    out = report.html_path.parent
    for name, frame in report.frames.items():
        back = pd.read_csv(out / f"{name}.csv", keep_default_na=False)
        assert back.shape == frame.shape, name
        numeric = frame.select_dtypes("number").columns
        assert np.allclose(back[numeric].to_numpy(float), frame[numeric].to_numpy(float)), name


def test_summary_matches_the_frames(report) -> None:
    summary = report.frames["summary"].set_index("method")
    paths = report.frames["paths"]
    assert list(summary.index) == ["ODESteer", "StepODESteer", "CAA"]
    gap = summary.loc["ODESteer", "T"]
    assert summary.loc["CAA", "T"] == pytest.approx(1.0)  # CAA x1 = same displacement
    assert summary.loc["CAA", "mean_displacement"] == pytest.approx(gap, rel=1e-4)
    ode = paths[paths.method == "ODESteer"]
    assert summary.loc["ODESteer", "mean_h_end"] == pytest.approx(
        ode[ode.step == ode.step.max()]["h"].mean()
    )
    assert (summary["mean_h_end"] > summary["mean_h_start"]).all()
    saved = json.loads((report.html_path.parent / "summary.json").read_text())
    assert saved["reference"] == "ODESteer" and saved["one_step"] == "StepODESteer"
    assert 0.0 <= saved["relative_end_gap"] < 0.5
    assert saved["diagnostic"].startswith("At these settings (ODESteer")
    diag = report.frames["diagnostic"].set_index("metric")["value"]
    assert 0.9 < diag["mean_pairwise_cosine"] <= 1.0 and diag["auc"] > 0.9
    # The headline is the full-dimensional gap of the diagnostic, not the 2-D view's.
    assert saved["relative_end_gap"] == pytest.approx(diag["gap_median"])
    assert saved["relative_end_gap_in_view"] < 0.5 * saved["relative_end_gap"]
    assert saved["difference_view_shows"] > 0.8
    bent = report.frames["diagnostic_bent"].set_index("metric")["value"]
    assert saved["bent"]["relative_end_gap"] == pytest.approx(bent["gap_median"])
    assert saved["bent"]["bend"] > saved["bend"]
    assert f"{100 * saved['relative_end_gap']:.2f}%" in report.html_path.read_text()


def test_figures_were_exported(report) -> None:
    files = {p.name for ps in report.files.values() for p in ps}
    assert {f"{n}.json" for n in FIGURES} <= files
    if static_export_status() is None:
        assert report.static_skipped is None
        for name in FIGURES:
            png = report.html_path.parent / "figures" / f"{name}.png"
            assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 20_000
            pdf = report.html_path.parent / "figures" / f"{name}.pdf"
            assert pdf.read_bytes()[:5] == b"%PDF-"
    else:
        assert report.static_skipped and "chromium" in report.static_skipped
        assert "were not written" in report.html_path.read_text()


def test_report_rejects_mismatched_inputs(tmp_path: Path) -> None:
    model = lo.tiny_bridge()
    with pytest.raises(ShapeMismatchError, match="d_model"):
        comparison_report(
            model, "blocks.1.hook_resid_post", torch.randn(5, 64), torch.randn(5, 32), tmp_path
        )
    with pytest.raises(HookNameError):
        comparison_report(
            model, "blocks.9.hook_resid_post", torch.randn(5, 64), torch.randn(5, 64), tmp_path
        )
    assert list(tmp_path.iterdir()) == []
