"""Evaluation tasks: TruthfulQA MC and generation, detoxification, sentiment, CAA behaviours."""

from __future__ import annotations

import inspect
from typing import Any

from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.evaluation.tasks.base import Split, Task, data_root, sample_subset

__all__ = [
    "TASKS",
    "Split",
    "Task",
    "data_root",
    "make_task",
    "sample_subset",
    "task_class",
    "task_options",
]

#: Task name -> "module:class" (imported on first use).
TASKS: dict[str, str] = {
    "truthfulqa_mc": "lens_odesteer.evaluation.tasks.truthfulqa_mc:TruthfulQAMC",
    "truthfulqa_gen": "lens_odesteer.evaluation.tasks.truthfulqa_gen:TruthfulQAGen",
    "detox": "lens_odesteer.evaluation.tasks.detox:Detox",
    "sentiment": "lens_odesteer.evaluation.tasks.sentiment:Sentiment",
    "behaviors": "lens_odesteer.evaluation.tasks.behaviors:Behaviors",
}


def task_class(name: str) -> type[Task]:
    """The class of task ``name`` (see :data:`TASKS`), imported on first use."""
    import importlib

    if name not in TASKS:
        raise InvalidParameterError(f"Unknown task {name!r}. Expected one of: {', '.join(TASKS)}.")
    module, cls = TASKS[name].split(":")
    found = getattr(importlib.import_module(module), cls)
    assert isinstance(found, type) and issubclass(found, Task)
    return found


def task_options(name: str) -> dict[str, Any]:
    """The constructor options of task ``name`` and their defaults (``seed``/``quick`` aside).

    These are the keys ``lens-odesteer eval --set KEY=VALUE`` accepts; ``seed`` and ``quick``
    have their own flags.

    Example:
        >>> task_options("behaviors")["n_test"]
        10
    """
    params = inspect.signature(task_class(name).__init__).parameters
    return {
        key: (None if p.default is inspect.Parameter.empty else p.default)
        for key, p in params.items()
        if key not in ("self", "seed", "quick")
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def make_task(name: str, **kwargs: Any) -> Task:
    """Build the task ``name`` (see :data:`TASKS`) with constructor arguments ``kwargs``.

    Example:
        >>> sorted(TASKS)[:2]
        ['behaviors', 'detox']
    """
    task = task_class(name)(**kwargs)
    assert isinstance(task, Task)
    return task
