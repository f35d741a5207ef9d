"""Evaluation tasks: TruthfulQA MC and generation, detoxification, sentiment, CAA behaviours."""

from __future__ import annotations

from typing import Any

from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.evaluation.tasks.base import Split, Task, data_root, sample_subset

__all__ = ["TASKS", "Split", "Task", "data_root", "make_task", "sample_subset"]

#: Task name -> "module:class" (imported on first use).
TASKS: dict[str, str] = {
    "truthfulqa_mc": "lens_odesteer.evaluation.tasks.truthfulqa_mc:TruthfulQAMC",
    "truthfulqa_gen": "lens_odesteer.evaluation.tasks.truthfulqa_gen:TruthfulQAGen",
    "detox": "lens_odesteer.evaluation.tasks.detox:Detox",
    "sentiment": "lens_odesteer.evaluation.tasks.sentiment:Sentiment",
    "behaviors": "lens_odesteer.evaluation.tasks.behaviors:Behaviors",
}


def make_task(name: str, **kwargs: Any) -> Task:
    """Build the task ``name`` (see :data:`TASKS`) with constructor arguments ``kwargs``.

    Example:
        >>> sorted(TASKS)[:2]
        ['behaviors', 'detox']
    """
    import importlib

    if name not in TASKS:
        raise InvalidParameterError(f"Unknown task {name!r}. Expected one of: {', '.join(TASKS)}.")
    module, cls = TASKS[name].split(":")
    task = getattr(importlib.import_module(module), cls)(**kwargs)
    assert isinstance(task, Task)
    return task
