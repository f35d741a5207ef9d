"""What each step of a steering path does to the model's next-token prediction (runs the model).

For one prompt, the activation at a hook and token position is taken from the unsteered forward
pass; every method integrates its path from it; and every saved state ``a(t_k)`` is patched back
into the model at that hook and position (a TransformerLens forward hook on a batch that holds
one copy of the prompt per state). The rest of the forward pass then runs as usual, and the
next-token distribution at that position is recorded.

``KL`` is ``KL(p_steered || p_unsteered)`` in nats, against the plain forward pass without
hooks. Step 0 of every method patches the unsteered activation back in, so its KL is zero up to
floating-point noise (a check that the patching is faithful).

Example:
    >>> import torch, lens_odesteer as lo
    >>> from lens_odesteer.analysis import step_logits
    >>> model = lo.tiny_bridge()
    >>> hook = "blocks.1.hook_resid_post"
    >>> acts = lo.collect_activations(model, ["ab", "cd", "ef", "gh"], hook, progress=False)
    >>> ode = lo.ODESteer(lo.sketch_barrier(n_components=128)).fit(acts[:2], acts[2:])
    >>> res = step_logits(model, "abc", hook, {"ODESteer": ode}, T=1.0, top_k=3)
    >>> float(res.steps.loc[res.steps["step"] == 0, "kl"].abs().max()) < 1e-6
    True
    >>> sorted(res.tokens.columns)[:4]
    ['delta_logit', 'delta_logprob', 'fraction', 'is_target']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from lens_odesteer._validation import check_positive_int
from lens_odesteer.analysis.projection import Projection
from lens_odesteer.analysis.trajectories import (
    Strengths,
    _check_methods,
    method_paths,
    reference_label,
    strengths,
)
from lens_odesteer.errors import InvalidParameterError, ShapeMismatchError
from lens_odesteer.hooks._model import hook_device, model_device, model_dtype, tokenizer
from lens_odesteer.models.names import HookedModel, validate_hook_name
from lens_odesteer.models.tokens import tokenize
from lens_odesteer.steerers.base import AbstractSteerer


@dataclass(frozen=True)
class StepLogits:
    """Per-step next-token effects of several steering paths from one activation.

    Attributes:
        tokens: one row per (method, step, tracked token): ``method``, ``step``, ``t``,
            ``fraction``, ``token_id``, ``token``, ``logit``, ``logprob``, ``prob``,
            ``delta_logit`` and ``delta_logprob`` (vs unsteered), ``is_target``.
        steps: one row per (method, step): ``t``, ``fraction``, ``kl`` (nats),
            ``top_token``, ``top_prob``, ``h`` (reference barrier), ``displacement``, and
            ``target_logprob`` (sum over targets' probabilities, as a log) when targets are given,
            and the view coordinates ``x``, ``y`` when a ``view`` is given.
        prompt, hook, position: where the patching happened (``position`` is absolute).
        reference: the label whose barrier fills ``steps["h"]``.
        T: each method's native strength.
        start: the unsteered activation at the hook and position (``[d_model]``, CPU float32);
            a level-set slice through it shows the landscape these paths cross.
    """

    tokens: pd.DataFrame
    steps: pd.DataFrame
    prompt: str
    hook: str
    position: int
    reference: str
    T: dict[str, float] = field(default_factory=dict)
    start: Tensor | None = None


def _target_ids(model: HookedModel, targets: Sequence[str | int] | None) -> list[int]:
    if targets is None:
        return []
    if isinstance(targets, (str, int)):
        targets = [targets]
    tok = tokenizer(model)
    vocab = int(getattr(model.cfg, "d_vocab", 0) or 0)
    ids: list[int] = []
    for target in targets:
        if isinstance(target, bool):
            raise InvalidParameterError(f"A target must be a token string or id; got {target!r}.")
        if isinstance(target, int):
            if vocab and not 0 <= target < vocab:
                raise InvalidParameterError(
                    f"Target token id {target} is outside the vocabulary [0, {vocab})."
                )
            ids.append(target)
            continue
        if not isinstance(target, str) or not target:
            raise InvalidParameterError(
                f"A target must be a non-empty token string or an int id; got {target!r}."
            )
        enc = tok.encode(target, add_special_tokens=False)
        if len(enc) != 1:
            pieces = [tok.decode([i]) for i in enc]
            raise InvalidParameterError(
                f"Target {target!r} is {len(enc)} tokens {pieces}, not one; pass a single "
                "token (mind the leading space, e.g. ' good') or its id."
            )
        ids.append(int(enc[0]))
    return list(dict.fromkeys(ids))


def _position(n_tokens: int, position: int) -> int:
    if isinstance(position, bool) or not isinstance(position, int):
        raise InvalidParameterError(f"`position` must be an int token index; got {position!r}.")
    absolute = position + n_tokens if position < 0 else position
    if not 0 <= absolute < n_tokens:
        raise InvalidParameterError(
            f"`position` {position} is outside the prompt's {n_tokens} tokens."
        )
    return absolute


def _unsteered(model: HookedModel, tokens: Tensor, hook: str, pos: int) -> tuple[Tensor, Tensor]:
    """The activation at ``hook``/``pos`` and the next-token logits of the plain forward pass."""
    store: dict[str, Tensor] = {}

    def grab(x: Tensor, hook: Any) -> None:
        store["a"] = x[0, pos].detach().clone()

    logits = model.run_with_hooks(tokens, fwd_hooks=[(hook, grab)], return_type="logits")
    if "a" not in store:
        raise InvalidParameterError(f"Hook {hook!r} did not fire during the forward pass.")
    return store["a"], logits[0, pos].float().cpu()


def _patched_logprobs(
    model: HookedModel, tokens: Tensor, hook: str, pos: int, states: Tensor, batch_size: int
) -> tuple[Tensor, Tensor]:
    """Next-token logits and log-probs at ``pos`` with ``states[i]`` patched in row ``i``."""
    dtype, device = model_dtype(model), hook_device(model, hook)
    logits_out = []
    for chunk in states.split(batch_size):
        patch = chunk.to(device=device, dtype=dtype)

        def put(x: Tensor, hook: Any, patch: Tensor = patch) -> Tensor:
            x[:, pos] = patch
            return x

        batch = tokens.expand(chunk.shape[0], -1)
        logits = model.run_with_hooks(batch, fwd_hooks=[(hook, put)], return_type="logits")
        logits_out.append(logits[:, pos].float().cpu())
    logits_all = torch.cat(logits_out)
    return logits_all, logits_all.log_softmax(-1)


def step_logits(
    model: HookedModel,
    prompt: str,
    hook: str,
    methods: Mapping[str, AbstractSteerer],
    *,
    strength: Strengths = None,
    T: Strengths = None,
    targets: Sequence[str | int] | None = None,
    top_k: int = 10,
    position: int = -1,
    prepend_bos: bool | None = None,
    reference: str | None = None,
    n_save: int | None = None,
    batch_size: int = 16,
    candidate_pool: int = 50,
    view: Projection | None = None,
) -> StepLogits:
    """Patch every saved state of every method's path into the model and record the logits.

    Args:
        model: a ``TransformerBridge`` or ``HookedTransformer``.
        prompt: the text; tokenized with ``model.to_tokens`` (BOS per the model default).
        hook: the hook the steerers were fitted on, e.g. ``lo.resid_post(15)``.
        methods: label -> fitted steerer.
        strength: norm-relative strength, one for all or one per label (the same meaning for
            every method: the move as a fraction of the typical activation norm).
        T: instead of ``strength``, native strengths (e.g. an ODESteer arc length and the CAA
            multiplier that gives the same displacement).
        targets: tokens to track whatever happens to them (strings of one token, or ids).
        top_k: how many of the most-changed tokens to track besides the targets. Candidates
            are the ``candidate_pool`` most likely tokens of any patched distribution, so the
            changes shown are of tokens that matter, not of the vocabulary's tail.
        position: the token position patched (and predicted from); default the last.
        reference: the label whose barrier fills ``steps["h"]`` (default: first ODE method).
        n_save: saved points of one-step paths (default: the ODE's steps + 1).
        batch_size: patched copies of the prompt per forward pass.
        candidate_pool: likely tokens per patched distribution that may be tracked.
        view: a projection; adds each state's view coordinates ``x``, ``y`` (and ``z``) to
            ``steps``, so the path can be drawn on level sets (e.g. with a slider over steps).

    Returns:
        A :class:`StepLogits` with tidy ``tokens`` and ``steps`` frames.
    """
    if not isinstance(prompt, str) or not prompt:
        raise InvalidParameterError(f"`prompt` must be a non-empty string; got {prompt!r}.")
    validate_hook_name(model, hook)
    checked = _check_methods(methods)
    Ts = strengths(checked, strength, T)
    ref = reference_label(checked, reference)
    top_k = check_positive_int(top_k, "top_k", minimum=0)
    batch_size = check_positive_int(batch_size, "batch_size")
    candidate_pool = check_positive_int(candidate_pool, "candidate_pool")
    target_ids = _target_ids(model, targets)

    tokens = tokenize(model, prompt, prepend_bos=prepend_bos, name="prompt", index=None)
    tokens = tokens[None].to(model_device(model))
    pos = _position(int(tokens.shape[1]), position)
    with torch.inference_mode():
        start, base_logit = _unsteered(model, tokens, hook, pos)
        start = start.float().cpu()
        base_lp = base_logit.log_softmax(-1)
        d_model = next(iter(checked.values())).d_model_
        if start.shape[-1] != d_model:
            raise ShapeMismatchError(
                f"The activation at {hook!r} has width {start.shape[-1]}, but the steerers were "
                f"fitted on d_model={d_model}; fit them on this hook."
            )
        paths = method_paths(checked, start[None], T=Ts, n_save=n_save)
        labels = list(paths)
        counts = [paths[m].ys.shape[0] for m in labels]
        states = torch.cat([paths[m].ys[:, 0].float().cpu() for m in labels])
        ref_steerer = checked[ref]
        h_all = ref_steerer.barrier_value(states.to(ref_steerer.dtype_)).double()
        logits, logprobs = _patched_logprobs(model, tokens, hook, pos, states, batch_size)
        coords = None
        if view is not None:
            if view.d_model != d_model:
                raise ShapeMismatchError(
                    f"The view has d_model={view.d_model} but the steerers were fitted on "
                    f"d_model={d_model}."
                )
            coords = view.transform(states).double().cpu()
    probs = logprobs.exp()
    kl = (probs * (logprobs - base_lp)).sum(-1)

    # Tokens to track: the targets, then the top_k most-changed among likely tokens.
    pool = torch.unique(torch.topk(logprobs, min(candidate_pool, logprobs.shape[1]), dim=1).indices)
    change = (logprobs[:, pool] - base_lp[pool]).abs().max(0).values
    order = pool[torch.argsort(change, descending=True)].tolist()
    tracked = list(target_ids) + [i for i in order if i not in target_ids][:top_k]
    decode = tokenizer(model).decode

    token_rows, step_rows = [], []
    offset = 0
    for label, count in zip(labels, counts, strict=True):
        ts = paths[label].ts.double()
        T_m = Ts[label]
        for k in range(count):
            row = offset + k
            t = float(ts[k])
            frac = t / T_m if T_m > 0 else 0.0
            top = int(torch.argmax(logprobs[row]))
            step_row = {
                "method": label,
                "step": k,
                "t": t,
                "fraction": frac,
                "kl": float(kl[row]),
                "top_token": decode([top]),
                "top_prob": float(probs[row, top]),
                "h": float(h_all[row]),
                "displacement": float((states[row] - states[offset]).norm()),
            }
            if coords is not None:
                for i, axis in enumerate("xyz"[: coords.shape[1]]):
                    step_row[axis] = float(coords[row, i])
            if target_ids:
                step_row["target_logprob"] = float(torch.logsumexp(logprobs[row, target_ids], 0))
            step_rows.append(step_row)
            for tid in tracked:
                token_rows.append(
                    {
                        "method": label,
                        "step": k,
                        "t": t,
                        "fraction": frac,
                        "token_id": tid,
                        "token": decode([tid]),
                        "logit": float(logits[row, tid]),
                        "logprob": float(logprobs[row, tid]),
                        "prob": float(probs[row, tid]),
                        "delta_logit": float(logits[row, tid] - base_logit[tid]),
                        "delta_logprob": float(logprobs[row, tid] - base_lp[tid]),
                        "is_target": tid in target_ids,
                    }
                )
        offset += count
    return StepLogits(
        tokens=pd.DataFrame(token_rows),
        steps=pd.DataFrame(step_rows),
        prompt=prompt,
        hook=hook,
        position=pos,
        reference=ref,
        T=Ts,
        start=start.clone(),
    )
