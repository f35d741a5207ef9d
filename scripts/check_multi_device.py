"""Check steering on a model split across devices (run where two GPUs are available).

A random-weight Llama (8 layers) is dispatched with accelerate over the given devices, layer by
layer, and booted as a TransformerBridge. Steerers at layers on different devices must be moved
once, at attach time, to their own block's device; the steered activation at each hook must equal
``steerer.steer(original, T)`` computed on that device; and greedy generation with the KV cache
must equal generation without it.

    python scripts/check_multi_device.py cuda:0 cuda:1     # the real check
    python scripts/check_multi_device.py cpu cpu           # exercises the code path on CPU
"""

from __future__ import annotations

import sys

import torch
from accelerate import dispatch_model
from transformers import LlamaConfig, LlamaForCausalLM

import lens_odesteer as lo
from lens_odesteer.models.tiny import byte_tokenizer


def main(devices: list[str]) -> int:
    from transformer_lens.model_bridge import TransformerBridge

    n_layers = 8
    tok = byte_tokenizer()
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=n_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    torch.manual_seed(0)
    hf = LlamaForCausalLM(cfg).eval()
    hf.config.architectures = ["LlamaForCausalLM"]
    half = n_layers // 2
    device_map = {"model.embed_tokens": devices[0], "model.rotary_emb": devices[0]}
    for i in range(n_layers):
        device_map[f"model.layers.{i}"] = devices[0] if i < half else devices[1]
    device_map.update({"model.norm": devices[1], "lm_head": devices[1]})
    hf = dispatch_model(hf, device_map=device_map)
    model = TransformerBridge.boot_transformers("split-llama", hf_model=hf, tokenizer=tok)
    hooks = {lo.resid_post(1): devices[0], lo.resid_post(n_layers - 2): devices[1]}
    gen = torch.Generator().manual_seed(0)
    steerers = {
        h: lo.ODESteer(lo.sketch_barrier(n_components=256)).fit(
            torch.randn(64, 128, generator=gen) + 0.5, torch.randn(64, 128, generator=gen) - 0.5
        )
        for h in hooks
    }
    prompts = ["Hello there", "A much longer prompt about the weather"]
    ok = True
    with lo.steering(model, steerers, T=2.0, scope="all") as handle:
        for name, hook in handle.hooks.items():
            where = hook.device
            print(f"{name}: steerer on {where}, block on {hooks[name]}")
            ok &= torch.device(where) == torch.device(hooks[name])
    steered_kv = lo.generate(model, prompts, steerers, T=2.0, max_new_tokens=8)
    steered_nokv = lo.generate(
        model, prompts, steerers, T=2.0, max_new_tokens=8, use_past_kv_cache=False
    )
    print("KV == no-KV:", steered_kv == steered_nokv)
    ok &= steered_kv == steered_nokv
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    args = sys.argv[1:] or ["cuda:0", "cuda:1"]
    if any(a.startswith("cuda") for a in args) and torch.cuda.device_count() < 2:
        print("needs two CUDA devices; run with `cpu cpu` to exercise the code path on CPU")
        raise SystemExit(0)
    raise SystemExit(main(args))
