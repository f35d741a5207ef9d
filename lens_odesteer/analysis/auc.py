"""Area under the ROC curve: the only AUC in the library.

The barrier search, the nonlinearity diagnostic and the evaluation layer sweep all score
barriers with :func:`binary_auc`; do not compute an AUC anywhere else.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Bool, Float, Int
from torch import Tensor

from lens_odesteer.errors import InvalidParameterError, ShapeMismatchError

__all__ = ["binary_auc", "has_both_classes"]

Scores = Float[Tensor, " n"] | Float[np.ndarray, " n"]
Labels = Bool[Tensor, " n"] | Int[Tensor, " n"] | Bool[np.ndarray, " n"] | Int[np.ndarray, " n"]


def _as_numpy(values: object) -> np.ndarray:
    if isinstance(values, Tensor):
        return values.detach().cpu().numpy().reshape(-1)
    return np.asarray(values).reshape(-1)


def _as_bool_labels(labels: object) -> np.ndarray:
    y = _as_numpy(labels)
    if y.dtype != bool:
        if y.dtype.kind not in "iu" or not np.isin(y, (0, 1)).all():
            raise InvalidParameterError(
                f"`labels` must be bool or 0/1 integers (1 = positive); got dtype {y.dtype} with "
                f"values {np.unique(y)[:6].tolist()}."
            )
        y = y.astype(bool)
    return y


def has_both_classes(labels: Labels) -> bool:
    """Whether ``labels`` holds at least one positive and one negative, so an AUC exists.

    Example:
        >>> import torch
        >>> has_both_classes(torch.tensor([True, False])), has_both_classes(torch.tensor([1, 1]))
        (True, False)
    """
    y = _as_bool_labels(labels)
    return bool(y.any()) and not bool(y.all())


def binary_auc(scores: Scores, labels: Labels) -> float:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (ties count one half).

    Computed from the Mann-Whitney rank sum with average ranks for ties, in float64: the
    probability that a random positive scores above a random negative.

    Args:
        scores: one score per row (a tensor or an array; flattened).
        labels: one bool or 0/1 label per row, 1 = positive.

    Raises:
        InvalidParameterError: labels that are not bool/0-1, or that hold one class only (the AUC
            is undefined; check with :func:`has_both_classes` first when that can happen).
        ShapeMismatchError: ``scores`` and ``labels`` of different lengths.

    Example:
        >>> import numpy as np, torch
        >>> binary_auc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
        0.75
        >>> binary_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
        0.75
    """
    s = _as_numpy(scores).astype(np.float64)
    y = _as_bool_labels(labels)
    if s.shape != y.shape:
        raise ShapeMismatchError(
            f"`scores` has {s.size} values but `labels` has {y.size}; give one label per score."
        )
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise InvalidParameterError(
            f"The AUC needs at least one positive and one negative label; got {n_pos} positive "
            f"and {n_neg} negative. Score rows of both classes (e.g. a larger held-out split)."
        )
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    average_rank = ends - (counts - 1) / 2.0  # 1-based mean rank of each tied block
    ranks = average_rank[inverse]
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
