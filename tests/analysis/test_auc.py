"""The one AUC of the library: rank-sum with ties, numpy and torch inputs, clear errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from lens_odesteer.analysis import binary_auc
from lens_odesteer.analysis.auc import has_both_classes
from lens_odesteer.errors import InvalidParameterError, ShapeMismatchError


def test_binary_auc_equals_pair_counting_with_ties() -> None:
    gen = torch.Generator().manual_seed(0)
    scores = torch.round(torch.randn(50, generator=gen) * 2) / 2  # many ties
    labels = torch.rand(50, generator=gen) < 0.4
    pos, neg = scores[labels].tolist(), scores[~labels].tolist()
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p, q in itertools.product(pos, neg))
    assert binary_auc(scores, labels) == pytest.approx(wins / (len(pos) * len(neg)))
    assert binary_auc(-scores, labels) == pytest.approx(1 - wins / (len(pos) * len(neg)))


def test_binary_auc_takes_numpy_and_01_labels_alike() -> None:
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    assert binary_auc(scores, np.array([0, 0, 1, 1])) == 0.75
    assert binary_auc(torch.tensor(scores), torch.tensor([False, False, True, True])) == 0.75


def test_binary_auc_rejects_one_class_and_bad_labels() -> None:
    scores = torch.arange(4.0)
    assert not has_both_classes(torch.ones(4, dtype=torch.bool))
    with pytest.raises(InvalidParameterError, match="4 positive and 0 negative"):
        binary_auc(scores, torch.ones(4, dtype=torch.bool))
    # Our checks, or beartype's under the test suite's import hook (shapes are annotated).
    with pytest.raises((InvalidParameterError, TypeError)):
        binary_auc(scores, np.array([0.0, 0.5, 1.0, 1.0]))
    with pytest.raises((ShapeMismatchError, TypeError)):
        binary_auc(scores, np.array([0, 1]))


def test_old_evaluation_auc_name_warns_and_points_to_binary_auc() -> None:
    import lens_odesteer.evaluation.layers as layers

    with pytest.warns(DeprecationWarning, match="binary_auc"):
        old = layers.auc
    assert old is binary_auc
