"""Texts, model builders and helpers shared by the TL 2.x ``HookedTransformer`` tests.

Importable in any environment: without ``HookedTransformer`` (TransformerLens >= 4) only the
builders fail, and conftest.py then collects nothing but the skipped environment test. SmolLM2
comes from ``lo.load_model()``, which converts it into a ``HookedTransformer`` under TL 2.x/3.x
(lens_odesteer/models/classic.py).
"""

from __future__ import annotations

from typing import Any

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
    "LOAD_PROVENANCE_KEYS",
    "NEG_TEXTS",
    "POS_TEXTS",
    "PROMPTS",
    "SKIP_REASON",
    "SMOL_LAYER",
    "TINY_ARCHS",
    "TINY_HOOK",
    "attached_hooks",
    "tiny_hooked_transformer",
]

HAVE_HOOKED_TRANSFORMER = HookedTransformer is not None
SKIP_REASON = (
    "tests/tl2 need TransformerLens 2.x/3.x (HookedTransformer); run them in .venv-tl2: "
    "bash scripts/setup_tl2.sh && .venv-tl2/bin/python -m pytest tests/tl2"
)

LOAD_PROVENANCE_KEYS = frozenset(
    {
        "model_name",
        "source",
        "path",
        "loaded_from",
        "backend",
        "architecture",
        "dtype",
        "device",
        "n_layers",
        "d_model",
        "d_vocab",
        "weight_processing",
        "transformer_lens_version",
        "transformers_version",
        "lens_odesteer_version",
    }
)
"""What ``model_provenance`` reports for a ``load_model`` result, whichever the backend."""

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
