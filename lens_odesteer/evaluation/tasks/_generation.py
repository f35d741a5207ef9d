"""Shared part of the generation tasks: sample under steering, then add fluency columns.

Fluency is measured under the *unsteered* model (no hooks attached when it is computed):
``ppl`` = perplexity of each continuation given its prompt, ``repetition`` = share of repeated
4-grams within the text, and ``dist1``/``dist2``/``dist3`` = distinct n-grams over the unit's
samples (all seeds of one prompt together), repeated on each of its rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.evaluation.fluency import continuation_perplexity, distinct_n, repetition_rate
from lens_odesteer.evaluation.sampling import SamplingConfig, sample_continuations
from lens_odesteer.hooks import SteeringPlan
from lens_odesteer.models.names import HookedModel

__all__ = ["SampleSettings", "generate_with_fluency"]


def generate_with_fluency(
    model: HookedModel,
    plan: SteeringPlan | None,
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


@dataclass(frozen=True)
class SampleSettings:
    """What a generation task samples: seeds per phase and the decoding settings.

    Test units get one sample per seed in ``seeds``, validation units one per seed in
    ``val_seeds``.

    Example:
        >>> s = SampleSettings.build((0, 1), (0,), SamplingConfig(max_new_tokens=8))
        >>> s.seeds_for("val"), s.seeds_for("test"), s.config()["samples_per_prompt"]
        ((0,), (0, 1), 2)
    """

    seeds: tuple[int, ...]
    val_seeds: tuple[int, ...]
    sampling: SamplingConfig

    @classmethod
    def build(
        cls, seeds: Sequence[object], val_seeds: Sequence[object], sampling: SamplingConfig
    ) -> SampleSettings:
        """Validate the seeds (non-empty sequences of ints) and freeze them as tuples.

        The seeds are typed ``Sequence[object]`` so that bad input reaches the check here and
        gets its :class:`~lens_odesteer.errors.InvalidParameterError`.
        """
        for name, value in (("seeds", seeds), ("val_seeds", val_seeds)):
            if isinstance(value, str | bytes) or not len(value):
                raise InvalidParameterError(
                    f"`{name}` must be a non-empty sequence of ints; got {value!r}."
                )
            if any(isinstance(v, bool) or not isinstance(v, int) for v in value):
                raise InvalidParameterError(
                    f"`{name}` must hold ints (sampling seeds); got {value!r}."
                )
        return cls(
            tuple(int(v) for v in seeds),  # type: ignore[call-overload]
            tuple(int(v) for v in val_seeds),  # type: ignore[call-overload]
            sampling,
        )

    def seeds_for(self, phase: str) -> tuple[int, ...]:
        """The validation seeds for ``phase == "val"``, else the test seeds."""
        return self.val_seeds if phase == "val" else self.seeds

    def generate(
        self,
        model: HookedModel,
        plan: SteeringPlan | None,
        prompts: Sequence[str],
        units: Sequence[Any],
        phase: str,
    ) -> pd.DataFrame:
        """:func:`generate_with_fluency` with this phase's seeds."""
        return generate_with_fluency(
            model, plan, prompts, units, self.seeds_for(phase), self.sampling
        )

    def config(self, per: str = "prompt") -> dict[str, Any]:
        """The settings as JSON-able entries of a task's ``config()``."""
        return {
            f"samples_per_{per}": len(self.seeds),
            "seeds": list(self.seeds),
            "val_seeds": list(self.val_seeds),
            "sampling": vars(self.sampling) | {"stop_strings": list(self.sampling.stop_strings)},
        }
