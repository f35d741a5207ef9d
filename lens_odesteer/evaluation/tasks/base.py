"""What every evaluation task provides: splits to fit and test on, and a scoring function.

A :class:`Task` yields one or more :class:`Split` objects (two cross-validation folds for
TruthfulQA multiple choice, one per behaviour for the A/B sets, one otherwise). Each split holds
the contrast texts the steerers are fitted on (positive = the desired side, activation of the
last token), a validation list of units (for choosing ``T``) and a held-out test list; all
subsets are drawn with fixed seeds. ``task.score(model, plan, units, seeds)`` returns one row per
unit (and seed) with the task's metric columns.

The data folder is found by :func:`data_root`: an explicit ``data_dir``, else
``$LENS_ODESTEER_DATA``, else the user cache that ``lens-odesteer data fetch`` fills, else
``../shared/data`` next to a source checkout (:mod:`lens_odesteer.datasets.locate`); every
loader also takes an explicit path to the standard public file.
"""

from __future__ import annotations

import os
import random
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pandas as pd

from lens_odesteer._splits import paired_groups
from lens_odesteer.datasets.locate import find_data_dir
from lens_odesteer.errors import InvalidParameterError, ShapeMismatchError
from lens_odesteer.hooks import SteeringPlan
from lens_odesteer.models.names import HookedModel

__all__ = ["Split", "Task", "check_count", "data_root", "sample_subset"]

T_ = TypeVar("T_")


def data_root(path: str | os.PathLike[str] | None = None, *, need: Iterable[str] = ()) -> Path:
    """The data folder holding every file of ``need`` (paths relative to it).

    Looked for in ``path``, else ``$LENS_ODESTEER_DATA``, else the user cache, else
    ``<repo>/../shared/data`` (see :mod:`lens_odesteer.datasets.locate`).

    Raises:
        DataNotFoundError: no such folder; the message names the missing files, the folders
            searched and the ``lens-odesteer data fetch`` command that downloads them.
    """
    return find_data_dir(path, need=need)


def check_count(value: object, name: str, *, minimum: int = 1, optional: bool = False) -> None:
    """Refuse a task size that is not an int >= ``minimum`` (or None when ``optional``).

    Task constructors call it on every size before ``quick`` replaces any, so a bad value is
    reported even when ``quick`` would not use it.

    Example:
        >>> check_count(-5, "n_test", optional=True)
        Traceback (most recent call last):
        ...
        lens_odesteer.errors.InvalidParameterError: `n_test` must be an int >= 1 or None; got -5.
    """
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        allowed = f"an int >= {minimum}" + (" or None" if optional else "")
        raise InvalidParameterError(f"`{name}` must be {allowed}; got {value!r}.")


def sample_subset(items: Sequence[T_], n: int | None, seed: int) -> list[T_]:
    """Up to ``n`` items drawn without replacement with a fixed seed (all, shuffled, if None).

    Example:
        >>> sample_subset(list(range(10)), 3, seed=0) == sample_subset(list(range(10)), 3, seed=0)
        True
    """
    check_count(n, "n", minimum=0, optional=True)
    order = list(items)
    random.Random(seed).shuffle(order)
    return order if n is None else order[:n]


@dataclass
class Split:
    """One fit/validation/test split of a task.

    Attributes:
        name: e.g. ``"fold0"`` or a behaviour name.
        pos_texts, neg_texts: contrast texts for fitting (positive = the desired side).
        val, test: the task's units (questions, prompts, items) for choosing ``T`` and testing.
        ref_prompts: prompts whose last-token activations define displacement and KL scales.
        pos_groups, neg_groups: the source item of each fit text (e.g. its TruthfulQA
            question), for held-out splits of the fit texts; None pairs ``pos_texts[i]`` with
            ``neg_texts[i]`` (see :meth:`row_groups`).
    """

    name: str
    pos_texts: list[str]
    neg_texts: list[str]
    val: list[Any]
    test: list[Any]
    ref_prompts: list[str]
    info: dict[str, Any] = field(default_factory=dict)
    pos_groups: Sequence[Hashable] | None = None
    neg_groups: Sequence[Hashable] | None = None

    def row_groups(self) -> tuple[list[Hashable], list[Hashable]]:
        """The group id of each positive and each negative fit text.

        Every held-out split of the fit texts keeps a group on one side
        (:mod:`lens_odesteer._splits`). Without explicit groups, ``pos_texts[i]`` and
        ``neg_texts[i]`` form pair ``i`` (:func:`~lens_odesteer._splits.paired_groups`).

        Raises:
            ShapeMismatchError: groups given for a different number of texts.
        """
        default_pos, default_neg = paired_groups(len(self.pos_texts), len(self.neg_texts))
        pos: list[Hashable] = list(default_pos if self.pos_groups is None else self.pos_groups)
        neg: list[Hashable] = list(default_neg if self.neg_groups is None else self.neg_groups)
        if len(pos) != len(self.pos_texts) or len(neg) != len(self.neg_texts):
            raise ShapeMismatchError(
                f"Split {self.name!r} has {len(pos)}/{len(neg)} positive/negative group ids for "
                f"{len(self.pos_texts)}/{len(self.neg_texts)} texts; give one id per text."
            )
        return pos, neg


class Task(ABC):
    """Base class of evaluation tasks; see the module docstring."""

    name: ClassVar[str]
    #: ``"likelihood"`` (forward passes only) or ``"generation"``.
    kind: ClassVar[str]
    #: The metric used to choose ``T`` and for the headline comparison.
    primary: ClassVar[str]
    #: Whether larger values of ``primary`` are better.
    higher_is_better: ClassVar[bool] = True
    #: All metric columns reported (primary first).
    metrics: ClassVar[tuple[str, ...]]
    #: Whether the splits are folds of one test set (pooled) or separate subsets.
    pooled: ClassVar[bool] = True
    #: Steerers are also fitted with the classes swapped (steering in both directions).
    bidirectional: ClassVar[bool] = False
    #: Default strength grid (displacement / mean residual norm) for this task.
    default_grid: ClassVar[tuple[float, ...]] = (0.05, 0.1, 0.2)

    def __init__(self, *, seed: int = 0, quick: bool = False) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InvalidParameterError(f"`seed` must be an int; got {seed!r}.")
        self.seed = seed
        self.quick = bool(quick)

    @abstractmethod
    def splits(self) -> list[Split]:
        """The fit/validation/test splits (deterministic for a seed)."""

    @abstractmethod
    def score(
        self,
        model: HookedModel,
        plan: SteeringPlan | None,
        units: list[Any],
        *,
        phase: str,
        reverse: SteeringPlan | None = None,
    ) -> pd.DataFrame:
        """One row per unit (and seed) with ``unit``, ``seed`` and the metric columns."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """Sizes, seeds and settings, for the saved results."""
