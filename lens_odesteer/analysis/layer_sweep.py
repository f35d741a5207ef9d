"""The nonlinearity diagnostic per layer, on activations already collected (no model here).

:func:`split_by_group` splits one activation row per contrast pair into train and held-out rows
by group; :func:`field_variation_over_splits` fits a steerer on each train split and diagnoses
its held-out rows. Collecting the activations runs the model and lives in
:mod:`lens_odesteer.analysis.model_runs.layers` (:func:`collect_layer_splits`, and the one-call
:func:`field_variation_by_layer`), so several steerers or a barrier search can reuse one
collection.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from lens_odesteer.analysis.nonlinearity import field_variation
from lens_odesteer.datasets import ContrastDataset
from lens_odesteer.errors import ShapeMismatchError
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
