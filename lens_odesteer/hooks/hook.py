"""The steering hook: a TransformerLens forward hook that applies a fitted steerer in a scope.

A :class:`SteeringHook` is an ordinary TL hook function, ``hook(acts, hook=hook_point)``, so it
works in ``model.run_with_hooks(tokens, fwd_hooks=[(name, steering_hook)])``, in
``with model.hooks(fwd_hooks=[...])`` and through :func:`~lens_odesteer.hooks.steering`. On each
call it gathers the in-scope positions into one ``[n, d]`` tensor, runs ONE steerer solve on it
(all rows and positions together) in the compute dtype, casts back and scatters the result into
a new tensor; positions out of scope come back bitwise identical and ``acts`` is never edited.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lens_odesteer._validation import check_finite_float
from lens_odesteer.errors import InvalidActivationsError, InvalidParameterError, ShapeMismatchError
from lens_odesteer.hooks.scope import (
    ParsedScope,
    PromptLayout,
    Scope,
    Selection,
    parse_scope,
    select_positions,
)
from lens_odesteer.steerers.base import AbstractSteerer

__all__ = ["SteeringHook"]


class _Track:
    """Position bookkeeping of one hook point: where the next call starts."""

    __slots__ = ("calls", "full_len", "seen", "tail", "width")

    def __init__(self) -> None:
        self.seen = 0  # columns seen since the last full pass started
        self.width = 0  # prompt width in columns
        self.full_len: int | None = None  # length of the previous call if it was a full pass
        self.tail: Tensor | None = None  # its input at the last column (inferred mode only)
        self.calls = 0


def _extends(acts: Tensor, tail: Tensor | None, rel_tol: float = 0.05) -> bool:
    """True when ``acts[:, -2]`` is (up to float noise) the previous pass's last column."""
    if tail is None or tail.shape != acts[:, -2].shape:
        return False
    prev = tail.float()
    gap = (acts[:, -2].float() - prev).norm(dim=-1)
    return bool((gap <= rel_tol * prev.norm(dim=-1) + 1e-6).all())


class SteeringHook:
    """A forward hook that steers the in-scope positions of one hook point with ``steerer``.

    Each call is placed at absolute columns: a call that starts a new sequence (a full pass, or
    the prefill of a cached generation) starts at column 0, and a cached decoding call continues
    where the previous call at the same hook point stopped. Without a :class:`PromptLayout` the
    hook infers this from the calls: a one-position call that follows another call continues it
    (the KV cache); any other call is a full pass whose prompt is the whole input, except that a
    full pass which extends the previous full pass by exactly one token (same batch, and its
    second-to-last activation equals the previous pass's last one) is taken as the next step of a
    generation without the KV cache and keeps that prompt. Call :meth:`reset` between unrelated
    inputs when one is a one-token input or the previous input plus one token.
    :func:`~lens_odesteer.hooks.generate` sets the layout (padding, prompt lengths, cache mode)
    itself, so nothing is inferred there.

    Main arguments:
        steerer: a fitted steerer (``ODESteer``, ``CAA``, ...).
        T: steering strength (``T = 0`` returns the activation unchanged).
        scope: which tokens to steer; see :func:`~lens_odesteer.hooks.steering`.

    Other arguments:
        device: move the steerer (a copy) there once, now. Default: where the steerer is.
        compute_dtype: dtype of the steering maths; the steerer is converted once, now.
            Default: the steerer's dtype, at least float32 (so bf16/fp16 activations are
            steered in float32 and cast back).
        record: keep, per call, the barrier before and after steering in :attr:`records`.
        lengths: real tokens per row of right-padded input (plain forward passes).
        attention_mask: ``[batch, pos]`` 0/1 mask of the input (left or right padding).
        n_ctx: context length used to range-check explicit positions.

    Attributes:
        records: one dict per call when ``record=True`` (see
            :meth:`~lens_odesteer.hooks.SteeringHandle.records_frame` for the fields).

    Example:
        >>> import torch, lens_odesteer as lo
        >>> from lens_odesteer.models import tiny_bridge
        >>> model = tiny_bridge()
        >>> steerer = lo.CAA().fit(torch.randn(8, 64) + 1, torch.randn(8, 64))
        >>> hook = SteeringHook(steerer, T=1.0, scope="last")
        >>> hook
        SteeringHook(steerer=CAA(), T=1.0, scope='last')
        >>> logits = model.run_with_hooks("Hi", fwd_hooks=[("blocks.0.hook_resid_post", hook)])
    """

    def __init__(
        self,
        steerer: AbstractSteerer,
        T: float,
        *,
        scope: Scope | ParsedScope = "last",
        device: torch.device | str | None = None,
        compute_dtype: torch.dtype | None = None,
        record: bool = False,
        lengths: Sequence[int] | None = None,
        attention_mask: Tensor | None = None,
        n_ctx: int | None = None,
    ) -> None:
        if not isinstance(steerer, AbstractSteerer):
            raise InvalidParameterError(
                f"`steerer` must be a fitted lens_odesteer steerer (ODESteer, CAA, ...); got "
                f"{type(steerer).__name__}."
            )
        steerer._check_is_fitted()
        self.T = check_finite_float(T, "T", minimum=0.0)
        parsed = scope if isinstance(scope, ParsedScope) else parse_scope(scope, n_ctx)
        cdtype = compute_dtype or torch.promote_types(steerer.dtype_, torch.float32)
        if not isinstance(cdtype, torch.dtype) or not cdtype.is_floating_point:
            raise InvalidParameterError(
                f"`compute_dtype` must be a floating torch.dtype; got {compute_dtype!r}."
            )
        if device is not None or cdtype != steerer.dtype_:
            steerer = steerer.to(device=device, dtype=cdtype)  # a copy; the caller's is untouched
        self.steerer = steerer
        self.compute_dtype = cdtype
        self.device = steerer._device()
        self.d_model = steerer.d_model_
        self.scope = parsed.to(self.device)
        self.record = bool(record)
        self.records: list[dict[str, Any]] = []
        self._layout: PromptLayout | None = None
        self._tracks: dict[str, _Track] = {}
        if lengths is not None and attention_mask is not None:
            raise InvalidParameterError("Give `lengths` or `attention_mask`, not both.")
        if attention_mask is not None:
            self.set_layout(PromptLayout.from_attention_mask(attention_mask))
        elif lengths is not None:
            self.set_layout(PromptLayout.from_lengths(lengths))

    # -- state --------------------------------------------------------------------------------
    @property
    def layout(self) -> PromptLayout | None:
        """What the hook knows about padding and prompt lengths (None: infer from shapes)."""
        return self._layout

    def set_layout(self, layout: PromptLayout | None) -> None:
        """Set (or clear, with None) the batch layout; also resets the position state."""
        self._layout = None if layout is None else layout.to(self.device)
        self._tracks.clear()

    def reset(self) -> None:
        """Forget the position state, so the next call starts a new sequence at column 0."""
        self._tracks.clear()

    def _advance(self, name: str, acts: Tensor) -> tuple[int, int, int]:
        """Return ``(offset, width, call index)`` of this call and update the state."""
        batch, seq = acts.shape[0], acts.shape[1]
        layout = self._layout
        track = self._tracks.get(name)
        fresh = track is None
        if track is None:
            track = self._tracks[name] = _Track()
        kv = layout.kv if layout is not None else None
        if fresh or kv is False:
            offset = 0
        elif kv is True:
            offset = track.seen
        else:
            offset = track.seen if seq == 1 else 0
        if layout is not None:
            if layout.batch != batch:
                raise ShapeMismatchError(
                    f"The steering hook at {name!r} was told the batch has {layout.batch} rows "
                    f"(lengths/attention_mask/prompts) but the forward pass has {batch}. Update "
                    "it with handle.set_layout(...) or clear it with handle.set_layout()."
                )
            if offset == 0 and seq < layout.width:
                raise ShapeMismatchError(
                    f"The steering hook at {name!r} was told the prompts are {layout.width} "
                    f"tokens wide, but a full pass has only {seq} positions."
                )
            width = layout.width
        elif offset > 0:
            width = track.width
        elif (
            not fresh
            and track.full_len is not None
            and seq == track.full_len + 1
            and _extends(acts, track.tail)
        ):
            width = track.width  # the next step of a generation without the KV cache
        else:
            width = seq
        track.seen = offset + seq
        track.width = width
        track.full_len = seq if offset == 0 else None
        track.tail = acts[:, -1].detach().clone() if layout is None and offset == 0 else None
        call = track.calls
        track.calls += 1
        return offset, width, call

    # -- the hook -----------------------------------------------------------------------------
    def __call__(self, acts: Tensor, hook: Any = None) -> Tensor:
        """Return ``acts`` with the in-scope positions steered (a new tensor).

        Args:
            acts: the activation ``[batch, pos, d_model]`` at the hook point.
            hook: the TransformerLens ``HookPoint`` (its ``name`` keys the position state).
        """
        name = getattr(hook, "name", None) or ""
        if acts.ndim != 3 or acts.shape[-1] != self.d_model:
            raise ShapeMismatchError(
                f"The steering hook at {name!r} got activations of shape {tuple(acts.shape)}, but "
                f"its steerer expects [batch, pos, {self.d_model}]. Steer a [batch, pos, d] hook "
                "point whose width matches the steerer (e.g. blocks.L.hook_resid_post)."
            )
        batch, seq, d = acts.shape
        offset, width, call = self._advance(name, acts)
        if self.T == 0.0:
            return acts
        if self.device is not None and acts.device != self.device:
            raise InvalidActivationsError(
                f"The steering hook at {name!r} got activations on {acts.device} but its steerer "
                f"is on {self.device}; attach with `steering(model, ...)`, which moves the "
                "steerer once to the hook's device, or pass `device=` to SteeringHook."
            )
        sel = select_positions(self.scope, self._layout, batch, seq, offset, width, acts.device)
        if sel is None:
            return acts
        if isinstance(sel, tuple):
            start, stop = sel
            flat = acts[:, start:stop].reshape(-1, d)
        else:
            flat = acts[sel]
        src = flat.to(self.compute_dtype)
        out = self.steerer._steer(src, self.T)
        if self.record:
            self._record(name, call, sel, offset, batch, src, out)
        out = out.to(acts.dtype)
        if acts.dtype == torch.float16 and not bool(torch.isfinite(out).all()):
            # float16's range (65504) is small enough for steering to leave it; inf would poison
            # every later layer, so stop here (the check costs nothing for other dtypes).
            raise InvalidActivationsError(
                f"The steered activations at {name!r} exceed the range of float16; lower `T` or "
                "run the model in bfloat16 or float32."
            )
        if not isinstance(sel, tuple):
            return acts.index_put((sel,), out)
        start, stop = sel
        out = out.reshape(batch, stop - start, d)
        if start == 0 and stop == seq:
            return out
        return torch.cat([acts[:, :start], out, acts[:, stop:]], dim=1)

    def _record(
        self,
        name: str,
        call: int,
        sel: Selection,
        offset: int,
        batch: int,
        src: Tensor,
        out: Tensor,
    ) -> None:
        with torch.no_grad():
            if isinstance(sel, tuple):
                start, stop = sel
                n_cols = stop - start
                rows = torch.arange(batch, device=src.device).repeat_interleave(n_cols)
                cols = (torch.arange(start, stop, device=src.device) + offset).repeat(batch)
            else:
                rows, cols = sel.nonzero(as_tuple=True)
                cols = cols + offset
            layout = self._layout
            if layout is not None:
                cols = cols - layout.pad[rows]
                if layout.rows is not None:  # one prompt per call: name the prompt, not row 0
                    rows = layout.rows[rows]
            has_barrier = self.steerer.has_barrier
            before = self.steerer._barrier(src) if has_barrier else None
            after = self.steerer._barrier(out) if has_barrier else None
            self.records.append(
                {
                    "hook": name,
                    "call": call,
                    "offset": offset,
                    "row": rows.cpu(),
                    "position": cols.cpu(),
                    "h_before": None if before is None else before.detach().float().cpu(),
                    "h_after": None if after is None else after.detach().float().cpu(),
                    "shift": (out - src).norm(dim=-1).detach().float().cpu(),
                }
            )

    def clear_records(self) -> None:
        """Drop the recorded barrier values."""
        self.records.clear()

    def __repr__(self) -> str:
        parts = [f"steerer={self.steerer!r}", f"T={self.T!r}", f"scope={self.scope.describe()}"]
        if self.record:
            parts.append("record=True")
        return f"SteeringHook({', '.join(parts)})"
