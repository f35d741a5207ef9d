"""Per-item reliability of steering: steerability slopes, anti-steerable items and geometry.

After Tan et al. (NeurIPS 2024, "Analyzing the generalization and reliability of steering
vectors"), a method's average effect can hide items it moves the wrong way. For every item
(test question, A/B item or prompt) and method:

* the *propensity* is the task's own measure of the behaviour on that item
  (:meth:`~lens_odesteer.evaluation.tasks.Task.propensity`: the logit of the behaviour-matching
  letter for the A/B behaviours, the logit of the probability mass on true answers for
  TruthfulQA MC, the primary metric, sign-aligned so higher is better, elsewhere);
* the *steerability* is the least-squares slope of the propensity against the signed strength
  over the strengths the item was scored at (steering away counts negative; 0 is the unsteered
  model, or the instruction alone for ``prompt+<method>``). The strength is the norm-relative
  displacement (a fraction of the mean residual norm), so slopes compare across methods;
* an item is *anti-steerable* when its slope is negative: steering toward the behaviour moved it
  away.

:func:`item_steerability` fits one slope per (split, method, item); :func:`reliability_summary`
reduces them per (group, method) to the anti-steerable fraction and the mean steerability with
percentile bootstrap intervals over items, and the spread of the slopes. The geometric
predictors Tan et al. and Braun et al. (2025) relate to reliability are measured on the fit
activations: :func:`training_geometry` (agreement of the per-pair differences with their mean,
separation of the classes along the mean difference) and :func:`method_geometry` (separation
along the direction a method actually moves activations).

Which strengths: likelihood tasks score every test item at each validation candidate strength
(phase ``"sweep"``, besides ``"test"`` at the chosen one); generation tasks use the validation
prompts, which are scored at every candidate anyway.

Example:
    >>> import pandas as pd
    >>> rows = [{"split": "s", "method": m, "phase": "test", "unit": u, "seed": 0,
    ...          "displacement_frac": x, "propensity": y}
    ...         for m, x in (("none", 0.0), ("CAA", 0.1))
    ...         for u, y in ((0, 0.0 if m == "none" else 1.0), (1, 0.0 if m == "none" else -1.0))]
    >>> items = item_steerability(pd.DataFrame(rows))
    >>> items["slope"].round(6).tolist(), items["anti_steerable"].tolist()
    ([10.0, -10.0], [False, True])
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from lens_odesteer.errors import InvalidParameterError, ShapeMismatchError
from lens_odesteer.evaluation.stats import bootstrap_ci

__all__ = [
    "RELIABILITY_PHASES",
    "item_steerability",
    "method_geometry",
    "propensity_frame",
    "reliability_frame",
    "reliability_summary",
    "training_geometry",
]

#: Phases whose rows give per-item points, by task kind.
RELIABILITY_PHASES: dict[str, tuple[str, ...]] = {
    "likelihood": ("test", "sweep"),
    "generation": ("val",),
}

_KEYS = ("split", "method", "unit")


def propensity_frame(units: pd.DataFrame, task: Any, phases: Sequence[str]) -> pd.DataFrame:
    """The points ``(split, method, unit, seed, strength, propensity)`` of ``task``'s rows.

    ``strength`` is the signed norm-relative displacement: ``direction * displacement_frac``
    with the direction of each point given by ``task.propensity`` (+1 toward, -1 away).
    """
    rows = units[units["phase"].isin(list(phases))]
    if rows.empty:
        return pd.DataFrame(columns=[*_KEYS, "seed", "strength", "propensity"])
    parts = []
    for _, part in rows.groupby("phase", sort=False):
        points = task.propensity(part)
        base = part.loc[points.index, ["split", "method", "unit", "seed", "displacement_frac"]]
        frame = base.assign(
            strength=points["direction"].to_numpy(dtype=float)
            * base["displacement_frac"].to_numpy(dtype=float),
            propensity=points["propensity"].to_numpy(dtype=float),
        )
        parts.append(frame.drop(columns="displacement_frac").reset_index(drop=True))
    return pd.concat(parts, ignore_index=True)


def _slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope and intercept of ``y`` on ``x`` (NaN when ``x`` does not vary)."""
    xc = x - x.mean()
    sxx = float((xc * xc).sum())
    if sxx <= 0.0:
        return float("nan"), float("nan")
    slope = float((xc * (y - y.mean())).sum() / sxx)
    return slope, float(y.mean() - slope * x.mean())


def item_steerability(
    points: pd.DataFrame,
    *,
    zero: dict[str, str] | None = None,
) -> pd.DataFrame:
    """One slope per (split, method, unit) from propensity points; see the module docstring.

    Args:
        points: rows with ``split, method, unit, propensity`` and either ``strength`` (signed)
            or ``displacement_frac``; several rows per strength (seeds) are averaged first.
        zero: per method, the method whose points give its strength-0 reference (default:
            ``"none"``; ``"prompt"`` for ``prompt+<method>`` when present). The reference's
            points are added to the method's at strength 0.

    Returns:
        Columns ``split, method, unit, slope, intercept, n_strengths, strength_max,
        propensity_at_0, anti_steerable``; items whose strengths do not vary (methods without
        steering) are left out.

    Raises:
        InvalidParameterError: a required column is missing.
    """
    frame = points.copy()
    if "strength" not in frame.columns and "displacement_frac" in frame.columns:
        frame["strength"] = frame["displacement_frac"]
    need = [*_KEYS, "strength", "propensity"]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise InvalidParameterError(
            f"item_steerability needs columns {need}; missing {missing} (have "
            f"{list(frame.columns)})."
        )
    frame = frame[np.isfinite(frame["propensity"].to_numpy(dtype=float))]
    mean = frame.groupby([*_KEYS, "strength"], sort=True, as_index=False)["propensity"].mean()
    methods = list(dict.fromkeys(mean["method"]))
    rows: list[dict[str, Any]] = []
    for method in methods:
        if method == "none":
            continue
        ref = (zero or {}).get(str(method))
        if ref is None:
            ref = "prompt" if str(method).startswith("prompt+") and "prompt" in methods else "none"
        own = mean[mean["method"] == method]
        base = mean[(mean["method"] == ref) & (mean["strength"] == 0.0)]
        both = pd.concat([own, base.assign(method=method)], ignore_index=True)
        both = both.groupby([*_KEYS, "strength"], sort=True, as_index=False)["propensity"].mean()
        for (split, unit), item in both.groupby(["split", "unit"], sort=True):
            x = item["strength"].to_numpy(dtype=float)
            y = item["propensity"].to_numpy(dtype=float)
            slope, intercept = _slope(x, y)
            if not np.isfinite(slope):
                continue
            at0 = item.loc[item["strength"] == 0.0, "propensity"]
            rows.append(
                {
                    "split": split,
                    "method": method,
                    "unit": unit,
                    "slope": slope,
                    "intercept": intercept,
                    "n_strengths": len(x),
                    "strength_max": float(np.abs(x).max()),
                    "propensity_at_0": float(at0.iloc[0]) if len(at0) else float("nan"),
                    "anti_steerable": bool(slope < 0.0),
                }
            )
    columns = [
        *_KEYS,
        "slope",
        "intercept",
        "n_strengths",
        "strength_max",
        "propensity_at_0",
        "anti_steerable",
    ]
    return pd.DataFrame(rows, columns=columns)


def reliability_summary(
    items: pd.DataFrame,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Per (group, method): anti-steerable fraction and steerability with bootstrap intervals.

    Groups are ``"all"`` (every split's items together) and each split. Columns: ``group,
    method, n_items, anti_steerable_frac, anti_ci_low, anti_ci_high, steerability_mean,
    steerability_ci_low, steerability_ci_high, steerability_median, steerability_sd,
    steerability_q10, steerability_q90``.
    """
    rows: list[dict[str, Any]] = []
    if items.empty:
        return pd.DataFrame(rows)
    groups = [("all", items)]
    if items["split"].nunique() > 1:
        groups += [(str(s), part) for s, part in items.groupby("split", sort=True)]
    for group, part in groups:
        for method, sub in part.groupby("method", sort=False):
            slopes = sub["slope"].to_numpy(dtype=float)
            anti = (slopes < 0).astype(float)
            frac, a_low, a_high = bootstrap_ci(anti, level=level, n_boot=n_boot, seed=seed)
            est, s_low, s_high = bootstrap_ci(slopes, level=level, n_boot=n_boot, seed=seed)
            rows.append(
                {
                    "group": group,
                    "method": method,
                    "n_items": int(slopes.size),
                    "anti_steerable_frac": frac,
                    "anti_ci_low": a_low,
                    "anti_ci_high": a_high,
                    "steerability_mean": est,
                    "steerability_ci_low": s_low,
                    "steerability_ci_high": s_high,
                    "steerability_median": float(np.median(slopes)),
                    "steerability_sd": float(slopes.std(ddof=1)) if slopes.size > 1 else 0.0,
                    "steerability_q10": float(np.quantile(slopes, 0.1)),
                    "steerability_q90": float(np.quantile(slopes, 0.9)),
                }
            )
    return pd.DataFrame(rows)


def _check_classes(pos: Tensor, neg: Tensor) -> None:
    if pos.ndim != 2 or neg.ndim != 2 or pos.shape[1] != neg.shape[1]:
        raise ShapeMismatchError(
            f"Expected two [n, d_model] activation matrices of the same width; got "
            f"{tuple(pos.shape)} and {tuple(neg.shape)}."
        )
    if len(pos) < 2 or len(neg) < 2:
        raise InvalidParameterError(
            f"Need at least 2 rows per class for the geometry; got {len(pos)} and {len(neg)}."
        )


def _d_prime(pos: np.ndarray, neg: np.ndarray) -> float:
    """``(mean+ - mean-) / pooled sd`` of two sets of 1-D projections."""
    pooled = np.sqrt((pos.var(ddof=1) + neg.var(ddof=1)) / 2.0)
    return float((pos.mean() - neg.mean()) / pooled) if pooled > 0 else float("inf")


def training_geometry(
    pos: Float[Tensor, "n_pos d_model"],
    neg: Float[Tensor, "n_neg d_model"],
    groups: tuple[Sequence[Hashable], Sequence[Hashable]] | None = None,
) -> dict[str, float]:
    """Geometric predictors of steerability from the fit activations of one split.

    * ``agreement``: the mean cosine of each pair's difference ``pos_g - neg_g`` with the mean
      difference (pairs by group id, each side's rows of a group averaged; default: row ``i``
      of each class) -- near 1 when every pair points the same way (Braun et al., 2025); NaN
      when no group has rows in both classes;
    * ``agreement_sd``: the spread of those cosines;
    * ``separation``: d' of the two classes' projections on the mean-difference direction;
    * ``n_pairs``.

    Example:
        >>> import torch
        >>> gen = torch.Generator().manual_seed(0)
        >>> neg = torch.randn(50, 8, generator=gen)
        >>> g = training_geometry(neg + 3.0 * torch.eye(8)[0], neg)
        >>> round(g["agreement"], 3), g["separation"] > 2
        (1.0, True)
    """
    _check_classes(pos, neg)
    p, n = pos.detach().double().cpu(), neg.detach().double().cpu()
    if groups is None:
        k = min(len(p), len(n))
        diffs = p[:k] - n[:k]
    else:
        pg, ng = list(groups[0]), list(groups[1])
        if len(pg) != len(p) or len(ng) != len(n):
            raise ShapeMismatchError(
                f"`groups` has {len(pg)}/{len(ng)} ids for {len(p)}/{len(n)} rows; give one id "
                "per row."
            )
        rows_p: dict[Hashable, list[int]] = {}
        rows_n: dict[Hashable, list[int]] = {}
        for i, g in enumerate(pg):
            rows_p.setdefault(g, []).append(i)
        for i, g in enumerate(ng):
            rows_n.setdefault(g, []).append(i)
        shared = [g for g in rows_p if g in rows_n]
        diffs = (
            torch.stack([p[rows_p[g]].mean(0) - n[rows_n[g]].mean(0) for g in shared])
            if shared
            else p[:0]
        )
    mean_diff = p.mean(0) - n.mean(0)
    unit = mean_diff / mean_diff.norm().clamp_min(1e-30)
    cos = (diffs @ unit) / diffs.norm(dim=1).clamp_min(1e-30)
    return {
        "agreement": float(cos.mean()) if len(cos) else float("nan"),
        "agreement_sd": float(cos.std()) if len(cos) > 1 else 0.0,
        "separation": _d_prime((p @ unit).numpy(), (n @ unit).numpy()),
        "n_pairs": float(len(diffs)),
    }


def method_geometry(
    steerer: Any,
    pos: Float[Tensor, "n_pos d_model"],
    neg: Float[Tensor, "n_neg d_model"],
    T: float,
) -> dict[str, float]:
    """Separation of the classes along the direction ``steerer`` moves the negatives at ``T``.

    The direction is the mean displacement ``steer(neg, T) - neg`` (any method, also the
    rotations and transport maps). Returns ``direction_separation`` (d' along it) and
    ``direction_cosine`` (its cosine with the mean difference); empty for ``T <= 0`` or a
    method that does not move the negatives.
    """
    _check_classes(pos, neg)
    if T <= 0:
        return {}
    with torch.no_grad():
        moved = steerer.steer(neg, T)
    step = (moved.double().cpu() - neg.double().cpu()).mean(0)
    if float(step.norm()) == 0.0:
        return {}
    unit = step / step.norm()
    p, n = pos.detach().double().cpu(), neg.detach().double().cpu()
    mean_diff = p.mean(0) - n.mean(0)
    return {
        "direction_separation": _d_prime((p @ unit).numpy(), (n @ unit).numpy()),
        "direction_cosine": float(mean_diff @ unit / mean_diff.norm().clamp_min(1e-30)),
    }


def reliability_frame(
    units: pd.DataFrame,
    task: Any,
    *,
    geometry: dict[str, dict[str, float]] | None = None,
    method_geom: dict[str, dict[str, float]] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(summary, items)`` for an evaluation's unit rows (what ``reliability.csv`` holds).

    ``geometry`` (split -> :func:`training_geometry`) and ``method_geom`` (``"split/method"``
    -> :func:`method_geometry`) are joined as columns: per split for a split group, averaged
    over splits for ``"all"``.
    """
    phases = RELIABILITY_PHASES.get(task.kind, ("val",))
    items = item_steerability(propensity_frame(units, task, phases))
    summary = reliability_summary(items, n_boot=n_boot, seed=seed)
    if summary.empty:
        return summary, items
    summary.insert(0, "task", task.name)
    summary.insert(3, "points_from", "+".join(phases))
    geo = pd.DataFrame.from_dict(geometry or {}, orient="index")
    mgeo = pd.DataFrame(
        [
            {"split": k.partition("/")[0], "method": k.partition("/")[2], **v}
            for k, v in (method_geom or {}).items()
        ]
    )
    extra: list[dict[str, Any]] = []
    for _, row in summary.iterrows():
        values: dict[str, Any] = {}
        splits = list(geo.index) if row["group"] == "all" else [row["group"]]
        if not geo.empty:
            sub = geo.loc[[s for s in splits if s in geo.index]]
            values.update({f"fit_{c}": float(sub[c].mean()) for c in geo.columns if len(sub)})
        if not mgeo.empty:
            sub = mgeo[(mgeo["method"] == row["method"]) & mgeo["split"].isin(splits)]
            cols = [c for c in mgeo.columns if c not in ("split", "method")]
            values.update({c: float(sub[c].mean()) for c in cols if len(sub)})
        extra.append(values)
    return pd.concat([summary, pd.DataFrame(extra, index=summary.index)], axis=1), items
