"""Unfitted barriers in one call, so a steerer never needs nested constructors.

Each builder returns a template for :class:`~lens_odesteer.steerers.ODESteer`'s ``barrier``
argument; the steerer copies and fits it. The arguments are the ones the paper's ablations vary.
"""

from __future__ import annotations

from lens_odesteer.barriers.kernel import KernelLogisticBarrier
from lens_odesteer.barriers.value import MLPValueBarrier
from lens_odesteer.features.rff import RandomFourierFeatures
from lens_odesteer.features.sketch import PolynomialSketch

__all__ = ["rff_barrier", "sketch_barrier", "value_barrier"]


def sketch_barrier(
    n_components: int = 8000,
    degree: int = 2,
    gamma: float = 0.1,
    coef0: float = 1.0,
    C: float = 1.0,
    seed: int = 0,
    max_iter: int = 1000,
    tol: float = 1e-4,
) -> KernelLogisticBarrier:
    """ODESteer's barrier: logistic regression on the normalised polynomial TensorSketch.

    Defaults are the paper's (n = 8000, degree 2, gamma 0.1, coef0 1, C = 1).

    Args:
        n_components, degree, gamma, coef0, seed: the sketch (see
            :class:`~lens_odesteer.features.PolynomialSketch`).
        C: inverse L2 strength of the logistic regression.
        max_iter, tol: L-BFGS settings.

    Example:
        >>> from lens_odesteer.barriers import sketch_barrier
        >>> sketch_barrier(n_components=256)
        KernelLogisticBarrier(features=PolynomialSketch(n_components=256))
    """
    sketch = PolynomialSketch(
        n_components=n_components, degree=degree, gamma=gamma, coef0=coef0, seed=seed
    )
    return KernelLogisticBarrier(sketch, C=C, max_iter=max_iter, tol=tol)


def rff_barrier(
    n_components: int = 8000,
    bandwidth: float | str = "median",
    C: float = 1.0,
    seed: int = 0,
    max_iter: int = 1000,
    tol: float = 1e-4,
) -> KernelLogisticBarrier:
    """The paper's RFF ablation: logistic regression on Gaussian random Fourier features.

    Args:
        n_components: number of random features.
        bandwidth: ``"median"`` (median pairwise distance of the fit data / sqrt 2) or a float.
        C, seed, max_iter, tol: as :func:`sketch_barrier`.

    Example:
        >>> from lens_odesteer.barriers import rff_barrier
        >>> rff_barrier(n_components=128, bandwidth=2.0)
        KernelLogisticBarrier(features=RandomFourierFeatures(n_components=128, bandwidth=2.0))
    """
    rff = RandomFourierFeatures(n_components=n_components, bandwidth=bandwidth, seed=seed)
    return KernelLogisticBarrier(rff, C=C, max_iter=max_iter, tol=tol)


def value_barrier(
    hidden: int = 64, weight_decay: float = 1e-3, seed: int = 0, max_iter: int = 300
) -> MLPValueBarrier:
    """A learned value network (RE-Control style): an unfitted :class:`MLPValueBarrier`.

    Example:
        >>> from lens_odesteer.barriers import value_barrier
        >>> value_barrier(hidden=16)
        MLPValueBarrier(hidden=16)
    """
    return MLPValueBarrier(hidden=hidden, weight_decay=weight_decay, max_iter=max_iter, seed=seed)
