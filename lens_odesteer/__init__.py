"""lens_odesteer: ODE-based activation steering (ODESteer) for TransformerLens models."""

from lens_odesteer._version import __version__

__all__ = ["__version__"]
