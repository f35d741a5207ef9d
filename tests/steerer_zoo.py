"""Small, fast configurations of every steerer, shared by the unit and property tests."""

from __future__ import annotations

from collections.abc import Callable

import lens_odesteer as lo
from lens_odesteer.flows import RK4, AdaptiveSteps, Dopri5
from lens_odesteer.steerers import (
    HPR,
    AngularSteering,
    MeanCentring,
    SphericalSteering,
    TruthFlow,
)

ALL_STEERERS: dict[str, Callable[[], lo.steerers.AbstractSteerer]] = {
    "ODESteer": lambda: lo.ODESteer(lo.sketch_barrier(n_components=256, gamma=1.0)),
    "ODESteer-rk4": lambda: lo.ODESteer(
        lo.sketch_barrier(n_components=256, gamma=1.0), solver=RK4(), steps=4
    ),
    "ODESteer-dopri5": lambda: lo.ODESteer(
        lo.sketch_barrier(n_components=256, gamma=1.0), solver=Dopri5(), steps=AdaptiveSteps()
    ),
    "StepODESteer": lambda: lo.StepODESteer(lo.sketch_barrier(n_components=256, gamma=1.0)),
    "RFFODESteer": lambda: lo.RFFODESteer(n_components=128),
    "RFFStepODESteer": lambda: lo.RFFStepODESteer(n_components=128),
    "ValueSteer": lambda: lo.ValueSteer(hidden=8, max_iter=50),
    "CAA": lambda: lo.CAA(),
    "ITI": lambda: lo.ITI(),
    "RepE": lambda: lo.RepE(),
    "LinAcT": lambda: lo.LinAcT(),
    "MiMiC": lambda: lo.MiMiC(),
    "MeanCentring": lambda: MeanCentring(),
    "HPR": lambda: HPR(hidden=8, max_iter=50),
    "AngularSteering": lambda: AngularSteering(),
    "AngularSteering-adaptive": lambda: AngularSteering(adaptive=True),
    "SphericalSteering": lambda: SphericalSteering(),
    "TruthFlow": lambda: TruthFlow(hidden=16, n_iter=150, steps=4),
    "TruthFlow-subspace": lambda: TruthFlow(
        hidden=16, n_iter=150, pairing="random", solver="rk4", steps=2, subspace_rank=3
    ),
}

#: Steerers that integrate a unit-norm barrier gradient.
UNIT_FIELD_STEERERS = ["ODESteer", "ODESteer-rk4", "StepODESteer", "RFFODESteer", "RFFStepODESteer"]
#: Steerers whose ``steer`` follows ``grad h`` of their own barrier.
BARRIER_FLOW_STEERERS = [*UNIT_FIELD_STEERERS, "ODESteer-dopri5", "ValueSteer"]
#: Steerers that rotate activations on their norm sphere (``|steer(a, T)| = |a|``).
NORM_PRESERVING_STEERERS = [
    "HPR",
    "AngularSteering",
    "AngularSteering-adaptive",
    "SphericalSteering",
]
