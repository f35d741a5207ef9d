"""Log-likelihoods under steering: answer log-probabilities and next-token distributions.

Texts are tokenized one by one exactly as ``model.to_tokens(text)`` does, sorted by length,
left-padded and run with an attention mask. Steering uses the same
:class:`~lens_odesteer.hooks.SteeringPlan` hooks as generation, with a boolean token-position
mask per row: every position from the last prompt token through the end of the text (the reference's
multiple-choice semantics), so the prompt before its last token is never edited and the answer
is read under the steered model.

Example:
    >>> from lens_odesteer.models import tiny_bridge
    >>> model = tiny_bridge()
    >>> lp = answer_logprobs(model, ["Q: hi\\nA:"], [" yes"])
    >>> lp.shape
    (1,)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lens_odesteer.activations import answer_spans
from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.hooks import SteeringPlan, _model
from lens_odesteer.hooks._model import model_device
from lens_odesteer.models.names import (
    HookedModel,
    hook_layer,
    is_bridge,
    model_n_layers,
    resid_post,
)
from lens_odesteer.models.tokens import pad_token_id, pad_tokens, tokenize

__all__ = ["PREFIX_CACHE", "answer_logprobs", "next_token_logprobs"]


def _tokens(model: HookedModel, text: str) -> Tensor:
    return tokenize(model, text, allow_empty=True)


def _batches(
    model: HookedModel, tokens: list[Tensor], steer_from: list[int], batch_size: int
) -> Iterator[tuple[list[int], Tensor, Tensor, Tensor]]:
    """Yield ``(rows, ids, attention_mask, scope_mask)`` per left-padded batch."""
    order = sorted(range(len(tokens)), key=lambda i: len(tokens[i]))
    pad_id = pad_token_id(model)
    for b in range(0, len(order), batch_size):
        rows = order[b : b + batch_size]
        padded = pad_tokens([tokens[i] for i in rows], pad_id, side="left")
        scope = torch.zeros(padded.ids.shape, dtype=torch.bool)
        for r, i in enumerate(rows):
            scope[r, steer_from[i] : len(tokens[i])] = True  # token positions count real tokens
        yield rows, padded.ids, padded.attention_mask, scope


class _PrefixCache:
    """Unsteered residuals at a ``resid_post`` hook, per batch, reused across steering plans.

    Everything up to the steered hook is the same for every method and strength, so the
    residual there is computed once per batch of texts; each plan then runs the same
    :class:`~lens_odesteer.hooks.SteeringHook` on it and only the blocks after it
    (``start_at_layer``). The logits equal a full hooked pass up to float rounding (about 4e-5
    on SmolLM2).
    """

    def __init__(self, max_bytes: int = 1 << 30) -> None:
        self.max_bytes = max_bytes
        self.store: dict[tuple[Any, ...], Tensor] = {}
        self.nbytes = 0
        self.hits = 0

    def get(self, model: HookedModel, hook: str, ids: Tensor, att: Tensor) -> Tensor:
        key = (id(model), hook, ids.shape, hash(tuple(ids.flatten().tolist())))
        found = self.store.get(key)
        if found is not None and found.shape[:2] == ids.shape:
            self.hits += 1
            return found
        captured: dict[str, Tensor] = {}

        def capture(acts: Tensor, hook: Any) -> None:
            captured["x"] = acts.detach().clone()

        layer = hook_layer(hook)
        assert layer is not None
        device = model_device(model)
        with model.hooks(fwd_hooks=[(hook, capture)]):
            model(
                ids.to(device),
                attention_mask=att.to(device),
                stop_at_layer=layer + 1,
                return_type=None,
            )
        resid = captured["x"]
        size = resid.numel() * resid.element_size()
        if self.nbytes + size > self.max_bytes:
            self.store.clear()
            self.nbytes = 0
        self.store[key] = resid
        self.nbytes += size
        return resid

    def clear(self) -> None:
        """Drop every cached residual."""
        self.store.clear()
        self.nbytes = 0


#: The cache used by :func:`answer_logprobs` and :func:`next_token_logprobs`.
PREFIX_CACHE = _PrefixCache()


def _splittable(model: HookedModel, hook: str) -> bool:
    layer = hook_layer(hook)
    return (
        is_bridge(model)
        and layer is not None
        and hook == resid_post(layer)
        and layer + 1 < model_n_layers(model)
    )


def _forward(
    model: HookedModel, ids: Tensor, att: Tensor, scope: Tensor, plan: SteeringPlan | None
) -> Tensor:
    device = model_device(model)
    ids = ids.masked_fill(att == 0, pad_token_id(model))
    if plan is None or not plan.active:
        logits = model(ids.to(device), attention_mask=att.to(device), return_type="logits")
        assert isinstance(logits, Tensor)
        return logits
    pairs = plan.replace(scope=scope, attention_mask=att).hooks(model)
    if len(pairs) == 1 and _splittable(model, pairs[0][0]):
        name, steering_hook = pairs[0]
        resid = PREFIX_CACHE.get(model, name, ids, att)
        steered = steering_hook(resid, hook=_model.hook_dict(model)[name])
        layer = hook_layer(name)
        assert layer is not None
        logits = model(steered, start_at_layer=layer + 1, attention_mask=att.to(device))
    else:
        with model.hooks(fwd_hooks=pairs):
            logits = model(ids.to(device), attention_mask=att.to(device), return_type="logits")
    assert isinstance(logits, Tensor)
    return logits


def answer_logprobs(
    model: HookedModel,
    prompts: Sequence[str],
    answers: Sequence[str],
    plan: SteeringPlan | None = None,
    *,
    batch_size: int = 16,
) -> np.ndarray:
    """Return ``log p(answer | prompt)`` (summed over the answer's tokens) per row.

    The strings are joined as given (put the separating space in the answer, e.g. ``" Paris"``).
    Under ``plan`` every position from the prompt's last token through the answer is steered.

    Args:
        model: a TransformerLens model.
        prompts, answers: one prompt and one answer per row.
        plan: the steering plan (None: unsteered).
        batch_size: rows per forward pass.

    Returns:
        float64 array ``[n]``.
    """
    if len(prompts) != len(answers):
        raise InvalidParameterError(
            f"`prompts` has {len(prompts)} rows but `answers` has {len(answers)}."
        )
    texts, spans = answer_spans(model, prompts, answers)
    tokens = [_tokens(model, t) for t in texts]
    starts = [s for s, _ in spans]
    out = np.zeros(len(texts), dtype=np.float64)
    with torch.inference_mode():
        for rows, ids, att, scope in _batches(model, tokens, [s - 1 for s in starts], batch_size):
            logits = _forward(model, ids, att, scope, plan)
            logp = torch.log_softmax(logits.float(), dim=-1)
            width = ids.shape[1]
            for r, i in enumerate(rows):
                n = len(tokens[i])
                pad = width - n
                start, end = spans[i]
                cols = torch.arange(pad + start - 1, pad + end - 1)
                target = ids[r, pad + start : pad + end].to(logp.device)
                out[i] = float(logp[r, cols.to(logp.device), target].sum())
    return out


def next_token_logprobs(
    model: HookedModel,
    prompts: Sequence[str],
    plan: SteeringPlan | None = None,
    *,
    steer_from: Sequence[int] | None = None,
    token_ids: Sequence[int] | None = None,
    batch_size: int = 16,
) -> Tensor:
    """Return log-probabilities of the token after each prompt ``[n, vocab]`` (float32, CPU).

    Args:
        model: a TransformerLens model.
        prompts: the prompts.
        plan: the steering plan (None: unsteered).
        steer_from: per prompt, the first token position to steer (default: the last token,
            i.e. only the position whose prediction is read).
        token_ids: keep only these vocabulary columns (``[n, len(token_ids)]``; still
            normalised over the whole vocabulary).
        batch_size: prompts per forward pass.
    """
    tokens = [_tokens(model, p) for p in prompts]
    if steer_from is None:
        steer_from = [len(t) - 1 for t in tokens]
    if len(steer_from) != len(tokens):
        raise InvalidParameterError(
            f"`steer_from` has {len(steer_from)} entries but there are {len(tokens)} prompts."
        )
    for i, (start, toks) in enumerate(zip(steer_from, tokens, strict=True)):
        if not 0 <= start < len(toks):
            raise InvalidParameterError(
                f"`steer_from[{i}]` = {start} is outside prompt {i} ({len(toks)} tokens)."
            )
    keep = None if token_ids is None else torch.tensor(list(token_ids), dtype=torch.long)
    results: list[Tensor | None] = [None] * len(tokens)
    with torch.inference_mode():
        for rows, ids, att, scope in _batches(model, tokens, list(steer_from), batch_size):
            logits = _forward(model, ids, att, scope, plan)
            logp = torch.log_softmax(logits[:, -1].float(), dim=-1).cpu()
            if keep is not None:
                logp = logp[:, keep]
            for r, i in enumerate(rows):
                results[i] = logp[r]
    return torch.stack([r for r in results if r is not None])
