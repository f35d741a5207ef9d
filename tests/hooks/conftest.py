"""Fixtures for the bridge-only hook tests: a tiny random Llama bridge and fitted steerers.

The tests shared by both backends live in tests/hooks/suite/, whose conftest overrides these
fixtures with the models of whichever TransformerLens is installed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.activations import collect_activations
from lens_odesteer.models import tiny_bridge
from tests.hooks._shared import NEG_TEXTS, POS_TEXTS, TINY_HOOK


@pytest.fixture(scope="package", autouse=True)
def _torch_threads() -> Iterator[None]:
    """Run these tests on one torch thread (override: LENS_ODESTEER_TEST_THREADS).

    Small forward passes spend most of their time in OpenMP hand-offs, which stall for a
    scheduler tick on a busy 2-core machine; one thread is faster and far more stable there.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("LENS_ODESTEER_TEST_THREADS", "1")))
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny() -> object:
    """A shared 2-layer random Llama bridge; tests must leave no hooks on it."""
    return tiny_bridge()


@pytest.fixture
def fresh_tiny() -> object:
    """A private tiny bridge, for tests that add hooks of their own or change the dtype."""
    return tiny_bridge()


@pytest.fixture(scope="session")
def tiny_acts(tiny: object) -> tuple[torch.Tensor, torch.Tensor]:
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
    for name in ("tiny",):
        if name in request.fixturenames:
            model = request.getfixturevalue(name)
            assert model.list_hooks() == {}, model.list_hooks()  # type: ignore[attr-defined]
