"""An interactive figure: a slider over the steps of the paths moves them on the level sets and
the next-token distribution together.

The figure is plain plotly frames (one per saved step) with a slider and a play button, so it
needs no server and no widget backend: it works in Jupyter, in a self-contained HTML file and in
the comparison report. A static export (PNG/PDF) shows the last step.

Example:
    >>> import torch, lens_odesteer as lo
    >>> from lens_odesteer.analysis import step_logits, barrier_grid
    >>> from lens_odesteer.analysis.projection import fit_projection
    >>> from lens_odesteer.viz.interactive import plot_step_slider
    >>> model = lo.tiny_bridge()
    >>> hook = "blocks.1.hook_resid_post"
    >>> acts = lo.collect_activations(model, ["ab", "cd", "ef", "gh"], hook, progress=False)
    >>> ode = lo.ODESteer(lo.sketch_barrier(n_components=128)).fit(acts[:2], acts[2:])
    >>> caa = lo.CAA().fit(acts[:2], acts[2:])
    >>> view = fit_projection(acts[:2], acts[2:])
    >>> res = step_logits(model, "abc", hook, {"ODESteer": ode, "CAA": caa}, T=1.0, top_k=3,
    ...                   view=view)
    >>> grid = barrier_grid(ode, view, extent=(-3.0, 3.0, -3.0, 3.0), resolution=8)
    >>> fig = plot_step_slider(res, grid)
    >>> len(fig.frames), len(fig.layout.sliders[0].steps)
    (11, 11)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lens_odesteer.analysis.model_runs.logits import StepLogits
from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.viz.level_sets import _background, _grid_arrays, _require
from lens_odesteer.viz.step_logits import token_text
from lens_odesteer.viz.theme import (
    finish_layout,
    font_size,
    method_colour,
    method_symbol,
    wrap,
)


def _tokens_to_show(result: StepLogits, n_tokens: int) -> list[int]:
    tokens = result.tokens
    targets = list(dict.fromkeys(tokens.loc[tokens["is_target"], "token_id"]))
    rest = (
        tokens[~tokens["is_target"]]
        .groupby("token_id")["prob"]
        .max()
        .sort_values(ascending=False)
        .index.tolist()
    )
    return (targets + [t for t in rest if t not in targets])[: max(n_tokens, len(targets))]


def plot_step_slider(
    result: StepLogits,
    grid: pd.DataFrame | None = None,
    *,
    n_tokens: int = 8,
    title: str | None = None,
    width: int | None = 920,
    height: int | None = None,
    unit: str | None = None,
) -> go.Figure:
    """Paths on the level sets (left) and next-token probabilities (right), one slider step per
    saved step of the paths (``t / T``).

    Args:
        result: from :func:`~lens_odesteer.analysis.model_runs.logits.step_logits` called with
            ``view=`` (its ``steps`` frame then holds each state's ``x``, ``y``).
        grid: :func:`~lens_odesteer.analysis.level_sets.barrier_grid` in the same view (best a
            slice through ``result.start``, the prompt's activation); None draws no background.
        n_tokens: bars per method: the targets, then the tracked tokens most likely anywhere
            along the paths.
        width: figure width; at paper-column width (under 480) the panels are stacked.
        unit: the unit of the view's axes (default "activation units").

    The frames carry the moving markers, the part of each path travelled so far and the bars;
    the initial state (and a static export) is the last step.
    """
    if not isinstance(result, StepLogits):
        raise InvalidParameterError(
            "Expected the StepLogits returned by lens_odesteer.analysis.step_logits; got "
            f"{type(result).__name__}."
        )
    steps = result.steps
    if "x" not in steps or "y" not in steps:
        raise InvalidParameterError(
            "The StepLogits has no view coordinates; call step_logits(..., view=projection) so "
            "its steps frame holds x and y."
        )
    methods = list(dict.fromkeys(steps["method"]))
    n_steps = int(steps.groupby("method")["step"].max().max())
    w = width or 920
    base = font_size(width)
    stacked = base < 13
    fig = go.Figure()
    axes_left = {"xaxis": "x", "yaxis": "y"}
    axes_right = {"xaxis": "x2", "yaxis": "y2"}
    if grid is not None:
        _require(grid, ["x", "y", "h"], "grid")
        xs, ys, z = _grid_arrays(grid)
        _background(fig, xs, ys, z, axes={}, colorbar=False, base=base)
        extent = (float(xs[0]), float(xs[-1]), float(ys[0]), float(ys[-1]))
    else:
        pad = 0.1 * float(max(np.ptp(steps["x"]), np.ptp(steps["y"]), 1e-9))
        extent = (
            float(steps["x"].min()) - pad,
            float(steps["x"].max()) + pad,
            float(steps["y"].min()) - pad,
            float(steps["y"].max()) + pad,
        )
    per_method = {m: steps[steps["method"] == m].sort_values("step") for m in methods}
    # Static traces: each full path, faint.
    for m in methods:
        sub = per_method[m]
        fig.add_trace(
            go.Scatter(
                x=sub["x"],
                y=sub["y"],
                mode="lines",
                line={"color": method_colour(m), "width": 1, "dash": "dot"},
                hoverinfo="skip",
                showlegend=False,
                **axes_left,
            )
        )
    start = per_method[methods[0]].iloc[0]
    fig.add_trace(
        go.Scatter(
            x=[start["x"]],
            y=[start["y"]],
            mode="markers",
            name="start",
            marker={"size": 8, "color": "white", "line": {"width": 1.5, "color": "#222222"}},
            **axes_left,
        )
    )
    token_ids = _tokens_to_show(result, n_tokens)
    tok = result.tokens[result.tokens["token_id"].isin(token_ids)]
    names = {
        int(t): ("★ " if bool(g["is_target"].iloc[0]) else "") + token_text(str(g["token"].iloc[0]))
        for t, g in tok.groupby("token_id")
    }
    labels = [names[int(t)] for t in token_ids]
    probs = {
        m: tok[tok["method"] == m].pivot_table(index="step", columns="token_id", values="prob")
        for m in methods
    }
    dynamic_start = len(fig.data)

    def dynamic(k: int) -> list[go.Scatter | go.Bar]:
        out: list[go.Scatter | go.Bar] = []
        for rank, m in enumerate(methods):
            sub = per_method[m]
            kk = min(k, int(sub["step"].max()))
            done = sub[sub["step"] <= kk]
            colour = method_colour(m)
            out.append(
                go.Scatter(
                    x=done["x"],
                    y=done["y"],
                    mode="lines",
                    line={"color": colour, "width": 2.5},
                    name=m,
                    legendgroup=m,
                    showlegend=False,
                    hoverinfo="skip",
                    **axes_left,
                )
            )
            here = sub[sub["step"] == kk]
            out.append(
                go.Scatter(
                    x=here["x"],
                    y=here["y"],
                    mode="markers",
                    name=m,
                    legendgroup=m,
                    showlegend=True,
                    marker={
                        "size": 10,
                        "color": colour,
                        "symbol": method_symbol(rank),
                        "line": {"width": 1.2, "color": "white"},
                    },
                    hovertemplate=f"{m}<br>h=%{{customdata:.3g}}<extra></extra>",
                    customdata=here["h"],
                    **axes_left,
                )
            )
        for m in methods:
            table = probs[m]
            kk = min(k, int(table.index.max()))
            values = table.loc[kk].reindex(token_ids).to_numpy()
            out.append(
                go.Bar(
                    x=values,
                    y=labels,
                    orientation="h",
                    name=m,
                    legendgroup=m,
                    showlegend=False,
                    marker={"color": method_colour(m)},
                    hovertemplate=f"{m}<br>%{{y}}: p=%{{x:.3g}}<extra></extra>",
                    **axes_right,
                )
            )
        return out

    for trace in dynamic(n_steps):
        fig.add_trace(trace)
    n_dynamic = len(fig.data) - dynamic_start
    frac = per_method[methods[0]].set_index("step")["fraction"]
    frames = []
    for k in range(n_steps + 1):
        frames.append(
            go.Frame(
                data=dynamic(k),
                traces=list(range(dynamic_start, dynamic_start + n_dynamic)),
                name=str(k),
            )
        )
    fig.frames = frames

    def label(k: int) -> str:
        return f"{float(frac.get(k, k / max(n_steps, 1))):.2g}"

    slider_steps = [
        {
            "args": [[str(k)], {"frame": {"duration": 0, "redraw": True}, "mode": "immediate"}],
            "label": label(k),
            "method": "animate",
        }
        for k in range(n_steps + 1)
    ]
    unit = unit or ("act. units" if stacked else "activation units")
    largest = max(float(np.nanmax(t.reindex(columns=token_ids).to_numpy())) for t in probs.values())
    if stacked:
        left_dom_x, left_dom_y = (0.0, 1.0), (0.5, 1.0)
        right_dom_x, right_dom_y = (0.3, 1.0), (0.0, 0.36)
    else:
        left_dom_x, left_dom_y = (0.0, 0.5), (0.0, 1.0)
        right_dom_x, right_dom_y = (0.72, 1.0), (0.0, 1.0)
    labels_xy = (
        grid.attrs.get("axis_labels", ("axis 1", "axis 2"))
        if grid is not None
        else (
            "axis 1",
            "axis 2",
        )
    )
    fig.update_layout(
        xaxis={
            "domain": list(left_dom_x),
            "range": [extent[0], extent[1]],
            "title": {"text": f"{labels_xy[0]} ({unit})"},
            "showgrid": False,
            "constrain": "domain",
        },
        yaxis={
            "domain": list(left_dom_y),
            "range": [extent[2], extent[3]],
            "title": {"text": f"{labels_xy[1]} ({unit})"},
            "scaleanchor": "x",
            "scaleratio": 1,
            "constrain": "domain",
            "showgrid": False,
        },
        xaxis2={
            "domain": list(right_dom_x),
            "anchor": "y2",
            "range": [0.0, min(1.0, largest * 1.1) or 1.0],
            "title": {"text": "next-token probability"},
        },
        yaxis2={
            "domain": list(right_dom_y),
            "anchor": "x2",
            "autorange": "reversed",
            "tickfont": {"size": base - 1},
        },
        barmode="group",
        bargap=0.25,
        bargroupgap=0.05,
    )
    fig_h = height or (640 if stacked else 520)
    finish_layout(
        fig,
        title=title or "Move along the paths: where each method is, and what the model predicts",
        subtitle=(
            f"Prompt {result.prompt!r} at {result.hook}. Drag the slider over t / T (share of "
            "each method's strength); the dotted lines are the whole paths."
        ),
        width=w,
        height=fig_h,
        legend="below",
        extra_bottom=3.2 * base + 40,
        left=int(6.2 * base),
    )
    plot_px_h = (fig_h - (fig.layout.margin.t or 0) - (fig.layout.margin.b or 0)) * (
        left_dom_y[1] - left_dom_y[0]
    )
    fig.layout.yaxis.title.text = "<br>".join(wrap(f"{labels_xy[1]} ({unit})", plot_px_h, base))
    bottom = fig.layout.margin.b or 0
    plot_h = max(fig_h - (fig.layout.margin.t or 0) - bottom, 10)
    below_axis = -(3.3 * base + 8) / plot_h  # just under the x-axis title, in paper units
    fig.update_layout(
        sliders=[
            {
                "active": n_steps,
                "steps": slider_steps,
                "currentvalue": {"prefix": "t / T = ", "font": {"size": base}},
                "pad": {"t": 0, "b": 0},
                "x": 0.12,
                "len": 0.88,
                "y": below_axis,
                "yanchor": "top",
                "font": {"size": base - 2},
            }
        ],
        updatemenus=[
            {
                "type": "buttons",
                "showactive": False,
                "x": 0.0,
                "y": below_axis - 14 / plot_h,
                "xanchor": "left",
                "yanchor": "top",
                "pad": {"t": 0, "r": 4},
                "buttons": [
                    {
                        "label": "▶",
                        "method": "animate",
                        "args": [
                            None,
                            {
                                "frame": {"duration": 300, "redraw": True},
                                "fromcurrent": False,
                                "mode": "immediate",
                            },
                        ],
                    }
                ],
            }
        ],
    )
    return fig
