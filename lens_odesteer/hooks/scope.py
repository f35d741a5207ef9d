"""Token scopes: which positions of each row a steering hook edits, in every forward call.

Two coordinate systems appear here:

* **columns** ``j``: the position axis of the (padded) token tensor the model runs on. During
  generation the prompt occupies columns ``0 .. width - 1`` and the ``k``-th new token column
  ``width + k``. With the KV cache a decoding call only holds one column, so a hook must keep
  track of the column ``offset`` of its first position (:class:`~lens_odesteer.hooks.SteeringHook`
  does).
* **token positions** ``r = j - pad[row]``: the index of a token among the real (non-pad) tokens
  of its row, ``0`` being its first token (BOS if one was prepended). Explicit positions and
  boolean masks are given in these coordinates, so they do not depend on how much padding a
  batch needs. Without padding (or with right padding) both systems coincide.

Nothing here imports TransformerLens; :class:`PromptLayout` is what the hooks know about the
batch, and :func:`select_positions` turns a scope into the in-scope positions of one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from lens_odesteer.errors import InvalidParameterError, ShapeMismatchError

__all__ = ["SCOPES", "ParsedScope", "PromptLayout", "Scope", "parse_scope", "select_positions"]

SCOPES = ("last", "all", "prompt", "generated")
"""The named token scopes; see :func:`~lens_odesteer.hooks.steering` for their meaning."""

Scope = str | Sequence[int] | Tensor
"""A named scope, a list of token positions, or a boolean mask ``[batch, pos]`` (or ``[pos]``)."""

#: A column range ``[start, stop)`` applied to every row, or a ``[batch, seq]`` boolean mask.
Selection = tuple[int, int] | Tensor


@dataclass(frozen=True)
class ParsedScope:
    """A validated scope: a name from :data:`SCOPES`, ``"positions"`` or ``"mask"``."""

    kind: str
    positions: Tensor | None = None  # long [k]
    mask: Tensor | None = None  # bool [rows, n_positions]

    def to(self, device: torch.device | None) -> ParsedScope:
        """Return a copy whose tensors live on ``device`` (``self`` when nothing moves)."""
        if device is None:
            return self
        pos = None if self.positions is None else self.positions.to(device)
        mask = None if self.mask is None else self.mask.to(device)
        return replace(self, positions=pos, mask=mask)

    def describe(self) -> str:
        """A short text for reprs: ``'last'``, ``[3, -1]`` or ``<bool mask [2, 10]>``."""
        if self.positions is not None:
            items = self.positions.tolist()
            shown = ", ".join(str(p) for p in items[:8]) + (", ..." if len(items) > 8 else "")
            return f"[{shown}]"
        if self.mask is not None:
            return f"<bool mask {list(self.mask.shape)}>"
        return repr(self.kind)


def parse_scope(scope: object, n_ctx: int | None = None) -> ParsedScope:
    """Validate a token scope and return its parsed form.

    Args:
        scope: ``"last"``, ``"all"``, ``"prompt"``, ``"generated"``, a non-empty list of int
            token positions (negative values count back from the end of the prompt, ``-1`` being
            its last token), or a boolean tensor ``[batch, pos]`` (or ``[pos]`` for every row)
            over token positions.
        n_ctx: the model's context length; positions with ``|p| >= n_ctx`` are rejected.

    Raises:
        InvalidParameterError: an unknown name, an empty or non-integer list, a position out
            of range, or a tensor that is not a 1-D/2-D boolean mask.

    Example:
        >>> parse_scope("last").kind, parse_scope([0, -1]).positions.tolist()
        ('last', [0, -1])
    """
    if isinstance(scope, str):
        if scope not in SCOPES:
            listed = ", ".join(repr(s) for s in SCOPES)
            raise InvalidParameterError(
                f"Unknown scope {scope!r}. Expected one of: {listed}, a list of token "
                "positions, or a boolean mask [batch, pos]."
            )
        return ParsedScope(scope)
    if isinstance(scope, Tensor):
        if scope.dtype != torch.bool or scope.ndim not in (1, 2) or scope.numel() == 0:
            raise InvalidParameterError(
                "A tensor `scope` must be a non-empty boolean mask of shape [batch, pos] (or "
                f"[pos] for every row); got dtype {scope.dtype} and shape {tuple(scope.shape)}."
            )
        mask = scope if scope.ndim == 2 else scope.unsqueeze(0)
        return ParsedScope("mask", mask=mask.detach().clone())
    if isinstance(scope, Sequence) and not isinstance(scope, (bytes, bytearray)):
        items = list(scope)
        bad = [p for p in items if isinstance(p, bool) or not isinstance(p, int)]
        if not items or bad:
            raise InvalidParameterError(
                f"A list `scope` must be a non-empty list of int token positions; got {scope!r}."
            )
        if n_ctx is not None:
            out = [p for p in items if not -n_ctx <= p < n_ctx]
            if out:
                raise InvalidParameterError(
                    f"Token position(s) {out} in `scope` are out of range for a model with a "
                    f"context of n_ctx={n_ctx} tokens (valid: {-n_ctx} .. {n_ctx - 1})."
                )
        return ParsedScope("positions", positions=torch.tensor(items, dtype=torch.long))
    raise InvalidParameterError(
        f"`scope` must be one of {', '.join(repr(s) for s in SCOPES)}, a list of token positions "
        f"or a boolean mask [batch, pos]; got {type(scope).__name__}."
    )


@dataclass(frozen=True)
class PromptLayout:
    """Where the real prompt tokens of each row sit in the token tensor the model runs on.

    Attributes:
        pad: ``[batch]`` padding columns before each row's first real token (left padding).
        lengths: ``[batch]`` real prompt tokens per row.
        width: prompt width in columns; generated tokens start at column ``width``.
        valid: ``[batch, width]`` True on real prompt tokens, or None when all are real.
        aligned: every row's last prompt token is in column ``width - 1`` (left or no padding).
        kv: True when calls after the first continue the same sequence (KV cache), False when
            every call is a full pass from column 0, None to infer it from the call shapes.
        rows: ``[batch]`` row of a mask scope to use for each batch row (None: the same row).
    """

    pad: Tensor
    lengths: Tensor
    width: int
    valid: Tensor | None
    aligned: bool
    kv: bool | None = None
    rows: Tensor | None = None

    @property
    def batch(self) -> int:
        """Number of rows."""
        return int(self.pad.shape[0])

    @classmethod
    def from_attention_mask(
        cls, attention_mask: Int[Tensor, "batch pos"] | Bool[Tensor, "batch pos"], **kw: object
    ) -> PromptLayout:
        """Build a layout from a 0/1 mask whose ones are contiguous in each row.

        Left padding (``[0, 0, 1, 1]``), right padding (``[1, 1, 0, 0]``) and no padding are all
        accepted; a row without real tokens or with a gap is rejected.

        Example:
            >>> lay = PromptLayout.from_attention_mask(torch.tensor([[0, 1, 1], [1, 1, 1]]))
            >>> lay.pad.tolist(), lay.lengths.tolist(), lay.width, lay.aligned
            ([1, 0], [2, 3], 3, True)
        """
        if not isinstance(attention_mask, Tensor) or attention_mask.ndim != 2:
            raise InvalidParameterError(
                "`attention_mask` must be a 2-D tensor [batch, pos] of 0/1 values; got "
                f"{type(attention_mask).__name__} "
                f"{tuple(getattr(attention_mask, 'shape', ()))}."
            )
        mask = attention_mask.detach().cpu()
        if mask.dtype != torch.bool:
            if not bool(((mask == 0) | (mask == 1)).all()):
                raise InvalidParameterError("`attention_mask` must hold only 0 and 1.")
            mask = mask.bool()
        batch, width = mask.shape
        if batch == 0 or width == 0:
            raise InvalidParameterError(f"`attention_mask` is empty: shape {tuple(mask.shape)}.")
        lengths = mask.sum(1)
        if bool((lengths == 0).any()):
            rows = (lengths == 0).nonzero().flatten().tolist()
            raise InvalidParameterError(f"`attention_mask` rows {rows} have no real token.")
        pad = mask.long().argmax(1)
        cols = torch.arange(width)
        expected = (cols[None] >= pad[:, None]) & (cols[None] < (pad + lengths)[:, None])
        if not bool((expected == mask).all()):
            raise InvalidParameterError(
                "`attention_mask` must have its ones in one contiguous block per row (left or "
                "right padding); got a row with a gap."
            )
        valid = None if bool(mask.all()) else mask
        aligned = bool(mask[:, -1].all())
        return cls(pad, lengths, width, valid, aligned, **kw)  # type: ignore[arg-type]

    @classmethod
    def from_lengths(cls, lengths: Sequence[int] | Tensor, **kw: object) -> PromptLayout:
        """Build a right-padded layout (TransformerLens's default for ``list[str]`` input).

        Example:
            >>> lay = PromptLayout.from_lengths([3, 1])
            >>> lay.width, lay.aligned, lay.valid.tolist()
            (3, False, [[True, True, True], [True, False, False]])
        """
        if isinstance(lengths, Tensor):
            values = lengths.detach().cpu().flatten().tolist()
        elif isinstance(lengths, Sequence) and not isinstance(lengths, str):
            values = list(lengths)
        else:
            raise InvalidParameterError(f"`lengths` must be a list of ints; got {lengths!r}.")
        if not values or any(
            isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values
        ):
            raise InvalidParameterError(
                f"`lengths` must be a non-empty list of ints >= 1 (real tokens per row); got "
                f"{lengths!r}."
            )
        width = max(values)
        mask = torch.arange(width)[None] < torch.tensor(values)[:, None]
        return cls.from_attention_mask(mask, **kw)

    def to(self, device: torch.device | None) -> PromptLayout:
        """Return a copy whose tensors live on ``device``."""
        if device is None:
            return self
        return replace(
            self,
            pad=self.pad.to(device),
            lengths=self.lengths.to(device),
            valid=None if self.valid is None else self.valid.to(device),
            rows=None if self.rows is None else self.rows.to(device),
        )


def select_positions(
    scope: ParsedScope,
    layout: PromptLayout | None,
    batch: int,
    seq: int,
    offset: int,
    width: int,
    device: torch.device,
) -> Selection | None:
    """Return the in-scope positions of one forward call, or None when there are none.

    Args:
        scope: the parsed scope.
        layout: what is known about padding and prompt lengths (None: no padding, every row's
            prompt is ``width`` tokens long).
        batch, seq: the activation's batch size and number of positions in this call.
        offset: the column of the call's first position.
        width: the prompt width in columns (``layout.width`` when a layout is given).
        device: where to build masks.

    Returns:
        A column range ``(start, stop)`` relative to the call when the same columns are in scope
        for every row (the common cases: ``"last"`` with left padding, ``"generated"``, ``"all"``
        without padding, every decoding step), else a boolean mask ``[batch, seq]``.
    """
    kind = scope.kind
    if kind == "generated":
        start = max(width - offset, 0)
        return (start, seq) if start < seq else None
    all_valid = layout is None or layout.valid is None or offset >= width
    if kind == "last" and (layout is None or layout.aligned):
        start = max(width - 1 - offset, 0)
        return (start, seq) if start < seq else None
    if kind == "all" and all_valid:
        return (0, seq)
    if kind == "prompt":
        if offset >= width:
            return None
        if all_valid:
            return (0, min(width - offset, seq))
    cols = torch.arange(offset, offset + seq, device=device)
    generated = (cols >= width).unsqueeze(0)  # [1, seq]
    if layout is None:
        pad = torch.zeros(batch, dtype=torch.long, device=device)
        lengths = torch.full((batch,), width, dtype=torch.long, device=device)
        valid = torch.ones(batch, seq, dtype=torch.bool, device=device)
    else:
        pad, lengths = layout.pad, layout.lengths
        valid = generated.expand(batch, seq)
        if layout.valid is None:
            valid = valid | (cols < width).unsqueeze(0)
        else:
            inside = cols.clamp(max=width - 1)
            valid = valid | (layout.valid[:, inside] & (cols < width).unsqueeze(0))
    tok = cols.unsqueeze(0) - pad.unsqueeze(1)  # token position r, [batch, seq]
    if kind == "all":
        sel = valid
    elif kind == "prompt":
        sel = valid & ~generated
    elif kind == "last":
        sel = (valid & (tok == (lengths - 1).unsqueeze(1))) | generated
    elif kind == "positions":
        assert scope.positions is not None
        positions = scope.positions
        from_end = tok - lengths.unsqueeze(1)  # -1 on the last prompt token
        sel = torch.isin(tok, positions[positions >= 0]) | torch.isin(
            from_end, positions[positions < 0]
        )
        sel = sel & valid
    else:
        assert kind == "mask" and scope.mask is not None
        sel = _mask_selection(scope.mask, layout, batch, tok) & valid
    return sel if bool(sel.any()) else None


def _mask_selection(mask: Tensor, layout: PromptLayout | None, batch: int, tok: Tensor) -> Tensor:
    rows = layout.rows if layout is not None else None
    if rows is not None:
        mask = mask[rows] if mask.shape[0] > 1 else mask
    elif mask.shape[0] not in (1, batch):
        raise ShapeMismatchError(
            f"The boolean `scope` mask has {mask.shape[0]} rows but the forward pass has a batch "
            f"of {batch}; give one row per prompt (or a single row for all of them)."
        )
    n_pos = mask.shape[1]
    inside = (tok >= 0) & (tok < n_pos)
    picked = mask.expand(batch, n_pos).gather(1, tok.clamp(0, n_pos - 1))
    return picked & inside
