"""Generation overhead of steering on a random-weight Llama-style model, for GPUs.

The same measurement as ``python -m benchmarks generate`` (8 prompts, 64 new tokens, greedy, KV
cache; unsteered vs CAA, StepODESteer, ODESteer Euler x10 and RK4 x10 at scope ``last``, and
ODESteer at scope ``all``), on a model of realistic width: a Llama-3-8B-shaped config (d_model
4096, 32 layers, 32 heads / 8 KV heads, MLP 14336, vocab 128256) with random weights in bfloat16,
built from a ``transformers.LlamaConfig`` (nothing is downloaded) and wrapped in a
TransformerLens ``TransformerBridge``. Speed does not depend on the weights. Steerers are fitted
on the activations of the built-in sentiment texts at the middle layer; the steering maths runs
in float32 on the GPU (the hooks' default for bf16 models).

Also timed: one ``ODESteer.steer`` call at this width on the device, with the FFT path the
library uses at d_model > 2048 and with the exact quadratic form (the same numbers, a dense
``d x d`` matrix), to show which is faster on this device.

    python scripts/check_gpu_overhead.py               # cuda, the 8B-shaped model
    python scripts/check_gpu_overhead.py --tiny        # cpu, a tiny model: checks the code path

Run from the repository root (it imports the ``benchmarks`` helpers).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lens_odesteer as lo
from benchmarks._timing import compare, machine
from lens_odesteer.barriers import KernelLogisticBarrier
from lens_odesteer.models.kv_patch import apply_kv_cache_patch
from lens_odesteer.models.tiny import byte_tokenizer

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
BIG = {
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "rope_theta": 500000.0,
}
TINY = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 1024,  # larger than the byte tokenizer, as the big config is
    "rope_theta": 10000.0,
}


def build_model(shape: dict[str, Any], device: str, dtype: torch.dtype, seed: int) -> Any:
    """A random-weight Llama ``TransformerBridge`` with the byte-level tokenizer."""
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import LlamaConfig, LlamaForCausalLM

    apply_kv_cache_patch()
    tokenizer = byte_tokenizer()
    config = LlamaConfig(
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **shape,
    )
    config.architectures = ["LlamaForCausalLM"]
    torch.manual_seed(seed)
    with torch.device(device):
        hf_model: Any = LlamaForCausalLM(config)
    hf_model = hf_model.to(dtype=dtype).eval()
    hf_model.requires_grad_(False)
    return TransformerBridge.boot_transformers(
        "lens_odesteer/random-llama",
        hf_model=hf_model,
        tokenizer=tokenizer,
        device=device,
        dtype=dtype,
    )


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn: Callable[[], object], device: str) -> Callable[[], object]:
    def run() -> object:
        out = fn()
        _sync(device)
        return out

    return run


def steer_paths(
    ode: lo.ODESteer, device: str, repeats: int, batches: tuple[int, ...] = (1, 8, 64, 512)
) -> list[str]:
    """Time ``steer`` on the device with the FFT path and with the exact quadratic form."""
    fft = ode.to(device)
    quad = ode.to(device)
    bar = quad.barrier_
    assert isinstance(bar, KernelLogisticBarrier)
    bar._enable_quadratic(min_rows=0)  # the library's exact quadratic form, at every batch
    fft.barrier_._quadratic = None  # type: ignore[attr-defined]
    lines = []
    d = ode.d_model_
    for batch in batches:
        acts = torch.randn(batch, d, device=device) * 10
        a, b = fft.steer(acts, 5.0), quad.steer(acts, 5.0)
        err = float((a - b).abs().max() / a.abs().max())
        med = compare(
            {
                "fft": _timed(partial(fft.steer, acts, 5.0), device),
                "quad": _timed(partial(quad.steer, acts, 5.0), device),
            },
            repeats=repeats,
            warmup=2,
            show=False,
        )
        lines.append(
            f"| {d} | {batch} | {med['fft'] * 1e3:.2f} | {med['quad'] * 1e3:.2f} | "
            f"x{med['fft'] / med['quad']:.2f} | {err:.0e} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny model on the CPU (code check)")
    parser.add_argument("--device", default=None, help="default: cuda, or cpu with --tiny")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--layer", type=int, default=None, help="default: the middle block")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--batches", default="1,8,64,512", help="batches of the steer-path timing (comma list)"
    )
    args = parser.parse_args(argv)
    device = args.device or ("cpu" if args.tiny else "cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("CUDA is not available here; run with --tiny for a CPU check.", file=sys.stderr)
        return 2
    shape = TINY if args.tiny else BIG
    dtype = torch.float32 if args.tiny else torch.bfloat16
    start = time.perf_counter()
    model = build_model(shape, device, dtype, args.seed)
    built = time.perf_counter() - start
    n_layers = int(shape["num_hidden_layers"])
    layer = n_layers // 2 if args.layer is None else args.layer
    hook = lo.resid_post(layer)
    where = torch.cuda.get_device_name(device) if device.startswith("cuda") else machine()
    print(
        f"== GPU overhead check: random Llama d_model {shape['hidden_size']}, {n_layers} layers, "
        f"vocab {shape['vocab_size']}, {str(dtype).removeprefix('torch.')}, on {device} "
        f"({where}); built in {built:.1f} s"
    )
    data = lo.load_builtin("sentiment")
    pos = lo.collect_activations(model, data.positive_texts(), hook, progress=False)
    neg = lo.collect_activations(model, data.negative_texts(), hook, progress=False)
    assert isinstance(pos, torch.Tensor) and isinstance(neg, torch.Tensor)
    caa = lo.CAA().fit(pos, neg)
    ode = lo.ODESteer().fit(pos, neg)
    step = lo.StepODESteer().fit(pos, neg)
    rk4 = lo.ODESteer(solver="rk4").fit(pos, neg)
    T = float(caa.direction_.norm())

    def gen(plan: dict | None, strength: float | None = None, scope: str = "last") -> object:
        return lo.generate(
            model,
            PROMPTS,
            plan,
            T=strength,
            scope=scope,
            max_new_tokens=args.new_tokens,
            stop_at_eos=False,
        )

    candidates = {
        "unsteered": lambda: gen(None),
        "CAA (scope last)": lambda: gen({hook: caa}, 1.0),
        "StepODESteer (scope last)": lambda: gen({hook: step}, T),
        "ODESteer (scope last, Euler x10)": lambda: gen({hook: ode}, T),
        "ODESteer (scope last, RK4 x10)": lambda: gen({hook: rk4}, T),
        "ODESteer (scope all, Euler x10)": lambda: gen({hook: ode}, T, "all"),
    }
    med = compare(
        {k: _timed(v, device) for k, v in candidates.items()},
        repeats=args.repeats,
        warmup=1,
        show=False,
    )
    base = med["unsteered"]
    n_tok = len(PROMPTS) * args.new_tokens
    print(f"\n{len(PROMPTS)} prompts x {args.new_tokens} new tokens, greedy, KV cache, {hook}")
    print("| method | tokens/s | time / unsteered |")
    print("| :--- | ---: | ---: |")
    for name, sec in med.items():
        print(f"| {name} | {n_tok / sec:.1f} | x{sec / base:.3f} |")
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated(device) / 2**30
        print(f"peak GPU memory allocated: {peak:.1f} GiB")
    print(f"\nODESteer.steer on {device} (Euler x10), ms per call: FFT path vs quadratic form")
    print("| d_model | batch | FFT ms | quadratic ms | FFT / quadratic | max rel diff |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    batches = tuple(int(b) for b in args.batches.split(","))
    for line in steer_paths(ode, device, repeats=max(args.repeats, 5), batches=batches):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
