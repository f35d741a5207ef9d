"""Uncertainty for evaluation numbers: bootstrap intervals over units and paired differences.

A *unit* is what is resampled: a question, a prompt or an A/B item. Several sampling seeds of
one unit are averaged first (:func:`unit_means`), so the interval reflects the variation over
prompts, not over the seeds drawn for each prompt; the spread over seeds is reported separately.

Example:
    >>> import numpy as np
    >>> est, lo, hi = bootstrap_ci(np.r_[np.zeros(50), np.ones(50)], seed=0)
    >>> est, lo < est < hi
    (0.5, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from lens_odesteer.errors import InvalidParameterError

__all__ = [
    "Interval",
    "bootstrap_ci",
    "minimum_detectable_difference",
    "paired_bootstrap",
    "power_verdict",
    "unit_means",
]


@dataclass(frozen=True)
class Interval:
    """An estimate with its percentile bootstrap interval."""

    estimate: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.estimate:.3f} [{self.low:.3f}, {self.high:.3f}]"


def _as_values(values: object, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise InvalidParameterError(f"`{name}` is empty; the bootstrap needs at least one value.")
    if not np.all(np.isfinite(arr)):
        bad = int(np.sum(~np.isfinite(arr)))
        raise InvalidParameterError(
            f"`{name}` holds {bad} non-finite value(s); drop or fix them before the bootstrap."
        )
    return arr


def _check_level(level: float, n_boot: int) -> None:
    if not 0.0 < level < 1.0:
        raise InvalidParameterError(f"`level` must be in (0, 1); got {level!r}.")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise InvalidParameterError(f"`n_boot` must be an int >= 1; got {n_boot!r}.")


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Return ``(mean, low, high)``: the mean and its percentile bootstrap interval.

    The units are resampled with replacement ``n_boot`` times (seeded); the interval is the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the resampled means. One value gives
    a zero-width interval.

    Example:
        >>> bootstrap_ci([1.0, 1.0, 1.0])
        (1.0, 1.0, 1.0)
    """
    arr = _as_values(values, "values")
    _check_level(level, n_boot)
    est = float(arr.mean())
    if arr.size == 1:
        return est, est, est
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.size, size=(n_boot, arr.size))
    means = arr[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    # The percentile interval holds the estimate except in degenerate resamples; keep it so.
    return est, float(min(low, est)), float(max(high, est))


def paired_bootstrap(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean paired difference ``a - b`` over the same units, with its bootstrap interval.

    ``a[i]`` and ``b[i]`` must belong to the same unit (question, prompt); resampling the units
    keeps each pair together, so the interval is the interval of the difference, usually much
    narrower than the two separate intervals suggest.

    Example:
        >>> est, lo, hi = paired_bootstrap([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])
        >>> est, lo, hi
        (1.0, 1.0, 1.0)
    """
    xa, xb = _as_values(a, "a"), _as_values(b, "b")
    if xa.shape != xb.shape:
        raise InvalidParameterError(
            f"Paired values need the same units: `a` has {xa.size} and `b` {xb.size} values."
        )
    return bootstrap_ci(xa - xb, level=level, n_boot=n_boot, seed=seed)


def unit_means(frame: pd.DataFrame, metric: str, unit: str = "unit") -> pd.Series:
    """Average ``metric`` over the rows of each unit (e.g. over sampling seeds).

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"unit": [0, 0, 1], "x": [1.0, 3.0, 5.0]})
        >>> unit_means(df, "x").tolist()
        [2.0, 5.0]
    """
    for col in (metric, unit):
        if col not in frame.columns:
            raise InvalidParameterError(
                f"Column {col!r} is not in the frame; it has {list(frame.columns)}."
            )
    return frame.groupby(unit, sort=True)[metric].mean()


def minimum_detectable_difference(
    sd: float,
    n: int,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
) -> float:
    """The smallest true mean difference a paired comparison of ``n`` units detects reliably.

    Normal approximation of a two-sided test at level ``alpha`` with the given ``power``:
    ``MDE = (z_{1 - alpha/2} + z_{power}) * sd / sqrt(n)``, where ``sd`` is the standard
    deviation of the per-unit paired differences (about ``2.80 * sd / sqrt(n)`` at the
    defaults). A true difference of at least this size would have given an interval that
    excludes zero in ``power`` of repeated experiments; a smaller one may well be missed.
    ``n < 2`` gives ``inf`` (the spread cannot be estimated); ``sd == 0`` gives 0.

    Example:
        >>> round(minimum_detectable_difference(1.0, 100), 3)
        0.28
        >>> minimum_detectable_difference(1.0, 1)
        inf
    """
    if not 0.0 < alpha < 1.0:
        raise InvalidParameterError(
            f"`alpha` must be in (0, 1) (the two-sided test level, e.g. 0.05); got {alpha!r}."
        )
    if not 0.0 < power < 1.0:
        raise InvalidParameterError(
            f"`power` must be in (0, 1) (e.g. 0.8 for 80% power); got {power!r}."
        )
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise InvalidParameterError(f"`n` must be a count of units (an int >= 0); got {n!r}.")
    sd = float(sd)
    if not math.isfinite(sd) or sd < 0:
        raise InvalidParameterError(f"`sd` must be a finite standard deviation >= 0; got {sd!r}.")
    if n < 2:
        return math.inf
    z = NormalDist()
    return (z.inv_cdf(1.0 - alpha / 2.0) + z.inv_cdf(power)) * sd / math.sqrt(n)


def power_verdict(
    low: float,
    high: float,
    mde: float,
    effect_of_interest: float | None = None,
    *,
    digits: int = 3,
) -> str:
    """A plain reading of one paired difference, its interval and its power.

    * the interval excludes 0: ``"higher"`` or ``"lower"`` (method against baseline);
    * it holds 0 and the comparison could have detected the effect of interest
      (``mde <= effect_of_interest``), or no effect of interest is given:
      ``"tie (could have detected ±x)"`` with ``x`` the minimum detectable difference;
    * it holds 0 but ``mde > effect_of_interest`` (or ``mde`` is infinite):
      ``"underpowered (could only detect ±x; effect of interest y)"``: absence of evidence, not
      evidence of a tie.

    Example:
        >>> power_verdict(-0.01, 0.02, 0.015, 0.05)
        'tie (could have detected ±0.015)'
        >>> power_verdict(-0.1, 0.2, 0.3, 0.05)
        'underpowered (could only detect ±0.300; effect of interest 0.050)'
        >>> power_verdict(0.01, 0.2, 0.05)
        'higher'
    """
    if low > 0:
        return "higher"
    if high < 0:
        return "lower"
    f = f"{{:.{digits}f}}"
    if not math.isfinite(mde):
        return "underpowered (too few units to estimate the spread)"
    if (
        effect_of_interest is not None
        and math.isfinite(effect_of_interest)
        and mde > effect_of_interest
    ):
        return (
            f"underpowered (could only detect ±{f.format(mde)}; effect of interest "
            f"{f.format(effect_of_interest)})"
        )
    return f"tie (could have detected ±{f.format(mde)})"
