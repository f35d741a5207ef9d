"""Analysis of steering: projections, barrier level sets, trajectories, per-step logits.

Functions here return tidy pandas DataFrames (or small dataclasses); nothing imports plotly.
The plotting layer is :mod:`lens_odesteer.viz`.
"""

from lens_odesteer.analysis.level_sets import barrier_grid, points_frame
from lens_odesteer.analysis.projection import Projection, fit_projection
from lens_odesteer.analysis.step_logits import StepLogits, step_logits
from lens_odesteer.analysis.trajectories import method_paths, trajectory_frame

__all__ = [
    "Projection",
    "StepLogits",
    "barrier_grid",
    "fit_projection",
    "method_paths",
    "points_frame",
    "step_logits",
    "trajectory_frame",
]
