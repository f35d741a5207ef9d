"""Feature maps ``a -> phi(a)`` with analytic Jacobian-transpose products (pure torch)."""

from lens_odesteer.features.base import AbstractFeatureMap
from lens_odesteer.features.identity import IdentityFeatures
from lens_odesteer.features.rff import RandomFourierFeatures
from lens_odesteer.features.sketch import PolynomialSketch

__all__ = ["AbstractFeatureMap", "IdentityFeatures", "PolynomialSketch", "RandomFourierFeatures"]
