"""Issue 17 on the real default model (SmolLM2), quick sizes: the prompting and paper-strength
baselines, per-item reliability and side effects land in a real task's outputs (slow)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import lens_odesteer as lo
from lens_odesteer.evaluation import evaluate
from lens_odesteer.evaluation.cli_eval import task_report
from lens_odesteer.evaluation.side_effects import SIDE_METRICS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model() -> Any:
    return lo.load_model()


@pytest.mark.usefixtures("eval_data")
def test_behaviors_quick_with_baselines(model: Any, tmp_path: Path) -> None:
    summary = evaluate(
        "behaviors",
        model,
        methods=["CAA", "prompt", "prompt+CAA", "CAA@paper"],
        quick=True,
        out_dir=tmp_path,
        n_boot=200,
        progress=False,
    )
    units = summary.attrs["units"]
    # the prompting baseline: instructed both ways, no steering, a shift of its own
    prompt = units[(units["method"] == "prompt") & (units["phase"] == "test")]
    assert (prompt["T"] == 0).all() and (prompt["p_toward"] != prompt["p_away"]).any()
    none = units[(units["method"] == "none") & (units["phase"] == "test")]
    assert (none["shift"] == 0).all()
    # the paper's multiplier for CAA
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["chosen"]["sycophancy/CAA@paper"]["T"] == 1.0
    # reliability: every steered method's items, slopes from -s, 0, +s
    items = summary.attrs["reliability_items"]
    assert set(items["method"]) == {"CAA", "prompt+CAA", "CAA@paper"}
    assert (items["n_strengths"] == 3).all() and np.isfinite(items["slope"]).all()
    rel = pd.read_csv(tmp_path / "reliability.csv")
    assert rel["anti_steerable_frac"].between(0, 1).all()
    assert np.isfinite(rel[["fit_agreement", "fit_separation"]].to_numpy()).all()
    # side effects: three finite columns per method
    side = summary[summary["metric"].isin(SIDE_METRICS)]
    assert len(side) == 3 * 5 and np.isfinite(side["estimate"]).all()
    # power and the report
    paired = summary.attrs["paired"]
    assert paired["verdict"].astype(str).str.len().gt(0).all()
    report = task_report(tmp_path)
    assert "Per-item reliability" in report and "side_fact_pref_change" in report
    assert "detectable (80% power)" in report
