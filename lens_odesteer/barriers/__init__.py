"""Barriers ``h(a)`` (log density ratios) with exact analytic gradients (pure torch)."""

from lens_odesteer.barriers.base import AbstractBarrier
from lens_odesteer.barriers.builders import rff_barrier, sketch_barrier, value_barrier
from lens_odesteer.barriers.kernel import KernelLogisticBarrier, LinearBarrier
from lens_odesteer.barriers.logistic import LogisticFit, fit_logistic
from lens_odesteer.barriers.value import MLPValueBarrier

__all__ = [
    "AbstractBarrier",
    "KernelLogisticBarrier",
    "LinearBarrier",
    "LogisticFit",
    "MLPValueBarrier",
    "fit_logistic",
    "rff_barrier",
    "sketch_barrier",
    "value_barrier",
]
