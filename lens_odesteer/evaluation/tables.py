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

__all__ = ["headline_markdown", "results_markdown"]


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
