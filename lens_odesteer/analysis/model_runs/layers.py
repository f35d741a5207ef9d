"""The nonlinearity diagnostic per layer, from the model: collect activations once, split, fit.

:func:`collect_layer_splits` runs the model once per text set with every requested hook
captured, and splits the rows by group
(:func:`~lens_odesteer.analysis.layer_sweep.split_by_group`);
:func:`field_variation_by_layer` adds the fits and diagnostics of
:func:`~lens_odesteer.analysis.layer_sweep.field_variation_over_splits` in one call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd
from torch import Tensor

from lens_odesteer.activations import collect_activations
from lens_odesteer.analysis.layer_sweep import (
    LayerSplit,
    field_variation_over_splits,
    split_by_group,
)
from lens_odesteer.datasets import ContrastDataset
from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.models.names import HookedModel, resid_post
from lens_odesteer.steerers import AbstractSteerer, ODESteer

__all__ = ["collect_layer_splits", "field_variation_by_layer"]


def collect_layer_splits(
    model: HookedModel,
    data: ContrastDataset,
    layers: Sequence[int],
    *,
    test_size: float = 0.3,
    seed: int = 0,
    position: str | int = "last",
    prepend_bos: bool | None = None,
    batch_size: int = 16,
) -> dict[int, LayerSplit]:
    """Collect ``resid_post`` activations of every layer in one pass per text set, split by group.

    The positive and the negative texts each run through the model once, with every requested
    hook captured in that pass; :func:`split_by_group` then splits the rows as
    ``data.split(test_size, seed)`` does (all pairs of one group, e.g. one question, on the same
    side).
    """
    if not layers:
        raise InvalidParameterError("`layers` is empty; give at least one layer index.")
    hooks = [resid_post(int(layer)) for layer in layers]

    def run(texts: list[str]) -> dict[str, Tensor]:
        out = collect_activations(
            model,
            texts,
            hooks,
            position=position,
            prepend_bos=prepend_bos,
            batch_size=batch_size,
            progress=False,
        )
        assert isinstance(out, dict)
        return out

    pos, neg = run(data.positive_texts()), run(data.negative_texts())
    return {
        int(layer): split_by_group(data, hook, pos[hook], neg[hook], test_size=test_size, seed=seed)
        for layer, hook in zip(layers, hooks, strict=True)
    }


def field_variation_by_layer(
    model: HookedModel,
    data: ContrastDataset,
    layers: Sequence[int],
    *,
    make_steerer: Callable[[], AbstractSteerer] = ODESteer,
    T: float | None = None,
    test_size: float = 0.3,
    seed: int = 0,
    batch_size: int = 16,
) -> pd.DataFrame:
    """Collect activations at ``resid_post`` of each layer, fit a steerer, run the diagnostic.

    Long-form result: ``layer, hook_name, steerer, T, solver, n_steps, n_rows, metric, value``
    (metrics as :meth:`~lens_odesteer.analysis.nonlinearity.FieldVariation.to_frame`); plot it with
    :func:`lens_odesteer.viz.nonlinearity.plot_field_variation_by_layer`. For several steerers
    or a barrier search on the same activations, call :func:`collect_layer_splits` once and
    :func:`field_variation_over_splits` per steerer.
    """
    splits = collect_layer_splits(
        model, data, layers, test_size=test_size, seed=seed, batch_size=batch_size
    )
    return field_variation_over_splits(splits, make_steerer=make_steerer, T=T)
