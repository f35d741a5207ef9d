"""Fixtures for model tests: tiny random bridges (fast) and SmolLM2 loaded once per session."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from transformer_lens.model_bridge import TransformerBridge

from lens_odesteer.models import load_model, tiny_bridge


@pytest.fixture(scope="session")
def tiny() -> TransformerBridge:
    """A shared 2-layer random Llama; tests must not modify it (use ``fresh_tiny`` for that)."""
    return tiny_bridge()


@pytest.fixture
def fresh_tiny() -> TransformerBridge:
    """A private tiny bridge that a test may modify."""
    return tiny_bridge()


@contextmanager
def no_network() -> Iterator[list[object]]:
    """Refuse every outgoing socket connection; yield the list of attempted addresses."""
    attempts: list[object] = []
    original = socket.socket.connect

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError(f"network disabled in tests (tried {address!r})")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    try:
        yield attempts
    finally:
        socket.socket.connect = original  # type: ignore[method-assign]


@dataclass
class SmolLoads:
    """SmolLM2 loaded twice into one fresh cache folder: from the GGUF, then from the cache."""

    first: TransformerBridge
    cached: TransformerBridge
    first_s: float
    cached_s: float
    cache_root: Path
    network_attempts: list[object]


@pytest.fixture(scope="session")
def smol_loads(tmp_path_factory: pytest.TempPathFactory) -> SmolLoads:
    # A fresh cache root, as on a CI machine: the first load always takes the GGUF path.
    root = tmp_path_factory.mktemp("lens_odesteer_cache")
    with no_network() as attempts:
        start = time.perf_counter()
        first = load_model(cache_dir=root, progress=False)
        first_s = time.perf_counter() - start
        start = time.perf_counter()
        cached = load_model(cache_dir=root, progress=False)
        cached_s = time.perf_counter() - start
    return SmolLoads(first, cached, first_s, cached_s, root, attempts)


@pytest.fixture(scope="session")
def smol(smol_loads: SmolLoads) -> TransformerBridge:
    """SmolLM2-135M-Instruct (cached load); shared, so tests must not modify it."""
    return smol_loads.cached
