"""Tidy summaries of per-unit results: estimates with bootstrap intervals and paired differences.

The per-unit frame (one row per task, split, method, phase, unit and seed) is reduced to

* :func:`summarize`: one row per (group, method, metric) with the mean over units (seeds
  averaged first), its 95% bootstrap interval, the number of units and seeds, the spread of the
  per-seed means, and the chosen ``T``;
* :func:`paired_differences`: method minus a baseline on the same units, with the interval of
  the difference, its power (the minimum detectable difference at 80% power, two-sided 5%) and
  a plain verdict (higher, lower, a tie the comparison could have detected, or underpowered).

Example:
    >>> import pandas as pd
    >>> units = pd.DataFrame({"split": "s", "method": ["none"] * 4 + ["CAA"] * 4,
    ...     "phase": "test", "T": [0.0] * 4 + [1.0] * 4, "unit": [0, 1, 2, 3] * 2, "seed": 0,
    ...     "x": [0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]})
    >>> s = summarize(units, ["x"], n_boot=200)
    >>> float(s.set_index("method").loc["CAA", "estimate"])
    1.0
    >>> paired_differences(units, "x", "CAA", "none", n_boot=200)["estimate"].item()
    0.5
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.evaluation.stats import (
    bootstrap_ci,
    minimum_detectable_difference,
    paired_bootstrap,
    power_verdict,
)

__all__ = ["baseline_pairs", "paired_differences", "summarize", "unit_table"]


def _uid(frame: pd.DataFrame) -> pd.Series:
    return frame["split"].astype(str) + ":" + frame["unit"].astype(str)


def unit_table(units: pd.DataFrame, metric: str, method: str) -> pd.Series:
    """Per-unit mean of ``metric`` for ``method`` on the test phase (seeds averaged)."""
    sub = units[(units["method"] == method) & (units["phase"] == "test")]
    if sub.empty:
        raise InvalidParameterError(f"No test results for method {method!r}.")
    return sub.assign(uid=_uid(sub)).groupby("uid", sort=True)[metric].mean()


def _groups(units: pd.DataFrame, pooled: bool) -> list[tuple[str, pd.DataFrame]]:
    groups = [("all", units)]
    if not pooled:
        groups += [(str(name), part) for name, part in units.groupby("split", sort=True)]
    return groups


def summarize(
    units: pd.DataFrame,
    metrics: Sequence[str],
    *,
    pooled: bool = True,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (group, method, metric) of the test phase; see the module docstring.

    Columns: ``group, method, metric, estimate, ci_low, ci_high, n_units, n_seeds, seed_sd,
    T`` (chosen strengths, ``/``-joined per split) and ``T_mean``.
    """
    test = units[units["phase"] == "test"]
    if test.empty:
        raise InvalidParameterError("The frame has no test-phase rows to summarise.")
    rows = []
    for group, part in _groups(test, pooled):
        for method, sub in part.groupby("method", sort=False):
            sub = sub.assign(uid=_uid(sub))
            ts = sub.groupby("split", sort=True)["T"].first()
            for metric in metrics:
                if metric not in sub.columns:
                    continue
                per_unit = sub.groupby("uid")[metric].mean().to_numpy(dtype=float)
                per_unit = per_unit[np.isfinite(per_unit)]
                if per_unit.size == 0:
                    continue
                est, low, high = bootstrap_ci(per_unit, level=level, n_boot=n_boot, seed=seed)
                seed_means = sub.groupby("seed")[metric].mean()
                rows.append(
                    {
                        "group": group,
                        "method": method,
                        "metric": metric,
                        "estimate": est,
                        "ci_low": low,
                        "ci_high": high,
                        "n_units": int(per_unit.size),
                        "n_seeds": int(sub["seed"].nunique()),
                        "seed_sd": float(seed_means.std(ddof=1)) if len(seed_means) > 1 else 0.0,
                        "T": "/".join(f"{t:.4g}" for t in ts.to_numpy()),
                        "T_mean": float(ts.mean()),
                    }
                )
    return pd.DataFrame(rows)


def _effect_of_interest(
    part: pd.DataFrame, metric: str, baseline: str, reference: str | None, fraction: float
) -> float:
    """``fraction * |mean(baseline - reference)|`` on their shared units (NaN if unavailable)."""
    if reference is None or reference == baseline:
        return float("nan")
    if not (part["method"] == reference).any():
        return float("nan")
    b = unit_table(part, metric, baseline)
    r = unit_table(part, metric, reference)
    common = b.index.intersection(r.index)
    if len(common) == 0:
        return float("nan")
    gain = (b.loc[common] - r.loc[common]).to_numpy(dtype=float)
    gain = gain[np.isfinite(gain)]
    return float(fraction * abs(gain.mean())) if gain.size else float("nan")


def paired_differences(
    units: pd.DataFrame,
    metric: str,
    method: str,
    baseline: str,
    *,
    pooled: bool = True,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    power: float = 0.8,
    reference: str | None = "none",
    interest_fraction: float = 0.5,
) -> pd.DataFrame:
    """``method - baseline`` of ``metric`` on the shared test units, with a paired interval.

    Returns one row per group: ``group, method, baseline, metric, estimate, ci_low, ci_high,
    n_units, sd_diff, mde, effect_of_interest, verdict``:

    * ``sd_diff``: standard deviation of the per-unit differences;
    * ``mde``: the minimum detectable difference at ``power`` and two-sided level
      ``1 - level`` (:func:`~lens_odesteer.evaluation.stats.minimum_detectable_difference`);
    * ``effect_of_interest``: ``interest_fraction`` times the baseline's own gain over
      ``reference`` (the unsteered model) on the same units, ``|mean(baseline - reference)|``:
      a difference half as large as what the baseline itself achieves is one worth detecting.
      NaN when ``reference`` has no results (or is the baseline);
    * ``verdict``: :func:`~lens_odesteer.evaluation.stats.power_verdict` of the row, e.g.
      ``"tie (could have detected ±0.031)"`` or ``"underpowered (...)"``.
    """
    if not (isinstance(interest_fraction, (int, float)) and 0.0 < interest_fraction < np.inf):
        raise InvalidParameterError(
            f"`interest_fraction` must be a finite number > 0 (a share of the baseline's own "
            f"gain, e.g. 0.5); got {interest_fraction!r}."
        )
    rows = []
    test = units[units["phase"] == "test"]
    for group, part in _groups(test, pooled):
        a = unit_table(part, metric, method)
        b = unit_table(part, metric, baseline)
        common = a.index.intersection(b.index)
        if len(common) == 0:
            raise InvalidParameterError(
                f"{method!r} and {baseline!r} share no test units in group {group!r}."
            )
        xa, xb = a.loc[common].to_numpy(), b.loc[common].to_numpy()
        est, low, high = paired_bootstrap(xa, xb, level=level, n_boot=n_boot, seed=seed)
        diff = xa - xb
        sd = float(diff.std(ddof=1)) if diff.size > 1 else 0.0
        mde = minimum_detectable_difference(sd, int(diff.size), alpha=1.0 - level, power=power)
        interest = _effect_of_interest(part, metric, baseline, reference, interest_fraction)
        rows.append(
            {
                "group": group,
                "method": method,
                "baseline": baseline,
                "metric": metric,
                "estimate": est,
                "ci_low": low,
                "ci_high": high,
                "n_units": len(common),
                "sd_diff": sd,
                "mde": mde,
                "effect_of_interest": interest,
                "verdict": power_verdict(low, high, mde, None if np.isnan(interest) else interest),
            }
        )
    return pd.DataFrame(rows)


def baseline_pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    """The baseline comparisons a reviewer asks for among ``names``: ``(method, baseline)``.

    ``prompt+<m>`` against ``prompt`` (does steering add to the instruction?) and against
    ``<m>`` (does the instruction add to steering?); ``<m>@paper`` against ``<m>`` (the paper's
    strength against the one matched by displacement and chosen on validation). Only pairs whose
    two methods are both in ``names``.

    Example:
        >>> baseline_pairs(["none", "CAA", "prompt", "prompt+CAA", "CAA@paper", "ODESteer@paper"])
        [('prompt+CAA', 'prompt'), ('prompt+CAA', 'CAA'), ('CAA@paper', 'CAA')]
    """
    present = set(names)
    pairs = []
    for name in names:
        if name.startswith("prompt+"):
            base = name[len("prompt+") :]
            pairs += [(name, b) for b in ("prompt", base) if b in present]
        elif name.endswith("@paper") and name[: -len("@paper")] in present:
            pairs.append((name, name[: -len("@paper")]))
    return pairs
