"""Steered generation on a tiny random Llama bridge: KV cache, batching, exact positions."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.hooks import generate, generation, steering
from tests.hooks._shared import PROMPTS, TINY_HOOK

SCOPES: list[Any] = [
    "last",
    "all",
    "prompt",
    "generated",
    [0, 3, -1, 30],
    torch.tensor([[True, False, True, False, False, True, False, False, True]] * 3),
]
SCOPE_IDS = ["last", "all", "prompt", "generated", "positions", "mask"]
N_NEW = 8


def _strength(steerer: lo.AbstractSteerer) -> float:
    return 8.0 if isinstance(steerer, lo.ODESteer) else 3.0


def _row(scope: Any, i: int) -> Any:
    return scope[i : i + 1] if isinstance(scope, torch.Tensor) else scope


def _tokens(
    model: Any, prompts: list[str], plan: dict[str, Any] | None, **kw: Any
) -> list[list[int]]:
    _, toks = generate(model, prompts, plan, max_new_tokens=N_NEW, return_tokens=True, **kw)
    return [t.tolist() for t in toks]


# ODESteer in every scope, CAA (a constant field) in the default one.
CASES = [("ode", scope) for scope in SCOPES] + [("caa", "last")]
CASE_IDS = [f"ode-{i}" for i in SCOPE_IDS] + ["caa-last"]


@pytest.fixture
def steerers(tiny_ode: lo.ODESteer, tiny_caa: lo.CAA) -> dict[str, Any]:
    return {"ode": tiny_ode, "caa": tiny_caa}


@pytest.mark.parametrize(("kind", "scope"), CASES, ids=CASE_IDS)
def test_kv_cache_and_full_recompute_give_the_same_tokens(
    tiny: Any, steerers: dict[str, Any], kind: str, scope: Any
) -> None:
    steerer = steerers[kind]
    plan = {TINY_HOOK: steerer}
    kw = {"T": _strength(steerer), "scope": scope}
    cached = _tokens(tiny, PROMPTS, plan, use_past_kv_cache=True, **kw)
    recomputed = _tokens(tiny, PROMPTS, plan, use_past_kv_cache=False, **kw)
    assert cached == recomputed
    assert cached != _tokens(tiny, PROMPTS, None), "steering should change the output"


@pytest.mark.parametrize(("kind", "scope"), CASES, ids=CASE_IDS)
def test_batched_rows_equal_each_prompt_alone(
    tiny: Any, steerers: dict[str, Any], kind: str, scope: Any
) -> None:
    steerer = steerers[kind]
    plan = {TINY_HOOK: steerer}
    T = _strength(steerer)
    batched = _tokens(tiny, PROMPTS, plan, T=T, scope=scope)
    alone = [_tokens(tiny, [p], plan, T=T, scope=_row(scope, i))[0] for i, p in enumerate(PROMPTS)]
    assert batched == alone


def test_one_prompt_at_a_time_fallback_matches_the_batch(
    tiny: Any, tiny_ode: lo.ODESteer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Models without the bridge's mask support generate prompt by prompt (same tokens)."""
    plan = {TINY_HOOK: tiny_ode}
    mask = SCOPES[-1]
    batched = _tokens(tiny, PROMPTS, plan, T=8.0, scope=mask)
    monkeypatch.setattr(generation, "is_bridge", lambda model: False)
    assert _tokens(tiny, PROMPTS, plan, T=8.0, scope=mask) == batched


def test_records_name_the_prompt_in_the_one_prompt_at_a_time_fallback(
    tiny: Any, tiny_ode: lo.ODESteer, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames = []
    for bridge in (True, False):
        monkeypatch.setattr(generation, "is_bridge", lambda model, bridge=bridge: bridge)
        with steering(tiny, {TINY_HOOK: tiny_ode}, T=8.0, record=True) as handle:
            handle.generate(PROMPTS, max_new_tokens=3, stop_at_eos=False)
        frame = handle.records_frame()
        frames.append(sorted(zip(frame["row"], frame["position"], strict=True)))
    assert frames[0] == frames[1]


def test_a_naive_last_position_hook_breaks_without_cache(tiny: Any, tiny_caa: lo.CAA) -> None:
    """The KV test above is discriminative: editing x[:, -1] differs between the two modes."""
    vec = tiny_caa.direction_ * 3.0

    def naive(acts: torch.Tensor, hook: Any) -> torch.Tensor:
        out = acts.clone()
        out[:, -1] += vec
        return out

    ids = tiny.to_tokens(PROMPTS[2])
    runs = []
    for kv in (True, False):
        with tiny.hooks(fwd_hooks=[(TINY_HOOK, naive)]):
            out = tiny.generate(
                ids,
                max_new_tokens=N_NEW,
                do_sample=False,
                verbose=False,
                use_past_kv_cache=kv,
                stop_at_eos=False,
            )
        runs.append(out.tolist())
    assert runs[0] != runs[1]


@pytest.mark.parametrize("kv", [True, False])
@pytest.mark.parametrize("scope", ["last", "generated", "all"])
def test_model_generate_inside_steering_infers_positions(
    tiny: Any, tiny_ode: lo.ODESteer, kv: bool, scope: str
) -> None:
    """Without the helper, TL's own generate on one prompt gets the same positions."""
    prompt = PROMPTS[0]
    expected = _tokens(tiny, [prompt], {TINY_HOOK: tiny_ode}, T=8.0, scope=scope)[0]
    ids = tiny.to_tokens(prompt)
    with steering(tiny, {TINY_HOOK: tiny_ode}, T=8.0, scope=scope):
        out = tiny.generate(
            ids, max_new_tokens=N_NEW, do_sample=False, verbose=False, use_past_kv_cache=kv
        )
    got = out[0, ids.shape[1] :].tolist()
    assert got[: len(expected)] == expected


def _expected_positions(scope: str, length: int, n_new: int) -> list[int]:
    end = length + n_new - 1  # the last generated token is never fed back
    first = {"last": length - 1, "generated": length, "prompt": 0, "all": 0}[scope]
    stop = length if scope == "prompt" else end
    return list(range(first, stop))


@pytest.mark.parametrize("scope", ["last", "generated", "prompt", "all"])
def test_each_row_is_steered_at_the_right_positions_once(
    tiny: Any, tiny_ode: lo.ODESteer, scope: str
) -> None:
    """Records of a cached, left-padded batch: per row, each in-scope token exactly once."""
    lengths = [len(tiny.to_tokens(p)[0]) for p in PROMPTS]
    with steering(tiny, {TINY_HOOK: tiny_ode}, T=8.0, scope=scope, record=True) as handle:
        handle.generate(PROMPTS, max_new_tokens=N_NEW, stop_at_eos=False)
        frame = handle.records_frame()
    for row, length in enumerate(lengths):
        got = sorted(frame.loc[frame["row"] == row, "position"].tolist())
        assert got == _expected_positions(scope, length, N_NEW)


def test_records_show_the_barrier_rising(tiny: Any, tiny_ode: lo.ODESteer) -> None:
    with steering(tiny, {TINY_HOOK: tiny_ode}, T=8.0, record=True) as handle:
        handle.generate(PROMPTS[:2], max_new_tokens=4)
    frame = handle.records_frame()
    assert list(frame.columns) == [
        "hook",
        "call",
        "row",
        "position",
        "h_before",
        "h_after",
        "shift",
    ]
    assert len(frame) > 0 and (frame["h_after"] > frame["h_before"]).all()
    # A unit-speed flow moves an arc of length T on the norm sphere; the chord is shorter.
    assert ((frame["shift"] > 0) & (frame["shift"] <= 8.0 + 1e-3)).all()


def test_generate_returns_completions_only(tiny: Any) -> None:
    texts, toks = generate(tiny, PROMPTS, None, max_new_tokens=5, return_tokens=True)
    full = tiny.generate(PROMPTS[0], max_new_tokens=5, do_sample=False, verbose=False)
    assert full == PROMPTS[0] + texts[0]
    assert all(0 < len(t) <= 5 for t in toks)


def test_generate_validation(tiny: Any, tiny_ode: lo.ODESteer) -> None:
    plan = {TINY_HOOK: tiny_ode}
    with pytest.raises(lo.InvalidParameterError, match="out of range"):
        generate(tiny, PROMPTS, plan, T=1.0, scope=[60], max_new_tokens=4)
    with pytest.raises(lo.InvalidParameterError, match="past the start"):
        generate(tiny, PROMPTS, plan, T=1.0, scope=[-4], max_new_tokens=4)
    with pytest.raises(lo.ShapeMismatchError, match="2 rows"):
        generate(tiny, PROMPTS, plan, T=1.0, scope=torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(lo.InvalidParameterError, match="attention_mask"):
        generate(tiny, PROMPTS, plan, T=1.0, attention_mask=None)
    with pytest.raises(lo.InvalidParameterError, match="chat template"):
        generate(tiny, PROMPTS, plan, T=1.0, chat=True)
    with pytest.raises(lo.InvalidParameterError, match="No strength"):
        generate(tiny, PROMPTS, plan)
