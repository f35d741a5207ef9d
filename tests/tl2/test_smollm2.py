"""SmolLM2-135M-Instruct converted into a TL 2.x HookedTransformer (slow: loaded once).

The model is built from the HF state dict with an explicit config (conftest.load_smol_pair), so
these tests first check the conversion itself against the HF model, then run the library.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.activations import collect_activations
from lens_odesteer.hooks import generate, steering
from lens_odesteer.models.names import resid_post
from tests.tl2._shared import SMOL_LAYER, SmolPair, attached_hooks

pytestmark = pytest.mark.slow

HOOK = resid_post(SMOL_LAYER)
CAPITAL = "The capital of France is"
PROMPTS = ["Hello there, my friend", CAPITAL]
N_NEW = 8
T_ODE = 60.0  # the residual norm at this layer is about 127; T is an arc length


def _tokens(model: Any, prompts: list[str], plan: Any, **kw: Any) -> list[list[int]]:
    _, toks = generate(model, prompts, plan, max_new_tokens=N_NEW, return_tokens=True, **kw)
    return [t.tolist() for t in toks]


# -- the conversion ---------------------------------------------------------------------------
def test_tokenizer_fix(smol: Any) -> None:
    tok = smol.tokenizer
    assert tok.convert_ids_to_tokens([tok.bos_token_id, tok.eos_token_id]) == [
        "<|im_start|>",
        "<|im_end|>",
    ]
    assert tok.pad_token_id == tok.eos_token_id != tok.bos_token_id
    tokens = smol.to_tokens(CAPITAL)
    assert tokens[0, 0] == tok.bos_token_id and tokens[0, 1] != tok.bos_token_id  # BOS once
    assert smol.cfg.rotary_base == 100000.0 and smol.cfg.n_ctx == 512


def test_logits_match_hf(smol_pair: SmolPair) -> None:
    tokens = smol_pair.ht.to_tokens(CAPITAL)
    with torch.inference_mode():
        ours = smol_pair.ht(tokens)
        reference = smol_pair.hf(tokens).logits
    diff = (ours - reference).abs().max().item()
    assert diff < 1e-4, f"HookedTransformer vs HF logits differ by {diff:.2e}"


@pytest.mark.parametrize("kv", [True, False])
def test_greedy_paris(smol: Any, kv: bool) -> None:
    text = smol.generate(
        CAPITAL, max_new_tokens=N_NEW, do_sample=False, verbose=False, use_past_kv_cache=kv
    )
    assert text.startswith(CAPITAL + " Paris"), repr(text)
    assert text == CAPITAL + " Paris.\n\nThe capital of the"


# -- the library ------------------------------------------------------------------------------
@pytest.mark.parametrize("position", ["last", "mean"])
def test_collect_activations_batched_equals_alone(smol: Any, position: str) -> None:
    texts = ["Hi", "I love this wonderful day.", CAPITAL, "Everything went badly wrong."]
    batched = collect_activations(smol, texts, HOOK, position=position, progress=False)
    for i, text in enumerate(texts):
        _, cache = smol.run_with_cache(smol.to_tokens(text), names_filter=HOOK)
        acts = cache[HOOK][0]
        expected = acts[-1] if position == "last" else acts[1:].mean(0)
        torch.testing.assert_close(batched[i], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "scope",
    ["last", "all", "prompt", "generated", [1, -1, 9], torch.tensor([[True, False] * 6] * 2)],
    ids=["last", "all", "prompt", "generated", "positions", "mask"],
)
def test_kv_and_no_kv_give_the_same_tokens(smol: Any, smol_ode: lo.ODESteer, scope: Any) -> None:
    plan = {HOOK: smol_ode}
    cached = _tokens(smol, PROMPTS, plan, T=T_ODE, scope=scope)
    assert _tokens(smol, PROMPTS, plan, T=T_ODE, scope=scope, use_past_kv_cache=False) == cached
    if isinstance(scope, torch.Tensor):  # each row its own mask row, as when alone
        for i, prompt in enumerate(PROMPTS):
            assert _tokens(smol, [prompt], plan, T=T_ODE, scope=scope[i : i + 1]) == [cached[i]]


def test_steering_changes_the_text(smol: Any, smol_ode: lo.ODESteer, smol_caa: lo.CAA) -> None:
    base = _tokens(smol, PROMPTS, None)
    assert base[1][:2] == smol.to_tokens(" Paris.", prepend_bos=False)[0].tolist()
    assert _tokens(smol, PROMPTS, {HOOK: smol_ode}, T=T_ODE) != base
    assert _tokens(smol, PROMPTS, {HOOK: smol_caa}, T=4.0) != base


def test_T_zero_and_exact_edit(smol: Any, smol_ode: lo.ODESteer) -> None:
    tokens = smol.to_tokens(PROMPTS[1])
    plain, cache = smol.run_with_cache(tokens, names_filter=HOOK)
    with steering(smol, {HOOK: smol_ode}, T=0.0, scope="all"):
        assert torch.equal(smol(tokens), plain)
    with steering(smol, {HOOK: smol_ode}, T=T_ODE, scope=[2, -1]):
        _, steered = smol.run_with_cache(tokens, names_filter=HOOK)
    before, after = cache[HOOK][0], steered[HOOK][0]
    keep = torch.ones(len(before), dtype=torch.bool)
    keep[[2, -1]] = False
    assert torch.equal(after[keep], before[keep])
    torch.testing.assert_close(after[~keep], smol_ode.steer(before[~keep], T_ODE))


def test_hooks_removed_after_errors(smol: Any, smol_caa: lo.CAA) -> None:
    def explode(acts: torch.Tensor, hook: Any) -> None:
        raise RuntimeError("inside the forward")

    with (
        pytest.raises(RuntimeError),
        steering(smol, {HOOK: smol_caa}, T=4.0) as handle,
        smol.hooks(fwd_hooks=[(resid_post(20), explode)]),
    ):
        handle.generate(PROMPTS, max_new_tokens=2)
    assert attached_hooks(smol) == {}
    with (
        pytest.raises(lo.HookNameError, match="Did you mean"),
        steering(smol, {"blocks.12.hook_resid_pst": smol_caa}, T=1.0),
    ):
        pass  # pragma: no cover


def test_chat_generation_with_records(smol: Any, smol_ode: lo.ODESteer) -> None:
    with steering(smol, {HOOK: smol_ode}, T=T_ODE, record=True) as handle:
        texts = handle.generate(["Describe your day."], max_new_tokens=N_NEW, chat=True)
    frame = handle.records_frame()
    assert texts[0].strip() and "<|im_start|>" not in texts[0]
    assert (frame["h_after"] > frame["h_before"]).all()
