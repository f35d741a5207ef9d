"""What an integration records: :class:`SaveAt`, validated when built (modelled on diffrax)."""

from __future__ import annotations

from dataclasses import dataclass

from lens_odesteer._component import register_config
from lens_odesteer.errors import InvalidParameterError


@register_config
@dataclass(frozen=True)
class SaveAt:
    """Which states :func:`~lens_odesteer.flows.integrate` keeps; ``0`` and ``T`` always.

    ``SaveAt()`` keeps the start and the end; ``SaveAt(steps=True)`` every step of a fixed-step
    solver; ``SaveAt(n=k)`` ``k`` equally spaced times from ``0`` to ``T`` (the adaptive solver
    steps exactly onto each; a fixed-step solver needs ``k - 1`` to divide its step count).

    Example:
        >>> from lens_odesteer.flows import SaveAt
        >>> SaveAt(n=5)
        SaveAt(steps=False, n=5)
        >>> SaveAt(steps=True, n=5)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lens_odesteer.errors.InvalidParameterError: `SaveAt` takes `steps=True` or `n`, not both...
    """

    steps: bool = False
    """Save after every step (fixed-step solvers only: adaptive rows take different steps)."""
    n: int | None = None
    """Save at ``n >= 2`` equally spaced times including ``0`` and ``T``."""

    def __post_init__(self) -> None:
        if not isinstance(self.steps, bool):
            raise InvalidParameterError(
                f"`SaveAt.steps` must be True or False; got {self.steps!r}."
            )
        if self.n is not None:
            if self.steps:
                raise InvalidParameterError(
                    f"`SaveAt` takes `steps=True` or `n`, not both; got steps=True, n={self.n}."
                )
            if not isinstance(self.n, int) or isinstance(self.n, bool) or self.n < 2:
                raise InvalidParameterError(
                    f"`SaveAt.n` must be an int >= 2 (it includes 0 and T); got {self.n!r}."
                )
