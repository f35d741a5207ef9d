"""Fixtures of the shared hook suite, for whichever TransformerLens is installed.

* main ``.venv`` (TL 4): ``tiny`` is the random Llama ``TransformerBridge`` and ``smol`` SmolLM2
  loaded by :func:`lens_odesteer.models.load_model`;
* ``.venv-tl2`` (TL 2.18): ``tiny`` is a random ``HookedTransformer`` in two architectures
  (Llama-like and GPT-2-like, so every test runs twice) and ``smol`` SmolLM2 as the
  ``HookedTransformer`` that :func:`lens_odesteer.models.load_model` gives under TL 2.x/3.x.

``fresh_tiny`` is a private model with the weights of ``tiny`` for tests that add hooks of their
own or change the model. Steerers are fitted on the model's own activations.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.activations import collect_activations
from lens_odesteer.models.names import resid_post
from tests.hooks._shared import NEG_TEXTS, POS_TEXTS, TINY_HOOK
from tests.hooks.suite._backend import (
    SMOL_LAYER,
    TINY_PARAMS,
    attached_hooks,
    load_smol,
    tiny_model,
)


@pytest.fixture(scope="session", params=TINY_PARAMS)
def tiny(request: pytest.FixtureRequest) -> Any:
    """A shared tiny model of this backend; tests must leave no hook on it."""
    return tiny_model(request.param)


@pytest.fixture
def fresh_tiny(tiny: Any) -> Any:
    """A private model with the weights of ``tiny``."""
    return tiny_model("llama" if getattr(tiny.cfg, "gated_mlp", True) else "gpt2")


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
    return load_smol()


@pytest.fixture(scope="session")
def smol_acts(smol: Any) -> tuple[torch.Tensor, torch.Tensor]:
    name = resid_post(SMOL_LAYER)
    pos = collect_activations(smol, POS_TEXTS, name, progress=False)
    neg = collect_activations(smol, NEG_TEXTS, name, progress=False)
    return pos, neg


@pytest.fixture(scope="session")
def smol_ode(smol_acts: tuple[torch.Tensor, torch.Tensor]) -> lo.ODESteer:
    return lo.ODESteer(lo.sketch_barrier(n_components=256)).fit(*smol_acts)


@pytest.fixture(scope="session")
def smol_caa(smol_acts: tuple[torch.Tensor, torch.Tensor]) -> lo.CAA:
    return lo.CAA().fit(*smol_acts)
