"""The evaluation runner on a tiny model with a small synthetic task: fair selection, resume,
no-steering and T=0 identities, split-path equality (fast)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.evaluation import evaluate
from lens_odesteer.evaluation import likelihood as lik
from lens_odesteer.evaluation.likelihood import answer_logprobs, next_token_logprobs
from lens_odesteer.evaluation.tasks.base import Split, Task
from lens_odesteer.hooks import SteeringPlan
from lens_odesteer.models import tiny_bridge

HOOK = "blocks.1.hook_resid_post"
WORDS = ["red", "blue", "green", "cat", "dog", "sun", "rain", "tree", "road", "sea"]


class TinyTask(Task):
    """Log-likelihood of a fixed answer after short prompts (higher is 'better')."""

    name: ClassVar[str] = "tiny"
    kind: ClassVar[str] = "likelihood"
    primary: ClassVar[str] = "lp"
    metrics: ClassVar[tuple[str, ...]] = ("lp",)

    def __init__(self, seed: int = 0, quick: bool = False) -> None:
        super().__init__(seed=seed, quick=quick)
        self.calls = 0

    def splits(self) -> list[Split]:
        units = [(i, f"The {w} is", " good") for i, w in enumerate(WORDS)]
        return [
            Split(
                name="only",
                pos_texts=[f"The {w} is good" for w in WORDS],
                neg_texts=[f"The {w} is bad" for w in WORDS],
                val=units[:4],
                test=units[4:],
                ref_prompts=[p for _, p, _ in units[:4]],
            )
        ]

    def score(
        self,
        model: Any,
        plan: SteeringPlan | None,
        units: list[Any],
        *,
        phase: str,
        reverse: SteeringPlan | None = None,
    ) -> pd.DataFrame:
        self.calls += 1
        lp = answer_logprobs(model, [p for _, p, _ in units], [a for _, _, a in units], plan)
        return pd.DataFrame({"unit": [u for u, _, _ in units], "seed": 0, "lp": lp})

    def config(self) -> dict[str, Any]:
        return {"words": WORDS}


@pytest.fixture(scope="module")
def model() -> Any:
    return tiny_bridge()


def test_evaluate_selects_resumes_and_reports(model: Any, tmp_path: Path) -> None:
    methods = ["CAA", "StepODESteer", "ODESteer"]
    task = TinyTask()
    summary = evaluate(
        task,
        model,
        methods=methods,
        layer=1,
        out_dir=tmp_path,
        n_boot=200,
        grid=(0.05, 0.2),
        progress=False,
    )
    assert list(dict.fromkeys(summary["method"])) == ["none", *methods]
    assert (summary["ci_low"] <= summary["estimate"]).all()
    assert (summary["estimate"] <= summary["ci_high"]).all()
    units = summary.attrs["units"]
    # the chosen T is the better of the two validation strengths
    for method in methods:
        val = units[(units.method == method) & (units.phase == "val")]
        means = val.groupby("T")["lp"].mean()
        chosen = units[(units.method == method) & (units.phase == "test")]["T"].iloc[0]
        assert chosen == means.idxmax()
        fracs = sorted(val.groupby("T")["displacement_frac"].first())
        assert fracs == pytest.approx([0.05, 0.2], rel=0.02)
    paired = summary.attrs["paired"]
    assert set(paired["method"]) == {"none", "ODESteer"} | (set(methods) - {paired["baseline"][0]})
    calls = task.calls
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["library_version"] == lo.__version__ and results["config"]["layer"] == 1
    # rerun: every part is read back, nothing is scored again, same numbers
    again = evaluate(
        task,
        model,
        methods=methods,
        layer=1,
        out_dir=tmp_path,
        n_boot=200,
        grid=(0.05, 0.2),
        progress=False,
    )
    assert task.calls == calls
    assert json.loads((tmp_path / "results.json").read_text())["parts_computed"] == 0
    pd.testing.assert_frame_equal(again, summary)
    for name in ("units.csv", "summary.csv", "paired.csv"):
        assert (tmp_path / name).stat().st_size > 0
    assert not list(tmp_path.rglob("*.tmp"))


def test_none_equals_the_unsteered_model(monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_bridge(n_layers=3)  # a block after the steered one, so scoring can split
    routes: list[tuple[bool, bool]] = []
    real = lik._split_for

    def spy(m: Any, plan: Any) -> Any:
        got = real(m, plan)
        routes.append((plan is None, got is not None))
        return got

    monkeypatch.setattr(lik, "_split_for", spy)
    task = TinyTask()
    summary = evaluate(task, model, methods=["CAA"], layer=1, n_boot=100, progress=False)
    # The runner scores the unsteered model split at the steered hook (the shared cache).
    assert (True, True) in routes and (True, False) not in routes
    units = summary.attrs["units"]
    none = units[(units.method == "none") & (units.phase == "test")].sort_values("unit")
    split = task.splits()[0]
    # independent path: one text at a time, full forward, no helper
    for (i, prompt, answer), got in zip(split.test, none["lp"], strict=True):
        ids = model.to_tokens(prompt + answer)
        n_prompt = model.to_tokens(prompt).shape[1]
        logp = torch.log_softmax(model(ids).float(), -1)[0]
        want = sum(float(logp[t - 1, ids[0, t]]) for t in range(n_prompt, ids.shape[1]))
        assert got == pytest.approx(want, abs=1e-4), i


def test_zero_strength_is_exactly_no_steering(model: Any) -> None:
    pos, neg = torch.randn(16, 64) + 1, torch.randn(16, 64)
    ode = lo.ODESteer(lo.sketch_barrier(n_components=256)).fit(pos, neg)
    prompts, answers = ["The sun is", "A long road to the"], [" good", " sea and back"]
    base = answer_logprobs(model, prompts, answers, None)
    np.testing.assert_array_equal(
        answer_logprobs(model, prompts, answers, SteeringPlan({HOOK: ode}, T=0.0)), base
    )
    steered = answer_logprobs(model, prompts, answers, SteeringPlan({HOOK: ode}, T=5.0))
    assert not np.allclose(steered, base)
    nt = next_token_logprobs(model, prompts, None)
    assert torch.equal(next_token_logprobs(model, prompts, SteeringPlan({HOOK: ode}, T=0.0)), nt)


def test_cached_prefix_path_equals_hooked_pass(model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    pos, neg = torch.randn(16, 64) + 1, torch.randn(16, 64)
    caa = lo.CAA().fit(pos, neg)
    prompts, answers = ["The sun is", "A long road to the", "Hi"], [" good", " sea", " there you"]
    plan = SteeringPlan({HOOK: caa}, T=0.7)
    fast = answer_logprobs(model, prompts, answers, plan)
    fast_nt = next_token_logprobs(model, prompts, plan, steer_from=[0, 1, 0])
    monkeypatch.setattr(lik, "_splittable", lambda m, h: False)
    slow = answer_logprobs(model, prompts, answers, plan)
    np.testing.assert_allclose(fast, slow, atol=1e-4)
    slow_nt = next_token_logprobs(model, prompts, plan, steer_from=[0, 1, 0])
    torch.testing.assert_close(fast_nt, slow_nt, atol=1e-4, rtol=0)


def test_margin_steerer_strength_is_capped_at_the_residual_norm() -> None:
    from lens_odesteer.evaluation.runner import EvalConfig, _candidates

    pos, neg = torch.randn(40, 16) + 2.0, torch.randn(40, 16) - 2.0
    steerer = lo.ODESteer(
        lo.sketch_barrier(n_components=256), stop=lo.steerers.BarrierMargin(0.0)
    ).fit(pos, neg)
    ref = pos[:10]  # already on the desired side: no displacement is reachable
    norm = float(ref.norm(dim=-1).mean())
    cfg = EvalConfig(task="t", methods=["ODESteer-margin"], layer=0, hook="h", grid=(0.1,))
    split = TinyTask().splits()[0]
    (t_cap,) = _candidates(TinyTask(), None, "ODESteer-margin", steerer, split, "h", ref, norm, cfg)
    assert t_cap == pytest.approx(norm)


def test_searched_barrier_and_diagnostic_columns(model: Any, tmp_path: Path) -> None:
    methods = ["CAA", "ODESteer", "ODESteer-searched"]
    summary = evaluate(
        TinyTask(), model, methods=methods, layer=1, out_dir=tmp_path, n_boot=50, progress=False
    )
    diag = summary.attrs["diagnostic"].set_index("method")
    assert list(diag.index) == ["none", *methods]
    # a constant field: integrating it changes nothing
    assert diag.loc["CAA", "gap_median"] == pytest.approx(0.0, abs=1e-4)  # float32 sums
    # the normalised sketch rotates on the norm sphere, so multi-step ends elsewhere
    assert diag.loc["ODESteer", "gap_median"] > 0
    low, high = diag.loc["ODESteer", "gap_ci_low"], diag.loc["ODESteer", "gap_ci_high"]
    assert low <= diag.loc["ODESteer", "gap_median"] <= high
    assert diag.loc["ODESteer", "n_rows"] == 4  # the validation prompts' last tokens
    assert np.isnan(diag.loc["none", "gap_median"])
    label = diag.loc["ODESteer-searched", "search_barrier"]
    assert isinstance(label, str) and "(" in label
    assert 0.0 <= diag.loc["ODESteer-searched", "search_test_auc"] <= 1.0
    assert pd.isna(diag.loc["ODESteer", "search_barrier"])
    on_disk = pd.read_csv(tmp_path / "diagnostic.csv").set_index("method")
    assert on_disk.loc["ODESteer-searched", "search_barrier"] == label
    # resume: the search is not run again, its facts come back from the saved steerer
    again = evaluate(
        TinyTask(), model, methods=methods, layer=1, out_dir=tmp_path, n_boot=50, progress=False
    )
    assert json.loads((tmp_path / "results.json").read_text())["parts_computed"] == 0
    pd.testing.assert_frame_equal(again.attrs["diagnostic"], summary.attrs["diagnostic"])
    from lens_odesteer.evaluation.cli_eval import task_report

    report = task_report(tmp_path)
    assert "ODE gap %" in report and f"ODESteer-searched (only): {label}" in report
    assert "- ODESteer (only, 4 rows): gap " in report


def test_a_closed_gate_gets_the_native_strength_not_the_search_ceiling(model: Any) -> None:
    from lens_odesteer.evaluation import runner

    gen = torch.Generator().manual_seed(0)
    pos, neg = torch.randn(64, 32, generator=gen) + 2.0, torch.randn(64, 32, generator=gen) - 2.0
    hpr = lo.steerers.HPR().fit(pos, neg)
    task = TinyTask()
    split = task.splits()[0]
    cfg = runner.EvalConfig(
        task="tiny", methods=["HPR"], layer=1, hook=HOOK, strength="grid", grid=(0.1, 0.2),
        kl_budget=0.1, max_ppl_ratio=2.0, quick=False, seed=0, n_boot=100, task_kwargs={},
    )  # fmt: skip
    norm = float(pos.norm(dim=-1).mean())
    # Validation rows on the probe's positive side: HPR leaves them alone at every T.
    ref = pos[(pos @ hpr.coef_) > 0]
    assert torch.equal(hpr.steer(ref, T=1e6), ref)
    with pytest.warns(
        UserWarning,
        match=r"HPR on split 'only' moves .* leaves them where they are \(a closed gate",
    ):
        ts = runner._candidates(task, model, "HPR", hpr, split, HOOK, ref, norm, cfg)
    assert ts == [runner.UNMATCHED_T]
    # Rows on the negative side are moved, and their strengths are matched as usual.
    ts = runner._candidates(task, model, "HPR", hpr, split, HOOK, neg, norm, cfg)
    assert len(ts) == 2 and all(0 < t < 1e6 for t in ts)
    for f, t in zip(cfg.grid, ts, strict=True):
        assert runner.mean_displacement(hpr, neg, t) == pytest.approx(f * norm, rel=0.01)
