"""Power of paired comparisons: minimum detectable difference and verdicts (fast)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.evaluation.stats import minimum_detectable_difference, power_verdict
from lens_odesteer.evaluation.summary import paired_differences
from lens_odesteer.evaluation.tables import headline_markdown


def test_mde_formula_and_shrinks_with_n() -> None:
    # (1.95996 + 0.84162) * sd / sqrt(n)
    assert minimum_detectable_difference(2.0, 400) == pytest.approx(2.8016 * 2.0 / 20, rel=1e-3)
    values = [minimum_detectable_difference(1.0, n) for n in (10, 40, 160, 640)]
    assert all(a > b for a, b in itertools.pairwise(values))
    assert values[0] / values[2] == pytest.approx(4.0)
    assert minimum_detectable_difference(0.0, 10) == 0.0
    assert math.isinf(minimum_detectable_difference(1.0, 1))


def test_mde_matches_simulated_power() -> None:
    """A true difference equal to the MDE is detected about 80% of the time."""
    rng = np.random.default_rng(0)
    n, sd = 60, 1.0
    mde = minimum_detectable_difference(sd, n)
    hits = 0
    for _ in range(400):
        d = rng.normal(mde, sd, size=n)
        half = 1.959964 * d.std(ddof=1) / math.sqrt(n)
        hits += d.mean() - half > 0
    assert 0.72 <= hits / 400 <= 0.88


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sd": -1.0, "n": 5}, "sd"),
        ({"sd": float("nan"), "n": 5}, "sd"),
        ({"sd": 1.0, "n": -1}, "n"),
        ({"sd": 1.0, "n": 5, "alpha": 1.5}, "alpha"),
        ({"sd": 1.0, "n": 5, "power": 0.0}, "power"),
    ],
)
def test_mde_bad_input(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        minimum_detectable_difference(**kwargs)  # type: ignore[arg-type]


def test_verdicts() -> None:
    assert power_verdict(0.1, 0.3, 0.05) == "higher"
    assert power_verdict(-0.3, -0.1, 0.05) == "lower"
    assert power_verdict(-0.01, 0.01, 0.02, 0.05).startswith("tie (could have detected ±0.020")
    assert power_verdict(-0.2, 0.2, 0.3, 0.05).startswith("underpowered")
    assert power_verdict(-0.2, 0.2, math.inf).startswith("underpowered")


def _units(n: int, gain: float, diff_sd: float, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    base = rng.normal(0.0, 1.0, n)
    noise = rng.normal(0.0, diff_sd, n)
    noise -= noise.mean()  # no true difference: ODESteer ties CAA exactly on average
    rows = []
    for method, values in (
        ("none", base),
        ("CAA", base + gain),
        ("ODESteer", base + gain + noise),
    ):
        rows += [
            {
                "split": "s",
                "method": method,
                "phase": "test",
                "T": 1.0,
                "unit": i,
                "seed": 0,
                "x": float(v),
            }
            for i, v in enumerate(values)
        ]
    return pd.DataFrame(rows)


def test_paired_columns_and_verdict_follow_n() -> None:
    small = paired_differences(_units(8, 0.2, 1.0), "x", "ODESteer", "CAA", n_boot=200)
    big = paired_differences(_units(2000, 0.2, 0.05), "x", "ODESteer", "CAA", n_boot=200)
    for frame in (small, big):
        assert {"sd_diff", "mde", "effect_of_interest", "verdict"} <= set(frame.columns)
        assert frame["effect_of_interest"].item() == pytest.approx(0.1)
    assert small["mde"].item() > big["mde"].item()
    assert small["verdict"].item().startswith("underpowered")
    assert big["verdict"].item().startswith("tie (could have detected")
    table = headline_markdown(big, "x")
    assert "detectable (80% power)" in table and "tie (could have detected" in table


def test_paired_without_reference_has_nan_interest() -> None:
    units = _units(50, 0.2, 0.1)
    units = units[units["method"] != "none"]
    row = paired_differences(units, "x", "ODESteer", "CAA", n_boot=100)
    assert np.isnan(row["effect_of_interest"].item())
    assert row["verdict"].item() in {"higher", "lower"} or row["verdict"].item().startswith("tie")
    with pytest.raises(InvalidParameterError, match="interest_fraction"):
        paired_differences(units, "x", "ODESteer", "CAA", interest_fraction=0.0)
