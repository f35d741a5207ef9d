"""The median pairwise distance of a set of rows: the only copy in the library.

It sets kernel length scales: the ``"median"`` bandwidth of
:class:`~lens_odesteer.features.RandomFourierFeatures` and the bandwidth grid of the barrier
search. Both need a positive scale, so when the rows are not apart at all the function returns
``1.0`` (see :func:`median_pairwise_distance`); do not write a second median-of-``cdist``.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

__all__ = ["median_pairwise_distance"]

#: Returned when no two rows are apart: fewer than two rows, or all rows equal.
FALLBACK_SCALE = 1.0


def median_pairwise_distance(
    x: Float[Tensor, "n_samples d"],
    *,
    max_rows: int = 2000,
    generator: torch.Generator | None = None,
) -> float:
    """Median Euclidean distance over all pairs of distinct rows of ``x``, in float64.

    Args:
        x: the rows.
        max_rows: above this many rows, a random subset of ``max_rows`` rows is used (drawn
            with ``torch.randperm(n, generator=generator)``, so a seeded generator makes the
            result reproducible; the generator's state advances).
        generator: source of that subset; None uses a generator seeded with 0.

    Returns:
        The median distance, or ``1.0`` when it is not positive (fewer than two rows, or every
        pair at distance 0). The value is used as a length scale, where 0 would divide by
        zero; with identical rows every bandwidth gives the same flat kernel, so 1.0 loses
        nothing.

    Example:
        >>> median_pairwise_distance(torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]]))
        5.0
        >>> median_pairwise_distance(torch.ones(4, 3))
        1.0
    """
    n = x.shape[0]
    if n > max_rows:
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        x = x[torch.randperm(n, generator=gen)[:max_rows].to(x.device)]
    x = x.double()
    dist = torch.cdist(x, x)
    iu = torch.triu_indices(x.shape[0], x.shape[0], offset=1, device=x.device)
    values = dist[iu[0], iu[1]]
    if values.numel() == 0:
        return FALLBACK_SCALE
    median = float(values.median())
    return median if median > 0 else FALLBACK_SCALE
