"""The steering hook: a TransformerLens forward hook that applies a fitted steerer in a scope.

A :class:`SteeringHook` is an ordinary TL hook function, ``hook(acts, hook=hook_point)``, so it
works in ``model.run_with_hooks(tokens, fwd_hooks=[(name, steering_hook)])``, in
``with model.hooks(fwd_hooks=[...])`` and through :func:`~lens_odesteer.hooks.steering`. On each
call it gathers the in-scope positions into one ``[n, d]`` tensor, runs ONE steerer solve on it
(all rows and positions together) in the compute dtype, casts back and scatters the result into
a new tensor; positions out of scope come back bitwise identical and ``acts`` is never edited.
"""

from __future__ import annotations

import threading
import warnings
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from lens_odesteer.errors import (
    InvalidActivationsError,
    InvalidParameterError,
    ProvenanceError,
    ShapeMismatchError,
    SteeringConflictError,
)
from lens_odesteer.hooks import _model
from lens_odesteer.hooks.provenance import OnMismatch, check_provenance, hook_mismatches
from lens_odesteer.hooks.scope import (
    ParsedScope,
    PromptLayout,
    Scope,
    Selection,
    parse_scope,
    select_positions,
)
from lens_odesteer.hooks.sensor import acquire_sensor
from lens_odesteer.steerers.base import AbstractSteerer
from lens_odesteer.steerers.strength import resolve_T

__all__ = ["SteeringHook"]


class _Session:
    """Position state of one generation call (set by :func:`~lens_odesteer.hooks.generate`)."""

    __slots__ = ("layout", "seen")

    def __init__(self, layout: PromptLayout) -> None:
        self.layout = layout
        self.seen: dict[str, int] = {}  # columns seen per hook point (KV cache)


class SteeringHook:
    """A forward hook that steers the in-scope positions of one hook point with ``steerer``.

    A plain TransformerLens hook function: ``model.run_with_hooks(input, fwd_hooks=[(name,
    hook)])`` and ``with model.hooks(fwd_hooks=[(name, hook)]):`` work as usual. Every top-level
    forward call is treated on its own: the hook keeps no state between calls, so a reused hook
    gives exactly what a fresh one gives. What it needs to know about a call (each row's padding
    when the input is a ``list[str]`` or comes with ``attention_mask=``, and the column offset of
    a KV-cached decoding step in ``model.generate``) it reads from the model's input through a
    small sensor on ``model.forward`` (:mod:`lens_odesteer.hooks.sensor`), never from activation
    values. :func:`~lens_odesteer.hooks.generate` additionally tells the hook the exact prompt
    layout, which also makes generation without the KV cache exact.

    Main arguments:
        model: the TransformerLens model the hook will run on (TL 4 ``TransformerBridge`` or a
            classic ``HookedTransformer``).
        steerer: a fitted steerer (``ODESteer``, ``CAA``, ...).
        strength: norm-relative strength (the move as a fraction of the typical activation norm
            at the hook; the same meaning for every method). ``0`` returns activations unchanged.
        T: instead of ``strength``, the method's native strength.
        scope: which tokens to steer; see :func:`~lens_odesteer.hooks.steering`.

    Other arguments:
        device: move the steerer (a copy) there once, now. Default: where the steerer is.
        compute_dtype: dtype of the steering maths; the steerer is converted once, now.
            Default: the steerer's dtype, at least float32 (so bf16/fp16 activations are
            steered in float32 and cast back).
        record: keep, per call, the barrier before and after steering in :attr:`records`.
        attention_mask: a fixed ``[batch, pos]`` 0/1 mask, for activations fed to the hook
            directly (not needed for model inputs: the hook reads those).
        on_provenance_mismatch: a steerer loaded from a file records the model and hook it was
            fitted on; ``"warn"`` (default), ``"raise"`` (:class:`ProvenanceError`) or
            ``"ignore"`` when this model or hook point differs. The model is compared here,
            the layer and hook site at the first call at each hook point.

    Rows whose activations are already NaN or inf (an upstream overflow) are passed through
    unchanged with a warning; the other rows are steered as usual.

    Attributes:
        records: one dict per call when ``record=True`` (see
            :meth:`~lens_odesteer.hooks.SteeringHandle.records_frame` for the fields).

    Example:
        >>> import torch, lens_odesteer as lo
        >>> model = lo.tiny_bridge()
        >>> steerer = lo.CAA().fit(torch.randn(8, 64) + 1, torch.randn(8, 64))
        >>> hook = lo.SteeringHook(model, steerer, strength=0.1, scope="last")
        >>> hook
        SteeringHook(steerer=CAA(), strength=0.1, scope='last')
        >>> logits = model.run_with_hooks("Hi", fwd_hooks=[("blocks.0.hook_resid_post", hook)])
    """

    def __init__(
        self,
        model: Any,
        steerer: AbstractSteerer,
        strength: float | None = None,
        *,
        T: float | None = None,
        scope: Scope | ParsedScope = "last",
        device: torch.device | str | None = None,
        compute_dtype: torch.dtype | None = None,
        record: bool = False,
        attention_mask: Tensor | None = None,
        on_provenance_mismatch: OnMismatch = "warn",
    ) -> None:
        if isinstance(model, AbstractSteerer):
            raise InvalidParameterError(
                "SteeringHook's first argument is the model the hook runs on: "
                "SteeringHook(model, steerer, strength=...)."
            )
        if getattr(model, "hook_dict", None) is None:
            raise InvalidParameterError(
                "`model` must be a TransformerLens model (TransformerBridge or HookedTransformer); "
                f"got {type(model).__name__}."
            )
        if not isinstance(steerer, AbstractSteerer):
            raise InvalidParameterError(
                f"`steerer` must be a fitted lens_odesteer steerer (ODESteer, CAA, ...); got "
                f"{type(steerer).__name__}."
            )
        steerer._check_is_fitted()
        # The recorded model facts are compared now; the layer and hook site at the first call
        # (a bare hook learns its hook point's name only then).
        check_provenance(steerer, model, None, on_provenance_mismatch, stacklevel=3)
        self._provenance = (
            None
            if on_provenance_mismatch == "ignore" or not getattr(steerer, "provenance_", None)
            else (weakref.ref(model), on_provenance_mismatch, set[str]())
        )
        self.T = resolve_T(steerer, strength, T)
        self.strength = None if strength is None else float(strength)
        n_ctx = _model.n_ctx(model)
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
        self.owner: int | None = None  # thread that attached the hook through steering()
        self._fixed = (
            None
            if attention_mask is None
            else PromptLayout.from_attention_mask(attention_mask).to(self.device)
        )
        self._session: _Session | None = None
        self._sensor = acquire_sensor(model)
        self._finalizer = weakref.finalize(self, self._sensor.release)

    def close(self) -> None:
        """Let go of the model's input sensor now (it is removed when no hook needs it).

        ``steering`` calls this when its block ends; a closed hook still steers, but without
        the sensor it no longer sees padding or KV-cache offsets.
        """
        self._finalizer()

    # -- generation sessions (set by generate) ------------------------------------------------
    @contextmanager
    def session(self, layout: PromptLayout) -> Iterator[None]:
        """Tell the hook the exact layout of one generation call (``layout.kv`` set)."""
        if layout.kv is None:
            raise InvalidParameterError(
                "A generation layout must say whether the KV cache is used (`kv=True/False`)."
            )
        previous = self._session
        self._session = _Session(layout.to(self.device))
        try:
            yield
        finally:
            self._session = previous

    def _place(self, name: str, acts: Tensor) -> tuple[PromptLayout | None, int, int, int]:
        """Return ``(layout, offset, width, call)`` of this call."""
        batch, seq = acts.shape[0], acts.shape[1]
        session = self._session
        if session is not None:
            layout = session.layout
            offset = session.seen.get(name, 0) if layout.kv else 0
            session.seen[name] = offset + seq
            if layout.batch != batch:
                raise ShapeMismatchError(
                    f"The steering hook at {name!r} was told the batch has {layout.batch} rows "
                    f"but the forward pass has {batch}."
                )
            if offset == 0 and seq < layout.width:
                raise ShapeMismatchError(
                    f"The steering hook at {name!r} was told the prompts are {layout.width} "
                    f"tokens wide, but a full pass has only {seq} positions."
                )
            return layout, offset, layout.width, offset
        if self._fixed is not None:
            layout = self._fixed
            if layout.batch != batch or layout.width != seq:
                raise ShapeMismatchError(
                    f"The steering hook at {name!r} was given an attention_mask of shape "
                    f"[{layout.batch}, {layout.width}] but the activations are "
                    f"[{batch}, {seq}, ...]; give the mask of this input."
                )
            return layout, 0, seq, 0
        info = self._sensor.current()
        if info is None:
            return None, 0, seq, 0
        if info.error is not None:
            raise InvalidParameterError(
                f"The steering hook at {name!r} could not read this forward call's input "
                f"({info.error}). Pass tokens with a valid attention_mask (ones in one "
                "contiguous block per row), or a list of strings."
            )
        found: PromptLayout | None = info.layout
        if info.offset == 0:
            if found is not None and (found.batch != batch or found.width != seq):
                found = None  # a call whose positions do not match the model input (embeds)
            return found, 0, seq, 0
        width = info.width if info.width is not None else info.offset
        if found is not None and found.batch != batch:
            found = None
        return found, info.offset, width, info.offset

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
        if self.owner is not None and threading.get_ident() != self.owner:
            raise SteeringConflictError(
                f"The steering hook at {name!r} was attached by another thread; hooks live on "
                "the model's shared HookPoints, so one model cannot be steered from several "
                "threads. Use one model per thread, or a lock around each `with steering(...)`."
            )
        if self.T == 0.0:
            return acts
        layout, offset, width, call = self._place(name, acts)
        if self.device is not None and acts.device != self.device:
            raise InvalidActivationsError(
                f"The steering hook at {name!r} got activations on {acts.device} but its steerer "
                f"is on {self.device}; attach with `steering(model, ...)`, which moves the "
                "steerer once to the hook's device, or pass `device=` to SteeringHook."
            )
        sel = select_positions(self.scope, layout, batch, seq, offset, width, acts.device)
        if sel is None:
            return acts
        if isinstance(sel, tuple):
            start, stop = sel
            flat = acts[:, start:stop].reshape(-1, d)
        else:
            flat = acts[sel]
        if self._provenance is not None and name:
            self._check_hook_provenance(name)
        src = flat.to(self.compute_dtype)
        good = torch.isfinite(src).all(-1)
        if bool(good.all()):
            out = self.steerer._steer(src, self.T)
        else:
            # NaN/inf from upstream: steering such a row cannot help, and an adaptive solve of
            # it would burn its step budget; pass it through and steer the others.
            warnings.warn(
                f"The steering hook at {name!r} got {int((~good).sum())} of {len(good)} row(s) "
                "with NaN or inf activations (an overflow before this hook, e.g. in float16); "
                "they are passed through unsteered. Run the model in bfloat16 or float32.",
                UserWarning,
                stacklevel=2,
            )
            out = src.clone()
            if bool(good.any()):
                out[good] = self.steerer._steer(src[good], self.T)
        if self.record:
            self._record(name, call, sel, offset, batch, src, out, layout)
        out = out.to(acts.dtype)
        if acts.dtype == torch.float16 and not bool(torch.isfinite(out[good]).all()):
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

    def _check_hook_provenance(self, name: str) -> None:
        """Compare the recorded layer and hook site with ``name`` (once per hook point)."""
        assert self._provenance is not None
        model_ref, policy, checked = self._provenance
        model = model_ref()
        if name in checked or model is None:
            return
        checked.add(name)
        diffs = hook_mismatches(self.steerer.provenance_, model, name)  # type: ignore[attr-defined]
        if not diffs:
            return
        listed = "; ".join(f"{k}: fitted on {a!r}, now {b!r}" for k, (a, b) in diffs.items())
        msg = (
            f"The {type(self.steerer).__name__} steering {name!r} was fitted at another hook "
            f"point ({listed}). Refit it on activations from this hook, or pass "
            "on_provenance_mismatch='ignore' if the difference is intended."
        )
        if policy == "raise":
            raise ProvenanceError(msg)
        warnings.warn(msg, UserWarning, stacklevel=3)

    def _record(
        self,
        name: str,
        call: int,
        sel: Selection,
        offset: int,
        batch: int,
        src: Tensor,
        out: Tensor,
        layout: PromptLayout | None,
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
        how = f"strength={self.strength!r}" if self.strength is not None else f"T={self.T!r}"
        parts = [f"steerer={self.steerer!r}", how, f"scope={self.scope.describe()}"]
        if self.record:
            parts.append("record=True")
        return f"SteeringHook({', '.join(parts)})"
