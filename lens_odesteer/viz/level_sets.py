"""Barrier level sets in a 2-D view, with the data and steering paths drawn over them.

Example:
    >>> import torch, lens_odesteer as lo
    >>> from lens_odesteer.analysis.projection import fit_projection
    >>> from lens_odesteer.analysis.level_sets import barrier_grid, points_frame
    >>> from lens_odesteer.analysis.trajectories import trajectory_frame
    >>> from lens_odesteer.viz.level_sets import plot_level_sets
    >>> g = torch.Generator().manual_seed(0)
    >>> pos, neg = torch.randn(30, 5, generator=g) + 1, torch.randn(30, 5, generator=g) - 1
    >>> ode = lo.ODESteer(lo.sketch_barrier(n_components=256)).fit(pos, neg)
    >>> view = fit_projection(pos, neg)
    >>> paths = trajectory_frame({"ODESteer": ode}, neg[:2], T=2.0, view=view)
    >>> grid = barrier_grid(ode, view, points=torch.cat([pos, neg]), resolution=10)
    >>> fig = plot_level_sets(grid, points_frame(view, pos, neg), paths)
    >>> [t.type for t in fig.data][:2]
    ['contour', 'contour']
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.viz._renamed import module_getattr
from lens_odesteer.viz.theme import (
    BARRIER_COLORSCALE,
    NEGATIVE_COLOUR,
    POSITIVE_COLOUR,
    apply_theme,
    method_colour,
)

_POINT_COLOURS = {"positive": POSITIVE_COLOUR, "negative": NEGATIVE_COLOUR}


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise InvalidParameterError(
            f"`{what}` must be a pandas DataFrame from lens_odesteer.analysis; got "
            f"{type(frame).__name__}."
        )
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidParameterError(
            f"`{what}` lacks columns {missing} (has {list(frame.columns)}); build it with the "
            "matching lens_odesteer.analysis function."
        )


def _grid_arrays(grid: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xs = np.sort(grid["x"].unique())
    ys = np.sort(grid["y"].unique())
    z = grid.pivot_table(index="y", columns="x", values="h").reindex(index=ys, columns=xs)
    return xs, ys, z.to_numpy()


def plot_level_sets(
    grid: pd.DataFrame,
    points: pd.DataFrame | None = None,
    paths: pd.DataFrame | None = None,
    *,
    title: str | None = None,
    width: int | None = 760,
    height: int | None = 620,
    max_points: int = 400,
) -> go.Figure:
    """Filled contours of ``h`` with the ``h = 0`` boundary in black, data and paths on top.

    Args:
        grid: from :func:`lens_odesteer.analysis.level_sets.barrier_grid`.
        points: from :func:`~lens_odesteer.analysis.level_sets.points_frame` (optional).
        paths: from :func:`lens_odesteer.analysis.trajectories.trajectory_frame` with a view
            (optional); each method is one colour, a marker per saved step, a cross at the end.
        title: the figure title (default names the method); the slice is always stated below.
        max_points: at most this many data points per label are drawn (evenly spaced).
    """
    _require(grid, ["x", "y", "h"], "grid")
    xs, ys, z = _grid_arrays(grid)
    h_abs = float(np.nanmax(np.abs(z))) or 1.0
    fig = go.Figure()
    fig.add_trace(
        go.Contour(
            x=xs,
            y=ys,
            z=z,
            colorscale=BARRIER_COLORSCALE,
            zmin=-h_abs,
            zmax=h_abs,
            ncontours=21,
            contours={"coloring": "fill", "showlines": False},
            colorbar={"title": {"text": "barrier h"}, "len": 0.8},
            name="h",
            hovertemplate="x=%{x:.3g}<br>y=%{y:.3g}<br>h=%{z:.3g}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Contour(
            x=xs,
            y=ys,
            z=z,
            contours={"start": 0.0, "end": 0.0, "size": 1.0, "coloring": "none"},
            line={"color": "black", "width": 2.5},
            showscale=False,
            name="h = 0",
            showlegend=True,
            hoverinfo="skip",
        )
    )
    if points is not None:
        _require(points, ["label", "x", "y"], "points")
        for label, sub in points.groupby("label", sort=False):
            step = max(1, int(np.ceil(len(sub) / max_points)))
            sub = sub.iloc[::step]
            fig.add_trace(
                go.Scatter(
                    x=sub["x"],
                    y=sub["y"],
                    mode="markers",
                    name=f"{label} activations",
                    marker={
                        "size": 6,
                        "color": _POINT_COLOURS.get(str(label), "#555555"),
                        "line": {"width": 0.5, "color": "white"},
                        "opacity": 0.8,
                    },
                )
            )
    if paths is not None:
        _require(paths, ["method", "row", "step", "x", "y"], "paths")
        # Reverse order: the first method (usually the ODE) is drawn last, on top; one-step
        # paths are dashed so an ODE path that follows one stays visible.
        groups = list(enumerate(paths.groupby("method", sort=False)))[::-1]
        for rank, (method, sub) in groups:
            colour = method_colour(str(method))
            dash = "dash" if "one_step" in sub and bool(sub["one_step"].iloc[0]) else "solid"
            first = True
            for _, row_frame in sub.groupby("row"):
                row_frame = row_frame.sort_values("step")
                fig.add_trace(
                    go.Scatter(
                        x=row_frame["x"],
                        y=row_frame["y"],
                        mode="lines+markers",
                        name=str(method),
                        legendgroup=str(method),
                        legendrank=1000 + rank,
                        showlegend=first,
                        line={"color": colour, "width": 2, "dash": dash},
                        marker={"size": 5, "color": colour},
                    )
                )
                end = row_frame.iloc[-1]
                fig.add_trace(
                    go.Scatter(
                        x=[end["x"]],
                        y=[end["y"]],
                        mode="markers",
                        legendgroup=str(method),
                        showlegend=False,
                        marker={"size": 11, "color": colour, "symbol": "x"},
                        hoverinfo="skip",
                    )
                )
                first = False
    labels = grid.attrs.get("axis_labels", ("axis 1", "axis 2"))
    method = grid.attrs.get("method", "steerer")
    slice_text = grid.attrs.get("slice", "a 2-D slice of activation space")
    fig.update_layout(
        title={"text": title or f"Barrier level sets of {method}"},
        xaxis_title=str(labels[0]),
        yaxis_title=str(labels[1]),
        legend={"orientation": "h", "y": -0.16, "x": 0.0},
        margin={"b": 130, "t": 110},
    )
    fig.add_annotation(
        text=f"Slice: {slice_text}.<br>h lives in all d dimensions; this plane is one cut.",
        xref="paper",
        yref="paper",
        x=0.0,
        y=1.01,
        showarrow=False,
        align="left",
        xanchor="left",
        yanchor="bottom",
        font={"size": 11, "color": "#444444"},
    )
    return apply_theme(fig, width=width, height=height)


__getattr__ = module_getattr(__name__)
