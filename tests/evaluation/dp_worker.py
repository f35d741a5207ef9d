"""One process of the data-parallel evaluation test (tests/evaluation/test_data_parallel.py).

Run as ``python dp_worker.py OUT`` (one process) or under ``accelerate launch``/``torchrun``
(each rank); it evaluates a small synthetic likelihood task on the tiny model into ``OUT`` and
writes ``OUT/rank<R>.json`` with the parts this rank computed and reused.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from lens_odesteer.evaluation.tasks.base import Split, Task

WORDS = ["red", "blue", "green", "cat", "dog", "sun", "rain", "tree", "road", "sea", "hat", "cup"]


class ParallelTask(Task):
    """Log-likelihood of " good" after short prompts, on two splits (higher is better)."""

    name: ClassVar[str] = "parallel_tiny"
    kind: ClassVar[str] = "likelihood"
    primary: ClassVar[str] = "lp"
    metrics: ClassVar[tuple[str, ...]] = ("lp",)

    def splits(self) -> list[Split]:
        out = []
        for k, words in enumerate((WORDS[:6], WORDS[6:])):
            units = [(f"{k}-{i}", f"The {w} is", " good") for i, w in enumerate(words)]
            out.append(
                Split(
                    name=f"fold{k}",
                    pos_texts=[f"The {w} is good" for w in WORDS],
                    neg_texts=[f"The {w} is bad" for w in WORDS],
                    val=units[:3],
                    test=units[3:],
                    ref_prompts=[p for _, p, _ in units[:3]],
                )
            )
        return out

    def score(
        self,
        model: Any,
        plan: Any,
        units: list[Any],
        *,
        phase: str,
        reverse: Any = None,
    ) -> pd.DataFrame:
        from lens_odesteer.evaluation.likelihood import answer_logprobs

        lp = answer_logprobs(model, [p for _, p, _ in units], [a for _, _, a in units], plan)
        return pd.DataFrame({"unit": [u for u, _, _ in units], "seed": 0, "lp": lp})

    def config(self) -> dict[str, Any]:
        return {"words": WORDS}


def main(out: str) -> None:
    """Evaluate :class:`ParallelTask` into ``out`` (this process's share when launched)."""
    import torch

    from lens_odesteer.evaluation import evaluate
    from lens_odesteer.evaluation.distributed import current_shard
    from lens_odesteer.models import tiny_bridge

    torch.set_num_threads(1)
    shard = current_shard()
    summary = evaluate(
        ParallelTask(),
        tiny_bridge(),
        methods=["CAA", "StepODESteer", "ODESteer"],
        layer=1,
        out_dir=out,
        n_boot=200,
        grid=(0.05, 0.2),
        progress=False,
        shard=shard,
    )
    record = {"rank": shard.rank, "world": shard.world, "rows": len(summary)}
    record["computed"] = summary.attrs["parts_computed"]
    record["reused"] = summary.attrs["parts_reused"]
    Path(out, f"rank{shard.rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(sys.argv[1])
