"""What only a classic ``HookedTransformer`` (TL 2.x) does in generation: one prompt per call.

TL 2.18's batched ``generate`` attends to the pads of unequal-length prompts, so
``lens_odesteer.hooks.generate`` runs one prompt per ``model.generate`` call here. The
generation guarantees shared with the bridge (KV cache vs full recompute, batch vs alone,
positions, records, plain ``model.generate`` inside a block) run on this backend from
tests/hooks/suite/.
"""

from __future__ import annotations

from typing import Any

import pytest

import lens_odesteer as lo
from lens_odesteer.hooks import generate
from tests.tl2._shared import PROMPTS, TINY_HOOK

N_NEW = 8


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
