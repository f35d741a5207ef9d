"""Held-out splits by group (lens_odesteer._splits), the one splitter of the library."""

from __future__ import annotations

import pytest
import torch

from lens_odesteer._splits import (
    fold_groups,
    paired_groups,
    split_contrast,
    split_groups,
    subsample_groups,
)
from lens_odesteer.analysis import BarrierCandidate, search_barrier
from lens_odesteer.barriers import LinearBarrier
from lens_odesteer.errors import InvalidParameterError, ShapeMismatchError

GROUPS = [f"q{i // 3}" for i in range(30)]  # 10 groups of 3 rows


def test_split_groups_is_seeded_disjoint_and_complete() -> None:
    fit, test = split_groups(GROUPS, 0.3, seed=5)
    assert (fit, test) == split_groups(GROUPS, 0.3, seed=5)
    assert sorted(fit + test) == list(range(30)) and fit == sorted(fit) and test == sorted(test)
    assert not {GROUPS[i] for i in fit} & {GROUPS[i] for i in test}
    assert len({GROUPS[i] for i in test}) == 3
    assert len({tuple(split_groups(GROUPS, 0.3, seed=s)[1]) for s in range(10)}) > 1


def test_split_groups_errors_name_the_data() -> None:
    with pytest.raises(InvalidParameterError, match="Cannot split the data: it has 1 group"):
        split_groups(["a", "a"], 0.5)
    with pytest.raises(InvalidParameterError, match=r"1\.\.9"):
        split_groups(GROUPS, 10)
    with pytest.raises(InvalidParameterError, match="strictly between"):
        split_groups(GROUPS, 1.0)


def test_fold_groups_cover_every_group_once() -> None:
    folds = fold_groups(GROUPS, 3, seed=1)
    tests = [{GROUPS[i] for i in test} for _, test in folds]
    assert set().union(*tests) == set(GROUPS) and sum(map(len, tests)) == 10
    for fit, test in folds:
        assert not {GROUPS[i] for i in fit} & {GROUPS[i] for i in test}


def test_split_contrast_keeps_a_question_on_one_side() -> None:
    # Question k has two correct answers and one incorrect answer.
    pos_groups = [k for k in range(8) for _ in range(2)]
    neg_groups = list(range(8))
    s = split_contrast(pos_groups, neg_groups, test_size=0.25, seed=3)
    fit_q = {pos_groups[i] for i in s.pos_fit} | {neg_groups[i] for i in s.neg_fit}
    test_q = {pos_groups[i] for i in s.pos_test} | {neg_groups[i] for i in s.neg_test}
    assert not fit_q & test_q and len(test_q) == 2
    assert len(s.pos_fit) + len(s.pos_test) == 16 and len(s.neg_fit) + len(s.neg_test) == 8


def test_split_contrast_needs_both_classes_on_both_sides() -> None:
    with pytest.raises(InvalidParameterError, match="leaves no row on the neg"):
        split_contrast(["a", "b"], ["a", "a"], test_size=0.5, seed=0)


def test_paired_groups_and_subsample_keep_groups_whole() -> None:
    assert paired_groups(2, 3) == (["#0", "#1"], ["#0", "#1", "#2"])
    rows = subsample_groups(GROUPS, max_rows=10, seed=0)
    assert len(rows) == 9 and all(GROUPS.count(GROUPS[i]) == 3 for i in rows)
    kept = {GROUPS[i] for i in rows}
    assert all(GROUPS[i] in kept for i in rows) and len(kept) == 3
    assert len(subsample_groups(GROUPS, max_rows=1)) == 3  # at least one whole group


def test_search_barrier_holds_out_whole_groups() -> None:
    gen = torch.Generator().manual_seed(0)
    pos, neg = torch.randn(24, 4, generator=gen) + 1, torch.randn(12, 4, generator=gen) - 1
    groups = ([k for k in range(12) for _ in range(2)], list(range(12)))
    grid = [BarrierCandidate("linear", {}, LinearBarrier())]
    result = search_barrier(pos, neg, candidates=grid, groups=groups, diagnose_all=False, T=1.0)
    s = split_contrast(*groups, test_size=0.3, seed=0)
    assert result.steerer.n_pos_ == len(s.pos_fit)
    with pytest.raises(ShapeMismatchError, match="one id per row"):
        search_barrier(pos, neg, candidates=grid, groups=(groups[0][:3], groups[1]))
