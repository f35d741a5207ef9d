"""Evaluation throughput: TruthfulQA MC question-scorings per second under one steered method.

SmolLM2-135M-Instruct, ODESteer (Euler x10, the default barrier) at
``blocks.15.hook_resid_post``, norm-relative strength 0.1, fitted on the fold-0 fit texts of
TruthfulQA MC (one correct and one incorrect answer per question). One call scores N test
questions (every distinct answer of each, steered from the last question token through the
answer) through ``TruthfulQAMC.score``, the entry point the evaluation runner uses.

Candidates, timed interleaved in one process:

* ``full passes (old)``: one hooked pass of every prompt + answer per batch
  (``likelihood._SPLIT_SCORING = False``), its residual cache warm as in a run;
* ``split, warm``: split scoring with the question prefixes and unsteered suffix residuals
  already cached (what every method and strength after the first pays in a run);
* ``split, cold``: split scoring with an empty cache (the first plan of a run pays this once);
* ``unsteered, full passes (old)``: the unsteered baseline (``plan=None``, the runner's
  ``none``) as it was scored before, one plain pass per batch;
* ``unsteered, split, warm``: the same inside ``unsteered_split(hook)``, as the runner now does
  it, on the states the steered calls cached (its speed-up is against the unsteered full passes).

Each call's wall time and CPU time are both reported (one torch thread: the CPU time is this
process's own work, which other processes on a shared machine inflate less than the wall time).
Before timing, the answer log-probabilities of both paths are compared (max abs difference).
Needs the TruthfulQA data (``lens-odesteer data fetch`` or ``LENS_ODESTEER_DATA``); skipped
without it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

import lens_odesteer as lo
from benchmarks._timing import machine, time_rounds
from lens_odesteer.errors import DataNotFoundError
from lens_odesteer.evaluation import likelihood
from lens_odesteer.evaluation.tasks.truthfulqa_mc import MCQuestion, TruthfulQAMC

LAYER = 15
STRENGTH = 0.1
TARGET = 4.0


def _answer_logprobs(
    model: object, plan: lo.SteeringPlan | None, units: list[MCQuestion]
) -> np.ndarray:
    prompts = [q.prompt for q in units for _ in q.answers()]
    answers = [" " + a for q in units for a in q.answers()]
    return likelihood.answer_logprobs(model, prompts, answers, plan)


def run(quick: bool = False) -> None:
    n_questions = 6 if quick else 24
    print(
        f"== eval: TruthfulQA MC question-scorings/s, {n_questions} questions per call, "
        f"ODESteer at blocks.{LAYER}.hook_resid_post, strength {STRENGTH}"
    )
    print(f"   machine: {machine()}")
    try:
        task = TruthfulQAMC(n_test=n_questions, n_val=4)
    except DataNotFoundError as exc:
        print(f"   skipped: {exc}")
        return
    split = task.splits()[0]
    units: list[MCQuestion] = split.test
    model = lo.load_model(progress=False)
    hook = lo.resid_post(LAYER)
    n_fit = 80 if quick else 200
    pos = lo.collect_activations(model, split.pos_texts[:n_fit], hook, progress=False)
    neg = lo.collect_activations(model, split.neg_texts[:n_fit], hook, progress=False)
    assert isinstance(pos, torch.Tensor) and isinstance(neg, torch.Tensor)
    plan = lo.SteeringPlan({hook: lo.ODESteer().fit(pos, neg)}, strength=STRENGTH)
    n_answers = sum(len(q.answers()) for q in units)
    print(
        f"   {len(units)} questions, {n_answers} answers; ODESteer fitted on {len(pos)}+{len(neg)}"
    )

    def old() -> object:
        likelihood._SPLIT_SCORING = False
        try:
            return task.score(model, plan, units, phase="test")
        finally:
            likelihood._SPLIT_SCORING = True

    def warm() -> object:
        return task.score(model, plan, units, phase="test")

    def cold() -> object:
        likelihood.SPLIT_CACHE.clear()
        return task.score(model, plan, units, phase="test")

    with torch.inference_mode():
        likelihood._SPLIT_SCORING = False
        try:
            reference = _answer_logprobs(model, plan, units)
        finally:
            likelihood._SPLIT_SCORING = True
        likelihood.SPLIT_CACHE.clear()
        split_lp = _answer_logprobs(model, plan, units)
    diff = float(np.abs(split_lp - reference).max())
    print(
        f"   max |log p(split) - log p(full passes)| over {len(reference)} answers: {diff:.2e} "
        f"(answer log-probs range {reference.min():.1f} .. {reference.max():.1f})"
    )

    def unsteered_old() -> object:
        return task.score(model, None, units, phase="test")

    def unsteered_split() -> object:
        with likelihood.unsteered_split(hook):
            return task.score(model, None, units, phase="test")

    with torch.inference_mode(), likelihood.unsteered_split(hook):
        split_none = _answer_logprobs(model, None, units)
    none_diff = float(np.abs(split_none - _answer_logprobs(model, None, units)).max())
    print(f"   unsteered: max |log p(split) - log p(full passes)|: {none_diff:.2e}")
    candidates: dict[str, Callable[[], object]] = {
        "full passes (old)": old,
        "split, warm": warm,
        "split, cold": cold,
        "unsteered, full passes (old)": unsteered_old,
        "unsteered, split, warm": unsteered_split,
    }
    # CPU seconds of each call as well: with one thread they count this process's own work,
    # which other processes on a shared machine inflate far less than the wall time.
    cpu: dict[str, list[float]] = {name: [] for name in candidates}

    def timed(name: str, fn: Callable[[], object]) -> Callable[[], object]:
        def call() -> object:
            start = time.process_time()
            try:
                return fn()
            finally:
                cpu[name].append(time.process_time() - start)

        return call

    warmup = 1
    samples = time_rounds(
        {name: timed(name, fn) for name, fn in candidates.items()},
        repeats=2 if quick else 3,
        warmup=warmup,
    )
    base = statistics.median(samples["full passes (old)"])
    base_cpu = statistics.median(cpu["full passes (old)"][warmup:])
    print(
        "| path | wall s per call | question-scorings/s | speed-up (wall) | CPU s per call | "
        "speed-up (CPU) | target |"
    )
    print("| :--- | ---: | ---: | ---: | ---: | ---: | ---: |")
    none_base = statistics.median(samples["unsteered, full passes (old)"])
    none_base_cpu = statistics.median(cpu["unsteered, full passes (old)"][warmup:])
    for name, times in samples.items():
        med = statistics.median(times)
        med_cpu = statistics.median(cpu[name][warmup:])
        ref, ref_cpu = (none_base, none_base_cpu) if "unsteered" in name else (base, base_cpu)
        ratio = ref / med
        target = ""
        if name == "split, warm":
            target = f">= x{TARGET:.0f} (wall) " + ("met" if ratio >= TARGET else "NOT met")
        print(
            f"| {name} | {med:.2f} | {len(units) / med:.2f} | x{ratio:.2f} | {med_cpu:.2f} | "
            f"x{ref_cpu / med_cpu:.2f} | {target} |"
        )


if __name__ == "__main__":
    run()
