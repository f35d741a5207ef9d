"""Markdown tables of evaluation results (for READMEs and reports).

Example:
    >>> import pandas as pd
    >>> s = pd.DataFrame({"group": "all", "method": ["none"], "metric": "x", "estimate": [0.5],
    ...     "ci_low": [0.4], "ci_high": [0.6], "T": ["0"], "n_units": [10], "n_seeds": [1]})
    >>> print(results_markdown(s, ["x"]).splitlines()[2])
    | none | 0 | 0.500 [0.400, 0.600] |
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

__all__ = ["headline_markdown", "reliability_markdown", "results_markdown"]


def _cell(row: pd.Series, digits: int) -> str:
    f = f"{{:.{digits}f}}"
    return f"{f.format(row['estimate'])} [{f.format(row['ci_low'])}, {f.format(row['ci_high'])}]"


def results_markdown(
    summary: pd.DataFrame,
    metrics: Sequence[str],
    *,
    group: str = "all",
    digits: int = 3,
    extra: dict[str, dict[str, str]] | None = None,
) -> str:
    """One row per method: chosen ``T`` and each metric as ``estimate [95% CI]``.

    ``extra`` adds columns: ``{column title: {method: text}}`` (e.g. wall time).
    """
    part = summary[summary["group"] == group]
    methods = list(dict.fromkeys(part["method"]))
    present = [m for m in metrics if m in set(part["metric"])]
    extra = extra or {}
    head = ["method", "T", *present, *extra]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method in methods:
        rows = part[part["method"] == method].set_index("metric")
        if rows.empty:
            continue
        cells = [str(method), str(rows["T"].iloc[0])]
        for metric in present:
            cells.append(_cell(rows.loc[metric], digits) if metric in rows.index else "")
        cells += [extra[col].get(str(method), "") for col in extra]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def headline_markdown(paired: pd.DataFrame, metric: str, *, digits: int = 3) -> str:
    """Paired differences of ``metric`` against the best one-step baseline, one row per method.

    When the frame has the power columns of
    :func:`~lens_odesteer.evaluation.summary.paired_differences`, two more columns follow: the
    minimum detectable difference (80% power, two-sided 5%) and the plain verdict.

    Example:
        >>> import pandas as pd
        >>> p = pd.DataFrame({"group": ["all"], "method": ["ODESteer"], "baseline": ["CAA"],
        ...     "metric": ["x"], "estimate": [0.01], "ci_low": [-0.02], "ci_high": [0.04],
        ...     "n_units": [40], "mde": [0.05], "verdict": ["tie (could have detected ±0.050)"]})
        >>> print(headline_markdown(p, "x").splitlines()[2].replace(" | ", "|"))
        | all|ODESteer|CAA|0.010 [-0.020, 0.040]|40|±0.050|tie (could have detected ±0.050) |
    """
    part = paired[paired["metric"] == metric]
    power = {"mde", "verdict"} <= set(paired.columns)
    head = "| group | method | baseline | difference [95% CI] | units |"
    rule = "|---|---|---|---|---|"
    if power:
        head += " detectable (80% power) | verdict |"
        rule += "---|---|"
    lines = [head, rule]
    f = f"{{:.{digits}f}}"
    for _, row in part.iterrows():
        line = (
            f"| {row['group']} | {row['method']} | {row['baseline']} | {_cell(row, digits)} | "
            f"{int(row['n_units'])} |"
        )
        if power:
            mde = float(row["mde"])
            line += f" ±{f.format(mde)} | {row['verdict']} |"
        lines.append(line)
    return "\n".join(lines)


def reliability_markdown(reliability: pd.DataFrame, *, group: str = "all", digits: int = 2) -> str:
    """Per-item reliability per method: anti-steerable share and steerability, with intervals.

    ``reliability`` is ``reliability.csv``
    (:func:`~lens_odesteer.evaluation.reliability.reliability_frame`); geometry columns are
    shown when present.

    Example:
        >>> import pandas as pd
        >>> r = pd.DataFrame({"group": ["all"], "method": ["CAA"], "n_items": [40],
        ...     "anti_steerable_frac": [0.1], "anti_ci_low": [0.03], "anti_ci_high": [0.2],
        ...     "steerability_mean": [1.5], "steerability_ci_low": [1.1],
        ...     "steerability_ci_high": [1.9], "steerability_median": [1.4]})
        >>> print(reliability_markdown(r).splitlines()[2])
        | CAA | 40 | 10% [3%, 20%] | 1.50 [1.10, 1.90] | 1.40 |
    """
    part = reliability[reliability["group"].astype(str) == group]
    geo = [c for c in ("fit_agreement", "fit_separation", "direction_separation") if c in part]
    titles = {
        "fit_agreement": "pair agreement",
        "fit_separation": "d' (mean diff.)",
        "direction_separation": "d' (own direction)",
    }
    head = ["method", "items", "anti-steerable [95% CI]", "steerability [95% CI]", "median"]
    head += [titles[c] for c in geo]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    f = f"{{:.{digits}f}}"
    for _, row in part.iterrows():
        anti = (
            f"{100 * row['anti_steerable_frac']:.0f}% [{100 * row['anti_ci_low']:.0f}%, "
            f"{100 * row['anti_ci_high']:.0f}%]"
        )
        steer = (
            f"{f.format(row['steerability_mean'])} [{f.format(row['steerability_ci_low'])}, "
            f"{f.format(row['steerability_ci_high'])}]"
        )
        cells = [str(row["method"]), str(int(row["n_items"])), anti, steer]
        cells.append(f.format(row["steerability_median"]))
        cells += ["" if pd.isna(row[c]) else f.format(float(row[c])) for c in geo]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
