"""How far each step goes and when a row stops: :class:`AdaptiveSteps` and the stop protocol.

A fixed-step solver takes ``steps: int`` equal steps; an adaptive one takes an
:class:`AdaptiveSteps` controller. A *stop event* is any callable
``(y, value) -> Bool[Tensor, " batch"]`` evaluated on the active rows at the start of every
step: ``y`` are their states and ``value`` the field's monitored value there (see
:class:`~lens_odesteer.flows.MonitoredField`; None when the field monitors nothing). Rows for
which it returns True are frozen: they keep their state, cost no further field evaluations, and
the batch keeps its shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from lens_odesteer._component import register_config
from lens_odesteer.errors import InvalidParameterError

#: ``(y, value) -> mask``: True for the rows that stop before taking this step (``y`` the
#: active rows' states ``[batch, d]``, ``value`` the monitored value ``[batch]`` or None).
StopEvent = Callable[[Tensor, "Tensor | None"], Tensor]


@register_config
@dataclass(frozen=True)
class AdaptiveSteps:
    """Per-row error control for an adaptive solver (``Dopri5()``).

    Each row keeps its own step size; a step is accepted when the RMS of the embedded error
    estimate, scaled by ``atol + rtol * |y|``, is at most 1.

    Example:
        >>> from lens_odesteer.flows import AdaptiveSteps
        >>> AdaptiveSteps(rtol=1e-6).max_steps
        10000
        >>> AdaptiveSteps(rtol=0.0, atol=0.0)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lens_odesteer.errors.InvalidParameterError: `rtol` and `atol` cannot both be 0: ...
    """

    rtol: float = 1e-5
    """Relative tolerance (per row, RMS norm)."""
    atol: float = 1e-5
    """Absolute tolerance."""
    max_steps: int = 10_000
    """Step budget per row; exceeding it raises :class:`~lens_odesteer.errors.IntegrationError`."""
    initial_steps: int = 10
    """The first step is ``T / initial_steps``."""
    min_step: float | None = None
    """Steps this short are accepted whatever their error (default ``T * 1e-3``). A normalised
    gradient field is discontinuous at a maximum of its potential; without a floor the error
    control would shrink steps there forever."""
    hold_on_reversal: bool | None = None
    """Hold a row still once its field points against the field of its previous accepted step
    (for a normalised gradient flow: the row reached a maximum, where the flow ends). None lets
    the caller decide (a barrier steerer uses its ``normalize``); ``integrate`` reads it as
    False."""

    def __post_init__(self) -> None:
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if (
                not isinstance(value, (int, float))
                or isinstance(value, bool)
                or not math.isfinite(value)
                or value < 0
            ):
                raise InvalidParameterError(f"`{name}` must be a finite float >= 0; got {value!r}.")
        if self.rtol == 0 and self.atol == 0:
            raise InvalidParameterError(
                "`rtol` and `atol` cannot both be 0: the error test could never pass. "
                "Set one of them > 0."
            )
        for name in ("max_steps", "initial_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidParameterError(f"`{name}` must be an int >= 1; got {value!r}.")
        if self.min_step is not None and (
            not isinstance(self.min_step, (int, float))
            or isinstance(self.min_step, bool)
            or not math.isfinite(self.min_step)
            or self.min_step < 0
        ):
            raise InvalidParameterError(
                f"`min_step` must be None or a finite float >= 0; got {self.min_step!r}."
            )
        if self.hold_on_reversal is not None and not isinstance(self.hold_on_reversal, bool):
            raise InvalidParameterError(
                f"`hold_on_reversal` must be None, True or False; got {self.hold_on_reversal!r}."
            )
