"""Generation with exact per-row token positions for already built steering hooks.

:func:`generate_with_hooks` tokenizes the prompts itself, pads them on the LEFT, and opens a
generation session on every steering hook (each row's padding and prompt length, and whether the
KV cache is used) around the model's own ``generate``. The hooks then place every call exactly,
so all scopes mean the same per row whatever the padding, and greedy decoding gives the same
tokens with and without the KV cache and for a batch as for each prompt alone. The public entry
points are :func:`lens_odesteer.hooks.generate` and ``handle.generate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

import torch
from torch import Tensor

from lens_odesteer._validation import check_positive_int
from lens_odesteer.errors import InvalidParameterError, ShapeMismatchError
from lens_odesteer.hooks import _model
from lens_odesteer.hooks.hook import SteeringHook
from lens_odesteer.hooks.scope import PromptLayout
from lens_odesteer.models.names import HookedModel, is_bridge
from lens_odesteer.models.tokens import pad_token_id, pad_tokens, tokenize

__all__ = ["generate_with_hooks"]

_RESERVED = ("input", "attention_mask", "padding_side", "return_type", "prepend_bos")


def generate_with_hooks(
    model: HookedModel,
    prompts: str | Sequence[str],
    hooks: Sequence[SteeringHook],
    *,
    max_new_tokens: int = 32,
    do_sample: bool = False,
    use_past_kv_cache: bool = True,
    chat: bool = False,
    prepend_bos: bool | None = None,
    stop_at_eos: bool = True,
    return_tokens: bool = False,
    **generate_kwargs: Any,
) -> list[str] | tuple[list[str], list[Tensor]]:
    """Generate with already attached ``hooks``, telling them the batch layout of each call.

    Used by :func:`~lens_odesteer.hooks.generate` and ``handle.generate``; arguments as
    :func:`~lens_odesteer.hooks.generate`.
    """
    texts = _check_prompts(prompts)
    check_positive_int(max_new_tokens, "max_new_tokens")
    for key in _RESERVED:
        if key in generate_kwargs:
            raise InvalidParameterError(
                f"`{key}` is set by generate() itself (it tokenizes and left-pads the prompts); "
                "do not pass it."
            )
    tokens = [
        tokenize(model, text, chat=chat, prepend_bos=prepend_bos, name="prompts", index=i)
        for i, text in enumerate(texts)
    ]
    lengths = [len(t) for t in tokens]
    for hook in hooks:
        _check_scope_reach(hook, lengths, max_new_tokens)
    batched = is_bridge(model)
    groups = [list(range(len(texts)))] if batched else [[i] for i in range(len(texts))]
    tok = _model.tokenizer(model)
    eos = generate_kwargs.get("eos_token_id", getattr(tok, "eos_token_id", None))
    eos_ids = set(eos if isinstance(eos, (list, tuple)) else [] if eos is None else [eos])
    pad_id = pad_token_id(model)
    device = _model.model_device(model)
    kwargs = {
        "max_new_tokens": max_new_tokens,
        "do_sample": do_sample,
        "use_past_kv_cache": use_past_kv_cache,
        "stop_at_eos": stop_at_eos,
        "verbose": False,
        **generate_kwargs,
    }
    completions: list[Tensor | None] = [None] * len(texts)
    for group in groups:
        padded = pad_tokens([tokens[i] for i in group], pad_id, side="left")
        ids, mask, width = padded.ids, padded.attention_mask, padded.ids.shape[1]
        layout = PromptLayout.from_attention_mask(
            mask, kv=use_past_kv_cache, rows=None if batched else torch.tensor(group)
        )
        if batched:
            kwargs["attention_mask"] = mask.to(device)
        out = _run(model, hooks, layout, ids.to(device), kwargs)
        for row, i in enumerate(group):
            completions[i] = _trim(out[row, width:].cpu(), eos_ids if stop_at_eos else set())
    token_lists = [c for c in completions if c is not None]
    decoded = [tok.decode(c.tolist(), skip_special_tokens=True) for c in token_lists]
    return (decoded, token_lists) if return_tokens else decoded


def _run(
    model: HookedModel,
    hooks: Sequence[SteeringHook],
    layout: PromptLayout,
    ids: Tensor,
    kwargs: dict[str, Any],
) -> Tensor:
    """Run ``model.generate`` with a generation session open on every hook."""
    with ExitStack() as stack:
        for hook in hooks:
            stack.enter_context(hook.session(layout))
        out = model.generate(ids, **kwargs)
    if not isinstance(out, Tensor) or out.ndim != 2:
        raise InvalidParameterError(
            f"model.generate returned {type(out).__name__}; expected a token tensor for token "
            "input. Is this a TransformerLens model?"
        )
    return out


def _trim(ids: Tensor, eos_ids: set[int]) -> Tensor:
    """Cut a completion after its first EOS token (kept)."""
    if eos_ids:
        hits = torch.isin(ids, torch.tensor(sorted(eos_ids), dtype=ids.dtype)).nonzero()
        if len(hits):
            return ids[: int(hits[0, 0]) + 1]
    return ids


def _check_prompts(prompts: object) -> list[str]:
    if isinstance(prompts, str):
        return [prompts]
    if not isinstance(prompts, Sequence) or len(prompts) == 0:
        raise InvalidParameterError(
            f"`prompts` must be a string or a non-empty list of strings; got {prompts!r}."
        )
    return list(prompts)


def _check_scope_reach(hook: SteeringHook, lengths: list[int], max_new_tokens: int) -> None:
    """Reject explicit positions and masks that cannot apply to these prompts."""
    scope = hook.scope
    if scope.positions is not None:
        positions = scope.positions.tolist()
        shortest = min(lengths)
        before = [p for p in positions if p < -shortest]
        if before:
            raise InvalidParameterError(
                f"Token position(s) {before} in `scope` count back past the start of the "
                f"shortest prompt ({shortest} tokens)."
            )
        # The last generated token is never fed back, so it is never steered.
        reach = max(lengths) + max_new_tokens - 1
        if all(p >= reach for p in positions if p >= 0) and not any(p < 0 for p in positions):
            raise InvalidParameterError(
                f"Token position(s) {positions} in `scope` are out of range: with prompts of at "
                f"most {max(lengths)} tokens and max_new_tokens={max_new_tokens}, the model only "
                f"processes positions 0 .. {reach - 1}."
            )
    if scope.mask is not None and scope.mask.shape[0] not in (1, len(lengths)):
        raise ShapeMismatchError(
            f"The boolean `scope` mask has {scope.mask.shape[0]} rows but there are "
            f"{len(lengths)} prompts; give one row per prompt (or one row for all)."
        )
