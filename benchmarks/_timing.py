"""Interleaved, warmed-up timing with medians, as ratios to a baseline measured in the same run."""

from __future__ import annotations

import os
import platform
import random
import statistics
import time
from collections.abc import Callable

import torch


def time_rounds(
    candidates: dict[str, Callable[[], object]],
    *,
    repeats: int = 15,
    warmup: int = 3,
) -> dict[str, list[float]]:
    """Seconds of every call, per candidate, one call per round, interleaved after ``warmup``.

    Every round runs each candidate once, in a freshly shuffled order (seeded), so machine noise
    and position effects (the first call of a round was seen to run slow) are spread over all
    candidates instead of penalising one. Entry ``i`` of every list comes from round ``i``.
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
    return samples


def round_ratios(samples: dict[str, list[float]], baseline: str) -> dict[str, list[float]]:
    """Per-round ratio of each candidate to ``baseline`` (same round: drift cancels), sorted."""
    base = samples[baseline]
    return {
        name: sorted(t / b for t, b in zip(times, base, strict=True))
        for name, times in samples.items()
    }


def compare(
    candidates: dict[str, Callable[[], object]],
    *,
    repeats: int = 15,
    warmup: int = 3,
    baseline: str | None = None,
    show: bool = True,
) -> dict[str, float]:
    """Median seconds per call for each candidate (:func:`time_rounds`).

    With ``show`` each median is printed with its ratio to ``baseline`` (default: the first
    candidate).
    """
    samples = time_rounds(candidates, repeats=repeats, warmup=warmup)
    medians = {name: statistics.median(v) for name, v in samples.items()}
    if show:
        base = medians[baseline or next(iter(candidates))]
        for name, med in medians.items():
            print(f"    {name:<44s} {med * 1e3:10.3f} ms   x{med / base:7.2f}")
    return medians


def machine() -> str:
    """One line describing where the numbers come from (CPU, threads, load, versions)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        if names:
            cpu = names[0]
    except OSError:
        pass
    load = "n/a"
    if hasattr(os, "getloadavg"):
        load = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    return (
        f"{cpu}; {os.cpu_count()} logical CPUs; torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads; load average {load} (above the CPU count means "
        "other processes competed for the cores)"
    )


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub markdown table (numbers are right-aligned)."""
    align = ["---:" if i else ":---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def rate(count: float, seconds: float) -> str:
    """``count / seconds`` formatted compactly (``12.3k``)."""
    value = count / seconds
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    return f"{value:.1f}"
