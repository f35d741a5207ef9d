"""Compare methods at equal displacement: the native ``T`` that moves activations by a given amount.

:meth:`~lens_odesteer.steerers.AbstractSteerer.T_for` converts a norm-relative strength with the
field speed recorded at fit time, which is exact for straight one-step moves and close for
flows. :func:`match_displacement` measures instead: it runs each steerer's real ``steer`` on
the given activations and solves for the ``T`` whose mean displacement is the target, so paths
that bend, slow down or stop early (a margin) are matched too. :func:`resolve_T` is the one
place where a plan, a hook, the analysis functions or the evaluation turn ``strength=`` or
``T=`` into the native ``T`` a steerer runs with.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from jaxtyping import Float
from torch import Tensor

from lens_odesteer._validation import as_float_acts, check_finite_float, check_positive_int
from lens_odesteer.errors import InvalidParameterError, LensOdesteerError
from lens_odesteer.steerers.base import AbstractSteerer

__all__ = ["match_displacement", "mean_displacement", "resolve_T"]

_MAX_DOUBLINGS = 60


def mean_displacement(
    steerer: AbstractSteerer, acts: Float[Tensor, "*batch d_model"], T: float
) -> float:
    """Mean ``|steer(acts, T) - acts|`` over the rows of ``acts`` (computed in float64)."""
    out = steerer.steer(acts, T)
    return float((out.double() - acts.double()).norm(dim=-1).mean())


def match_displacement(
    steerers: Mapping[str, AbstractSteerer],
    acts: Float[Tensor, "*batch d_model"],
    strength: float,
    *,
    rtol: float = 1e-3,
    max_iter: int = 30,
) -> dict[str, float]:
    """Each steerer's native ``T`` at which it moves ``acts`` by ``strength`` of their norm.

    For every steerer, solves ``mean |steer(acts, T) - acts| = strength * mean |acts|`` on the
    real ``steer`` (bracketing from ``T_for(strength)``, then false position with bisection
    safeguards), to ``rtol`` relative error or ``max_iter`` evaluations.

    Args:
        steerers: fitted steerers by label.
        acts: the activations to move (e.g. held-out negatives at the hook).
        strength: mean displacement as a fraction of the mean activation norm (``>= 0``).
        rtol: relative tolerance on the displacement.
        max_iter: steer evaluations per steerer after bracketing.

    Returns:
        ``{label: T}``.

    Raises:
        InvalidParameterError: a negative or non-finite ``strength``, or a steerer that cannot
            move ``acts`` that far (bounded ``T``, a margin that stops every row, a vanishing
            field); the message gives the largest displacement it reached.

    Example:
        >>> import torch, lens_odesteer as lo
        >>> from lens_odesteer.steerers import match_displacement
        >>> pos, neg = torch.randn(64, 8) + 1, torch.randn(64, 8) - 1
        >>> fitted = {"CAA": lo.CAA().fit(pos, neg), "ITI": lo.ITI().fit(pos, neg)}
        >>> ts = match_displacement(fitted, neg, 0.2)
        >>> target = 0.2 * float(neg.norm(dim=-1).mean())
        >>> all(abs(lo.steerers.mean_displacement(fitted[k], neg, t) / target - 1) < 1e-3
        ...     for k, t in ts.items())
        True
    """
    strength = check_finite_float(strength, "strength", minimum=0.0)
    rtol = check_finite_float(rtol, "rtol", minimum=0.0, strict=True)
    max_iter = check_positive_int(max_iter, "max_iter")
    acts_t = as_float_acts(acts, "acts", min_rows=1)
    target = strength * float(acts_t.double().norm(dim=-1).mean())
    out: dict[str, float] = {}
    for label, steerer in steerers.items():
        if not isinstance(steerer, AbstractSteerer):
            raise InvalidParameterError(
                f"`steerers[{label!r}]` must be a fitted lens_odesteer steerer; got "
                f"{type(steerer).__name__}."
            )
        if target == 0.0:
            out[label] = 0.0
            continue

        def disp(T: float, s: AbstractSteerer = steerer) -> float:
            return mean_displacement(s, acts_t, T)

        first = _first_guess(steerer, acts_t, strength, target)
        out[label] = _solve(disp, target, first, steerer, label, strength, rtol, max_iter)
    return out


def _first_guess(steerer: AbstractSteerer, acts: Tensor, strength: float, target: float) -> float:
    try:
        return steerer.T_for(strength)
    except LensOdesteerError:
        pass  # no recorded norms (old file), or beyond max_T: estimate from the field here
    speed = float(steerer.vector_field(acts).double().norm(dim=-1).mean())
    guess = target / speed if speed > 0 else 1.0
    return guess if steerer.max_T is None else min(guess, steerer.max_T)


def _solve(
    disp: Callable[[float], float],
    target: float,
    first: float,
    steerer: AbstractSteerer,
    label: str,
    strength: float,
    rtol: float,
    max_iter: int,
) -> float:
    max_T = steerer.max_T
    lo_T, lo_f = 0.0, 0.0
    hi_T = first if first > 0 and math.isfinite(first) else 1.0
    if max_T is not None:
        hi_T = min(hi_T, max_T)
    hi_f = disp(hi_T)
    for _ in range(_MAX_DOUBLINGS):
        if hi_f >= target:
            break
        stuck = hi_f <= lo_f * (1 + 1e-9)
        at_cap = max_T is not None and hi_T >= max_T
        if at_cap or (stuck and lo_T > 0):
            raise InvalidParameterError(
                f"`{label}` ({steerer.name}) cannot move these activations by strength="
                f"{strength:g} (mean displacement {target:.4g}): the most it reached is "
                f"{hi_f:.4g} at T={hi_T:.4g}"
                + (f" (its largest T, {steerer.T_meaning})" if at_cap else "")
                + ". Lower `strength`."
            )
        lo_T, lo_f = hi_T, hi_f
        hi_T = hi_T * 2 if max_T is None else min(hi_T * 2, max_T)
        hi_f = disp(hi_T)
    else:
        raise InvalidParameterError(
            f"`{label}` ({steerer.name}) did not reach the displacement {target:.4g} by "
            f"T={hi_T:.4g}."
        )
    best_T, best_err = hi_T, abs(hi_f - target)
    same_side = 0
    last_side = 0
    for _ in range(max_iter):
        if best_err <= rtol * target:
            break
        if same_side >= 2 or hi_f == lo_f:  # false position stalls on one end: bisect
            T = (lo_T + hi_T) / 2
        else:
            T = lo_T + (target - lo_f) * (hi_T - lo_T) / (hi_f - lo_f)
            if not lo_T < T < hi_T:
                T = (lo_T + hi_T) / 2
        f = disp(T)
        if abs(f - target) < best_err:
            best_T, best_err = T, abs(f - target)
        side = -1 if f < target else 1
        same_side = same_side + 1 if side == last_side else 1
        last_side = side
        if side < 0:
            lo_T, lo_f = T, f
        else:
            hi_T, hi_f = T, f
    return float(best_T)


def resolve_T(steerer: AbstractSteerer, strength: object = None, T: object = None) -> float:
    """Return the native ``T`` for ``strength`` (norm-relative) or ``T`` (exactly one of them).

    Example:
        >>> import torch, lens_odesteer as lo
        >>> caa = lo.CAA().fit(torch.ones(4, 3) * 2, torch.zeros(4, 3))
        >>> resolve_T(caa, T=0.5), round(resolve_T(caa, strength=0.5), 4)
        (0.5, 0.25)
    """
    if (strength is None) == (T is None):
        raise InvalidParameterError(
            "Give exactly one of `strength` (the move as a fraction of the typical activation "
            f"norm at the hook, e.g. 0.1) or `T` (the method's native {steerer.T_meaning}); got "
            f"strength={strength!r}, T={T!r}."
        )
    if T is not None:
        value = check_finite_float(T, "T", minimum=0.0)
        max_T = steerer.max_T
        if max_T is not None and value > max_T:
            raise InvalidParameterError(
                f"`T` = {value} exceeds the largest {type(steerer).__name__} strength "
                f"(T = {max_T}, its {steerer.T_meaning}); lower it."
            )
        return value
    return float(steerer.T_for(check_finite_float(strength, "strength", minimum=0.0)))
