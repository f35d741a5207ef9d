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
    """Paired differences of ``metric`` against the best one-step baseline, one row per method."""
    part = paired[paired["metric"] == metric]
    lines = ["| group | method | baseline | difference [95% CI] | units |", "|---|---|---|---|---|"]
    for _, row in part.iterrows():
        lines.append(
            f"| {row['group']} | {row['method']} | {row['baseline']} | {_cell(row, digits)} | "
            f"{int(row['n_units'])} |"
        )
    return "\n".join(lines)
