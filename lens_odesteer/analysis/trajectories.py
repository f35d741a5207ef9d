"""Steering paths side by side: ODE trajectories and one-step straight segments, as tidy frames.

:func:`trajectory_frame` integrates each method from the same activations and records, per saved
step, the point in a view (:class:`~lens_odesteer.analysis.projection.Projection`), the barrier
``h`` of one *reference* steerer (so every path is judged by the same ``h``), ``P(positive)``,
the norm ``|a|`` and the distance travelled. One-step methods are saved at as many equally spaced
times as the reference's steps, so their markers line up with the ODE's.

Example:
    >>> import torch, lens_odesteer as lo
    >>> from lens_odesteer.analysis.projection import fit_projection
    >>> from lens_odesteer.analysis.trajectories import trajectory_frame
    >>> g = torch.Generator().manual_seed(0)
    >>> pos, neg = torch.randn(40, 6, generator=g) + 1, torch.randn(40, 6, generator=g) - 1
    >>> ode = lo.ODESteer(lo.sketch_barrier(n_components=256)).fit(pos, neg)
    >>> step = lo.StepODESteer(lo.sketch_barrier(n_components=256)).fit(pos, neg)
    >>> frame = trajectory_frame({"ODESteer": ode, "StepODESteer": step}, neg[:3], T=2.0,
    ...                          view=fit_projection(pos, neg))
    >>> frame.groupby("method")["step"].max().to_dict()
    {'ODESteer': 10, 'StepODESteer': 10}
    >>> frame.attrs["reference"]
    'ODESteer'
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from lens_odesteer._validation import as_float_acts, check_finite_float
from lens_odesteer.analysis.projection import Projection
from lens_odesteer.errors import InvalidParameterError, ShapeMismatchError
from lens_odesteer.flows import Trajectory
from lens_odesteer.steerers.base import AbstractSteerer, straight_trajectory
from lens_odesteer.steerers.strength import resolve_T

#: Saved points of a one-step path when no reference step count applies.
DEFAULT_N_SAVE = 11


def is_one_step(steerer: AbstractSteerer) -> bool:
    """True for methods whose path is one straight step (CAA, ITI, StepODESteer, LinAcT, ...)."""
    return steerer.kind == "one_step"


def _check_methods(methods: Mapping[str, AbstractSteerer]) -> dict[str, AbstractSteerer]:
    if not isinstance(methods, Mapping) or not methods:
        raise InvalidParameterError(
            "`methods` must be a non-empty dict from a label to a fitted steerer, e.g. "
            f"{{'ODESteer': ode, 'CAA': caa}}; got {type(methods).__name__}."
        )
    out = {}
    for label, steerer in methods.items():
        if not isinstance(label, str) or not isinstance(steerer, AbstractSteerer):
            raise InvalidParameterError(
                f"`methods` maps labels (str) to steerers; got {label!r}: {type(steerer).__name__}."
            )
        steerer._check_is_fitted()
        out[label] = steerer
    d_models = {s.d_model_ for s in out.values()}
    if len(d_models) != 1:
        raise ShapeMismatchError(
            f"The steerers were fitted on different widths {sorted(d_models)}; compare "
            "methods fitted on the same hook."
        )
    return out


Strengths = float | Mapping[str, float] | None


def strengths(
    methods: Mapping[str, AbstractSteerer], strength: Strengths = None, T: Strengths = None
) -> dict[str, float]:
    """Each method's native ``T`` from ``strength`` (norm-relative) or ``T`` (native).

    Exactly one of them, a number for all methods or one per label. ``strength`` means the
    same for every method (the move as a fraction of the typical activation norm at the hook),
    so ``strength=0.1`` compares methods at equal size; see
    :func:`~lens_odesteer.steerers.strength.resolve_T`.
    """
    if (strength is None) == (T is None):
        raise InvalidParameterError(
            "Give exactly one of `strength` (norm-relative, the same meaning for every method) "
            f"or `T` (each method's native strength); got strength={strength!r}, T={T!r}."
        )
    given, label_name = (strength, "strength") if strength is not None else (T, "T")
    if isinstance(given, Mapping):
        missing = [label for label in methods if label not in given]
        if missing:
            raise InvalidParameterError(
                f"`{label_name}` gives no value for {missing}; give one per method label or one "
                "number."
            )
    out = {}
    for label, steerer in methods.items():
        value = given[label] if isinstance(given, Mapping) else given
        if label_name == "strength":
            out[label] = resolve_T(steerer, strength=value)
        else:
            out[label] = resolve_T(steerer, T=check_finite_float(value, f"T[{label!r}]"))
    return out


def reference_label(methods: Mapping[str, AbstractSteerer], reference: str | None) -> str:
    """The label whose barrier judges every path: given, else the first multi-step method."""
    if reference is not None:
        if reference not in methods:
            raise InvalidParameterError(
                f"`reference` {reference!r} is not one of the method labels {list(methods)}."
            )
        return reference
    for label, steerer in methods.items():
        if not is_one_step(steerer):
            return label
    return next(iter(methods))


def method_paths(
    methods: Mapping[str, AbstractSteerer],
    acts: Float[Tensor, "batch d_model"],
    *,
    strength: Strengths = None,
    T: Strengths = None,
    n_save: int | None = None,
) -> dict[str, Trajectory]:
    """Integrate every method from ``acts``; one-step paths get ``n_save`` points.

    ``n_save`` defaults to one more than the largest ``steps`` among the fixed-step methods
    (so one-step markers line up with ODE steps), or 11.
    """
    checked = _check_methods(methods)
    Ts = strengths(checked, strength, T)
    if n_save is None:
        counts = [getattr(s, "steps", None) for s in checked.values() if not is_one_step(s)]
        steps = [c for c in counts if isinstance(c, int)]
        n_save = max(steps) + 1 if steps else DEFAULT_N_SAVE
    paths = {}
    for label, s in checked.items():
        if is_one_step(s):
            # A one-step flow method (StepODESteer) saves only its end point; draw its segment.
            with torch.inference_mode():
                end = s.steer(acts, Ts[label]).to(s.dtype_)
            paths[label] = straight_trajectory(acts.to(s.dtype_), end, Ts[label], n_save)
        else:
            paths[label] = s.trajectory(acts, Ts[label], n_save=n_save)
    return paths


def states_at_fractions(
    traj: Trajectory, T: float, fractions: Tensor
) -> Float[Tensor, "k batch d_model"]:
    """The states of ``traj`` at the given shares ``t / T`` of its strength (linear in between).

    A one-step path is straight, so this is exact for it; for an ODE path it interpolates
    between saved states.
    """
    ts = traj.ts.double()
    own = ts / T if T > 0 else torch.linspace(0.0, 1.0, ts.shape[0], dtype=torch.float64)
    f = fractions.double().clamp(0.0, 1.0)
    if own.shape == f.shape and bool(torch.allclose(own, f, rtol=0.0, atol=1e-12)):
        return traj.ys
    hi = torch.searchsorted(own, f).clamp(1, own.shape[0] - 1)
    lo = hi - 1
    span = (own[hi] - own[lo]).clamp_min(1e-30)
    w = ((f - own[lo]) / span).clamp(0.0, 1.0).to(traj.ys.dtype)
    w = w.view(-1, *([1] * (traj.ys.dim() - 1)))
    return traj.ys[lo] + w * (traj.ys[hi] - traj.ys[lo])


def trajectory_frame(
    methods: Mapping[str, AbstractSteerer],
    acts: Float[Tensor, "batch d_model"],
    *,
    strength: Strengths = None,
    T: Strengths = None,
    view: Projection | None = None,
    reference: str | None = None,
    n_save: int | None = None,
    gap_to: str | None = None,
) -> pd.DataFrame:
    """Return every method's path from each row of ``acts`` as one long frame.

    Args:
        methods: label -> fitted steerer, e.g. ``{"ODESteer": ode, "CAA": caa}``.
        acts: ``[batch, d_model]`` starting activations (e.g. held-out negatives).
        strength: norm-relative strength (the move as a fraction of the typical activation
            norm at the hook; the same for every method), one number or one per label.
        T: instead of ``strength``, each method's native strength (for CAA a multiplier, for
            ODESteer an arc length), one number or one per label.
        view: a projection; adds ``x``, ``y`` (and ``z``) columns.
        reference: the label whose barrier fills ``h`` and ``p_positive`` for every path
            (default: the first multi-step method).
        n_save: saved points of one-step paths (see :func:`method_paths`).
        gap_to: a method label; adds the full-dimensional distance of every path from that
            method's path at the same share of the strength (``gap``, in activation units, and
            ``gap_rel``, over the row's own final displacement, so that at the last step it is
            the diagnostic's ``|ODE end - one-step end| / displacement``). Views hide most of
            this distance; these columns do not.

    Returns:
        Columns ``method``, ``row``, ``step``, ``t``, ``fraction`` (= t / T), ``h``,
        ``p_positive``, ``norm`` (``|a(t)|``), ``displacement`` (``|a(t) - a(0)|``),
        ``path_length`` (distance travelled so far), ``one_step``, ``stopped`` (rows frozen by
        a margin) and the view coordinates (and ``gap``, ``gap_rel`` with ``gap_to``).
        ``attrs`` holds ``reference``, ``T`` and ``gap_to``.
    """
    a = as_float_acts(acts, "acts", min_rows=1)
    if a.dim() != 2:
        raise ShapeMismatchError(f"`acts` must be [batch, d_model]; got {tuple(a.shape)}.")
    checked = _check_methods(methods)
    if view is not None and view.d_model != a.shape[1]:
        raise ShapeMismatchError(
            f"The view has d_model={view.d_model} but `acts` has {a.shape[1]}."
        )
    Ts = strengths(checked, strength, T)
    ref = reference_label(checked, reference)
    if gap_to is not None and gap_to not in checked:
        raise InvalidParameterError(
            f"`gap_to` {gap_to!r} is not one of the method labels {list(checked)}."
        )
    paths = method_paths(checked, a, T=Ts, n_save=n_save)
    frames = []
    for label, traj in paths.items():
        ys = traj.ys  # [k, batch, d]
        k, batch = ys.shape[0], ys.shape[1]
        with torch.inference_mode():
            h = checked[ref].barrier_value(ys).double()
        steps = (ys[1:] - ys[:-1]).norm(dim=-1).double()
        travelled = torch.cat([torch.zeros(1, batch, dtype=torch.float64), steps.cumsum(0)])
        ts = traj.ts.double()
        T_m = Ts[label]
        cols: dict[str, object] = {
            "method": label,
            "row": torch.arange(batch).repeat(k).numpy(),
            "step": torch.arange(k).repeat_interleave(batch).numpy(),
            "t": ts.repeat_interleave(batch).numpy(),
            "fraction": (ts / T_m if T_m > 0 else torch.zeros_like(ts))
            .repeat_interleave(batch)
            .numpy(),
            "h": h.reshape(-1).cpu().numpy(),
            "p_positive": torch.sigmoid(h).reshape(-1).cpu().numpy(),
            "norm": ys.norm(dim=-1).double().reshape(-1).cpu().numpy(),
            "displacement": (ys - ys[0]).norm(dim=-1).double().reshape(-1).cpu().numpy(),
            "path_length": travelled.reshape(-1).cpu().numpy(),
            "one_step": is_one_step(checked[label]),
        }
        stopped = traj.stopped
        cols["stopped"] = stopped.repeat(k).cpu().numpy() if stopped is not None else False
        if gap_to is not None:
            base = paths[gap_to]
            fractions = ts / T_m if T_m > 0 else torch.zeros_like(ts)
            other = states_at_fractions(base, Ts[gap_to], fractions).to(ys.dtype)
            gap = (ys - other).norm(dim=-1).double()  # [k, batch]
            own = (ys[-1] - ys[0]).norm(dim=-1).double()
            cols["gap"] = gap.reshape(-1).cpu().numpy()
            cols["gap_rel"] = (gap / own.clamp_min(1e-30)).reshape(-1).cpu().numpy()
        if view is not None:
            c = view.transform(ys).double()
            for i, axis in enumerate("xyz"[: view.n_components]):
                cols[axis] = c[..., i].reshape(-1).cpu().numpy()
        frames.append(pd.DataFrame(cols))
    out = pd.concat(frames, ignore_index=True)
    out.attrs.update(reference=ref, T=Ts, gap_to=gap_to)
    if view is not None:
        out.attrs["axis_labels"] = view.axis_labels
    return out
