"""Model loading, tiny test models, hook-name helpers and tokenization for TransformerLens models.

:func:`load_model` gives a ``TransformerBridge`` under TransformerLens 4 and a classic
``HookedTransformer`` (:mod:`lens_odesteer.models.classic`) under TransformerLens 2.x/3.x.

The hook-name helpers (:mod:`lens_odesteer.models.names`) import nothing heavy; the loaders
import transformers and TransformerLens, and the tokenize-and-pad helpers
(:mod:`lens_odesteer.models.tokens`) torch, on first use of one of their names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lens_odesteer.models.names import (
    HookedModel,
    attn_out,
    hook_layer,
    is_bridge,
    mlp_out,
    model_d_model,
    model_n_layers,
    resid_post,
    resid_pre,
    validate_hook_name,
)

if TYPE_CHECKING:
    from lens_odesteer.models.kv_patch import apply_kv_cache_patch, kv_cache_patch_needed
    from lens_odesteer.models.loading import (
        DEFAULT_MODEL_NAME,
        ModelLoadError,
        default_cache_root,
        default_gguf_path,
        load_model,
        model_provenance,
        record_provenance,
        transformer_lens_major,
    )
    from lens_odesteer.models.tiny import byte_tokenizer, tiny_bridge
    from lens_odesteer.models.tokens import (
        PaddedTokens,
        pad_token_id,
        pad_tokens,
        tokenize,
        tokenize_and_pad,
    )

__all__ = [
    "DEFAULT_MODEL_NAME",
    "HookedModel",
    "ModelLoadError",
    "PaddedTokens",
    "apply_kv_cache_patch",
    "attn_out",
    "byte_tokenizer",
    "default_cache_root",
    "default_gguf_path",
    "hook_layer",
    "is_bridge",
    "kv_cache_patch_needed",
    "load_model",
    "mlp_out",
    "model_d_model",
    "model_n_layers",
    "model_provenance",
    "pad_token_id",
    "pad_tokens",
    "record_provenance",
    "resid_post",
    "resid_pre",
    "tiny_bridge",
    "tokenize",
    "tokenize_and_pad",
    "transformer_lens_major",
    "validate_hook_name",
]

_LAZY = {
    "apply_kv_cache_patch": "kv_patch",
    "kv_cache_patch_needed": "kv_patch",
    "DEFAULT_MODEL_NAME": "loading",
    "ModelLoadError": "loading",
    "default_cache_root": "loading",
    "default_gguf_path": "loading",
    "load_model": "loading",
    "model_provenance": "loading",
    "record_provenance": "loading",
    "transformer_lens_major": "loading",
    "byte_tokenizer": "tiny",
    "tiny_bridge": "tiny",
    "PaddedTokens": "tokens",
    "pad_token_id": "tokens",
    "pad_tokens": "tokens",
    "tokenize": "tokens",
    "tokenize_and_pad": "tokens",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
