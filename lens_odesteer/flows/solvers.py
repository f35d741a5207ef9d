"""Explicit Runge-Kutta solvers: a Butcher tableau each, one step is ``y + dt * sum_i b_i k_i``.

A solver only knows how to take one step; :func:`lens_odesteer.flows.integrate` owns the loop,
the time grid, early stopping and saving. Solvers are frozen dataclasses without fields
(``Euler()``, ``Midpoint()``, ``Heun()``, ``RK4()``, ``Dopri5()``), so two instances of the same
solver compare equal; their tableaux are class constants.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from lens_odesteer._component import register_config
from lens_odesteer.errors import InvalidParameterError

Field = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class ExplicitRK:
    """An explicit Runge-Kutta method given by its tableau.

    Attributes:
        name: short name (``"euler"``, ``"midpoint"``, ``"heun"``, ``"rk4"``, ``"dopri5"``).
        order: order of accuracy of the propagated solution.
        a: strictly lower-triangular stage coefficients, row ``i`` has ``i`` entries.
        b: weights of the propagated solution.
        b_err: weights of the embedded lower-order solution (adaptive solvers only).
    """

    name: str
    order: int
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    b_err: tuple[float, ...] | None = None

    @property
    def n_stages(self) -> int:
        """Field evaluations per step (for FSAL tableaux, one fewer can be reused)."""
        return len(self.b)

    @property
    def adaptive(self) -> bool:
        """True when the tableau carries an embedded error estimate."""
        return self.b_err is not None

    def stages(self, field: Field, y: Tensor, dt: Tensor, k1: Tensor) -> list[Tensor]:
        """Return all stage derivatives ``k_i`` given ``k1 = field(y)``; ``dt`` broadcasts."""
        ks = [k1]
        for row in self.a[1:]:
            inc = sum((c * k for c, k in zip(row, ks, strict=False) if c != 0.0), y.new_zeros(()))
            ks.append(field(y + dt * inc))
        return ks

    def combine(
        self, y: Tensor, dt: Tensor, ks: list[Tensor], weights: tuple[float, ...]
    ) -> Tensor:
        """``y + dt * sum_i w_i k_i``."""
        inc = ks[0] * weights[0]
        for w, k in zip(weights[1:], ks[1:], strict=True):
            if w != 0.0:
                inc = inc + w * k
        return y + dt * inc


EULER_TABLEAU = ExplicitRK("euler", 1, ((),), (1.0,))
MIDPOINT_TABLEAU = ExplicitRK("midpoint", 2, ((), (0.5,)), (0.0, 1.0))
HEUN_TABLEAU = ExplicitRK("heun", 2, ((), (1.0,)), (0.5, 0.5))
RK4_TABLEAU = ExplicitRK(
    "rk4", 4, ((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)), (1 / 6, 1 / 3, 1 / 3, 1 / 6)
)
# Dormand & Prince (1980) 5(4) pair; b is the 5th-order solution, b_err the 4th-order one.
DOPRI5_TABLEAU = ExplicitRK(
    "dopri5",
    5,
    (
        (),
        (1 / 5,),
        (3 / 40, 9 / 40),
        (44 / 45, -56 / 15, 32 / 9),
        (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
        (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
        (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
    ),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0),
    (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40),
)


@dataclass(frozen=True)
class AbstractSolver:
    """An explicit Runge-Kutta solver; concrete solvers only name their tableau.

    ``adaptive`` solvers carry an embedded error estimate and need a step-size controller
    (:class:`~lens_odesteer.flows.AdaptiveSteps`); the others take a fixed number of steps.
    """

    tableau: ClassVar[ExplicitRK]

    def __post_init__(self) -> None:
        if not isinstance(getattr(type(self), "tableau", None), ExplicitRK):
            raise TypeError(
                f"{type(self).__name__} has no `tableau`; use a concrete solver (Euler(), "
                "Midpoint(), Heun(), RK4(), Dopri5()) or give a subclass a ClassVar "
                "`tableau: ExplicitRK`."
            )

    @property
    def name(self) -> str:
        """The solver's short name, as accepted by :func:`get_solver`."""
        return self.tableau.name

    @property
    def order(self) -> int:
        """Order of accuracy of the propagated solution."""
        return self.tableau.order

    @property
    def adaptive(self) -> bool:
        """True for solvers with an embedded error estimate (step size chosen per row)."""
        return self.tableau.adaptive


@register_config
@dataclass(frozen=True)
class Euler(AbstractSolver):
    """Explicit Euler, order 1: ``y + dt v(y)`` (ODESteer's default)."""

    tableau: ClassVar[ExplicitRK] = EULER_TABLEAU


@register_config
@dataclass(frozen=True)
class Midpoint(AbstractSolver):
    """Explicit midpoint rule, order 2."""

    tableau: ClassVar[ExplicitRK] = MIDPOINT_TABLEAU


@register_config
@dataclass(frozen=True)
class Heun(AbstractSolver):
    """Heun's method (explicit trapezoid), order 2."""

    tableau: ClassVar[ExplicitRK] = HEUN_TABLEAU


@register_config
@dataclass(frozen=True)
class RK4(AbstractSolver):
    """The classical fourth-order Runge-Kutta method."""

    tableau: ClassVar[ExplicitRK] = RK4_TABLEAU


@register_config
@dataclass(frozen=True)
class Dopri5(AbstractSolver):
    """Dormand-Prince 5(4), adaptive: use it with ``steps=AdaptiveSteps(...)``."""

    tableau: ClassVar[ExplicitRK] = DOPRI5_TABLEAU


#: Every solver by name.
SOLVERS: dict[str, AbstractSolver] = {
    s.name: s for s in (Euler(), Midpoint(), Heun(), RK4(), Dopri5())
}


def get_solver(solver: str | AbstractSolver) -> AbstractSolver:
    """Return the solver named ``solver`` (or ``solver`` itself); raise listing valid names.

    Example:
        >>> from lens_odesteer.flows import get_solver
        >>> get_solver("rk4"), get_solver("rk4").order
        (RK4(), 4)
    """
    if isinstance(solver, AbstractSolver):
        return solver
    if isinstance(solver, str) and solver in SOLVERS:
        return SOLVERS[solver]
    names = ", ".join(repr(n) for n in SOLVERS)
    raise InvalidParameterError(
        f"Unknown solver {solver!r}. Expected one of: {names}, or a solver object such as "
        "`Euler()` or `RK4()` from lens_odesteer.flows."
    )
