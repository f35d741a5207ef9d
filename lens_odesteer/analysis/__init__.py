"""Analysis of steering: projections, barrier level sets, trajectories, per-step logits.

Functions here return tidy pandas DataFrames (or small dataclasses); nothing imports plotly.
The plotting layer is :mod:`lens_odesteer.viz`.

Two kinds of analysis, kept apart so a reader can tell them by their module:

* **on tensors** (activations already collected, fitted steerers), in the modules of this
  package: :mod:`~lens_odesteer.analysis.projection`, :mod:`~lens_odesteer.analysis.level_sets`,
  :mod:`~lens_odesteer.analysis.trajectories`, :mod:`~lens_odesteer.analysis.differences`,
  :mod:`~lens_odesteer.analysis.nonlinearity`,
  :mod:`~lens_odesteer.analysis.layer_sweep`, :mod:`~lens_odesteer.analysis.barrier_search` and
  :mod:`~lens_odesteer.analysis.auc`;
* **running the model**, in :mod:`lens_odesteer.analysis.model_runs`: :func:`step_logits`,
  :func:`collect_layer_splits`, :func:`field_variation_by_layer`, and
  :func:`step_logit_differences` on the result of :func:`step_logits`.

Every name below is importable from ``lens_odesteer.analysis`` whichever module holds it.
"""

from lens_odesteer.analysis.auc import binary_auc
from lens_odesteer.analysis.barrier_search import (
    BarrierCandidate,
    BarrierSearchResult,
    default_barrier_grid,
    search_barrier,
)
from lens_odesteer.analysis.differences import (
    difference_frame,
    difference_in_view,
    fit_difference_view,
)
from lens_odesteer.analysis.layer_sweep import (
    LayerSplit,
    field_variation_over_splits,
    split_by_group,
)
from lens_odesteer.analysis.level_sets import barrier_grid, points_frame
from lens_odesteer.analysis.model_runs import (
    StepLogits,
    collect_layer_splits,
    field_variation_by_layer,
    step_logit_differences,
    step_logits,
)
from lens_odesteer.analysis.nonlinearity import FieldVariation, field_variation
from lens_odesteer.analysis.projection import Projection, fit_projection
from lens_odesteer.analysis.trajectories import method_paths, trajectory_frame

__all__ = [
    "BarrierCandidate",
    "BarrierSearchResult",
    "FieldVariation",
    "LayerSplit",
    "Projection",
    "StepLogits",
    "barrier_grid",
    "binary_auc",
    "collect_layer_splits",
    "default_barrier_grid",
    "difference_frame",
    "difference_in_view",
    "field_variation",
    "field_variation_by_layer",
    "field_variation_over_splits",
    "fit_difference_view",
    "fit_projection",
    "method_paths",
    "points_frame",
    "search_barrier",
    "split_by_group",
    "step_logit_differences",
    "step_logits",
    "trajectory_frame",
]
