"""A small evaluation for the soak test, run in a subprocess that the test kills at random points.

``python tests/reliability/_soak_eval.py OUT`` evaluates three methods on a tiny synthetic task
(two splits, log-likelihood scoring) on ``lo.tiny_bridge()`` and writes its results to ``OUT``;
rerunning it resumes from what ``OUT`` holds. :func:`run` is also called in-process for the
uninterrupted reference.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

WORDS = ["red", "blue", "green", "cat", "dog", "sun", "rain", "tree", "road", "sea", "sky", "map"]
METHODS = ("CAA", "StepODESteer", "ODESteer")
GRID = (0.05, 0.1, 0.2)


def make_task() -> Any:
    from lens_odesteer.evaluation.likelihood import answer_logprobs
    from lens_odesteer.evaluation.tasks.base import Split, Task

    class SoakTask(Task):
        """Log-likelihood of " good" after short prompts; two splits of the same words."""

        name: ClassVar[str] = "soak"
        kind: ClassVar[str] = "likelihood"
        primary: ClassVar[str] = "lp"
        metrics: ClassVar[tuple[str, ...]] = ("lp",)

        def splits(self) -> list[Split]:
            out = []
            for k in range(2):
                words = WORDS[k:] + WORDS[:k]
                units = [(i, f"The {w} is", " good") for i, w in enumerate(words)]
                out.append(
                    Split(
                        name=f"fold{k}",
                        pos_texts=[f"The {w} is good" for w in words],
                        neg_texts=[f"The {w} is bad" for w in words],
                        val=units[:4],
                        test=units[4:],
                        ref_prompts=[p for _, p, _ in units[:4]],
                    )
                )
            return out

        def score(
            self, model: Any, plan: Any, units: list[Any], *, phase: str, reverse: Any = None
        ) -> pd.DataFrame:
            lp = answer_logprobs(model, [p for _, p, _ in units], [a for _, _, a in units], plan)
            return pd.DataFrame({"unit": [u for u, _, _ in units], "seed": 0, "lp": lp})

        def config(self) -> dict[str, Any]:
            return {"words": WORDS}

    return SoakTask()


def run(out: str | Path, model: Any = None) -> pd.DataFrame:
    """Evaluate the soak task into ``out`` (resuming what is there)."""
    from lens_odesteer.evaluation import evaluate
    from lens_odesteer.models import tiny_bridge

    return evaluate(
        make_task(),
        tiny_bridge() if model is None else model,
        methods=list(METHODS),
        layer=1,
        out_dir=out,
        n_boot=50,
        grid=GRID,
        progress=False,
    )


if __name__ == "__main__":
    run(sys.argv[1])
