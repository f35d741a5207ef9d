"""Split scoring (cached prefix, unsteered suffix up to the hook, steered later blocks) equals
one full hooked pass per batch, for every steerer kind, hook layer, prompt layout and scope."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.evaluation import likelihood as lik
from lens_odesteer.evaluation.likelihood import answer_logprobs, next_token_logprobs
from lens_odesteer.flows import AdaptiveSteps, Dopri5
from lens_odesteer.hooks import SteeringPlan
from lens_odesteer.models import tiny_bridge
from lens_odesteer.steerers import AbstractSteerer

D = 64
# Prompts that share prefixes, differ in length, and answers of one to many tokens.
PROMPTS = [
    "Q: Is the sky blue?\nA:",
    "Q: Is the sky blue?\nA:",
    "Q: Is the sky blue?\nA:",
    "Q: Why?\nA:",
    "Q: Why?\nA:",
    "Hi",
    "A much longer question that takes many more tokens than the others do?\nA:",
]
ANSWERS = [" Yes", " No, it is grey today", " x", " Because", " Because of rain.", " there", " y"]
NEXT_PROMPTS = ["The sun is", "A long road to the", "Hi", "The sun is bright and"]


@pytest.fixture(scope="module")
def model() -> Any:
    return tiny_bridge(n_layers=4)


@pytest.fixture(scope="module")
def acts() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(48, D, generator=gen) + 0.7, torch.randn(48, D, generator=gen)


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    lik.SPLIT_CACHE.clear()
    lik.PREFIX_CACHE.clear()
    yield
    lik.SPLIT_CACHE.clear()
    lik.PREFIX_CACHE.clear()
    lik._SPLIT_SCORING = True


STEERERS: dict[str, Callable[[], AbstractSteerer]] = {
    "CAA": lo.CAA,
    "ODESteer": lambda: lo.ODESteer(lo.sketch_barrier(n_components=256)),
    "ODESteer-adaptive": lambda: lo.ODESteer(
        lo.sketch_barrier(n_components=256),
        solver=Dopri5(),
        steps=AdaptiveSteps(rtol=1e-4, atol=1e-4, initial_steps=4),
    ),
    "StepODESteer": lambda: lo.StepODESteer(lo.sketch_barrier(n_components=256)),
    "ITI": lo.steerers.ITI,
    "HPR": lo.steerers.HPR,
    "TruthFlow": lo.steerers.TruthFlow,
    "MiMiC": lo.steerers.MiMiC,
    "LinAcT": lo.steerers.LinAcT,
    "SphericalSteering": lo.steerers.SphericalSteering,
}


def _old(fn: Callable[[], Any]) -> Any:
    lik._SPLIT_SCORING = False
    try:
        return fn()
    finally:
        lik._SPLIT_SCORING = True


def _count_split_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = lik._split_logits

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        yield from original(*args, **kwargs)

    monkeypatch.setattr(lik, "_split_logits", counted)
    return calls


@pytest.mark.parametrize("kind", list(STEERERS))
def test_every_steerer_kind_matches_full_passes(
    model: Any, acts: tuple[torch.Tensor, torch.Tensor], kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    steerer = STEERERS[kind]().fit(*acts)
    plan = SteeringPlan({"blocks.1.hook_resid_post": steerer}, strength=0.3)
    calls = _count_split_calls(monkeypatch)
    split = answer_logprobs(model, PROMPTS, ANSWERS, plan, batch_size=3)
    assert calls, "split scoring was not used"
    full = _old(lambda: answer_logprobs(model, PROMPTS, ANSWERS, plan, batch_size=3))
    base = answer_logprobs(model, PROMPTS, ANSWERS, None)
    assert np.abs(full - base).max() > 1e-3  # the steering matters
    np.testing.assert_allclose(split, full, atol=1e-4, rtol=0)


@pytest.mark.parametrize("layer", [0, 1, 2])
@pytest.mark.parametrize("scope", ["last", "all", [0, -1]])
def test_layers_and_plan_scopes(
    model: Any, acts: tuple[torch.Tensor, torch.Tensor], layer: int, scope: Any
) -> None:
    # Both paths steer the scored span (last prompt token through the answer) whatever the
    # plan's own scope, so the scope must not change the result either way.
    ode = lo.ODESteer(lo.sketch_barrier(n_components=256)).fit(*acts)
    plan = SteeringPlan({lo.resid_post(layer): ode}, strength=0.4, scope=scope)
    split = answer_logprobs(model, PROMPTS, ANSWERS, plan)
    full = _old(lambda: answer_logprobs(model, PROMPTS, ANSWERS, plan))
    np.testing.assert_allclose(split, full, atol=1e-4, rtol=0)
    last = SteeringPlan({lo.resid_post(layer): ode}, strength=0.4)
    np.testing.assert_allclose(answer_logprobs(model, PROMPTS, ANSWERS, last), split, atol=1e-5)


@pytest.mark.parametrize("steer_from", [None, [0, 1, 0, 2], [3, 0, 1, 5]])
def test_next_token_logprobs_match(
    model: Any, acts: tuple[torch.Tensor, torch.Tensor], steer_from: list[int] | None
) -> None:
    hpr = lo.steerers.HPR().fit(*acts)
    plan = SteeringPlan({"blocks.2.hook_resid_post": hpr}, strength=0.5)
    split = next_token_logprobs(model, NEXT_PROMPTS, plan, steer_from=steer_from, batch_size=2)
    full = _old(lambda: next_token_logprobs(model, NEXT_PROMPTS, plan, steer_from=steer_from))
    torch.testing.assert_close(split, full, atol=1e-4, rtol=0)
    kept = next_token_logprobs(model, NEXT_PROMPTS, plan, steer_from=steer_from, token_ids=[5, 9])
    torch.testing.assert_close(kept, full[:, [5, 9]], atol=1e-4, rtol=0)


def test_states_are_reused_across_plans(
    model: Any, acts: tuple[torch.Tensor, torch.Tensor]
) -> None:
    caa = lo.CAA().fit(*acts)
    hook = "blocks.1.hook_resid_post"
    first = answer_logprobs(model, PROMPTS, ANSWERS, SteeringPlan({hook: caa}, strength=0.2))
    assert lik.SPLIT_CACHE.hits == 0
    n_suffixes = len(lik.SPLIT_CACHE.suffixes)
    assert n_suffixes == len(set(zip(PROMPTS, ANSWERS, strict=True)))
    assert len(lik.SPLIT_CACHE.prefixes) == len(set(PROMPTS))
    again = answer_logprobs(model, PROMPTS, ANSWERS, SteeringPlan({hook: caa}, strength=0.2))
    np.testing.assert_array_equal(again, first)
    assert lik.SPLIT_CACHE.hits == len(PROMPTS)
    stronger = SteeringPlan({hook: caa}, strength=0.6)
    got = answer_logprobs(model, PROMPTS, ANSWERS, stronger)
    assert len(lik.SPLIT_CACHE.suffixes) == n_suffixes  # nothing recomputed
    full = _old(lambda: answer_logprobs(model, PROMPTS, ANSWERS, stronger))
    np.testing.assert_allclose(got, full, atol=1e-4, rtol=0)


def test_another_model_or_changed_weights_empty_the_cache(
    acts: tuple[torch.Tensor, torch.Tensor],
) -> None:
    caa = lo.CAA().fit(*acts)
    plan = SteeringPlan({"blocks.1.hook_resid_post": caa}, strength=0.3)
    one, two = tiny_bridge(n_layers=4, seed=1), tiny_bridge(n_layers=4, seed=2)
    answer_logprobs(one, PROMPTS, ANSWERS, plan)
    got = answer_logprobs(two, PROMPTS, ANSWERS, plan)
    np.testing.assert_allclose(
        got, _old(lambda: answer_logprobs(two, PROMPTS, ANSWERS, plan)), atol=1e-4, rtol=0
    )
    with torch.no_grad():
        next(two.parameters()).mul_(1.5)  # an in-place edit of the embedding
    edited = answer_logprobs(two, PROMPTS, ANSWERS, plan)
    assert np.abs(edited - got).max() > 1e-4
    lik.PREFIX_CACHE.clear()  # the full-pass path's own cache does not notice the edit
    np.testing.assert_allclose(
        edited, _old(lambda: answer_logprobs(two, PROMPTS, ANSWERS, plan)), atol=1e-4, rtol=0
    )


def test_full_logits_route_matches(
    model: Any, acts: tuple[torch.Tensor, torch.Tensor], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Models whose logits are not just head(final hidden) take the causal LM's own logits.
    ode = lo.ODESteer(lo.sketch_barrier(n_components=256)).fit(*acts)
    plan = SteeringPlan({"blocks.1.hook_resid_post": ode}, strength=0.3)
    assert lik._plain_head(lik._split_for(model, plan)) is not None  # type: ignore[arg-type]
    monkeypatch.setattr(lik, "_plain_head", lambda split: None)
    split = answer_logprobs(model, PROMPTS, ANSWERS, plan)
    nt = next_token_logprobs(model, NEXT_PROMPTS, plan, steer_from=[0, 1, 0, 2])
    full = _old(lambda: answer_logprobs(model, PROMPTS, ANSWERS, plan))
    full_nt = _old(lambda: next_token_logprobs(model, NEXT_PROMPTS, plan, steer_from=[0, 1, 0, 2]))
    np.testing.assert_allclose(split, full, atol=1e-4, rtol=0)
    torch.testing.assert_close(nt, full_nt, atol=1e-4, rtol=0)


def test_where_split_scoring_does_not_apply(
    model: Any, acts: tuple[torch.Tensor, torch.Tensor]
) -> None:
    caa = lo.CAA().fit(*acts)
    assert lik._split_for(model, SteeringPlan({"blocks.1.hook_out": caa}, T=1.0)) is not None
    not_split = [
        None,
        SteeringPlan({"blocks.1.hook_resid_post": caa}, T=0.0),  # inactive
        SteeringPlan({"blocks.3.hook_resid_post": caa}, T=1.0),  # the last block
        SteeringPlan({"blocks.1.hook_attn_out": caa}, T=1.0),  # another hook site
        SteeringPlan({"blocks.1.hook_resid_pre": caa}, T=1.0),
        SteeringPlan({"blocks.0.hook_resid_post": caa, "blocks.2.hook_resid_post": caa}, T=1.0),
    ]
    for plan in not_split:
        assert lik._split_for(model, plan) is None, plan
    lik._SPLIT_SCORING = False
    assert lik._split_for(model, SteeringPlan({"blocks.1.hook_out": caa}, T=1.0)) is None


def test_unsteered_split_matches_full_passes_and_shares_the_cache(
    model: Any, acts: tuple[torch.Tensor, torch.Tensor]
) -> None:
    hook = "blocks.1.hook_resid_post"
    caa = lo.CAA().fit(*acts)
    full = answer_logprobs(model, PROMPTS, ANSWERS)
    full_nt = next_token_logprobs(model, NEXT_PROMPTS, steer_from=[0, 1, 0, 2])
    assert not lik.SPLIT_CACHE.suffixes  # outside the block, unsteered scoring is not split
    with lik.unsteered_split(hook):
        assert lik._split_for(model, None) is not None
        got = answer_logprobs(model, PROMPTS, ANSWERS)
        got_nt = next_token_logprobs(model, NEXT_PROMPTS, steer_from=[0, 1, 0, 2])
        # An inactive plan is unsteered too, and takes the same route.
        zero = answer_logprobs(model, PROMPTS, ANSWERS, SteeringPlan({hook: caa}, T=0.0))
    np.testing.assert_allclose(got, full, atol=1e-4, rtol=0)
    torch.testing.assert_close(got_nt, full_nt, atol=1e-4, rtol=0)
    np.testing.assert_array_equal(zero, got)
    n_suffixes = len(lik.SPLIT_CACHE.suffixes)
    assert n_suffixes > 0
    # A steered plan at the same hook reuses every state the unsteered pass left.
    hits = lik.SPLIT_CACHE.hits
    steered = answer_logprobs(model, PROMPTS, ANSWERS, SteeringPlan({hook: caa}, strength=0.3))
    assert lik.SPLIT_CACHE.hits == hits + len(PROMPTS)
    assert len(lik.SPLIT_CACHE.suffixes) == n_suffixes
    want = _old(
        lambda: answer_logprobs(model, PROMPTS, ANSWERS, SteeringPlan({hook: caa}, strength=0.3))
    )
    np.testing.assert_allclose(steered, want, atol=1e-4, rtol=0)
    assert lik._split_for(model, None) is None  # the block has ended


def test_unsteered_split_falls_back_where_it_cannot_split(model: Any) -> None:
    full = answer_logprobs(model, PROMPTS, ANSWERS)
    for hook in ("blocks.3.hook_resid_post", "blocks.1.hook_attn_out", None):
        with lik.unsteered_split(hook):
            assert lik._split_for(model, None) is None, hook
            np.testing.assert_array_equal(answer_logprobs(model, PROMPTS, ANSWERS), full)
    with (
        pytest.raises((lo.InvalidParameterError, TypeError), match="3"),
        lik.unsteered_split(3),  # type: ignore[arg-type]
    ):
        pass


def test_block_stack_is_restored_after_an_error(
    model: Any, acts: tuple[torch.Tensor, torch.Tensor]
) -> None:
    caa = lo.CAA().fit(*acts)
    split = lik._split_for(model, SteeringPlan({"blocks.1.hook_resid_post": caa}, T=1.0))
    assert split is not None
    layers = model.original_model.model.layers
    with (
        pytest.raises(RuntimeError, match="boom"),
        lik._only_blocks(split, 2, 4, torch.zeros(1, 2, D)),
    ):
        assert len(model.original_model.model.layers) == 2
        raise RuntimeError("boom")
    assert model.original_model.model.layers is layers
    assert all(not block._forward_pre_hooks for block in layers)
    plan = SteeringPlan({"blocks.1.hook_resid_post": caa}, T=1.0)
    np.testing.assert_allclose(
        answer_logprobs(model, PROMPTS, ANSWERS, plan),
        _old(lambda: answer_logprobs(model, PROMPTS, ANSWERS, plan)),
        atol=1e-4,
        rtol=0,
    )


@pytest.mark.slow
def test_smollm2_truthfulqa_split_equals_full_passes(eval_data: Any) -> None:
    from lens_odesteer.evaluation.tasks.truthfulqa_mc import TruthfulQAMC

    task = TruthfulQAMC(data_dir=eval_data, n_test=4, n_val=4)
    split = task.splits()[0]
    model = lo.load_model(progress=False)
    hook = lo.resid_post(15)
    pos = lo.collect_activations(model, split.pos_texts[:40], hook, progress=False)
    neg = lo.collect_activations(model, split.neg_texts[:40], hook, progress=False)
    assert isinstance(pos, torch.Tensor) and isinstance(neg, torch.Tensor)
    units = split.test
    prompts = [q.prompt for q in units for _ in q.answers()]
    answers = [" " + a for q in units for a in q.answers()]
    for steerer in (lo.ODESteer().fit(pos, neg), lo.steerers.HPR().fit(pos, neg)):
        plan = SteeringPlan({hook: steerer}, strength=0.1)
        got = answer_logprobs(model, prompts, answers, plan)
        want = _old(functools.partial(answer_logprobs, model, prompts, answers, plan))
        np.testing.assert_allclose(got, want, atol=2e-4, rtol=0)  # measured 1.9e-5
        frame = task.score(model, plan, units, phase="test")
        ref = _old(functools.partial(task.score, model, plan, units, phase="test"))
        np.testing.assert_allclose(frame["mc2"], ref["mc2"], atol=1e-4)
    # The unsteered baseline, split at the same hook, against full passes.
    with lik.unsteered_split(hook):
        got = answer_logprobs(model, prompts, answers)
        frame = task.score(model, None, units, phase="test")
    want = answer_logprobs(model, prompts, answers)
    np.testing.assert_allclose(got, want, atol=2e-4, rtol=0)
    ref = task.score(model, None, units, phase="test")
    np.testing.assert_allclose(frame["mc2"], ref["mc2"], atol=1e-4)
