"""Scope parsing, prompt layouts and position selection, without a model."""

from __future__ import annotations

import pytest
import torch

from lens_odesteer.errors import InvalidParameterError, ShapeMismatchError
from lens_odesteer.hooks import PromptLayout, parse_scope
from lens_odesteer.hooks.scope import select_positions

CPU = torch.device("cpu")


def _as_mask(sel: object, batch: int, seq: int) -> torch.Tensor:
    if sel is None:
        return torch.zeros(batch, seq, dtype=torch.bool)
    if isinstance(sel, tuple):
        mask = torch.zeros(batch, seq, dtype=torch.bool)
        mask[:, sel[0] : sel[1]] = True
        return mask
    assert isinstance(sel, torch.Tensor)
    return sel


def test_parse_scope_names_lists_and_masks() -> None:
    assert parse_scope("generated").kind == "generated"
    assert parse_scope([0, -1]).positions.tolist() == [0, -1]  # type: ignore[union-attr]
    mask = parse_scope(torch.tensor([True, False]))
    assert mask.kind == "mask" and mask.mask.shape == (1, 2)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "scope", ["lats", "", [], [1.5], [True], torch.zeros(2, 3), torch.zeros(1, 2, 3).bool()]
)
def test_parse_scope_rejects_bad_scopes(scope: object) -> None:
    with pytest.raises(InvalidParameterError):
        parse_scope(scope)


def test_parse_scope_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(InvalidParameterError, match="'last', 'all', 'prompt', 'generated'"):
        parse_scope("everything")


def test_parse_scope_positions_out_of_range() -> None:
    with pytest.raises(InvalidParameterError, match="out of range"):
        parse_scope([0, 300], n_ctx=256)
    with pytest.raises(InvalidParameterError, match="out of range"):
        parse_scope([-257], n_ctx=256)


def test_layout_from_mask_left_right_and_gaps() -> None:
    left = PromptLayout.from_attention_mask(torch.tensor([[0, 0, 1], [1, 1, 1]]))
    assert left.pad.tolist() == [2, 0] and left.lengths.tolist() == [1, 3] and left.aligned
    right = PromptLayout.from_lengths([1, 3])
    assert right.pad.tolist() == [0, 0] and not right.aligned
    with pytest.raises(InvalidParameterError, match="contiguous"):
        PromptLayout.from_attention_mask(torch.tensor([[1, 0, 1]]))
    with pytest.raises(InvalidParameterError, match="no real token"):
        PromptLayout.from_attention_mask(torch.tensor([[0, 0], [1, 1]]))
    with pytest.raises(InvalidParameterError):
        PromptLayout.from_lengths([0, 2])


# Left-padded batch: row 0 has 2 pads and 3 prompt tokens, row 1 has 5 prompt tokens.
LEFT = PromptLayout.from_attention_mask(torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]))


def _steered_tokens(scope: object, layout: PromptLayout, total: int) -> set[tuple[int, int]]:
    """(row, token position) pairs in scope over a no-cache pass of ``total`` columns."""
    sel = select_positions(parse_scope(scope), layout, 2, total, 0, layout.width, CPU)
    mask = _as_mask(sel, 2, total)
    rows, cols = mask.nonzero(as_tuple=True)
    return {(int(r), int(c - layout.pad[r])) for r, c in zip(rows, cols, strict=True)}


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("last", {(0, 2), (0, 3), (0, 4), (1, 4), (1, 5), (1, 6)}),
        ("generated", {(0, 3), (0, 4), (1, 5), (1, 6)}),
        ("prompt", {(0, 0), (0, 1), (0, 2)} | {(1, i) for i in range(5)}),
        ("all", {(0, i) for i in range(5)} | {(1, i) for i in range(7)}),
        ([0, -1, 6], {(0, 0), (0, 2), (1, 0), (1, 4), (1, 6)}),
        (
            torch.tensor([[True, False, False, True], [False, True, False, False]]),
            {(0, 0), (0, 3), (1, 1)},
        ),
    ],
)
def test_select_positions_counts_real_tokens_of_each_row(
    scope: object, expected: set[tuple[int, int]]
) -> None:
    assert _steered_tokens(scope, LEFT, 7) == expected


@pytest.mark.parametrize("scope", ["last", "all", "prompt", "generated", [1, -2, 5]])
def test_cached_calls_select_the_same_tokens_as_one_full_pass(scope: object) -> None:
    """Prefill + one-column decoding calls cover exactly the tokens of the full pass."""
    parsed = parse_scope(scope)
    full = _as_mask(select_positions(parsed, LEFT, 2, 8, 0, 5, CPU), 2, 8)
    pieces = [_as_mask(select_positions(parsed, LEFT, 2, 5, 0, 5, CPU), 2, 5)]
    for col in range(5, 8):
        pieces.append(_as_mask(select_positions(parsed, LEFT, 2, 1, col, 5, CPU), 2, 1))
    assert torch.equal(torch.cat(pieces, dim=1), full)


def test_last_on_right_padding_is_the_last_real_token() -> None:
    right = PromptLayout.from_lengths([2, 4])
    sel = select_positions(parse_scope("last"), right, 2, 4, 0, 4, CPU)
    assert _as_mask(sel, 2, 4).nonzero().tolist() == [[0, 1], [1, 3]]


def test_last_without_layout_is_a_column_range() -> None:
    assert select_positions(parse_scope("last"), None, 3, 6, 0, 6, CPU) == (5, 6)
    assert select_positions(parse_scope("last"), None, 3, 1, 6, 6, CPU) == (0, 1)
    assert select_positions(parse_scope("prompt"), None, 3, 1, 6, 6, CPU) is None


def test_mask_scope_batch_mismatch() -> None:
    scope = parse_scope(torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(ShapeMismatchError, match="3 rows"):
        select_positions(scope, None, 2, 4, 0, 4, CPU)
