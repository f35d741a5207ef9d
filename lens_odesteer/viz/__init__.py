"""Plotly figures for the frames of :mod:`lens_odesteer.analysis` and ``evaluation``.

Every figure function is ``plot_<thing>(frame, ...) -> go.Figure``: it takes a tidy frame (or
the small result object an analysis returns) and never shows or writes the figure. Old names
(``level_set_figure``, ``logit_heatmap``, ...) still work with a ``DeprecationWarning``; see
:mod:`lens_odesteer.viz._renamed`.
"""

from lens_odesteer.viz._renamed import module_getattr
from lens_odesteer.viz.eval_plots import (
    plot_fluency_tradeoff,
    plot_layer_sweep,
    plot_metric_vs_strength,
    plot_paired_forest,
)
from lens_odesteer.viz.export import save_figure, save_figures, static_export_status
from lens_odesteer.viz.interactive import plot_step_slider
from lens_odesteer.viz.level_sets import plot_level_sets
from lens_odesteer.viz.nonlinearity import (
    plot_barrier_search,
    plot_field_variation,
    plot_field_variation_by_layer,
)
from lens_odesteer.viz.step_logits import plot_logit_heatmap, plot_target_logprob, token_text
from lens_odesteer.viz.theme import PAPER_WIDTH, apply_theme, method_colour
from lens_odesteer.viz.trajectories import plot_trajectories_3d, plot_trajectory_profile

__all__ = [
    "PAPER_WIDTH",
    "apply_theme",
    "method_colour",
    "plot_barrier_search",
    "plot_field_variation",
    "plot_field_variation_by_layer",
    "plot_fluency_tradeoff",
    "plot_layer_sweep",
    "plot_level_sets",
    "plot_logit_heatmap",
    "plot_metric_vs_strength",
    "plot_paired_forest",
    "plot_step_slider",
    "plot_target_logprob",
    "plot_trajectories_3d",
    "plot_trajectory_profile",
    "save_figure",
    "save_figures",
    "static_export_status",
    "token_text",
]

__getattr__ = module_getattr(__name__)
