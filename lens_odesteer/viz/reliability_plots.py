"""The per-item reliability figure: each method's distribution of steerability slopes.

Takes the frames of :func:`lens_odesteer.evaluation.reliability.reliability_frame`
(``reliability_items.csv``: one slope per item; optionally ``reliability.csv`` for the
anti-steerable fraction's interval) and returns a plotly figure in the library's theme.

Example:
    >>> import pandas as pd
    >>> items = pd.DataFrame({"method": ["CAA"] * 3 + ["ODESteer"] * 3,
    ...     "slope": [1.0, 2.0, -0.5, 1.5, 0.5, 2.5]})
    >>> fig = plot_steerability(items)
    >>> [t.name for t in fig.data]
    ['CAA', 'ODESteer']
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.viz.theme import finish_layout, method_colour

__all__ = ["plot_steerability"]


def plot_steerability(
    items: pd.DataFrame,
    reliability: pd.DataFrame | None = None,
    *,
    group: str = "all",
    title: str | None = None,
    width: int | None = 700,
    height: int | None = None,
) -> go.Figure:
    """Per-item steerability (slope of the propensity in the strength), one row per method.

    Each item is a point (with a box of its method's quartiles); left of the dotted zero line
    are the anti-steerable items. The label of each row gives the anti-steerable share, with its
    95% interval when ``reliability`` (the summary frame) is given.

    Args:
        items: ``method`` and ``slope`` columns (``split`` too when ``group`` is a split).
        reliability: the summary frame, for the intervals (optional).
        group: ``"all"`` or one split's name.

    Raises:
        InvalidParameterError: columns missing, or no items in ``group``.
    """
    missing = [c for c in ("method", "slope") if c not in items.columns]
    if missing:
        raise InvalidParameterError(
            f"plot_steerability needs columns ['method', 'slope']; the frame lacks {missing} "
            f"(has {list(items.columns)})."
        )
    part = items if group == "all" else items[items["split"].astype(str) == group]
    if part.empty:
        raise InvalidParameterError(f"No per-item slopes in group {group!r} to plot.")
    intervals: dict[str, str] = {}
    if reliability is not None and {"anti_ci_low", "anti_ci_high"} <= set(reliability.columns):
        for _, row in reliability[reliability["group"].astype(str) == group].iterrows():
            intervals[str(row["method"])] = (
                f" [{100 * row['anti_ci_low']:.0f}, {100 * row['anti_ci_high']:.0f}]"
            )
    fig = go.Figure()
    methods = list(dict.fromkeys(part["method"].astype(str)))
    labels = []
    for method in methods:
        slopes = part.loc[part["method"].astype(str) == method, "slope"].astype(float)
        label = f"{method}: {100 * float((slopes < 0).mean()):.0f}%{intervals.get(method, '')}"
        labels.append(label)
        fig.add_trace(
            go.Box(
                x=slopes,
                y=[label] * len(slopes),
                name=method,
                orientation="h",
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                marker={"color": method_colour(method), "size": 5, "opacity": 0.7},
                line={"color": method_colour(method), "width": 1.2},
                fillcolor="rgba(0,0,0,0)",
                showlegend=False,
            )
        )
    fig.add_vline(x=0.0, line={"color": "#000000", "dash": "dot", "width": 1.2})
    fig.update_layout(
        xaxis_title="steerability: d propensity / d strength (per item)",
        yaxis={"categoryorder": "array", "categoryarray": labels[::-1]},
    )
    w = width or 700
    return finish_layout(
        fig,
        title=title or "Per-item steerability; row label: share anti-steerable (slope < 0), %",
        subtitle="strength = displacement / mean residual norm, 0 = unsteered; one point per item",
        width=w,
        height=height or int((120 if w <= 480 else 160) + (30 if w <= 480 else 40) * len(labels)),
        legend="none",
        left=int(7 * max(len(s) for s in labels) + 20),
    )
