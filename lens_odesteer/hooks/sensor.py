"""What the current forward call looks like: padding per row and the KV-cache offset.

A TransformerLens hook function only sees the activation at its hook point. Whether the rows
are padded, and whether this call continues a KV-cached sequence, is in the *input* of the
model's forward call: a ``list[str]`` (padded by TransformerLens on the tokenizer's side), an
``attention_mask=`` keyword, a HuggingFace ``past_key_values`` cache (TL 4 bridge) or a
``past_kv_cache`` (classic ``HookedTransformer``). :class:`InputSensor` reads those explicit
inputs on every top-level forward call and publishes a :class:`CallInfo` that the steering
hooks of that model read; nothing is inferred from activation values or from the lengths of
earlier calls.

The sensor wraps the model's ``forward`` as an instance attribute (so it also sees the calls
that ``generate`` and ``run_with_hooks`` make through ``self.forward``), is shared by all the
steering hooks of a model, and is removed when the last of them is released.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lens_odesteer.hooks.scope import PromptLayout

__all__ = ["CallInfo", "InputSensor", "acquire_sensor"]

_ATTR = "_lens_odesteer_sensor"


@dataclass(frozen=True)
class CallInfo:
    """The layout of one top-level forward call.

    Attributes:
        layout: padding and prompt lengths of the rows (None: no padding known).
        offset: column of the call's first position (> 0 for a KV-cached decoding call).
        width: the prompt width in columns (positions at or past it are generated tokens).
        error: why the input could not be read (a hook that must steer this call raises it).
    """

    layout: PromptLayout | None
    offset: int
    width: int | None
    error: str | None = None


class _State(threading.local):
    def __init__(self) -> None:
        self.stack: list[CallInfo | None] = []
        self.sequence: tuple[int, PromptLayout | None] | None = None  # KV prefill (width, layout)


class _SensedForward:
    """The model's ``forward`` with the sensor in front (an instance attribute of the model)."""

    def __init__(self, sensor: InputSensor, original: Callable[..., Any]) -> None:
        self.sensor = sensor
        self.original = original
        self.__wrapped__ = original
        self.__doc__ = getattr(original, "__doc__", None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.sensor._call(self.original, args, kwargs)

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        # ``copy.deepcopy(model)`` registers the new model in ``memo`` before copying its
        # attributes: give the copy its own plain forward, never a link to this model.
        twin = memo.get(id(self.sensor.model))
        if twin is None:
            raise TypeError("a sensed forward can only be deep-copied with its model")
        return type(twin).forward.__get__(twin)


class InputSensor:
    """Reads each top-level forward call's input; see the module docstring."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.users = 0
        self._state = _State()
        self._original: Callable[..., Any] | None = None

    # -- installation -------------------------------------------------------------------------
    def _install(self) -> None:
        model = self.model
        original = model.forward  # the bound method (or a user's own instance attribute)
        self._original = original
        object.__setattr__(model, "forward", _SensedForward(self, original))
        object.__setattr__(model, _ATTR, self)

    def _uninstall(self) -> None:
        model = self.model
        current = model.__dict__.get("forward")
        if isinstance(current, _SensedForward) and current.sensor is self:
            original = self._original
            if original is not None and getattr(original, "__self__", None) is model:
                del model.__dict__["forward"]  # back to the class's method
            else:
                object.__setattr__(model, "forward", original)
        if model.__dict__.get(_ATTR) is self:
            del model.__dict__[_ATTR]
        self._original = None

    def __deepcopy__(self, memo: dict[int, Any]) -> None:
        # A deep copy of the model gets no sensor (its own is installed on first use).
        return None

    def _call(self, original: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        state = self._state
        try:
            info: CallInfo | None = self._read(args, kwargs)
        except Exception as exc:  # an input we cannot read: only a hook that steers it cares
            info = CallInfo(None, 0, None, error=f"{type(exc).__name__}: {exc}")
        state.stack.append(info)
        try:
            return original(*args, **kwargs)
        finally:
            state.stack.pop()

    def release(self) -> None:
        """Drop one user; the last one removes the sensor from the model."""
        with _LOCK:
            self.users -= 1
            if self.users <= 0:
                self.users = 0
                self._uninstall()

    # -- what the hooks read ------------------------------------------------------------------
    def current(self) -> CallInfo | None:
        """The innermost running top-level call of this thread (None outside a call)."""
        stack = self._state.stack
        return stack[-1] if stack else None

    # -- reading inputs -----------------------------------------------------------------------
    def _read(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> CallInfo | None:
        inp = args[0] if args else kwargs.get("input")
        if inp is None:
            inp = kwargs.get("tokens")
        mask = kwargs.get("attention_mask")
        offset = _cache_length(kwargs)
        state = self._state
        if isinstance(inp, (list, tuple)) and inp and all(isinstance(s, str) for s in inp):
            layout = self._string_layout(list(inp), kwargs)
            seq = layout.width if layout is not None else None
        elif isinstance(inp, Tensor) and inp.ndim >= 2:
            seq = int(inp.shape[1])
            layout = None
            if isinstance(mask, Tensor) and mask.ndim == 2 and mask.shape[0] == inp.shape[0]:
                prompt_cols = mask.shape[1] - (offset or 0)
                if offset and state.sequence is not None:
                    return CallInfo(state.sequence[1], offset, state.sequence[0])
                if prompt_cols == seq and not bool(mask.bool().all()):
                    layout = PromptLayout.from_attention_mask(mask[:, -seq:])
        else:
            seq = None
            layout = None
        if offset:  # a KV-cached decoding call: continue the sequence its prefill started
            if state.sequence is not None:
                width, seq_layout = state.sequence
                return CallInfo(seq_layout, offset, width)
            return CallInfo(None, offset, offset)
        if not state.stack:  # a top-level call starts a new sequence, cached or not
            cached = _starts_cached_sequence(kwargs)
            state.sequence = (seq, layout) if cached and seq is not None else None
        return CallInfo(layout, 0, seq)

    def _string_layout(self, texts: list[str], kwargs: dict[str, Any]) -> PromptLayout | None:
        if len(texts) < 2:
            return None
        model = self.model
        prepend = kwargs.get("prepend_bos")
        extra = {} if not isinstance(prepend, bool) else {"prepend_bos": prepend}
        lengths = [
            int(model.to_tokens(t, move_to_device=False, **extra).shape[-1]) for t in texts
        ]
        if len(set(lengths)) == 1:
            return None
        side = kwargs.get("padding_side")
        if side not in ("left", "right"):
            side = getattr(getattr(model, "tokenizer", None), "padding_side", "right")
        width = max(lengths)
        cols = torch.arange(width)[None]
        lens = torch.tensor(lengths)[:, None]
        mask = cols >= width - lens if side == "left" else cols < lens
        return PromptLayout.from_attention_mask(mask)


def _cache_length(kwargs: dict[str, Any]) -> int:
    """Tokens already in the KV cache passed to this call (0 when none)."""
    cache = kwargs.get("past_key_values")
    if cache is not None:
        getter = getattr(cache, "get_seq_length", None)
        if callable(getter):
            return int(getter())
    tl_cache = kwargs.get("past_kv_cache")
    if tl_cache is not None:
        entries: Sequence[Any] = getattr(tl_cache, "entries", ())
        if entries:
            keys = getattr(entries[0], "past_keys", None)
            if isinstance(keys, Tensor) and keys.ndim >= 2:
                return int(keys.shape[1])
    return 0


def _starts_cached_sequence(kwargs: dict[str, Any]) -> bool:
    """True for the prefill of a cached generation (a cache is being filled from empty)."""
    return (
        kwargs.get("use_cache") is True
        or kwargs.get("past_kv_cache") is not None
        or kwargs.get("past_key_values") is not None
    )


_LOCK = threading.Lock()


def acquire_sensor(model: Any) -> InputSensor:
    """Return the model's sensor (installing it on first use) and count one more user."""
    with _LOCK:
        sensor = model.__dict__.get(_ATTR)
        if not isinstance(sensor, InputSensor):
            sensor = InputSensor(model)
            sensor._install()
        sensor.users += 1
        return sensor
