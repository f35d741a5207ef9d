"""What every evaluation task provides: splits to fit and test on, and a scoring function.

A :class:`Task` yields one or more :class:`Split` objects (two cross-validation folds for
TruthfulQA multiple choice, one per behaviour for the A/B sets, one otherwise). Each split holds
the contrast texts the steerers are fitted on (positive = the desired side, activation of the
last token), a validation list of units (for choosing ``T``) and a held-out test list; all
subsets are drawn with fixed seeds. ``task.score(model, plan, units, seeds)`` returns one row per
unit (and seed) with the task's metric columns.

The prompting baselines (``"prompt"``, ``"prompt+<method>"``) score the same units with an
instruction asking for the behaviour in front of every prompt: :meth:`Task.instruction` gives it
per split, :meth:`Task.instructed` switches it on for a block and the tasks build their prompts
with :meth:`Task.prefixed`.

The data folder is found by :func:`data_root`: an explicit ``data_dir``, else
``$LENS_ODESTEER_DATA``, else the user cache that ``lens-odesteer data fetch`` fills, else
``../shared/data`` next to a source checkout (:mod:`lens_odesteer.datasets.locate`); every
loader also takes an explicit path to the standard public file.
"""

from __future__ import annotations

import os
import random
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pandas as pd

from lens_odesteer._splits import paired_groups
from lens_odesteer.datasets.locate import find_data_dir
from lens_odesteer.errors import InvalidParameterError, ShapeMismatchError
from lens_odesteer.hooks import SteeringPlan
from lens_odesteer.models.names import HookedModel

__all__ = ["INSTRUCTION_SEP", "Split", "Task", "check_count", "data_root", "sample_subset"]

#: What separates an instruction from the prompt it precedes.
INSTRUCTION_SEP = "\n\n"

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
    #: The active instruction prefixes (toward, away); see :meth:`instructed`.
    _prefixes: tuple[str, str] = ("", "")

    def __init__(self, *, seed: int = 0, quick: bool = False) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InvalidParameterError(f"`seed` must be an int; got {seed!r}.")
        self.seed = seed
        self.quick = bool(quick)
        self._prefixes: tuple[str, str] = ("", "")

    def propensity(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The behaviour's propensity per scored row, for per-item reliability.

        Returns a frame indexed like (a selection of, possibly repeating) ``frame``'s rows with
        ``direction`` (+1: the row was steered toward the behaviour, -1: away) and
        ``propensity`` (higher = more of the behaviour). The default is the primary metric,
        negated when lower is better; tasks with a likelihood override it with a logit
        (:mod:`lens_odesteer.evaluation.reliability`).
        """
        sign = 1.0 if self.higher_is_better else -1.0
        return pd.DataFrame(
            {"direction": 1.0, "propensity": sign * frame[self.primary].astype(float)},
            index=frame.index,
        )

    def instruction(self, split: str, *, reverse: bool = False) -> str:
        """The instruction of the prompting baselines for ``split`` (one sentence, no newline).

        ``reverse=True``: the instruction asking for the opposite behaviour, used by
        :attr:`bidirectional` tasks where steering away is scored too. Override per task; the
        base class has none.
        """
        raise InvalidParameterError(
            f"Task {self.name!r} defines no instruction, so the prompting baselines ('prompt', "
            "'prompt+<method>') cannot run on it; override `Task.instruction`."
        )

    @property
    def instructing(self) -> bool:
        """Whether an instruction is prepended now (inside :meth:`instructed`)."""
        return bool(self._prefixes[0])

    @contextmanager
    def instructed(self, split: str | None) -> Iterator[None]:
        """Within the block, :meth:`prefixed` puts ``split``'s instruction before each prompt.

        ``split=None`` leaves prompts as they are (the steering-only methods).
        """
        old = self._prefixes
        if split is not None:
            self._prefixes = (
                self.instruction(split) + INSTRUCTION_SEP,
                self.instruction(split, reverse=True) + INSTRUCTION_SEP
                if self.bidirectional
                else "",
            )
        try:
            yield
        finally:
            self._prefixes = old

    def prefixed(self, prompt: str, *, reverse: bool = False) -> str:
        """``prompt`` with the active instruction in front (unchanged outside :meth:`instructed`).

        Example:
            >>> from lens_odesteer.evaluation.tasks.sentiment import Sentiment
            >>> task = object.__new__(Sentiment); Task.__init__(task)
            >>> with task.instructed("neutral"):
            ...     task.prefixed("The hotel").endswith(INSTRUCTION_SEP + "The hotel")
            True
            >>> task.prefixed("The hotel")
            'The hotel'
        """
        return self._prefixes[int(reverse)] + prompt

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
