r"""When can multi-step steering differ from one step? A diagnostic of how much the field varies.

Multi-step integration of ``da/dt = v(a)`` only differs from the one step ``a + T v(a)`` where
the field changes direction, over the data and along the path. :func:`field_variation` measures,
on given activations and at a given strength ``T``:

* **spread**: the cosines between field directions ``v(a) / |v(a)|`` at different activations
  (their mean over all pairs, and their distribution);
* **turning**: the angle between the first and the last step of each integrated path, and the
  sum of the angles between consecutive steps;
* **gap**: ``|ODE end - one-step end| / |ODE end - a|``, the quantity a comparison of ODESteer
  with its one-step ablation measures;
* **bend**: ``|ODE end - linearised end| / |ODE end - a|``, where the linearised path is the flow
  of the barrier linearised at the start point. For a field tangent to the norm sphere (ODESteer's
  normalised sketch, where the flow rotates ``a``) that is the barrier ``w . a / |a|`` with the same
  initial field, integrated with the same solver: the great circle, so ``bend`` is the part of the
  gap due to the barrier's curvature rather than to the rotation on the sphere. For any other
  field it is the straight step, and ``bend == gap``;
* the barrier's **accuracy** (sign of ``h``) and **AUC** on the activations, when labels are given.

For a steerer with its own path (``has_own_path``: the closed-form rotations HPR,
AngularSteering and SphericalSteering, and TruthFlow's time-dependent field) the multi-step path
is that path (``trajectory``) and the one step follows its initial velocity ``vector_field``.

A barrier that is linear in the flow's coordinates gives spread 1 (or, on the sphere, bend 0)
and an ODE end equal to the linearised end. The diagnostic integrates the whole horizon with the
steerer's solver (a ``margin`` is ignored: it only shortens paths).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from lens_odesteer._validation import as_float_acts, check_finite_float, check_positive_int
from lens_odesteer.analysis.auc import binary_auc, has_both_classes
from lens_odesteer.errors import InvalidParameterError, ShapeMismatchError
from lens_odesteer.flows import AdaptiveSteps, SaveAt, get_solver, integrate
from lens_odesteer.steerers import AbstractSteerer

#: Rows whose field is shorter than this are left out of the direction statistics.
_MIN_SPEED = 1e-12
#: A field is "tangent to the norm sphere" when every row has |cos(v, a)| below this.
_TANGENT_TOL = 1e-3
_DEFAULT_STEPS = 10


@dataclass(frozen=True, eq=False)
class FieldVariation:
    """Result of :func:`field_variation`.

    Attributes:
        steerer: class name of the steerer.
        T: the strength used (an arc length for unit fields).
        solver, n_steps: the integration compared with one step.
        tangent: the field is orthogonal to every activation (the flow rotates on its sphere).
        mean_pairwise_cosine: mean cosine between field directions over all pairs of rows.
        pairwise_cosines: those cosines, all pairs or a random sample of ``max_pairs``.
        rows: one row per activation: ``row, norm, speed, cos_to_mean, turn_deg,
            turn_total_deg, arc_deg, displacement, gap, bend, h, label``.
        accuracy, auc: of the barrier's sign / value against the labels (None without labels;
            ``auc`` is also None when the labels hold one class).
    """

    steerer: str
    T: float
    solver: str
    n_steps: int
    tangent: bool
    mean_pairwise_cosine: float
    pairwise_cosines: np.ndarray
    rows: pd.DataFrame
    accuracy: float | None
    auc: float | None

    def median(self, column: str) -> float:
        """Median of a column of :attr:`rows`, ignoring NaN."""
        return float(np.nanmedian(self.rows[column].to_numpy(dtype=float)))

    def quantile(self, column: str, q: float) -> float:
        """Quantile ``q`` of a column of :attr:`rows`, ignoring NaN."""
        return float(np.nanquantile(self.rows[column].to_numpy(dtype=float), q))

    def median_ci(
        self, column: str, *, level: float = 0.95, n_boot: int = 2000, seed: int = 0
    ) -> tuple[float, float, float]:
        """``(median, low, high)`` of a column of :attr:`rows`, with a percentile bootstrap
        interval over rows (``n_boot`` resamples, seeded; NaN rows left out).

        Example:
            >>> import torch, lens_odesteer as lo
            >>> pos, neg = torch.randn(40, 8) + 1, torch.randn(40, 8) - 1
            >>> ode = lo.ODESteer(lo.sketch_barrier(n_components=256)).fit(pos, neg)
            >>> med, low, high = field_variation(ode, neg, T=1.0).median_ci("gap")
            >>> low <= med <= high
            True
        """
        values = self.rows[column].to_numpy(dtype=float)
        values = values[~np.isnan(values)]
        if values.size == 0:
            return math.nan, math.nan, math.nan
        if not 0.0 < level < 1.0:
            raise InvalidParameterError(f"`level` must be in (0, 1); got {level!r}.")
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, values.size, size=(check_positive_int(n_boot, "n_boot"), values.size))
        medians = np.median(values[idx], axis=1)
        low, high = np.quantile(medians, [(1 - level) / 2, (1 + level) / 2])
        return float(np.median(values)), float(low), float(high)

    def summary(self) -> str:
        """One paragraph in plain words, starting with how close multi-step is to one step."""
        gap, gap90 = 100 * self.median("gap"), 100 * self.quantile("gap", 0.9)
        text = (
            f"At these settings ({self.steerer}, T={self.T:.3g}, {self.solver} x{self.n_steps}, "
            f"{len(self.rows)} rows) multi-step steering ends within {gap:.2f}% of one step "
            f"(median |ODE end - one-step end| / displacement; 90th percentile {gap90:.2f}%)."
        )
        if self.tangent:
            text += (
                f" The barrier's curvature accounts for {100 * self.median('bend'):.2f}% "
                "(distance from the great circle of the barrier linearised in a/|a|); the rest "
                "is the rotation on the norm sphere."
            )
        text += (
            f" Field directions have mean pairwise cosine {self.mean_pairwise_cosine:.4f}; the "
            f"step direction turns {self.median('turn_deg'):.2f} deg from first to last step "
            f"while the activation rotates {self.median('arc_deg'):.2f} deg."
        )
        if self.auc is not None and self.accuracy is not None:
            text += f" Barrier on these rows: AUC {self.auc:.3f}, accuracy {self.accuracy:.3f}."
        return text

    def to_frame(self) -> pd.DataFrame:
        """Long-form summary: ``steerer, T, solver, n_steps, n_rows, metric, value``."""
        metrics: dict[str, float] = {
            "mean_pairwise_cosine": self.mean_pairwise_cosine,
            "cos_to_mean_p05": self.quantile("cos_to_mean", 0.05),
            "gap_median": self.median("gap"),
            "gap_p90": self.quantile("gap", 0.9),
            "bend_median": self.median("bend"),
            "bend_p90": self.quantile("bend", 0.9),
            "turn_deg_median": self.median("turn_deg"),
            "turn_total_deg_median": self.median("turn_total_deg"),
            "arc_deg_median": self.median("arc_deg"),
            "displacement_median": self.median("displacement"),
            "norm_median": self.median("norm"),
            "accuracy": math.nan if self.accuracy is None else self.accuracy,
            "auc": math.nan if self.auc is None else self.auc,
        }
        return pd.DataFrame(
            {
                "steerer": self.steerer,
                "T": self.T,
                "solver": self.solver,
                "n_steps": self.n_steps,
                "n_rows": len(self.rows),
                "metric": list(metrics),
                "value": list(metrics.values()),
            }
        )


def field_variation(
    steerer: AbstractSteerer,
    acts: Float[Tensor, "*batch d_model"],
    *,
    labels: Tensor | None = None,
    T: float | None = None,
    n_steps: int | None = None,
    max_pairs: int = 100_000,
    seed: int = 0,
) -> FieldVariation:
    """Measure how much a fitted steerer's field varies over ``acts`` and along its paths.

    Main arguments:
        steerer: a fitted steerer whose ``T`` is a time along its field: the flow steerers
            (ODESteer with any barrier, StepODESteer, RFF variants, ValueSteer) or the
            constant-field CAA, ITI and RepE (spread 1 and gap 0 by construction).
        acts: held-out activations ``[..., d_model]``.
        labels: optional 0/1 or bool labels (1 = positive) of shape ``acts.shape[:-1]``; adds
            the barrier's accuracy and AUC.
        T: the strength to examine. Default (needs ``labels``): the ``T`` at which one step
            moves the median row by ``|mean(pos) - mean(neg)|`` of ``acts``, i.e. the arc length
            of CAA x1 for unit fields. Pass ``T`` when the class means nearly coincide (XOR-like
            data), where that distance is tiny.

    Other arguments:
        n_steps: steps of the multi-step path; default the steerer's own, or 10 when it takes
            one step (StepODESteer, CAA, ...), so a one-step steerer shows what integrating its
            field would change. The solver is the steerer's (Euler for one-step methods). A
            closed-form path is sampled at ``n_steps + 1`` points; a fixed-step steerer with its
            own path (TruthFlow) keeps its own steps.
        max_pairs: the most pairwise cosines kept for the distribution (the mean uses all).
        seed: seed of the pair sample.

    Raises:
        InvalidParameterError: LinAcT/MiMiC (their ``T`` interpolates a map, there is no path to
            integrate), ``T`` missing without labels, bad ``n_steps``/``max_pairs``.
        ShapeMismatchError: labels of the wrong shape.

    Example:
        >>> import torch, lens_odesteer as lo
        >>> from lens_odesteer.analysis.nonlinearity import field_variation
        >>> pos, neg = torch.randn(40, 8) + 1, torch.randn(40, 8) - 1
        >>> lin = lo.ODESteer(lo.barriers.LinearBarrier()).fit(pos, neg)
        >>> fv = field_variation(lin, torch.cat([pos, neg]), T=2.0)
        >>> round(fv.mean_pairwise_cosine, 4), round(fv.median("gap"), 4)
        (1.0, 0.0)
    """
    _check_flow_steerer(steerer)
    acts_t = as_float_acts(acts, "acts", min_rows=1)
    flat = acts_t.reshape(-1, acts_t.shape[-1])
    v0 = steerer.vector_field(flat)  # validates fitting, width, device and finiteness
    y0 = flat.to(v0.dtype)
    lab = _check_labels(labels, acts_t)
    max_pairs = check_positive_int(max_pairs, "max_pairs")
    speed = v0.norm(dim=-1)
    moving = speed > _MIN_SPEED
    unit = bool(((speed - 1).abs() < 1e-4)[moving].all())
    T_val = _resolve_T(T, y0, lab, speed[moving])
    solver, steps, n_steps_used = _flow_settings(steerer, n_steps)
    save = SaveAt(n=n_steps_used + 1) if isinstance(steps, AdaptiveSteps) else SaveAt(steps=True)

    solver_label = solver
    if steerer.has_own_path:  # a rotation in closed form or a time-dependent learned field
        ys = steerer.trajectory(y0, T_val, n_save=n_steps_used + 1).ys
        n_steps_used = int(ys.shape[0]) - 1
        if getattr(steerer, "solver", None) is None:
            solver_label = "closed form"
    else:
        ys = integrate(steerer.vector_field, y0, T_val, solver=solver, steps=steps, save=save).ys
    end = ys[-1]
    one_step = y0 + T_val * v0
    norms = y0.norm(dim=-1)
    cos_radial = (v0 * y0).sum(-1) / (speed * norms).clamp_min(_MIN_SPEED)
    tangent = bool((cos_radial[moving].abs() < _TANGENT_TOL).all())
    if tangent:
        lin_field = _sphere_linearised_field(y0, v0, unit)
        lin_end = integrate(lin_field, y0, T_val, solver=solver, steps=steps, save=save).ys[-1]
    else:
        lin_end = one_step
    disp = (end - y0).norm(dim=-1)
    safe = torch.where(disp > 0, disp, torch.full_like(disp, math.nan))
    steps_vec = ys[1:] - ys[:-1]
    turns = _angle(steps_vec[:-1], steps_vec[1:]) if steps_vec.shape[0] > 1 else None

    u = v0[moving] / speed[moving].unsqueeze(-1)
    mean_dir = u.sum(0)
    cos_to_mean = torch.full_like(speed, math.nan)
    cos_to_mean[moving] = u @ (mean_dir / mean_dir.norm().clamp_min(_MIN_SPEED))
    h = steerer.barrier_value(y0) if steerer.has_barrier else torch.full_like(speed, math.nan)
    accuracy = auc = None
    if lab is not None:
        accuracy = float(((h >= 0) == lab).double().mean())
        auc = binary_auc(h, lab) if has_both_classes(lab) else None
    rows = pd.DataFrame(
        {
            "row": np.arange(y0.shape[0]),
            "norm": _np(norms),
            "speed": _np(speed),
            "cos_to_mean": _np(cos_to_mean),
            "turn_deg": _np(_angle(steps_vec[0], steps_vec[-1])),
            "turn_total_deg": _np(turns.sum(0)) if turns is not None else 0.0,
            "arc_deg": _np(_angle(y0, end)),
            "displacement": _np(disp),
            "gap": _np((end - one_step).norm(dim=-1) / safe),
            "bend": _np((end - lin_end).norm(dim=-1) / safe),
            "h": _np(h),
            "label": _np(lab) if lab is not None else None,
        }
    )
    return FieldVariation(
        steerer=steerer.name,
        T=T_val,
        solver=solver_label,
        n_steps=n_steps_used,
        tangent=tangent,
        mean_pairwise_cosine=_mean_pairwise_cosine(u),
        pairwise_cosines=_pair_sample(u, max_pairs, seed),
        rows=rows,
        accuracy=accuracy,
        auc=auc,
    )


# --------------------------------------------------------------------------- helpers


def has_flow_path(steerer: AbstractSteerer) -> bool:
    """Whether ``steerer``'s ``T`` is a time along a path, so :func:`field_variation` applies.

    True for every ``"flow"`` steerer (including bounded ones such as AngularSteering, whose
    ``T`` is an angle) and for one-step steerers with an unbounded ``T``; False for LinAcT and
    MiMiC, whose bounded ``T`` interpolates a transport map.

    Example:
        >>> import lens_odesteer as lo
        >>> has_flow_path(lo.ODESteer()), has_flow_path(lo.CAA()), has_flow_path(lo.LinAcT())
        (True, True, False)
    """
    return steerer.kind == "flow" or steerer.max_T is None


def _check_flow_steerer(steerer: object) -> None:
    if not isinstance(steerer, AbstractSteerer):
        raise InvalidParameterError(
            f"`steerer` must be a fitted lens_odesteer steerer; got {type(steerer).__name__}."
        )
    if not has_flow_path(steerer):
        raise InvalidParameterError(
            f"field_variation needs a steerer whose T is a time along its field; "
            f"{type(steerer).__name__}'s T interpolates a transport map from the identity (0) "
            "to the full map (1), so there is no multi-step path to compare. Use a flow steerer "
            "(ODESteer, RFFODESteer, ValueSteer, a custom barrier) or CAA, ITI or RepE."
        )


def _check_labels(labels: object, acts: Tensor) -> Tensor | None:
    if labels is None:
        return None
    lab = labels if isinstance(labels, Tensor) else torch.as_tensor(labels)
    if lab.shape != acts.shape[:-1]:
        raise ShapeMismatchError(
            f"`labels` has shape {tuple(lab.shape)} but `acts` has leading shape "
            f"{tuple(acts.shape[:-1])}; give one 0/1 label per activation row."
        )
    if lab.is_floating_point() or lab.is_complex() or not bool(((lab == 0) | (lab == 1)).all()):
        raise InvalidParameterError(
            f"`labels` must be bool or 0/1 integers (1 = positive); got dtype {lab.dtype} with "
            f"values {torch.unique(lab).tolist()[:6]}."
        )
    return lab.reshape(-1).to(device=acts.device, dtype=torch.bool)


def _resolve_T(T: float | None, y0: Tensor, labels: Tensor | None, moving_speed: Tensor) -> float:
    if T is not None:
        return check_finite_float(T, "T", minimum=0.0, strict=True)
    if labels is None or bool(labels.all()) or not bool(labels.any()):
        raise InvalidParameterError(
            "`T` is None and no `labels` with both classes were given; pass the strength you "
            "steer with as `T`, or `labels` (T then defaults to the strength at which one step "
            "moves the median row by |mean(pos) - mean(neg)|)."
        )
    if moving_speed.numel() == 0:
        raise InvalidParameterError(
            "The field vanishes on every row of `acts`, so no default `T` exists; pass `T`."
        )
    dist = float((y0[labels].mean(0) - y0[~labels].mean(0)).norm())
    return dist / float(moving_speed.median())


def _flow_settings(
    steerer: AbstractSteerer, n_steps: int | None
) -> tuple[str, int | AdaptiveSteps, int]:
    """``(solver name, steps for integrate, step count)``; one-step methods integrate 10 steps."""
    solver = get_solver(getattr(steerer, "solver", "euler")).name
    own = getattr(steerer, "steps", 1)
    if isinstance(own, AdaptiveSteps):  # the adaptive solver saves n_steps + 1 equal times
        n = own.initial_steps if n_steps is None else check_positive_int(n_steps, "n_steps")
        return solver, dataclasses.replace(own, initial_steps=n), n
    if n_steps is not None:
        n = check_positive_int(n_steps, "n_steps")
    else:
        n = own if steerer.kind == "flow" and isinstance(own, int) and own > 1 else _DEFAULT_STEPS
    return solver, n, n


def _sphere_linearised_field(y0: Tensor, v0: Tensor, unit: bool) -> Callable[[Tensor], Tensor]:
    """Field of ``h(y) = w . y / |y|`` with ``w = |y0| v0``, which equals ``v0`` at ``y0``."""
    w = y0.norm(dim=-1, keepdim=True) * v0

    def field(y: Tensor) -> Tensor:
        norm = y.norm(dim=-1, keepdim=True).clamp_min(_MIN_SPEED)
        y_hat = y / norm
        g = (w - (w * y_hat).sum(-1, keepdim=True) * y_hat) / norm
        if unit:
            g = g / g.norm(dim=-1, keepdim=True).clamp_min(_MIN_SPEED)
        return g

    return field


def _angle(a: Tensor, b: Tensor) -> Tensor:
    """Angle in degrees between rows of ``a`` and ``b`` (0 where either is zero), stably."""
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    ua, ub = a / na.clamp_min(_MIN_SPEED), b / nb.clamp_min(_MIN_SPEED)
    ang = 2 * torch.atan2((ua - ub).norm(dim=-1), (ua + ub).norm(dim=-1))
    zero = (na.squeeze(-1) <= _MIN_SPEED) | (nb.squeeze(-1) <= _MIN_SPEED)
    return torch.rad2deg(torch.where(zero, torch.zeros_like(ang), ang))


def _mean_pairwise_cosine(u: Tensor) -> float:
    n = u.shape[0]
    if n < 2:
        return math.nan
    total = u.double().sum(0)
    return float(((total @ total) - n) / (n * (n - 1)))


def _pair_sample(u: Tensor, max_pairs: int, seed: int) -> np.ndarray:
    n = u.shape[0]
    if n < 2:
        return np.zeros(0, dtype=np.float32)
    if n * (n - 1) // 2 <= max_pairs:
        i, j = torch.triu_indices(n, n, offset=1, device=u.device)
    else:
        gen = torch.Generator().manual_seed(seed)
        i = torch.randint(0, n, (max_pairs,), generator=gen)
        j = (i + torch.randint(1, n, (max_pairs,), generator=gen)) % n
        i, j = i.to(u.device), j.to(u.device)
    out = [(u[i[k : k + 65536]] * u[j[k : k + 65536]]).sum(-1) for k in range(0, len(i), 65536)]
    return _np(torch.cat(out)).astype(np.float32)


def _np(t: Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()
