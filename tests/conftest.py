"""Shared fixtures and hypothesis settings for the whole suite."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    deadline=None,
    max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "25")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
settings.load_profile("default")


@pytest.fixture
def blobs64() -> tuple[torch.Tensor, torch.Tensor]:
    """Two overlapping float64 Gaussian blobs in 8 dimensions (40 rows each), seeded."""
    gen = torch.Generator().manual_seed(0)
    shift = torch.zeros(8, dtype=torch.float64)
    shift[0] = 1.0
    pos = torch.randn(40, 8, generator=gen, dtype=torch.float64) + shift + 3.0
    neg = torch.randn(40, 8, generator=gen, dtype=torch.float64) - shift + 3.0
    return pos, neg
