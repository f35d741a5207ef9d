"""Texts per second of ``lo.collect_activations`` against a plain forward pass, same batches.

Texts: the built-in sentiment set (141 positive + 141 negative sentences; quick: 64 of them),
on the default model, batch size 16. The baselines run ``model(tokens, attention_mask=mask)`` over
exactly the batches ``collect_activations`` forms (texts sorted by token count, left-padded),
tokenised beforehand (so tokenisation counts against ``collect_activations`` only): once through
the whole model, and once stopped after block 15 (``stop_at_layer=16``), which is the work
``collect_activations`` at ``blocks.15.hook_resid_post`` needs; at the last block it runs the
whole model.
"""

from __future__ import annotations

import torch

import lens_odesteer as lo
from benchmarks._timing import compare, machine
from lens_odesteer.models.tokens import pad_token_id, pad_tokens, tokenize

BATCH = 16


def _batches(model: object, texts: list[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    toks = [tokenize(model, t) for t in texts]
    order = sorted(range(len(toks)), key=lambda i: len(toks[i]))
    pad_id = pad_token_id(model)
    out = []
    for start in range(0, len(order), BATCH):
        batch = pad_tokens([toks[i] for i in order[start : start + BATCH]], pad_id)
        out.append((batch.ids, batch.attention_mask))
    return out


def run(quick: bool = False) -> None:
    model = lo.load_model(progress=False)
    data = lo.load_builtin("sentiment")
    texts = data.positive_texts() + data.negative_texts()
    if quick:
        texts = texts[::4][:64]
    batches = _batches(model, texts)
    last = model.cfg.n_layers - 1
    print(
        f"== collect: {len(texts)} texts, batch {BATCH}, lo.collect_activations vs plain forward "
        "passes over the same padded batches"
    )
    print(f"   machine: {machine()}")

    def forward(stop: int | None) -> None:
        with torch.inference_mode():
            for tokens, mask in batches:
                model(tokens, attention_mask=mask, return_type=None, stop_at_layer=stop)

    def collect(layer: int) -> object:
        return lo.collect_activations(
            model, texts, lo.resid_post(layer), batch_size=BATCH, progress=False
        )

    med = compare(
        {
            "forward, whole model": lambda: forward(None),
            f"collect_activations at block {last} (last)": lambda: collect(last),
            "forward, stopped after block 15": lambda: forward(16),
            "collect_activations at block 15": lambda: collect(15),
        },
        repeats=3 if quick else 7,
        warmup=1,
    )
    n = len(texts)
    print(
        f"    texts/s: forward {n / med['forward, whole model']:.1f}, collect at block {last} "
        f"{n / med[f'collect_activations at block {last} (last)']:.1f} (x"
        f"{med[f'collect_activations at block {last} (last)'] / med['forward, whole model']:.2f}"
        f" the time); forward to block 15 {n / med['forward, stopped after block 15']:.1f}, "
        f"collect at block 15 {n / med['collect_activations at block 15']:.1f} (x"
        f"{med['collect_activations at block 15'] / med['forward, stopped after block 15']:.2f})"
    )


if __name__ == "__main__":
    run()
