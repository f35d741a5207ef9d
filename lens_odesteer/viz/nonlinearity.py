"""Figures of the nonlinearity diagnostic: per layer, per steerer, and for a barrier search.

Each function takes the output of :mod:`lens_odesteer.analysis.nonlinearity` or
:mod:`lens_odesteer.analysis.barrier_search` and returns a themed ``go.Figure``; nothing is
shown or written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lens_odesteer.analysis.nonlinearity import FieldVariation
from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.viz.theme import (
    METHOD_COLOURS,
    PALETTE,
    finish_layout,
    font_size,
    method_colour,
    wrap,
)

#: Short panel titles of the diagnostic's metrics.
METRIC_TITLES: dict[str, str] = {
    "mean_pairwise_cosine": "spread: mean pairwise cos v(a)",
    "cos_to_mean_p05": "5th pct. cos to mean field",
    "gap_median": "gap: |ODE - one step| / disp.",
    "gap_p90": "gap, 90th percentile",
    "bend_median": "bend (curvature) / disp.",
    "bend_p90": "bend, 90th percentile",
    "turn_deg_median": "turn, first to last step (deg)",
    "turn_total_deg_median": "total turning (deg)",
    "arc_deg_median": "rotation of a (deg)",
    "displacement_median": "displacement",
    "norm_median": "residual norm",
    "accuracy": "held-out accuracy of sign(h)",
    "auc": "held-out AUC of h",
}
#: Metrics that are fractions of the displacement, drawn as percentages.
_PERCENT_METRICS = {"gap_median", "gap_p90", "bend_median", "bend_p90"}
#: Colours for lines that are not a known method, in order (no yellow: too pale on white).
_OTHER_COLOURS = ("#0072B2", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#000000", "#882255")
DEFAULT_LAYER_METRICS = (
    "mean_pairwise_cosine",
    "gap_median",
    "bend_median",
    "turn_deg_median",
    "arc_deg_median",
    "auc",
)


def plot_field_variation_by_layer(
    frame: pd.DataFrame,
    *,
    metrics: Sequence[str] = DEFAULT_LAYER_METRICS,
    color: str = "steerer",
    n_cols: int = 3,
    title: str | None = None,
    width: int | None = None,
    height: int | None = None,
) -> go.Figure:
    """One panel per metric against the layer, one line per ``color`` value (the steerer).

    Args:
        frame: long-form frame with ``layer``, ``metric``, ``value`` and the ``color`` column,
            e.g. from :func:`~lens_odesteer.analysis.model_runs.layers.field_variation_by_layer`
            (several of them concatenated, to compare steerers).
        metrics: which metrics to draw, in panel order.
        color: the column that names a line.
        n_cols: panels per row.
        title: figure title (default: a description of the diagnostic).

    Example:
        >>> import pandas as pd
        >>> frame = pd.DataFrame({"layer": [5, 15, 5, 15], "steerer": "ODESteer",
        ...     "metric": ["gap_median"] * 2 + ["auc"] * 2, "value": [0.03, 0.08, 0.9, 1.0]})
        >>> fig = plot_field_variation_by_layer(frame, metrics=["gap_median", "auc"])
        >>> len(fig.data), fig.data[0].name
        (2, 'ODESteer')
    """
    needed = {"layer", "metric", "value", color}
    if missing := needed - set(frame.columns):
        raise InvalidParameterError(
            f"`frame` lacks column(s) {sorted(missing)}; expected the output of "
            "field_variation_by_layer (layer, metric, value, steerer, ...)."
        )
    unknown = [m for m in metrics if m not in set(frame["metric"])]
    if unknown or not metrics:
        raise InvalidParameterError(
            f"`metrics` {unknown or list(metrics)} not in the frame; available: "
            f"{sorted(set(frame['metric']))}."
        )
    n_rows = math.ceil(len(metrics) / n_cols)
    cols = min(n_cols, len(metrics))
    w = width or 340 * cols + 40
    compact = font_size(w) < 13
    titles = [
        "<br>".join(wrap(METRIC_TITLES.get(m, m), (w - 60) / cols, 10 if compact else 12))
        for m in metrics
    ]
    fig = make_subplots(
        rows=n_rows,
        cols=cols,
        subplot_titles=titles,
        horizontal_spacing=0.12,
        vertical_spacing=0.3 if n_rows > 1 else 0.2,
    )
    colours = _line_colours([str(v) for v in pd.unique(frame[color])])
    for k, metric in enumerate(metrics):
        part = frame[frame["metric"] == metric]
        row, col = k // n_cols + 1, k % n_cols + 1
        if metric in _PERCENT_METRICS:
            fig.update_yaxes(tickformat=".1%", row=row, col=col)
        for name, group in part.groupby(color, sort=False):
            group = group.sort_values("layer")
            fig.add_trace(
                go.Scatter(
                    x=group["layer"],
                    y=group["value"],
                    mode="lines+markers",
                    name=str(name),
                    legendgroup=str(name),
                    showlegend=k == 0,
                    line={"color": colours[str(name)]},
                ),
                row=row,
                col=col,
            )
    for k in range(max(0, len(metrics) - n_cols), len(metrics)):  # bottom row only
        fig.update_xaxes(title_text="layer", row=k // n_cols + 1, col=k % n_cols + 1)
    finish_layout(
        fig,
        title=title or "How much the steering field varies, per layer (held-out activations)",
        width=w,
        height=height or ((200 if compact else 280) * n_rows + 150),
        legend="below",
        subplot_titles=max(t.count("<br>") + 1 for t in titles),
    )
    return fig


def _line_colours(names: list[str]) -> dict[str, str]:
    """A method's own colour where the name is a method, distinct fixed colours otherwise."""
    out: dict[str, str] = {}
    spare = iter(c for c in _OTHER_COLOURS)
    for name in names:
        head = name.split(" ")[0].split("(")[0]
        if name in METHOD_COLOURS or head in METHOD_COLOURS:
            out[name] = method_colour(name)
        else:
            out[name] = next((c for c in spare if c not in out.values()), method_colour(name))
    return out


def plot_field_variation(
    result: FieldVariation,
    *,
    title: str | None = None,
    width: int | None = 1080,
    height: int | None = None,
) -> go.Figure:
    """Distributions of one diagnostic: pairwise field cosines, gap (%), turning (deg).

    Example:
        >>> import torch, lens_odesteer as lo
        >>> from lens_odesteer.analysis.nonlinearity import field_variation
        >>> pos, neg = torch.randn(20, 4) + 1, torch.randn(20, 4) - 1
        >>> fv = field_variation(lo.CAA().fit(pos, neg), torch.cat([pos, neg]), T=1.0)
        >>> len(plot_field_variation(fv).data)
        3
    """
    w = width or 1080
    base = font_size(w)
    panel_px = (w - 80) / 3
    titles = [
        "<br>".join(wrap(text, panel_px, base))
        for text in (
            "cosine between field directions (pairs)",
            "|ODE end - one-step end| / displacement (%)",
            "turn from first to last step (deg)",
        )
    ]
    fig = make_subplots(rows=1, cols=3, subplot_titles=titles, horizontal_spacing=0.08)
    colour = method_colour(result.steerer)
    series = [
        result.pairwise_cosines,
        100 * result.rows["gap"].to_numpy(dtype=float),
        result.rows["turn_deg"].to_numpy(dtype=float),
    ]
    for k, values in enumerate(series):
        fig.add_trace(
            go.Histogram(x=values, marker={"color": colour}, showlegend=False, nbinsx=40),
            row=1,
            col=k + 1,
        )
    fig.update_yaxes(title_text="count", row=1, col=1)
    fig.update_layout(bargap=0.05)
    fig.update_xaxes(nticks=4)
    return finish_layout(
        fig,
        title=title
        or f"{result.steerer}, T={result.T:.3g}: field variation on {len(result.rows)} activations",
        width=w,
        height=height or (300 if base < 13 else 380),
        legend="none",
        subplot_titles=max(t.count("<br>") + 1 for t in titles),
        x_title=False,
    )


def plot_barrier_search(
    frame: pd.DataFrame,
    *,
    x: str = "test_log_likelihood",
    y: str = "gap_median",
    title: str | None = None,
    width: int | None = 760,
    height: int | None = None,
) -> go.Figure:
    """Fit against nonlinearity for every candidate of a barrier search, one colour per family.

    The chosen barrier is drawn as a star. ``frame`` is
    :attr:`~lens_odesteer.analysis.barrier_search.BarrierSearchResult.frame` (with the
    diagnostic columns, i.e. ``diagnose_all=True``).

    Example:
        >>> import pandas as pd
        >>> frame = pd.DataFrame({"label": ["linear()", "rff()"], "family": ["linear", "rff"],
        ...     "test_log_likelihood": [-0.5, -0.3], "gap_median": [0.0, 0.2],
        ...     "best": [False, True]})
        >>> [t.name for t in plot_barrier_search(frame).data]
        ['linear', 'rff', 'best']
    """
    needed = {x, y, "label", "family", "best"}
    if missing := needed - set(frame.columns):
        raise InvalidParameterError(
            f"`frame` lacks column(s) {sorted(missing)}; pass BarrierSearchResult.frame from a "
            "search with diagnose_all=True, or choose `x`/`y` among its columns."
        )
    fig = go.Figure()
    for k, (family, group) in enumerate(frame.groupby("family", sort=False)):
        fig.add_trace(
            go.Scatter(
                x=group[x],
                y=group[y],
                mode="markers",
                name=str(family),
                text=group["label"],
                hovertemplate="%{text}<br>" + f"{x}=%{{x:.4g}}<br>{y}=%{{y:.4g}}<extra></extra>",
                marker={"size": 9, "color": PALETTE[k % len(PALETTE)]},
            )
        )
    best = frame[frame["best"].astype(bool)]
    fig.add_trace(
        go.Scatter(
            x=best[x],
            y=best[y],
            mode="markers",
            name="best",
            text=best["label"],
            hovertemplate="best: %{text}<extra></extra>",
            marker={"size": 18, "symbol": "star-open", "color": "#000000", "line": {"width": 2}},
        )
    )
    fig.update_xaxes(title_text=METRIC_TITLES.get(x, x.replace("_", " ")))
    fig.update_yaxes(title_text=METRIC_TITLES.get(y, y.replace("_", " ")))
    if y in _PERCENT_METRICS:
        fig.update_yaxes(tickformat=".0%")
    w = width or 760
    return finish_layout(
        fig,
        title=title or "Barrier search: held-out fit against how much the flow bends",
        width=w,
        height=height or (340 if w <= 480 else 480),
        legend="below",
    )
