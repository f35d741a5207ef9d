"""Bootstrap intervals, paired differences and summaries on synthetic data (fast)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.evaluation.stats import bootstrap_ci, paired_bootstrap, unit_means
from lens_odesteer.evaluation.summary import paired_differences, summarize


def test_interval_contains_estimate_and_narrows_with_n() -> None:
    rng = np.random.default_rng(1)
    widths = []
    for n in (25, 100, 400, 1600):
        x = rng.normal(0.3, 1.0, size=n)
        est, low, high = bootstrap_ci(x, seed=0)
        assert low <= est <= high
        assert est == pytest.approx(x.mean())
        widths.append(high - low)
    assert all(a > b for a, b in itertools.pairwise(widths))
    # about 2 * 1.96 / sqrt(n) for unit variance
    assert widths[-1] == pytest.approx(2 * 1.96 / np.sqrt(1600), rel=0.15)


def test_interval_coverage_of_the_true_mean() -> None:
    rng = np.random.default_rng(2)
    hits = 0
    for rep in range(200):
        _, low, high = bootstrap_ci(rng.exponential(1.0, size=80), n_boot=500, seed=rep)
        hits += low <= 1.0 <= high
    assert 0.88 <= hits / 200 <= 0.99


def test_paired_interval_is_narrower_than_separate_ones() -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(0.0, 1.0, size=200)
    a, b = base + 0.1 + rng.normal(0, 0.05, 200), base
    est, low, high = paired_bootstrap(a, b, seed=0)
    assert 0.08 < est < 0.12 and low > 0.0
    _, la, ha = bootstrap_ci(a)
    assert high - low < (ha - la) / 5
    assert paired_bootstrap(b, b) == (float(b.mean() - b.mean()), 0.0, 0.0)


@pytest.mark.parametrize(
    "bad", [[], [1.0, float("nan")], [float("inf")]], ids=["empty", "nan", "inf"]
)
def test_bad_values_raise(bad: list[float]) -> None:
    with pytest.raises(InvalidParameterError):
        bootstrap_ci(bad)


def test_bad_level_and_mismatched_pairs_raise() -> None:
    with pytest.raises(InvalidParameterError, match="level"):
        bootstrap_ci([1.0, 2.0], level=1.5)
    with pytest.raises(InvalidParameterError, match="same units"):
        paired_bootstrap([1.0, 2.0], [1.0])


def _units() -> pd.DataFrame:
    rows = []
    for method, shift in (("none", 0.0), ("CAA", 0.5), ("ODESteer", 0.6)):
        for unit in range(30):
            for seed in (0, 1):
                rows.append(
                    {
                        "split": "s",
                        "method": method,
                        "phase": "test",
                        "T": shift,
                        "unit": unit,
                        "seed": seed,
                        "x": unit % 3 + shift + 0.1 * seed,
                    }
                )
    return pd.DataFrame(rows)


def test_summary_averages_seeds_before_resampling_units() -> None:
    units = _units()
    s = summarize(units, ["x"], n_boot=300).set_index("method")
    assert s.loc["CAA", "n_units"] == 30 and s.loc["CAA", "n_seeds"] == 2
    assert s.loc["CAA", "estimate"] == pytest.approx(1.0 + 0.5 + 0.05)
    assert s.loc["CAA", "seed_sd"] == pytest.approx(0.1 / np.sqrt(2))
    assert unit_means(units[units.method == "none"], "x").shape == (30,)


def test_paired_differences_are_exact_for_constant_shifts() -> None:
    d = paired_differences(_units(), "x", "ODESteer", "CAA", n_boot=300)
    row = d.iloc[0]
    assert row["estimate"] == pytest.approx(0.1)
    assert row["ci_low"] == pytest.approx(0.1) and row["ci_high"] == pytest.approx(0.1)
    assert row["n_units"] == 30
