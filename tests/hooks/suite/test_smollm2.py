"""The same guarantees on the real SmolLM2-135M-Instruct (slow: loads the model once).

On the bridge the model comes from ``lens_odesteer.models.load_model``; on TL 2.x it is
converted into a ``HookedTransformer`` (tests/tl2/_shared.py; tests/tl2/test_smollm2.py checks
that conversion against the HF model).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.errors import HookNameError
from lens_odesteer.hooks import SteeringHook, generate, steering
from lens_odesteer.models.names import resid_post
from tests.hooks.suite._backend import IS_BRIDGE, SMOL_LAYER, attached_hooks

pytestmark = pytest.mark.slow

HOOK = resid_post(SMOL_LAYER)
PROMPTS = ["Hello there, my friend", "The capital of France is"]
SENTENCE = "The weather today is lovely, so we walked to the old harbour."
N_NEW = 8
T_ODE = 60.0  # the residual norm at this layer is about 127; T is an arc length


def _tokens(model: Any, prompts: list[str], plan: Any, **kw: Any) -> list[list[int]]:
    _, toks = generate(model, prompts, plan, max_new_tokens=N_NEW, return_tokens=True, **kw)
    return [t.tolist() for t in toks]


@pytest.mark.parametrize("scope", ["last", "all", [1, -1]], ids=str)
def test_a_reused_hook_on_growing_prefixes_equals_a_fresh_hook(
    smol: Any, smol_ode: lo.ODESteer, scope: Any
) -> None:
    tokens = smol.to_tokens(SENTENCE)
    assert tokens.shape[1] >= 9
    reused = SteeringHook(smol, smol_ode, T=T_ODE, scope=scope)
    with torch.inference_mode():
        for n in range(3, 9):
            got = smol.run_with_hooks(tokens[:, :n], fwd_hooks=[(HOOK, reused)])
            fresh = SteeringHook(smol, smol_ode, T=T_ODE, scope=scope)
            expected = smol.run_with_hooks(tokens[:, :n], fwd_hooks=[(HOOK, fresh)])
            assert torch.equal(got, expected), n


@pytest.mark.parametrize(
    "scope",
    ["last", "all", "prompt", "generated", [1, -1, 9], torch.tensor([[True, False] * 6] * 2)],
    ids=["last", "all", "prompt", "generated", "positions", "mask"],
)
def test_kv_no_kv_and_batch_vs_alone_give_the_same_tokens(
    smol: Any, smol_ode: lo.ODESteer, scope: Any
) -> None:
    plan = {HOOK: smol_ode}
    cached = _tokens(smol, PROMPTS, plan, T=T_ODE, scope=scope)
    assert _tokens(smol, PROMPTS, plan, T=T_ODE, scope=scope, use_past_kv_cache=False) == cached
    for i, prompt in enumerate(PROMPTS):
        row = scope[i : i + 1] if isinstance(scope, torch.Tensor) else scope
        assert _tokens(smol, [prompt], plan, T=T_ODE, scope=row) == [cached[i]]


def test_model_generate_with_the_kv_cache_equals_lo_generate(
    smol: Any, smol_ode: lo.ODESteer
) -> None:
    plan = lo.SteeringPlan({HOOK: smol_ode}, T=T_ODE, scope="last")
    expected = _tokens(smol, PROMPTS, plan, stop_at_eos=False)
    groups = [PROMPTS] if IS_BRIDGE else [[p] for p in PROMPTS]
    got: list[list[int]] = []
    with steering(smol, plan):
        for group in groups:
            out = smol.generate(
                group,
                max_new_tokens=N_NEW,
                do_sample=False,
                verbose=False,
                stop_at_eos=False,
                return_type="tokens",
            )
            got += [row[-N_NEW:].tolist() for row in out]
    assert got == expected


def test_the_same_strength_changes_the_text_for_both_methods(
    smol: Any, smol_ode: lo.ODESteer, smol_caa: lo.CAA
) -> None:
    base = _tokens(smol, PROMPTS, None)
    assert base[1][:2] == smol.to_tokens(" Paris.", prepend_bos=False)[0].tolist()
    assert _tokens(smol, PROMPTS, {HOOK: smol_ode}, strength=0.5) != base
    assert _tokens(smol, PROMPTS, {HOOK: smol_caa}, strength=0.5) != base


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
        pytest.raises(HookNameError, match="Did you mean"),
        steering(smol, {"blocks.12.hook_resid_pst": smol_caa}, T=1.0),
    ):
        pass  # pragma: no cover


def test_chat_generation_with_records(smol: Any, smol_ode: lo.ODESteer) -> None:
    with steering(smol, {HOOK: smol_ode}, T=T_ODE, record=True) as handle:
        texts = handle.generate(["Describe your day."], max_new_tokens=N_NEW, chat=True)
    frame = handle.records_frame()
    assert texts[0].strip() and "<|im_start|>" not in texts[0]
    assert (frame["h_after"] > frame["h_before"]).all()
