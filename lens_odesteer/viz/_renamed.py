"""Old figure-function names, kept as deprecated aliases of the ``plot_<thing>`` names.

Every figure function of :mod:`lens_odesteer.viz` is called ``plot_<thing>(frame, ...)`` and
returns a ``go.Figure``. The names below were used before that scheme; reading one from its
module (or from :mod:`lens_odesteer.viz`) still works, with a ``DeprecationWarning`` that names
the replacement.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any

#: old name -> (module that holds the new function, new name)
RENAMED: dict[str, tuple[str, str]] = {
    "level_set_figure": ("lens_odesteer.viz.level_sets", "plot_level_sets"),
    "logit_heatmap": ("lens_odesteer.viz.step_logits", "plot_logit_heatmap"),
    "target_logprob_figure": ("lens_odesteer.viz.step_logits", "plot_target_logprob"),
    "trajectory_profile_figure": ("lens_odesteer.viz.trajectories", "plot_trajectory_profile"),
    "trajectory_figure_3d": ("lens_odesteer.viz.trajectories", "plot_trajectories_3d"),
    "metric_vs_strength": ("lens_odesteer.viz.eval_plots", "plot_metric_vs_strength"),
    "fluency_tradeoff": ("lens_odesteer.viz.eval_plots", "plot_fluency_tradeoff"),
    "paired_forest": ("lens_odesteer.viz.eval_plots", "plot_paired_forest"),
    "layer_sweep_figure": ("lens_odesteer.viz.eval_plots", "plot_layer_sweep"),
}


def module_getattr(module: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` that serves the old names of ``module``'s figure functions.

    For ``lens_odesteer.viz`` itself it serves every old name.
    """

    def __getattr__(name: str) -> Any:
        target = RENAMED.get(name)
        if target is None or module not in (target[0], "lens_odesteer.viz"):
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        where, new = target
        warnings.warn(
            f"`{name}` is deprecated; use `{where}.{new}` (figure functions are named "
            "plot_<thing>).",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(where), new)

    return __getattr__
