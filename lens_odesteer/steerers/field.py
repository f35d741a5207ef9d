"""The velocity of a barrier flow and the barrier's stop event.

:class:`BarrierField` turns a fitted barrier into the field ODESteer integrates and *monitors*
the barrier along the way (:class:`~lens_odesteer.flows.MonitoredField`); :class:`BarrierMargin`
is the stop event that reads that value. The flows package sees only a field and a callable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from jaxtyping import Bool, Float
from torch import Tensor

from lens_odesteer._component import register_config
from lens_odesteer.barriers.base import AbstractBarrier
from lens_odesteer.errors import InvalidParameterError


class BarrierField:
    """The velocity of a barrier flow: ``grad h / max(|grad h|, min_grad_norm)`` or ``grad h``.

    A row whose gradient vanishes gets a vanishing velocity (never NaN), so it stays put. The
    monitored value is the barrier ``h`` itself.
    """

    def __init__(self, barrier: AbstractBarrier, normalize: bool, min_grad_norm: float) -> None:
        self.barrier = barrier
        self.normalize = normalize
        self.min_grad_norm = min_grad_norm

    def velocity_and_value(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(v(y), h(y))`` from one barrier evaluation."""
        h, g = self.barrier._value_and_grad(y)
        if self.normalize:
            g = g / g.norm(dim=-1, keepdim=True).clamp_min(self.min_grad_norm)
        return g, h

    def __call__(self, y: Tensor) -> Tensor:
        return self.velocity_and_value(y)[0]


@register_config
@dataclass(frozen=True)
class BarrierMargin:
    """Stop event: freeze a row once its barrier reaches ``margin`` (``h >= margin``).

    Checked at the start of every step, so rows that start in ``{h >= margin}`` are never moved:
    minimal intervention, or conditional steering for free. Use it as ``ODESteer(stop=...)``.

    Example:
        >>> import torch, lens_odesteer as lo
        >>> from lens_odesteer.steerers import BarrierMargin
        >>> pos, neg = torch.randn(32, 8) + 1, torch.randn(32, 8) - 1
        >>> s = lo.ODESteer(lo.sketch_barrier(n_components=128), stop=BarrierMargin(0.0))
        >>> s = s.fit(pos, neg)
        >>> inside = pos[s.barrier_value(pos) >= 0]
        >>> bool(torch.equal(s.steer(inside, 3.0), inside))
        True
    """

    margin: float = 0.0
    """The barrier level at which a row stops."""

    def __post_init__(self) -> None:
        m = self.margin
        if not isinstance(m, (int, float)) or isinstance(m, bool) or not math.isfinite(m):
            raise InvalidParameterError(f"`margin` must be a finite number; got {m!r}.")

    def __call__(
        self, y: Float[Tensor, "batch d"], value: Float[Tensor, " batch"] | None
    ) -> Bool[Tensor, " batch"]:
        if value is None:
            raise InvalidParameterError(
                "BarrierMargin needs the barrier value along the path; use it as an ODESteer "
                "`stop`, or pass `integrate` a field with `velocity_and_value`."
            )
        return value >= self.margin
