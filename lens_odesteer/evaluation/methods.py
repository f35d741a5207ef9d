"""The methods an evaluation compares, by name, each built at its defaults.

``"none"`` is the unsteered model. ``"ODESteer-margin"`` is ODESteer with barrier early
stopping (``margin=0``: a row stops as soon as ``h >= 0``, rows already there are untouched).
:data:`ONE_STEP` lists the one-step baselines that ODESteer's headline comparison is against.

Example:
    >>> make_steerer("ODESteer-margin").margin
    0.0
    >>> make_steerer("none") is None
    True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.steerers import (
    CAA,
    ITI,
    AbstractSteerer,
    LinAcT,
    MiMiC,
    ODESteer,
    RepE,
    RFFODESteer,
    StepODESteer,
    ValueSteer,
)

__all__ = ["ALL_METHODS", "MAX_T", "ONE_STEP", "make_steerer", "parse_methods"]

_FACTORIES: dict[str, Callable[[], AbstractSteerer] | None] = {
    "none": None,
    "CAA": CAA,
    "ITI": ITI,
    "RepE": RepE,
    "LinAcT": LinAcT,
    "MiMiC": MiMiC,
    "StepODESteer": StepODESteer,
    "ODESteer": ODESteer,
    "RFFODESteer": RFFODESteer,
    "ValueSteer": ValueSteer,
    "ODESteer-margin": lambda: ODESteer(margin=0.0),
}

#: Every method name, in reporting order.
ALL_METHODS: tuple[str, ...] = tuple(_FACTORIES)

#: One-step baselines (one explicit step ``a + T v(a)``), the comparison set for ODESteer.
ONE_STEP: tuple[str, ...] = ("CAA", "ITI", "RepE", "LinAcT", "MiMiC", "StepODESteer")

#: Largest strength a method accepts in strength searches (None: unbounded). LinAcT and MiMiC
#: interpolate from the identity (0) to their full transport map (1). Steerers with a margin are
#: capped at the mean residual norm by the runner.
MAX_T: dict[str, float | None] = {"LinAcT": 1.0, "MiMiC": 1.0}


def make_steerer(name: str) -> AbstractSteerer | None:
    """Return an unfitted steerer for ``name`` at its defaults (None for ``"none"``)."""
    if name not in _FACTORIES:
        raise InvalidParameterError(
            f"Unknown method {name!r}. Expected one of: {', '.join(ALL_METHODS)}."
        )
    factory = _FACTORIES[name]
    return None if factory is None else factory()


def parse_methods(methods: Sequence[str] | str | None) -> list[str]:
    """Validate method names (comma-separated string or list); ``"none"`` always comes first.

    Example:
        >>> parse_methods("ODESteer,CAA")
        ['none', 'ODESteer', 'CAA']
    """
    if methods is None:
        return list(ALL_METHODS)
    items = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else list(methods)
    items = [m for m in items if m]
    if not items:
        raise InvalidParameterError("`methods` is empty; name at least one method.")
    for m in items:
        if m not in _FACTORIES:
            raise InvalidParameterError(
                f"Unknown method {m!r}. Expected one of: {', '.join(ALL_METHODS)}."
            )
    rest = [m for m in dict.fromkeys(items) if m != "none"]
    return ["none", *rest]
