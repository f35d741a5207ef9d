"""The tiny random bridge, its byte tokenizer and the KV-cache patch."""

from __future__ import annotations

import time
from typing import Any

import pytest
import torch
from transformer_lens.model_bridge import TransformerBridge
from transformer_lens.model_bridge.generalized_components.attention import AttentionBridge

from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.models import (
    apply_kv_cache_patch,
    byte_tokenizer,
    kv_cache_patch_needed,
    model_provenance,
    tiny_bridge,
)
from lens_odesteer.models.kv_patch import _wrap, kv_cache_patch_applied

PROMPTS = ["The capital of France is", "Hi", "Once upon a time there"]


def greedy(model: TransformerBridge, *, kv: bool, n: int = 6) -> torch.Tensor:
    return model.generate(
        PROMPTS,
        max_new_tokens=n,
        do_sample=False,
        verbose=False,
        use_past_kv_cache=kv,
        return_type="tokens",
    )


def test_byte_tokenizer_round_trips_any_text() -> None:
    tok = byte_tokenizer()
    text = "Grüße, 世界! \n\ttabs"
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.bos_token_id == 1
    assert len(ids) == 1 + len(text.encode())
    assert tok.decode(ids[1:]) == text
    assert (tok.eos_token_id, tok.pad_token_id, len(tok)) == (2, 2, 259)


def test_tiny_bridge_is_seeded_and_leaves_the_global_rng_alone() -> None:
    state = torch.get_rng_state()
    a, b, c = tiny_bridge(seed=1), tiny_bridge(seed=1), tiny_bridge(seed=2)
    assert torch.equal(torch.get_rng_state(), state)
    toks = a.to_tokens("seeded")
    with torch.inference_mode():
        assert torch.equal(a(toks), b(toks))
        assert not torch.allclose(a(toks), c(toks))


def test_tiny_bridge_boots_fast_and_frozen() -> None:
    tiny_bridge()  # imports and first-call setup
    start = time.perf_counter()
    model = tiny_bridge(n_layers=3, d_model=32, n_heads=2, n_key_value_heads=1, d_mlp=64)
    assert time.perf_counter() - start < 1.0
    assert (model.cfg.n_layers, model.cfg.d_model) == (3, 32)
    assert not model.training
    assert not any(p.requires_grad for p in model.original_model.parameters())
    info = model_provenance(model)
    assert (info["source"], info["seed"], info["d_model"]) == ("tiny", 0, 32)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_layers": 0},
        {"d_model": 30},
        {"n_heads": 3, "d_model": 64},
        {"n_key_value_heads": 3},
        {"seed": 1.5},
    ],
)
def test_tiny_bridge_rejects_bad_sizes(kwargs: dict[str, Any]) -> None:
    with pytest.raises((InvalidParameterError, TypeError)):
        tiny_bridge(**kwargs)


def test_kv_generation_matches_no_kv_generation_on_tiny(tiny: TransformerBridge) -> None:
    """Fast CI guard for the transformers 5.24 KV-cache bug (batched, unequal lengths)."""
    assert torch.equal(greedy(tiny, kv=True), greedy(tiny, kv=False))


def test_kv_patch_is_only_needed_from_transformers_5_24() -> None:
    import transformers
    from packaging.version import Version

    expected = Version(transformers.__version__) >= Version("5.24.0")
    assert kv_cache_patch_needed() is expected
    tiny_bridge()
    assert kv_cache_patch_applied() is expected


def test_forced_kv_patch_is_idempotent_and_harmless(
    monkeypatch: pytest.MonkeyPatch, fresh_tiny: TransformerBridge
) -> None:
    # Restore the class attribute after the test, whatever state it was in.
    monkeypatch.setattr(AttentionBridge, "_update_kv_cache", AttentionBridge._update_kv_cache)
    before = greedy(fresh_tiny, kv=False)
    assert apply_kv_cache_patch(force=True)
    patched = AttentionBridge._update_kv_cache
    assert kv_cache_patch_applied()
    assert apply_kv_cache_patch(force=True)
    assert AttentionBridge._update_kv_cache is patched  # not wrapped twice
    assert torch.equal(greedy(fresh_tiny, kv=True), before)


def test_kv_patch_maps_the_renamed_keyword() -> None:
    seen: list[dict[str, Any]] = []

    def original(self: object, k: object, v: object, **kwargs: Any) -> tuple[object, object]:
        seen.append(kwargs)
        return k, v

    wrapped = _wrap(original)
    cache, other = object(), object()
    assert wrapped(None, 1, 2, cache=cache) == (1, 2)
    assert seen[-1]["past_key_values"] is cache
    wrapped(None, 1, 2, cache=cache, past_key_values=other)
    assert seen[-1]["past_key_values"] is other
    wrapped(None, 1, 2)
    assert "past_key_values" not in seen[-1]
