"""``lo.load_model()`` under TL 2.x/3.x: a classic HookedTransformer, checked on tiny local models.

The real SmolLM2 load is in test_smollm2.py (slow); here random-weight Llama checkpoints saved
to a temporary folder go through the same path (folder -> HF model -> explicit config ->
converted weights) in well under a second each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from transformer_lens import HookedTransformer
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

import lens_odesteer as lo
from lens_odesteer.errors import InvalidParameterError, ModelLoadError
from lens_odesteer.models import loading
from lens_odesteer.models.classic import classic_config, fix_special_tokens
from lens_odesteer.models.loading import default_gguf_path, model_provenance
from lens_odesteer.models.tiny import byte_tokenizer
from tests.tl2._shared import LOAD_PROVENANCE_KEYS, tiny_hooked_transformer

IDS = torch.tensor([[1, 40, 41, 42, 75, 80]])


def llama_config(**overrides: Any) -> LlamaConfig:
    kwargs: dict[str, Any] = {
        "vocab_size": 259,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 64,
        "rope_theta": 50000.0,  # not TL's default 10000: the conversion must carry it over
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 2,
        **overrides,
    }
    return LlamaConfig(**kwargs)


def save(folder: Path, hf: Any) -> Path:
    hf.save_pretrained(folder)
    byte_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture
def llama_folder(tmp_path: Path) -> tuple[Path, Any]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        hf = LlamaForCausalLM(llama_config()).eval()
    return save(tmp_path / "tiny-llama", hf), hf


def test_a_local_llama_folder_becomes_a_hooked_transformer(llama_folder: tuple[Path, Any]) -> None:
    folder, hf = llama_folder
    model = lo.load_model(folder, progress=False)
    assert isinstance(model, HookedTransformer)
    with torch.inference_mode():
        torch.testing.assert_close(model(IDS), hf(IDS).logits, rtol=0, atol=1e-5)
    assert (model.cfg.n_ctx, model.cfg.rotary_base) == (64, 50000.0)  # min(positions, 2048)
    assert model.to_tokens("Hi").tolist() == [[1, 42, 75]]
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    info = model_provenance(model)
    assert set(info) == LOAD_PROVENANCE_KEYS  # the bridge reports the same fields
    assert (info["backend"], info["source"], info["loaded_from"], info["model_name"]) == (
        "HookedTransformer",
        "folder",
        "folder",
        "tiny-llama",
    )
    assert (info["n_layers"], info["d_model"], info["d_vocab"], info["dtype"]) == (
        2,
        32,
        259,
        "float32",
    )


def test_n_ctx_and_dtype(llama_folder: tuple[Path, Any]) -> None:
    folder, hf = llama_folder
    short = lo.load_model(folder, n_ctx=16, progress=False)
    assert short.cfg.n_ctx == 16
    half = lo.load_model(folder, dtype=torch.bfloat16, progress=False)
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}
    assert model_provenance(half)["dtype"] == "bfloat16"
    with torch.inference_mode():
        torch.testing.assert_close(half(IDS).float(), hf(IDS).logits, rtol=0, atol=0.05)


@pytest.mark.parametrize("n_ctx", [0, -5, True, 2.5])
def test_bad_n_ctx_is_refused_before_loading(n_ctx: object) -> None:
    with pytest.raises(InvalidParameterError, match="n_ctx"):
        lo.load_model("/no/such/folder", n_ctx=n_ctx, progress=False)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"attention_bias": True}, "attention biases"),
        ({"mlp_bias": True}, "MLP biases"),
        ({"rope_scaling": {"rope_type": "linear", "factor": 2.0}}, "rope type 'linear'"),
    ],
)
def test_llama_variants_the_conversion_would_drop_are_refused(
    overrides: dict[str, Any], match: str
) -> None:
    with pytest.raises(ModelLoadError, match=match):
        classic_config(llama_config(**overrides))


def test_other_local_architectures_are_refused(tmp_path: Path) -> None:
    cfg = GPT2Config(vocab_size=259, n_embd=32, n_layer=1, n_head=2, n_positions=64)
    folder = save(tmp_path / "tiny-gpt2", GPT2LMHeadModel(cfg))
    with pytest.raises(ModelLoadError, match="cannot convert this 'gpt2' model"):
        lo.load_model(folder, progress=False)


def test_hub_names_transformer_lens_knows_go_through_it(monkeypatch: pytest.MonkeyPatch) -> None:
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=259, n_embd=32, n_layer=1, n_head=2)).eval()
    monkeypatch.setattr(loading, "_load_hub", lambda name, dtype: (gpt2, byte_tokenizer()))
    calls: list[tuple[str, dict[str, Any]]] = []

    def from_pretrained_no_processing(name: str, **kwargs: Any) -> Any:
        calls.append((name, kwargs))
        return tiny_hooked_transformer("gpt2")

    monkeypatch.setattr(
        HookedTransformer, "from_pretrained_no_processing", from_pretrained_no_processing
    )
    model = lo.load_model("gpt2", n_ctx=32, progress=False)
    [(name, kwargs)] = calls
    assert name == "gpt2" and kwargs["hf_model"] is gpt2 and kwargs["n_ctx"] == 32
    info = model_provenance(model)
    assert (info["source"], info["loaded_from"], info["backend"]) == (
        "hub",
        "hub",
        "HookedTransformer",
    )
    monkeypatch.setattr(loading, "_load_hub", lambda name, dtype: (gpt2, byte_tokenizer()))
    with pytest.raises(ModelLoadError, match="hub name that TransformerLens lists"):
        lo.load_model("someone/unknown-gpt2-finetune", progress=False)


def test_special_tokens_follow_the_config() -> None:
    """transformers 4.x reads SmolLM2's GGUF tokenizer with EOS = BOS and no pad."""
    tok = byte_tokenizer()
    tok.eos_token, tok.pad_token = "<|im_start|>", None
    fix_special_tokens(tok, llama_config())
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == (
        "<|im_start|>",
        "<|im_end|>",
        "<|im_end|>",
    )
    tok.pad_token = "<|endoftext|>"
    fix_special_tokens(tok, llama_config(eos_token_id=None))  # nothing to go by: unchanged
    assert (tok.eos_token, tok.pad_token) == ("<|im_end|>", "<|endoftext|>")


def test_transformers_4_keeps_its_own_cache_folder() -> None:
    """A folder written by transformers 5 (TL 4, or TL 3.x) is misread by 4.x (TL 2.x), so
    transformers 4 writes its own; 5 shares the TL 4 folder."""
    gguf = default_gguf_path()
    major = int(transformers.__version__.split(".")[0])
    slug, manifest = loading._cache_slug(gguf), loading._cache_manifest(gguf)
    if major < 5:
        assert slug.endswith(f"-transformers{major}") and manifest["transformers_major"] == major
    else:
        assert slug == f"{gguf.stem}-{gguf.stat().st_size}" and "transformers_major" not in manifest
