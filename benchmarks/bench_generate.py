"""Steered generation on the default model, timed in one process, interleaved.

8 prompts, 64 new tokens (quick: 16), greedy, KV cache, at ``blocks.15.hook_resid_post``:
unsteered vs CAA, StepODESteer, ODESteer (Euler and RK4, 10 steps) at scope ``"last"`` and
ODESteer at scope ``"all"``. Steerers are fitted on the built-in sentiment set.

End-to-end ratios are the median over rounds of (candidate time / unsteered time in the same
round), with the lowest and highest round: on a shared 2-core machine a whole generation varies
by several percent from call to call, more than the effect of the cheaper steerers. So the cost
is also measured where it arises: one ``SteeringHook`` call of each steerer on a decoding step
(batch 8, one new position), timed 200 times, as a share of one unsteered decoding step, and the
hook's own bookkeeping (the CAA hook call minus its maths).
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Callable

import torch

import lens_odesteer as lo
from benchmarks._timing import compare, machine, round_ratios, time_rounds
from lens_odesteer.hooks import SteeringHook
from lens_odesteer.hooks.scope import PromptLayout
from lens_odesteer.steerers import AbstractSteerer

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


def _decode_hook(
    model: object, steerer: AbstractSteerer, T: float, acts: torch.Tensor, scope: str
) -> Callable[[], object]:
    """A SteeringHook set up as in generation, after its prefill call: next calls are decoding."""
    hook = SteeringHook(model, steerer, T=T, scope=scope)
    mask = torch.ones(len(PROMPTS), 6, dtype=torch.long)
    # The generation session lo.generate opens, left open for the timed decoding calls.
    hook.session(PromptLayout.from_attention_mask(mask, kv=True)).__enter__()
    point = _Point()
    hook(acts[:, None].expand(-1, 6, -1).clone(), hook=point)  # the prefill call
    step = acts[:, None].clone()
    return lambda: hook(step, hook=point)


def _hook_costs(
    model: object,
    steerers: dict[str, tuple[AbstractSteerer, float, str]],
    acts: torch.Tensor,
) -> dict[str, float]:
    """Median seconds of one decoding-step hook call per steerer, and of CAA's bare maths."""
    calls = {
        name: _decode_hook(model, st, T, acts, scope) for name, (st, T, scope) in steerers.items()
    }
    caa = steerers["CAA (scope last)"][0]
    calls["CAA maths only"] = lambda: caa._steer(acts, 1.0)
    return compare(calls, repeats=200, warmup=20, show=False)


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

    steerers: dict[str, tuple[AbstractSteerer, float, str]] = {
        "CAA (scope last)": (caa, 1.0, "last"),
        "StepODESteer (scope last)": (step, T, "last"),
        "ODESteer (scope last, Euler x10)": (ode, T, "last"),
        "ODESteer (scope last, RK4 x10)": (rk4, T, "last"),
        "ODESteer (scope all, Euler x10)": (ode, T, "all"),
    }
    candidates: dict[str, Callable[[], object]] = {"unsteered": lambda: gen(None)}
    for name, (st, strength, scope) in steerers.items():
        candidates[name] = functools.partial(gen, {hook: st}, strength, scope)
    samples = time_rounds(candidates, repeats=3 if quick else 9, warmup=1)
    ratios = round_ratios(samples, "unsteered")
    base = statistics.median(samples["unsteered"])
    per_step = base / n_new
    costs = _hook_costs(model, steerers, neg[: len(PROMPTS)].clone())
    print(
        "| method | tokens/s | time / unsteered (median of rounds) | lowest-highest round | "
        "hook per decoding step | as share of a step | target |"
    )
    print("| :--- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, times in samples.items():
        med, ratio = statistics.median(times), statistics.median(ratios[name])
        target = TARGETS.get(name)
        mark = (
            ""
            if target is None
            else f"<= x{target:.2f} " + ("met" if ratio <= target else "NOT met")
        )
        cost = costs.get(name)
        hook_ms = "" if cost is None else f"{cost * 1e3:.2f} ms"
        share = "" if cost is None else f"{100 * cost / per_step:.2f}%"
        print(
            f"| {name} | {len(PROMPTS) * n_new / med:.1f} | x{ratio:.3f} | "
            f"x{ratios[name][0]:.3f}-x{ratios[name][-1]:.3f} | {hook_ms} | {share} | {mark} |"
        )
    bookkeeping = costs["CAA (scope last)"] - costs["CAA maths only"]
    print(
        f"    one unsteered decoding step of the batch takes {per_step * 1e3:.1f} ms; the hook's "
        f"own bookkeeping is {bookkeeping * 1e6:.0f} us of it "
        f"({100 * bookkeeping / per_step:.3f}%), CAA's maths {costs['CAA maths only'] * 1e6:.0f} us"
    )


if __name__ == "__main__":
    run()
