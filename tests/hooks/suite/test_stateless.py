"""A steering hook treats every top-level forward call on its own (regressions of the redesign).

The hook used to guess from call lengths: a plain forward one token longer than the previous one
was taken for a generation step without the KV cache, and a one-token call after a longer one
for a cached decoding step. The hook now keeps no state between calls and reads what it needs
(padding of ``list[str]`` input, ``attention_mask=``, the KV-cache offset) from the model's
input, so a reused hook gives bitwise what a fresh one gives, ``run_with_hooks(list_of_str)``
steers each row's own last token, and plain ``model.generate`` with the KV cache inside a
``steering`` block gives exactly the tokens of ``lo.generate``.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.hooks import SteeringHook, generate, steering
from lens_odesteer.models.names import resid_post
from tests.hooks._shared import PROMPTS, TINY_HOOK
from tests.hooks.suite._backend import IS_BRIDGE, Capture, manual_cached_greedy

T = 8.0
SENTENCE = "The quick brown fox jumps over the lazy dog."
SCOPES: list[Any] = [
    "last",
    "all",
    "prompt",
    "generated",
    [0],
    [1, -2],
    torch.tensor([True, False, True, True, False, True, False, True]),
]
SCOPE_IDS = ["last", "all", "prompt", "generated", "first", "positions", "mask"]
N_NEW = 8


def _run(model: Any, tokens: torch.Tensor, hook: SteeringHook) -> torch.Tensor:
    return model.run_with_hooks(tokens, fwd_hooks=[(TINY_HOOK, hook)])


# -- a reused hook is a fresh hook ------------------------------------------------------------
@pytest.mark.parametrize("scope", SCOPES, ids=SCOPE_IDS)
def test_a_reused_hook_on_growing_prefixes_equals_a_fresh_hook(
    tiny: Any, tiny_ode: lo.ODESteer, scope: Any
) -> None:
    """Prefixes of 3..8 tokens, each one token longer than the last: each its own prompt."""
    tokens = tiny.to_tokens(SENTENCE)
    fresh = [
        _run(tiny, tokens[:, :n], SteeringHook(tiny, tiny_ode, T=T, scope=scope))
        for n in range(3, 9)
    ]
    reused = SteeringHook(tiny, tiny_ode, T=T, scope=scope)
    for n, expected in zip(range(3, 9), fresh, strict=True):
        assert torch.equal(_run(tiny, tokens[:, :n], reused), expected), n
    plain = tiny(tokens[:, :8])
    if scope == "generated":  # a plain forward has no generated tokens
        assert torch.equal(fresh[-1], plain)
    else:
        assert not torch.equal(fresh[-1], plain)


@pytest.mark.parametrize("scope", ["prompt", [0]], ids=["prompt", "first"])
def test_a_one_token_call_after_a_longer_one_is_a_prompt_of_its_own(
    tiny: Any, tiny_ode: lo.ODESteer, scope: Any
) -> None:
    """Not a cached decoding step: the single token is the prompt's first, and it is steered."""
    tokens = tiny.to_tokens(SENTENCE)
    reused = SteeringHook(tiny, tiny_ode, T=T, scope=scope)
    for piece in (tokens[:, :8], tokens[:, 8:9], tokens[:, :6], tokens[:, :1]):
        fresh = _run(tiny, piece, SteeringHook(tiny, tiny_ode, T=T, scope=scope))
        assert torch.equal(_run(tiny, piece, reused), fresh)
        assert not torch.equal(fresh, tiny(piece))


def _changed_columns(model: Any, hook: SteeringHook, inp: Any, **kw: Any) -> list[list[int]]:
    """Per row, the columns whose activation the hook changed."""
    pre, post = Capture(), Capture()
    model.run_with_hooks(
        inp, fwd_hooks=[(TINY_HOOK, pre), (TINY_HOOK, hook), (TINY_HOOK, post)], **kw
    )
    changed = (post.seen[0] != pre.seen[0]).any(-1)
    return [row.nonzero().flatten().tolist() for row in changed]


def test_plain_forwards_one_token_longer_are_independent_prompts(
    tiny: Any, tiny_caa: lo.CAA
) -> None:
    """Whatever came before, "last" is the last token of the call (BOS, then one per byte)."""
    hook = SteeringHook(tiny, tiny_caa, T=2.0, scope="last")
    assert _changed_columns(tiny, hook, "Hi") == [[2]]
    assert _changed_columns(tiny, hook, "Hey") == [[3]]
    assert _changed_columns(tiny, hook, "Hey!") == [[4]]  # "Hey" plus a token: still a prompt
    assert _changed_columns(tiny, hook, "Hey!") == [[4]]


# -- list[str] input: TL pads it on the right -------------------------------------------------
@pytest.mark.parametrize("scope", ["last", "all", [1, -1]], ids=str)
def test_run_with_hooks_on_strings_steers_each_row_as_if_alone(
    tiny: Any, tiny_ode: lo.ODESteer, scope: Any
) -> None:
    texts = ["Hello there, my friend", "Hi"]
    lengths = [len(tiny.to_tokens(t)[0]) for t in texts]
    hook = SteeringHook(tiny, tiny_ode, T=T, scope=scope)
    batched = tiny.run_with_hooks(texts, fwd_hooks=[(TINY_HOOK, hook)])
    for row, text in enumerate(texts):
        alone = tiny.run_with_hooks(
            text, fwd_hooks=[(TINY_HOOK, SteeringHook(tiny, tiny_ode, T=T, scope=scope))]
        )
        n = lengths[row]
        torch.testing.assert_close(batched[row, :n], alone[0], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(batched[1, : lengths[1]], tiny(texts[1])[0], atol=1e-3)


def test_last_on_strings_is_each_rows_last_real_token(tiny: Any, tiny_caa: lo.CAA) -> None:
    texts = ["Hello there, my friend", "Hi"]
    lengths = [len(tiny.to_tokens(t)[0]) for t in texts]
    hook = SteeringHook(tiny, tiny_caa, T=2.0, scope="last", record=True)
    assert _changed_columns(tiny, hook, texts) == [[n - 1] for n in lengths]
    (record,) = hook.records
    assert record["row"].tolist() == [0, 1]
    assert record["position"].tolist() == [n - 1 for n in lengths]
    # The same batch given as right-padded tokens alone carries no padding information: the
    # last column is steered in every row (pass attention_mask= to say where the pads are).
    tokens = tiny.to_tokens(texts)
    assert _changed_columns(tiny, hook, tokens) == [[lengths[0] - 1]] * 2
    mask = (torch.arange(tokens.shape[1])[None] < torch.tensor(lengths)[:, None]).long()
    assert _changed_columns(tiny, hook, tokens, attention_mask=mask) == [[n - 1] for n in lengths]


def test_strings_padded_on_the_left_on_request(tiny: Any, tiny_caa: lo.CAA) -> None:
    texts = ["Hello there, my friend", "Hi"]
    width = len(tiny.to_tokens(texts[0])[0])
    hook = SteeringHook(tiny, tiny_caa, T=2.0, scope="prompt")
    got = _changed_columns(tiny, hook, texts, padding_side="left")
    short = len(tiny.to_tokens(texts[1])[0])
    assert got == [list(range(width)), list(range(width - short, width))]


# -- plain model.generate inside a steering block ---------------------------------------------
def _model_generate(model: Any, prompts: list[str], **kw: Any) -> list[list[int]]:
    """The new tokens of ``model.generate`` on a prompt list (one prompt per call on TL 2.x).

    TL 2.x's batched generate attends to the pads of unequal-length prompts, so it gets one
    prompt at a time there; the bridge left-pads the list and masks the pads itself.
    """
    kw = {"max_new_tokens": N_NEW, "do_sample": False, "verbose": False, **kw}
    groups = [prompts] if IS_BRIDGE else [[p] for p in prompts]
    out: list[list[int]] = []
    for group in groups:
        ids = model.generate(group, return_type="tokens", stop_at_eos=False, **kw)
        out += [row[-N_NEW:].tolist() for row in ids]
    return out


def _lo_generate(model: Any, prompts: list[str], plan: Any, **kw: Any) -> list[list[int]]:
    _, toks = generate(
        model, prompts, plan, max_new_tokens=N_NEW, stop_at_eos=False, return_tokens=True, **kw
    )
    return [t.tolist() for t in toks]


@pytest.mark.parametrize("scope", ["last", "all", "prompt", "generated", [0, -1, 12]], ids=str)
def test_model_generate_with_the_kv_cache_equals_lo_generate(
    tiny: Any, tiny_ode: lo.ODESteer, scope: Any
) -> None:
    plan = lo.SteeringPlan({TINY_HOOK: tiny_ode}, T=T, scope=scope)
    expected = _lo_generate(tiny, PROMPTS, plan)
    with steering(tiny, plan):
        got = _model_generate(tiny, PROMPTS, use_past_kv_cache=True)
    assert got == expected
    assert expected != _lo_generate(tiny, PROMPTS, None)


def _greedy_with_fresh_forwards(
    model: Any, prompt: str, steerer: Any, scope: Any, n_new: int
) -> list[int]:
    """Greedy decoding by full forward passes, each steered as a prompt of its own."""
    tokens = model.to_tokens(prompt)
    new: list[int] = []
    for _ in range(n_new):
        hook = SteeringHook(model, steerer, T=T, scope=scope)
        logits = model.run_with_hooks(tokens, fwd_hooks=[(TINY_HOOK, hook)])
        nxt = int(logits[0, -1].argmax())
        new.append(nxt)
        tokens = torch.cat([tokens, torch.tensor([[nxt]], device=tokens.device)], dim=1)
    return new


@pytest.mark.parametrize("scope", ["last", "all", "prompt", "generated"])
def test_model_generate_without_the_cache_steers_each_pass_as_a_new_prompt(
    tiny: Any, tiny_ode: lo.ODESteer, scope: str
) -> None:
    """Documented: without the KV cache a plain pass carries no generation state."""
    prompt = PROMPTS[0]
    with steering(tiny, {TINY_HOOK: tiny_ode}, T=T, scope=scope):
        got = _model_generate(tiny, [prompt], use_past_kv_cache=False)[0]
    assert got == _greedy_with_fresh_forwards(tiny, prompt, tiny_ode, scope, N_NEW)
    exact = _lo_generate(tiny, [prompt], {TINY_HOOK: tiny_ode}, T=T, scope=scope)[0]
    if scope == "all":  # every pass re-steers every token: the same as the exact generation
        assert got == exact
    if scope == "generated":  # no pass has generated tokens of its own: nothing is steered
        assert got == _lo_generate(tiny, [prompt], None)[0]


@pytest.mark.parametrize("scope", ["last", "generated", "all"])
def test_a_hand_written_cached_continuation_is_one_sequence_whatever_ran_before(
    tiny: Any, tiny_ode: lo.ODESteer, tiny_caa: lo.CAA, scope: str
) -> None:
    """The KV cache passed to each call, not an earlier generation, places its tokens.

    A block on another hook point stays open, so the hooks' input sensor lives on across a
    generation of a longer prompt and the hand-written decoding that follows.
    """
    prompt, longer = PROMPTS[1], PROMPTS[0]
    n_new = 4
    expected = _lo_generate(tiny, [prompt], {TINY_HOOK: tiny_ode}, T=T, scope=scope)[0][:n_new]
    tokens = tiny.to_tokens(prompt)
    length = tokens.shape[1]
    with steering(tiny, {resid_post(1): tiny_caa}, T=0.0) as handle:
        handle.generate([longer], max_new_tokens=3)
        tiny.generate(longer, max_new_tokens=3, verbose=False, do_sample=False)
        hook = SteeringHook(tiny, tiny_ode, T=T, scope=scope, record=True)
        with tiny.hooks(fwd_hooks=[(TINY_HOOK, hook)]):
            got = manual_cached_greedy(tiny, tokens, n_new)
    assert got == expected
    positions = [r["position"].tolist() for r in hook.records]
    decoded = [[length + k] for k in range(n_new - 1)]
    first = {"last": [[length - 1]], "generated": [], "all": [list(range(length))]}[scope]
    assert positions == first + decoded
