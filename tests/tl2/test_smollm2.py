"""SmolLM2-135M-Instruct converted into a TL 2.x HookedTransformer (slow: loaded once).

The model is built from the HF state dict with an explicit config (_shared.load_smol_pair), so
these tests check the conversion itself against the HF model, then collect activations from it.
Steering the converted model is tested by the shared suite (tests/hooks/suite/test_smollm2.py),
which runs on this backend too.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from lens_odesteer.activations import collect_activations
from lens_odesteer.models.names import resid_post
from tests.tl2._shared import SMOL_LAYER, SmolPair

pytestmark = pytest.mark.slow

HOOK = resid_post(SMOL_LAYER)
CAPITAL = "The capital of France is"
N_NEW = 8


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
