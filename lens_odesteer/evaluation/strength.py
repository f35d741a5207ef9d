"""Comparable strengths across methods: displacement matching and KL calibration.

``T`` means different things per method (a multiplier for CAA, a distance for ITI/RepE, an arc
length for ODESteer, an interpolation weight for LinAcT/MiMiC). Two common scales make them
comparable:

* **displacement**: the mean ``|steer(a, T) - a|`` over reference activations;
  :func:`solve_T_for_displacement` finds the ``T`` that moves them by a target distance.
* **next-token KL**: the mean ``KL(p_unsteered || p_steered)`` of the next-token distribution
  after reference prompts (steering the last prompt token); :func:`calibrate_kl` finds the ``T``
  that spends a KL budget and stores it with the steerer (``steerer.provenance_["calibration"]``,
  which ``steerer.save(path, provenance=steerer.provenance_)`` writes and
  :func:`~lens_odesteer.load_steerer` restores).

Example:
    >>> import torch, lens_odesteer as lo
    >>> caa = lo.CAA().fit(torch.ones(4, 3), torch.zeros(4, 3))  # |mu+ - mu-| = sqrt(3)
    >>> round(solve_T_for_displacement(caa, torch.zeros(5, 3), 2 * 3 ** 0.5), 4)
    2.0
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jaxtyping import Float
from torch import Tensor

from lens_odesteer._validation import check_finite_float
from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.evaluation.likelihood import next_token_logprobs
from lens_odesteer.hooks import SteeringPlan
from lens_odesteer.models.names import HookedModel
from lens_odesteer.steerers.base import AbstractSteerer
from lens_odesteer.steerers.strength import match_displacement, mean_displacement

__all__ = [
    "calibrate_kl",
    "calibrated_T",
    "match_strength",
    "mean_displacement",
    "mean_next_token_kl",
    "solve_T_for_displacement",
    "solve_monotone",
]


def solve_monotone(
    fn: Callable[[float], float],
    target: float,
    *,
    t_max: float | None = None,
    t_init: float = 1.0,
    rel_tol: float = 0.01,
    max_iter: int = 40,
) -> tuple[float, float]:
    """Find ``t >= 0`` with ``fn(t) ~= target`` for a non-decreasing ``fn`` (``fn(0) = 0``).

    Doubles ``t`` from ``t_init`` until ``fn(t) >= target`` (or ``t_max`` / 2^40 is reached), then
    bisects to a relative tolerance. Returns ``(t, fn(t))``; when the target is out of reach the
    largest ``t`` tried is returned with its (smaller) value.

    Example:
        >>> t, v = solve_monotone(lambda t: t ** 2, 4.0)
        >>> round(t, 2), round(v, 1)
        (2.0, 4.0)
    """
    target = check_finite_float(target, "target", minimum=0.0)
    if target == 0.0:
        return 0.0, 0.0
    lo_t, hi_t = 0.0, min(t_init, t_max) if t_max is not None else t_init
    hi_v = fn(hi_t)
    doublings = 0
    while hi_v < target:
        if t_max is not None and hi_t >= t_max:
            return hi_t, hi_v
        if doublings >= 40:
            return hi_t, hi_v
        lo_t = hi_t
        hi_t = hi_t * 2.0 if t_max is None else min(hi_t * 2.0, t_max)
        hi_v = fn(hi_t)
        doublings += 1
    best_t, best_v = hi_t, hi_v
    for _ in range(max_iter):
        if abs(best_v - target) <= rel_tol * target:
            break
        mid = 0.5 * (lo_t + hi_t)
        mid_v = fn(mid)
        if mid_v < target:
            lo_t = mid
        else:
            hi_t, hi_v = mid, mid_v
        best_t, best_v = (
            (mid, mid_v)
            if abs(mid_v - target) < abs(best_v - target)
            else (
                best_t,
                best_v,
            )
        )
    return best_t, best_v


def solve_T_for_displacement(
    steerer: AbstractSteerer,
    acts: Float[Tensor, "n d_model"],
    target: float,
    *,
    t_max: float | None = None,
    rel_tol: float = 0.005,
) -> float:
    """Return the ``T`` whose mean displacement of ``acts`` is ``target`` (activation units).

    For methods that saturate (LinAcT/MiMiC capped at ``t_max``, or ODESteer with a margin whose
    rows all reach it) the largest reachable ``T`` is returned.
    """
    return _solve_displacement(steerer, acts, target, t_max=t_max, rel_tol=rel_tol)[0]


def _solve_displacement(
    steerer: AbstractSteerer,
    acts: Tensor,
    target: float,
    *,
    t_max: float | None = None,
    rel_tol: float = 0.005,
) -> tuple[float, float]:
    """:func:`solve_T_for_displacement` and the mean displacement it reached at that ``T``."""
    t_init = 1.0
    probe = mean_displacement(steerer, acts, 1.0)
    if probe > 0 and math.isfinite(probe):
        t_init = max(target / probe, 1e-6)  # exact for one-step constant fields
    return solve_monotone(
        lambda t: mean_displacement(steerer, acts, t),
        target,
        t_max=t_max,
        t_init=t_init,
        rel_tol=rel_tol,
    )


def mean_next_token_kl(
    model: HookedModel,
    prompts: Sequence[str],
    hook: str,
    steerer: AbstractSteerer,
    T: float,
    *,
    reference: Tensor | None = None,
    batch_size: int = 16,
) -> float:
    """Mean ``KL(p_unsteered || p_steered)`` (nats) of the token after each prompt.

    Only the last prompt token is steered (the first position the generation scope
    ``"last"`` edits). Pass ``reference`` (the unsteered log-probabilities) to save a pass.
    """
    if reference is None:
        reference = next_token_logprobs(model, prompts, None, batch_size=batch_size)
    if T == 0.0:
        return 0.0
    plan = SteeringPlan({hook: steerer}, T=T)
    steered = next_token_logprobs(model, prompts, plan, batch_size=batch_size)
    kl = (reference.exp() * (reference - steered)).sum(-1)
    return float(kl.clamp_min(0.0).mean())


def calibrate_kl(
    model: HookedModel,
    steerer: AbstractSteerer,
    hook: str,
    prompts: Sequence[str],
    budget: float,
    *,
    t_max: float | None = None,
    rel_tol: float = 0.05,
    batch_size: int = 16,
) -> float:
    """Find the ``T`` whose mean next-token KL after ``prompts`` equals ``budget``; store it.

    The result is written to ``steerer.provenance_["calibration"]`` as ``{"kind": "kl",
    "budget", "T", "achieved", "hook", "n_prompts"}``; save the steerer with
    ``steerer.save(path, provenance=steerer.provenance_)`` to keep it, and read it back with
    :func:`calibrated_T`.

    Raises:
        InvalidParameterError: a non-positive budget or no prompts.
    """
    budget = check_finite_float(budget, "budget", minimum=0.0, strict=True)
    if len(prompts) == 0:
        raise InvalidParameterError("`prompts` is empty; calibration needs reference prompts.")
    reference = next_token_logprobs(model, prompts, None, batch_size=batch_size)

    def kl(t: float) -> float:
        return mean_next_token_kl(
            model, prompts, hook, steerer, t, reference=reference, batch_size=batch_size
        )

    T, achieved = solve_monotone(kl, budget, t_max=t_max, rel_tol=rel_tol, max_iter=25)
    if achieved < budget * (1.0 - rel_tol):
        warnings.warn(
            f"KL budget {budget:g} is out of reach for this {type(steerer).__name__} at {hook} "
            f"(the KL saturates at about {achieved:.3g} nats by T={T:.4g}); the largest T tried "
            "is stored. Use a smaller budget.",
            stacklevel=2,
        )
    provenance: dict[str, Any] = dict(getattr(steerer, "provenance_", {}) or {})
    provenance["calibration"] = {
        "kind": "kl",
        "budget": budget,
        "T": T,
        "achieved": achieved,
        "reached": bool(achieved >= budget * (1.0 - rel_tol)),
        "hook": hook,
        "n_prompts": len(prompts),
    }
    steerer.provenance_ = provenance  # type: ignore[attr-defined]
    return T


def calibrated_T(steerer: AbstractSteerer) -> float:
    """Return the strength stored by :func:`calibrate_kl` (also after save and load).

    Raises:
        InvalidParameterError: the steerer carries no calibration.
    """
    cal = (getattr(steerer, "provenance_", None) or {}).get("calibration")
    if not isinstance(cal, dict) or "T" not in cal:
        raise InvalidParameterError(
            f"This {type(steerer).__name__} carries no calibrated strength; run "
            "calibrate_kl(model, steerer, hook, prompts, budget) first (and save it with "
            "steerer.save(path, provenance=steerer.provenance_))."
        )
    return float(cal["T"])


def match_strength(
    steerers: Mapping[str, AbstractSteerer],
    *,
    acts: Float[Tensor, "n d_model"] | None = None,
    strength: float | None = None,
    kl: float | None = None,
    model: HookedModel | None = None,
    hook: str | None = None,
    prompts: Sequence[str] | None = None,
    batch_size: int = 16,
) -> dict[str, float]:
    """Return each steerer's native ``T`` so that all of them move a model equally.

    Two scales (give exactly one):

    * ``strength`` with ``acts``: the mean displacement ``|steer(a, T) - a|`` of the rows of
      ``acts`` equals ``strength`` times their mean norm (for ODE paths that bend the net
      displacement, not the arc length, is matched);
    * ``kl`` with ``model``, ``hook`` and ``prompts``: the mean next-token
      ``KL(p_unsteered || p_steered)`` after the prompts equals ``kl`` nats (the last prompt
      token steered), as :func:`calibrate_kl`, without storing anything.

    The values go straight into a plan as native strengths:
    ``lo.steering(model, {hook: ode}, T=Ts["ODESteer"])``.

    Example:
        >>> import torch, lens_odesteer as lo
        >>> pos, neg = torch.randn(64, 16) + 0.5, torch.randn(64, 16) - 0.5
        >>> methods = {"CAA": lo.CAA().fit(pos, neg), "ITI": lo.ITI().fit(pos, neg)}
        >>> Ts = match_strength(methods, acts=neg, strength=0.2)
        >>> target = 0.2 * float(neg.norm(dim=-1).mean())
        >>> all(abs(mean_displacement(s, neg, Ts[k]) / target - 1) < 0.01
        ...     for k, s in methods.items())
        True
    """
    if not isinstance(steerers, Mapping) or not steerers:
        raise InvalidParameterError(
            "`steerers` must be a non-empty dict {label: fitted steerer}; got "
            f"{type(steerers).__name__}."
        )
    if (strength is None) == (kl is None):
        raise InvalidParameterError(
            "Give exactly one of `strength` (with `acts`: match the mean displacement) or `kl` "
            f"(with `model`, `hook`, `prompts`: match the next-token KL); got strength={strength!r}"
            f", kl={kl!r}."
        )
    for label, steerer in steerers.items():
        if not isinstance(steerer, AbstractSteerer):
            raise InvalidParameterError(
                f"`steerers[{label!r}]` must be a fitted steerer; got {type(steerer).__name__}."
            )
        steerer._check_is_fitted()
    if strength is not None:
        if acts is None:
            raise InvalidParameterError("Displacement matching needs `acts` (reference rows).")
        return match_displacement(steerers, acts, strength)
    if model is None or hook is None or not prompts:
        raise InvalidParameterError("KL matching needs `model`, `hook` and non-empty `prompts`.")
    budget = check_finite_float(kl, "kl", minimum=0.0, strict=True)
    reference = next_token_logprobs(model, prompts, None, batch_size=batch_size)
    out = {}
    for label, st in steerers.items():

        def fn(t: float, st: AbstractSteerer = st) -> float:
            return mean_next_token_kl(
                model, prompts, hook, st, t, reference=reference, batch_size=batch_size
            )

        out[label], _ = solve_monotone(fn, budget, t_max=st.max_T, rel_tol=0.05, max_iter=25)
    return out
