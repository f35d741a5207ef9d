"""Model load (GGUF vs cache) and steered generation on the default model, timed in one process.

Generation: 8 prompts, 64 new tokens, greedy, KV cache, at ``blocks.15.hook_resid_post``;
unsteered vs CAA, StepODESteer, ODESteer (Euler and RK4, 10 steps) at scope ``"last"`` and
ODESteer at scope ``"all"``, interleaved after warm-up.
"""

from __future__ import annotations

import tempfile
import time

import lens_odesteer as lo
from benchmarks._timing import compare

PROMPTS = [
    "The hotel we stayed at",
    "Our trip to the mountains",
    "After watching the documentary about the ocean, I felt",
    "The new phone I bought last week",
    "My first day at the new job",
    "The concert last night",
    "Dinner at the corner restaurant",
    "The book my friend lent me",
]


def run() -> None:
    print("== load: SmolLM2-135M-Instruct from the GGUF (fresh cache) and from the cache")
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        lo.load_model(cache_dir=cache, progress=False)
        first = time.perf_counter() - start
        start = time.perf_counter()
        model = lo.load_model(cache_dir=cache, progress=False)
        second = time.perf_counter() - start
    print(f"    first load {first:6.2f} s   cached load {second:6.2f} s   x{first / second:.1f}")

    n_new = 64
    print(
        f"== generate: 8 prompts x {n_new} new tokens, greedy, KV cache, blocks.15.hook_resid_post"
    )
    hook = lo.resid_post(15)
    data = lo.load_builtin("sentiment")
    pos = lo.collect_activations(model, data.positive_texts(), hook, progress=False)
    neg = lo.collect_activations(model, data.negative_texts(), hook, progress=False)
    ode, caa = lo.ODESteer().fit(pos, neg), lo.CAA().fit(pos, neg)
    step = lo.StepODESteer().fit(pos, neg)
    rk4 = lo.ODESteer(solver="rk4").fit(pos, neg)
    T = float(caa.direction_.norm())
    kw = {"max_new_tokens": n_new, "stop_at_eos": False}

    def gen(plan: dict | None, strength: float | None = None, scope: str = "last") -> object:
        return lo.generate(model, PROMPTS, plan, T=strength, scope=scope, **kw)

    medians = compare(
        {
            "unsteered": lambda: gen(None),
            "CAA (scope last)": lambda: gen({hook: caa}, 1.0),
            "StepODESteer (scope last)": lambda: gen({hook: step}, T),
            "ODESteer (scope last, Euler x10)": lambda: gen({hook: ode}, T),
            "ODESteer (scope last, RK4 x10)": lambda: gen({hook: rk4}, T),
            "ODESteer (scope all, Euler x10)": lambda: gen({hook: ode}, T, "all"),
        },
        repeats=7,
        warmup=1,
    )
    for name, med in medians.items():
        print(f"    {name:<44s} {8 * n_new / med:8.1f} tokens/s")


if __name__ == "__main__":
    run()
