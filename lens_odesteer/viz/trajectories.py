"""Trajectory profiles: ``h``, ``σ(h)`` and ``|a|`` against time (or their differences from a
one-step method), and 3-D paths.

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

from collections.abc import Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lens_odesteer.analysis.differences import difference_frame
from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.viz._renamed import module_getattr
from lens_odesteer.viz.level_sets import _require
from lens_odesteer.viz.theme import (
    NEGATIVE_COLOUR,
    POSITIVE_COLOUR,
    finish_layout,
    font_size,
    method_colour,
)

_PANEL_TITLES = {
    "h": "barrier h",
    "p_positive": "σ(h): the barrier's sigmoid (not calibrated)",
    "norm": "|a|",
    "displacement": "|a(t) - a(0)|",
    "path_length": "distance travelled",
    "gap_rel": "distance from {base}'s path / displacement",
}
_SHORT = {
    "h": "h",
    "p_positive": "σ(h)",
    "norm": "|a|",
    "displacement": "displacement",
    "path_length": "distance travelled",
    "gap_rel": "distance / displacement",
}
_PANELS = ("h", "p_positive", "norm")
_X_TITLES = {
    "fraction": "t / T (share of each method's strength)",
    "t": "t (each method's own time)",
    "displacement": "distance from the start |a(t) - a(0)|",
    "path_length": "distance travelled",
}
#: Camera of the 3-D view at screen size (paper-column figures zoom out to keep the axis titles).
_EYE = {"x": 1.6, "y": -1.6, "z": 0.9}
#: A difference smaller than this share of a panel's range is too small to see in it.
MIN_VISIBLE_SHARE = 0.01


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _hidden_differences(
    frame: pd.DataFrame, panels: Sequence[str], x: str, one_step: dict[str, bool]
) -> list[str]:
    """Panels where the reference's mean line and a one-step method's are too close to see."""
    ref = frame.attrs.get("reference")
    methods = list(dict.fromkeys(frame["method"]))
    if ref not in methods:
        return []
    notes = []
    for column in panels:
        if column == "gap_rel":
            continue
        means = frame.groupby(["method", "step"])[column].mean()
        span = float(frame[column].max() - frame[column].min()) or 1.0
        for other in methods:
            if other == ref or not one_step.get(other, False):
                continue
            a, b = means.loc[ref], means.loc[other]
            common = a.index.intersection(b.index)
            if len(common) == 0:
                continue
            diff = float((a.loc[common] - b.loc[common]).abs().max())
            if diff < MIN_VISIBLE_SHARE * span:
                notes.append(
                    f"{_SHORT.get(column, column)}: {ref} and {other} differ by at most "
                    f"{diff:.3g} ({100 * diff / span:.2f}% of the panel)"
                )
    return notes


def plot_trajectory_profile(
    paths: pd.DataFrame,
    *,
    x: str = "fraction",
    title: str | None = None,
    width: int | None = 760,
    height: int | None = None,
    difference_from: str | None = None,
    panels: Sequence[str] | None = None,
    subtitle: str | None = None,
) -> go.Figure:
    """Stacked panels of ``h``, ``σ(h)`` and ``|a|`` against ``x`` for each method.

    Thin lines are single activations, the thick line their mean. ``x`` is ``"fraction"``
    (t/T, default: methods with different strength units line up), ``"t"``,
    ``"displacement"`` or ``"path_length"``. ``h`` is the reference barrier of the frame
    (``paths.attrs["reference"]``), the same for every method; ``σ(h)`` is its sigmoid, which is
    a probability only if the barrier is calibrated (a regularised kernel barrier is not: a
    value near 0.5 can still separate the classes perfectly).

    Args:
        difference_from: a method label; every panel then shows each method minus that method
            at the same row and share of the strength
            (:func:`lens_odesteer.analysis.differences.difference_frame`), so the baseline is a
            line at zero and the others' differences fill the panel. With a frame built with
            ``trajectory_frame(..., gap_to=difference_from)`` a last panel shows the
            full-dimensional distance from the baseline's path over the displacement.
        panels: columns to draw (default ``h``, ``p_positive``, ``norm``; plus ``gap_rel``
            when the frame has it and ``difference_from`` matches its ``gap_to``).
        subtitle: notes under the title; when two methods' mean lines are closer than a panel
            can show, the subtitle says so with the number.
    """
    _require(paths, ["method", "row", "step", "h", "p_positive", "norm"], "paths")
    if x not in _X_TITLES:
        raise InvalidParameterError(f"`x` must be one of {list(_X_TITLES)}; got {x!r}.")
    _require(paths, [x], "paths")
    one_step = (
        {
            str(k): bool(v)
            for k, v in paths.groupby("method", sort=False)["one_step"].first().items()
        }
        if "one_step" in paths
        else {}
    )
    has_gap = "gap_rel" in paths and paths.attrs.get("gap_to") is not None
    if difference_from is not None:
        frame = difference_frame(paths, difference_from)
        if x not in frame:
            frame[x] = (
                paths.set_index(["method", "row", "step"])[x]
                .reindex(pd.MultiIndex.from_frame(frame[["method", "row", "step"]]))
                .to_numpy()
            )
        frame.attrs["reference"] = paths.attrs.get("reference")
    else:
        frame = paths
    chosen = list(panels) if panels is not None else list(_PANELS)
    if (
        panels is None
        and has_gap
        and (difference_from is None or paths.attrs.get("gap_to") == difference_from)
    ):
        chosen.append("gap_rel")
    _require(frame, chosen, "paths")
    base_label = difference_from or str(paths.attrs.get("gap_to"))
    titles = []
    for column in chosen:
        text = _PANEL_TITLES.get(column, column).format(base=base_label)
        if difference_from is not None and column != "gap_rel":
            text = f"Δ {_SHORT.get(column, column)} (minus {difference_from})"
        titles.append(text)
    n = len(chosen)
    w = width or 760
    base = font_size(width)
    fig = make_subplots(
        rows=n,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=min(0.1, (2.6 * base + 6) / ((height or 190 * n + 150) - 120)),
        subplot_titles=titles,
    )
    # Reverse order: the first method (usually the ODE) is drawn last, on top.
    for rank, (method, sub) in list(enumerate(frame.groupby("method", sort=False)))[::-1]:
        colour = method_colour(str(method))
        is_base = difference_from is not None and method == difference_from
        for panel, column in enumerate(chosen, start=1):
            if not is_base:
                xs: list[float | None] = []
                ys: list[float | None] = []
                for _, row_frame in sub.groupby("row"):
                    row_frame = row_frame.sort_values("step")
                    xs += [*row_frame[x].tolist(), None]
                    ys += [*row_frame[column].tolist(), None]
                fig.add_trace(
                    go.Scatter(
                        x=xs,
                        y=ys,
                        mode="lines",
                        line={"color": _rgba(colour, 0.22), "width": 1},
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
                    mode="lines",
                    name=str(method) + (" (baseline)" if is_base else ""),
                    legendgroup=str(method),
                    showlegend=panel == 1,
                    legendrank=1000 + rank,
                    line={
                        "color": colour,
                        "width": 1.5 if is_base else 2.5,
                        "dash": "dot" if is_base else "solid",
                    },
                    hovertemplate=f"{method}<br>%{{x:.3g}}<br>%{{y:.4g}}<extra></extra>",
                ),
                row=panel,
                col=1,
            )
    if difference_from is None:
        if "h" in chosen:
            fig.add_hline(
                y=0.0,
                line={"color": "black", "width": 1, "dash": "dot"},
                row=chosen.index("h") + 1,
                col=1,
            )
        if "p_positive" in chosen:
            fig.add_hline(
                y=0.5,
                line={"color": "black", "width": 1, "dash": "dot"},
                row=chosen.index("p_positive") + 1,
                col=1,
            )
    if "gap_rel" in chosen:
        fig.update_yaxes(tickformat=".0%", row=chosen.index("gap_rel") + 1, col=1)
    ref = paths.attrs.get("reference", "the reference steerer")
    notes = [subtitle] if subtitle else []
    if difference_from is None:
        hidden = _hidden_differences(frame, chosen, x, one_step)
        if hidden:
            notes.append(
                "Too close to see here: " + "; ".join(hidden) + ". Use difference_from to see "
                "the difference."
            )
        default_title = f"Along the paths, judged by {ref}'s barrier"
    else:
        largest = {
            c: float(frame.loc[frame["method"] != difference_from, c].abs().max()) for c in chosen
        }
        notes.append(
            "Largest |difference|: "
            + ", ".join(f"{_SHORT.get(c, c)} {v:.3g}" for c, v in largest.items())
            + "."
        )
        default_title = f"Difference from {difference_from} along the paths ({ref}'s barrier)"
    fig.update_xaxes(title_text=_X_TITLES[x], row=n, col=1)
    fig_h = height or int(150 + (135 if base < 13 else 170) * n)
    finish_layout(
        fig,
        title=title or default_title,
        subtitle=" ".join(notes) or None,
        width=w,
        height=fig_h,
        legend="below",
        subplot_titles=True,
    )
    return fig


def plot_trajectories_3d(
    points: pd.DataFrame | None,
    paths: pd.DataFrame,
    *,
    title: str | None = None,
    width: int | None = 760,
    height: int | None = None,
    equal_scale: bool = True,
) -> go.Figure:
    """Data and paths in a 3-D view (frames built with a 3-axis projection).

    ``equal_scale`` (default) keeps the three axes at one scale (``scene.aspectmode="data"``), so
    angles are not distorted; False stretches each axis to a cube.
    """
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
                    name=str(label),
                    marker={"size": 2, "color": colours.get(str(label), "#555555"), "opacity": 0.5},
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
                    mode="lines",
                    name=str(method),
                    legendgroup=str(method),
                    showlegend=i == 0,
                    line={"color": colour, "width": 5},
                )
            )
    labels = paths.attrs.get("axis_labels", ("axis 1", "axis 2", "axis 3"))
    w = width or 760
    base = font_size(w)

    def axis(label: str) -> dict[str, Any]:
        return {
            "nticks": 4,
            "tickfont": {"size": base - 2},
            "title": {"font": {"size": base - 1}, "text": label},
            "backgroundcolor": "white",
            "gridcolor": "#E5E5E5",
        }

    fig.update_layout(
        scene={
            "xaxis": axis(labels[0]),
            "yaxis": axis(labels[1]),
            "zaxis": axis(labels[2]),
            "aspectmode": "data" if equal_scale else "cube",
            "camera": {"eye": {"x": 2.0, "y": -2.0, "z": 1.1} if base < 13 else _EYE},
            "domain": {"x": [0.0, 1.0], "y": [0.0, 1.0]},
        },
        legend={"itemsizing": "constant"},
    )
    finish_layout(
        fig,
        title=title or "Steering paths in a 3-D view",
        subtitle="Equal scales on the three axes." if equal_scale else None,
        width=w,
        height=height or (400 if base < 13 else 640),
        legend="below",
        x_title=False,
        left=4,
        right=4,
    )
    fig.update_layout(legend={"itemsizing": "constant"})
    return fig


__getattr__ = module_getattr(__name__)
