"""The per-item steerability figure (fast)."""

from __future__ import annotations

import pandas as pd
import pytest

from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.viz.reliability_plots import plot_steerability


def test_steerability_figure_labels_the_anti_steerable_share() -> None:
    items = pd.DataFrame(
        {
            "split": ["a"] * 4 + ["b"] * 4,
            "method": ["CAA", "CAA", "ODESteer", "ODESteer"] * 2,
            "slope": [1.0, -1.0, 2.0, 3.0, 1.0, 1.0, -2.0, 3.0],
        }
    )
    rel = pd.DataFrame(
        {
            "group": ["all", "all"],
            "method": ["CAA", "ODESteer"],
            "anti_ci_low": [0.0, 0.0],
            "anti_ci_high": [0.5, 0.75],
        }
    )
    fig = plot_steerability(items, rel)
    labels = [trace.y[0] for trace in fig.data]
    assert labels == ["CAA: 25% [0, 50]", "ODESteer: 25% [0, 75]"]
    assert len(plot_steerability(items, group="b").data) == 2
    with pytest.raises(InvalidParameterError, match="group 'c'"):
        plot_steerability(items, group="c")
    with pytest.raises(InvalidParameterError, match="slope"):
        plot_steerability(items.drop(columns="slope"))
