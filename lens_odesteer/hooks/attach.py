"""Attach steering hooks to a model: :func:`steering` (a context manager), :func:`attach`.

Everything is validated before anything is attached: hook names (with suggestions for typos),
steerer widths against the activation width at each hook, strengths and the token scope. Each
steerer is then moved once, as a copy, to its hook's device and compute dtype. Hooks are added
through TransformerLens's ``HookPoint.add_hook`` and removed one by one through their own
handles, so the hooks a user attached before (or attaches meanwhile) are never touched and no
global ``reset_hooks()`` is ever called.

Token scopes (``scope=``), in every forward call, with and without the KV cache:

* ``"last"`` (default; the ODESteer reference): the last prompt token of each row and every
  token generated after it, each steered once. With the KV cache that is position -1 of the
  prefill and then each decoding call's single new token (their steered states persist in the
  cache); without it, every position from ``prompt_len - 1`` onwards, on every pass. Both give
  the same tokens. In a plain forward pass it is each row's last token.
* ``"all"``: every real token (prompt and generated); padding is left alone when known.
* ``"prompt"``: the prompt tokens only (prefill); generated tokens are left alone.
* ``"generated"``: the generated tokens only (what a decoding step feeds back).
* a list of ints: those token positions of each row, counted among its real tokens (0 is the
  first token, e.g. BOS); negative values count back from the end of the prompt (-1 is the last
  prompt token). Positions past the prompt are generated tokens.
* a boolean tensor ``[batch, pos]`` (or ``[pos]`` for all rows): True marks a token position
  (same coordinates as the list form); positions past its width are not steered.

Where the prompts are: :func:`~lens_odesteer.hooks.generate` (or ``handle.generate``) tokenizes
with left padding itself and tells the hooks each row's padding and prompt length, so all scopes
are exact per row. Inside a plain ``with steering(...)`` block the hooks infer positions from
shapes (see :class:`~lens_odesteer.hooks.SteeringHook`): the first full pass is the prompt; its
last column is "last". That is right for ``model.generate`` on a string, on equal-length prompts
and on TL's left-padded ``list[str]`` (where ``"prompt"``/``"all"`` then also touch the masked
pads, which is harmless). ``model(list_of_str)`` and ``run_with_hooks(list_of_str)`` pad on the
RIGHT, so there the last column is a pad for the shorter rows: pass ``lengths=`` (real tokens per
row) or ``attention_mask=`` to steer each row's last real token, and list/mask positions then
count real tokens.

Hooks live on the model's shared ``HookPoint`` modules, so steering is not thread-safe: use one
model per worker thread, or a lock around the whole ``with`` block.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from lens_odesteer._validation import check_finite_float
from lens_odesteer.errors import InvalidParameterError, ShapeMismatchError
from lens_odesteer.hooks import _model
from lens_odesteer.hooks.handle import SteeringHandle, layout_from
from lens_odesteer.hooks.hook import SteeringHook
from lens_odesteer.hooks.provenance import OnMismatch, check_provenance
from lens_odesteer.hooks.scope import Scope, parse_scope
from lens_odesteer.models.names import HookedModel, validate_hook_name
from lens_odesteer.steerers.base import AbstractSteerer

__all__ = ["SteererSpec", "attach", "make_hooks", "steering"]

SteererSpec = AbstractSteerer | tuple[AbstractSteerer, float]
"""A fitted steerer, or ``(steerer, T)`` to give that hook its own strength."""


def _entries(
    steerers: object, T: float | Mapping[str, float] | None
) -> list[tuple[str, AbstractSteerer, float]]:
    if not isinstance(steerers, Mapping) or len(steerers) == 0:
        raise InvalidParameterError(
            "`steerers` must be a non-empty dict {hook_name: steerer} (or {hook_name: "
            f"(steerer, T)}}); got {steerers!r}."
        )
    if isinstance(T, Mapping):
        unknown = [k for k in T if k not in steerers]
        if unknown:
            raise InvalidParameterError(
                f"`T` names hook(s) {unknown} that have no steerer; its keys must be among "
                f"{list(steerers)}."
            )
    entries = []
    for name, spec in steerers.items():
        strength: object = None
        if isinstance(spec, tuple):
            if len(spec) != 2:
                raise InvalidParameterError(
                    f"The entry for {name!r} must be a steerer or a (steerer, T) pair; got a "
                    f"tuple of {len(spec)}."
                )
            spec, strength = spec
        if not isinstance(spec, AbstractSteerer):
            raise InvalidParameterError(
                f"The entry for {name!r} must be a fitted lens_odesteer steerer (ODESteer, CAA, "
                f"...); got {type(spec).__name__}."
            )
        spec._check_is_fitted()
        if strength is None:
            strength = T.get(name) if isinstance(T, Mapping) else T
        if strength is None:
            raise InvalidParameterError(
                f"No strength for {name!r}: pass `T=` (a number or a dict per hook) or the "
                "entry as (steerer, T)."
            )
        entries.append((name, spec, check_finite_float(strength, f"T[{name!r}]", minimum=0.0)))
    return entries


def make_hooks(
    model: HookedModel,
    steerers: Mapping[str, SteererSpec],
    T: float | Mapping[str, float] | None = None,
    *,
    scope: Scope = "last",
    record: bool = False,
    compute_dtype: torch.dtype | None = None,
    lengths: Sequence[int] | None = None,
    attention_mask: Tensor | None = None,
    on_provenance_mismatch: OnMismatch = "warn",
) -> list[tuple[str, SteeringHook]]:
    """Validate and build ``(hook_name, SteeringHook)`` pairs for ``model`` without attaching.

    The pairs fit ``model.run_with_hooks(tokens, fwd_hooks=pairs)`` and
    ``model.hooks(fwd_hooks=pairs)``. Arguments as :func:`steering`.

    Example:
        >>> import torch, lens_odesteer as lo
        >>> from lens_odesteer.models import tiny_bridge
        >>> model = tiny_bridge()
        >>> caa = lo.CAA().fit(torch.randn(8, 64) + 1, torch.randn(8, 64))
        >>> pairs = make_hooks(model, {"blocks.1.hook_resid_post": caa}, T=2.0)
        >>> logits = model.run_with_hooks("Hello", fwd_hooks=pairs)
    """
    entries = _entries(steerers, T)
    parsed = parse_scope(scope, _model.n_ctx(model))
    layout = layout_from(lengths, attention_mask)
    if compute_dtype is not None and (
        not isinstance(compute_dtype, torch.dtype) or not compute_dtype.is_floating_point
    ):
        raise InvalidParameterError(
            f"`compute_dtype` must be a floating torch.dtype; got {compute_dtype!r}."
        )
    points = _model.hook_dict(model)
    seen: dict[int, str] = {}
    for name, steerer, _ in entries:
        validate_hook_name(model, name)
        point = points[name]
        if id(point) in seen:
            raise InvalidParameterError(
                f"{name!r} and {seen[id(point)]!r} are the same hook point (an alias and its "
                "canonical name); steer it once."
            )
        seen[id(point)] = name
        width = _model.expected_width(model, name, point)
        if width is not None and steerer.d_model_ != width:
            raise ShapeMismatchError(
                f"The steerer for {name!r} was fitted on d_model={steerer.d_model_} but the "
                f"activations there have width {width}. Fit it on activations from this hook of "
                "this model."
            )
        _model.warn_resid_mid(model, name, point)
        check_provenance(steerer, model, name, on_provenance_mismatch)
    records: list[dict[str, Any]] = []
    pairs = []
    for name, steerer, strength in entries:
        hook = SteeringHook(
            steerer,
            strength,
            scope=parsed,
            device=_model.hook_device(model, name),
            compute_dtype=compute_dtype,
            record=record,
        )
        hook.records = records  # one list for the whole plan, in call order
        if layout is not None:
            hook.set_layout(layout)
        _model.check_fireable(model, points[name], name, hook)
        pairs.append((name, hook))
    return pairs


def attach(
    model: HookedModel,
    steerers: Mapping[str, SteererSpec],
    T: float | Mapping[str, float] | None = None,
    *,
    scope: Scope = "last",
    record: bool = False,
    compute_dtype: torch.dtype | None = None,
    lengths: Sequence[int] | None = None,
    attention_mask: Tensor | None = None,
    on_provenance_mismatch: OnMismatch = "warn",
) -> SteeringHandle:
    """Attach steering hooks until ``handle.remove()``; arguments as :func:`steering`.

    Prefer :func:`steering`, which removes the hooks however its block ends. The handle is also
    a context manager (``with attach(...) as handle:``).

    Example:
        >>> import torch, lens_odesteer as lo
        >>> from lens_odesteer.models import tiny_bridge
        >>> model = tiny_bridge()
        >>> caa = lo.CAA().fit(torch.randn(8, 64) + 1, torch.randn(8, 64))
        >>> handle = attach(model, {"blocks.1.hook_resid_post": caa}, T=2.0)
        >>> len(model.hook_dict["blocks.1.hook_resid_post"].fwd_hooks)
        1
        >>> handle.remove()
        >>> len(model.hook_dict["blocks.1.hook_resid_post"].fwd_hooks)
        0
    """
    pairs = make_hooks(
        model,
        steerers,
        T,
        scope=scope,
        record=record,
        compute_dtype=compute_dtype,
        lengths=lengths,
        attention_mask=attention_mask,
        on_provenance_mismatch=on_provenance_mismatch,
    )
    handle = SteeringHandle(model, pairs)
    handle._attach()
    return handle


@contextmanager
def steering(
    model: HookedModel,
    steerers: Mapping[str, SteererSpec],
    T: float | Mapping[str, float] | None = None,
    *,
    scope: Scope = "last",
    record: bool = False,
    compute_dtype: torch.dtype | None = None,
    lengths: Sequence[int] | None = None,
    attention_mask: Tensor | None = None,
    on_provenance_mismatch: OnMismatch = "warn",
) -> Iterator[SteeringHandle]:
    """Steer ``model`` inside a ``with`` block; see the module docstring for the scopes.

    Main arguments:
        model: a TL 4 ``TransformerBridge`` or a classic ``HookedTransformer``.
        steerers: ``{hook_name: steerer}`` (or ``{hook_name: (steerer, T)}``), one entry per
            hook point; several layers at once are fine. Names may be classic
            (``blocks.6.hook_resid_post``) or canonical bridge names (``blocks.6.hook_out``).
        T: strength for every hook, or a dict ``{hook_name: T}``; a ``(steerer, T)`` entry
            overrides it. ``T = 0`` leaves the activations bitwise unchanged.
        scope: which tokens to steer: ``"last"`` (default), ``"all"``, ``"prompt"``,
            ``"generated"``, a list of token positions or a boolean mask ``[batch, pos]``.

    Other arguments:
        record: keep the barrier before/after steering per call (``handle.records``,
            ``handle.records_frame()``).
        compute_dtype: dtype of the steering maths (default: the steerer's, at least float32;
            activations of fp16/bf16 models are cast to it and the result cast back).
        lengths: real tokens per row for plain forward passes on right-padded input.
        attention_mask: ``[batch, pos]`` 0/1 mask of the input of plain forward passes.
        on_provenance_mismatch: what to do when a loaded steerer's recorded provenance (model
            name, architecture, sizes, weight processing, layer) differs from this model and
            hook: ``"warn"`` (default), ``"raise"`` (:class:`~lens_odesteer.ProvenanceError`)
            or ``"ignore"``.

    Yields:
        A :class:`SteeringHandle`: ``handle.generate(prompts, ...)`` generates with exact
        per-row positions, ``handle.records`` holds the records, ``handle.reset()`` starts a new
        sequence.

    Raises:
        HookNameError: an unknown hook name (the message suggests close names).
        ShapeMismatchError: a steerer whose width is not the activation width at its hook.
        InvalidParameterError: an unknown scope, a position out of range, a missing or
            negative ``T``, an unfitted steerer, or a gated hook point.

    Example:
        >>> import torch, lens_odesteer as lo
        >>> from lens_odesteer.models import tiny_bridge
        >>> model = tiny_bridge()
        >>> pos, neg = torch.randn(32, 64) + 0.5, torch.randn(32, 64) - 0.5
        >>> ode = lo.ODESteer(n_components=256).fit(pos, neg)
        >>> with steering(model, {"blocks.1.hook_resid_post": ode}, T=3.0) as handle:
        ...     texts = handle.generate(["Hi", "Hello there"], max_new_tokens=4)
        >>> len(texts), model.hook_dict["blocks.1.hook_resid_post"].fwd_hooks
        (2, [])
    """
    handle = attach(
        model,
        steerers,
        T,
        scope=scope,
        record=record,
        compute_dtype=compute_dtype,
        lengths=lengths,
        attention_mask=attention_mask,
        on_provenance_mismatch=on_provenance_mismatch,
    )
    try:
        yield handle
    finally:
        handle.remove()
