"""A publication theme for figures: readable fonts, white background, colour-blind-safe colours.

The palette is Okabe & Ito's eight colours, which stay distinguishable under the common forms of
colour-vision deficiency. Methods keep one colour across all figures (:func:`method_colour`).

Example:
    >>> import plotly.graph_objects as go
    >>> from lens_odesteer.viz.theme import apply_theme, method_colour
    >>> fig = apply_theme(go.Figure(go.Scatter(x=[0, 1], y=[0, 1])), width=400, height=300)
    >>> fig.layout.width, fig.layout.font.size
    (400, 13)
    >>> method_colour("ODESteer")
    '#D55E00'
"""

from __future__ import annotations

import plotly.graph_objects as go

#: Okabe-Ito colours (black first is left out: it is kept for annotations and boundaries).
PALETTE: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
)

#: Fixed colours of the methods, so a method looks the same in every figure of a paper.
METHOD_COLOURS: dict[str, str] = {
    "none": "#7F7F7F",
    "unsteered": "#7F7F7F",
    "ODESteer": "#D55E00",
    "StepODESteer": "#E69F00",
    "RFFODESteer": "#CC79A7",
    "RFFStepODESteer": "#F0E442",
    "ValueSteer": "#000000",
    "CAA": "#0072B2",
    "ITI": "#56B4E9",
    "RepE": "#009E73",
    "LinAcT": "#882255",
    "MiMiC": "#44AA99",
    "MeanCentring": "#999933",
    "HPR": "#117733",
    "AngularSteering": "#332288",
    "SphericalSteering": "#88CCEE",
    "TruthFlow": "#AA4499",
}

#: Colours of the two classes of a contrast set.
POSITIVE_COLOUR = "#009E73"
NEGATIVE_COLOUR = "#CC79A7"

#: A diverging, colour-blind-safe scale for barrier values (negative -> 0 -> positive).
BARRIER_COLORSCALE: list[list[float | str]] = [
    [0.0, "#B2182B"],
    [0.25, "#EF8A62"],
    [0.5, "#F7F7F7"],
    [0.75, "#67A9CF"],
    [1.0, "#2166AC"],
]

#: A muted sequential scale for the level-set background (low h light, high h a pale slate), so
#: the method colours drawn over it keep their contrast; the h = 0 contour is drawn in black.
LEVEL_SET_COLORSCALE: list[list[float | str]] = [
    [0.0, "#FBFBFB"],
    [0.5, "#E3E7EB"],
    [1.0, "#AEBBC7"],
]

#: Marker symbols of the end points, one per method in order (distinct in greyscale too).
SYMBOLS: tuple[str, ...] = ("circle", "diamond", "square", "triangle-up", "x", "star", "cross")


def method_symbol(index: int) -> str:
    """The end-point marker of the ``index``-th method of a figure."""
    return SYMBOLS[index % len(SYMBOLS)]


FONT_FAMILY = "Arial, Helvetica, 'DejaVu Sans', sans-serif"
FONT_SIZE = 13


def method_colour(name: str) -> str:
    """Return the fixed colour of a method (by class name or label); others get a stable one.

    A label such as ``"ODESteer (margin)"`` takes the colour of its first word's method.
    """
    if name in METHOD_COLOURS:
        return METHOD_COLOURS[name]
    head = name.split(" ")[0].split("(")[0]
    if head in METHOD_COLOURS:
        return METHOD_COLOURS[head]
    index = sum(ord(ch) for ch in name) % len(PALETTE)
    return PALETTE[index]


def apply_theme(
    fig: go.Figure, *, width: int | None = None, height: int | None = None
) -> go.Figure:
    """Apply the publication theme to ``fig`` in place and return it.

    White background, light grid, axis lines, readable sans-serif fonts, a colour-blind-safe
    colourway and compact margins; ``width``/``height`` (pixels) fix the size when given.
    """
    fig.update_layout(
        template="simple_white",
        font={"family": FONT_FAMILY, "size": FONT_SIZE, "color": "#222222"},
        title={"font": {"size": FONT_SIZE + 3}, "x": 0.0, "xref": "paper", "xanchor": "left"},
        colorway=list(PALETTE),
        margin={"l": 70, "r": 30, "t": 70, "b": 60},
        legend={"bgcolor": "rgba(255,255,255,0.8)", "borderwidth": 0},
        hoverlabel={"font": {"family": FONT_FAMILY}},
    )
    fig.update_xaxes(showgrid=True, gridcolor="#E5E5E5", zeroline=False, ticks="outside")
    fig.update_yaxes(showgrid=True, gridcolor="#E5E5E5", zeroline=False, ticks="outside")
    if width is not None:
        fig.update_layout(width=width)
    if height is not None:
        fig.update_layout(height=height)
    return fig


#: Width in CSS pixels of a single-column figure in a two-column paper (about 3.3 inches at
#: 100 pixels per inch); export with ``scale=3`` for 300 dpi.
PAPER_WIDTH = 330
#: Below this width a figure uses the compact font sizes.
_NARROW = 480


def font_size(width: int | None) -> int:
    """Base font size for a figure ``width`` pixels wide (smaller for paper columns)."""
    return 10 if width is not None and width <= _NARROW else FONT_SIZE


def wrap(text: str, width_px: float | int, font_px: float | int) -> list[str]:
    """Break ``text`` into lines that fit ``width_px`` at ``font_px`` (a sans-serif estimate).

    Existing ``<br>`` breaks are kept. Plotly does not wrap titles or annotations itself.
    """
    per_line = max(12, int(width_px / (0.56 * font_px)))
    lines: list[str] = []
    for para in text.split("<br>"):
        current = ""
        for word in para.split(" "):
            trial = f"{current} {word}" if current else word
            if len(_visible(trial)) > per_line and current:
                lines.append(current)
                current = word
            else:
                current = trial
        lines.append(current)
    return lines


def _visible(text: str) -> str:
    out, depth = [], 0
    for ch in text:
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def legend_rows(
    names: list[str], width_px: float | int, font_px: float | int, groups: list[str] | None = None
) -> int:
    """How many rows a horizontal legend of ``names`` takes in ``width_px`` (an estimate).

    With ``groups`` (each name's legend group), plotly stacks a group's items in a column and
    lays the columns out in rows; the estimate does the same.
    """
    blocks: dict[str, list[str]] = {}
    for k, name in enumerate(names):
        key = groups[k] if groups is not None and groups[k] else f"__{k}"
        blocks.setdefault(key, []).append(name)
    rows, used, row_height = 0, 0.0, 0
    for items in blocks.values():
        item = max(60 + 0.6 * font_px * len(_visible(n)) for n in items)
        if used and used + item > width_px:
            rows, used, row_height = rows + row_height, 0.0, 0
        used += item
        row_height = max(row_height, len(items))
    return rows + row_height


def finish_layout(
    fig: go.Figure,
    *,
    title: str,
    subtitle: str | None = None,
    width: int | None,
    height: int | None,
    legend: str = "below",
    subplot_titles: bool | int = False,
    x_title: bool = True,
    right: int | None = None,
    extra_top: float | int = 0.0,
    left: int | None = None,
    extra_bottom: float | int = 0.0,
) -> go.Figure:
    """Theme ``fig`` and lay out its title, subtitle and legend so that nothing overlaps.

    The title and a grey subtitle (the notes a reader needs: the slice, a number too small to
    see) are wrapped to the figure width and written as annotations in the top margin, which is
    sized to hold them above any subplot titles (``subplot_titles=True``, or the number of lines
    of the longest). ``legend="below"``
    puts a horizontal legend under the x-axis title with the bottom margin sized for its rows;
    ``"right"`` keeps it beside the plot; ``"none"`` hides it. Fonts shrink for figures of
    paper-column width (:data:`PAPER_WIDTH`). ``extra_top`` / ``extra_bottom`` reserve more
    pixels (e.g. for colour bars under the plot); calling it again replaces the title.
    """
    w, h = width or 700, height or 500
    base = font_size(width)
    apply_theme(fig, width=width, height=height)
    fig.update_annotations(font_size=base)  # subplot titles and notes
    title_px, sub_px = base + 3, base - 1
    if left is None:
        left = 62 if base >= FONT_SIZE else 46
    r = right if right is not None else (20 if legend != "right" else 150)
    usable = w - 16
    title_lines = wrap(title, usable, title_px) if title else []
    sub_lines = wrap(subtitle, usable, sub_px) if subtitle else []
    title_h = 1.3 * title_px * len(title_lines)
    sub_h = 1.35 * sub_px * len(sub_lines)
    lines = int(subplot_titles)  # True is one line
    top = 10 + title_h + sub_h + extra_top + ((1.9 + 1.25 * (lines - 1)) * base if lines else 10)
    entries = [
        (str(t.name), str(t.legendgroup or ""))
        for t in fig.data
        if t.name
        and (t.showlegend is True or (t.showlegend is None and getattr(t, "type", "") != "contour"))
    ]
    entries = list(dict.fromkeys(entries))
    names = [n for n, _ in entries]
    bottom = (3.3 * base if x_title else 1.6 * base) + 8 + extra_bottom
    if legend == "below" and names:
        rows = legend_rows(names, usable, base, [g for _, g in entries])
        bottom += rows * 2.0 * base + 10
        fig.update_layout(
            legend={
                "orientation": "h",
                "x": 0.0,
                "xref": "container",
                "xanchor": "left",
                "y": 0.0,
                "yref": "container",
                "yanchor": "bottom",
                "font": {"size": base},
                "bgcolor": "rgba(255,255,255,0)",
                "tracegroupgap": 2,
            }
        )
    elif legend == "right" and names:
        fig.update_layout(
            legend={
                "orientation": "v",
                "x": 1.02,
                "xanchor": "left",
                "y": 1.0,
                "yanchor": "top",
                "font": {"size": base},
            }
        )
    else:
        fig.update_layout(showlegend=False)
    fig.update_layout(
        font={"size": base},
        title={"text": ""},
        margin={"t": int(top), "b": int(bottom), "l": left, "r": r, "autoexpand": False},
    )
    # Title and subtitle as annotations placed in pixels from the top: plotly's own title does
    # not wrap and misplaces multi-line text.
    kept = [a for a in fig.layout.annotations if a.name not in ("figure-title", "figure-subtitle")]
    fig.layout.annotations = kept
    plot_h = max(h - int(top) - int(bottom), 10)
    plot_w = max(w - left - r, 10)
    x_left = -(left - 8) / plot_w
    if title_lines:
        fig.add_annotation(
            name="figure-title",
            text="<br>".join(title_lines),
            xref="paper",
            yref="paper",
            x=x_left,
            y=1 + (int(top) - 8) / plot_h,
            xanchor="left",
            yanchor="top",
            align="left",
            showarrow=False,
            font={"size": title_px, "color": "#111111"},
        )
    if sub_lines:
        fig.add_annotation(
            name="figure-subtitle",
            text="<br>".join(sub_lines),
            xref="paper",
            yref="paper",
            x=x_left,
            y=1 + (int(top) - 10 - title_h) / plot_h,
            xanchor="left",
            yanchor="top",
            align="left",
            showarrow=False,
            font={"size": sub_px, "color": "#555555"},
        )
    return fig
