"""Barrier level sets in a 2-D view, with the data and steering paths drawn over them.

The figure is drawn for papers: equal scales on both axes (angles and distances are not
distorted), a muted sequential background with the ``h = 0`` boundary drawn strong, paths with a
white outline so they stay visible over the background and each other, markers only at the start
and the end (every step optional), axis titles with the unit, and an optional zoomed inset around
the end points. When two methods end closer together in the view than the figure can show, the
subtitle says so with the number (and the full-dimensional gap, when the paths frame has it).

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
    >>> fig.layout.yaxis.scaleanchor, fig.layout.yaxis.scaleratio
    ('x', 1)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.viz._renamed import module_getattr
from lens_odesteer.viz.theme import (
    LEVEL_SET_COLORSCALE,
    NEGATIVE_COLOUR,
    POSITIVE_COLOUR,
    finish_layout,
    font_size,
    method_colour,
    method_symbol,
    wrap,
)

_POINT_COLOURS = {"positive": POSITIVE_COLOUR, "negative": NEGATIVE_COLOUR}
#: Two end points closer than this many pixels look like one.
MIN_VISIBLE_PX = 3.0
_INSET_CORNERS = {
    "upper left": ((0.03, 0.39), (0.59, 0.97)),
    "upper right": ((0.61, 0.97), (0.59, 0.97)),
    "lower left": ((0.03, 0.39), (0.03, 0.41)),
    "lower right": ((0.61, 0.97), (0.03, 0.41)),
}
#: Sizes tried for an automatically placed inset, as a share of the corner boxes above: the
#: largest one that hides no path's start or end marker wins.
_INSET_SCALES = (1.0, 0.75, 0.55)

InsetDomain = tuple[tuple[float, float], tuple[float, float]]


def _corner_domain(corner: str, scale: float = 1.0) -> InsetDomain:
    """The inset's share of the plot for ``corner``, shrunk towards the corner by ``scale``."""
    (a, b), (c, d) = _INSET_CORNERS[corner]
    w, h = (b - a) * scale, (d - c) * scale
    x = (a, a + w) if "left" in corner else (b - w, b)
    y = (c, c + h) if "lower" in corner else (d - h, d)
    return x, y


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


def _ends(paths: pd.DataFrame) -> pd.DataFrame:
    return paths.loc[paths.groupby(["method", "row"])["step"].idxmax()]


def _starts(paths: pd.DataFrame) -> pd.DataFrame:
    return paths.loc[paths.groupby(["method", "row"])["step"].idxmin()]


def _separations(paths: pd.DataFrame) -> list[dict[str, Any]]:
    """In-view end-point distance of the reference (first multi-step) to each one-step method."""
    methods = list(dict.fromkeys(paths["method"]))
    one = paths.groupby("method", sort=False)["one_step"].first() if "one_step" in paths else None
    ref = paths.attrs.get("reference") or next(
        (m for m in methods if one is None or not bool(one[m])), methods[0]
    )
    if ref not in methods:
        return []
    ends = _ends(paths).set_index(["method", "row"])
    out = []
    for m in methods:
        if m == ref or (one is not None and not bool(one[m])):
            continue
        a, b = ends.loc[ref], ends.loc[m]
        rows = a.index.intersection(b.index)
        d = np.hypot(a.loc[rows, "x"] - b.loc[rows, "x"], a.loc[rows, "y"] - b.loc[rows, "y"])
        full = None
        if paths.attrs.get("gap_to") == m and "gap_rel" in a:
            full = float(a.loc[rows, "gap_rel"].median())
        disp = float(a.loc[rows, "displacement"].mean()) if "displacement" in a else math.nan
        out.append(
            {
                "ref": ref,
                "other": m,
                "in_view": float(d.mean()),
                "full_rel": full,
                "displacement": disp,
            }
        )
    return out


def _plot_px(width: int, height: int, margin: Any) -> tuple[float, float]:
    return (
        float(max(width - (margin.l or 0) - (margin.r or 0), 10)),
        float(max(height - (margin.t or 0) - (margin.b or 0), 10)),
    )


def _outlined_lines(
    fig: go.Figure,
    xs: list[float | None],
    ys: list[float | None],
    *,
    name: str,
    colour: str,
    width: float | int,
    dash: str,
    rank: int,
    axes: dict[str, str],
    showlegend: bool,
) -> None:
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="lines",
            line={"color": "white", "width": width + 2.5},
            hoverinfo="skip",
            showlegend=False,
            legendgroup=name,
            **axes,
        )
    )
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="lines",
            name=name,
            legendgroup=name,
            legendrank=1000 + rank,
            showlegend=showlegend,
            line={"color": colour, "width": width, "dash": dash},
            hovertemplate=f"{name}<br>x=%{{x:.4g}}<br>y=%{{y:.4g}}<extra></extra>",
            **axes,
        )
    )


def _draw_paths(
    fig: go.Figure,
    paths: pd.DataFrame,
    *,
    step_markers: bool,
    axes: dict[str, str],
    legend: bool,
    line_width: float | int,
) -> None:
    methods = list(dict.fromkeys(paths["method"]))
    one = paths.groupby("method", sort=False)["one_step"].first() if "one_step" in paths else None
    # One-step methods first and wider, the multi-step ones on top and thinner: where they
    # coincide, both stay visible (a coloured core inside a differently coloured rim).
    order = sorted(
        range(len(methods)),
        key=lambda i: (0 if one is not None and bool(one[methods[i]]) else 1, -i),
    )
    for rank in order:
        method = methods[rank]
        sub = paths[paths["method"] == method]
        colour = method_colour(str(method))
        is_one = one is not None and bool(one[method])
        xs: list[float | None] = []
        ys: list[float | None] = []
        for _, row_frame in sub.groupby("row"):
            row_frame = row_frame.sort_values("step")
            xs += [*row_frame["x"].tolist(), None]
            ys += [*row_frame["y"].tolist(), None]
        _outlined_lines(
            fig,
            xs,
            ys,
            name=str(method),
            colour=colour,
            width=line_width * (1.9 if is_one else 1.0),
            dash="solid",
            rank=rank,
            axes=axes,
            showlegend=legend,
        )
        if step_markers:
            mid = sub[(sub["step"] > 0) & (sub["step"] < sub["step"].max())]
            fig.add_trace(
                go.Scatter(
                    x=mid["x"],
                    y=mid["y"],
                    mode="markers",
                    legendgroup=str(method),
                    showlegend=False,
                    marker={"size": 4, "color": colour, "line": {"width": 0.5, "color": "white"}},
                    hoverinfo="skip",
                    **axes,
                )
            )
        end = _ends(sub)
        fig.add_trace(
            go.Scatter(
                x=end["x"],
                y=end["y"],
                mode="markers",
                legendgroup=str(method),
                showlegend=False,
                marker={
                    "size": 9 if is_one else 8,
                    "color": colour,
                    "symbol": method_symbol(rank),
                    "line": {"width": 1.2, "color": "white"},
                },
                hovertemplate=f"{method} end<br>x=%{{x:.4g}}<br>y=%{{y:.4g}}<extra></extra>",
                **axes,
            )
        )
    start = paths[(paths["method"] == methods[0]) & (paths["step"] == 0)]
    fig.add_trace(
        go.Scatter(
            x=start["x"],
            y=start["y"],
            mode="markers",
            name="start",
            legendrank=999,
            showlegend=legend,
            marker={"size": 7, "color": "white", "line": {"width": 1.5, "color": "#222222"}},
            hovertemplate="start<br>x=%{x:.4g}<br>y=%{y:.4g}<extra></extra>",
            **axes,
        )
    )


def _background(
    fig: go.Figure,
    xs: np.ndarray,
    ys: np.ndarray,
    z: np.ndarray,
    *,
    axes: dict[str, str],
    colorbar: bool,
    base: int,
) -> None:
    lo_, hi_ = float(np.nanmin(z)), float(np.nanmax(z))
    fig.add_trace(
        go.Contour(
            x=xs,
            y=ys,
            z=z,
            colorscale=LEVEL_SET_COLORSCALE,
            zmin=lo_,
            zmax=hi_,
            ncontours=14,
            contours={"coloring": "fill", "showlines": True},
            line={"color": "rgba(80,80,80,0.25)", "width": 0.6},
            showscale=colorbar,
            colorbar={
                "title": {"text": "h", "side": "top"},
                "thickness": 8 if base < 13 else 12,
                "len": 0.6,
                "x": 1.0,
                "xpad": 4,
                "y": 1.0,
                "yanchor": "top",
                "outlinewidth": 0,
                "tickfont": {"size": base - 1},
            },
            name="h",
            hovertemplate="x=%{x:.3g}<br>y=%{y:.3g}<br>h=%{z:.3g}<extra></extra>",
            **axes,
        )
    )
    if lo_ < 0.0 < hi_:
        fig.add_trace(
            go.Contour(
                x=xs,
                y=ys,
                z=z,
                contours={"start": 0.0, "end": 0.0, "size": 1.0, "coloring": "none"},
                line={"color": "black", "width": 2.2},
                showscale=False,
                name="h = 0",
                showlegend=not axes,
                hoverinfo="skip",
                **axes,
            )
        )


def _inset_row(paths: pd.DataFrame) -> int:
    """The row the inset zooms on: the one with the median full-dimensional gap, else the first."""
    ends = _ends(paths)
    ref = paths.attrs.get("reference")
    if "gap_rel" in ends and ref in set(ends["method"]):
        mine = ends[ends["method"] == ref].sort_values("gap_rel")
        return int(mine["row"].iloc[len(mine) // 2])
    return int(sorted(paths["row"].unique())[0])


def _inset_box(paths: pd.DataFrame, row: int) -> tuple[float, float, float, float]:
    ends = _ends(paths[paths["row"] == row])
    x0, x1 = float(ends["x"].min()), float(ends["x"].max())
    y0, y1 = float(ends["y"].min()), float(ends["y"].max())
    scale = float(ends["displacement"].max()) if "displacement" in ends else 1.0
    half = max(max(x1 - x0, y1 - y0) / 2 * 1.5, 0.02 * scale, 1e-9)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return cx - half, cx + half, cy - half, cy + half


#: How much hiding one thing under the inset costs: a data point, a stretch of a path (its line
#: sampled at 16 points per saved step), a path's end marker (what the figure is about).
_HIDE_COST = {"point": 1.0, "path": 5.0, "end": 100.0}


def _path_samples(paths: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Points along every drawn path (its segments, not only its saved states)."""
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for _, path in paths.sort_values("step").groupby(["method", "row"], sort=False):
        x, y = path["x"].to_numpy(float), path["y"].to_numpy(float)
        t = np.linspace(0.0, len(x) - 1.0, 16 * (len(x) - 1) + 1)  # one point for one state
        xs.append(np.interp(t, np.arange(len(x)), x))
        ys.append(np.interp(t, np.arange(len(y)), y))
    return np.concatenate(xs), np.concatenate(ys)


def _free_corner(
    paths: pd.DataFrame,
    points: pd.DataFrame | None,
    extent: tuple[float, float, float, float],
    box: tuple[float, float, float, float],
) -> tuple[str, InsetDomain]:
    """Where an automatic inset goes: the corner and size that hide the least.

    It never covers the zoomed box. Path start and end markers cost most, then the paths'
    lines, then data points (:data:`_HIDE_COST`); the largest size of :data:`_INSET_SCALES`
    that hides no marker is used, else the smallest size's cheapest corner.
    """
    x0, x1, y0, y1 = extent
    path_x, path_y = _path_samples(paths)
    marks = pd.concat([_ends(paths), _starts(paths)])
    parts = [
        (path_x, path_y, _HIDE_COST["path"]),
        (marks["x"].to_numpy(float), marks["y"].to_numpy(float), _HIDE_COST["end"]),
    ]
    if points is not None:
        parts.append(
            (points["x"].to_numpy(float), points["y"].to_numpy(float), _HIDE_COST["point"])
        )
    px = np.concatenate([(x - x0) / (x1 - x0) for x, _, _ in parts])
    py = np.concatenate([(y - y0) / (y1 - y0) for _, y, _ in parts])
    weight = np.concatenate([np.full(len(x), w) for x, _, w in parts])
    bx = ((box[0] + box[1]) / 2 - x0) / (x1 - x0)
    by = ((box[2] + box[3]) / 2 - y0) / (y1 - y0)

    def cost(domain: InsetDomain) -> float:
        (a, b), (c, d) = domain
        inside = (px >= a) & (px <= b) & (py >= c) & (py <= d)
        covers_box = a - 0.05 <= bx <= b + 0.05 and c - 0.05 <= by <= d + 0.05
        return float(weight[inside].sum()) + 1e9 * covers_box

    best: tuple[float, str, InsetDomain] | None = None
    for scale in _INSET_SCALES:
        domains = {c: _corner_domain(c, scale) for c in _INSET_CORNERS}
        best = min(((cost(d), c, d) for c, d in domains.items()), key=lambda option: option[0])
        if best[0] < _HIDE_COST["end"]:
            break
    assert best is not None
    return best[1], best[2]


def plot_level_sets(
    grid: pd.DataFrame,
    points: pd.DataFrame | None = None,
    paths: pd.DataFrame | None = None,
    *,
    title: str | None = None,
    width: int | None = 760,
    height: int | None = None,
    max_points: int = 400,
    subtitle: str | None = None,
    unit: str | None = None,
    step_markers: bool = False,
    max_paths: int | None = None,
    inset: bool | str = False,
    line_width: float | int = 2.0,
) -> go.Figure:
    """Filled contours of ``h`` with the ``h = 0`` boundary in black, data and paths on top.

    Args:
        grid: from :func:`lens_odesteer.analysis.level_sets.barrier_grid`.
        points: from :func:`~lens_odesteer.analysis.level_sets.points_frame` (optional).
        paths: from :func:`lens_odesteer.analysis.trajectories.trajectory_frame` with a view
            (optional). Each method is one colour with a white outline; one-step methods are
            drawn wider and underneath, so an ODE path that follows one stays visible; a white
            circle marks the start, a method-coloured marker the end.
        title: the figure title (default names the method); the slice is always stated below.
        max_points: at most this many data points per label are drawn (evenly spaced).
        subtitle: extra notes under the title (the slice, the unit and, when ODE and one-step
            ends are too close to tell apart here, that fact with the numbers are added).
        unit: the unit of the view's axes, added to the axis titles (default "activation
            units", "act. units" at paper-column width).
        step_markers: also mark every saved step (default: start and end only).
        max_paths: draw at most this many paths per method (the first rows).
        inset: add a zoomed inset around the end points: True (the corner, and the largest of
            three sizes, that hides no path's start or end marker and the fewest points) or one
            of ``"upper left"``, ``"upper right"``, ``"lower left"``, ``"lower right"``.
        line_width: width of the multi-step paths (one-step ones are drawn 1.9x wider).

    The axes have equal scales (``yaxis.scaleanchor = "x"``), so a turn in the picture is a
    turn in activation space, within the plane.
    """
    _require(grid, ["x", "y", "h"], "grid")
    xs, ys, z = _grid_arrays(grid)
    w, h = width or 760, height or 620
    base = font_size(width)
    fig = go.Figure()
    _background(fig, xs, ys, z, axes={}, colorbar=True, base=base)
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
                    name=f"{label}",
                    marker={
                        "size": 4 if base < 13 else 5,
                        "color": _POINT_COLOURS.get(str(label), "#555555"),
                        "opacity": 0.55,
                        "line": {"width": 0},
                    },
                    hoverinfo="skip",
                )
            )
    notes: list[str] = []
    if paths is not None:
        _require(paths, ["method", "row", "step", "x", "y"], "paths")
        if max_paths is not None:
            keep = sorted(paths["row"].unique())[: int(max_paths)]
            paths = paths[paths["row"].isin(keep)].copy()
            paths.attrs.update(dict(paths.attrs))
        _draw_paths(
            fig, paths, step_markers=step_markers, axes={}, legend=True, line_width=line_width
        )
    labels = grid.attrs.get("axis_labels", ("axis 1", "axis 2"))
    method = grid.attrs.get("method", "steerer")
    slice_text = grid.attrs.get("slice", "a 2-D slice of activation space")
    extent = (float(xs[0]), float(xs[-1]), float(ys[0]), float(ys[-1]))
    compact = base < 13
    if unit is None:
        unit = "act. units" if compact else "activation units"
    if compact:
        notes.append(f"A slice: the {slice_text.split(' spanned by')[0]}.")
    else:
        notes.append(
            f"A slice: the {slice_text}; h lives in all dimensions and this plane is one cut."
        )
    if paths is not None and "norm" in paths:
        start_norm = float(paths.loc[paths["step"] == 0, "norm"].mean())
        notes.append(f"Equal scales; mean |a| at the start {start_norm:.3g}.")
    full_title = title or f"Level sets of the {method} barrier h (a slice)"
    colorbar_px = 44 if base < 13 else 56
    aspect = (extent[3] - extent[2]) / (extent[1] - extent[0])

    y_title = f"{labels[1]} ({unit})"
    y_lines = [1]

    def layout(fig_h: int) -> tuple[float, float]:
        finish_layout(
            fig,
            title=full_title,
            subtitle=" ".join([*([subtitle] if subtitle else []), *notes]),
            width=w,
            height=fig_h,
            legend="below",
            left=int((46 if compact else 62) + (y_lines[0] - 1) * 1.25 * base),
        )
        pw_, ph_ = _plot_px(w, fig_h, fig.layout.margin)
        y_lines[0] = len(wrap(y_title, ph_, base))
        return pw_, ph_

    pw, ph = layout(height or 620)
    pw, ph = layout(height or 620)
    if paths is not None:
        px_per_unit = min(
            (pw - colorbar_px) / (extent[1] - extent[0]), ph / (extent[3] - extent[2])
        )
        for sep in _separations(paths):
            px = sep["in_view"] * px_per_unit
            if px < MIN_VISIBLE_PX:
                share = 100 * sep["in_view"] / sep["displacement"]
                text = (
                    f"{sep['ref']} and {sep['other']} ends: {share:.2f}% of the displacement "
                    f"apart here ({px:.1f} px), too close to see"
                )
                if sep["full_rel"] is not None:
                    text += f"; {100 * sep['full_rel']:.2f}% in all dimensions"
                notes.append(text + ".")
    pw, ph = layout(height or 620)
    if height is None:
        # Size the figure so the equal-scale plot fills it (no empty band above the legend).
        needed = (pw - colorbar_px) * aspect
        fig_h = round(min(max(h - ph + needed, 0.55 * w), 1.6 * w))
        pw, ph = layout(fig_h)
    # Explicit domains with equal scales: the plot keeps its aspect and the colour bar sits
    # right beside it.
    if (pw - colorbar_px) * aspect <= ph:
        x_frac = (pw - colorbar_px) / pw
        y_frac = (pw - colorbar_px) * aspect / ph
    else:
        x_frac = ph / aspect / pw
        y_frac = 1.0
    x_dom, y_dom = (0.0, x_frac), (1.0 - y_frac, 1.0)
    fig.update_xaxes(
        title_text="<br>".join(wrap(f"{labels[0]} ({unit})", pw * x_frac, base)),
        range=[extent[0], extent[1]],
        domain=list(x_dom),
        constrain="domain",
        title_standoff=int(0.8 * base),
        automargin=True,
        showgrid=False,
        zeroline=False,
    )
    fig.update_yaxes(
        title_text="<br>".join(wrap(y_title, ph, base)),
        range=[extent[2], extent[3]],
        domain=list(y_dom),
        title_standoff=int(0.8 * base),
        automargin=True,
        scaleanchor="x",
        scaleratio=1,
        constrain="domain",
        showgrid=False,
        zeroline=False,
    )
    fig.update_traces(
        colorbar={"x": x_dom[1] + 6 / pw, "xanchor": "left", "y": y_dom[1], "len": 0.55 * y_frac},
        selector={"type": "contour", "showscale": True},
    )
    if inset and paths is not None:
        row = _inset_row(paths)
        box = _inset_box(paths, row)
        if inset is True:
            _, domain = _free_corner(paths, points, extent, box)
        elif str(inset) in _INSET_CORNERS:
            domain = _corner_domain(str(inset))
        else:
            raise InvalidParameterError(
                f"`inset` must be True, False or one of {list(_INSET_CORNERS)}; got {inset!r}."
            )
        _add_inset(fig, grid, paths[paths["row"] == row], box, domain, x_dom, y_dom, base)
    fig.update_layout(plot_bgcolor="white")
    return fig


def _add_inset(
    fig: go.Figure,
    grid: pd.DataFrame,
    paths: pd.DataFrame,
    box: tuple[float, float, float, float],
    domain: InsetDomain,
    x_dom: tuple[float, float],
    y_dom: tuple[float, float],
    base: int,
) -> None:
    bx0, bx1, by0, by1 = box
    xs, ys, z = _grid_arrays(grid)
    axes = {"xaxis": "x2", "yaxis": "y2"}
    _background(fig, xs, ys, z, axes=axes, colorbar=False, base=base)
    # Paths clipped to the box (plotly clips to the axis range).
    _draw_paths(fig, paths, step_markers=True, axes=axes, legend=False, line_width=2.0)
    (a, b), (c, d) = domain
    xd0, xd1 = x_dom[0] + a * (x_dom[1] - x_dom[0]), x_dom[0] + b * (x_dom[1] - x_dom[0])
    yd0, yd1 = y_dom[0] + c * (y_dom[1] - y_dom[0]), y_dom[0] + d * (y_dom[1] - y_dom[0])
    fig.update_layout(
        xaxis2={
            "domain": [xd0, xd1],
            "anchor": "y2",
            "range": [bx0, bx1],
            "showticklabels": False,
            "ticks": "",
            "showgrid": False,
            "zeroline": False,
            "mirror": True,
            "showline": True,
            "linecolor": "#222222",
        },
        yaxis2={
            "domain": [yd0, yd1],
            "anchor": "x2",
            "range": [by0, by1],
            "scaleanchor": "x2",
            "scaleratio": 1,
            "constrain": "domain",
            "showticklabels": False,
            "ticks": "",
            "showgrid": False,
            "zeroline": False,
            "mirror": True,
            "showline": True,
            "linecolor": "#222222",
        },
    )
    fig.add_shape(
        type="rect",
        x0=bx0,
        x1=bx1,
        y0=by0,
        y1=by1,
        xref="x",
        yref="y",
        line={"color": "#222222", "width": 1},
        fillcolor="rgba(0,0,0,0)",
    )
    fig.add_annotation(
        text=f"zoom: {bx1 - bx0:.3g} wide",
        xref="x2 domain",
        yref="y2 domain",
        x=0.02,
        y=0.98,
        xanchor="left",
        yanchor="top",
        showarrow=False,
        font={"size": base - 2, "color": "#222222"},
        bgcolor="rgba(255,255,255,0.7)",
    )


__getattr__ = module_getattr(__name__)
