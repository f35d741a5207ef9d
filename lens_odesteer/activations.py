"""Collect one activation vector per text from a TransformerLens model, batched and masked.

Texts are tokenized one by one (exactly as ``model.to_tokens(text)`` would), sorted by length,
left-padded (:mod:`lens_odesteer.models.tokens`) and run with an attention mask, so a pad token
is never attended to and never read: each row equals the activation of the text run alone, up
to float rounding. The forward stops after the last block that holds a requested hook.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from lens_odesteer._validation import check_positive_int
from lens_odesteer.errors import HookNameError, InvalidParameterError
from lens_odesteer.models.names import (
    HookedModel,
    hook_layer,
    model_n_layers,
    validate_hook_name,
)
from lens_odesteer.models.tokens import pad_token_id, pad_tokens, padding_side, tokenize

__all__ = ["answer_spans", "collect_activations", "prefix_lengths"]

_POSITIONS = ("last", "mean")


def collect_activations(
    model: HookedModel,
    texts: Sequence[str],
    hook: str | Sequence[str],
    *,
    position: str | int = "last",
    batch_size: int = 16,
    prepend_bos: bool | None = None,
    progress: bool = True,
    spans: Sequence[tuple[int, int]] | None = None,
    include_bos: bool = False,
) -> Float[Tensor, "n d_model"] | dict[str, Float[Tensor, "n _"]]:
    """Return the activation at ``hook`` for each text, reduced over positions to one vector.

    Token positions are those of ``model.to_tokens(text, prepend_bos=prepend_bos)`` for the
    text alone: index 0 is the BOS token when one is prepended, and padding never counts.

    Main arguments:
        model: a ``TransformerBridge`` or classic ``HookedTransformer``.
        texts: the texts, one output row each.
        hook: a hook name (e.g. ``resid_post(6)``), or a list of names.
        position: which tokens give the vector.

            * ``"last"``: the last token (default).
            * ``"mean"``: the mean over the tokens. A leading BOS token (the tokenizer's BOS
              id, whether prepended or written in the text) is left out unless
              ``include_bos=True``, because its residual is a large attention-sink vector
              that carries nothing about the text.
            * an int: that token; negative values count back from the last token.
        spans: optional ``(start, end)`` token range per text, Python-slice style (negative
            values count from the end). ``position`` then applies inside the span: ``"last"`` is
            its last token, ``"mean"`` its mean (BOS included if inside), an int indexes into it.
            :func:`answer_spans` builds spans for prompt + answer pairs.

    Other arguments:
        batch_size: texts per forward pass.
        prepend_bos: passed to ``to_tokens``; None uses the model default (``True`` for TL).
            Use ``False`` for chat-formatted text that already starts with BOS.
        progress: show a tqdm bar over batches.
        include_bos: count a leading BOS token in ``position="mean"`` without spans.

    Returns:
        A float32 CPU tensor ``[len(texts), d]`` for one hook, or a dict from each hook name
        (as given) to such a tensor when ``hook`` is a list.

    Raises:
        InvalidParameterError: empty or non-string ``texts``, an unknown ``position``, a
            position or span out of range for some text (the message names it), or a text
            with no tokens.
        HookNameError: an unknown hook name (with suggestions) or a hook that never fires.

    Example:
        >>> from lens_odesteer.models import tiny_bridge
        >>> model = tiny_bridge()
        >>> acts = collect_activations(model, ["Hello", "Hi"], "blocks.1.hook_resid_post",
        ...                            progress=False)
        >>> acts.shape, acts.dtype
        (torch.Size([2, 64]), torch.float32)
    """
    names, single = _check_hooks(model, hook)
    texts = _check_texts(texts)
    batch_size = check_positive_int(batch_size, "batch_size")
    _check_position(position)
    if prepend_bos is not None and not isinstance(prepend_bos, bool):
        raise InvalidParameterError(
            f"`prepend_bos` must be True, False or None; got {prepend_bos!r}."
        )
    if spans is not None and len(spans) != len(texts):
        raise InvalidParameterError(
            f"`spans` has {len(spans)} entries but there are {len(texts)} texts; give one "
            "(start, end) pair per text."
        )
    tokens = [
        tokenize(model, text, prepend_bos=prepend_bos, index=i) for i, text in enumerate(texts)
    ]
    bos_id = getattr(getattr(model, "tokenizer", None), "bos_token_id", None)
    windows = [
        _window(i, toks, position, None if spans is None else spans[i], include_bos, bos_id)
        for i, toks in enumerate(tokens)
    ]
    stop_at_layer = _stop_layer(model, names)
    order = sorted(range(len(texts)), key=lambda i: len(tokens[i]))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rows: dict[str, list[Tensor | None]] = {name: [None] * len(texts) for name in names}
    with torch.inference_mode(), padding_side(model, "left"):
        for batch in tqdm(batches, desc="collect_activations", unit="batch", disable=not progress):
            captured = _run_batch(model, [tokens[i] for i in batch], names, stop_at_layer)
            for name in names:
                acts = captured[name]
                width = acts.shape[1]
                for row, i in enumerate(batch):
                    pad = width - len(tokens[i])
                    lo, hi = windows[i]
                    rows[name][i] = acts[row, pad + lo : pad + hi].float().mean(0).cpu()
    # Stacking outside inference mode gives ordinary tensors that autograd may use later.
    result = {name: torch.stack([r for r in rows[name] if r is not None]) for name in names}
    return result[names[0]] if single else result


def prefix_lengths(
    model: HookedModel,
    prefixes: Sequence[str],
    texts: Sequence[str],
    *,
    prepend_bos: bool | None = None,
) -> list[int]:
    """Return, per text, how many of its leading tokens come from its prefix.

    This is the length of the common token prefix of ``to_tokens(prefix)`` and
    ``to_tokens(text)``. When a token straddles the boundary (e.g. a prompt ending in a space
    followed by a word), it counts as part of the rest of the text.

    Example:
        >>> from lens_odesteer.models import tiny_bridge
        >>> prefix_lengths(tiny_bridge(), ["Q: 2+2? A:"], ["Q: 2+2? A: 4"])
        [11]
    """
    prefixes, texts = _check_texts(prefixes, "prefixes"), _check_texts(texts)
    if len(prefixes) != len(texts):
        raise InvalidParameterError(
            f"`prefixes` has {len(prefixes)} entries but `texts` has {len(texts)}."
        )
    lengths = []
    for i, (prefix, text) in enumerate(zip(prefixes, texts, strict=True)):
        head = tokenize(
            model, prefix, prepend_bos=prepend_bos, name="prefixes", index=i, allow_empty=True
        )
        full = tokenize(model, text, prepend_bos=prepend_bos, index=i)
        n = min(len(head), len(full))
        same = (head[:n] == full[:n]).long()
        lengths.append(int(same.cumprod(0).sum()))
    return lengths


def answer_spans(
    model: HookedModel,
    prompts: Sequence[str],
    answers: Sequence[str],
    *,
    prepend_bos: bool | None = None,
) -> tuple[list[str], list[tuple[int, int]]]:
    """Join each prompt and answer; return the texts and the token span of each answer.

    The strings are concatenated as given, so put any separating space in one of them. Feed
    the result to :func:`collect_activations` with ``spans=`` (and e.g. ``position="mean"``).

    Example:
        >>> from lens_odesteer.models import tiny_bridge
        >>> texts, spans = answer_spans(tiny_bridge(), ["Q: 2+2? A:"], [" 4"])
        >>> texts, spans
        (['Q: 2+2? A: 4'], [(11, 13)])
    """
    prompts, answers = _check_texts(prompts, "prompts"), _check_texts(answers, "answers")
    if len(prompts) != len(answers):
        raise InvalidParameterError(
            f"`prompts` has {len(prompts)} entries but `answers` has {len(answers)}."
        )
    texts = [p + a for p, a in zip(prompts, answers, strict=True)]
    starts = prefix_lengths(model, prompts, texts, prepend_bos=prepend_bos)
    spans = []
    for i, (text, start) in enumerate(zip(texts, starts, strict=True)):
        end = len(tokenize(model, text, prepend_bos=prepend_bos, index=i))
        if start >= end:
            raise InvalidParameterError(f"`answers[{i}]` adds no tokens to its prompt.")
        spans.append((start, end))
    return texts, spans


def _check_texts(texts: object, name: str = "texts") -> list[str]:
    if isinstance(texts, str):
        raise InvalidParameterError(
            f"`{name}` must be a list of strings, not a single string; wrap it as [{name}]."
        )
    if not isinstance(texts, Sequence):
        raise InvalidParameterError(
            f"`{name}` must be a list of strings; got {type(texts).__name__}."
        )
    if len(texts) == 0:
        raise InvalidParameterError(f"`{name}` is empty; give at least one string.")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidParameterError(
                f"`{name}[{i}]` must be a string; got {type(text).__name__} ({text!r})."
            )
    return list(texts)


def _check_hooks(model: HookedModel, hook: object) -> tuple[list[str], bool]:
    if isinstance(hook, str):
        return [validate_hook_name(model, hook)], True
    if not isinstance(hook, Sequence) or len(hook) == 0:
        raise InvalidParameterError(
            f"`hook` must be a hook name or a non-empty list of names; got {hook!r}."
        )
    names = [validate_hook_name(model, name) for name in hook]
    return list(dict.fromkeys(names)), False


def _check_position(position: object) -> None:
    if isinstance(position, bool) or not isinstance(position, (str, int)):
        raise InvalidParameterError(
            f"`position` must be 'last', 'mean' or an int token index; got {position!r}."
        )
    if isinstance(position, str) and position not in _POSITIONS:
        raise InvalidParameterError(
            f"Unknown position {position!r}. Expected 'last', 'mean' or an int token index."
        )


def _window(
    index: int,
    toks: Tensor,
    position: str | int,
    span: tuple[int, int] | None,
    include_bos: bool,
    bos_id: int | None,
) -> tuple[int, int]:
    """Return the ``[lo, hi)`` token range averaged for one text (unpadded positions)."""
    n = len(toks)
    lo, hi = 0, n
    where = f"`texts[{index}]`, which has {n} token(s)"
    if span is not None:
        if len(span) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in span):
            raise InvalidParameterError(f"`spans[{index}]` must be a pair of ints; got {span!r}.")
        lo, hi = (v + n if v < 0 else v for v in span)
        if not 0 <= lo < hi <= n:
            raise InvalidParameterError(
                f"`spans[{index}]` = {tuple(span)} is empty or out of range for {where}."
            )
        where = f"span {tuple(span)} of `texts[{index}]`"
    elif position == "mean" and not include_bos and n > 0 and int(toks[0]) == bos_id:
        lo = 1
        if n == 1:
            raise InvalidParameterError(
                f"`texts[{index}]` has no token besides BOS, so its mean is undefined; use a "
                "non-empty text or include_bos=True."
            )
    if position == "mean":
        return lo, hi
    if position == "last":
        return hi - 1, hi
    assert isinstance(position, int)  # checked by _check_position
    at = (lo if position >= 0 else hi) + position
    if not lo <= at < hi:
        raise InvalidParameterError(f"position={position} is out of range for {where}.")
    return at, at + 1


def _stop_layer(model: HookedModel, names: list[str]) -> int | None:
    """Return the first block that no requested hook needs, or None to run the whole model."""
    layers = [hook_layer(name) for name in names]
    if any(layer is None for layer in layers):
        return None
    stop = max(layer for layer in layers if layer is not None) + 1
    return stop if stop < model_n_layers(model) else None


def _capture(store: dict[str, Tensor], name: str) -> Callable[..., None]:
    # A factory, so each hook closes over its own name.
    def hook_fn(acts: Tensor, hook: Any) -> None:
        store[name] = acts.detach()

    return hook_fn


def _run_batch(
    model: HookedModel, batch: list[Tensor], names: list[str], stop_at_layer: int | None
) -> dict[str, Tensor]:
    padded = pad_tokens(batch, pad_token_id(model))
    tokens, mask = padded.ids, padded.attention_mask
    device = getattr(model.cfg, "device", None) or "cpu"
    store: dict[str, Tensor] = {}
    with model.hooks(fwd_hooks=[(name, _capture(store, name)) for name in names]):
        model(
            tokens.to(device),
            attention_mask=mask.to(device),
            return_type=None,
            stop_at_layer=stop_at_layer,
        )
    for name in names:
        acts = store.get(name)
        if acts is None:
            raise HookNameError(
                f"Hook {name!r} exists but did not fire during the forward pass (some hooks, "
                "such as hook_attn_in, must first be enabled on the model)."
            )
        if acts.ndim != 3 or acts.shape[:2] != tokens.shape:
            raise InvalidParameterError(
                f"Hook {name!r} gives activations of shape {tuple(acts.shape)}; "
                "collect_activations needs [batch, pos, d] hooks such as hook_resid_post."
            )
    return store
