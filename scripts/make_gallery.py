"""Draw docs/gallery/*.png and docs/gallery.md: one small picture of every figure type.

Everything comes from the real default model (SmolLM2-135M-Instruct, offline) and the built-in
sentiment pairs; nothing is made up. The figure data is built by :func:`gallery_data` (kept in
step by ``tests/viz/test_gallery.py``, which rebuilds the data and compares it with
``docs/gallery/gallery.json``); :func:`render` draws the figures from it and :func:`markdown`
writes the page, with the numbers in the captions.

The evaluation figures show a small real experiment, not the evaluation suite (which takes
hours): two folds of the sentiment pairs, CAA, StepODESteer and ODESteer at three norm-relative
strengths chosen on validation prompts, scored on held-out prompts by the next-token sentiment
margin ``log P(positive words) - log P(negative words)`` at the last prompt token, with the
next-token KL from the unsteered model as the fluency axis.

    .venv/bin/python scripts/make_gallery.py [--out docs]
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import torch

import lens_odesteer as lo
from lens_odesteer.analysis import (
    barrier_grid,
    binary_auc,
    field_variation,
    field_variation_over_splits,
    fit_projection,
    points_frame,
    search_barrier,
    split_by_group,
    step_logits,
    trajectory_frame,
)
from lens_odesteer.analysis.barrier_search import default_barrier_grid
from lens_odesteer.analysis.differences import difference_in_view, fit_difference_view
from lens_odesteer.analysis.model_runs.differences import step_logit_differences
from lens_odesteer.evaluation.stats import bootstrap_ci, paired_bootstrap
from lens_odesteer.steerers import StepODESteer
from lens_odesteer.viz import (
    plot_barrier_search,
    plot_field_variation,
    plot_field_variation_by_layer,
    plot_fluency_tradeoff,
    plot_layer_sweep,
    plot_level_sets,
    plot_logit_heatmap,
    plot_metric_vs_strength,
    plot_paired_forest,
    plot_target_logprob,
    plot_trajectories_3d,
    plot_trajectory_profile,
    save_figures,
)
from lens_odesteer.viz.eval_plots import strength_curve
from lens_odesteer.viz.interactive import plot_step_slider
from lens_odesteer.viz.theme import PAPER_WIDTH

LAYER = 15
LAYERS = (5, 15, 25)
STRENGTH = 0.2
GRID = (0.1, 0.2, 0.3)
PROMPT = "After watching the documentary about the ocean, I felt"
TARGETS = (" inspired", " sad")
POSITIVE_WORDS = (" great", " good", " amazing", " wonderful")
NEGATIVE_WORDS = (" terrible", " bad", " awful", " horrible")
N_PATHS = 6
#: Pixel width of each picture (paper-column width unless the figure needs more room).
WIDTHS = {
    "heatmap": 560,
    "slider": 620,
    "field_variation": 620,
    "field_variation_by_layer": 620,
}
SCALE = 1.25
#: Search candidates of the gallery (a few of the default grid, to keep it quick).
SEARCH_LABELS = (
    "linear(normalize=True, C=1)",
    "sketch(degree=2, gamma=0.1, C=1, n_components=8000)",
    "sketch(degree=2, gamma=10, C=1, n_components=8000)",
    "sketch(degree=3, gamma=10, C=1, n_components=8000)",
    "rff(bandwidth_x_median=1, C=10, n_components=8000)",
    "rff(bandwidth_x_median=2, C=10, n_components=8000)",
)


@dataclass
class GalleryData:
    """The frames behind every gallery figure, and the numbers its captions state."""

    frames: dict[str, Any] = field(default_factory=dict)
    numbers: dict[str, dict[str, Any]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def _r(value: float, digits: int = 5) -> float:
    """A number rounded for the JSON record (``digits`` significant digits)."""
    value = float(value)
    if not math.isfinite(value) or value == 0.0:
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def _methods(pos: torch.Tensor, neg: torch.Tensor, barrier: Any = None) -> dict[str, Any]:
    ode = lo.ODESteer(barrier).fit(pos, neg) if barrier is not None else lo.ODESteer().fit(pos, neg)
    step = StepODESteer(ode.barrier, stop=ode.stop, normalize=ode.normalize).fit(pos, neg)
    return {"ODESteer": ode, "StepODESteer": step, "CAA": lo.CAA().fit(pos, neg)}


def _extent(paths: pd.DataFrame, pad: float = 0.12) -> tuple[float, float, float, float]:
    x0, x1, y0, y1 = paths["x"].min(), paths["x"].max(), paths["y"].min(), paths["y"].max()
    span = max(x1 - x0, y1 - y0)
    return (x0 - pad * span, x1 + pad * span, y0 - pad * span, y1 + pad * span)


def _sentiment_margin(logprobs: torch.Tensor, pos_ids: list[int], neg_ids: list[int]) -> float:
    return float(torch.logsumexp(logprobs[pos_ids], 0) - torch.logsumexp(logprobs[neg_ids], 0))


@dataclass
class _Fold:
    """What scoring one fold of the small evaluation needs."""

    model: Any
    hook: str
    lengths: dict[str, int]
    base: dict[str, torch.Tensor]
    pos_ids: list[int]
    neg_ids: list[int]
    split: str
    rows: list[dict[str, Any]]


def _last_logprobs(model: Any, prompts: list[str], lengths: dict[str, int]) -> list[torch.Tensor]:
    """Next-token log-probabilities at each prompt's last token, from one padded batch."""
    with torch.inference_mode():
        logits = model(prompts)
    return [logits[i, lengths[p] - 1].float().log_softmax(-1) for i, p in enumerate(prompts)]


def _score(
    ctx: _Fold,
    label: str,
    steerer: Any,
    T: float,
    grid_index: int,
    phase: str,
    units: list[str],
) -> None:
    """Score ``units`` (prompts) steered by ``steerer`` at ``T``; append one row per prompt.

    The prompts run as one right-padded batch; the steering hook steers each row's own last
    token, and each row's prediction is read there.
    """
    if steerer is None:
        logprobs = [ctx.base[prompt] for prompt in units]
    else:
        with lo.steering(ctx.model, {ctx.hook: steerer}, T=T):
            logprobs = _last_logprobs(ctx.model, units, ctx.lengths)
    for unit, (prompt, lp) in enumerate(zip(units, logprobs, strict=True)):
        ctx.rows.append(
            {
                "split": ctx.split,
                "method": label,
                "phase": phase,
                "T": T,
                "T_index": grid_index,
                "displacement_frac": 0.0 if steerer is None else steerer.strength_for(T),
                "unit": f"{phase}-{ctx.split}-{unit}",
                "margin": _sentiment_margin(lp, ctx.pos_ids, ctx.neg_ids),
                "kl": float((lp.exp() * (lp - ctx.base[prompt])).sum()),
            }
        )


def _mini_evaluation(
    model: Any, data: Any, hook: str, pos_all: torch.Tensor, neg_all: torch.Tensor
) -> dict[str, pd.DataFrame]:
    """Two folds: fit, choose each method's strength on validation prompts, score held-out ones.

    ``pos_all`` and ``neg_all`` are the activations of every pair of ``data`` at ``hook``.
    """
    tok = model.tokenizer
    pos_ids = [tok.encode(w, add_special_tokens=False)[0] for w in POSITIVE_WORDS]
    neg_ids = [tok.encode(w, add_special_tokens=False)[0] for w in NEGATIVE_WORDS]
    index = {pair: i for i, pair in enumerate(data.pairs)}
    rows = []
    for fold in (0, 1):
        train, held = data.split(test_size=0.4, seed=fold)
        prompts = list(dict.fromkeys(p.prompt.rstrip() for p in held))[:24]
        val, test = prompts[:12], prompts[12:24]
        rows_fit = [index[pair] for pair in train.pairs]
        pos, neg = pos_all[rows_fit], neg_all[rows_fit]
        methods = _methods(pos, neg)
        lengths = {p: int(model.to_tokens(p).shape[1]) for p in prompts}
        base = dict(zip(prompts, _last_logprobs(model, prompts, lengths), strict=True))
        ctx = _Fold(model, hook, lengths, base, pos_ids, neg_ids, f"fold{fold}", rows)

        _score(ctx, "none", None, 0.0, 0, "test", test)
        for label, steerer in methods.items():
            Ts = [steerer.T_for(s) for s in GRID]
            for i, T in enumerate(Ts):
                _score(ctx, label, steerer, T, i, "val", val)
            val_rows = pd.DataFrame(
                [r for r in rows if r["method"] == label and r["split"] == f"fold{fold}"]
            )
            best = int(val_rows.groupby("T_index")["margin"].mean().idxmax())
            _score(ctx, label, steerer, Ts[best], best, "test", test)
    units = pd.DataFrame(rows)
    test = units[units["phase"] == "test"]
    summary_rows = []
    for method, g in test.groupby("method", sort=False):
        for metric in ("margin", "kl"):
            est, low, high = bootstrap_ci(g[metric].to_numpy())
            summary_rows.append(
                {
                    "group": "all",
                    "method": method,
                    "metric": metric,
                    "estimate": est,
                    "ci_low": low,
                    "ci_high": high,
                }
            )
    summary = pd.DataFrame(summary_rows)
    wide = test.pivot_table(index="unit", columns="method", values="margin")
    val = units[units["phase"] == "val"]
    baseline = (
        val[val["method"].isin(["CAA", "StepODESteer"])]
        .groupby(["method", "T_index"])["margin"]
        .mean()
        .groupby("method")
        .max()
        .idxmax()
    )
    paired_rows = []
    for method in ("none", "ODESteer", "StepODESteer", "CAA"):
        if method == baseline:
            continue
        est, low, high = paired_bootstrap(wide[method].to_numpy(), wide[baseline].to_numpy())
        paired_rows.append(
            {
                "group": "all",
                "method": method,
                "baseline": baseline,
                "metric": "margin",
                "estimate": est,
                "ci_low": low,
                "ci_high": high,
            }
        )
    return {"units": units, "summary": summary, "paired": pd.DataFrame(paired_rows)}


def gallery_data(model: Any = None) -> GalleryData:
    """Build every frame of the gallery from the real default model (a few minutes on CPU)."""
    torch.manual_seed(0)
    model = model if model is not None else lo.load_model(progress=False)
    data = lo.load_builtin("sentiment")
    hook = lo.resid_post(LAYER)
    out = GalleryData()
    clock = time.perf_counter()

    def lap(what: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        out.timings[what] = now - clock
        clock = now

    hooks = [lo.resid_post(layer) for layer in LAYERS]
    pos_all = lo.collect_activations(model, data.positive_texts(), hooks, progress=False)
    neg_all = lo.collect_activations(model, data.negative_texts(), hooks, progress=False)
    assert isinstance(pos_all, dict) and isinstance(neg_all, dict)
    splits = {
        layer: split_by_group(data, h, pos_all[h], neg_all[h], test_size=0.3, seed=0)
        for layer, h in zip(LAYERS, hooks, strict=True)
    }
    lap("activations")
    split = splits[LAYER]
    pos, neg = split.train_pos, split.train_neg
    start = split.test_neg[:N_PATHS]

    # Default barrier: the mean-difference view and the paths.
    methods = _methods(pos, neg)
    view = fit_projection(pos, neg)
    paths = trajectory_frame(methods, start, strength=STRENGTH, view=view, gap_to="StepODESteer")
    grid = barrier_grid(methods["ODESteer"], view, points=torch.cat([pos, neg]), resolution=50)
    points = points_frame(view, pos, neg)
    diag = field_variation(
        methods["ODESteer"],
        torch.cat([pos, neg]),
        labels=torch.arange(pos.shape[0] + neg.shape[0]) < pos.shape[0],
        T=paths.attrs["T"]["ODESteer"],
    )
    in_view = difference_in_view(paths, "ODESteer", "StepODESteer")
    out.frames.update(grid=grid, points=points, paths=paths, diagnostic=diag)
    out.numbers["level_sets"] = {
        "gap_full": _r(diag.median("gap")),
        "bend": _r(diag.median("bend")),
        "gap_in_view": _r(in_view["in_view_rel"]),
        "h_range": [_r(grid["h"].min()), _r(grid["h"].max())],
    }
    out.numbers["profile"] = {
        "mean_h_end": {
            m: _r(g.loc[g["step"] == g["step"].max(), "h"].mean())
            for m, g in paths.groupby("method", sort=False)
        },
        "gap_rel_end": {
            m: _r(g.loc[g["step"] == g["step"].max(), "gap_rel"].median())
            for m, g in paths.groupby("method", sort=False)
        },
    }

    lap("default barrier")
    # A barrier that bends (degree-3 sketch, gamma 10): the difference view.
    bent = _methods(pos, neg, lo.sketch_barrier(gamma=10.0, degree=3))
    dview = fit_difference_view(bent, start, strength=STRENGTH)
    dpaths = trajectory_frame(bent, start, strength=STRENGTH, view=dview, gap_to="StepODESteer")
    dgrid = barrier_grid(
        bent["ODESteer"], dview, extent=_extent(dpaths), resolution=50, aspect=0.75
    )
    bent_diag = field_variation(
        bent["ODESteer"], torch.cat([pos, neg]), T=dpaths.attrs["T"]["ODESteer"]
    )
    shown = difference_in_view(dpaths, "ODESteer", "StepODESteer")
    out.frames.update(dgrid=dgrid, dpaths=dpaths, bent_diagnostic=bent_diag)
    out.numbers["level_sets_difference"] = {
        "gap_full": _r(bent_diag.median("gap")),
        "bend": _r(bent_diag.median("bend")),
        "shown": _r(shown["shown"]),
    }
    diff_end = dpaths[dpaths["step"] == dpaths["step"].max()]
    out.numbers["profile_difference"] = {
        "gap_rel_end_ode": _r(diff_end.loc[diff_end["method"] == "ODESteer", "gap_rel"].median()),
        "gap_rel_end_caa": _r(diff_end.loc[diff_end["method"] == "CAA", "gap_rel"].median()),
    }

    lap("bent barrier")
    # Per-step logits of one prompt, in a difference view of its own activation.
    prompt_act = lo.collect_activations(model, [PROMPT], hook, progress=False)
    pview = fit_difference_view(methods, prompt_act, strength=STRENGTH)
    steps = step_logits(
        model, PROMPT, hook, methods, strength=STRENGTH, targets=list(TARGETS), view=pview
    )
    pgrid = barrier_grid(
        methods["ODESteer"],
        pview,
        extent=_extent(steps.steps),
        origin=steps.start,
        origin_label="the prompt's activation",
        resolution=35,
        aspect=0.75,
    )
    diffs = step_logit_differences(steps, ["CAA", "StepODESteer"])
    out.frames.update(steps=steps, pgrid=pgrid)
    out.numbers["heatmap"] = {
        "max_abs_ode_minus": {k: _r(v) for k, v in diffs.attrs["max_abs"].items()},
        "tracked_tokens": int(steps.tokens["token_id"].nunique()),
    }
    last = steps.tokens[steps.tokens["step"] == steps.tokens["step"].max()]
    out.numbers["targets"] = {
        "logprob_end": {
            f"{m}:{t.strip()}": _r(v)
            for (m, t), v in last[last["is_target"]]
            .set_index(["method", "token"])["logprob"]
            .items()
        },
        "kl_end": {
            m: _r(g.sort_values("step")["kl"].iloc[-1])
            for m, g in steps.steps.groupby("method", sort=False)
        },
    }
    out.numbers["slider"] = {"frames": int(steps.steps["step"].max()) + 1}

    lap("step logits")
    # 3-D view.
    view3 = fit_projection(pos, neg, n_components=3)
    paths3 = trajectory_frame(methods, start, strength=STRENGTH, view=view3)
    points3 = points_frame(view3, pos, neg)
    out.frames.update(paths3=paths3, points3=points3)
    out.numbers["trajectories_3d"] = {
        "explained_variance": [_r(v, 3) for v in view3.explained_variance]
    }
    out.numbers["field_variation"] = {
        "mean_pairwise_cosine": _r(diag.mean_pairwise_cosine),
        "gap_median": _r(diag.median("gap")),
    }

    lap("3-D view")
    # Per layer: the diagnostic and the barriers' held-out AUC.
    by_layer = field_variation_over_splits(splits)
    out.frames["by_layer"] = by_layer
    table = by_layer.set_index(["layer", "metric"])["value"]
    out.numbers["field_variation_by_layer"] = {
        str(layer): {
            "gap_median": _r(table[(layer, "gap_median")]),
            "bend_median": _r(table[(layer, "bend_median")]),
        }
        for layer in LAYERS
    }
    auc_rows = []
    for layer, sp in splits.items():
        acts, labels = sp.test_acts_and_labels()
        for name, steerer in (
            ("ODESteer (kernel barrier)", lo.ODESteer().fit(sp.train_pos, sp.train_neg)),
            ("ITI (linear probe)", lo.ITI().fit(sp.train_pos, sp.train_neg)),
        ):
            auc_rows.append(
                {
                    "layer": layer,
                    "barrier": name,
                    "auc": binary_auc(steerer.barrier_value(acts), labels),
                }
            )
    layer_frame = pd.DataFrame(auc_rows)
    out.frames["layer_auc"] = layer_frame
    out.numbers["layer_sweep"] = {
        f"{r.barrier.split(' ')[0]}@{r.layer}": _r(r.auc) for r in layer_frame.itertuples()
    }

    lap("per layer")
    # A (small) barrier search.
    candidates = [
        c for c in default_barrier_grid(torch.cat([pos, neg])) if c.label in SEARCH_LABELS
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = search_barrier(pos, neg, candidates=candidates)
    out.frames["search"] = search.frame
    out.numbers["barrier_search"] = {
        "best": search.best.label,
        "candidates": len(search.frame),
        "gap_median": {r.label: _r(r.gap_median) for r in search.frame.itertuples()},
    }

    lap("barrier search")
    # The small evaluation.
    ev = _mini_evaluation(model, data, hook, pos_all[hook], neg_all[hook])
    out.frames.update(ev)
    lap("evaluation")
    curve = strength_curve(ev["units"], "margin")
    out.numbers["metric_vs_strength"] = {
        "points_per_split": {
            f"{m}/{s}": len(g)
            for (m, s), g in curve[curve["phase"] == "val"].groupby(["method", "split"])
        },
        "test_margin": {
            r.method: _r(r.estimate)
            for r in ev["summary"][ev["summary"]["metric"] == "margin"].itertuples()
        },
    }
    out.numbers["fluency_tradeoff"] = {
        "test_kl": {
            r.method: _r(r.estimate)
            for r in ev["summary"][ev["summary"]["metric"] == "kl"].itertuples()
        }
    }
    out.numbers["paired_forest"] = {
        f"{r.method}-{r.baseline}": [_r(r.estimate), _r(r.ci_low), _r(r.ci_high)]
        for r in ev["paired"].itertuples()
    }
    return out


def render(data: GalleryData) -> dict[str, go.Figure]:
    """Every gallery figure, at its gallery width."""
    f = data.frames
    w = {name: WIDTHS.get(name, PAPER_WIDTH) for name in ORDER}
    steps = f["steps"]
    return {
        "level_sets": plot_level_sets(
            f["grid"], f["points"], f["paths"], width=w["level_sets"], inset=True
        ),
        "level_sets_difference": plot_level_sets(
            f["dgrid"],
            None,
            f["dpaths"],
            width=w["level_sets_difference"],
            max_paths=4,
            title="A bending barrier: the difference view",
        ),
        "profile": plot_trajectory_profile(f["paths"], width=w["profile"]),
        "profile_difference": plot_trajectory_profile(
            f["dpaths"], difference_from="StepODESteer", width=w["profile_difference"]
        ),
        "heatmap": plot_logit_heatmap(
            steps, difference_from=["CAA", "StepODESteer"], width=w["heatmap"]
        ),
        "targets": plot_target_logprob(steps, width=w["targets"]),
        "slider": plot_step_slider(steps, f["pgrid"], width=w["slider"]),
        "trajectories_3d": plot_trajectories_3d(
            f["points3"], f["paths3"], width=w["trajectories_3d"]
        ),
        "field_variation": plot_field_variation(f["diagnostic"], width=w["field_variation"]),
        "field_variation_by_layer": plot_field_variation_by_layer(
            f["by_layer"],
            metrics=["gap_median", "bend_median", "auc"],
            width=w["field_variation_by_layer"],
        ),
        "barrier_search": plot_barrier_search(f["search"], width=w["barrier_search"]),
        "metric_vs_strength": plot_metric_vs_strength(
            f["units"], "margin", width=w["metric_vs_strength"]
        ),
        "fluency_tradeoff": plot_fluency_tradeoff(
            f["summary"], "margin", fluency="kl", width=w["fluency_tradeoff"]
        ),
        "paired_forest": plot_paired_forest(f["paired"], "margin", width=w["paired_forest"]),
        "layer_sweep": plot_layer_sweep(f["layer_auc"], width=w["layer_sweep"]),
    }


#: Gallery order, the function that draws each figure, and what the figure shows.
ORDER: dict[str, tuple[str, str]] = {
    "level_sets": (
        "plot_level_sets",
        "The default barrier's level sets on the plane of the mean difference and the top "
        "residual PC (a slice), held-out negative activations steered at strength {strength} by "
        "ODESteer, its one step (StepODESteer) and CAA; equal scales, start and end markers. In "
        "this view ODESteer and StepODESteer end {gap_in_view} of the displacement apart; in all "
        "dimensions {gap_full} (bend {bend}). The subtitle says so, and the inset zooms on one "
        "path's ends.",
    ),
    "level_sets_difference": (
        "plot_level_sets",
        "A barrier that bends (degree-3 sketch, gamma 10) in the difference view (axes: the "
        "one-step direction and ODE end - one-step end), which shows {shown} of the distance "
        "between the end points: ODESteer curves away from its straight one step by {gap_full} "
        "of the displacement (bend {bend}).",
    ),
    "profile": (
        "plot_trajectory_profile",
        "h, the barrier's sigmoid σ(h) (not a calibrated probability) and |a| along the paths, "
        "and the full-dimensional distance from StepODESteer's path: ODESteer ends {ode_gap} "
        "of the displacement from it, CAA {caa_gap}.",
    ),
    "profile_difference": (
        "plot_trajectory_profile",
        '`difference_from="StepODESteer"` on the bending barrier: each method minus the one-step '
        "ablation, so the differences fill the panels (ODESteer ends {ode_gap} away).",
    ),
    "heatmap": (
        "plot_logit_heatmap",
        "Next-token log-probability changes per step for the prompt {prompt!r} (targets "
        "starred, ␣ = leading space); the bottom row is ODESteer minus CAA (largest |Δ| "
        "{minus_caa} nats) and minus StepODESteer ({minus_step} nats), each on its own scale.",
    ),
    "targets": (
        "plot_target_logprob",
        "The target tokens' log-probabilities and the KL from the unsteered prediction along "
        "the paths (KL at the end: ODESteer {kl_ode}, CAA {kl_caa} nats).",
    ),
    "slider": (
        "plot_step_slider",
        "Interactive in HTML and Jupyter ({frames} frames, no server): a slider over t/T moves "
        "each method along its path on the level sets and updates the next-token "
        "probabilities. The image is the last step.",
    ),
    "trajectories_3d": (
        "plot_trajectories_3d",
        "Data and paths in a 3-D view (mean difference and two residual PCs).",
    ),
    "field_variation": (
        "plot_field_variation",
        "The nonlinearity diagnostic of the default barrier on the fit data: pairwise field "
        "cosines (mean {cos}), the gap (median {gap}) and the turning of the step direction.",
    ),
    "field_variation_by_layer": (
        "plot_field_variation_by_layer",
        "Gap, bend and held-out AUC of the default ODESteer at layers {layers}.",
    ),
    "barrier_search": (
        "plot_barrier_search",
        "A barrier search over {candidates} candidates: held-out likelihood against gap; the "
        "star is the chosen one ({best}).",
    ),
    "metric_vs_strength": (
        "plot_metric_vs_strength",
        "A small real experiment (two folds; see the script): next-token sentiment margin "
        "against the strength, one line per split with one point per grid index.",
    ),
    "fluency_tradeoff": (
        "plot_fluency_tradeoff",
        "The same experiment's test margin against the next-token KL from the unsteered model, "
        "with 95% intervals.",
    ),
    "paired_forest": (
        "plot_paired_forest",
        "Paired differences in the margin against the best one-step method on validation, with "
        "95% bootstrap intervals.",
    ),
    "layer_sweep": (
        "plot_layer_sweep",
        "Held-out AUC of the kernel barrier and a linear probe at layers {layers}.",
    ),
}


def _pct(value: float) -> str:
    return f"{100 * float(value):.2f}%"


def markdown(numbers: dict[str, dict[str, Any]]) -> str:
    """The gallery page, with the numbers of ``numbers`` in its captions."""
    n = numbers
    fields = {
        "level_sets": {
            "strength": STRENGTH,
            "gap_in_view": _pct(n["level_sets"]["gap_in_view"]),
            "gap_full": _pct(n["level_sets"]["gap_full"]),
            "bend": _pct(n["level_sets"]["bend"]),
        },
        "level_sets_difference": {
            "shown": _pct(n["level_sets_difference"]["shown"]),
            "gap_full": _pct(n["level_sets_difference"]["gap_full"]),
            "bend": _pct(n["level_sets_difference"]["bend"]),
        },
        "profile": {
            "ode_gap": _pct(n["profile"]["gap_rel_end"]["ODESteer"]),
            "caa_gap": _pct(n["profile"]["gap_rel_end"]["CAA"]),
        },
        "profile_difference": {"ode_gap": _pct(n["profile_difference"]["gap_rel_end_ode"])},
        "heatmap": {
            "prompt": PROMPT,
            "minus_caa": f"{n['heatmap']['max_abs_ode_minus']['ODESteer - CAA']:.3g}",
            "minus_step": f"{n['heatmap']['max_abs_ode_minus']['ODESteer - StepODESteer']:.3g}",
        },
        "targets": {
            "kl_ode": f"{n['targets']['kl_end']['ODESteer']:.3g}",
            "kl_caa": f"{n['targets']['kl_end']['CAA']:.3g}",
        },
        "slider": {"frames": n["slider"]["frames"]},
        "field_variation": {
            "cos": f"{n['field_variation']['mean_pairwise_cosine']:.4f}",
            "gap": _pct(n["field_variation"]["gap_median"]),
        },
        "field_variation_by_layer": {"layers": ", ".join(map(str, LAYERS))},
        "barrier_search": {
            "candidates": n["barrier_search"]["candidates"],
            "best": n["barrier_search"]["best"],
        },
        "layer_sweep": {"layers": ", ".join(map(str, LAYERS))},
    }
    lines = [
        "# Figure gallery",
        "",
        "One small picture of every figure type of `lens_odesteer.viz`, drawn at the width of a",
        f"single paper column ({PAPER_WIDTH} px, about 3.3 inches) unless the figure needs more,",
        "from the real default model (SmolLM2-135M-Instruct, `blocks.15.hook_resid_post`, the",
        "built-in sentiment pairs). `scripts/make_gallery.py` draws them and writes this page;",
        "`tests/viz/test_gallery.py` rebuilds the data and checks it against",
        "`docs/gallery/gallery.json`. How to read the pictures: [analysis.md](analysis.md).",
        "",
    ]
    for name, (function, caption) in ORDER.items():
        text = caption.format(**fields.get(name, {}))
        lines += [
            f"## {name.replace('_', ' ').capitalize()} (`{function}`)",
            "",
            f"![{name}](gallery/{name}.png)",
            "",
            text,
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs", help="folder of gallery.md (default: docs)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    data = gallery_data()
    out = Path(args.out)
    folder = out / "gallery"
    folder.mkdir(parents=True, exist_ok=True)
    figures = render(data)
    save_figures(figures, folder, formats=("png",), scale=SCALE, static="require")
    (folder / "gallery.json").write_text(json.dumps(data.numbers, indent=1, sort_keys=True) + "\n")
    (out / "gallery.md").write_text(markdown(data.numbers))
    total = sum(p.stat().st_size for p in folder.glob("*.png"))
    print(f"wrote {len(figures)} figures ({total / 1e6:.2f} MB) and {out / 'gallery.md'}")
    print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in data.timings.items()))


if __name__ == "__main__":
    main()
