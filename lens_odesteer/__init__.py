"""lens_odesteer: ODE-based activation steering (ODESteer) for TransformerLens models.

Example:
    >>> import torch, lens_odesteer as lo
    >>> pos, neg = torch.randn(32, 576) + 0.3, torch.randn(32, 576) - 0.3
    >>> lo.ODESteer(n_components=1024).fit(pos, neg).steer(neg[:4], T=5.0).shape
    torch.Size([4, 576])
"""

from lens_odesteer._version import __version__
from lens_odesteer.barriers import (
    AbstractBarrier,
    KernelLogisticBarrier,
    LinearBarrier,
    MLPValueBarrier,
)
from lens_odesteer.errors import (
    FileFormatError,
    HookNameError,
    IntegrationError,
    InvalidActivationsError,
    InvalidParameterError,
    LensOdesteerError,
    NotFittedError,
    ShapeMismatchError,
)
from lens_odesteer.features import (
    AbstractFeatureMap,
    IdentityFeatures,
    PolynomialSketch,
    RandomFourierFeatures,
)
from lens_odesteer.flows import Trajectory, integrate
from lens_odesteer.io import load_steerer, read_header, save_steerer
from lens_odesteer.steerers import (
    CAA,
    ITI,
    AbstractSteerer,
    LinAcT,
    MiMiC,
    ODESteer,
    RepE,
    RFFODESteer,
    RFFStepODESteer,
    StepODESteer,
    ValueSteer,
)

__all__ = [
    "CAA",
    "ITI",
    "AbstractBarrier",
    "AbstractFeatureMap",
    "AbstractSteerer",
    "FileFormatError",
    "HookNameError",
    "IdentityFeatures",
    "IntegrationError",
    "InvalidActivationsError",
    "InvalidParameterError",
    "KernelLogisticBarrier",
    "LensOdesteerError",
    "LinAcT",
    "LinearBarrier",
    "MLPValueBarrier",
    "MiMiC",
    "NotFittedError",
    "ODESteer",
    "PolynomialSketch",
    "RFFODESteer",
    "RFFStepODESteer",
    "RandomFourierFeatures",
    "RepE",
    "ShapeMismatchError",
    "StepODESteer",
    "Trajectory",
    "ValueSteer",
    "__version__",
    "integrate",
    "load_steerer",
    "read_header",
    "save_steerer",
]
