"""Evaluation suite: tasks, fair strength selection, bootstrap intervals, resumable runs.

Main entry point: :func:`evaluate` (``lens-odesteer eval TASK``).
"""

from __future__ import annotations

from lens_odesteer.evaluation.likelihood import (
    answer_logprobs,
    next_token_logprobs,
    unsteered_split,
)
from lens_odesteer.evaluation.methods import (
    ALL_METHODS,
    ONE_STEP,
    PAPER_T,
    make_steerer,
    method_spec,
    parse_methods,
)
from lens_odesteer.evaluation.reliability import (
    item_steerability,
    reliability_frame,
    reliability_summary,
    training_geometry,
)
from lens_odesteer.evaluation.runner import EvalConfig, evaluate
from lens_odesteer.evaluation.sampling import sample_continuations
from lens_odesteer.evaluation.side_effects import side_effect_summary, side_effect_units
from lens_odesteer.evaluation.stats import (
    bootstrap_ci,
    minimum_detectable_difference,
    paired_bootstrap,
    unit_means,
)
from lens_odesteer.evaluation.store import PartStore, atomic_write_text
from lens_odesteer.evaluation.strength import (
    calibrate_kl,
    calibrated_T,
    mean_displacement,
    mean_next_token_kl,
    solve_T_for_displacement,
)
from lens_odesteer.evaluation.summary import paired_differences, summarize
from lens_odesteer.evaluation.tasks import TASKS, Task, make_task

__all__ = [
    "ALL_METHODS",
    "ONE_STEP",
    "PAPER_T",
    "TASKS",
    "EvalConfig",
    "PartStore",
    "Task",
    "answer_logprobs",
    "atomic_write_text",
    "bootstrap_ci",
    "calibrate_kl",
    "calibrated_T",
    "evaluate",
    "item_steerability",
    "make_steerer",
    "make_task",
    "mean_displacement",
    "mean_next_token_kl",
    "method_spec",
    "minimum_detectable_difference",
    "next_token_logprobs",
    "paired_bootstrap",
    "paired_differences",
    "parse_methods",
    "reliability_frame",
    "reliability_summary",
    "sample_continuations",
    "side_effect_summary",
    "side_effect_units",
    "solve_T_for_displacement",
    "summarize",
    "training_geometry",
    "unit_means",
    "unsteered_split",
]
