"""Seeded, batched sampling of continuations under a steering plan, for generation tasks.

The rows (one per prompt and sampling seed, seed-major) are generated in batches, each after
``torch.manual_seed(seeds[0] * 1_000_003 + first_row)``, so the same seeds give the same random
stream to every method: differences between methods on the same prompt and seed come from
steering, not from the draw (common random numbers), and the method ``"none"`` equals the
unsteered model sampled the same way. A "seed" labels one of the ``k`` samples of a prompt.

Example:
    >>> from lens_odesteer.models import tiny_bridge
    >>> df = sample_continuations(tiny_bridge(), ["Hi", "Yo"], None, seeds=[0], max_new_tokens=2)
    >>> list(df.columns), len(df)
    (['unit', 'seed', 'prompt', 'continuation'], 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.hooks import SteeringPlan, generate
from lens_odesteer.models.names import HookedModel

__all__ = ["SamplingConfig", "sample_continuations"]


@dataclass(frozen=True)
class SamplingConfig:
    """Decoding settings of generation tasks (the reference: T=0.7, top_p=0.9)."""

    max_new_tokens: int = 32
    temperature: float = 0.7
    top_p: float = 0.9
    do_sample: bool = True
    batch_size: int = 32
    stop_strings: tuple[str, ...] = field(default_factory=tuple)


def _cut(text: str, stops: Sequence[str]) -> str:
    """Cut ``text`` at the first stop string that follows its first non-blank character."""
    start = len(text) - len(text.lstrip())
    for stop in stops:
        at = text.find(stop, start)
        if at >= 0:
            text = text[:at]
    return text


def sample_continuations(
    model: HookedModel,
    prompts: Sequence[str],
    plan: SteeringPlan | None,
    *,
    seeds: Sequence[int] = (0,),
    max_new_tokens: int = 32,
    temperature: float = 0.7,
    top_p: float = 0.9,
    do_sample: bool = True,
    batch_size: int = 32,
    stop_strings: Sequence[str] = (),
    units: Sequence[Any] | None = None,
    **generate_kwargs: Any,
) -> pd.DataFrame:
    """Sample one continuation per prompt and seed; return ``unit, seed, prompt, continuation``.

    ``plan`` steers with scope ``"last"`` (the last prompt token, then every new token, KV cache).
    Continuations are cut at the first of ``stop_strings``. ``units`` names the rows (default:
    the prompt index).
    """
    if len(prompts) == 0:
        raise InvalidParameterError("`prompts` is empty.")
    if len(seeds) == 0:
        raise InvalidParameterError("`seeds` is empty; give at least one sampling seed.")
    names = list(range(len(prompts))) if units is None else list(units)
    if len(names) != len(prompts):
        raise InvalidParameterError(f"`units` has {len(names)} names for {len(prompts)} prompts.")
    steer = plan if plan is not None and plan.active else None
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": do_sample}
    if do_sample:
        kwargs.update(temperature=temperature, top_p=top_p)
    kwargs.update(generate_kwargs)
    # All (seed, prompt) rows go through generate together, seed-major, in batches of
    # ``batch_size`` rows; each batch is seeded from the first seed and its offset, so the same
    # seeds give the same draws to every method (common random numbers).
    jobs = [(int(seed), i) for seed in seeds for i in range(len(prompts))]
    rows = []
    with torch.inference_mode():
        for b in range(0, len(jobs), batch_size):
            batch = jobs[b : b + batch_size]
            torch.manual_seed(int(seeds[0]) * 1_000_003 + b)
            texts = generate(model, [prompts[i] for _, i in batch], steer, **kwargs)
            assert isinstance(texts, list)
            for (seed, i), text in zip(batch, texts, strict=True):
                rows.append(
                    {
                        "unit": names[i],
                        "seed": seed,
                        "prompt": prompts[i],
                        "continuation": _cut(text, stop_strings),
                    }
                )
    return pd.DataFrame(rows, columns=["unit", "seed", "prompt", "continuation"])
