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

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lens_odesteer.errors import InvalidParameterError

__all__ = ["Interval", "bootstrap_ci", "paired_bootstrap", "unit_means"]


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
