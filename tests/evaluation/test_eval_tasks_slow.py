"""Quick mode of every task on the real default model (SmolLM2), with checks on the numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.evaluation import evaluate, make_task
from lens_odesteer.evaluation.sampling import sample_continuations
from lens_odesteer.hooks import SteeringPlan, generate

pytestmark = pytest.mark.slow
HOOK = "blocks.15.hook_resid_post"


@pytest.fixture(scope="module")
def model() -> Any:
    return lo.load_model()


def _quick(task: str, model: Any, tmp_path: Path) -> pd.DataFrame:
    summary = evaluate(
        task,
        model,
        methods=["CAA"],
        quick=True,
        strength="displacement",
        grid=(0.1,),
        out_dir=tmp_path,
        n_boot=200,
        progress=False,
    )
    return summary.attrs["units"]


@pytest.mark.usefixtures("eval_data")
def test_truthfulqa_mc_numbers(model: Any, tmp_path: Path) -> None:
    units = _quick("truthfulqa_mc", model, tmp_path)
    test = units[units.phase == "test"]
    np.testing.assert_allclose(test["mc2"] + test["mc2_false"], 1.0, atol=1e-9)
    assert set(test["mc1"]) <= {0.0, 1.0} and test["mc2"].between(0, 1).all()
    assert set(test["split"]) == {"fold0", "fold1"}  # 2-fold CV, each question tested once
    assert test[test.method == "none"]["unit"].is_unique
    task = make_task("truthfulqa_mc", quick=True)
    split = task.splits()[0]
    q = split.test[0]
    none = test[(test.method == "none") & (test.unit == q.qid)].iloc[0]
    # independent path: one full forward per answer, MC2 by hand
    lps = {}
    for answer, _ in q.mc2:
        ids = model.to_tokens(f"{q.prompt} {answer}")
        n = model.to_tokens(q.prompt).shape[1]
        logp = torch.log_softmax(model(ids).float(), -1)[0]
        lps[answer] = sum(float(logp[t - 1, ids[0, t]]) for t in range(n, ids.shape[1]))
    p = np.exp(np.array(list(lps.values())) - max(lps.values()))
    mc2 = p[[t for _, t in q.mc2]].sum() / p.sum()
    assert none["mc2"] == pytest.approx(mc2, abs=1e-4)
    # T = 0 is exactly no steering
    caa = lo.CAA().fit(torch.randn(4, 576) + 1, torch.randn(4, 576))
    zero = task.score(model, SteeringPlan({HOOK: caa}, T=0.0), [q], phase="test")
    again = task.score(model, None, [q], phase="test")
    assert zero["mc2"].item() == again["mc2"].item() == pytest.approx(none["mc2"], abs=1e-9)


def test_sampling_none_and_zero_strength_equal_plain_generation(model: Any) -> None:
    prompts = ["The weather today", "My favourite food is"]
    kw = {"max_new_tokens": 6, "temperature": 0.7, "top_p": 0.9}
    none = sample_continuations(model, prompts, None, seeds=[3, 4], **kw)
    torch.manual_seed(3 * 1_000_003)
    plain = generate(model, prompts * 2, None, do_sample=True, **kw)
    assert none["continuation"].tolist() == plain
    assert none["seed"].tolist() == [3, 3, 4, 4]
    caa = lo.CAA().fit(torch.randn(4, 576) + 1, torch.randn(4, 576))
    zero_plan = SteeringPlan({HOOK: caa}, T=0.0)
    zero = sample_continuations(model, prompts, zero_plan, seeds=[3, 4], **kw)
    assert zero["continuation"].tolist() == plain


@pytest.mark.usefixtures("eval_data")
@pytest.mark.parametrize("task", ["sentiment", "detox", "truthfulqa_gen"])
def test_generation_tasks_quick(task: str, model: Any, tmp_path: Path) -> None:
    units = _quick(task, model, tmp_path)
    test = units[units.phase == "test"]
    assert set(test["method"]) == {"none", "CAA"}
    ppl = test["ppl"].dropna()
    assert (ppl >= 1.0).all() and len(ppl) > 0
    for n in (1, 2, 3):
        assert test[f"dist{n}"].dropna().between(0, 1).all()
    primary = make_task(task, quick=True).primary
    assert test[primary].notna().all()
    if task == "detox":
        assert test["toxicity"].between(0, 1).all()
    if task == "sentiment":
        assert test["sentiment"].between(-1, 1).all()


@pytest.mark.usefixtures("eval_data")
def test_behaviors_quick(model: Any, tmp_path: Path) -> None:
    units = _quick("behaviors", model, tmp_path)
    test = units[units.phase == "test"]
    none = test[test.method == "none"]
    assert (none["shift"] == 0).all() and (none["p_toward"] == none["p_away"]).all()
    assert test["p_toward"].between(0, 1).all() and test["letter_mass"].between(0, 1).all()
    caa = test[test.method == "CAA"]
    assert not np.allclose(caa["p_toward"], caa["p_away"])  # steering both ways differs
