"""Trajectory profiles: ``h``, ``P(positive)`` and ``|a|`` against time, and 3-D paths.

Example:
    >>> import torch, lens_odesteer as lo
    >>> from lens_odesteer.analysis.trajectories import trajectory_frame
    >>> from lens_odesteer.viz.trajectories import plot_trajectory_profile
    >>> g = torch.Generator().manual_seed(0)
    >>> pos, neg = torch.randn(30, 5, generator=g) + 1, torch.randn(30, 5, generator=g) - 1
    >>> ode = lo.ODESteer(lo.sketch_barrier(n_components=256)).fit(pos, neg)
    >>> caa = lo.CAA().fit(pos, neg)
    >>> T = {"ODESteer": 2.0, "CAA": 1.0}
    >>> frame = trajectory_frame({"ODESteer": ode, "CAA": caa}, neg[:3], T=T)
    >>> fig = plot_trajectory_profile(frame)
    >>> sorted({t.name for t in fig.data if t.showlegend is not False})
    ['CAA', 'ODESteer']
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.viz._renamed import module_getattr
from lens_odesteer.viz.level_sets import _require
from lens_odesteer.viz.theme import (
    NEGATIVE_COLOUR,
    POSITIVE_COLOUR,
    apply_theme,
    method_colour,
)

_PANELS = (("h", "barrier h"), ("p_positive", "P(positive)"), ("norm", "|a|"))
_X_TITLES = {
    "fraction": "t / T (share of each method's strength)",
    "t": "t (each method's own time)",
    "displacement": "distance from the start |a(t) - a(0)|",
    "path_length": "distance travelled",
}


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def plot_trajectory_profile(
    paths: pd.DataFrame,
    *,
    x: str = "fraction",
    title: str | None = None,
    width: int | None = 760,
    height: int | None = 720,
) -> go.Figure:
    """Three stacked panels: ``h``, ``P(positive)`` and ``|a|`` against ``x`` for each method.

    Thin lines are single activations, the thick line their mean. ``x`` is ``"fraction"``
    (t/T, default: methods with different strength units line up), ``"t"``,
    ``"displacement"`` or ``"path_length"``. ``h`` is the reference barrier of the frame
    (``paths.attrs["reference"]``), the same for every method.
    """
    _require(paths, ["method", "row", "step", "h", "p_positive", "norm"], "paths")
    if x not in _X_TITLES:
        raise InvalidParameterError(f"`x` must be one of {list(_X_TITLES)}; got {x!r}.")
    _require(paths, [x], "paths")
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.06,
        subplot_titles=[label for _, label in _PANELS],
    )
    # Reverse order: the first method (usually the ODE) is drawn last, on top.
    for rank, (method, sub) in list(enumerate(paths.groupby("method", sort=False)))[::-1]:
        colour = method_colour(str(method))
        for panel, (column, _) in enumerate(_PANELS, start=1):
            for _, row_frame in sub.groupby("row"):
                row_frame = row_frame.sort_values("step")
                fig.add_trace(
                    go.Scatter(
                        x=row_frame[x],
                        y=row_frame[column],
                        mode="lines",
                        line={"color": _rgba(colour, 0.25), "width": 1},
                        legendgroup=str(method),
                        showlegend=False,
                        hoverinfo="skip",
                    ),
                    row=panel,
                    col=1,
                )
            mean = sub.groupby("step")[[x, column]].mean()
            fig.add_trace(
                go.Scatter(
                    x=mean[x],
                    y=mean[column],
                    mode="lines+markers",
                    name=str(method),
                    legendgroup=str(method),
                    showlegend=panel == 1,
                    legendrank=1000 + rank,
                    line={"color": colour, "width": 3},
                    marker={"size": 5},
                ),
                row=panel,
                col=1,
            )
    fig.add_hline(y=0.0, line={"color": "black", "width": 1, "dash": "dot"}, row=1, col=1)
    fig.add_hline(y=0.5, line={"color": "black", "width": 1, "dash": "dot"}, row=2, col=1)
    ref = paths.attrs.get("reference", "the reference steerer")
    fig.update_layout(
        title={"text": title or f"Along the paths (h and P judged by {ref}'s barrier)"},
    )
    fig.update_xaxes(title_text=_X_TITLES[x], row=3, col=1)
    fig = apply_theme(fig, width=width, height=height)
    fig.update_layout(
        legend={"orientation": "h", "x": 1.0, "xanchor": "right", "y": 1.08, "yanchor": "bottom"},
        margin={"t": 110},
    )
    return fig


def plot_trajectories_3d(
    points: pd.DataFrame | None,
    paths: pd.DataFrame,
    *,
    title: str | None = None,
    width: int | None = 760,
    height: int | None = 640,
) -> go.Figure:
    """Data and paths in a 3-D view (frames built with a 3-axis projection)."""
    _require(paths, ["method", "row", "step", "x", "y", "z"], "paths")
    fig = go.Figure()
    if points is not None:
        _require(points, ["label", "x", "y", "z"], "points")
        colours = {"positive": POSITIVE_COLOUR, "negative": NEGATIVE_COLOUR}
        for label, sub in points.groupby("label", sort=False):
            fig.add_trace(
                go.Scatter3d(
                    x=sub["x"],
                    y=sub["y"],
                    z=sub["z"],
                    mode="markers",
                    name=f"{label} activations",
                    marker={"size": 3, "color": colours.get(str(label), "#555555"), "opacity": 0.6},
                )
            )
    for method, sub in paths.groupby("method", sort=False):
        colour = method_colour(str(method))
        for i, (_, row_frame) in enumerate(sub.groupby("row")):
            row_frame = row_frame.sort_values("step")
            fig.add_trace(
                go.Scatter3d(
                    x=row_frame["x"],
                    y=row_frame["y"],
                    z=row_frame["z"],
                    mode="lines+markers",
                    name=str(method),
                    legendgroup=str(method),
                    showlegend=i == 0,
                    line={"color": colour, "width": 5},
                    marker={"size": 3, "color": colour},
                )
            )
    labels = paths.attrs.get("axis_labels", ("axis 1", "axis 2", "axis 3"))
    fig.update_layout(
        title={"text": title or "Steering paths in a 3-D view"},
        scene={
            "xaxis_title": labels[0],
            "yaxis_title": labels[1],
            "zaxis_title": labels[2],
            "aspectmode": "cube",
            "camera": {"eye": {"x": 1.7, "y": -1.5, "z": 0.9}},
        },
    )
    fig = apply_theme(fig, width=width, height=height)
    fig.update_layout(margin={"l": 10, "r": 10, "t": 60, "b": 10})
    return fig


__getattr__ = module_getattr(__name__)
