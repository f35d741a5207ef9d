"""Pick the layer instead of guessing it: held-out barrier accuracy/AUC per layer, and a small
steered sweep over layers.

:func:`barrier_layer_sweep` collects the contrast activations of a task's first split at every
requested layer in one pass, splits them (seeded) into fit and held-out parts by group (all
texts of one TruthfulQA question, or of one contrast pair, on the same side), and fits three
barriers per layer: ODESteer's kernel barrier, ITI's linear probe and CAA's mean difference. The
held-out accuracy of ``sign(h)`` and the AUC of ``h`` say where the concept is linearly (or
kernel-) readable. :func:`steered_layer_sweep` runs :func:`~lens_odesteer.evaluation.evaluate`
at a few layers (displacement-matched strength, small sizes) for a few methods.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from lens_odesteer._splits import ContrastSplit, split_contrast, subsample_groups
from lens_odesteer.activations import collect_activations
from lens_odesteer.analysis.auc import binary_auc
from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.evaluation.tasks import make_task
from lens_odesteer.evaluation.tasks.base import Split, Task
from lens_odesteer.models.names import HookedModel, model_n_layers, resid_post
from lens_odesteer.steerers import CAA, ITI, ODESteer, sketch_barrier

__all__ = [
    "GroupedTexts",
    "barrier_layer_sweep",
    "grouped_fit_test",
    "steered_layer_sweep",
]


@dataclass(frozen=True)
class GroupedTexts:
    """The fit texts of a split, subsampled and split into fit/test rows by group.

    ``parts`` indexes ``pos_texts`` / ``neg_texts`` (and their ``*_groups``).
    """

    pos_texts: list[str]
    neg_texts: list[str]
    pos_groups: list[Hashable]
    neg_groups: list[Hashable]
    parts: ContrastSplit


def grouped_fit_test(
    split: Split, *, test_size: float = 0.3, max_texts: int | None = 600, seed: int = 0
) -> GroupedTexts:
    """Subsample whole groups of ``split``'s fit texts (at most ``max_texts`` texts), then split
    them into fit and test rows by group (:func:`lens_odesteer._splits.split_contrast`).

    The groups are :meth:`Split.row_groups` (the question for TruthfulQA), so no group has a
    text on both sides.
    """
    pos_groups, neg_groups = split.row_groups()
    pos_rows, neg_rows = list(range(len(pos_groups))), list(range(len(neg_groups)))
    if max_texts is not None:
        keep = subsample_groups([*pos_groups, *neg_groups], max_texts, seed)
        pos_rows = [i for i in keep if i < len(pos_groups)]
        neg_rows = [i - len(pos_groups) for i in keep if i >= len(pos_groups)]
    kept_pos = [pos_groups[i] for i in pos_rows]
    kept_neg = [neg_groups[i] for i in neg_rows]
    return GroupedTexts(
        pos_texts=[split.pos_texts[i] for i in pos_rows],
        neg_texts=[split.neg_texts[i] for i in neg_rows],
        pos_groups=kept_pos,
        neg_groups=kept_neg,
        parts=split_contrast(kept_pos, kept_neg, test_size, seed),
    )


def barrier_layer_sweep(
    task: str | Task,
    model: HookedModel,
    layers: Sequence[int] | None = None,
    *,
    test_size: float = 0.3,
    max_texts: int | None = 600,
    seed: int = 0,
    n_components: int = 8000,
) -> pd.DataFrame:
    """Held-out accuracy and AUC of three barriers per layer; one row per (layer, barrier).

    The fit texts of the task's first split are subsampled (``max_texts``) and split into fit
    and test parts by group (:meth:`~lens_odesteer.evaluation.tasks.base.Split.row_groups`:
    the question for TruthfulQA), so no question is both fitted and tested.

    Columns: ``layer, barrier, accuracy, auc, n_fit, n_test, mean_norm``.
    """
    task_obj = task if isinstance(task, Task) else make_task(task, seed=seed)
    n_layers = model_n_layers(model)
    layers = list(range(0, n_layers, 3)) if layers is None else list(layers)
    if not layers or any(not 0 <= layer < n_layers for layer in layers):
        raise InvalidParameterError(f"`layers` must be in [0, {n_layers}); got {layers!r}.")
    data = grouped_fit_test(
        task_obj.splits()[0], test_size=test_size, max_texts=max_texts, seed=seed
    )
    hooks = [resid_post(layer) for layer in layers]
    pos = collect_activations(model, data.pos_texts, hooks, progress=False)
    neg = collect_activations(model, data.neg_texts, hooks, progress=False)
    assert isinstance(pos, dict) and isinstance(neg, dict)
    parts = data.parts
    rows: list[dict[str, Any]] = []
    for layer, hook in zip(layers, hooks, strict=True):
        p, n = pos[hook], neg[hook]
        p_fit, p_test = p[parts.pos_fit], p[parts.pos_test]
        n_fit, n_test = n[parts.neg_fit], n[parts.neg_test]
        test = torch.cat([p_test, n_test])
        labels = np.r_[np.ones(len(p_test), dtype=bool), np.zeros(len(n_test), dtype=bool)]
        barriers = {
            "ODESteer (kernel)": ODESteer(sketch_barrier(n_components=n_components)),
            "ITI (linear probe)": ITI(),
            "CAA (mean difference)": CAA(),
        }
        for name, steerer in barriers.items():
            steerer.fit(p_fit, n_fit)
            h = steerer.barrier_value(test).double().numpy()
            rows.append(
                {
                    "layer": layer,
                    "barrier": name,
                    "accuracy": float(((h >= 0) == labels).mean()),
                    "auc": binary_auc(h, labels),
                    "n_fit": int(len(p_fit) + len(n_fit)),
                    "n_test": len(test),
                    "mean_norm": float(torch.cat([p, n]).norm(dim=-1).mean()),
                }
            )
    return pd.DataFrame(rows)


def steered_layer_sweep(
    task: str,
    model: HookedModel,
    layers: Sequence[int],
    *,
    methods: Sequence[str] = ("CAA", "ODESteer"),
    out_dir: str | os.PathLike[str] | None = None,
    displacement: float = 0.1,
    quick: bool = True,
    task_kwargs: dict[str, Any] | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Primary test metric per (layer, method) at one displacement-matched strength.

    Runs :func:`~lens_odesteer.evaluation.evaluate` with ``strength="displacement"`` at each
    layer (its parts are stored per layer under ``out_dir`` and resume). Returns the summary
    rows of the primary metric with a ``layer`` column.
    """
    from lens_odesteer.evaluation.runner import evaluate

    frames = []
    for layer in layers:
        sub = None if out_dir is None else os.path.join(os.fspath(out_dir), f"layer{layer}")
        summary = evaluate(
            task,
            model,
            methods=list(methods),
            layer=layer,
            quick=quick,
            out_dir=sub,
            strength="displacement",
            grid=(displacement,),
            task_kwargs=task_kwargs,
            progress=progress,
            n_boot=1000,
        )
        primary = make_task(task, quick=quick, **(task_kwargs or {})).primary
        part = summary[(summary["metric"] == primary) & (summary["group"] == "all")].copy()
        part.attrs = {}  # the summary carries frames in attrs; concat compares attrs
        frames.append(part.assign(layer=layer))
    return pd.concat(frames, ignore_index=True)


def __getattr__(name: str) -> Any:
    if name == "auc":
        warnings.warn(
            "`lens_odesteer.evaluation.layers.auc` is deprecated; use "
            "`lens_odesteer.analysis.binary_auc` (the one AUC of the library).",
            DeprecationWarning,
            stacklevel=2,
        )
        return binary_auc
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
