"""Classic ``HookedTransformer`` models (TransformerLens 2.x/3.x) built from Hugging Face weights.

TransformerLens 2.x/3.x only converts models it knows by name, and its Llama mapping reads the
rope base from its own tables, not from the checkpoint. So for a Llama-architecture checkpoint
(SmolLM2 included) the ``HookedTransformerConfig`` is written out here from the Hugging Face
config, the weights are converted with TransformerLens' own Llama converter, and nothing is
folded or centred: the residual stream is the Hugging Face model's. Any other architecture goes
through ``HookedTransformer.from_pretrained_no_processing`` when TransformerLens knows its hub
name.

:func:`lens_odesteer.models.loading.load_model` calls :func:`to_hooked_transformer` under
TransformerLens 2.x/3.x; use it directly to convert a Hugging Face model you loaded yourself.
Nothing here is imported under TransformerLens 4, where ``HookedTransformer`` no longer exists.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch

from lens_odesteer._validation import check_positive_int
from lens_odesteer.errors import ModelLoadError

__all__ = [
    "DEFAULT_CLASSIC_N_CTX",
    "classic_config",
    "fix_special_tokens",
    "to_hooked_transformer",
]

DEFAULT_CLASSIC_N_CTX = 2048
"""Context length of a converted model unless ``n_ctx`` is given (capped by the checkpoint's).

TransformerLens 2.x/3.x allocates, per layer, a causal mask of ``n_ctx``² entries and rotary
tables of ``n_ctx`` rows; SmolLM2's own 8192 positions would take ~2 GB of masks.
"""

_LLAMA_MODEL_TYPES = ("llama",)


def _transformer_lens() -> Any:
    """The ``transformer_lens`` module, checked to have the classic ``HookedTransformer``."""
    tl: Any = importlib.import_module("transformer_lens")
    try:
        tl.HookedTransformer  # noqa: B018  (TL 4 raises ImportError on access)
    except (AttributeError, ImportError) as exc:
        raise ModelLoadError(
            "This TransformerLens has no classic HookedTransformer (it was removed in 4.0); "
            "load_model() returns a TransformerBridge there instead."
        ) from exc
    return tl


def _rope(hf_config: Any) -> tuple[float, str]:
    """``(rope base, rope type)`` of a HF config; transformers 5 moved both to rope_parameters."""
    params = getattr(hf_config, "rope_parameters", None) or {}
    scaling = getattr(hf_config, "rope_scaling", None) or {}
    theta = params.get("rope_theta", getattr(hf_config, "rope_theta", None))
    kind = params.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
    if theta is None:
        raise ModelLoadError("The model config has no rope base (rope_theta); cannot convert it.")
    return float(theta), str(kind)


def classic_config(
    hf_config: Any,
    *,
    n_ctx: int | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    model_name: str | None = None,
) -> Any:
    """Write the ``HookedTransformerConfig`` of a Llama-architecture Hugging Face config.

    Args:
        hf_config: the ``transformers`` config (``model_type == "llama"``).
        n_ctx: context length; default ``min(max_position_embeddings, 2048)``.
        device: where the model will live.
        dtype: parameter dtype.
        model_name: stored as ``cfg.model_name``.

    Raises:
        ModelLoadError: the config uses something the conversion does not carry over
            (another architecture, biases, rope scaling).
    """
    model_type = getattr(hf_config, "model_type", None)
    if model_type not in _LLAMA_MODEL_TYPES:
        raise ModelLoadError(
            f"Only Llama-architecture checkpoints can be converted to a HookedTransformer from "
            f"local weights; this one is {model_type!r}."
        )
    theta, rope_type = _rope(hf_config)
    unsupported = [
        what
        for what, present in (
            ("attention biases", getattr(hf_config, "attention_bias", False)),
            ("MLP biases", getattr(hf_config, "mlp_bias", False)),
            (f"rope type {rope_type!r}", rope_type != "default"),
        )
        if present
    ]
    if unsupported:
        raise ModelLoadError(
            "The HookedTransformer conversion supports plain Llama checkpoints; this one has "
            f"{', '.join(unsupported)}, which it would silently drop. Load it with TransformerLens "
            "4 (load_model() returns a TransformerBridge there)."
        )
    max_positions = int(getattr(hf_config, "max_position_embeddings", DEFAULT_CLASSIC_N_CTX))
    if n_ctx is None:
        n_ctx = min(max_positions, DEFAULT_CLASSIC_N_CTX)
    n_ctx = check_positive_int(n_ctx, "n_ctx")
    n_heads = int(hf_config.num_attention_heads)
    d_head = int(getattr(hf_config, "head_dim", None) or hf_config.hidden_size // n_heads)
    tl = _transformer_lens()
    return tl.HookedTransformerConfig(
        d_model=hf_config.hidden_size,
        d_head=d_head,
        n_heads=n_heads,
        d_mlp=hf_config.intermediate_size,
        n_layers=hf_config.num_hidden_layers,
        n_ctx=n_ctx,
        eps=hf_config.rms_norm_eps,
        d_vocab=hf_config.vocab_size,
        act_fn=hf_config.hidden_act,
        n_key_value_heads=getattr(hf_config, "num_key_value_heads", None) or n_heads,
        normalization_type="RMS",
        positional_embedding_type="rotary",
        rotary_dim=d_head,
        rotary_base=theta,
        final_rms=True,
        gated_mlp=True,
        original_architecture="LlamaForCausalLM",
        model_name=model_name or getattr(hf_config, "_name_or_path", None) or "llama",
        device=str(device),
        dtype=dtype,
        init_weights=False,  # every parameter is overwritten by the converted weights
    )


def fix_special_tokens(tokenizer: Any, hf_config: Any) -> Any:
    """Make the tokenizer's EOS and pad agree with the model config, in place; return it.

    transformers 4.x reads SmolLM2's GGUF tokenizer with EOS = BOS = ``<|im_start|>`` and no pad
    token, while the model config says EOS = pad = ``<|im_end|>``; generation would then never
    stop at the end of a turn. The config wins when it names a token the tokenizer has.
    """

    def token(token_id: object) -> str | None:
        if isinstance(token_id, bool) or not isinstance(token_id, int):
            return None
        if not 0 <= token_id < len(tokenizer):
            return None
        return str(tokenizer.convert_ids_to_tokens(token_id))

    eos = token(getattr(hf_config, "eos_token_id", None))
    if eos is not None and tokenizer.eos_token != eos:
        tokenizer.eos_token = eos
    if tokenizer.pad_token is None:
        tokenizer.pad_token = token(getattr(hf_config, "pad_token_id", None)) or tokenizer.eos_token
    return tokenizer


def to_hooked_transformer(
    hf_model: Any,
    tokenizer: Any,
    *,
    name: str | None = None,
    n_ctx: int | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    hub_name: bool = False,
) -> Any:
    """Convert a Hugging Face causal LM into a classic ``HookedTransformer`` (TL 2.x/3.x).

    Args:
        hf_model: the Hugging Face model; it is only read.
        tokenizer: its tokenizer; EOS and pad are aligned with the config first
            (:func:`fix_special_tokens`).
        name: label stored as ``cfg.model_name``; for a non-Llama model, the TransformerLens
            name to convert it by.
        n_ctx: context length (see :data:`DEFAULT_CLASSIC_N_CTX`).
        device: where the model is placed.
        dtype: parameter dtype.
        hub_name: ``name`` is a hub name, so TransformerLens may know it.

    Returns:
        The model, unprocessed (no layer-norm folding or centring), in eval mode with frozen
        parameters.

    Raises:
        ModelLoadError: the architecture cannot be converted.
    """
    tl = _transformer_lens()
    fix_special_tokens(tokenizer, hf_model.config)
    if getattr(hf_model.config, "model_type", None) not in _LLAMA_MODEL_TYPES:
        model = _from_transformer_lens_tables(
            tl, hf_model, tokenizer, name, hub_name, n_ctx=n_ctx, device=device, dtype=dtype
        )
        return model.eval().requires_grad_(False)
    from transformer_lens.pretrained.weight_conversions import convert_llama_weights

    cfg = classic_config(hf_model.config, n_ctx=n_ctx, device=device, dtype=dtype, model_name=name)
    model = tl.HookedTransformer(cfg, tokenizer=tokenizer)
    state = convert_llama_weights(hf_model, cfg)
    missing = sorted(set(dict(model.named_parameters())) - set(state))
    if missing:  # init_weights=False: a parameter left out would hold uninitialised memory
        raise ModelLoadError(f"The Llama conversion left parameters unset: {missing[:5]}.")
    model.load_and_process_state_dict(
        state,
        fold_ln=False,
        center_writing_weights=False,
        center_unembed=False,
        fold_value_biases=False,
    )
    return model.eval().requires_grad_(False)


def _from_transformer_lens_tables(
    tl: Any,
    hf_model: Any,
    tokenizer: Any,
    name: str | None,
    hub_name: bool,
    *,
    n_ctx: int | None,
    device: str | torch.device,
    dtype: torch.dtype,
) -> Any:
    """A non-Llama model: TransformerLens converts it if it knows the hub name, else refuse."""
    model_type = getattr(hf_model.config, "model_type", None)
    official = None
    if hub_name and name is not None:
        from transformer_lens.loading_from_pretrained import get_official_model_name

        try:
            official = get_official_model_name(name)
        except ValueError:
            official = None
    if official is None:
        raise ModelLoadError(
            f"TransformerLens 2.x/3.x cannot convert this {model_type!r} model: lens_odesteer "
            "converts Llama-architecture checkpoints (files, folders or hub names), and any "
            "other architecture only by a hub name that TransformerLens lists (e.g. 'gpt2'). "
            "Load it with TransformerLens 4, where load_model() returns a TransformerBridge."
        )
    return tl.HookedTransformer.from_pretrained_no_processing(
        official,
        hf_model=hf_model,
        tokenizer=tokenizer,
        device=str(device),
        dtype=dtype,
        n_ctx=n_ctx,
    )
