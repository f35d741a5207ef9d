"""Generic ODE machinery: solvers, step control, saving, stop events, ``integrate``.

Knows nothing about barriers or steerers; a field is any ``[batch, d] -> [batch, d]`` callable.
"""

from lens_odesteer.flows.control import AdaptiveSteps, StopEvent
from lens_odesteer.flows.integrate import MonitoredField, integrate
from lens_odesteer.flows.save import SaveAt
from lens_odesteer.flows.solvers import (
    RK4,
    SOLVERS,
    AbstractSolver,
    Dopri5,
    Euler,
    ExplicitRK,
    Heun,
    Midpoint,
    get_solver,
)
from lens_odesteer.flows.trajectory import Trajectory

__all__ = [
    "RK4",
    "SOLVERS",
    "AbstractSolver",
    "AdaptiveSteps",
    "Dopri5",
    "Euler",
    "ExplicitRK",
    "Heun",
    "Midpoint",
    "MonitoredField",
    "SaveAt",
    "StopEvent",
    "Trajectory",
    "get_solver",
    "integrate",
]
