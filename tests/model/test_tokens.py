"""Tokenize and pad (lens_odesteer.models.tokens), the one batching path of the library."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformer_lens.model_bridge import TransformerBridge

from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.models.tokens import (
    pad_token_id,
    pad_tokens,
    padding_side,
    tokenize,
    tokenize_and_pad,
)

BAD_INPUT = (InvalidParameterError, TypeError)  # TypeError: beartype/jaxtyping in the full run


def test_tokenize_is_to_tokens_of_the_text_alone(tiny: TransformerBridge) -> None:
    for text in ("Hi", "A longer text", "Grüße"):
        for bos in (None, False):
            expected = tiny.to_tokens(text, prepend_bos=bos, move_to_device=False)[0].cpu()
            assert torch.equal(tokenize(tiny, text, prepend_bos=bos), expected)


def test_tokenize_and_pad_left_keeps_each_row_and_masks_pads(tiny: TransformerBridge) -> None:
    texts = ["Hi", "A longer text", "x"]
    batch = tokenize_and_pad(tiny, texts)
    assert batch.side == "left" and batch.ids.shape == batch.attention_mask.shape
    for row, text in enumerate(texts):
        n, pad = batch.lengths[row], batch.offsets[row]
        assert torch.equal(batch.ids[row, pad:], tokenize(tiny, text))
        assert batch.attention_mask[row].tolist() == [0] * pad + [1] * n
        assert (batch.ids[row, :pad] == pad_token_id(tiny)).all()


def test_pad_tokens_right_side() -> None:
    batch = pad_tokens([torch.tensor([1]), torch.tensor([2, 3, 4])], pad_id=9, side="right")
    assert batch.ids.tolist() == [[1, 9, 9], [2, 3, 4]]
    assert batch.attention_mask.tolist() == [[1, 0, 0], [1, 1, 1]]
    assert batch.offsets == [0, 0] and batch.lengths == [1, 3]


def test_pad_token_id_rule() -> None:
    model = SimpleNamespace(tokenizer=SimpleNamespace(pad_token_id=5, eos_token_id=7))
    assert pad_token_id(model) == 5
    model.tokenizer.pad_token_id = None
    assert pad_token_id(model) == 7
    model.tokenizer.eos_token_id = None
    assert pad_token_id(model) == 0
    assert pad_token_id(SimpleNamespace()) == 0


def test_padding_side_restores_a_classic_tokenizer() -> None:
    model = SimpleNamespace(tokenizer=SimpleNamespace(padding_side="right"), cfg=SimpleNamespace())
    with padding_side(model, "left"):
        assert model.tokenizer.padding_side == "left"
    assert model.tokenizer.padding_side == "right"
    with pytest.raises(RuntimeError), padding_side(model, "left"):
        raise RuntimeError("boom")
    assert model.tokenizer.padding_side == "right"


def test_errors_name_the_text(tiny: TransformerBridge) -> None:
    with pytest.raises(InvalidParameterError, match=r"`prompts\[2\]` \(''\) gives no tokens"):
        tokenize(tiny, "", prepend_bos=False, name="prompts", index=2)
    assert tokenize(tiny, "", prepend_bos=False, allow_empty=True).numel() == 0
    with pytest.raises(BAD_INPUT):
        tokenize(tiny, 3, name="texts")  # type: ignore[arg-type]
    with pytest.raises(BAD_INPUT):
        pad_tokens([], pad_id=0)
    with pytest.raises(BAD_INPUT):
        pad_tokens([torch.tensor([1])], pad_id=0, side="middle")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="chat template"):
        tokenize(tiny, "hi", chat=True)
