"""Tokenize and pad: the only place that turns texts into padded token batches.

Every batched forward pass of the library (activation collection, log-likelihoods, generation,
perplexity) tokenizes each text on its own, exactly as ``model.to_tokens(text)`` does, then pads
a batch of those token lists to one width with :func:`pad_tokens` and runs it with the attention
mask. There is one pad-id rule (:func:`pad_token_id`); pads are masked, so the id only has to be
a valid token. :func:`tokenize_and_pad` does both steps for a list of texts. Do not write a
second ``torch.full((batch, width), pad_id)`` loop elsewhere.

Example:
    >>> from lens_odesteer.models import tiny_bridge
    >>> model = tiny_bridge()
    >>> batch = tokenize_and_pad(model, ["Hi", "Hello"])
    >>> batch.ids.shape == batch.attention_mask.shape, batch.lengths
    (True, [3, 6])
    >>> batch.attention_mask[0].tolist()
    [0, 0, 0, 1, 1, 1]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Int
from torch import Tensor

from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.models.names import HookedModel, is_bridge

__all__ = [
    "PaddedTokens",
    "pad_token_id",
    "pad_tokens",
    "padding_side",
    "tokenize",
    "tokenize_and_pad",
]

PaddingSide = Literal["left", "right"]


@dataclass(frozen=True)
class PaddedTokens:
    """A padded batch of token lists.

    Attributes:
        ids: ``[batch, width]`` token ids (CPU, int64); pads hold :func:`pad_token_id`.
        attention_mask: ``[batch, width]`` 1 at real tokens, 0 at pads (CPU, int64).
        lengths: real tokens per row.
        side: where the pads are, ``"left"`` (real tokens end at the last column) or
            ``"right"`` (real tokens start at column 0).
    """

    ids: Int[Tensor, "batch width"]
    attention_mask: Int[Tensor, "batch width"]
    lengths: list[int]
    side: PaddingSide = "left"

    @property
    def offsets(self) -> list[int]:
        """Column of each row's first real token (the pad count for left padding, else 0)."""
        width = self.ids.shape[1]
        return [width - n if self.side == "left" else 0 for n in self.lengths]


def pad_token_id(model: HookedModel) -> int:
    """The id written at pad positions: the tokenizer's pad id, else its EOS id, else 0.

    Pads are masked out of attention and never read, so any valid token id works; a model
    without a tokenizer gets 0.
    """
    tok = getattr(model, "tokenizer", None)
    for attr in ("pad_token_id", "eos_token_id"):
        value = getattr(tok, attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 0


def tokenize(
    model: HookedModel,
    text: str,
    *,
    prepend_bos: bool | None = None,
    chat: bool = False,
    name: str = "texts",
    index: int | None = 0,
    allow_empty: bool = False,
) -> Int[Tensor, " n_tokens"]:
    """Token ids of one text on the CPU, exactly as ``model.to_tokens(text)[0]`` gives them.

    Args:
        model: a TransformerLens model with a tokenizer.
        text: the text.
        prepend_bos: passed to ``to_tokens``; None uses the model default (and False with
            ``chat``, whose template writes its own BOS).
        chat: format ``text`` as one user turn with the tokenizer's chat template, followed by
            the generation prompt.
        name, index: how errors name the text: ``texts[3]``, or just ``name`` when ``index`` is
            None.
        allow_empty: return an empty tensor instead of raising when the text has no token.

    Raises:
        InvalidParameterError: ``text`` is not a string, gives no tokens, or ``chat`` with a
            tokenizer that has no chat template.
    """
    label = name if index is None else f"{name}[{index}]"
    if not isinstance(text, str):
        raise InvalidParameterError(
            f"`{label}` must be a string; got {type(text).__name__} ({text!r})."
        )
    original = text
    if chat:
        tok = getattr(model, "tokenizer", None)
        if getattr(tok, "chat_template", None) is None:
            raise InvalidParameterError(
                "`chat=True` needs a tokenizer with a chat template; this one has none."
            )
        assert tok is not None
        text = tok.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
        )
        # The template writes its own BOS/role tokens; a prepended BOS would double it.
        prepend_bos = False if prepend_bos is None else prepend_bos
    ids = model.to_tokens(text, prepend_bos=prepend_bos, move_to_device=False)[0].cpu().long()
    if ids.numel() == 0 and not allow_empty:
        raise InvalidParameterError(
            f"`{label}` ({original!r}) gives no tokens; use a non-empty text or prepend_bos=True."
        )
    return ids


def pad_tokens(
    tokens: Sequence[Tensor], pad_id: int, *, side: PaddingSide = "left"
) -> PaddedTokens:
    """Pad 1-D token-id tensors to one width; return ids, attention mask and lengths.

    Args:
        tokens: one 1-D integer tensor per row (e.g. from :func:`tokenize`).
        pad_id: the id at pad positions; use :func:`pad_token_id`.
        side: ``"left"`` (default: every row's last real token is the last column, as batched
            generation and last-token reads need) or ``"right"``.

    Example:
        >>> batch = pad_tokens([torch.tensor([5, 6]), torch.tensor([7])], pad_id=0)
        >>> batch.ids.tolist(), batch.attention_mask.tolist(), batch.offsets
        ([[5, 6], [0, 7]], [[1, 1], [0, 1]], [0, 1])
    """
    if side not in ("left", "right"):
        raise InvalidParameterError(f"`side` must be 'left' or 'right'; got {side!r}.")
    if len(tokens) == 0:
        raise InvalidParameterError("`tokens` is empty; give at least one row of token ids.")
    lengths = [int(t.shape[0]) for t in tokens]
    width = max(lengths)
    ids = torch.full((len(tokens), width), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(tokens), width), dtype=torch.long)
    for row, (toks, n) in enumerate(zip(tokens, lengths, strict=True)):
        cols = slice(width - n, width) if side == "left" else slice(0, n)
        ids[row, cols] = toks.to(torch.long).cpu()
        mask[row, cols] = 1
    return PaddedTokens(ids, mask, lengths, side)


def tokenize_and_pad(
    model: HookedModel,
    texts: Sequence[str],
    *,
    prepend_bos: bool | None = None,
    side: PaddingSide = "left",
    name: str = "texts",
) -> PaddedTokens:
    """Tokenize each text as ``model.to_tokens(text)`` does and pad them into one batch.

    The rows are in the order of ``texts``. To batch many texts by length, :func:`tokenize`
    them once, sort, and call :func:`pad_tokens` per batch.
    """
    tokens = [
        tokenize(model, t, prepend_bos=prepend_bos, name=name, index=i) for i, t in enumerate(texts)
    ]
    return pad_tokens(tokens, pad_token_id(model), side=side)


@contextmanager
def padding_side(model: HookedModel, side: PaddingSide) -> Iterator[None]:
    """Make a classic ``HookedTransformer`` read a padded batch the way it is padded.

    TL 2.x only honours an explicit attention mask when its tokenizer pads on the left, and it
    infers a left-padding mask from the pad id otherwise; setting ``tokenizer.padding_side``
    to the batch's side for the duration of the run keeps it consistent. A
    ``TransformerBridge`` always uses the mask it is given and is left alone.
    """
    tok = getattr(model, "tokenizer", None)
    if is_bridge(model) or tok is None or not hasattr(tok, "padding_side"):
        yield
        return
    previous = tok.padding_side
    tok.padding_side = side
    try:
        yield
    finally:
        tok.padding_side = previous
