"""Steered generation on the default model, timed in one process, interleaved.

8 prompts, 64 new tokens (quick: 16), greedy, KV cache, at ``blocks.15.hook_resid_post``:
unsteered vs CAA, StepODESteer, ODESteer (Euler and RK4, 10 steps) at scope ``"last"`` and
ODESteer at scope ``"all"``. Steerers are fitted on the built-in sentiment set. Also measured:
the hook's own cost per decoding call (a ``SteeringHook`` call minus the steerer's maths), next
to the time of one decoding step.
"""

from __future__ import annotations

import torch

import lens_odesteer as lo
from benchmarks._timing import compare, machine
from lens_odesteer.hooks import SteeringHook
from lens_odesteer.hooks.scope import PromptLayout

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
TARGETS = {
    "CAA (scope last)": 1.02,
    "ODESteer (scope last, Euler x10)": 1.05,
    "ODESteer (scope last, RK4 x10)": 1.15,
}


class _Point:
    name = "blocks.15.hook_resid_post"


def _hook_overhead(steerer: lo.CAA, d_model: int) -> tuple[float, float]:
    """Median seconds of one decoding-step hook call and of the steerer maths inside it."""
    hook = SteeringHook(steerer, 1.0, scope="last")
    mask = torch.ones(len(PROMPTS), 6, dtype=torch.long)
    hook.set_layout(PromptLayout.from_attention_mask(mask, kv=True))
    point = _Point()
    hook(torch.randn(len(PROMPTS), 6, d_model), hook=point)  # the prefill call
    step = torch.randn(len(PROMPTS), 1, d_model)
    flat = step[:, 0]
    med = compare(
        {"hook": lambda: hook(step, hook=point), "maths": lambda: steerer._steer(flat, 1.0)},
        repeats=200,
        warmup=20,
        show=False,
    )
    return med["hook"], med["maths"]


def run(quick: bool = False) -> None:
    n_new = 16 if quick else 64
    model = lo.load_model(progress=False)
    print(
        f"== generate: {len(PROMPTS)} prompts x {n_new} new tokens, greedy, KV cache, "
        "blocks.15.hook_resid_post"
    )
    print(f"   machine: {machine()}")
    hook = lo.resid_post(15)
    data = lo.load_builtin("sentiment")
    pos = lo.collect_activations(model, data.positive_texts(), hook, progress=False)
    neg = lo.collect_activations(model, data.negative_texts(), hook, progress=False)
    assert isinstance(pos, torch.Tensor) and isinstance(neg, torch.Tensor)
    ode, caa = lo.ODESteer().fit(pos, neg), lo.CAA().fit(pos, neg)
    step = lo.StepODESteer().fit(pos, neg)
    rk4 = lo.ODESteer(solver="rk4").fit(pos, neg)
    T = float(caa.direction_.norm())

    def gen(plan: dict | None, strength: float | None = None, scope: str = "last") -> object:
        return lo.generate(
            model, PROMPTS, plan, T=strength, scope=scope, max_new_tokens=n_new, stop_at_eos=False
        )

    medians = compare(
        {
            "unsteered": lambda: gen(None),
            "CAA (scope last)": lambda: gen({hook: caa}, 1.0),
            "StepODESteer (scope last)": lambda: gen({hook: step}, T),
            "ODESteer (scope last, Euler x10)": lambda: gen({hook: ode}, T),
            "ODESteer (scope last, RK4 x10)": lambda: gen({hook: rk4}, T),
            "ODESteer (scope all, Euler x10)": lambda: gen({hook: ode}, T, "all"),
        },
        repeats=3 if quick else 7,
        warmup=1,
    )
    base = medians["unsteered"]
    print("| method | tokens/s | time / unsteered | target |")
    print("| :--- | ---: | ---: | ---: |")
    for name, med in medians.items():
        target = TARGETS.get(name)
        mark = (
            ""
            if target is None
            else f"<= x{target:.2f} " + ("met" if med / base <= target else "NOT met")
        )
        print(f"| {name} | {len(PROMPTS) * n_new / med:.1f} | x{med / base:.3f} | {mark} |")
    hook_s, maths_s = _hook_overhead(caa, pos.shape[-1])
    per_token = base / n_new
    print(
        f"    hook bookkeeping per decoding call: {(hook_s - maths_s) * 1e6:.0f} us (CAA maths "
        f"{maths_s * 1e6:.0f} us); unsteered generation takes {per_token * 1e3:.1f} ms per token "
        f"step of the batch, so the hook itself adds {(hook_s - maths_s) / per_token * 100:.3f}%"
    )


if __name__ == "__main__":
    run()
