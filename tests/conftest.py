"""Shared fixtures and hypothesis settings for the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

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


#: Set (as .ci/run does) to make a missing evaluation data folder a failure instead of a skip.
REQUIRE_DATA_ENV = "LENS_ODESTEER_REQUIRE_DATA"


@pytest.fixture(scope="session")
def eval_data() -> Path:
    """The evaluation data folder (every file of the manifest), found as the library finds it.

    Tests that read the public datasets take this fixture. Without the data they skip, saying
    how to get it; with ``LENS_ODESTEER_REQUIRE_DATA=1`` (CI) they fail instead.
    """
    # Imported here: this conftest also serves tests/tl2, run in another environment.
    from lens_odesteer.datasets.locate import find_data_dir, search_dirs
    from lens_odesteer.datasets.sources import DATA_FILES
    from lens_odesteer.errors import DataNotFoundError

    try:
        return find_data_dir(need=DATA_FILES)
    except DataNotFoundError:
        searched = ", ".join(f"{folder} ({why})" for folder, why in search_dirs())
        reason = (
            f"evaluation data not found (searched {searched}); run `lens-odesteer data fetch` "
            "or set LENS_ODESTEER_DATA"
        )
        if os.environ.get(REQUIRE_DATA_ENV, "") not in ("", "0"):
            pytest.fail(f"{REQUIRE_DATA_ENV} is set, so this fails: {reason}", pytrace=False)
        pytest.skip(reason)
