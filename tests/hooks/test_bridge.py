"""What only a TL 4 ``TransformerBridge`` has: canonical hook names, ``hook_resid_mid`` as the MLP
input, batched generation with a left-padded attention mask.

Everything that holds on both backends is in tests/hooks/suite/ (run in .venv and .venv-tl2).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.hooks import SteeringPlan, generate, generation, steering
from tests.hooks._shared import PROMPTS, TINY_HOOK

N_NEW = 8
MASK = torch.tensor([[True, False, True, False, False, True, False, False, True]] * 3)


def _enter(*args: Any, **kwargs: Any) -> None:
    with steering(*args, **kwargs):
        pass


def _tokens(model: Any, prompts: list[str], plan: Any, **kw: Any) -> list[list[int]]:
    _, toks = generate(model, prompts, plan, max_new_tokens=N_NEW, return_tokens=True, **kw)
    return [t.tolist() for t in toks]


def test_canonical_bridge_names_steer_the_same_hook_point(tiny: Any, tiny_caa: lo.CAA) -> None:
    tokens = tiny.to_tokens(PROMPTS[2])
    with steering(tiny, {TINY_HOOK: tiny_caa}, T=2.0):
        expected = tiny(tokens)
    pairs = SteeringPlan({"blocks.0.hook_out": tiny_caa}, T=2.0).hooks(tiny)
    with tiny.hooks(fwd_hooks=pairs):
        assert torch.equal(tiny(tokens), expected)
    with pytest.raises(InvalidParameterError, match="same hook point"):
        _enter(tiny, {TINY_HOOK: tiny_caa, "blocks.0.hook_out": tiny_caa}, T=1.0)


def test_resid_mid_warns_that_only_the_mlp_input_changes(tiny: Any, tiny_caa: lo.CAA) -> None:
    with pytest.warns(UserWarning, match="only the MLP"):
        _enter(tiny, {"blocks.0.hook_resid_mid": tiny_caa}, T=1.0)


@pytest.mark.parametrize("scope", ["last", "all", "prompt", "generated", [0, -1, 12]], ids=str)
def test_model_generate_on_masked_left_padded_tokens_equals_lo_generate(
    tiny: Any, tiny_ode: lo.ODESteer, scope: Any
) -> None:
    """The hooks read ``attention_mask=`` from each call of the bridge's own generate."""
    plan = SteeringPlan({TINY_HOOK: tiny_ode}, T=8.0, scope=scope)
    expected = _tokens(tiny, PROMPTS, plan, stop_at_eos=False)  # type: ignore[arg-type]
    tokens = tiny.to_tokens(PROMPTS, padding_side="left")
    lengths = torch.tensor([len(tiny.to_tokens(p)[0]) for p in PROMPTS])
    mask = (torch.arange(tokens.shape[1])[None] >= tokens.shape[1] - lengths[:, None]).long()
    with steering(tiny, plan):
        out = tiny.generate(
            tokens,
            attention_mask=mask,
            max_new_tokens=N_NEW,
            do_sample=False,
            verbose=False,
            stop_at_eos=False,
        )
    assert out[:, tokens.shape[1] :].tolist() == expected


def test_one_prompt_at_a_time_fallback_matches_the_batch(
    tiny: Any, tiny_ode: lo.ODESteer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Models without the bridge's mask support generate prompt by prompt (same tokens)."""
    plan = {TINY_HOOK: tiny_ode}
    batched = _tokens(tiny, PROMPTS, plan, T=8.0, scope=MASK)
    monkeypatch.setattr(generation, "is_bridge", lambda model: False)
    assert _tokens(tiny, PROMPTS, plan, T=8.0, scope=MASK) == batched


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
