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
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.viz._renamed import module_getattr
from lens_odesteer.viz.export import save_figures
from lens_odesteer.viz.theme import finish_layout, method_colour, method_symbol

__all__ = [
    "plot_fluency_tradeoff",
    "plot_layer_sweep",
    "plot_metric_vs_strength",
    "plot_paired_forest",
    "strength_curve",
    "write_eval_figures",
]


def _need(frame: pd.DataFrame, cols: tuple[str, ...], what: str) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise InvalidParameterError(
            f"{what} needs columns {list(cols)}; the frame lacks {missing} (has "
            f"{list(frame.columns)})."
        )


def strength_curve(units: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The points of :func:`plot_metric_vs_strength`: one per method, phase, split and grid index.

    The strength grid is shared by index (``T_index``), not by value: a method's native ``T``
    for the same grid point differs per fold (it is fitted on each fold's data), so grouping by
    the raw ``T`` would split one grid point into several. Without a ``T_index`` column the
    index is the rank of ``T`` within each method and split (validation and test together, so
    a chosen test ``T`` gets the index of the grid point it was chosen from).

    Returns:
        Columns ``method, phase, split, T_index, T, x`` (mean displacement / residual norm),
        ``y`` (mean ``metric``) and ``n`` (units), sorted by method, phase, split and index.
    """
    _need(units, ("method", "phase", "T", "displacement_frac", metric), "strength_curve")
    frame = units.copy()
    if "split" not in frame:
        frame["split"] = "all"
    if "T_index" not in frame:
        frame["T_index"] = (
            frame.groupby(["method", "split"])["T"].rank(method="dense").astype(int) - 1
        )
    frame[metric] = pd.to_numeric(frame[metric], errors="coerce")
    out = (
        frame.groupby(["method", "phase", "split", "T_index"], sort=False)
        .agg(
            T=("T", "first"),
            x=("displacement_frac", "mean"),
            y=(metric, "mean"),
            n=(metric, "count"),
        )
        .reset_index()
    )
    order = {m: k for k, m in enumerate(dict.fromkeys(units["method"]))}
    out["_order"] = out["method"].map(order)
    out = out.sort_values(["_order", "phase", "split", "T_index"]).drop(columns="_order")
    return out.reset_index(drop=True)


def plot_metric_vs_strength(
    units: pd.DataFrame,
    metric: str,
    *,
    title: str | None = None,
    width: int | None = 760,
    height: int | None = None,
) -> go.Figure:
    """Mean ``metric`` vs matched strength (displacement / residual norm) per method.

    Validation points (the strength grid) are lines with small markers, one line per method and
    split with one point per grid index (:func:`strength_curve`); several splits are told apart
    by their dash. Each method's chosen strength on the test units is a large open marker per
    split. Hover shows the method's own ``T``.
    """
    _need(units, ("method", "phase", "T", "displacement_frac", metric), "plot_metric_vs_strength")
    curve = strength_curve(units, metric)
    splits = list(dict.fromkeys(curve["split"]))
    dashes = ("solid", "dash", "dot", "dashdot", "longdash")
    fig = go.Figure()
    # Reverse order: the first method (usually the ODE) is drawn last, on top.
    for rank, method in list(enumerate(dict.fromkeys(curve["method"])))[::-1]:
        colour = method_colour(str(method))
        for phase in ("val", "test"):
            part = curve[(curve["method"] == method) & (curve["phase"] == phase)]
            for k, split in enumerate(splits):
                sub = part[part["split"] == split]
                if sub.empty:
                    continue
                many = sub["T_index"].nunique() > 1
                fig.add_trace(
                    go.Scatter(
                        x=sub["x"],
                        y=sub["y"],
                        mode="lines+markers" if phase == "val" and many else "markers",
                        marker={
                            "color": colour,
                            "symbol": "circle" if phase == "val" else "diamond-open",
                            "size": 5 if phase == "val" else 12,
                            "line": {"width": 2 if phase == "test" else 0},
                        },
                        line={"color": colour, "dash": dashes[k % len(dashes)], "width": 2},
                        name=str(method),
                        customdata=sub[["T", "split"]].to_numpy(),
                        hovertemplate=f"{method}<br>split %{{customdata[1]}}<br>"
                        f"T=%{{customdata[0]:.4g}}<br>displacement/|a|=%{{x:.3f}}"
                        f"<br>{metric}=%{{y:.3f}}<extra></extra>",
                        legendgroup=str(method),
                        legendrank=1000 + 2 * rank + (phase == "test"),
                        showlegend=False,
                    )
                )
    for rank, method in enumerate(dict.fromkeys(curve["method"])):  # one entry per method
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="lines+markers",
                name=str(method),
                legendgroup=str(method),
                legendrank=1000 + rank,
                line={"color": method_colour(str(method)), "width": 2},
                marker={"color": method_colour(str(method)), "size": 5},
            )
        )
    notes = ["Lines: the validation grid; open diamonds: test units at the chosen strength."]
    if len(splits) > 1:
        notes.append(
            "One line per split ("
            + ", ".join(f"{sp}: {dashes[k % len(dashes)]}" for k, sp in enumerate(splits))
            + "); points are grid indices, each at its mean displacement."
        )
    fig.update_layout(
        xaxis_title="mean displacement / mean residual norm",
        yaxis_title=metric,
    )
    w = width or 760
    return finish_layout(
        fig,
        title=title or f"{metric} vs steering strength (matched by displacement)",
        subtitle=" ".join(notes) or None,
        width=w,
        height=height or (340 if w <= 480 else 480),
        legend="below",
    )


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
    width: int | None = 700,
    height: int | None = None,
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
    # Reverse order (the first method on top) and one marker shape per method, so methods that
    # land on the same point stay distinguishable.
    for rank, m in list(enumerate(methods))[::-1]:
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
                marker={
                    "color": method_colour(str(m)),
                    "size": 10,
                    "symbol": method_symbol(rank),
                    "line": {"width": 1, "color": "white"},
                },
                error_x_color=method_colour(str(m)),
                name=str(m),
                legendrank=1000 + rank,
            )
        )
    fig.update_layout(
        xaxis_title=f"{fluency} (lower = more fluent)" if fluency == "ppl" else fluency,
        yaxis_title=metric,
    )
    w = width or 700
    return finish_layout(
        fig,
        title=title or f"{metric} vs fluency ({fluency}, unsteered model), 95% intervals",
        width=w,
        height=height or (320 if w <= 480 else 460),
        legend="below",
    )


def plot_paired_forest(
    paired: pd.DataFrame,
    metric: str,
    *,
    group: str = "all",
    title: str | None = None,
    width: int | None = 700,
    height: int | None = None,
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
    fig.add_vline(x=0.0, line={"color": "#000000", "dash": "dot", "width": 1.2})
    baseline = str(part["baseline"].iloc[0])
    fig.update_layout(xaxis_title=f"paired difference in {metric}")
    w = width or 700
    fig = finish_layout(
        fig,
        title=title or f"{metric}: method minus best one-step baseline ({baseline}), 95% CI",
        width=w,
        height=height or int((110 if w <= 480 else 150) + (24 if w <= 480 else 32) * len(part)),
        legend="none",
        left=int(7 * max(len(str(m)) for m in part["method"]) + 20),
    )
    return fig


def plot_layer_sweep(
    frame: pd.DataFrame,
    *,
    value: str = "auc",
    title: str | None = None,
    width: int | None = 700,
    height: int | None = None,
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
        fig.add_hline(y=0.5, line={"color": "#7F7F7F", "dash": "dot", "width": 1.2})
    fig.update_layout(
        xaxis_title="layer (resid_post)",
        yaxis_title=value,
        yaxis={"range": [float(np.nanmin([0.4, frame[value].min()])), 1.01]},
    )
    w = width or 700
    return finish_layout(
        fig,
        title=title or f"Held-out barrier {value} per layer",
        width=w,
        height=height or (320 if w <= 480 else 420),
        legend="below",
    )


def write_eval_figures(
    folder: str | os.PathLike[str],
    *,
    formats: Sequence[str] = ("html", "png", "pdf"),
    static: str = "auto",
) -> list[Path]:
    """Write the figures of one ``lens-odesteer eval`` output folder; return the paths.

    For a task folder: metric vs strength (primary metric), paired differences, per-item
    steerability (:func:`~lens_odesteer.viz.reliability_plots.plot_steerability`) and, for
    generation tasks, the fluency trade-off. For a layer-sweep folder: barrier AUC per layer.
    Each figure is written as self-contained HTML and, when static export works here, as PNG
    and PDF beside it (``static="auto"`` warns and writes HTML only without a browser;
    ``"require"`` raises; ``"skip"`` writes no static files).
    """
    root = Path(folder)
    figs: dict[str, go.Figure] = {}
    if (root / "layer_barriers.csv").exists():
        figs["layer_auc"] = plot_layer_sweep(pd.read_csv(root / "layer_barriers.csv"))
    else:
        summary_path, units_path = root / "summary.csv", root / "units.csv"
        if not summary_path.exists() or not units_path.exists():
            return []
        summary = pd.read_csv(summary_path, keep_default_na=False)
        units = pd.read_csv(units_path, keep_default_na=False)
        primary = str(summary["metric"].iloc[0])
        numeric = pd.to_numeric(units[primary], errors="coerce")
        figs["metric_vs_strength"] = plot_metric_vs_strength(
            units.assign(**{primary: numeric}), primary
        )
        if "ppl" in set(summary["metric"]):
            figs["fluency_tradeoff"] = plot_fluency_tradeoff(summary, primary)
        paired_path = root / "paired.csv"
        if paired_path.exists() and paired_path.stat().st_size > 1:
            paired = pd.read_csv(paired_path, keep_default_na=False)
            if "baseline_chosen_by" in paired:  # the forest is against the one-step baseline
                paired = paired[paired["baseline_chosen_by"] != "design"]
            if primary in set(paired["metric"]):
                figs["paired_differences"] = plot_paired_forest(paired, primary)
        items_path, rel_path = root / "reliability_items.csv", root / "reliability.csv"
        if items_path.exists() and items_path.stat().st_size > 1:
            from lens_odesteer.viz.reliability_plots import plot_steerability

            items = pd.read_csv(items_path)
            if not items.empty:
                rel = pd.read_csv(rel_path) if rel_path.exists() else None
                figs["steerability"] = plot_steerability(items, rel)
    written = save_figures(figs, root, formats=formats, static=static, scale=2)
    return [path for paths in written.values() for path in paths]


__getattr__ = module_getattr(__name__)
