"""Figures of evaluation results from synthetic tidy frames (fast)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.evaluation.store import write_csv
from lens_odesteer.viz.eval_plots import (
    plot_fluency_tradeoff,
    plot_layer_sweep,
    plot_metric_vs_strength,
    plot_paired_forest,
    write_eval_figures,
)


def _units() -> pd.DataFrame:
    rows = []
    for method, scale in (("none", 0.0), ("CAA", 1.0), ("ODESteer", 1.2)):
        for phase, ts in (("val", [0.5, 1.0]), ("test", [1.0])):
            if method == "none":
                ts = [0.0]
            for t in ts:
                for unit in range(5):
                    rows.append(
                        {
                            "split": "s",
                            "method": method,
                            "phase": phase,
                            "T": t * scale,
                            "displacement_frac": 0.1 * t if scale else 0.0,
                            "unit": unit,
                            "seed": 0,
                            "x": unit + t * scale,
                            "ppl": 10 + t,
                        }
                    )
    return pd.DataFrame(rows)


def _summary() -> pd.DataFrame:
    rows = []
    for method, est in (("none", 0.1), ("CAA", 0.3), ("ODESteer", 0.35)):
        for metric, shift in (("x", 0.0), ("ppl", 10.0)):
            rows.append(
                {
                    "group": "all",
                    "method": method,
                    "metric": metric,
                    "estimate": est + shift,
                    "ci_low": est + shift - 0.05,
                    "ci_high": est + shift + 0.05,
                    "T": "1",
                    "n_units": 5,
                }
            )
    return pd.DataFrame(rows)


def test_metric_vs_strength_has_grid_and_chosen_points() -> None:
    fig = plot_metric_vs_strength(_units(), "x")
    legend = [t.name for t in fig.data if t.showlegend is not False]
    assert legend == ["none", "CAA", "ODESteer"]  # one entry per method
    caa = next(
        t for t in fig.data if t.name == "CAA" and t.mode == "lines+markers" and t.x[0] is not None
    )
    assert list(caa.x) == pytest.approx([0.05, 0.1])
    chosen = [t for t in fig.data if t.name == "ODESteer" and t.marker.symbol == "diamond-open"]
    assert len(chosen) == 1 and list(chosen[0].x) == pytest.approx([0.1])


def test_tradeoff_and_forest() -> None:
    fig = plot_fluency_tradeoff(_summary(), "x")
    # Legend in the frame's order; the first method is drawn last (on top).
    assert [t.name for t in sorted(fig.data, key=lambda t: t.legendrank)] == [
        "none",
        "CAA",
        "ODESteer",
    ]
    assert fig.data[-1].name == "none"
    paired = pd.DataFrame(
        {
            "group": "all",
            "method": ["ODESteer", "none"],
            "baseline": "CAA",
            "metric": "x",
            "estimate": [0.05, -0.2],
            "ci_low": [-0.01, -0.3],
            "ci_high": [0.1, -0.1],
            "n_units": 5,
        }
    )
    forest = plot_paired_forest(paired, "x")
    assert list(forest.data[0].y) == ["none", "ODESteer"]
    with pytest.raises(InvalidParameterError, match="No paired"):
        plot_paired_forest(paired, "y")
    with pytest.raises(InvalidParameterError, match="lacks"):
        plot_metric_vs_strength(_units().drop(columns="T"), "x")


def test_layer_figure_and_folder_writer(tmp_path: Path) -> None:
    layers = pd.DataFrame(
        {
            "layer": [0, 3, 0, 3],
            "barrier": ["ODESteer (kernel)"] * 2 + ["ITI (linear probe)"] * 2,
            "auc": [0.6, 0.8, 0.55, 0.7],
        }
    )
    assert len(plot_layer_sweep(layers).data) == 2
    write_csv(tmp_path / "summary.csv", _summary())
    write_csv(tmp_path / "units.csv", _units())
    written = write_eval_figures(tmp_path, formats=("html",))
    assert sorted(p.name for p in written) == ["fluency_tradeoff.html", "metric_vs_strength.html"]
    assert all(p.stat().st_size > 1000 for p in written)
