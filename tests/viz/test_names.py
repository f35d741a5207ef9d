"""Figure functions are named plot_<thing>; the old names still work and say what replaced them."""

from __future__ import annotations

import importlib
import inspect
import typing

import plotly.graph_objects as go
import pytest

import lens_odesteer.viz as viz
from lens_odesteer.viz._renamed import RENAMED

MODULES = ["eval_plots", "level_sets", "nonlinearity", "step_logits", "trajectories"]


@pytest.mark.parametrize("name", MODULES)
def test_every_figure_function_is_named_plot_thing(name: str) -> None:
    module = importlib.import_module(f"lens_odesteer.viz.{name}")
    for attr, fn in vars(module).items():
        if attr.startswith("_") or not inspect.isfunction(fn) or fn.__module__ != module.__name__:
            continue
        returns = typing.get_type_hints(fn).get("return")
        if returns is go.Figure:
            assert attr.startswith("plot_"), f"{module.__name__}.{attr} returns a figure"
        else:
            assert not attr.startswith("plot_"), f"{module.__name__}.{attr} returns no figure"


@pytest.mark.parametrize(("old", "target"), sorted(RENAMED.items()))
def test_old_name_warns_and_returns_the_new_function(old: str, target: tuple[str, str]) -> None:
    where, new = target
    module = importlib.import_module(where)
    with pytest.warns(DeprecationWarning, match=f"use `{where}.{new}`"):
        assert getattr(module, old) is getattr(module, new)
    with pytest.warns(DeprecationWarning, match=new):
        assert getattr(viz, old) is getattr(module, new)


def test_unknown_names_still_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        viz.nope  # noqa: B018
    from lens_odesteer.viz import level_sets

    with pytest.raises(AttributeError):
        level_sets.logit_heatmap  # noqa: B018  (renamed in another module)
