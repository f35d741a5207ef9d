"""Sentiment steering: continuations of neutral prompts steered toward positive, scored by VADER.

* Fit: the built-in sentiment contrast set (141 positive/negative review-style pairs written
  for this project), last token of prompt + completion.
* Prompts: RealToxicityPrompts non-toxic prompts that VADER scores exactly neutral (compound 0),
  drawn with a fixed seed (the prompts are web-text sentence openings, unrelated to the fit set).
* Metrics per prompt (mean over its samples): ``sentiment`` = VADER compound of the continuation
  in [-1, 1], ``positive_rate`` = share of samples with compound > 0.05; plus fluency.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import pandas as pd

from lens_odesteer.datasets import load_builtin
from lens_odesteer.evaluation.sampling import SamplingConfig
from lens_odesteer.evaluation.tasks._generation import SampleSettings
from lens_odesteer.evaluation.tasks.base import Split, Task, check_count, data_root, sample_subset
from lens_odesteer.evaluation.tasks.detox import load_rtp_prompts
from lens_odesteer.hooks import SteeringPlan
from lens_odesteer.models.names import HookedModel

__all__ = ["Sentiment"]

PROMPTS = "realtoxicityprompts_decodingtrust/nontoxic.jsonl"
#: The prompting baselines' instruction (written for this project).
INSTRUCTION = "Continue the text in a positive, warm and happy tone."


class Sentiment(Task):
    """Neutral prompts steered toward positive sentiment; see the module docstring.

    Args:
        data_dir: folder holding ``realtoxicityprompts_decodingtrust/`` (default: shared data).
        n_test, n_val: neutral prompts tested / used to choose ``T``.
        seeds, val_seeds: sampling seeds (one sample per prompt and seed).
        max_new_tokens: continuation length.
    """

    name: ClassVar[str] = "sentiment"
    kind: ClassVar[str] = "generation"
    primary: ClassVar[str] = "sentiment"
    metrics: ClassVar[tuple[str, ...]] = ("sentiment", "positive_rate")
    default_grid: ClassVar[tuple[float, ...]] = (0.05, 0.15)

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        n_test: int = 12,
        n_val: int = 6,
        seeds: tuple[int, ...] = (0, 1),
        val_seeds: tuple[int, ...] = (0,),
        max_new_tokens: int = 12,
        seed: int = 0,
        quick: bool = False,
    ) -> None:
        super().__init__(seed=seed, quick=quick)
        check_count(n_test, "n_test")
        check_count(n_val, "n_val")
        check_count(max_new_tokens, "max_new_tokens")
        if quick:
            n_test, n_val, seeds, max_new_tokens = 4, 3, (0,), 6
        self.n_test, self.n_val = n_test, n_val
        self.samples = SampleSettings.build(
            seeds, val_seeds, SamplingConfig(max_new_tokens=max_new_tokens)
        )
        self.root = data_root(data_dir, need=[PROMPTS])

    def splits(self) -> list[Split]:
        from lens_odesteer.evaluation.scoring import vader_compound

        prompts = load_rtp_prompts(self.root / PROMPTS)
        compound = vader_compound(prompts)
        neutral = [p for p, c in zip(prompts, compound, strict=True) if c == 0.0]
        neutral = sample_subset(neutral, None, self.seed)
        test = neutral[: self.n_test]
        val = neutral[self.n_test : self.n_test + self.n_val]
        data = load_builtin("sentiment")
        return [
            Split(
                name="neutral",
                pos_texts=data.positive_texts(),
                neg_texts=data.negative_texts(),
                pos_groups=list(data.groups),
                neg_groups=list(data.groups),
                val=list(enumerate(val)),
                test=list(enumerate(test)),
                ref_prompts=val,
                info={
                    "n_fit_pairs": len(data),
                    "n_neutral_available": len(neutral),
                    "n_val": len(val),
                    "n_test": len(test),
                },
            )
        ]

    def score(
        self,
        model: HookedModel,
        plan: SteeringPlan | None,
        units: list[Any],
        *,
        phase: str,
        reverse: SteeringPlan | None = None,
    ) -> pd.DataFrame:
        from lens_odesteer.evaluation.scoring import vader_compound

        frame = self.samples.generate(
            model, plan, [self.prefixed(p) for _, p in units], [i for i, _ in units], phase
        )
        frame["sentiment"] = vader_compound(frame["continuation"].tolist())
        frame["positive_rate"] = (frame["sentiment"] > 0.05).astype(float)
        return frame

    def instruction(self, split: str, *, reverse: bool = False) -> str:
        """Ask for positive text (the prompting baselines)."""
        return INSTRUCTION

    def config(self) -> dict[str, Any]:
        return {
            "fit": "built-in sentiment pairs (141)",
            "prompts": "RTP nontoxic prompts with VADER compound == 0",
            "n_test_prompts": self.n_test,
            "n_val_prompts": self.n_val,
            **self.samples.config(),
            "scorer": "VADER compound",
        }
