"""ODE steering minus one-step steering, seen directly: a view, path differences, logit differences.

At the paper's default barrier ODESteer ends within a few per cent of one step of its own field,
so side-by-side figures show two identical pictures. The functions here isolate the difference:

* :func:`fit_difference_view` builds a 2-D view whose axes are the one-step direction and the
  direction from the one-step end to the ODE end, so the separation is drawn at its true size
  (an equal-scale figure of this view shows the gap as the angle it really is);
* :func:`difference_frame` subtracts one method's path values (``h``, ``p_positive``, ``norm``,
  ...) from every method's at the same share of the strength;
* :func:`~lens_odesteer.analysis.model_runs.differences.step_logit_differences` (with the
  analysis that runs the model) subtracts one method's per-step next-token log-probabilities
  from another's.

Every function returns a tidy frame (or a :class:`~lens_odesteer.analysis.projection.Projection`)
and never plots; :mod:`lens_odesteer.viz` draws them.

Example:
    >>> import torch, lens_odesteer as lo
    >>> from lens_odesteer.analysis.differences import difference_frame, fit_difference_view
    >>> from lens_odesteer.analysis.trajectories import trajectory_frame
    >>> g = torch.Generator().manual_seed(0)
    >>> pos, neg = torch.randn(40, 6, generator=g) + 1, torch.randn(40, 6, generator=g) - 1
    >>> methods = {"ODESteer": lo.ODESteer(lo.sketch_barrier(n_components=256)).fit(pos, neg),
    ...            "CAA": lo.CAA().fit(pos, neg)}
    >>> view = fit_difference_view(methods, neg[:4], T={"ODESteer": 2.0, "CAA": 1.0})
    >>> view.axis_labels, view.compared
    (('one-step direction', 'ODE end - one-step end'), ('ODESteer', 'CAA'))
    >>> paths = trajectory_frame(methods, neg[:4], T={"ODESteer": 2.0, "CAA": 1.0}, view=view)
    >>> diff = difference_frame(paths, "CAA")
    >>> float(diff.loc[diff.method == "CAA", "h"].abs().max())
    0.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from lens_odesteer._validation import as_float_acts
from lens_odesteer.analysis.projection import Projection
from lens_odesteer.analysis.trajectories import (
    Strengths,
    _check_methods,
    is_one_step,
    method_paths,
    reference_label,
    strengths,
)
from lens_odesteer.errors import InvalidParameterError, ShapeMismatchError
from lens_odesteer.steerers.base import AbstractSteerer

#: Path columns :func:`difference_frame` subtracts (when the frame has them).
PATH_COLUMNS = ("h", "p_positive", "norm", "displacement", "path_length")
#: Below this share of the displacement the ODE and one-step ends count as the same point.
_SAME_END = 1e-9


def one_step_label(methods: Mapping[str, AbstractSteerer], ode: str) -> str:
    """The one-step method to compare ``ode`` with: the first one-step label, else the next one.

    A one-step method that shares the ODE's barrier (StepODESteer) is preferred when present.
    """
    candidates = [m for m, s in methods.items() if m != ode and is_one_step(s)]
    if not candidates:
        others = [m for m in methods if m != ode]
        if not others:
            raise InvalidParameterError(
                "A difference needs two methods; `methods` holds only "
                f"{list(methods)}. Add a one-step baseline (e.g. CAA or StepODESteer)."
            )
        return others[0]
    ode_type = type(methods[ode])
    same = [m for m in candidates if isinstance(methods[m], ode_type)]
    return (same or candidates)[0]


def fit_difference_view(
    methods: Mapping[str, AbstractSteerer],
    acts: Float[Tensor, "batch d_model"],
    *,
    strength: Strengths = None,
    T: Strengths = None,
    ode: str | None = None,
    one_step: str | None = None,
) -> Projection:
    """A 2-D view spanned by the one-step direction and ``ODE end - one-step end``.

    Both methods are run from ``acts`` at the given strength. The first axis is the mean
    one-step displacement (normalised), the second the mean of ``ODE end - one-step end``,
    orthogonalised against the first. The centre is the mean start point, so paths start near
    the origin and a level-set slice through the centre passes among the start points.

    Averaging over rows keeps the part of the difference the rows share; the per-row remainder
    is off the plane. :func:`difference_in_view` says how much of the full-dimensional gap the
    view shows.

    Args:
        methods: label -> fitted steerer.
        acts: ``[batch, d_model]`` start activations (the paths you will draw).
        strength, T: as for :func:`~lens_odesteer.analysis.trajectories.trajectory_frame`.
        ode: the multi-step label (default: the first multi-step method).
        one_step: the one-step label (default: :func:`one_step_label`).

    Returns:
        A :class:`Projection` with ``method="difference"`` and ``compared = (ode, one_step)``;
        when the two methods end at the same
        points the second axis is the start points' top principal component instead, and its
        label says so.
    """
    checked = _check_methods(methods)
    a = as_float_acts(acts, "acts", min_rows=1)
    if a.dim() != 2:
        raise ShapeMismatchError(f"`acts` must be [batch, d_model]; got {tuple(a.shape)}.")
    ode_label = reference_label(checked, ode)
    step_label = one_step if one_step is not None else one_step_label(checked, ode_label)
    if step_label not in checked or step_label == ode_label:
        raise InvalidParameterError(
            f"`one_step` must be another method label among {list(checked)}; got {step_label!r}."
        )
    pair = {ode_label: checked[ode_label], step_label: checked[step_label]}
    Ts = strengths(checked, strength, T)
    paths = method_paths(pair, a, T={k: Ts[k] for k in pair})
    start = a.detach().to(torch.float64).cpu()
    ode_end = paths[ode_label].ys[-1].detach().to(torch.float64).cpu()
    step_end = paths[step_label].ys[-1].detach().to(torch.float64).cpu()
    step_dir = (step_end - start).mean(0)
    if float(step_dir.norm()) == 0.0:
        raise InvalidParameterError(
            f"{step_label} does not move these activations (zero strength?); there is no step "
            "direction to draw."
        )
    first = step_dir / step_dir.norm()
    gap = (ode_end - step_end).mean(0)
    gap = gap - (gap @ first) * first
    scale = float((step_end - start).norm(dim=-1).mean())
    labels = ("one-step direction", "ODE end - one-step end")
    if float(gap.norm()) <= _SAME_END * max(scale, 1e-30):
        centred = start - start.mean(0)
        rest = centred - (centred @ first)[:, None] * first
        if start.shape[0] > 1 and float(rest.norm()) > 0:
            second = torch.linalg.svd(rest, full_matrices=False)[2][0]
        else:  # any direction orthogonal to the first
            second = torch.zeros_like(first)
            second[int(torch.argmin(first.abs()))] = 1.0
        gap = second - (second @ first) * first
        labels = (labels[0], "start PC1 (the two ends coincide)")
    second = gap / gap.norm()
    basis = torch.stack([first, second]).to(a.dtype)
    mean = a.detach().mean(0)
    centred = a.detach() - mean
    total = float(centred.pow(2).sum())
    shares = tuple(float((centred @ b).pow(2).sum()) / total if total > 0 else 0.0 for b in basis)
    return Projection(
        mean=mean,
        basis=basis.to(mean.device),
        axis_labels=labels,
        method="difference",
        explained_variance=shares,
        centre_label="the mean start point",
        compared=(ode_label, step_label),
    )


def difference_in_view(paths: pd.DataFrame, ode: str, one_step: str) -> dict[str, float]:
    """How far apart the ``ode`` and ``one_step`` end points are in the view and in full.

    ``paths`` is a :func:`~lens_odesteer.analysis.trajectories.trajectory_frame` with a view
    (``x``, ``y``) and built with ``gap_to=one_step`` (for the full-dimensional numbers).

    Returns:
        ``in_view`` (mean distance of the end points in the view, activation units),
        ``in_view_rel`` (the same over the mean displacement), ``full`` and ``full_rel``
        (the same in all dimensions; NaN without ``gap``), ``shown`` (``in_view / full``: the
        share of the real gap the view shows) and ``displacement`` (mean final displacement).
    """
    for label in (ode, one_step):
        if label not in set(paths["method"]):
            raise InvalidParameterError(
                f"{label!r} is not a method of the frame {sorted(set(paths['method']))}."
            )
    last = paths.loc[paths.groupby(["method", "row"])["step"].idxmax()].set_index(["method", "row"])
    cols = [c for c in ("x", "y", "z") if c in last]
    a, b = last.loc[ode], last.loc[one_step]
    disp = float(a["displacement"].mean())
    in_view = (
        float((((a[cols] - b[cols]) ** 2).sum(axis=1) ** 0.5).mean()) if cols else float("nan")
    )
    if "gap" in a and paths.attrs.get("gap_to") == one_step:
        full, full_rel = float(a["gap"].mean()), float(a["gap_rel"].median())
    else:
        full, full_rel = float("nan"), float("nan")
    return {
        "in_view": in_view,
        "in_view_rel": in_view / disp if disp > 0 else float("nan"),
        "full": full,
        "full_rel": full_rel,
        "shown": in_view / full if full > 0 else float("nan"),
        "displacement": disp,
    }


def difference_frame(
    paths: pd.DataFrame,
    baseline: str,
    *,
    columns: Sequence[str] = PATH_COLUMNS,
) -> pd.DataFrame:
    """Every method's path values minus ``baseline``'s, at the same row and share of strength.

    Args:
        paths: a :func:`~lens_odesteer.analysis.trajectories.trajectory_frame`.
        baseline: the method subtracted (e.g. ``"StepODESteer"`` or ``"CAA"``).
        columns: the columns subtracted (those the frame has).

    Returns:
        One row per (method, row, step) with ``method``, ``baseline``, ``row``, ``step``, ``t``,
        ``fraction`` and, per column, its difference ``value - baseline value`` under the same
        name. The baseline is linearly interpolated at each method's ``fraction`` (exact where
        the saved fractions agree, as for an ODE and a one-step method saved at the same
        times), so the baseline's own rows are exactly zero. ``gap`` and ``gap_rel`` (the
        full-dimensional distance, from ``trajectory_frame(..., gap_to=baseline)``) are copied
        when the frame measured them from ``baseline``.
    """
    needed = ["method", "row", "step", "fraction"]
    missing = [c for c in needed if c not in paths.columns]
    if missing:
        raise InvalidParameterError(
            f"`paths` lacks columns {missing}; build it with trajectory_frame."
        )
    if baseline not in set(paths["method"]):
        raise InvalidParameterError(
            f"`baseline` {baseline!r} is not a method of the frame "
            f"{list(dict.fromkeys(paths['method']))}."
        )
    cols = [c for c in columns if c in paths.columns]
    base = paths[paths["method"] == baseline]
    base_rows = {int(r): g.sort_values("fraction") for r, g in base.groupby("row")}
    copy_gap = paths.attrs.get("gap_to") == baseline and "gap" in paths.columns
    out = []
    for method, sub in paths.groupby("method", sort=False):
        for row, g in sub.groupby("row", sort=True):
            g = g.sort_values("step")
            if int(row) not in base_rows:
                raise InvalidParameterError(
                    f"Row {row} of {method!r} has no {baseline!r} path to subtract."
                )
            b = base_rows[int(row)]
            frac = g["fraction"].to_numpy(dtype=float)
            part: dict[str, object] = {
                "method": method,
                "baseline": baseline,
                "row": int(row),
                "step": g["step"].to_numpy(),
                "t": g["t"].to_numpy() if "t" in g else frac,
                "fraction": frac,
            }
            same = len(b) == len(g) and np.allclose(
                b["fraction"].to_numpy(dtype=float), frac, rtol=0.0, atol=1e-12
            )
            for c in cols:
                bv = b[c].to_numpy(dtype=float)
                other = bv if same else np.interp(frac, b["fraction"].to_numpy(dtype=float), bv)
                part[c] = g[c].to_numpy(dtype=float) - other
            if copy_gap:
                part["gap"] = g["gap"].to_numpy(dtype=float)
                part["gap_rel"] = g["gap_rel"].to_numpy(dtype=float)
            out.append(pd.DataFrame(part))
    frame = pd.concat(out, ignore_index=True)
    frame.attrs.update(
        baseline=baseline,
        reference=paths.attrs.get("reference"),
        T=paths.attrs.get("T"),
        columns=tuple(cols),
    )
    return frame
