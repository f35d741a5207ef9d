"""The one place where a strength becomes a native ``T``: :func:`resolve_T`.

``strength`` is norm-relative (the move as a fraction of the typical activation norm at the
hook, recorded when the steerer was fitted; the same meaning for every method); ``T`` is each
method's native strength. The plan, the hook, the analysis functions and the evaluation suite
all resolve through here.
"""

from __future__ import annotations

from lens_odesteer._validation import check_finite_float
from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.steerers.base import AbstractSteerer

__all__ = ["resolve_T"]


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
