"""Interleaved, warmed-up timing with medians, as ratios to a baseline measured in the same run."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable


def compare(
    candidates: dict[str, Callable[[], object]],
    *,
    repeats: int = 15,
    warmup: int = 3,
    baseline: str | None = None,
) -> dict[str, float]:
    """Median seconds per call for each candidate, interleaved after ``warmup`` rounds.

    Every round runs each candidate once, in a freshly shuffled order (seeded), so machine noise
    and position effects (the first call of a round was seen to run slow) are spread over all
    candidates instead of penalising one.
    """
    for _ in range(warmup):
        for fn in candidates.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    order = list(candidates.items())
    rng = random.Random(0)
    for _ in range(repeats):
        rng.shuffle(order)
        for name, fn in order:
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(v) for name, v in samples.items()}
    base = medians[baseline or next(iter(candidates))]
    for name, med in medians.items():
        print(f"    {name:<44s} {med * 1e3:10.3f} ms   x{med / base:7.2f}")
    return medians
