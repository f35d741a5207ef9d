"""Held-out splits by group: the only place where the library decides which rows are fitted and
which are tested.

Rows carry a group id (a TruthfulQA question, a contrast pair, an A/B item). Every split keeps
all rows of one group on the same side, so a question whose correct answer is fitted never has
its incorrect answer tested. Groups are taken in first-seen order, shuffled with
``random.Random(seed)`` and the first ``n_test`` go to the test side; rows keep their original
order on each side. :meth:`~lens_odesteer.datasets.ContrastDataset.split`, the barrier search,
the per-layer diagnostics and the evaluation layer sweep all split through here; do not write a
second shuffle-and-cut elsewhere.

Example:
    >>> fit, test = split_groups(["q1", "q1", "q2", "q3", "q3", "q4"], test_size=0.5, seed=0)
    >>> sorted(fit + test) == list(range(6))
    True
    >>> groups = ["q1", "q1", "q2", "q3", "q3", "q4"]
    >>> {groups[i] for i in fit} & {groups[i] for i in test}
    set()
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from lens_odesteer.errors import InvalidParameterError

__all__ = [
    "ContrastSplit",
    "fold_groups",
    "paired_groups",
    "split_contrast",
    "split_groups",
    "subsample_groups",
]


def _group_order(groups: Sequence[Hashable], seed: int) -> list[Hashable]:
    """The distinct groups in first-seen order, shuffled with ``random.Random(seed)``."""
    unique = list(dict.fromkeys(groups))
    random.Random(seed).shuffle(unique)
    return unique


def _n_test_groups(n_groups: int, test_size: float | int, *, what: str = "the data") -> int:
    """How many of ``n_groups`` groups go to the test side for ``test_size``.

    A float is a fraction in ``(0, 1)``, rounded and clamped so both sides get a group; an int
    is a number of groups in ``1 .. n_groups - 1``.

    Raises:
        InvalidParameterError: fewer than two groups, or ``test_size`` of the wrong type or out
            of range.
    """
    if n_groups < 2:
        raise InvalidParameterError(
            f"Cannot split {what}: it has {n_groups} group(s); need at least 2."
        )
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float)):
        raise InvalidParameterError(
            f"`test_size` must be a float in (0, 1) or an int; got {test_size!r}."
        )
    if isinstance(test_size, int):
        if not 1 <= test_size <= n_groups - 1:
            raise InvalidParameterError(
                f"`test_size`={test_size} groups is out of range; {what} has {n_groups} groups, "
                f"so use 1..{n_groups - 1}."
            )
        return test_size
    if not 0.0 < test_size < 1.0:
        raise InvalidParameterError(
            f"`test_size` must be a fraction strictly between 0 and 1; got {test_size}."
        )
    return min(max(round(test_size * n_groups), 1), n_groups - 1)


def split_groups(
    groups: Sequence[Hashable],
    test_size: float | int = 0.2,
    seed: int = 0,
    *,
    what: str = "the data",
) -> tuple[list[int], list[int]]:
    """Split row indices into ``(fit, test)`` so that no group has rows on both sides.

    Args:
        groups: one group id per row.
        test_size: a fraction in ``(0, 1)`` of the groups, or an ``int`` number of groups.
        seed: the shuffle seed.
        what: how error messages name the data (e.g. ``"dataset 'tqa'"``).

    Returns:
        The fit and the test row indices, each in increasing order.
    """
    test = set(_group_order(groups, seed)[: _n_test_groups(len(set(groups)), test_size, what=what)])
    fit_rows = [i for i, g in enumerate(groups) if g not in test]
    test_rows = [i for i, g in enumerate(groups) if g in test]
    return fit_rows, test_rows


def fold_groups(
    groups: Sequence[Hashable], n_folds: int = 2, seed: int = 0, *, what: str = "the data"
) -> list[tuple[list[int], list[int]]]:
    """K-fold cross-validation by group: ``(fit, test)`` row indices per fold.

    Shuffled groups are dealt round-robin into ``n_folds`` folds (sizes differ by at most one
    group); fold ``k`` is the test side of the ``k``-th tuple.
    """
    n_groups = len(set(groups))
    if isinstance(n_folds, bool) or not isinstance(n_folds, int) or n_folds < 2:
        raise InvalidParameterError(f"`n_folds` must be an int >= 2; got {n_folds!r}.")
    if n_folds > n_groups:
        raise InvalidParameterError(f"`n_folds`={n_folds} exceeds the {n_groups} groups of {what}.")
    fold_of = {g: i % n_folds for i, g in enumerate(_group_order(groups, seed))}
    return [
        (
            [i for i, g in enumerate(groups) if fold_of[g] != k],
            [i for i, g in enumerate(groups) if fold_of[g] == k],
        )
        for k in range(n_folds)
    ]


def subsample_groups(groups: Sequence[Hashable], max_rows: int, seed: int = 0) -> list[int]:
    """Row indices of whole groups, at most ``max_rows`` rows (at least one group).

    Groups are taken in the shuffled order of the splits (``random.Random(seed)``) while the
    rows fit, so a subsample never cuts a group in two.

    Example:
        >>> rows = subsample_groups(["a", "a", "b", "c", "c", "c"], max_rows=3, seed=0)
        >>> len(rows) <= 3, rows == sorted(rows)
        (True, True)
    """
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise InvalidParameterError(f"`max_rows` must be an int >= 1; got {max_rows!r}.")
    size: dict[Hashable, int] = {}
    for g in groups:
        size[g] = size.get(g, 0) + 1
    chosen: set[Hashable] = set()
    total = 0
    for g in _group_order(groups, seed):
        if chosen and total + size[g] > max_rows:
            continue
        chosen.add(g)
        total += size[g]
    return [i for i, g in enumerate(groups) if g in chosen]


def paired_groups(n_pos: int, n_neg: int) -> tuple[list[str], list[str]]:
    """Default group ids for two classes: row ``i`` of each class is pair ``i``.

    This is how :meth:`~lens_odesteer.datasets.ContrastDataset.positive_texts` and
    ``negative_texts`` line up (one positive and one negative per pair, same prompt). Rows past
    the shorter class get groups of their own. Pairing never leaks: it only keeps more rows
    together than needed, and it keeps the classes balanced on both sides.

    Example:
        >>> paired_groups(3, 2)
        (['#0', '#1', '#2'], ['#0', '#1'])
    """
    return [f"#{i}" for i in range(n_pos)], [f"#{i}" for i in range(n_neg)]


@dataclass(frozen=True)
class ContrastSplit:
    """Row indices of both classes on both sides of a grouped split (each in increasing order)."""

    pos_fit: list[int]
    pos_test: list[int]
    neg_fit: list[int]
    neg_test: list[int]


def split_contrast(
    pos_groups: Sequence[Hashable],
    neg_groups: Sequence[Hashable],
    test_size: float | int = 0.3,
    seed: int = 0,
) -> ContrastSplit:
    """Split positive and negative rows together, by the group ids they share.

    A group id that appears in both classes (one question with a correct and an incorrect
    answer) puts all of its rows, of both classes, on one side.

    Raises:
        InvalidParameterError: wrong ``test_size``, fewer than two groups, or a side left
            without one of the classes (too few groups for ``test_size``).

    Example:
        >>> s = split_contrast(["a", "b", "c", "d"], ["a", "b", "c", "d"], test_size=0.5)
        >>> len(s.pos_fit), len(s.pos_test), s.pos_test == s.neg_test
        (2, 2, True)
    """
    n_pos = len(pos_groups)
    fit, test = split_groups([*pos_groups, *neg_groups], test_size, seed, what="the two classes")
    out = ContrastSplit(
        pos_fit=[i for i in fit if i < n_pos],
        pos_test=[i for i in test if i < n_pos],
        neg_fit=[i - n_pos for i in fit if i >= n_pos],
        neg_test=[i - n_pos for i in test if i >= n_pos],
    )
    for side, rows in vars(out).items():
        if not rows:
            raise InvalidParameterError(
                f"The grouped split (test_size={test_size}, seed={seed}) leaves no row on the "
                f"{side.replace('_', ' ')} side: {len(set(pos_groups))} positive and "
                f"{len(set(neg_groups))} negative groups are too few. Give more groups or "
                "change `test_size`."
            )
    return out
