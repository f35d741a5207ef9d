"""Pick the layer instead of guessing it: held-out barrier accuracy/AUC per layer, and a small
steered sweep over layers.

:func:`barrier_layer_sweep` collects the contrast activations of a task's first split at every
requested layer in one pass, splits them (seeded) into fit and held-out halves, and fits three
barriers per layer: ODESteer's kernel barrier, ITI's linear probe and CAA's mean difference. The
held-out accuracy of ``sign(h)`` and the AUC of ``h`` say where the concept is linearly (or
kernel-) readable. :func:`steered_layer_sweep` runs :func:`~lens_odesteer.evaluation.evaluate`
at a few layers (displacement-matched strength, small sizes) for a few methods.

Example:
    >>> import numpy as np
    >>> auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
    0.75
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from lens_odesteer.activations import collect_activations
from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.evaluation.tasks import make_task
from lens_odesteer.evaluation.tasks.base import Task
from lens_odesteer.models.names import HookedModel, model_n_layers, resid_post
from lens_odesteer.steerers import CAA, ITI, ODESteer, sketch_barrier

__all__ = ["auc", "barrier_layer_sweep", "steered_layer_sweep"]


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (ties count half)."""
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise InvalidParameterError("AUC needs at least one positive and one negative label.")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


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

    Columns: ``layer, barrier, accuracy, auc, n_fit, n_test, mean_norm``.
    """
    task_obj = task if isinstance(task, Task) else make_task(task, seed=seed)
    n_layers = model_n_layers(model)
    layers = list(range(0, n_layers, 3)) if layers is None else list(layers)
    if not layers or any(not 0 <= layer < n_layers for layer in layers):
        raise InvalidParameterError(f"`layers` must be in [0, {n_layers}); got {layers!r}.")
    split = task_obj.splits()[0]
    pos_texts, neg_texts = list(split.pos_texts), list(split.neg_texts)
    rng = random.Random(seed)
    if max_texts is not None:
        rng.shuffle(pos_texts)
        rng.shuffle(neg_texts)
        pos_texts, neg_texts = pos_texts[: max_texts // 2], neg_texts[: max_texts // 2]
    hooks = [resid_post(layer) for layer in layers]
    pos = collect_activations(model, pos_texts, hooks, progress=False)
    neg = collect_activations(model, neg_texts, hooks, progress=False)
    assert isinstance(pos, dict) and isinstance(neg, dict)
    gen = torch.Generator().manual_seed(seed)
    perm_p = torch.randperm(len(pos_texts), generator=gen)
    perm_n = torch.randperm(len(neg_texts), generator=gen)
    cut_p = round(len(pos_texts) * (1 - test_size))
    cut_n = round(len(neg_texts) * (1 - test_size))
    rows: list[dict[str, Any]] = []
    for layer, hook in zip(layers, hooks, strict=True):
        p, n = pos[hook][perm_p], neg[hook][perm_n]
        p_fit, p_test, n_fit, n_test = p[:cut_p], p[cut_p:], n[:cut_n], n[cut_n:]
        test = torch.cat([p_test, n_test])
        labels = np.r_[np.ones(len(p_test)), np.zeros(len(n_test))]
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
                    "accuracy": float(((h >= 0) == labels.astype(bool)).mean()),
                    "auc": auc(h, labels),
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
