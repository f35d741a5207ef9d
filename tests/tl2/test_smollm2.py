"""SmolLM2-135M-Instruct from ``lo.load_model()`` under TL 2.x: a HookedTransformer (slow).

Under TL 2.x/3.x the loader converts the HF weights with an explicit config
(lens_odesteer/models/classic.py), so these tests check that conversion against the HF model
that transformers reads from the same GGUF, then collect activations from it. Steering the
converted model is tested by the shared suite (tests/hooks/suite/test_smollm2.py), which runs
on this backend too.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.activations import collect_activations
from lens_odesteer.models.loading import default_gguf_path, model_provenance
from lens_odesteer.models.names import resid_post
from tests.tl2._shared import SMOL_LAYER

pytestmark = pytest.mark.slow

HOOK = resid_post(SMOL_LAYER)
CAPITAL = "The capital of France is"
N_NEW = 8


# -- the conversion ---------------------------------------------------------------------------
def test_load_model_gives_a_hooked_transformer(smol: Any) -> None:
    from transformer_lens import HookedTransformer

    assert isinstance(smol, HookedTransformer)
    info = model_provenance(smol)
    assert (info["backend"], info["source"], info["model_name"]) == (
        "HookedTransformer",
        "gguf",
        "HuggingFaceTB/SmolLM2-135M-Instruct",
    )
    assert info["path"] == str(default_gguf_path())
    assert info["loaded_from"] in ("gguf", "cache")  # "cache" once a run has written it
    assert (info["n_layers"], info["d_model"], info["d_vocab"]) == (30, 576, 49152)
    assert (info["architecture"], info["weight_processing"]) == ("LlamaForCausalLM", "none")
    assert info["transformer_lens_version"].split(".")[0] in ("2", "3")
    assert not any(p.requires_grad for p in smol.parameters()) and not smol.training


def test_tokenizer_fix(smol: Any) -> None:
    tok = smol.tokenizer
    assert tok.convert_ids_to_tokens([tok.bos_token_id, tok.eos_token_id]) == [
        "<|im_start|>",
        "<|im_end|>",
    ]
    assert tok.pad_token_id == tok.eos_token_id != tok.bos_token_id
    tokens = smol.to_tokens(CAPITAL)
    assert tokens[0, 0] == tok.bos_token_id and tokens[0, 1] != tok.bos_token_id  # BOS once
    # The rope base comes from the checkpoint (TL 2.x's own Llama tables would say 10000), and
    # the context is capped (TL 2.x allocates an n_ctx² mask per layer).
    assert smol.cfg.rotary_base == 100000.0 and smol.cfg.n_ctx == 2048


def test_logits_match_hf(smol: Any, smol_hf: Any) -> None:
    texts = [CAPITAL, "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"]
    for text in texts:
        tokens = smol.to_tokens(text, prepend_bos=False)
        with torch.inference_mode():
            ours = smol(tokens)
            reference = smol_hf(tokens).logits
        diff = (ours - reference).abs().max().item()
        assert diff < 1e-4, f"HookedTransformer vs HF logits differ by {diff:.2e} on {text!r}"


def test_n_ctx_option(smol: Any) -> None:
    short = lo.load_model(progress=False, n_ctx=64)  # from the cache the first load wrote
    assert short.cfg.n_ctx == 64 and model_provenance(short)["loaded_from"] == "cache"
    tokens = smol.to_tokens(CAPITAL)
    with torch.inference_mode():
        torch.testing.assert_close(short(tokens), smol(tokens), rtol=0, atol=1e-5)


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
