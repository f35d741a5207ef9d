"""Log-likelihoods under steering: answer log-probabilities and next-token distributions.

Texts are tokenized one by one exactly as ``model.to_tokens(text)`` does, sorted by length,
left-padded and run with an attention mask. Steering uses the same
:class:`~lens_odesteer.hooks.SteeringPlan` hooks as generation, with a boolean token-position
mask per row: every position from the last prompt token through the end of the text (the reference's
multiple-choice semantics), so the prompt before its last token is never edited and the answer
is read under the steered model.

Only the steered part differs between methods, strengths and answers: the prompt before the
first steered position (the *prefix*) is the same for all of them, and so is every layer up to
the steered hook. On a TL 4 ``TransformerBridge`` steered at one ``blocks.L.hook_resid_post``,
scoring therefore runs in three stages, each computed once and reused across calls (and so
across steering plans): the prefix of each distinct prompt through all layers (its per-layer
keys and values, a KV cache), the steered suffix (the last prompt token and the answer) through
blocks ``0..L`` on top of that cache (the unsteered residual at the hook), and, per plan, the
steering of that residual and blocks ``L+1..`` over the suffixes only, batched across answers and
prompts. Models, hooks and plans this does not fit (a classic ``HookedTransformer``, several
hook points, other hook sites, architectures whose decoder stack is not a ``layers`` list) use
one full hooked pass per batch instead. The two agree to float rounding (see
``tests/evaluation/test_split_scoring.py``).

Unsteered scoring (``plan=None``) takes full passes, unless :func:`unsteered_split` names the hook
that the steered calls will use: then it runs the same three stages with the identity in place of
the steering, so the unsteered baseline shares (and fills) the cache of the steered methods and is
computed along the same arithmetic path as they are. The evaluation runner does this.

Example:
    >>> from lens_odesteer.models import tiny_bridge
    >>> model = tiny_bridge()
    >>> lp = answer_logprobs(model, ["Q: hi\\nA:"], [" yes"])
    >>> lp.shape
    (1,)
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

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

__all__ = [
    "PREFIX_CACHE",
    "SPLIT_CACHE",
    "answer_logprobs",
    "next_token_logprobs",
    "unsteered_split",
]


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


# -- split scoring: a cached prefix, the unsteered suffix up to the hook, steered blocks after it

#: Use split scoring where it applies. False forces one full hooked pass per batch: the reference
#: path that the tests and ``benchmarks/bench_eval.py`` compare against.
_SPLIT_SCORING = True


class _SplitCache:
    """What split scoring reuses across calls, for one model and one steered layer ``L``.

    * per distinct prefix (token ids before the first steered position): its keys and values
      in blocks ``L+1..`` as one tensor ``[n_after, 2, kv_heads, p, d_head]`` (None: empty);
    * per (prefix, suffix): the unsteered residual at ``blocks.L.hook_resid_post`` over the
      suffix ``[s, d_model]``.

    The cache follows one model at a time: another model, another layer, or parameters that
    were changed in place (their version counter moved) empty it. At ``max_bytes`` it is emptied
    and refilled.
    """

    def __init__(self, max_bytes: int = 1 << 30) -> None:
        self.max_bytes = max_bytes
        self.prefixes: dict[tuple[int, ...], Tensor | None] = {}
        self.suffixes: dict[tuple[tuple[int, ...], tuple[int, ...]], Tensor] = {}
        self.nbytes = 0
        self.hits = 0
        self._owner: tuple[Any, ...] | None = None
        self._model: weakref.ref[Any] | None = None

    def bind(self, model: HookedModel, layer: int) -> None:
        """Empty the cache unless it holds states of this model, layer and parameters."""
        param = next(iter(model.parameters()), None)
        stamp = None if param is None else (param.data_ptr(), param.dtype, param._version)
        owner = (id(model), layer, stamp)
        if owner != self._owner or self._model is None or self._model() is not model:
            self.clear()
            self._owner = owner
            self._model = weakref.ref(model)

    def _count(self, tensor: Tensor | None) -> None:
        if tensor is None:
            return
        size = tensor.numel() * tensor.element_size()
        if self.nbytes + size > self.max_bytes:
            self.prefixes.clear()
            self.suffixes.clear()
            self.nbytes = 0
        self.nbytes += size

    def put_prefix(self, key: tuple[int, ...], kv: Tensor | None) -> None:
        self._count(kv)
        self.prefixes[key] = kv

    def put_suffix(self, key: tuple[tuple[int, ...], tuple[int, ...]], resid: Tensor) -> None:
        self._count(resid)
        self.suffixes[key] = resid

    def clear(self) -> None:
        """Drop every cached state (and zero the hit count)."""
        self.prefixes.clear()
        self.suffixes.clear()
        self.nbytes = 0
        self.hits = 0
        self._owner = None
        self._model = None


#: The cache of split scoring (:func:`answer_logprobs`, :func:`next_token_logprobs`).
SPLIT_CACHE = _SplitCache()


@dataclass(frozen=True)
class _Split:
    """A bridge whose decoder blocks can be run in pieces, steered at ``resid_post(layer)``."""

    model: Any
    hook: str
    layer: int
    n_layers: int
    causal_lm: nn.Module
    base: nn.Module
    point: Any


_LOGITS_TO_KEEP: dict[type, bool] = {}

#: The hook at which unsteered scoring is split (None: unsteered scoring takes full passes).
_UNSTEERED_AT: ContextVar[str | None] = ContextVar("_UNSTEERED_AT", default=None)


@contextmanager
def unsteered_split(hook: str | None) -> Iterator[None]:
    """Within the block, score unsteered calls (``plan=None``) split at ``hook`` on a bridge.

    Evaluations that compare steering at one hook with no steering use this so that the
    unsteered baseline costs what one more steered method costs (the prefix and the suffix up to
    ``hook`` are computed once for all of them) and is computed along the same path. Outside
    the block, or with ``hook=None``, unsteered scoring takes one full pass per batch. Hooks
    that split scoring does not handle (not ``blocks.L.hook_resid_post`` with a block after it,
    a classic ``HookedTransformer``) also take full passes.

    Example:
        >>> from lens_odesteer.models import tiny_bridge
        >>> model = tiny_bridge()
        >>> full = answer_logprobs(model, ["Q: hi\\nA:"], [" yes"])
        >>> with unsteered_split("blocks.0.hook_resid_post"):
        ...     split = answer_logprobs(model, ["Q: hi\\nA:"], [" yes"])
        >>> bool(abs(full[0] - split[0]) < 1e-4)
        True
    """
    if hook is not None and not isinstance(hook, str):
        raise InvalidParameterError(
            f"`hook` must be a hook name such as 'blocks.15.hook_resid_post' or None; "
            f"got {type(hook).__name__} {hook!r}."
        )
    token = _UNSTEERED_AT.set(hook)
    try:
        yield
    finally:
        _UNSTEERED_AT.reset(token)


def _split_for(model: HookedModel, plan: SteeringPlan | None) -> _Split | None:
    """Return how to split-score ``model`` under ``plan``, or None to use full hooked passes.

    ``plan`` None (or inactive) splits at the hook of :func:`unsteered_split`, if one is set.
    """
    if not _SPLIT_SCORING or not is_bridge(model):
        return None
    if plan is None or not plan.active:
        name = _UNSTEERED_AT.get()
        if name is None:
            return None
    elif len(plan) != 1:
        return None
    else:
        name = plan.hook_names[0]
    layer = hook_layer(name)
    n_layers = model_n_layers(model)
    if layer is None or not 0 <= layer < n_layers - 1:
        return None
    points = _model.hook_dict(model)
    point = points.get(name)
    if point is None or point is not points.get(resid_post(layer)):
        return None
    causal_lm = getattr(model, "original_model", None)
    base = getattr(causal_lm, "model", None)
    layers = getattr(base, "layers", None)
    blocks = getattr(model, "blocks", None)
    if not isinstance(causal_lm, nn.Module) or not isinstance(base, nn.Module):
        return None
    if not isinstance(layers, nn.ModuleList) or blocks is None or len(layers) != n_layers:
        return None
    if len(blocks) != n_layers or any(a is not b for a, b in zip(layers, blocks, strict=True)):
        return None
    if any(
        getattr(b, "_stop_at_layer_idx", None) is not None
        or getattr(b, "_start_at_layer_idx", None) is not None
        for b in blocks
    ):
        return None  # a bridge forward in progress (or one that did not clean up)
    kind = type(causal_lm)
    if kind not in _LOGITS_TO_KEEP:
        try:
            params = inspect.signature(causal_lm.forward).parameters
            names = set(params)
        except (TypeError, ValueError):
            names = set()
        _LOGITS_TO_KEEP[kind] = {"logits_to_keep", "past_key_values", "position_ids"} <= names
    if not _LOGITS_TO_KEEP[kind]:
        return None
    return _Split(model, name, layer, n_layers, causal_lm, base, point)


@contextmanager
def _only_blocks(split: _Split, start: int, stop: int, inject: Tensor | None) -> Iterator[None]:
    """Run only decoder blocks ``start..stop-1``; ``inject`` replaces the first one's input.

    The residual is swapped in at the block itself (not fed as input embeddings), so models that
    scale or add to their embeddings before the first block get exactly ``inject``.
    """
    base = split.base
    full = base._modules["layers"]
    assert isinstance(full, nn.ModuleList)
    handle = None
    if inject is not None:

        def swap(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if args:
                return (inject, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": inject}

        handle = full[start].register_forward_pre_hook(swap, with_kwargs=True)
    base._modules["layers"] = nn.ModuleList(list(full)[start:stop])
    try:
        yield
    finally:
        base._modules["layers"] = full
        if handle is not None:
            handle.remove()


def _new_cache(data: list[tuple[Tensor | None, Tensor | None]] | None = None) -> Any:
    """A HuggingFace ``DynamicCache`` (filled from per-layer ``(keys, values)`` when given)."""
    from transformers import DynamicCache  # there whenever a TransformerBridge is

    return DynamicCache() if data is None else DynamicCache(ddp_cache_data=data)


def _layer_kv(cache: Any, index: int) -> tuple[Tensor, Tensor]:
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return layers[index].keys, layers[index].values
    return cache.key_cache[index], cache.value_cache[index]  # older transformers


def _pack(kvs: Sequence[Tensor | None], p_max: int) -> Tensor | None:
    """Left-pad per-row prefix states ``[layers, 2, heads, p, d_head]`` to one batch tensor."""
    first = next((kv for kv in kvs if kv is not None), None)
    if first is None or p_max == 0:
        return None
    n_l, _, heads, _, d_head = first.shape
    out = first.new_zeros(len(kvs), n_l, 2, heads, p_max, d_head)
    for r, kv in enumerate(kvs):
        if kv is not None:
            out[r, ..., p_max - kv.shape[-2] :, :] = kv
    return out


def _cache(split: _Split, packed: Tensor | None, first: int) -> Any:
    """A ``DynamicCache`` holding ``packed`` as the prefix of blocks ``first..`` (None: none)."""
    if packed is None:
        return None
    n, n_l, _, _, p_max, _ = packed.shape
    data: list[tuple[Tensor | None, Tensor | None]] = [(None, None)] * first
    if first > 0:
        # block 0 does not run, but the cache's length (masks, positions) is read there
        data[0] = (packed.new_zeros(1, 1, 1, 1).expand(n, 1, p_max, 1),) * 2
    data += [(packed[:, j, 0], packed[:, j, 1]) for j in range(n_l)]
    return _new_cache(data)


def _layout(p_len: Tensor, s_len: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Attention mask ``[n, P + S]`` (prefixes left-, suffixes right-padded), suffix mask
    ``[n, S]`` and suffix positions ``[n, S]``."""
    p_max, width = int(p_len.max()), int(s_len.max())
    s_mask = (torch.arange(width)[None] < s_len[:, None]).long()
    p_mask = (torch.arange(p_max)[None] >= p_max - p_len[:, None]).long()
    pos = p_len[:, None] + torch.arange(width)[None]
    return torch.cat([p_mask, s_mask], dim=1), s_mask, pos


def _run_prefixes(split: _Split, prefixes: list[tuple[int, ...]]) -> list[Tensor]:
    """Keys and values ``[n_layers, 2, kv_heads, p, d_head]`` of every block, per prefix."""
    device = model_device(split.model)
    padded = pad_tokens(
        [torch.tensor(p, dtype=torch.long) for p in prefixes],
        pad_token_id(split.model),
        side="left",
    )
    att = padded.attention_mask
    pos = (att.cumsum(1) - 1).clamp_min(0)
    cache = _new_cache()
    split.base(
        input_ids=padded.ids.to(device),
        attention_mask=att.to(device),
        position_ids=pos.to(device),
        past_key_values=cache,
        use_cache=True,
    )
    keys = [_layer_kv(cache, i) for i in range(split.n_layers)]
    width = padded.ids.shape[1]
    out = []
    for r, n in enumerate(padded.lengths):
        out.append(torch.stack([torch.stack([k[r], v[r]]) for k, v in keys])[..., width - n :, :])
    return out


def _run_suffixes(
    split: _Split, kvs: list[Tensor | None], prefixes: list[int], suffixes: list[Tensor]
) -> list[Tensor]:
    """The unsteered residual at the hook ``[s, d_model]`` over each suffix, after its prefix."""
    device = model_device(split.model)
    p_len = torch.tensor(prefixes)
    padded = pad_tokens(suffixes, pad_token_id(split.model), side="right")
    att, _, pos = _layout(p_len, torch.tensor(padded.lengths))
    cache = _cache(split, _pack(kvs, int(p_len.max())), 0)
    captured: dict[str, Tensor] = {}

    def capture(module: nn.Module, args: Any, output: Tensor) -> None:
        captured["x"] = output

    handle = split.point.register_forward_hook(capture)
    try:
        with _only_blocks(split, 0, split.layer + 1, None):
            split.base(
                input_ids=padded.ids.to(device),
                attention_mask=att.to(device),
                position_ids=pos.to(device),
                past_key_values=cache,
                use_cache=cache is not None,
            )
    finally:
        handle.remove()
    resid = captured["x"]
    return [resid[r, :n].clone() for r, n in enumerate(padded.lengths)]


def _ensure_states(
    split: _Split,
    prefixes: list[tuple[int, ...]],
    suffixes: list[tuple[int, ...]],
    batch_size: int,
) -> tuple[dict[tuple[int, ...], Tensor | None], list[Tensor]]:
    """Prefix states and unsteered suffix residuals of every row, from the cache or computed.

    Missing ones are computed in batches across prompts: the prefixes through every block
    (their keys and values), then the suffixes through blocks ``0..L`` on top of them.
    """
    store = SPLIT_CACHE
    store.bind(split.model, split.layer)
    cut = split.layer + 1
    kvs: dict[tuple[int, ...], Tensor | None] = {}
    resid: list[Tensor | None] = [None] * len(prefixes)
    missing: dict[tuple[tuple[int, ...], tuple[int, ...]], list[int]] = {}
    for i, key in enumerate(zip(prefixes, suffixes, strict=True)):
        found = store.suffixes.get(key)
        if found is None:
            missing.setdefault(key, []).append(i)
        else:
            store.hits += 1
            resid[i] = found
    need = {p for p, _ in missing}
    for p in prefixes:
        if p not in need and p not in kvs:
            if p in store.prefixes:
                kvs[p] = store.prefixes[p]
            else:
                need.add(p)
    todo = sorted(need, key=len)
    chunk = max(batch_size, 1) * 4
    for c in range(0, len(todo), chunk):
        group = todo[c : c + chunk]
        early: dict[tuple[int, ...], Tensor | None] = {}
        real = [p for p in group if p]
        for b in range(0, len(real), batch_size):
            part = real[b : b + batch_size]
            for p, kv in zip(part, _run_prefixes(split, part), strict=True):
                early[p] = kv[:cut]
                kvs[p] = kv[cut:].clone()
                store.put_prefix(p, kvs[p])
        for p in group:
            if not p:
                early[p] = kvs[p] = None
                store.put_prefix(p, None)
        texts = sorted((k for k in missing if k[0] in early), key=lambda k: len(k[1]))
        for b in range(0, len(texts), batch_size):
            batch = texts[b : b + batch_size]
            got = _run_suffixes(
                split,
                [early[p] for p, _ in batch],
                [len(p) for p, _ in batch],
                [torch.tensor(s, dtype=torch.long) for _, s in batch],
            )
            for key, r in zip(batch, got, strict=True):
                store.put_suffix(key, r)
                for i in missing[key]:
                    resid[i] = r
    return kvs, [r for r in resid if r is not None]


_PLAIN_HEAD: weakref.WeakKeyDictionary[nn.Module, bool] = weakref.WeakKeyDictionary()


def _plain_head(split: _Split) -> nn.Module | None:
    """The output layer when logits are exactly ``head(base(...))`` (checked once per model).

    Then the logits of the positions that are read can be computed alone. Models that do
    more after the head (logit soft-capping, scaling) give None and get the causal LM's own
    logits for every column instead.
    """
    head = split.causal_lm.get_output_embeddings()  # type: ignore[operator]
    if not isinstance(head, nn.Module):
        return None
    plain = _PLAIN_HEAD.get(split.causal_lm)
    if plain is None:
        vocab = int(getattr(head, "out_features", 0) or 0) or 2
        ids = (torch.arange(3) % vocab)[None].to(model_device(split.model))
        with torch.inference_mode():
            ref = split.causal_lm(input_ids=ids).logits
            mine = head(split.base(input_ids=ids).last_hidden_state)
        plain = ref.shape == mine.shape and bool(torch.allclose(ref, mine, rtol=1e-5, atol=1e-5))
        _PLAIN_HEAD[split.causal_lm] = plain
    return head if plain else None


def _split_logits(
    split: _Split,
    plan: SteeringPlan | None,
    tokens: list[Tensor],
    steer_from: list[int],
    batch_size: int,
    read: Callable[[int, int], tuple[int, int]],
) -> Iterator[tuple[list[int], list[Tensor]]]:
    """Yield ``(rows, logits)`` per batch: per row the logits ``[c1 - c0, vocab]`` of columns
    ``c0..c1-1`` of its suffix, ``(c0, c1) = read(row, suffix_length)``.

    The suffix of row ``i`` is ``tokens[i][steer_from[i]:]``, every one of its tokens steered
    (``plan`` None or inactive: none is); column ``c`` holds the prediction after suffix
    token ``c``.
    """
    prefixes = [tuple(t[:s].tolist()) for t, s in zip(tokens, steer_from, strict=True)]
    suffixes = [tuple(t[s:].tolist()) for t, s in zip(tokens, steer_from, strict=True)]
    cut = split.layer + 1
    kvs, resid = _ensure_states(split, prefixes, suffixes, batch_size)
    device = model_device(split.model)
    head = _plain_head(split)
    order = sorted(range(len(tokens)), key=lambda i: (len(suffixes[i]), len(prefixes[i])))
    for b in range(0, len(order), batch_size):
        rows = order[b : b + batch_size]
        s_len = torch.tensor([len(suffixes[i]) for i in rows])
        p_len = torch.tensor([len(prefixes[i]) for i in rows])
        att, s_mask, pos = _layout(p_len, s_len)
        spans = [read(i, len(suffixes[i])) for i in rows]
        x = resid[rows[0]].new_zeros(len(rows), s_mask.shape[1], resid[rows[0]].shape[-1])
        for r, i in enumerate(rows):
            x[r, : len(suffixes[i])] = resid[i]
        if plan is None or not plan.active:
            steered = x
        else:
            pairs = plan.replace(scope="all", attention_mask=s_mask).hooks(split.model)
            steered = pairs[0][1](x, hook=split.point)
        cache = _cache(split, _pack([kvs[prefixes[i]] for i in rows], int(p_len.max())), cut)
        att, pos = att.to(device), pos.to(device)
        counts = [c1 - c0 for c0, c1 in spans]
        if sum(counts) == 0:
            yield rows, [steered.new_zeros(0, 0) for _ in rows]
            continue
        common = {
            "attention_mask": att,
            "position_ids": pos,
            "past_key_values": cache,
            "use_cache": cache is not None,
        }
        with _only_blocks(split, cut, split.n_layers, steered):
            if head is not None:  # the logits of the columns read, and no others
                hidden = split.base(inputs_embeds=steered, **common).last_hidden_state
                rr = torch.cat([torch.full((c1 - c0,), r) for r, (c0, c1) in enumerate(spans)])
                cc = torch.cat([torch.arange(c0, c1) for c0, c1 in spans])
                flat = head(hidden[rr.to(device), cc.to(device)][None])[0]
                blocks = list(flat.split(counts))
            else:
                keep = torch.arange(max(c1 for _, c1 in spans), device=device)
                out = split.causal_lm(inputs_embeds=steered, logits_to_keep=keep, **common)
                blocks = [out.logits[r, c0:c1] for r, (c0, c1) in enumerate(spans)]
        yield rows, blocks


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
        plan: the steering plan (None: unsteered; see :func:`unsteered_split`).
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
    steer_from = [s - 1 for s in starts]
    split = _split_for(model, plan) if min(steer_from, default=0) >= 0 else None
    if split is not None:
        with torch.inference_mode():
            # The suffix is the last prompt token and the answer but its last token: what
            # follows that token is never read, and no earlier position attends to it.
            # Its columns 0 .. s-1 predict the answer's tokens.
            for rows, blocks in _split_logits(
                split, plan, [t[:-1] for t in tokens], steer_from, batch_size, lambda i, s: (0, s)
            ):
                for i, block in zip(rows, blocks, strict=True):
                    start, end = spans[i]
                    logp = torch.log_softmax(block.float(), dim=-1)
                    target = tokens[i][start:end].to(logp.device)
                    cols = torch.arange(end - start, device=logp.device)
                    out[i] = float(logp[cols, target].sum())
        return out
    with torch.inference_mode():
        for rows, ids, att, scope in _batches(model, tokens, steer_from, batch_size):
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
        plan: the steering plan (None: unsteered; see :func:`unsteered_split`).
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
    split = _split_for(model, plan)
    if split is not None:
        with torch.inference_mode():
            for rows, blocks in _split_logits(
                split, plan, tokens, list(steer_from), batch_size, lambda i, s: (s - 1, s)
            ):
                for i, block in zip(rows, blocks, strict=True):
                    logp = torch.log_softmax(block[0].float(), dim=-1).cpu()
                    results[i] = logp if keep is None else logp[keep]
        return torch.stack([r for r in results if r is not None])
    with torch.inference_mode():
        for rows, ids, att, scope in _batches(model, tokens, list(steer_from), batch_size):
            logits = _forward(model, ids, att, scope, plan)
            logp = torch.log_softmax(logits[:, -1].float(), dim=-1).cpu()
            if keep is not None:
                logp = logp[:, keep]
            for r, i in enumerate(rows):
                results[i] = logp[r]
    return torch.stack([r for r in results if r is not None])
