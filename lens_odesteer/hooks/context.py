"""The two ways to steer a model for a while: :func:`steering` (a block) and :func:`generate`.

Both take a :class:`~lens_odesteer.hooks.SteeringPlan`, or the arguments to build one
(``{hook_name: steerer}`` plus ``strength=``/``T=`` and ``scope=``). Hooks are added through
TransformerLens's ``HookPoint.add_hook`` and removed one by one through their own handles, so
the hooks a user attached before (or attaches meanwhile) are never touched and no global
``reset_hooks()`` is ever called.

Token scopes (``scope=``), in every forward call, with and without the KV cache:

* ``"last"`` (default; the ODESteer reference): the last real token of each row, and in
  generation every token generated after it, each steered once. With the KV cache that is the
  last prompt token at prefill and then each decoding call's new token (their steered states
  persist in the cache); :func:`generate` without the cache steers every position from the last
  prompt token onwards on every pass. Both give the same tokens.
* ``"all"``: every real token (prompt and generated); padding is left alone.
* ``"prompt"``: the prompt tokens only; generated tokens are left alone.
* ``"generated"``: the generated tokens only (what a decoding step feeds back).
* a list of ints: those token positions of each row, counted among its real tokens (0 is the
  first token, e.g. BOS); negative values count back from the end of the prompt (-1 is the last
  prompt token). Positions past the prompt are generated tokens.
* a boolean tensor ``[batch, pos]`` (or ``[pos]`` for all rows): True marks a token position
  (same coordinates as the list form); positions past its width are not steered.

Where the prompts are: the hooks read each forward call's input (see
:mod:`lens_odesteer.hooks.sensor`): a ``list[str]`` is padded by TransformerLens on the
tokenizer's side (right, for ``model(list)`` and ``run_with_hooks(list)``) and every scope then
counts each row's real tokens; token input with ``attention_mask=`` likewise; a KV-cached
decoding step of ``model.generate`` continues its prefill. Every other call is a sequence of its
own. :func:`generate` (and ``handle.generate``) tokenizes and left-pads itself and tells the hooks
the exact layout, which also makes generation without the KV cache exact; inside a block, plain
``model.generate(..., use_past_kv_cache=False)`` steers each pass as a new sequence.

Threads: hooks live on the model's shared ``HookPoint`` modules, so a model is steered from one
thread at a time. A second thread's ``steering`` on the same model, or a forward pass from
another thread while a block is open, raises :class:`~lens_odesteer.SteeringConflictError`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from lens_odesteer.hooks.generation import generate_with_hooks
from lens_odesteer.hooks.handle import SteeringHandle
from lens_odesteer.hooks.plan import OnMismatch, SteeringPlan, Strengths, as_plan
from lens_odesteer.hooks.scope import Scope
from lens_odesteer.models.names import HookedModel
from lens_odesteer.steerers.base import AbstractSteerer

__all__ = ["generate", "steering"]

PlanLike = SteeringPlan | Mapping[str, AbstractSteerer]


@contextmanager
def steering(
    model: HookedModel,
    plan: PlanLike,
    strength: Strengths = None,
    *,
    T: Strengths = None,
    scope: Scope | None = None,
    record: bool = False,
    compute_dtype: torch.dtype | None = None,
    attention_mask: Tensor | None = None,
    on_provenance_mismatch: OnMismatch | None = None,
) -> Iterator[SteeringHandle]:
    """Steer ``model`` inside a ``with`` block; see the module docstring for the scopes.

    Main arguments:
        model: a TL 4 ``TransformerBridge`` or a classic ``HookedTransformer``.
        plan: a :class:`~lens_odesteer.hooks.SteeringPlan`, or ``{hook_name: steerer}`` with the
            arguments below (which are then the plan's).
        strength: norm-relative strength (the move as a fraction of the typical activation norm
            at the hook; the same for every method), a number or ``{hook_name: number}``.
        T: instead of ``strength``, each method's native strength.
        scope: which tokens to steer (default ``"last"``).

    Other arguments:
        record, compute_dtype, attention_mask, on_provenance_mismatch: as
            :class:`~lens_odesteer.hooks.SteeringPlan`.

    Yields:
        A :class:`~lens_odesteer.hooks.SteeringHandle`: ``handle.generate(prompts, ...)``
        generates with exact per-row positions; ``handle.records_frame()`` lists the records.

    Raises:
        HookNameError: an unknown hook name (the message suggests close names).
        ShapeMismatchError: a steerer whose width is not the activation width at its hook.
        SteeringConflictError: the hook point is already steered by an enclosing block or by
            another thread.
        InvalidParameterError: an unknown scope, a position out of range, a missing strength,
            an unfitted steerer, or a gated hook point.

    Example:
        >>> import torch, lens_odesteer as lo
        >>> model = lo.tiny_bridge()
        >>> pos, neg = torch.randn(32, 64) + 0.5, torch.randn(32, 64) - 0.5
        >>> ode = lo.ODESteer(lo.sketch_barrier(n_components=256)).fit(pos, neg)
        >>> with lo.steering(model, {"blocks.1.hook_resid_post": ode}, strength=0.1) as handle:
        ...     texts = handle.generate(["Hi", "Hello there"], max_new_tokens=4)
        >>> len(texts), model.hook_dict["blocks.1.hook_resid_post"].fwd_hooks
        (2, [])
    """
    built = as_plan(
        plan,
        strength,
        T=T,
        scope=scope,
        record=record,
        compute_dtype=compute_dtype,
        attention_mask=attention_mask,
        on_provenance_mismatch=on_provenance_mismatch,
    )
    assert built is not None
    handle = SteeringHandle(model, built.hooks(model), built)
    handle._attach()
    try:
        yield handle
    finally:
        handle.remove()


def generate(
    model: HookedModel,
    prompts: str | Sequence[str],
    plan: PlanLike | None = None,
    strength: Strengths = None,
    *,
    T: Strengths = None,
    scope: Scope | None = None,
    max_new_tokens: int = 32,
    do_sample: bool = False,
    use_past_kv_cache: bool = True,
    chat: bool = False,
    prepend_bos: bool | None = None,
    stop_at_eos: bool = True,
    return_tokens: bool = False,
    compute_dtype: torch.dtype | None = None,
    **generate_kwargs: Any,
) -> list[str] | tuple[list[str], list[Tensor]]:
    """Generate completions for ``prompts`` while steering (or not), with exact positions.

    Main arguments:
        model: a TL 4 ``TransformerBridge`` or a classic ``HookedTransformer``.
        prompts: one prompt or a list of prompts (of any lengths).
        plan: a :class:`~lens_odesteer.hooks.SteeringPlan`, or ``{hook_name: steerer}`` with
            ``strength``/``T``/``scope``; None generates unsteered with the same tokenization
            (a baseline).
        strength: norm-relative strength, a number or ``{hook_name: number}``.
        T: instead of ``strength``, each method's native strength.
        scope: which tokens to steer (default ``"last"``). Here every scope is exact per row:
            ``"last"`` is each row's last prompt token and then every new token; list positions
            and mask columns count the row's real tokens.
        max_new_tokens: tokens to generate per prompt.

    Other arguments:
        do_sample: sample (seed with ``torch.manual_seed`` first) or decode greedily.
        use_past_kv_cache: use the KV cache (faster; the same greedy tokens either way).
        chat: wrap each prompt as a user message in the tokenizer's chat template (with the
            generation prompt) and do not prepend another BOS.
        prepend_bos: passed to ``model.to_tokens``; None uses the model default (and False for
            ``chat=True``).
        stop_at_eos: stop a row at its first EOS token; the completion ends there.
        return_tokens: also return each completion's token ids.
        compute_dtype: dtype of the steering maths (default float32 or the steerer's).
        **generate_kwargs: passed to ``model.generate`` (``temperature``, ``top_k``, ``top_p``,
            ``freq_penalty``, ``eos_token_id``, ...).

    Returns:
        The completions only (prompt not included, special tokens skipped), one string per
        prompt, and with ``return_tokens=True`` also a list of 1-D CPU token tensors (up to and
        including the first EOS when ``stop_at_eos``).

    Note:
        A ``TransformerBridge`` generates the whole batch in one call with a left-padded
        attention mask. Other models (a classic ``HookedTransformer``) get one prompt per call:
        TL 2.x's batched ``generate`` attends to the pads of unequal-length prompts, so batched
        rows would differ from the same prompts generated alone.

    Example:
        >>> import torch, lens_odesteer as lo
        >>> model = lo.tiny_bridge()
        >>> caa = lo.CAA().fit(torch.randn(8, 64) + 1, torch.randn(8, 64))
        >>> out = lo.generate(model, ["Hi", "Hello"], {"blocks.1.hook_resid_post": caa},
        ...                   strength=0.2, max_new_tokens=3)
        >>> len(out), all(isinstance(text, str) for text in out)
        (2, True)
    """
    options: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "do_sample": do_sample,
        "use_past_kv_cache": use_past_kv_cache,
        "chat": chat,
        "prepend_bos": prepend_bos,
        "stop_at_eos": stop_at_eos,
        "return_tokens": return_tokens,
        **generate_kwargs,
    }
    built = as_plan(plan, strength, T=T, scope=scope, compute_dtype=compute_dtype)
    if built is None:
        return generate_with_hooks(model, prompts, [], **options)
    with steering(model, built) as handle:
        return generate_with_hooks(model, prompts, list(handle.hooks.values()), **options)
