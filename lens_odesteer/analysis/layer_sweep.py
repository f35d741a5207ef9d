"""The nonlinearity diagnostic per layer: collect activations once, fit, diagnose held-out rows.

:func:`field_variation_by_layer` is the one-call version; :func:`collect_layer_splits` and
:func:`field_variation_over_splits` separate the model pass from the fits, so several steerers
(or a barrier search) can reuse one collection.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from lens_odesteer.activations import collect_activations
from lens_odesteer.analysis.nonlinearity import field_variation
from lens_odesteer.datasets import ContrastDataset
from lens_odesteer.errors import InvalidParameterError, ShapeMismatchError
from lens_odesteer.models.names import HookedModel, resid_post
from lens_odesteer.steerers import AbstractSteerer, ODESteer


@dataclass(frozen=True, eq=False)
class LayerSplit:
    """Train and held-out activations of one hook (rows: texts of a contrast set)."""

    hook_name: str
    train_pos: Float[Tensor, "n_train_pos d_model"]
    train_neg: Float[Tensor, "n_train_neg d_model"]
    test_pos: Float[Tensor, "n_test_pos d_model"]
    test_neg: Float[Tensor, "n_test_neg d_model"]

    def test_acts_and_labels(self) -> tuple[Tensor, Tensor]:
        """Held-out activations (positives first) and their boolean labels."""
        acts = torch.cat([self.test_pos, self.test_neg])
        labels = torch.zeros(acts.shape[0], dtype=torch.bool)
        labels[: self.test_pos.shape[0]] = True
        return acts, labels


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


def split_by_group(
    data: ContrastDataset,
    hook_name: str,
    pos_acts: Float[Tensor, "n_pairs d_model"],
    neg_acts: Float[Tensor, "n_pairs d_model"],
    *,
    test_size: float = 0.3,
    seed: int = 0,
) -> LayerSplit:
    """Split one activation row per pair of ``data`` into train/test like ``data.split``.

    Rows must be in dataset order (``pos_acts[i]`` from ``data[i].positive``); use this to
    reuse activations collected earlier (e.g. cached on disk) with the same split.
    """
    if pos_acts.shape[0] != len(data) or neg_acts.shape[0] != len(data):
        raise ShapeMismatchError(
            f"`pos_acts`/`neg_acts` have {pos_acts.shape[0]}/{neg_acts.shape[0]} rows but the "
            f"dataset has {len(data)} pairs; collect one row per pair, in dataset order."
        )
    _, test = data.split(test_size, seed)
    test_groups = set(test.groups)
    mask = torch.tensor([g in test_groups for g in data.groups], dtype=torch.bool)
    return LayerSplit(hook_name, pos_acts[~mask], neg_acts[~mask], pos_acts[mask], neg_acts[mask])


def field_variation_over_splits(
    splits: Mapping[int, LayerSplit],
    *,
    make_steerer: Callable[[], AbstractSteerer] = ODESteer,
    T: float | None = None,
    n_steps: int | None = None,
) -> pd.DataFrame:
    """Fit ``make_steerer()`` on each train split and diagnose the held-out split (with labels).

    Returns the stacked :meth:`~lens_odesteer.analysis.nonlinearity.FieldVariation.to_frame`
    with ``layer`` and ``hook_name`` columns first; ``T=None`` uses each layer's default
    (CAA x1's displacement on its held-out rows).

    Example:
        >>> import torch, lens_odesteer as lo
        >>> pos, neg = torch.randn(40, 8) + 1, torch.randn(40, 8) - 1
        >>> split = LayerSplit("blocks.0.hook_resid_post", pos[:30], neg[:30], pos[30:], neg[30:])
        >>> frame = field_variation_over_splits({0: split}, make_steerer=lo.CAA)
        >>> bool(frame.set_index("metric").loc["gap_median", "value"] < 1e-6)
        True
    """
    frames = []
    for layer, split in splits.items():
        steerer = make_steerer().fit(split.train_pos, split.train_neg)
        acts, labels = split.test_acts_and_labels()
        fv = field_variation(steerer, acts, labels=labels, T=T, n_steps=n_steps)
        frame = fv.to_frame()
        frame.insert(0, "hook_name", split.hook_name)
        frame.insert(0, "layer", layer)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


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
    (metrics as :meth:`FieldVariation.to_frame`); plot it with
    :func:`lens_odesteer.viz.nonlinearity.plot_field_variation_by_layer`. For several steerers
    or a barrier search on the same activations, call :func:`collect_layer_splits` once and
    :func:`field_variation_over_splits` per steerer.
    """
    splits = collect_layer_splits(
        model, data, layers, test_size=test_size, seed=seed, batch_size=batch_size
    )
    return field_variation_over_splits(splits, make_steerer=make_steerer, T=T)
