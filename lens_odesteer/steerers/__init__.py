"""Steerers: ODESteer and its family behind one fitted-estimator interface.

:class:`ODESteer` is composed from a barrier, a solver, steps and a stop event; the paper's
variants (:func:`StepODESteer`, :func:`RFFODESteer`, :func:`RFFStepODESteer`,
:func:`ValueSteer`) are presets returning configured ODESteer instances. The baselines
(:class:`CAA`, :class:`MeanCentring`, :class:`ITI`, :class:`RepE`, :class:`LinAcT`, :class:`MiMiC`)
and today's rivals (the norm-preserving rotations :class:`HPR`, :class:`AngularSteering` and
:class:`SphericalSteering`, and the flow-matched :class:`TruthFlow`) share the same interface.
"""

from lens_odesteer.barriers.builders import rff_barrier, sketch_barrier, value_barrier
from lens_odesteer.steerers.base import AbstractSteerer
from lens_odesteer.steerers.field import BarrierField, BarrierMargin
from lens_odesteer.steerers.flow_matching import TruthFlow
from lens_odesteer.steerers.householder import HPR
from lens_odesteer.steerers.linear import CAA, ITI, MeanCentring, RepE
from lens_odesteer.steerers.odesteer import ODESteer
from lens_odesteer.steerers.presets import RFFODESteer, RFFStepODESteer, StepODESteer, ValueSteer
from lens_odesteer.steerers.rotation import AngularSteering, SphericalSteering
from lens_odesteer.steerers.strength import match_displacement, mean_displacement
from lens_odesteer.steerers.transport import LinAcT, MiMiC

__all__ = [
    "CAA",
    "HPR",
    "ITI",
    "AbstractSteerer",
    "AngularSteering",
    "BarrierField",
    "BarrierMargin",
    "LinAcT",
    "MeanCentring",
    "MiMiC",
    "ODESteer",
    "RFFODESteer",
    "RFFStepODESteer",
    "RepE",
    "SphericalSteering",
    "StepODESteer",
    "TruthFlow",
    "ValueSteer",
    "match_displacement",
    "mean_displacement",
    "rff_barrier",
    "sketch_barrier",
    "value_barrier",
]
