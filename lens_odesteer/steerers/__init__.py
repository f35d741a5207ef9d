"""Steerers: ODESteer and its family behind one fitted-estimator interface."""

from lens_odesteer.steerers.base import AbstractSteerer
from lens_odesteer.steerers.flow import (
    BarrierField,
    ODESteer,
    RFFODESteer,
    RFFStepODESteer,
    StepODESteer,
    ValueSteer,
)
from lens_odesteer.steerers.linear import CAA, ITI, RepE
from lens_odesteer.steerers.transport import LinAcT, MiMiC

__all__ = [
    "CAA",
    "ITI",
    "AbstractSteerer",
    "BarrierField",
    "LinAcT",
    "MiMiC",
    "ODESteer",
    "RFFODESteer",
    "RFFStepODESteer",
    "RepE",
    "StepODESteer",
    "ValueSteer",
]
