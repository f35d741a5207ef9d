"""Data for the fit benchmark: real SmolLM2 activations (width 576) and synthetic ones (any width).

Real: per-token residual activations at ``blocks.15.hook_resid_post`` of SmolLM2-135M-Instruct
on RealToxicityPrompts texts (prompt + continuation) from ``../shared/data``; label = the text
came from the toxic subset. Every token except BOS is one sample, and train and held-out tokens
come from disjoint texts (80/20 split by text), so the held-out accuracy is on unseen texts.
Collected once and cached in ``$LO_BENCH_CACHE`` (default: ``<tmp>/lens_odesteer_bench``).

Synthetic: Gaussian activations with a mean that has a few large coordinates (as residual
streams do), a low-rank anisotropic part (64 directions, power-law scales) plus isotropic noise
(0.5); the classes differ by a shift of +-1 along a direction outside the low-rank part and by
the variance along one low-rank direction (a second-order effect the degree-2 kernel can use).
ODESteer's held-out accuracy on it is about 0.83 at width 4096. Deterministic from the seed.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import torch

RTP_DIR = Path(__file__).resolve().parents[2] / "shared/data/realtoxicityprompts_decodingtrust"
LAYER = 15
BATCH = 16


def cache_dir() -> Path:
    root = os.environ.get("LO_BENCH_CACHE") or os.path.join(
        tempfile.gettempdir(), "lens_odesteer_bench"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def real_cache_path() -> Path:
    return cache_dir() / f"rtp_smollm2_l{LAYER}_tokens.pt"


def _texts(name: str) -> list[str]:
    rows = [json.loads(line) for line in (RTP_DIR / f"{name}.jsonl").read_text().splitlines()]
    return [r["prompt"]["text"] + r["continuation"]["text"] for r in rows]


def real_available() -> bool:
    return real_cache_path().exists() or (RTP_DIR / "toxic.jsonl").exists()


def build_real_cache() -> float:
    """Collect the per-token activations (if not cached); return the seconds it took."""
    path = real_cache_path()
    if path.exists():
        return 0.0
    import lens_odesteer as lo
    from lens_odesteer.models.tokens import pad_token_id, pad_tokens, tokenize

    start = time.perf_counter()
    model = lo.load_model(progress=False)
    name = lo.resid_post(LAYER)
    acts, labels, text_ids = [], [], []
    offset = 0
    for label, subset in ((True, "toxic"), (False, "nontoxic")):
        texts = _texts(subset)
        toks = [tokenize(model, t) for t in texts]
        order = sorted(range(len(toks)), key=lambda i: len(toks[i]))
        for b in range(0, len(order), BATCH):
            idx = order[b : b + BATCH]
            batch = pad_tokens([toks[i] for i in idx], pad_token_id(model))
            tokens, mask, width = batch.ids, batch.attention_mask, batch.ids.shape[1]
            store: dict[str, torch.Tensor] = {}

            def grab(a: torch.Tensor, hook: object, store: dict = store) -> None:
                store["a"] = a.detach()

            with torch.inference_mode(), model.hooks(fwd_hooks=[(name, grab)]):
                model(tokens, attention_mask=mask, return_type=None, stop_at_layer=LAYER + 1)
            for j, i in enumerate(idx):
                pad = width - len(toks[i])
                rows = store["a"][j, pad + 1 :].float().clone()  # skip BOS (attention sink)
                acts.append(rows)
                labels.append(torch.full((len(rows),), label))
                text_ids.append(torch.full((len(rows),), offset + i))
        offset += len(texts)
    torch.save(
        {"acts": torch.cat(acts), "labels": torch.cat(labels), "text": torch.cat(text_ids)},
        path,
    )
    return time.perf_counter() - start


def _balanced(acts: torch.Tensor, labels: torch.Tensor, n_per_class: int, seed: int) -> tuple:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for want in (True, False):
        idx = (labels == want).nonzero().flatten()
        if len(idx) < n_per_class:
            raise ValueError(f"only {len(idx)} samples of class {want}; need {n_per_class}")
        out.append(acts[idx[torch.randperm(len(idx), generator=gen)[:n_per_class]]])
    return out[0], out[1]


def real(n_train: int, n_test: int = 2000) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(pos_train, neg_train, test)``; ``test`` holds ``n_test / 2`` positives first."""
    data = torch.load(real_cache_path(), weights_only=True)
    acts, labels, text = data["acts"], data["labels"], data["text"]
    n_texts = int(text.max()) + 1
    held = torch.randperm(n_texts, generator=torch.Generator().manual_seed(0))[: n_texts // 5]
    is_test = torch.isin(text, held)
    tr_p, tr_n = _balanced(acts[~is_test], labels[~is_test], n_train // 2, 1)
    te_p, te_n = _balanced(acts[is_test], labels[is_test], n_test // 2, 2)
    return tr_p, tr_n, torch.cat([te_p, te_n])


def synthetic(
    n_train: int, d_model: int, n_test: int = 2000, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(pos_train, neg_train, test)``; ``test`` holds ``n_test / 2`` positives first."""
    gen = torch.Generator().manual_seed(seed)
    rank = min(64, d_model - 1)
    basis, _ = torch.linalg.qr(torch.randn(d_model, rank + 1, generator=gen))
    direction, basis = basis[:, rank], basis[:, :rank]
    scales = 6.0 * torch.arange(1, rank + 1, dtype=torch.float32) ** -0.5
    mean = torch.randn(d_model, generator=gen) * 0.5
    mean[torch.randperm(d_model, generator=gen)[:3]] = 30.0  # a few massive coordinates
    stretch = 1.8

    def draw(n: int, positive: bool) -> torch.Tensor:
        z = torch.randn(n, rank, generator=gen) * scales
        if positive:
            z[:, 1] *= stretch
        x = mean + z @ basis.T + 0.5 * torch.randn(n, d_model, generator=gen)
        return x + direction if positive else x - direction

    half = n_train // 2
    tr_p, tr_n = draw(half, True), draw(half, False)
    te = torch.cat([draw(n_test // 2, True), draw(n_test // 2, False)])
    return tr_p, tr_n, te
