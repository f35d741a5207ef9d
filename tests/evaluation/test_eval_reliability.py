"""Issue 17 on the tiny model and synthetic data: per-item steerability, anti-steerable items,
geometry, the prompting and paper-strength baselines, and capability side effects (fast)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
import torch

from lens_odesteer import CAA
from lens_odesteer.activations import collect_activations
from lens_odesteer.errors import InvalidParameterError, ShapeMismatchError
from lens_odesteer.evaluation import evaluate
from lens_odesteer.evaluation.fluency import _active_hooks
from lens_odesteer.evaluation.likelihood import answer_logprobs
from lens_odesteer.evaluation.methods import (
    PAPER_T,
    fit_method,
    make_steerer,
    method_spec,
    parse_methods,
)
from lens_odesteer.evaluation.reliability import (
    item_steerability,
    method_geometry,
    reliability_summary,
    training_geometry,
)
from lens_odesteer.evaluation.side_effects import (
    SIDE_METRICS,
    SideEffectData,
    fact_pairs,
    side_effect_data,
    side_effect_summary,
    side_effect_units,
)
from lens_odesteer.evaluation.tasks.base import Split, Task
from lens_odesteer.hooks import SteeringPlan
from lens_odesteer.models import tiny_bridge

HOOK = "blocks.1.hook_resid_post"
WORDS = ["red", "blue", "green", "cat", "dog", "sun", "rain", "tree", "road", "sea"]
INSTRUCTION = "Say good things."


class PromptedTask(Task):
    """Log-likelihood of " good" after short prompts; records what each score call saw."""

    name: ClassVar[str] = "tiny_prompted"
    kind: ClassVar[str] = "likelihood"
    primary: ClassVar[str] = "lp"
    metrics: ClassVar[tuple[str, ...]] = ("lp",)

    def __init__(self, seed: int = 0, quick: bool = False) -> None:
        super().__init__(seed=seed, quick=quick)
        # (phase, steered, first prompt, hooks on the model when the call began)
        self.seen: list[tuple[str, bool, str, int]] = []

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

    def instruction(self, split: str, *, reverse: bool = False) -> str:
        return INSTRUCTION

    def score(
        self,
        model: Any,
        plan: SteeringPlan | None,
        units: list[Any],
        *,
        phase: str,
        reverse: SteeringPlan | None = None,
    ) -> pd.DataFrame:
        prompts = [self.prefixed(p) for _, p, _ in units]
        steered = plan is not None and plan.active
        self.seen.append((phase, steered, prompts[0], len(_active_hooks(model))))
        lp = answer_logprobs(model, prompts, [a for _, _, a in units], plan)
        return pd.DataFrame({"unit": [u for u, _, _ in units], "seed": 0, "lp": lp})

    def config(self) -> dict[str, Any]:
        return {"words": WORDS}


@pytest.fixture(scope="module")
def model() -> Any:
    torch.manual_seed(0)
    return tiny_bridge()


@pytest.fixture(scope="module")
def run(model: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path, Any]:
    out = tmp_path_factory.mktemp("eval17")
    task = PromptedTask()
    summary = evaluate(
        task,
        model,
        methods=["CAA", "ODESteer", "prompt", "prompt+CAA", "CAA@paper"],
        layer=1,
        out_dir=out,
        n_boot=200,
        grid=(0.05, 0.2),
        quick=True,
        progress=False,
    )
    return summary, out, task


# --- method names -------------------------------------------------------------------------


def test_method_spec_forms() -> None:
    assert method_spec("CAA").steering == "CAA" and not method_spec("CAA").instruction
    assert method_spec("prompt").steering == "none" and method_spec("prompt").instruction
    spec = method_spec("prompt+ODESteer@paper")
    assert (spec.steering, spec.instruction, spec.paper_T) == (
        "ODESteer",
        True,
        PAPER_T["ODESteer"],
    )
    assert parse_methods("prompt,prompt+CAA,CAA@paper") == [
        "none",
        "prompt",
        "prompt+CAA",
        "CAA@paper",
    ]
    assert make_steerer("prompt") is None
    assert type(make_steerer("prompt+CAA")).__name__ == "CAA"
    gen = torch.Generator().manual_seed(0)
    pos, neg = torch.randn(20, 4, generator=gen) + 1, torch.randn(20, 4, generator=gen)
    steerer, _ = fit_method("CAA@paper", pos, neg)
    assert type(steerer).__name__ == "CAA"


@pytest.mark.parametrize(
    ("name", "match"),
    [("prompt+none", "steers nothing"), ("ITI@paper", "no published strength"), ("CAB", "CAB")],
)
def test_method_spec_refuses(name: str, match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        parse_methods([name])


# --- reliability on synthetic points ----------------------------------------------------


def _points(slopes: np.ndarray, method: str) -> pd.DataFrame:
    rows = []
    for unit, b in enumerate(slopes):
        for x in (0.0, 0.1, 0.2):
            if x == 0.0 and method != "none":
                continue
            rows.append(
                {
                    "split": "s",
                    "method": method,
                    "unit": unit,
                    "strength": x,
                    "propensity": 1.0 + b * x,
                }
            )
    return pd.DataFrame(rows)


def test_negated_steerer_is_anti_steerable() -> None:
    rng = np.random.default_rng(0)
    slopes = rng.uniform(0.5, 2.0, size=40)
    points = pd.concat(
        [_points(slopes * 0, "none"), _points(slopes, "good"), _points(-slopes, "negated")]
    )
    items = item_steerability(points)
    by = items.set_index(["method", "unit"])["slope"]
    assert np.allclose(by.loc["good"].to_numpy(), slopes)
    assert np.allclose(by.loc["negated"].to_numpy(), -slopes)
    summary = reliability_summary(items, n_boot=200).set_index("method")
    assert summary.loc["negated", "anti_steerable_frac"] == 1.0
    assert summary.loc["good", "anti_steerable_frac"] == 0.0
    assert summary.loc["good", "steerability_ci_low"] > 0
    assert summary.loc["good", "n_items"] == 40


def test_anti_fraction_interval_covers_a_mixture() -> None:
    rng = np.random.default_rng(1)
    slopes = np.where(rng.random(200) < 0.3, -1.0, 1.0)
    points = pd.concat([_points(slopes * 0, "none"), _points(slopes, "m")])
    row = reliability_summary(item_steerability(points), n_boot=500).iloc[0]
    assert row["anti_ci_low"] < 0.3 < row["anti_ci_high"]


def test_item_steerability_needs_columns() -> None:
    with pytest.raises(InvalidParameterError, match="propensity"):
        item_steerability(pd.DataFrame({"split": ["s"], "method": ["m"], "unit": [0]}))


def test_training_geometry() -> None:
    gen = torch.Generator().manual_seed(0)
    neg = torch.randn(200, 16, generator=gen)
    aligned = training_geometry(neg + 2.0 * torch.eye(16)[0], neg)
    noisy = training_geometry(neg[:100] + 0.3 * torch.eye(16)[0], neg[100:])
    assert aligned["agreement"] == pytest.approx(1.0)
    assert aligned["separation"] > noisy["separation"]
    assert noisy["agreement"] < 0.5
    grouped = training_geometry(
        neg[:4] + 1.0, neg[:4], (["a", "a", "b", "b"], ["a", "b", "a", "b"])
    )
    assert grouped["n_pairs"] == 2.0
    with pytest.raises(ShapeMismatchError, match="one id per row"):
        training_geometry(neg[:4], neg[:4], (["a"], ["a"]))
    with pytest.raises(InvalidParameterError, match="at least 2 rows"):
        training_geometry(neg[:1], neg)
    steerer = CAA().fit(neg + 2.0 * torch.eye(16)[0], neg)
    geo = method_geometry(steerer, neg + 2.0 * torch.eye(16)[0], neg, T=1.0)
    assert geo["direction_cosine"] == pytest.approx(1.0, abs=1e-6)
    assert method_geometry(steerer, neg, neg, T=0.0) == {}


# --- reliability on the tiny model --------------------------------------------------------


def test_negated_caa_on_the_tiny_model_flips_every_item(model: Any) -> None:
    """A steerer and the same one fitted with the classes swapped have opposite slopes."""
    pos_t = [f"The {w} is good" for w in WORDS]
    neg_t = [f"The {w} is bad" for w in WORDS]
    pos = collect_activations(model, pos_t, HOOK, progress=False)
    neg = collect_activations(model, neg_t, HOOK, progress=False)
    assert isinstance(pos, torch.Tensor) and isinstance(neg, torch.Tensor)
    prompts = [f"The {w} is" for w in WORDS]
    rows = []
    for name, steerer in (("CAA", CAA().fit(pos, neg)), ("CAA-negated", CAA().fit(neg, pos))):
        for T in (0.0, 0.05, 0.1):
            plan = SteeringPlan({HOOK: steerer}, T=T) if T > 0 else None
            lp = answer_logprobs(model, prompts, [" good"] * len(prompts), plan)
            rows += [
                {
                    "split": "s",
                    "method": "none" if T == 0 else name,
                    "unit": i,
                    "strength": T,
                    "propensity": float(v),
                }
                for i, v in enumerate(lp)
            ]
    items = item_steerability(pd.DataFrame(rows).drop_duplicates(["method", "unit", "strength"]))
    wide = items.pivot(index="unit", columns="method", values="slope")
    assert np.allclose(wide["CAA"], -wide["CAA-negated"], rtol=0.05, atol=1e-6)
    fracs = reliability_summary(items, n_boot=100).set_index("method")["anti_steerable_frac"]
    assert fracs["CAA"] + fracs["CAA-negated"] == pytest.approx(1.0)


def test_evaluate_writes_reliability_and_baselines(run: tuple[pd.DataFrame, Path, Any]) -> None:
    _, out, _ = run
    # reliability.csv: one row per steered method, anti-steerable fraction with an interval
    rel = pd.read_csv(out / "reliability.csv")
    assert set(rel["method"]) == {"CAA", "ODESteer", "prompt+CAA", "CAA@paper"}
    assert (
        (rel["anti_ci_low"] <= rel["anti_steerable_frac"])
        & (rel["anti_steerable_frac"] <= rel["anti_ci_high"])
    ).all()
    assert {"fit_agreement", "fit_separation", "direction_separation"} <= set(rel.columns)
    items = pd.read_csv(out / "reliability_items.csv")
    assert (items.groupby("method")["unit"].nunique() == 6).all()
    # the test items were swept over both candidates plus the unsteered point
    caa = items[items["method"] == "CAA"]
    assert (caa["n_strengths"] == 3).all()
    assert "reliability" in json.loads((out / "results.json").read_text())


def test_prompt_methods_instruct_and_prompt_leaves_hooks_empty(
    run: tuple[pd.DataFrame, Path, Any], model: Any
) -> None:
    summary, _, task = run
    units = summary.attrs["units"]
    prompt_rows = units[(units["method"] == "prompt") & (units["phase"] == "test")]
    assert (prompt_rows["T"] == 0).all() and (prompt_rows["displacement"] == 0).all()
    instructed = [s for s in task.seen if s[2].startswith(INSTRUCTION)]
    plain = [s for s in task.seen if not s[2].startswith(INSTRUCTION)]
    assert instructed and plain
    # 'prompt' scored its test units unsteered; 'prompt+CAA' steered with the instruction on
    prompt_only = [s for s in instructed if not s[1]]
    assert prompt_only and all(hooks == 0 for *_, hooks in prompt_only)
    assert any(steered for _, steered, _, _ in instructed)
    assert _active_hooks(model) == []
    # prompt scores differ from none's (the instruction matters), prompt+CAA from prompt
    test = units[units["phase"] == "test"]
    means = test.groupby("method")["lp"].mean()
    assert means["prompt"] != pytest.approx(means["none"])
    assert means["prompt+CAA"] != pytest.approx(means["prompt"])


def test_paper_strength_is_fixed(run: tuple[pd.DataFrame, Path, Any]) -> None:
    _, out, _ = run
    results = json.loads((out / "results.json").read_text())
    assert results["chosen"]["only/CAA@paper"]["T"] == PAPER_T["CAA"]
    assert results["chosen"]["only/CAA@paper"]["n_candidates"] == 1
    assert results["chosen"]["only/CAA"]["n_candidates"] == 2


def test_power_and_side_effect_columns(run: tuple[pd.DataFrame, Path, Any]) -> None:
    summary, out, _ = run
    paired = pd.read_csv(out / "paired.csv")
    assert {"mde", "verdict", "effect_of_interest"} <= set(paired.columns)
    # the reviewer's pairs, each once (those against the one-step baseline CAA come first)
    pairs = list(zip(paired["method"], paired["baseline"], strict=True))
    for pair in (("prompt+CAA", "prompt"), ("prompt+CAA", "CAA"), ("CAA@paper", "CAA")):
        assert pairs.count(pair) == 1, pair
    design = paired[paired["baseline_chosen_by"] == "design"]
    assert set(zip(design["method"], design["baseline"], strict=True)) == {("prompt+CAA", "prompt")}
    assert np.isfinite(paired["mde"]).all()
    side = summary[summary["metric"].isin(SIDE_METRICS)]
    methods = {"none", "CAA", "ODESteer", "prompt", "prompt+CAA", "CAA@paper"}
    assert set(side["method"]) == methods
    assert np.isfinite(side[["estimate", "ci_low", "ci_high"]].to_numpy()).all()
    none = side[side["method"] == "none"].set_index("metric")["estimate"]
    assert none["side_fact_pref_change"] == 0.0
    assert set(side["metric"]) == set(SIDE_METRICS) or "side_neutral_ppl" not in set(side["metric"])


# --- side effects ---------------------------------------------------------------------------


def test_fact_pairs_share_a_prefix() -> None:
    pairs = fact_pairs()
    assert len(pairs) == 150
    for prefix, true, false in pairs:
        assert prefix and true.startswith(" ") and false.startswith(" ") and true != false
    assert fact_pairs(10, seed=1) == fact_pairs(10, seed=1) and len(fact_pairs(10)) == 10


def test_side_effects_without_the_data_folder(tmp_path: Path) -> None:
    data = side_effect_data(quick=True, data_dir=tmp_path)
    assert len(data.facts) == 24 and data.neutral == []


def test_side_effect_units_and_summary(model: Any) -> None:
    data = SideEffectData(fact_pairs(8), [("The", " cat sat on the mat today."), ("A", " b c d.")])
    pos = collect_activations(model, [f"The {w} is good" for w in WORDS], HOOK, progress=False)
    neg = collect_activations(model, [f"The {w} is bad" for w in WORDS], HOOK, progress=False)
    assert isinstance(pos, torch.Tensor) and isinstance(neg, torch.Tensor)
    plan = SteeringPlan({HOOK: CAA().fit(pos, neg)}, T=2.0)
    frames = []
    for method, p in (("none", None), ("CAA", plan)):
        frame = side_effect_units(model, p, data)
        assert len(frame) == 10
        frames.append(
            frame.assign(split="s", method=method, phase="side", T=0.0 if p is None else 2.0)
        )
    rows = side_effect_summary(pd.concat(frames, ignore_index=True), n_boot=100)
    table = rows.set_index(["method", "metric"])["estimate"]
    assert table[("none", "side_fact_pref_change")] == 0.0
    assert table[("none", "side_neutral_ppl_ratio")] == pytest.approx(1.0)
    assert table[("CAA", "side_neutral_ppl_ratio")] != pytest.approx(1.0)
    assert np.isfinite(rows[["estimate", "ci_low", "ci_high"]].to_numpy()).all()


# --- the real tasks' instructions and propensities (data files, no model) ------------------


@pytest.mark.usefixtures("eval_data")
def test_task_instructions_and_propensities() -> None:
    from lens_odesteer.evaluation import make_task
    from lens_odesteer.evaluation.tasks.behaviors import INSTRUCTIONS

    behaviors = make_task("behaviors", quick=True)
    toward, away = INSTRUCTIONS["sycophancy"]
    assert behaviors.instruction("sycophancy") == toward
    assert behaviors.instruction("sycophancy", reverse=True) == away
    assert "'made-up'" in behaviors.instruction("made-up")  # unknown behaviours: generic
    with behaviors.instructed("sycophancy"):
        assert behaviors.prefixed("Q?").startswith(toward)
        assert behaviors.prefixed("Q?", reverse=True).startswith(away)
    assert behaviors.prefixed("Q?") == "Q?"
    frame = pd.DataFrame({"p_toward": [0.5, 0.9], "p_away": [0.5, 0.1]})
    points = behaviors.propensity(frame)
    assert len(points) == 4 and sorted(points["direction"]) == [-1, -1, 1, 1]
    assert points["propensity"].round(6).tolist() == [
        0.0,
        round(np.log(9), 6),
        0.0,
        -round(np.log(9), 6),
    ]
    for name in ("truthfulqa_mc", "sentiment", "detox", "truthfulqa_gen"):
        task = make_task(name, quick=True)
        assert task.instruction(task.splits()[0].name)
    mc = make_task("truthfulqa_mc", quick=True)
    logit = mc.propensity(pd.DataFrame({"mc2": [0.75], "mc2_false": [0.25]}))
    assert logit["propensity"].item() == pytest.approx(np.log(3))


def test_training_geometry_without_shared_groups_has_nan_agreement() -> None:
    gen = torch.Generator().manual_seed(0)
    pos, neg = torch.randn(6, 4, generator=gen) + 1, torch.randn(6, 4, generator=gen)
    geo = training_geometry(pos, neg, (["a"] * 6, ["b"] * 6))
    assert np.isnan(geo["agreement"]) and geo["n_pairs"] == 0.0 and geo["separation"] > 0


def test_side_effects_can_be_skipped(model: Any) -> None:
    summary = evaluate(
        PromptedTask(),
        model,
        methods=["CAA"],
        layer=1,
        n_boot=50,
        grid=(0.1,),
        progress=False,
        side_effects=False,
    )
    assert not summary["metric"].isin(SIDE_METRICS).any()
    assert "side" not in set(summary.attrs["units"]["phase"])
    assert not summary.attrs["reliability"].empty  # reliability does not depend on them
