"""The barrier ``h`` on a grid in a 2-D view, lifted back into activation space.

``h`` lives in ``d_model`` dimensions; a level-set picture is a *slice*: the plane through one
point (the data mean, or a chosen activation) spanned by the view's two axes. Every frame says
which slice it is in ``frame.attrs["slice"]``, and the figures print it.

Example:
    >>> import torch, lens_odesteer as lo
    >>> from lens_odesteer.analysis.projection import fit_projection
    >>> from lens_odesteer.analysis.level_sets import barrier_grid, points_frame
    >>> g = torch.Generator().manual_seed(0)
    >>> pos, neg = torch.randn(40, 6, generator=g) + 1, torch.randn(40, 6, generator=g) - 1
    >>> ode = lo.ODESteer(lo.sketch_barrier(n_components=256)).fit(pos, neg)
    >>> view = fit_projection(pos, neg)
    >>> grid = barrier_grid(ode, view, points=torch.cat([pos, neg]), resolution=5)
    >>> grid.shape, list(grid.columns)
    ((25, 4), ['x', 'y', 'h', 'p_positive'])
    >>> grid.attrs["slice"]
    'plane through the data mean spanned by mean difference and residual PC1'
    >>> sorted(points_frame(view, pos, neg, steerer=ode)["label"].unique())
    ['negative', 'positive']
"""

from __future__ import annotations

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from lens_odesteer._validation import as_float_acts, check_finite_float, check_positive_int
from lens_odesteer.analysis.projection import Projection
from lens_odesteer.errors import InvalidParameterError, ShapeMismatchError
from lens_odesteer.steerers.base import AbstractSteerer

#: Largest number of grid points evaluated in one call of the barrier.
_CHUNK = 4096


def _extent(
    view: Projection,
    points: Tensor | None,
    extent: tuple[float, float, float, float] | None,
    pad: float,
) -> tuple[float, float, float, float]:
    if extent is not None:
        if len(extent) != 4:
            raise InvalidParameterError(
                f"`extent` must be (x_min, x_max, y_min, y_max); got {extent!r}."
            )
        x0, x1, y0, y1 = (check_finite_float(v, "extent") for v in extent)
        if not (x0 < x1 and y0 < y1):
            raise InvalidParameterError(
                f"`extent` must have x_min < x_max and y_min < y_max; got {extent!r}."
            )
        return x0, x1, y0, y1
    if points is None:
        raise InvalidParameterError(
            "Give `points=` (activations whose view bounds the grid, e.g. the fitted data and "
            "the trajectories) or an explicit `extent=(x_min, x_max, y_min, y_max)`."
        )
    flat = as_float_acts(points, "points", min_rows=1).reshape(-1, view.d_model)
    coords = view.transform(flat)[:, :2]
    lo_, hi_ = coords.min(0).values, coords.max(0).values
    span = (hi_ - lo_).clamp_min(1e-6)
    lo_, hi_ = lo_ - pad * span, hi_ + pad * span
    return float(lo_[0]), float(hi_[0]), float(lo_[1]), float(hi_[1])


def _slice_label(view: Projection, origin: Tensor | None, origin_label: str | None) -> str:
    where = view.centre_label if origin is None else (origin_label or "a chosen activation")
    return f"plane through {where} spanned by {view.axis_labels[0]} and {view.axis_labels[1]}"


def barrier_grid(
    steerer: AbstractSteerer,
    view: Projection,
    *,
    points: Float[Tensor, "*batch d_model"] | None = None,
    extent: tuple[float, float, float, float] | None = None,
    origin: Float[Tensor, " d_model"] | None = None,
    origin_label: str | None = None,
    resolution: int = 80,
    pad: float = 0.1,
    aspect: float | None = None,
) -> pd.DataFrame:
    """Evaluate the steerer's barrier ``h`` on a ``resolution x resolution`` grid of the view.

    Each grid point ``(x, y)`` is lifted to the activation ``view.lift([x, y], origin)`` (on the
    plane through ``origin``, or the data mean) and ``h`` is evaluated there.

    Args:
        steerer: a fitted steerer with a barrier (every method here has one).
        view: a 2-D (or 3-D: the first two axes are used) :class:`Projection`.
        points: activations whose projections bound the grid (padded by ``pad`` of the span).
        extent: ``(x_min, x_max, y_min, y_max)`` instead of ``points``.
        origin: the activation the slice passes through (default: the data mean).
        origin_label: how the figures name that activation (e.g. ``"held-out negative #3"``).
        resolution: grid points per axis.
        pad: the share of the points' span added on every side.
        aspect: widen the shorter side (around its centre) so that ``y span / x span`` is this
            ratio; an equal-scale figure of the grid then has that shape (e.g. ``0.8``).

    Returns:
        A long frame with columns ``x``, ``y``, ``h`` and ``p_positive = sigmoid(h)`` (the
        classifier probability for log-density-ratio barriers), row-major in ``y`` then ``x``.
        ``attrs`` holds ``slice``, ``axis_labels``, ``method`` and ``extent``.
    """
    steerer._check_is_fitted()
    if view.n_components < 2:
        raise ShapeMismatchError("A level-set grid needs a view with at least 2 axes.")
    if view.d_model != steerer.d_model_:
        raise ShapeMismatchError(
            f"The view has d_model={view.d_model} but the steerer was fitted on "
            f"d_model={steerer.d_model_}; fit both on activations of the same hook."
        )
    n = check_positive_int(resolution, "resolution", minimum=2)
    x0, x1, y0, y1 = _extent(view, points, extent, pad)
    if aspect is not None:
        ratio = check_finite_float(aspect, "aspect", minimum=0.0, strict=True)
        if (y1 - y0) < ratio * (x1 - x0):
            grow = (ratio * (x1 - x0) - (y1 - y0)) / 2
            y0, y1 = y0 - grow, y1 + grow
        else:
            grow = ((y1 - y0) / ratio - (x1 - x0)) / 2
            x0, x1 = x0 - grow, x1 + grow
    xs = torch.linspace(x0, x1, n, dtype=view.basis.dtype)
    ys = torch.linspace(y0, y1, n, dtype=view.basis.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    coords = torch.zeros(n * n, view.n_components, dtype=view.basis.dtype)
    coords[:, 0], coords[:, 1] = gx.reshape(-1), gy.reshape(-1)
    if origin is not None and view.n_components > 2:
        # Keep the third coordinate of the origin, so the slice really passes through it.
        coords[:, 2:] = view.transform(torch.as_tensor(origin))[2:]
    lifted = view.lift(coords, origin)
    with torch.inference_mode():
        h = torch.cat([steerer.barrier_value(chunk) for chunk in lifted.split(_CHUNK)]).double()
    frame = pd.DataFrame(
        {
            "x": gx.reshape(-1).double().numpy(),
            "y": gy.reshape(-1).double().numpy(),
            "h": h.cpu().numpy(),
            "p_positive": torch.sigmoid(h).cpu().numpy(),
        }
    )
    frame.attrs.update(
        slice=_slice_label(view, None if origin is None else torch.as_tensor(origin), origin_label),
        axis_labels=view.axis_labels[:2],
        method=steerer.name,
        extent=(x0, x1, y0, y1),
    )
    return frame


def points_frame(
    view: Projection,
    pos_acts: Float[Tensor, "n_pos d_model"],
    neg_acts: Float[Tensor, "n_neg d_model"],
    *,
    steerer: AbstractSteerer | None = None,
    labels: tuple[str, str] = ("positive", "negative"),
) -> pd.DataFrame:
    """Project labelled activations into the view (one row each), with ``h`` when given a steerer.

    Columns: ``label``, ``index`` (row in its set), ``x``, ``y`` (``z`` for 3-D views),
    ``off_plane`` (distance from the view's plane: what the picture hides) and ``h``.
    """
    frames = []
    for label, acts in zip(labels, (pos_acts, neg_acts), strict=True):
        a = as_float_acts(acts, f"{label} activations", min_rows=1)
        if a.dim() != 2:
            raise ShapeMismatchError(
                f"`{label}` activations must be [n, d_model]; got {tuple(a.shape)}."
            )
        c = view.transform(a).double()
        cols: dict[str, object] = {"label": label, "index": range(a.shape[0])}
        for i, axis in enumerate("xyz"[: view.n_components]):
            cols[axis] = c[:, i].numpy()
        cols["off_plane"] = view.residual_norm(a).double().numpy()
        if steerer is not None:
            with torch.inference_mode():
                cols["h"] = steerer.barrier_value(a).double().cpu().numpy()
        frames.append(pd.DataFrame(cols))
    out = pd.concat(frames, ignore_index=True)
    out.attrs.update(axis_labels=view.axis_labels)
    return out
