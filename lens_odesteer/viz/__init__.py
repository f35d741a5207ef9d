"""Plotly figures for the frames of :mod:`lens_odesteer.analysis` and ``evaluation``."""

from lens_odesteer.viz.export import save_figure, save_figures, static_export_status
from lens_odesteer.viz.level_sets import level_set_figure
from lens_odesteer.viz.nonlinearity import (
    plot_barrier_search,
    plot_field_variation,
    plot_field_variation_by_layer,
)
from lens_odesteer.viz.step_logits import logit_heatmap, target_logprob_figure
from lens_odesteer.viz.theme import apply_theme, method_colour
from lens_odesteer.viz.trajectories import trajectory_figure_3d, trajectory_profile_figure

__all__ = [
    "apply_theme",
    "level_set_figure",
    "logit_heatmap",
    "method_colour",
    "plot_barrier_search",
    "plot_field_variation",
    "plot_field_variation_by_layer",
    "save_figure",
    "save_figures",
    "static_export_status",
    "target_logprob_figure",
    "trajectory_figure_3d",
    "trajectory_profile_figure",
]
