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
