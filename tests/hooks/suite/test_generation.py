"""Steered generation through ``lo.generate`` / ``handle.generate`` on either backend.

Every scope must give the same greedy tokens with and without the KV cache, and each row of a
batch must get the tokens of its prompt generated alone. (A bridge generates the batch in one
left-padded call; a HookedTransformer one prompt per call, see tests/tl2/test_generation.py.)
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.errors import InvalidParameterError, ShapeMismatchError
from lens_odesteer.hooks import generate, steering
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
# ODESteer in every scope, CAA (a constant field) in the default one.
CASES = [("ode", scope) for scope in SCOPES] + [("caa", "last")]
CASE_IDS = [f"ode-{i}" for i in SCOPE_IDS] + ["caa-last"]


def _T(steerer: Any) -> float:
    return 8.0 if isinstance(steerer, lo.ODESteer) else 3.0


def _row(scope: Any, i: int) -> Any:
    return scope[i : i + 1] if isinstance(scope, torch.Tensor) else scope


def _tokens(
    model: Any, prompts: list[str], plan: dict[str, Any] | None, **kw: Any
) -> list[list[int]]:
    _, toks = generate(model, prompts, plan, max_new_tokens=N_NEW, return_tokens=True, **kw)
    return [t.tolist() for t in toks]


@pytest.fixture
def steerers(tiny_ode: lo.ODESteer, tiny_caa: lo.CAA) -> dict[str, Any]:
    return {"ode": tiny_ode, "caa": tiny_caa}


@pytest.mark.parametrize(("kind", "scope"), CASES, ids=CASE_IDS)
def test_kv_cache_and_full_recompute_give_the_same_tokens(
    tiny: Any, steerers: dict[str, Any], kind: str, scope: Any
) -> None:
    steerer = steerers[kind]
    plan = {TINY_HOOK: steerer}
    kw = {"T": _T(steerer), "scope": scope}
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
    T = _T(steerer)
    batched = _tokens(tiny, PROMPTS, plan, T=T, scope=scope)
    alone = [_tokens(tiny, [p], plan, T=T, scope=_row(scope, i))[0] for i, p in enumerate(PROMPTS)]
    assert batched == alone


def test_a_plan_and_its_arguments_generate_the_same(tiny: Any, tiny_ode: lo.ODESteer) -> None:
    plan = lo.SteeringPlan({TINY_HOOK: tiny_ode}, T=8.0, scope="all")
    by_arguments = _tokens(tiny, PROMPTS, {TINY_HOOK: tiny_ode}, T=8.0, scope="all")
    assert _tokens(tiny, PROMPTS, plan) == by_arguments  # type: ignore[arg-type]
    with steering(tiny, plan) as handle:
        _, toks = handle.generate(PROMPTS, max_new_tokens=N_NEW, return_tokens=True)
    assert [t.tolist() for t in toks] == by_arguments
    with pytest.raises(InvalidParameterError, match="Got a SteeringPlan and also"):
        generate(tiny, PROMPTS, plan, T=1.0)


def test_T_zero_generates_the_unsteered_tokens(tiny: Any, tiny_ode: lo.ODESteer) -> None:
    plain = _tokens(tiny, PROMPTS, None)
    assert _tokens(tiny, PROMPTS, {TINY_HOOK: tiny_ode}, T=0.0, scope="all") == plain
    assert _tokens(tiny, PROMPTS, {TINY_HOOK: tiny_ode}, strength=0.0, scope="all") == plain


def test_a_naive_last_position_hook_breaks_without_cache(tiny: Any, tiny_caa: lo.CAA) -> None:
    """The KV test above is discriminative: editing x[:, -1] differs between the two modes."""
    vec = tiny_caa.direction_ * 3.0

    def naive(acts: torch.Tensor, hook: Any) -> torch.Tensor:
        out = acts.clone()
        out[:, -1] += vec
        return out

    differs = []
    for prompt in PROMPTS:
        ids = tiny.to_tokens(prompt)
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
        differs.append(runs[0] != runs[1])
    assert any(differs)


def _expected_positions(scope: str, length: int, n_new: int) -> list[int]:
    end = length + n_new - 1  # the last generated token is never fed back
    first = {"last": length - 1, "generated": length, "prompt": 0, "all": 0}[scope]
    stop = length if scope == "prompt" else end
    return list(range(first, stop))


@pytest.mark.parametrize("kv", [True, False])
@pytest.mark.parametrize("scope", ["last", "generated", "prompt", "all"])
def test_each_row_is_steered_at_the_right_positions(
    tiny: Any, tiny_ode: lo.ODESteer, scope: str, kv: bool
) -> None:
    """Records: with the cache each in-scope token once; without it, the same set per pass."""
    lengths = [len(tiny.to_tokens(p)[0]) for p in PROMPTS]
    with steering(tiny, {TINY_HOOK: tiny_ode}, T=8.0, scope=scope, record=True) as handle:
        handle.generate(PROMPTS, max_new_tokens=N_NEW, stop_at_eos=False, use_past_kv_cache=kv)
        frame = handle.records_frame()
    for row, length in enumerate(lengths):
        got = frame.loc[frame["row"] == row, "position"].tolist()
        expected = _expected_positions(scope, length, N_NEW)
        if kv:
            assert sorted(got) == expected
        else:
            assert set(got) == set(expected)


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
    # A unit-speed flow moves an arc of length T; the chord is shorter.
    assert ((frame["shift"] > 0) & (frame["shift"] <= 8.0 + 1e-3)).all()


def test_generate_returns_completions_only(tiny: Any) -> None:
    texts, toks = generate(tiny, PROMPTS, None, max_new_tokens=5, return_tokens=True)
    for prompt, text, tok in zip(PROMPTS, texts, toks, strict=True):
        full = tiny.generate(prompt, max_new_tokens=5, do_sample=False, verbose=False)
        assert 0 < len(tok) <= 5
        assert text == tiny.tokenizer.decode(tok.tolist(), skip_special_tokens=True)
        assert full.removesuffix(tiny.tokenizer.eos_token * 5).startswith(prompt + text)


def test_generate_validation(tiny: Any, tiny_ode: lo.ODESteer) -> None:
    plan = {TINY_HOOK: tiny_ode}
    with pytest.raises(InvalidParameterError, match="out of range"):
        generate(tiny, PROMPTS, plan, T=1.0, scope=[60], max_new_tokens=4)
    with pytest.raises(InvalidParameterError, match="past the start"):
        generate(tiny, PROMPTS, plan, T=1.0, scope=[-4], max_new_tokens=4)
    with pytest.raises(ShapeMismatchError, match="2 rows"):
        generate(tiny, PROMPTS, plan, T=1.0, scope=torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(InvalidParameterError, match="attention_mask"):
        generate(tiny, PROMPTS, plan, T=1.0, attention_mask=None)
    with pytest.raises(InvalidParameterError, match="chat template"):
        generate(tiny, PROMPTS, plan, T=1.0, chat=True)
    with pytest.raises(InvalidParameterError, match="No strength"):
        generate(tiny, PROMPTS, plan)
    with pytest.raises(InvalidParameterError, match="without steerers"):
        generate(tiny, PROMPTS, None, T=1.0)
