"""Generic ODE machinery: explicit Runge-Kutta solvers, ``integrate`` and ``Trajectory``."""

from lens_odesteer.flows.integrate import MonitoredField, integrate
from lens_odesteer.flows.solvers import (
    DOPRI5,
    EULER,
    HEUN,
    MIDPOINT,
    RK4,
    SOLVERS,
    ExplicitRK,
    get_solver,
)
from lens_odesteer.flows.trajectory import Trajectory

__all__ = [
    "DOPRI5",
    "EULER",
    "HEUN",
    "MIDPOINT",
    "RK4",
    "SOLVERS",
    "ExplicitRK",
    "MonitoredField",
    "Trajectory",
    "get_solver",
    "integrate",
]
