"""Steered generation on a classic HookedTransformer (TL 2.x): KV cache, batches, positions.

On a HookedTransformer, ``lens_odesteer.hooks.generate`` runs one prompt per ``model.generate``
call (TL 2.18's batched generate attends to the pads of unequal-length prompts), so a batch must
give each row exactly the tokens of that prompt alone, and the KV cache must not change them.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.hooks import generate, steering
from tests.tl2._shared import PROMPTS, TINY_HOOK

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
CASES = [("ode", scope) for scope in SCOPES] + [("caa", "last")]
CASE_IDS = [f"ode-{i}" for i in SCOPE_IDS] + ["caa-last"]


def _strength(steerer: lo.AbstractSteerer) -> float:
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


def test_T_zero_generates_the_unsteered_tokens(tiny: Any, tiny_ode: lo.ODESteer) -> None:
    plain = _tokens(tiny, PROMPTS, None)
    assert _tokens(tiny, PROMPTS, {TINY_HOOK: tiny_ode}, T=0.0, scope="all") == plain


def test_hookedtransformer_gets_one_unpadded_prompt_per_generate_call(
    fresh_tiny: Any, tiny_ode: lo.ODESteer, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = fresh_tiny
    calls: list[tuple[list[int], dict[str, Any]]] = []
    original = model.generate

    def spy(input: Any, **kwargs: Any) -> Any:
        calls.append((input.tolist(), kwargs))
        return original(input, **kwargs)

    monkeypatch.setattr(model, "generate", spy)
    generate(model, PROMPTS, {TINY_HOOK: tiny_ode}, T=8.0, max_new_tokens=3)
    assert [ids for ids, _ in calls] == [model.to_tokens(p).tolist() for p in PROMPTS]
    assert all("attention_mask" not in kw and kw["do_sample"] is False for _, kw in calls)


def test_tl2_batched_generate_is_wrong_for_unequal_lengths(tiny: Any) -> None:
    """Why the helper does not batch here: TL 2.18's own batched generate attends to pads."""
    alone = [
        tiny.generate(p, max_new_tokens=N_NEW, do_sample=False, verbose=False, stop_at_eos=False)
        for p in PROMPTS
    ]
    batched = tiny.generate(
        PROMPTS,
        max_new_tokens=N_NEW,
        do_sample=False,
        verbose=False,
        stop_at_eos=False,
        padding_side="left",
    )
    assert batched != alone
    ours = generate(tiny, PROMPTS, None, max_new_tokens=N_NEW, stop_at_eos=False)
    assert [p + text for p, text in zip(PROMPTS, ours, strict=True)] == alone


@pytest.mark.parametrize("kv", [True, False])
@pytest.mark.parametrize("scope", ["last", "generated", "all"])
def test_model_generate_inside_steering_infers_positions(
    tiny: Any, tiny_ode: lo.ODESteer, kv: bool, scope: str
) -> None:
    """Without the helper, TL 2.x's own generate on one prompt gets the same positions."""
    prompt = PROMPTS[0]
    expected = _tokens(tiny, [prompt], {TINY_HOOK: tiny_ode}, T=8.0, scope=scope)[0]
    ids = tiny.to_tokens(prompt)
    with steering(tiny, {TINY_HOOK: tiny_ode}, T=8.0, scope=scope):
        out = tiny.generate(
            ids, max_new_tokens=N_NEW, do_sample=False, verbose=False, use_past_kv_cache=kv
        )
    got = out[0, ids.shape[1] :].tolist()
    assert got[: len(expected)] == expected


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
def test_each_prompt_is_steered_at_the_right_positions(
    tiny: Any, tiny_ode: lo.ODESteer, scope: str, kv: bool
) -> None:
    """Records: with the cache each in-scope token once; without it, the same set per pass."""
    for prompt in PROMPTS:
        length = len(tiny.to_tokens(prompt)[0])
        with steering(tiny, {TINY_HOOK: tiny_ode}, T=8.0, scope=scope, record=True) as handle:
            handle.generate([prompt], max_new_tokens=N_NEW, stop_at_eos=False, use_past_kv_cache=kv)
            frame = handle.records_frame()
        got = frame["position"].tolist()
        expected = _expected_positions(scope, length, N_NEW)
        if kv:
            assert sorted(got) == expected
        else:
            assert set(got) == set(expected)


def test_records_name_the_prompt_row(tiny: Any, tiny_ode: lo.ODESteer) -> None:
    """One prompt per generate call here, yet each record names its prompt's row."""
    lengths = [len(tiny.to_tokens(p)[0]) for p in PROMPTS]
    with steering(tiny, {TINY_HOOK: tiny_ode}, T=8.0, scope="last", record=True) as handle:
        handle.generate(PROMPTS, max_new_tokens=N_NEW, stop_at_eos=False)
        frame = handle.records_frame()
    for row, length in enumerate(lengths):
        got = sorted(frame.loc[frame["row"] == row, "position"].tolist())
        assert got == _expected_positions("last", length, N_NEW)


def test_records_show_the_barrier_rising(tiny: Any, tiny_ode: lo.ODESteer) -> None:
    with steering(tiny, {TINY_HOOK: tiny_ode}, T=8.0, record=True) as handle:
        handle.generate(PROMPTS[:2], max_new_tokens=4)
    frame = handle.records_frame()
    assert len(frame) > 0 and (frame["h_after"] > frame["h_before"]).all()
    assert ((frame["shift"] > 0) & (frame["shift"] <= 8.0 + 1e-3)).all()


def test_generate_returns_completions_only(tiny: Any) -> None:
    texts, toks = generate(tiny, PROMPTS, None, max_new_tokens=5, return_tokens=True)
    for prompt, text, tok in zip(PROMPTS, texts, toks, strict=True):
        full = tiny.generate(prompt, max_new_tokens=5, do_sample=False, verbose=False)
        assert full.startswith(prompt)
        assert 0 < len(tok) <= 5
        assert text == tiny.tokenizer.decode(tok.tolist(), skip_special_tokens=True)
        assert full.removesuffix(tiny.tokenizer.eos_token * 5).startswith(prompt + text)


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
