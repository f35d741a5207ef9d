"""Fluency and diversity of generated text: perplexity, Dist-n and repetition.

A steering method can raise a target score by breaking the model, so every generation result
should come with these numbers:

* :func:`continuation_perplexity`: perplexity of each continuation given its prompt under a
  TransformerLens model with **no** hooks attached (the unsteered model), on model tokens.
* :func:`distinct_n`: corpus-level Dist-n (Li et al., 2016), unique n-grams / all n-grams over
  all texts, on **whitespace** tokens.
* :func:`repetition_rate`: per text, the share of n-grams (default 4-grams, whitespace tokens)
  that repeat an earlier n-gram of the same text, i.e. seq-rep-n of Welleck et al. (2020).
* :func:`fluency_frame`: all of the above as a tidy DataFrame, one row per continuation.

Texts too short to contain an n-gram, and empty continuations, get NaN (undefined) rather than a
made-up 0 or 1: aggregate with ``nanmean`` and report how many rows were defined.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from lens_odesteer._validation import check_positive_int
from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.evaluation.scoring import check_texts
from lens_odesteer.hooks import _model
from lens_odesteer.models.names import HookedModel, is_bridge
from lens_odesteer.models.tokens import pad_token_id, pad_tokens, padding_side, tokenize

__all__ = [
    "continuation_nll",
    "continuation_perplexity",
    "distinct_n",
    "fluency_frame",
    "repetition_rate",
]

Tokenize = Callable[[str], Sequence[str]]


# --------------------------------------------------------------------------------------------
# Diversity and repetition (whitespace tokens)


def _ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def _words(text: str, tokenize: Tokenize | None) -> list[str]:
    return text.split() if tokenize is None else list(tokenize(text))


def distinct_n(texts: Sequence[str], n: int, *, tokenize: Tokenize | None = None) -> float:
    """Return corpus-level Dist-n: distinct n-grams divided by all n-grams, over all texts.

    Tokens are whitespace-separated words (``str.split()``, case and punctuation kept) unless
    ``tokenize`` is given. N-grams never span two texts. Higher means more diverse; 1.0 means no
    n-gram occurs twice anywhere in the corpus.

    Returns:
        A float in (0, 1], or NaN when no text has ``n`` tokens.

    Example:
        >>> distinct_n(["a a a a"], 1)
        0.25
        >>> distinct_n(["the cat sat", "the dog sat"], 1)  # 4 distinct of 6 words
        0.6666666666666666
        >>> distinct_n(["the cat sat", "the dog sat"], 2)  # 4 distinct of 4 bigrams
        1.0
    """
    items = check_texts(texts)
    n = check_positive_int(n, "n")
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in items:
        grams = _ngrams(_words(text, tokenize), n)
        seen.update(grams)
        total += len(grams)
    return len(seen) / total if total else math.nan


def repetition_rate(
    texts: Sequence[str], n: int = 4, *, tokenize: Tokenize | None = None
) -> np.ndarray:
    """Return, per text, the share of its n-grams that repeat an earlier n-gram of that text.

    ``1 - distinct n-grams / all n-grams`` within each text (seq-rep-n, Welleck et al. 2020),
    on whitespace tokens unless ``tokenize`` is given. 0.0 means no n-gram repeats; a text that
    loops one phrase tends to 1.0.

    Returns:
        A float64 array with one value per text; NaN for a text with fewer than ``n`` tokens.

    Example:
        >>> repetition_rate(["a b a b a b", "one two three four five", "too short"], n=2)
        array([0.6, 0. , 0. ])
        >>> repetition_rate(["too short"], n=4)
        array([nan])
    """
    items = check_texts(texts)
    n = check_positive_int(n, "n")
    out = np.full(len(items), np.nan)
    for i, text in enumerate(items):
        grams = _ngrams(_words(text, tokenize), n)
        if grams:
            out[i] = 1.0 - len(set(grams)) / len(grams)
    return out


# --------------------------------------------------------------------------------------------
# Perplexity under the unsteered model


def _active_hooks(model: HookedModel) -> list[str]:
    """Names of the model's hook points that carry a forward hook (steering or otherwise).

    Only TransformerLens hook points are inspected: the bridge itself keeps plain torch hooks
    on some wrapped modules, and those are part of the model.
    """
    points = getattr(model, "hook_dict", None)
    if not isinstance(points, dict):
        return []
    hooked: dict[int, list[str]] = {}  # one entry per hook point, with all its names
    for name, point in points.items():
        if getattr(point, "fwd_hooks", None) or point._forward_hooks or point._forward_pre_hooks:
            hooked.setdefault(id(point), []).append(name)
    return [" = ".join(names) for names in hooked.values()]


def _check_no_hooks(model: HookedModel) -> None:
    names = _active_hooks(model)
    if names:
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise InvalidParameterError(
            f"Perplexity is measured under the unsteered model, but {len(names)} hook point(s) "
            f"of the model carry hooks ({shown}). Score outside the `steering(...)` block (or call "
            "`handle.remove()` / `model.reset_hooks()`), or pass `allow_hooks=True` to score "
            "under the hooked model on purpose."
        )


def _continuation_ids(model: HookedModel, item: object, index: int) -> Tensor:
    """Token ids of one continuation: a string (tokenized without BOS) or 1-D token ids."""
    if isinstance(item, str):
        if not item:
            return torch.zeros(0, dtype=torch.long)
        return tokenize(
            model, item, prepend_bos=False, name="continuations", index=index, allow_empty=True
        )
    if isinstance(item, Tensor) and item.ndim == 1 and not item.is_floating_point():
        return item.detach().cpu().long()
    raise InvalidParameterError(
        f"`continuations[{index}]` must be a string or a 1-D integer tensor of token ids (as "
        f"returned by generate(..., return_tokens=True)); got {type(item).__name__}."
    )


def _check_continuations(continuations: object, n_prompts: int) -> list[str | Tensor]:
    if isinstance(continuations, str) or not isinstance(continuations, Sequence):
        raise InvalidParameterError(
            "`continuations` must be a list of strings (or of 1-D token-id tensors), one per "
            f"prompt; got {type(continuations).__name__}."
        )
    if len(continuations) != n_prompts:
        raise InvalidParameterError(
            f"`continuations` has {len(continuations)} entries but `prompts` has {n_prompts}; "
            "give one continuation per prompt (repeat a prompt for several samples)."
        )
    return list(continuations)


def continuation_nll(
    model: HookedModel,
    prompts: Sequence[str],
    continuations: Sequence[str] | Sequence[Tensor],
    *,
    batch_size: int = 8,
    chat: bool = False,
    prepend_bos: bool | None = None,
    allow_hooks: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Return each continuation's summed negative log-likelihood (nats) and its token count.

    See :func:`continuation_perplexity` for the arguments; perplexity is
    ``exp(nll_sum / n_tokens)``.
    """
    items = check_texts(prompts, "prompts")
    conts = _check_continuations(continuations, len(items))
    batch_size = check_positive_int(batch_size, "batch_size")
    if not allow_hooks:
        _check_no_hooks(model)
    heads = [
        tokenize(model, p, chat=chat, prepend_bos=prepend_bos, name="prompts", index=i)
        for i, p in enumerate(items)
    ]
    tails = [_continuation_ids(model, c, i) for i, c in enumerate(conts)]
    lengths = [len(h) + len(t) for h, t in zip(heads, tails, strict=True)]
    limit = _model.n_ctx(model)
    if limit is not None and max(lengths) > limit:
        i = int(np.argmax(lengths))
        raise InvalidParameterError(
            f"Prompt {i} plus its continuation is {lengths[i]} tokens, more than the model's "
            f"context of {limit}; shorten it."
        )
    nll = np.full(len(items), np.nan)
    counts = np.array([len(t) for t in tails], dtype=np.int64)
    todo = sorted((i for i in range(len(items)) if counts[i] > 0), key=lambda i: lengths[i])
    pad_id = pad_token_id(model)
    device = _model.model_device(model)
    with torch.inference_mode(), padding_side(model, "right"):
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            padded = pad_tokens(
                [torch.cat([heads[i], tails[i]]) for i in batch], pad_id, side="right"
            )
            ids, mask = padded.ids, padded.attention_mask
            # Right padding under causal attention: real positions never see a pad, so the
            # classic HookedTransformer needs no mask; the bridge gets it explicitly.
            kwargs = {"attention_mask": mask.to(device)} if is_bridge(model) else {}
            logits = model(ids.to(device), return_type="logits", **kwargs)
            for row, i in enumerate(batch):
                # The token at position p is predicted by the logits at p - 1.
                first, last = len(heads[i]), lengths[i]
                logp = torch.log_softmax(logits[row, first - 1 : last - 1].float(), dim=-1)
                target = ids[row, first:last].to(logp.device).unsqueeze(-1)
                nll[i] = float(-logp.gather(-1, target).sum())
    return nll, counts


def continuation_perplexity(
    model: HookedModel,
    prompts: Sequence[str],
    continuations: Sequence[str] | Sequence[Tensor],
    *,
    batch_size: int = 8,
    chat: bool = False,
    prepend_bos: bool | None = None,
    allow_hooks: bool = False,
) -> np.ndarray:
    """Return the perplexity of each continuation given its prompt, ``exp(mean token NLL)``.

    Only the continuation's tokens are scored, each conditioned on the prompt and the
    continuation tokens before it. The prompt is tokenized exactly as
    :func:`lens_odesteer.hooks.generate` tokenizes it (same ``chat`` and ``prepend_bos``), and
    a string continuation is tokenized on its own without BOS and appended, so the boundary is
    exact; pass the token ids from ``generate(..., return_tokens=True)`` instead of strings to
    score exactly the generated tokens. Rows are right-padded in batches (the bridge gets an
    explicit attention mask), so a batch gives the same numbers as one row at a time.

    Main arguments:
        model: a TL 4 ``TransformerBridge`` or classic ``HookedTransformer`` with no hooks
            attached: perplexity is meant under the *unsteered* model (ideally a different
            model from the one that generated, as a judge).
        prompts: the prompts, one per continuation.
        continuations: strings, or 1-D integer tensors of token ids.

    Other arguments:
        batch_size: rows per forward pass.
        chat: the prompts were wrapped in the chat template when generating.
        prepend_bos: as for ``generate`` (None: the model default; False with ``chat``).
        allow_hooks: score even if hooks are attached (otherwise that raises).

    Returns:
        A float64 array, one perplexity per continuation; NaN for an empty continuation.

    Raises:
        InvalidParameterError: empty or mismatched lists, non-string prompts, hooks attached,
            or a prompt plus continuation longer than the model's context.

    Example:
        >>> from lens_odesteer.models import tiny_bridge
        >>> ppl = continuation_perplexity(tiny_bridge(), ["Hello", "A"], [" world", ""])
        >>> ppl.shape, bool(ppl[0] > 1), bool(np.isnan(ppl[1]))
        ((2,), True, True)
    """
    nll, counts = continuation_nll(
        model,
        prompts,
        continuations,
        batch_size=batch_size,
        chat=chat,
        prepend_bos=prepend_bos,
        allow_hooks=allow_hooks,
    )
    return np.exp(nll / np.maximum(counts, 1))  # NaN where there are no tokens (nll is NaN)


def fluency_frame(
    model: HookedModel,
    prompts: Sequence[str],
    continuations: Sequence[str] | Sequence[Tensor],
    *,
    batch_size: int = 8,
    chat: bool = False,
    prepend_bos: bool | None = None,
    rep_n: int = 4,
) -> pd.DataFrame:
    """Return fluency and diversity per continuation as a tidy DataFrame.

    Columns: ``prompt``, ``continuation`` (text; token ids are decoded without special
    tokens), ``n_tokens`` (model tokens scored), ``nll`` (mean NLL per token, nats),
    ``perplexity`` (:func:`continuation_perplexity`), ``n_words`` (whitespace tokens),
    ``repetition_rate`` (:func:`repetition_rate` with ``n=rep_n``) and ``distinct_1``,
    ``distinct_2``, ``distinct_3`` (Dist-n *within* each continuation). Corpus-level Dist-n of a
    method is ``distinct_n(frame["continuation"].tolist(), n)``, not the mean of these columns.

    Example:
        >>> from lens_odesteer.models import tiny_bridge
        >>> frame = fluency_frame(tiny_bridge(), ["Hi", "Hi"], [" there there", " you"])
        >>> list(frame.columns)  # doctest: +NORMALIZE_WHITESPACE
        ['prompt', 'continuation', 'n_tokens', 'nll', 'perplexity', 'n_words',
         'repetition_rate', 'distinct_1', 'distinct_2', 'distinct_3']
        >>> frame["distinct_1"].tolist()
        [0.5, 1.0]
    """
    nll, counts = continuation_nll(
        model, prompts, continuations, batch_size=batch_size, chat=chat, prepend_bos=prepend_bos
    )
    tok = _model.tokenizer(model)
    texts = [
        c if isinstance(c, str) else tok.decode(c.tolist(), skip_special_tokens=True)
        for c in continuations
    ]
    mean_nll = nll / np.maximum(counts, 1)  # NaN for empty continuations
    frame = pd.DataFrame(
        {
            "prompt": list(prompts),
            "continuation": texts,
            "n_tokens": counts,
            "nll": mean_nll,
            "perplexity": np.exp(mean_nll),
            "n_words": [len(t.split()) for t in texts],
            "repetition_rate": repetition_rate(texts, rep_n),
        }
    )
    for n in (1, 2, 3):
        frame[f"distinct_{n}"] = [distinct_n([t], n) for t in texts]
    return frame
