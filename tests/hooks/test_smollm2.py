"""The same guarantees on the real SmolLM2-135M-Instruct (slow: loads the model once)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.hooks import generate, steering
from lens_odesteer.models import resid_post
from tests.hooks._shared import SMOL_LAYER

pytestmark = pytest.mark.slow

HOOK = resid_post(SMOL_LAYER)
PROMPTS = ["Hello there, my friend", "The capital of France is"]
N_NEW = 8
T_ODE = 60.0  # the residual norm at this layer is about 127; T is an arc length


def _tokens(model: Any, prompts: list[str], plan: Any, **kw: Any) -> list[list[int]]:
    _, toks = generate(model, prompts, plan, max_new_tokens=N_NEW, return_tokens=True, **kw)
    return [t.tolist() for t in toks]


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


def test_steering_changes_the_text(smol: Any, smol_ode: lo.ODESteer, smol_caa: lo.CAA) -> None:
    base = _tokens(smol, PROMPTS, None)
    assert _tokens(smol, PROMPTS, {HOOK: smol_ode}, T=T_ODE) != base
    assert _tokens(smol, PROMPTS, {HOOK: smol_caa}, T=4.0) != base


def test_T_zero_and_exact_edit_on_smollm2(smol: Any, smol_ode: lo.ODESteer) -> None:
    tokens = smol.to_tokens(PROMPTS[1])
    plain, cache = smol.run_with_cache(tokens, names_filter=HOOK)
    with steering(smol, {HOOK: smol_ode}, T=0.0):
        assert torch.equal(smol(tokens), plain)
    with steering(smol, {HOOK: smol_ode}, T=T_ODE, scope=[2, -1]):
        _, steered = smol.run_with_cache(tokens, names_filter=HOOK)
    before, after = cache[HOOK][0], steered[HOOK][0]
    keep = torch.ones(len(before), dtype=torch.bool)
    keep[[2, -1]] = False
    assert torch.equal(after[keep], before[keep])
    torch.testing.assert_close(after[~keep], smol_ode.steer(before[~keep], T_ODE))
    assert smol.list_hooks() == {}


def test_hooks_removed_after_errors_on_smollm2(smol: Any, smol_caa: lo.CAA) -> None:
    def explode(acts: torch.Tensor, hook: Any) -> None:
        raise RuntimeError("inside the forward")

    with (
        pytest.raises(RuntimeError),
        steering(smol, {HOOK: smol_caa}, T=4.0) as handle,
        smol.hooks(fwd_hooks=[(resid_post(20), explode)]),
    ):
        handle.generate(PROMPTS, max_new_tokens=2)
    assert smol.list_hooks() == {}
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
