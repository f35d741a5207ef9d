"""Figures of evaluation results: metric vs strength, fluency trade-off, paired differences,
layer sweeps. Each function takes the tidy frames written by
:func:`lens_odesteer.evaluation.evaluate` (``units.csv``, ``summary.csv``, ``paired.csv``) and
returns a plotly ``go.Figure`` in the library's theme.

Example:
    >>> import pandas as pd
    >>> s = pd.DataFrame({"group": "all", "method": ["none", "CAA"], "metric": "x",
    ...     "estimate": [0.1, 0.3], "ci_low": [0.0, 0.2], "ci_high": [0.2, 0.4]})
    >>> f = pd.concat([s, s.assign(metric="ppl", estimate=[10.0, 12.0],
    ...     ci_low=[9.0, 11.0], ci_high=[11.0, 13.0])])
    >>> len(plot_fluency_tradeoff(f, "x").data)
    2
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lens_odesteer._atomic import atomic_path
from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.viz._renamed import module_getattr
from lens_odesteer.viz.theme import apply_theme, method_colour

__all__ = [
    "plot_fluency_tradeoff",
    "plot_layer_sweep",
    "plot_metric_vs_strength",
    "plot_paired_forest",
    "write_eval_figures",
]


def _need(frame: pd.DataFrame, cols: tuple[str, ...], what: str) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise InvalidParameterError(
            f"{what} needs columns {list(cols)}; the frame lacks {missing} (has "
            f"{list(frame.columns)})."
        )


def plot_metric_vs_strength(
    units: pd.DataFrame, metric: str, *, title: str | None = None
) -> go.Figure:
    """Mean ``metric`` vs matched strength (displacement / residual norm) per method.

    Validation points (the strength grid) are lines with markers; each method's chosen strength
    on the test units is a large open marker. Hover shows the method's own ``T``.
    """
    _need(units, ("method", "phase", "T", "displacement_frac", metric), "plot_metric_vs_strength")
    fig = go.Figure()
    for method, sub in units.groupby("method", sort=False):
        colour = method_colour(str(method))
        for phase, symbol in (("val", "circle"), ("test", "diamond-open")):
            part = sub[sub["phase"] == phase]
            if part.empty:
                continue
            agg = (
                part.groupby(["split", "T"], sort=False)
                .agg(x=("displacement_frac", "first"), y=(metric, "mean"))
                .reset_index()
                .groupby("T", sort=True)
                .agg(x=("x", "mean"), y=("y", "mean"))
                .reset_index()
                .sort_values("x")
            )
            fig.add_trace(
                go.Scatter(
                    x=agg["x"],
                    y=agg["y"],
                    mode="lines+markers" if phase == "val" else "markers",
                    marker={"color": colour, "symbol": symbol, "size": 7 if phase == "val" else 13},
                    line={"color": colour},
                    name=f"{method} ({'validation grid' if phase == 'val' else 'test, chosen T'})",
                    customdata=agg["T"],
                    hovertemplate=f"{method}<br>T=%{{customdata:.4g}}<br>displacement/|a|=%{{x:.3f}}"
                    f"<br>{metric}=%{{y:.3f}}<extra></extra>",
                    legendgroup=str(method),
                    showlegend=phase == "test" or part["T"].nunique() > 1,
                )
            )
    fig.update_layout(
        title=title or f"{metric} vs steering strength (matched by displacement)",
        xaxis_title="mean displacement / mean residual norm",
        yaxis_title=metric,
    )
    return apply_theme(fig, width=760, height=460)


def _pick(summary: pd.DataFrame, metric: str, group: str) -> pd.DataFrame:
    part = summary[(summary["metric"] == metric) & (summary["group"] == group)]
    return part.set_index("method")


def plot_fluency_tradeoff(
    summary: pd.DataFrame,
    metric: str,
    *,
    fluency: str = "ppl",
    group: str = "all",
    title: str | None = None,
) -> go.Figure:
    """Each method's test ``metric`` against its fluency (perplexity under the unsteered model),
    with 95% intervals on both axes."""
    _need(
        summary,
        ("group", "method", "metric", "estimate", "ci_low", "ci_high"),
        "plot_fluency_tradeoff",
    )
    y, x = _pick(summary, metric, group), _pick(summary, fluency, group)
    methods = [m for m in y.index if m in x.index]
    if not methods:
        raise InvalidParameterError(
            f"No method has both {metric!r} and {fluency!r} in group {group!r}."
        )
    fig = go.Figure()
    for m in methods:
        fig.add_trace(
            go.Scatter(
                x=[x.loc[m, "estimate"]],
                y=[y.loc[m, "estimate"]],
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": [x.loc[m, "ci_high"] - x.loc[m, "estimate"]],
                    "arrayminus": [x.loc[m, "estimate"] - x.loc[m, "ci_low"]],
                },
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [y.loc[m, "ci_high"] - y.loc[m, "estimate"]],
                    "arrayminus": [y.loc[m, "estimate"] - y.loc[m, "ci_low"]],
                },
                mode="markers",
                marker={"color": method_colour(str(m)), "size": 10},
                name=str(m),
            )
        )
    fig.update_layout(
        title=title or f"{metric} vs fluency ({fluency}, unsteered model), 95% intervals",
        xaxis_title=f"{fluency} (lower = more fluent)" if fluency == "ppl" else fluency,
        yaxis_title=metric,
    )
    return apply_theme(fig, width=700, height=460)


def plot_paired_forest(
    paired: pd.DataFrame, metric: str, *, group: str = "all", title: str | None = None
) -> go.Figure:
    """Forest plot of ``method - baseline`` paired differences with 95% intervals."""
    _need(
        paired,
        ("group", "method", "baseline", "metric", "estimate", "ci_low", "ci_high"),
        "plot_paired_forest",
    )
    part = paired[(paired["metric"] == metric) & (paired["group"] == group)]
    if part.empty:
        raise InvalidParameterError(f"No paired differences for {metric!r} in group {group!r}.")
    part = part.iloc[::-1]
    fig = go.Figure(
        go.Scatter(
            x=part["estimate"],
            y=part["method"],
            error_x={
                "type": "data",
                "symmetric": False,
                "array": part["ci_high"] - part["estimate"],
                "arrayminus": part["estimate"] - part["ci_low"],
            },
            mode="markers",
            marker={"color": [method_colour(str(m)) for m in part["method"]], "size": 10},
            showlegend=False,
        )
    )
    fig.add_vline(x=0.0, line={"color": "#000000", "dash": "dot"})
    baseline = str(part["baseline"].iloc[0])
    fig.update_layout(
        title=title or f"{metric}: method minus best one-step baseline ({baseline}), 95% CI",
        xaxis_title=f"paired difference in {metric}",
    )
    return apply_theme(fig, width=700, height=120 + 32 * len(part))


def plot_layer_sweep(
    frame: pd.DataFrame, *, value: str = "auc", title: str | None = None
) -> go.Figure:
    """Held-out barrier ``value`` (``auc`` or ``accuracy``) per layer, one line per barrier."""
    _need(frame, ("layer", "barrier", value), "plot_layer_sweep")
    fig = go.Figure()
    for name, sub in frame.groupby("barrier", sort=False):
        key = str(name).split(" ")[0]
        fig.add_trace(
            go.Scatter(
                x=sub["layer"],
                y=sub[value],
                mode="lines+markers",
                name=str(name),
                line={"color": method_colour(key)},
            )
        )
    if value in ("auc", "accuracy"):
        fig.add_hline(y=0.5, line={"color": "#7F7F7F", "dash": "dot"})
    fig.update_layout(
        title=title or f"held-out barrier {value} per layer",
        xaxis_title="layer (resid_post)",
        yaxis_title=value,
        yaxis={"range": [float(np.nanmin([0.4, frame[value].min()])), 1.0]},
    )
    return apply_theme(fig, width=700, height=420)


def write_eval_figures(folder: str | os.PathLike[str]) -> list[Path]:
    """Write the figures of one ``lens-odesteer eval`` output folder as HTML; return the paths.

    For a task folder: metric vs strength (primary metric), paired differences and, for
    generation tasks, the fluency trade-off. For a layer-sweep folder: barrier AUC per layer.
    """
    root = Path(folder)
    written: list[Path] = []

    def save(fig: go.Figure, name: str) -> None:
        path = root / name
        with atomic_path(path) as tmp:
            fig.write_html(tmp, include_plotlyjs=True, full_html=True)
        written.append(path)

    if (root / "layer_barriers.csv").exists():
        save(plot_layer_sweep(pd.read_csv(root / "layer_barriers.csv")), "layer_auc.html")
        return written
    summary_path, units_path = root / "summary.csv", root / "units.csv"
    if not summary_path.exists() or not units_path.exists():
        return written
    summary = pd.read_csv(summary_path, keep_default_na=False)
    units = pd.read_csv(units_path, keep_default_na=False)
    primary = str(summary["metric"].iloc[0])
    numeric = pd.to_numeric(units[primary], errors="coerce")
    save(
        plot_metric_vs_strength(units.assign(**{primary: numeric}), primary),
        "metric_vs_strength.html",
    )
    if "ppl" in set(summary["metric"]):
        save(plot_fluency_tradeoff(summary, primary), "fluency_tradeoff.html")
    paired_path = root / "paired.csv"
    if paired_path.exists() and paired_path.stat().st_size > 1:
        paired = pd.read_csv(paired_path, keep_default_na=False)
        if primary in set(paired["metric"]):
            save(plot_paired_forest(paired, primary), "paired_differences.html")
    return written


__getattr__ = module_getattr(__name__)
