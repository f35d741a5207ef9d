"""scripts/paper_scale.py end to end on CPU with a tiny Llama folder: outputs exist, a second
invocation resumes without recomputing; layer choice, family detection and batch sizing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from lens_odesteer.errors import DataNotFoundError

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "paper_scale.py"
sys.path.insert(0, str(SCRIPT.parent))
import paper_scale  # noqa: E402


def _tiny_folder(folder: Path) -> Path:
    """A 2-layer random Llama with the byte tokenizer, saved as a Hugging Face folder."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from lens_odesteer.models.tiny import byte_tokenizer

    tokenizer = byte_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _run(args: list[str]) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_paper_scale_runs_and_resumes(tmp_path: Path) -> None:
    from lens_odesteer.evaluation.tasks import make_task

    try:
        make_task("truthfulqa_mc", quick=True)
    except DataNotFoundError as exc:
        pytest.skip(f"evaluation data missing: {exc}")
    model = _tiny_folder(tmp_path / "tiny-llama")
    out = tmp_path / "out"
    args = [
        "--model", str(model), "--device", "cpu", "--dtype", "float32", "--quick",
        "--tasks", "truthfulqa_mc", "--methods", "CAA,ODESteer", "--out", str(out),
        "--threads", "1",
    ]  # fmt: skip
    first = _run(args)
    # the tiny Llama has 2 layers, so the authors' layer 13 gives way to the middle one
    assert "steering layer 1 (the middle layer: the authors' layer 13 for llama" in first
    assert f"results: {out}" in first
    task = out / "truthfulqa_mc"
    for name in ("summary.csv", "paired.csv", "units.csv", "results.json", "report.md"):
        assert (task / name).stat().st_size > 0, name
    plan = json.loads((out / "paper_scale.json").read_text())
    assert plan["layer"] == 1 and plan["dtype"] == "float32" and plan["batch_size"] == 16
    computed = plan["tasks"]["truthfulqa_mc"]["parts_computed"]
    assert computed > 0
    summary = (task / "summary.csv").read_bytes()
    second = _run(args)
    plan = json.loads((out / "paper_scale.json").read_text())
    assert plan["tasks"]["truthfulqa_mc"]["parts_computed"] == 0
    assert plan["tasks"]["truthfulqa_mc"]["parts_reused"] >= computed
    assert "0 parts computed" in second
    assert (task / "summary.csv").read_bytes() == summary


@pytest.mark.parametrize(
    ("name", "family", "layer"),
    [
        ("/m/Meta-Llama-3.1-8B", "llama", 13),
        ("/m/Mistral-7B-v0.1", "mistral", 15),
        ("/m/falcon-7b", "falcon", 14),
        ("/m/Qwen2.5-7B", "qwen2", 13),
        ("/m/gpt2", None, 16),
    ],
)
def test_authors_layers(name: str, family: str | None, layer: int) -> None:
    assert paper_scale.model_family(name) == family
    assert paper_scale.paper_layer(family, 32)[0] == layer


def test_family_from_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mistral"}))
    assert paper_scale.model_family(str(tmp_path)) == "mistral"


def test_batch_size_off_gpu_and_bad_options() -> None:
    model = SimpleNamespace(cfg=SimpleNamespace(d_vocab=128_256, d_model=4096, n_layers=32))
    assert paper_scale.batch_size_for(model, "cpu") == 16
    from lens_odesteer.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="unknown"):
        paper_scale.parse_args(["--model", "x", "--device", "cpu", "--tasks", "nope"])
    with pytest.raises(InvalidParameterError, match="--batch-size"):
        paper_scale.parse_args(["--model", "x", "--device", "cpu", "--batch-size", "0"])
    if not torch.cuda.is_available():
        with pytest.raises(InvalidParameterError, match="no CUDA"):
            paper_scale.parse_args(["--model", "x", "--device", "cuda"])
