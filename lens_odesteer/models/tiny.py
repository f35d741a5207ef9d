"""Random-weight Llama bridges with a byte-level tokenizer, for tests and doctests (no files)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from lens_odesteer._validation import check_positive_int
from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.models.kv_patch import apply_kv_cache_patch
from lens_odesteer.models.loading import record_provenance

__all__ = ["BYTE_SPECIAL_TOKENS", "byte_tokenizer", "tiny_bridge"]

BYTE_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
"""Ids 0, 1, 2 of :func:`byte_tokenizer`: unknown, BOS and EOS/pad, as in SmolLM2."""


if TYPE_CHECKING:  # TL 4 only; imported in tiny_bridge so TL 2.x can import this module
    from transformer_lens.model_bridge import TransformerBridge


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """Build a 259-token byte-level tokenizer in memory: 3 specials, then the 256 bytes.

    It has no merges, so every UTF-8 byte is one token and any text round-trips. BOS
    (``<|im_start|>``, id 1) is prepended by the tokenizer itself (``add_bos_token=True``),
    which also keeps TransformerLens from trying to re-load it from disk at boot.

    Example:
        >>> tok = byte_tokenizer()
        >>> len(tok), tok("Hi")["input_ids"], tok.decode(tok("Hé")["input_ids"][1:])
        (259, [1, 42, 75], 'Hé')
    """
    vocab = {token: i for i, token in enumerate(BYTE_SPECIAL_TOKENS)}
    for char in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[char] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    unk, bos, eos = BYTE_SPECIAL_TOKENS
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos,
        eos_token=eos,
        pad_token=eos,
        unk_token=unk,
        add_bos_token=True,
        name_or_path="lens_odesteer/byte-tokenizer",
    )


def tiny_bridge(
    seed: int = 0,
    n_layers: int = 2,
    d_model: int = 64,
    *,
    n_heads: int = 4,
    n_key_value_heads: int = 2,
    d_mlp: int = 128,
    n_ctx: int = 256,
) -> TransformerBridge:
    """Boot a random-weight Llama ``TransformerBridge`` with :func:`byte_tokenizer`.

    Booting takes well under a second and needs no file or network. The weights come from
    ``seed`` through a forked RNG, so the caller's global torch RNG is left untouched and the
    same arguments always give the same model. The model is in eval mode with frozen
    parameters. Hook names are the same as on a real Llama (``blocks.L.hook_resid_post``, ...).

    Args:
        seed: seed of the weight initialisation.
        n_layers: number of transformer blocks.
        d_model: residual-stream width; must be divisible by ``n_heads``.
        n_heads: attention heads.
        n_key_value_heads: key/value heads (grouped-query attention); divides ``n_heads``.
        d_mlp: MLP hidden width.
        n_ctx: maximum context length.

    Returns:
        The bridge; ``model_provenance(model)["source"] == "tiny"``.

    Example:
        >>> model = tiny_bridge()
        >>> model.cfg.n_layers, model.cfg.d_model, model.to_tokens("Hi").tolist()
        (2, 64, [[1, 42, 75]])
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidParameterError(f"`seed` must be an integer; got {seed!r}.")
    for value, name in (
        (n_layers, "n_layers"),
        (d_model, "d_model"),
        (n_heads, "n_heads"),
        (n_key_value_heads, "n_key_value_heads"),
        (d_mlp, "d_mlp"),
        (n_ctx, "n_ctx"),
    ):
        check_positive_int(value, name)
    if d_model % n_heads or n_heads % n_key_value_heads:
        raise InvalidParameterError(
            f"`d_model` ({d_model}) must be divisible by `n_heads` ({n_heads}), and `n_heads` by "
            f"`n_key_value_heads` ({n_key_value_heads})."
        )
    apply_kv_cache_patch()
    tokenizer = byte_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=d_model,
        intermediate_size=d_mlp,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_key_value_heads,
        max_position_embeddings=n_ctx,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config.architectures = ["LlamaForCausalLM"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        hf_model = LlamaForCausalLM(config).eval()
    hf_model.requires_grad_(False)
    from transformer_lens.model_bridge import TransformerBridge

    bridge = TransformerBridge.boot_transformers(
        "lens_odesteer/tiny-llama", hf_model=hf_model, tokenizer=tokenizer, device="cpu"
    )
    record_provenance(
        bridge,
        model_name="lens_odesteer/tiny-llama",
        source="tiny",
        path=None,
        loaded_from="tiny",
        seed=seed,
    )
    return bridge
