"""Shared part of the generation tasks: sample under steering, then add fluency columns.

Fluency is measured under the *unsteered* model (no hooks attached when it is computed):
``ppl`` = perplexity of each continuation given its prompt, ``repetition`` = share of repeated
4-grams within the text, and ``dist1``/``dist2``/``dist3`` = distinct n-grams over the unit's
samples (all seeds of one prompt together), repeated on each of its rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from lens_odesteer.evaluation.fluency import continuation_perplexity, distinct_n, repetition_rate
from lens_odesteer.evaluation.likelihood import Steering
from lens_odesteer.evaluation.sampling import SamplingConfig, sample_continuations
from lens_odesteer.models.names import HookedModel

__all__ = ["generate_with_fluency"]


def generate_with_fluency(
    model: HookedModel,
    plan: Steering | None,
    prompts: Sequence[str],
    units: Sequence[Any],
    seeds: Sequence[int],
    sampling: SamplingConfig,
) -> pd.DataFrame:
    """Sample continuations (one per prompt and seed) and add the fluency columns."""
    frame = sample_continuations(
        model,
        prompts,
        plan,
        seeds=seeds,
        units=units,
        max_new_tokens=sampling.max_new_tokens,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        do_sample=sampling.do_sample,
        batch_size=sampling.batch_size,
        stop_strings=sampling.stop_strings,
    )
    texts = frame["continuation"].tolist()
    ppl = np.full(len(texts), np.nan)
    nonempty = [i for i, t in enumerate(texts) if t.strip()]
    if nonempty:
        ppl[nonempty] = continuation_perplexity(
            model,
            [frame["prompt"].iloc[i] for i in nonempty],
            [texts[i] for i in nonempty],
            batch_size=16,
        )
    frame["ppl"] = ppl
    frame["repetition"] = repetition_rate(texts)
    for n in (1, 2, 3):
        per_unit = frame.groupby("unit")["continuation"].apply(
            lambda s, n=n: distinct_n(list(s), n)
        )
        frame[f"dist{n}"] = frame["unit"].map(per_unit).astype(float)
    frame["n_words"] = [len(t.split()) for t in texts]
    return frame
