"""One call that compares ODESteer with one-step steering on a model and writes an HTML report.

:func:`comparison_report` fits (or takes) an ODESteer and its one-step baselines, builds the
analysis frames (views, barrier level sets, paths, per-step logits), draws the figures and writes
a self-contained ``report.html`` (plotly.js inlined once; it opens offline, the interactive figure
included), the frames as CSV, and each figure as PNG/SVG/PDF when static export is available.

The headline number is the **full-dimensional** gap between multi-step and one-step steering
(:func:`~lens_odesteer.analysis.nonlinearity.field_variation`'s median ``|ODE end - one-step
end| / displacement``): a 2-D view of activation space hides most of it, so every comparison
figure comes with a difference view in which the separation is drawn at its true size
(:mod:`lens_odesteer.analysis.differences`). With ``min_bend=`` the report also searches for a
barrier whose flow bends (:func:`~lens_odesteer.analysis.barrier_search.search_barrier`) and
shows it beside the default one, or says that the data gives none.

Strengths are matched: ODESteer and StepODESteer integrate for the same arc length ``T`` (default
``|mu+ - mu-|``), and CAA uses the multiplier that moves by the same distance, ``T / |mu+ - mu-|``.
"""

from __future__ import annotations

import html
import json
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import torch
from jaxtyping import Float
from torch import Tensor

from lens_odesteer._atomic import atomic_write_text
from lens_odesteer._validation import as_float_acts, check_finite_float, check_positive_int
from lens_odesteer._version import __version__
from lens_odesteer.activations import collect_activations
from lens_odesteer.analysis.barrier_search import search_barrier
from lens_odesteer.analysis.differences import (
    difference_in_view,
    fit_difference_view,
    one_step_label,
)
from lens_odesteer.analysis.level_sets import barrier_grid, points_frame
from lens_odesteer.analysis.model_runs.logits import StepLogits, step_logits
from lens_odesteer.analysis.nonlinearity import FieldVariation, field_variation, has_flow_path
from lens_odesteer.analysis.projection import Projection, fit_projection
from lens_odesteer.analysis.trajectories import reference_label, trajectory_frame
from lens_odesteer.analysis.trajectories import strengths as resolve_strengths
from lens_odesteer.errors import InvalidParameterError, ShapeMismatchError
from lens_odesteer.models.names import HookedModel, validate_hook_name
from lens_odesteer.steerers import CAA, AbstractSteerer, ODESteer, StepODESteer
from lens_odesteer.viz.export import save_figures, static_export_status
from lens_odesteer.viz.interactive import plot_step_slider
from lens_odesteer.viz.level_sets import plot_level_sets
from lens_odesteer.viz.step_logits import plot_logit_heatmap, plot_target_logprob, token_text
from lens_odesteer.viz.trajectories import plot_trajectory_profile

#: Suffix of the labels of the bent barrier's methods.
BENT = " (bent)"


@dataclass
class ComparisonReport:
    """What :func:`comparison_report` wrote and computed.

    Attributes:
        html_path: the self-contained HTML report.
        figures: name -> plotly figure (``level_sets``, ``level_sets_difference``, ``profile``,
            ``profile_difference``, ``heatmap``, ``targets``, ``slider``, and the ``*_bent``
            figures of a bent barrier).
        frames: name -> tidy frame (``grid``, ``points``, ``paths``, ``paths_difference``,
            ``step_tokens``, ``step_summary``, ``summary``, ``diagnostic``, ...), each also
            written as CSV next to the report.
        files: name -> every file written for it.
        summary: headline numbers. ``relative_end_gap`` is the full-dimensional gap (the
            diagnostic's median ``|ODE end - one-step end| / displacement`` over the fit
            activations), ``relative_end_gap_p90`` its 90th percentile, ``bend`` the part due to
            the barrier's curvature, ``relative_end_gap_paths`` the same gap on the drawn paths,
            ``relative_end_gap_in_view`` what the mean-difference view shows of it; ``bent``
            the same numbers for the searched barrier (or None, with ``bent_note`` saying why).
        static_skipped: why PNG/SVG/PDF were not written, or None when they were.
    """

    html_path: Path
    figures: dict[str, go.Figure]
    frames: dict[str, pd.DataFrame]
    files: dict[str, list[Path]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    static_skipped: str | None = None


def default_methods(
    pos_acts: Tensor, neg_acts: Tensor, ode: ODESteer | None, T: float | None
) -> tuple[dict[str, AbstractSteerer], dict[str, float]]:
    """ODESteer, StepODESteer (same barrier settings) and CAA at displacement-matched strengths."""
    ode = ode if ode is not None else ODESteer().fit(pos_acts, neg_acts)
    ode._check_is_fitted()
    step = _step_of(ode, pos_acts, neg_acts)
    caa = CAA().fit(pos_acts, neg_acts)
    gap = float(caa.direction_.norm())
    if gap == 0.0:
        raise InvalidParameterError(
            "The positive and negative means are equal; there is no direction to steer along."
        )
    strength = gap if T is None else check_finite_float(T, "T", minimum=0.0, strict=True)
    methods: dict[str, AbstractSteerer] = {"ODESteer": ode, "StepODESteer": step, "CAA": caa}
    return methods, {"ODESteer": strength, "StepODESteer": strength, "CAA": strength / gap}


def _step_of(ode: ODESteer, pos: Tensor, neg: Tensor) -> ODESteer:
    """The one-step ablation with the identical barrier template (and seed)."""
    step = StepODESteer(
        ode.barrier, stop=ode.stop, normalize=ode.normalize, min_grad_norm=ode.min_grad_norm
    )
    return step.fit(pos, neg)


def _summary_frame(paths: pd.DataFrame, steps: StepLogits | None) -> pd.DataFrame:
    last = paths.loc[paths.groupby(["method", "row"])["step"].idxmax()]
    first = paths[paths["step"] == 0].set_index(["method", "row"])
    rows = []
    for method in paths["method"].unique():
        sub = last[last["method"] == method]
        start = first.loc[method]
        row: dict[str, Any] = {
            "method": method,
            "T": paths.attrs["T"][method],
            "mean_h_start": float(start["h"].mean()),
            "mean_h_end": float(sub["h"].mean()),
            "share_h_end_positive": float((sub["h"] >= 0).mean()),
            "mean_displacement": float(sub["displacement"].mean()),
            "mean_path_length": float(sub["path_length"].mean()),
            "mean_norm_change": float((sub["norm"].to_numpy() - start["norm"].to_numpy()).mean()),
        }
        if "gap_rel" in sub:
            row[f"gap_to_{paths.attrs['gap_to']}"] = float(sub["gap_rel"].median())
        if steps is not None:
            st = steps.steps
            row["next_token_kl_end"] = float(
                st[st["method"] == method].sort_values("step")["kl"].iloc[-1]
            )
        rows.append(row)
    return pd.DataFrame(rows)


def _diagnostic(
    steerer: AbstractSteerer, pos: Tensor, neg: Tensor, T: float
) -> FieldVariation | None:
    """How far multi-step steering is from one step here (None for non-flow methods)."""
    if T <= 0 or not has_flow_path(steerer):
        return None
    labels = torch.cat([torch.ones(pos.shape[0]), torch.zeros(neg.shape[0])]).bool()
    return field_variation(steerer, torch.cat([pos, neg]), labels=labels, T=T)


def _table_html(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0, classes="tbl")


def _render_html(
    title: str,
    intro: list[tuple[str, str]],
    summary: pd.DataFrame,
    notes: list[str],
    sections: Sequence[tuple[str, str, Sequence[str]]],
    figures: Mapping[str, go.Figure],
    captions: Mapping[str, str],
) -> str:
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:Arial,Helvetica,sans-serif;max-width:1100px;margin:2em auto;"
        "color:#222;line-height:1.45}h1{font-size:1.6em}h2{font-size:1.35em;margin-top:2.2em;"
        "border-bottom:1px solid #ddd}h3{font-size:1.1em;margin-top:1.8em}"
        ".tbl{border-collapse:collapse;font-size:0.92em}.tbl td,.tbl th{padding:4px 10px;"
        "border-bottom:1px solid #ddd;text-align:right}.tbl th{background:#f3f3f3}"
        ".cap{color:#444;font-size:0.93em;max-width:900px}"
        ".head{font-size:1.05em;max-width:900px;background:#f6f8fa;padding:0.6em 1em}</style>"
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<table class='tbl'>",
    ]
    parts += [
        f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
        f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
        for k, v in intro
    ]
    parts.append("</table><h2>Summary</h2>")
    if notes:
        parts.append(f"<p class='head'>{html.escape(notes[0])}</p>")
    parts.append(_table_html(summary))
    parts += [f"<p class='cap'>{html.escape(n)}</p>" for n in notes[1:]]
    first = True
    for heading, text, names in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        if text:
            parts.append(f"<p class='cap'>{html.escape(text)}</p>")
        for name in names:
            fig = figures[name]
            parts.append(f"<h3>{html.escape(name.replace('_', ' ').capitalize())}</h3>")
            parts.append(f"<p class='cap'>{html.escape(captions.get(name, ''))}</p>")
            parts.append(fig.to_html(full_html=False, include_plotlyjs=first, auto_play=False))
            first = False
    parts.append(f"<p class='cap'>Written by lens_odesteer {__version__}.</p></body></html>")
    return "\n".join(parts)


def _pct(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.2f}%"


def _gap_sentence(diag: FieldVariation | None, ref: str, one: str) -> str:
    if diag is None:
        return ""
    gap, bend = diag.median("gap"), diag.median("bend")
    text = (
        f"Full-dimensional gap of {ref} from one step of its field ({one}): {_pct(gap)} of the "
        f"displacement (median over the {len(diag.rows)} fit activations; 90th percentile "
        f"{_pct(diag.quantile('gap', 0.9))})"
    )
    if diag.tangent:
        text += f", of which the barrier's curvature (bend) is {_pct(bend)}"
    return text + "."


@dataclass
class _Section:
    """The figures and numbers of one barrier (the default one, or a bent one)."""

    figures: dict[str, go.Figure]
    frames: dict[str, pd.DataFrame]
    captions: dict[str, str]
    diagnostic: FieldVariation | None
    in_view: dict[str, float] | None
    in_diff_view: dict[str, float] | None
    steps: StepLogits | None
    ref: str
    one: str


def _extent(paths: pd.DataFrame, pad: float = 0.12) -> tuple[float, float, float, float]:
    x0, x1 = float(paths["x"].min()), float(paths["x"].max())
    y0, y1 = float(paths["y"].min()), float(paths["y"].max())
    span = max(x1 - x0, y1 - y0, 1e-9)
    return x0 - pad * span, x1 + pad * span, y0 - pad * span, y1 + pad * span


def _section(
    model: HookedModel,
    hook: str,
    chosen: Mapping[str, AbstractSteerer],
    strengths: Mapping[str, float],
    pos: Tensor,
    neg: Tensor,
    start: Tensor,
    *,
    prompt: str,
    prompt_act: Tensor,
    targets: Sequence[str | int] | None,
    resolution: int,
    suffix: str,
    full: bool,
    interactive: bool,
    size: tuple[int, int] | None,
) -> _Section:
    """Frames, figures and captions of one set of methods (``full``: every figure)."""
    width = size[0] if size is not None else None
    ref = reference_label(chosen, None)
    one = one_step_label(chosen, ref)
    diag = _diagnostic(chosen[ref], pos, neg, strengths[ref])
    gap_text = _gap_sentence(diag, ref, one)
    figures: dict[str, go.Figure] = {}
    frames: dict[str, pd.DataFrame] = {}
    captions: dict[str, str] = {}
    kw: dict[str, Any] = {} if width is None else {"width": width}

    # The difference view: one-step direction x (ODE end - one-step end), at true size.
    dview = fit_difference_view(chosen, start, T=strengths, ode=ref, one_step=one)
    dpaths = trajectory_frame(chosen, start, T=strengths, view=dview, gap_to=one)
    dgrid = barrier_grid(
        chosen[ref], dview, extent=_extent(dpaths), resolution=resolution, aspect=0.75
    )
    diff_numbers = difference_in_view(dpaths, ref, one)
    frames[f"paths_difference{suffix}"] = dpaths
    frames[f"grid_difference{suffix}"] = dgrid
    figures[f"level_sets_difference{suffix}"] = plot_level_sets(
        dgrid,
        None,
        dpaths,
        max_paths=5,
        title=f"{ref} vs {one}: the difference view",
        **kw,
    )
    captions[f"level_sets_difference{suffix}"] = (
        f"A view spanned by the mean one-step direction and the mean of ({ref} end - {one} end), "
        "centred on the mean start point, equal scales: the separation is drawn at its true "
        f"size (this view shows {_pct(diff_numbers['shown'])} of the full-dimensional distance "
        f"between the end points; 5 of the paths are drawn). {gap_text} Background: {ref}'s "
        "barrier h on this plane (a slice), black line h = 0."
    )
    in_view = None
    if full:
        view = fit_projection(pos, neg, method="mean_diff")
        paths = trajectory_frame(chosen, start, T=strengths, view=view, gap_to=one)
        grid = barrier_grid(
            chosen[ref], view, points=torch.cat([pos, neg, start]), resolution=resolution
        )
        extent = grid.attrs["extent"]
        inside = paths["x"].between(extent[0], extent[1]) & paths["y"].between(extent[2], extent[3])
        if not bool(inside.all()):
            lo_x, hi_x = min(extent[0], paths["x"].min()), max(extent[1], paths["x"].max())
            lo_y, hi_y = min(extent[2], paths["y"].min()), max(extent[3], paths["y"].max())
            grid = barrier_grid(
                chosen[ref], view, extent=(lo_x, hi_x, lo_y, hi_y), resolution=resolution
            )
        points = points_frame(view, pos, neg, steerer=chosen[ref])
        in_view = difference_in_view(paths, ref, one)
        frames.update(grid=grid, points=points, paths=paths)
        figures["level_sets"] = plot_level_sets(grid, points, paths, inset=True, **kw)
        captions["level_sets"] = (
            f"{ref}'s barrier h on the plane through the data mean spanned by the mean "
            "difference and the top residual principal component (a slice; black line h = 0). "
            "Dots: fitted activations. Lines: paths from held-out negative activations, a white "
            "circle at the start and a marker at the end; one-step methods are drawn wider and "
            f"underneath. In this view the {ref} and {one} ends are "
            f"{_pct(in_view['in_view_rel'])} of the displacement apart, while in all dimensions "
            f"they are {_pct(in_view['full_rel'])} apart: the inset zooms on the end points of "
            "one path (the one with the median gap), and the difference view below shows the "
            f"separation at its true size. {gap_text}"
        )
        figures["profile"] = plot_trajectory_profile(paths, **kw)
        captions["profile"] = (
            f"Barrier h, its sigmoid σ(h) and the norm |a| along each path, all judged by {ref}'s "
            "barrier; the last panel is the full-dimensional distance of each path from "
            f"{one}'s path at the same share of the strength, over the displacement. σ(h) is "
            "the barrier's own sigmoid, not a calibrated probability (the kernel barrier is "
            "regularised: values near 0.5 can still separate the classes perfectly; see its "
            "AUC in the diagnostic). Thin lines: single activations; thick: their mean. "
            f"{gap_text}"
        )
    figures[f"profile_difference{suffix}"] = plot_trajectory_profile(
        dpaths, difference_from=one, **kw
    )
    captions[f"profile_difference{suffix}"] = (
        f"Each method minus {one} at the same path and share of the strength: the changes in "
        f"h, σ(h) and |a| that multi-step integration adds, and the distance from {one}'s path. "
        f"{gap_text}"
    )

    # Per-step next-token effects of the prompt's last token, in a view fitted on it.
    pview = fit_difference_view(chosen, prompt_act, T=strengths, ode=ref, one_step=one)
    steps = step_logits(
        model, prompt, hook, chosen, T=strengths, targets=targets, reference=ref, view=pview
    )
    baselines = [m for m in chosen if m not in (ref, one)] + [one]
    figures[f"heatmap{suffix}"] = plot_logit_heatmap(
        steps, difference_from=baselines, methods=None if full else [], **kw
    )
    target_text = (
        "Starred rows are the target tokens ("
        + ", ".join(
            token_text(str(t))
            for t in dict.fromkeys(steps.tokens.loc[steps.tokens["is_target"], "token"])
        )
        + "); the others are the likely tokens that changed most."
        if bool(steps.tokens["is_target"].any())
        else "No target tokens were given: the rows are the likely tokens that changed most."
    )
    captions[f"heatmap{suffix}"] = (
        "Change in next-token log-probability at each step, when the step's activation is "
        "patched in at the hook (the rest of the forward pass runs as usual); ␣ marks a leading "
        f"space. {target_text} "
        + ("Top row: each method on one shared colour scale. " if full else "")
        + f"Bottom row: {ref} minus each other method, each with its own colour scale."
    )
    frames[f"step_tokens{suffix}"] = steps.tokens
    frames[f"step_summary{suffix}"] = steps.steps
    if full:
        figures["targets"] = plot_target_logprob(steps, **kw)
        captions["targets"] = (
            "Log-probabilities of the tracked tokens and the KL divergence of the steered from "
            f"the unsteered next-token distribution, against t/T. {target_text}"
        )
    if interactive and full:
        st = steps.steps
        pgrid = barrier_grid(
            chosen[ref],
            pview,
            extent=_extent(st),
            origin=steps.start,
            origin_label="the prompt's activation",
            resolution=max(20, resolution // 2),
            aspect=0.75,
        )
        figures["slider"] = plot_step_slider(steps, pgrid, **kw)
        captions["slider"] = (
            "Interactive: drag the slider (or press play) to move along the paths of the "
            "prompt's last token. Left: each method's position in the difference view of this "
            f"activation, on {ref}'s barrier (a slice through the prompt's activation). Right: "
            "the next-token probabilities at that step. The exported image shows the last step."
        )
    order = ["level_sets", "level_sets_difference", "profile", "profile_difference"]
    order = [n + (suffix if n.endswith("difference") else "") for n in order]
    figures = {n: figures[n] for n in order if n in figures} | {
        n: f for n, f in figures.items() if n not in order
    }
    return _Section(
        figures=figures,
        frames=frames,
        captions=captions,
        diagnostic=diag,
        in_view=in_view,
        in_diff_view=diff_numbers,
        steps=steps,
        ref=ref,
        one=one,
    )


def _bent_barrier(pos: Tensor, neg: Tensor, min_bend: float) -> tuple[ODESteer | None, str, str]:
    """The most likely barrier whose flow bends at least ``min_bend``, a sentence, its label."""
    with warnings.catch_warnings():
        # "no candidate bends" is said in the report instead of warned.
        warnings.simplefilter("ignore", UserWarning)
        result = search_barrier(pos, neg, min_bend=min_bend, refit=True)
    eligible = result.frame.get("eligible")
    if eligible is None or not bool(eligible.any()):
        largest = result.frame.loc[result.frame["bend_median"].astype(float).idxmax()]
        note = (
            f"search_barrier found no barrier whose flow bends by at least {_pct(min_bend)} of "
            f"the displacement on these activations (largest median bend "
            f"{_pct(float(largest['bend_median']))}, {largest['label']}), so no bent-barrier "
            "figures are shown: here multi-step and one-step steering differ only as the "
            "default barrier's figures show."
        )
        return None, note, ""
    row = result.frame.loc[result.frame["best"]].iloc[0]
    return (
        result.steerer,
        f"search_barrier(min_bend={min_bend:g}) chose {result.best.label} (held-out AUC "
        f"{float(row['test_auc']):.3f}, median bend on its held-out rows "
        f"{_pct(float(row['bend_median']))}), refitted on all fit activations.",
        result.best.label,
    )


def comparison_report(
    model: HookedModel,
    hook: str,
    pos_acts: Tensor,
    neg_acts: Tensor,
    out_dir: str | Path,
    *,
    ode: ODESteer | None = None,
    methods: Mapping[str, AbstractSteerer] | None = None,
    strength: float | Mapping[str, float] | None = None,
    T: float | Mapping[str, float] | None = None,
    start_acts: Float[Tensor, "batch d_model"] | None = None,
    prompt: str = "I think that this is",
    targets: Sequence[str | int] | None = None,
    n_paths: int = 8,
    resolution: int = 70,
    title: str | None = None,
    static_formats: Sequence[str] = ("png", "svg", "pdf"),
    figure_size: tuple[int, int] | None = None,
    extra_sections: Mapping[str, go.Figure] | None = None,
    extra_notes: Sequence[str] = (),
    min_bend: float | None = None,
    bent: ODESteer | None = None,
    interactive: bool = True,
) -> ComparisonReport:
    """Compare ODESteer with one-step steering at ``hook`` and write ``out_dir/report.html``.

    Args:
        model: the model the activations came from.
        hook: their hook name (e.g. ``lo.resid_post(15)``).
        pos_acts, neg_acts: ``[n, d_model]`` contrast activations (fit data of the methods and
            the view).
        out_dir: folder for ``report.html``, CSV frames and exported figures (created).
        ode: a fitted ODESteer (default: fitted here with default settings).
        methods: the methods to compare (label -> fitted steerer; the first multi-step one is
            the reference barrier). Default: ODESteer, StepODESteer and CAA.
        strength: norm-relative strength (the same meaning for every method), one number or
            one per label. Default: the displacement ``|mu+ - mu-|`` of CAA at ``T = 1``.
        T: instead of ``strength``, native strengths (one number or one per label; for the
            default methods one number is ODESteer's arc length, matched for the others).
        start_acts: activations the paths start from (default: up to ``n_paths`` negatives).
        prompt, targets: the per-step logit analysis (targets: single tokens to follow; without
            them the figures follow the likely tokens that changed most, and say so).
        resolution: grid points per axis of the level-set figures.
        static_formats: formats exported besides HTML (skipped with a note when no browser).
        figure_size: ``(width, height)`` in pixels of the figures (default: their own).
        extra_sections, extra_notes: more figures and sentences for the report.
        min_bend: also search for the most likely barrier whose flow bends by at least this
            share of the displacement (e.g. ``0.01``; :func:`search_barrier`, about a minute)
            and show it beside the default barrier; if the data gives none, the report says
            so instead of showing identical panels.
        bent: a fitted ODESteer with a bending barrier to show instead of searching.
        interactive: add the slider figure (paths and next-token probabilities per step).
    """
    t0 = time.perf_counter()
    validate_hook_name(model, hook)
    pos = as_float_acts(pos_acts, "pos_acts", min_rows=2).float()
    neg = as_float_acts(neg_acts, "neg_acts", min_rows=2).float()
    if pos.dim() != 2 or neg.dim() != 2 or pos.shape[1] != neg.shape[1]:
        raise ShapeMismatchError(
            f"`pos_acts` and `neg_acts` must both be [n, d_model]; got {tuple(pos.shape)} and "
            f"{tuple(neg.shape)}."
        )
    n_paths = check_positive_int(n_paths, "n_paths")
    if strength is not None and T is not None:
        raise InvalidParameterError(
            f"Give `strength` or `T`, not both; got strength={strength!r}, T={T!r}."
        )
    if min_bend is not None:
        min_bend = check_finite_float(min_bend, "min_bend", minimum=0.0)
    if bent is not None and not isinstance(bent, ODESteer):
        raise InvalidParameterError(f"`bent` must be a fitted ODESteer; got {type(bent).__name__}.")
    if methods is None:
        if isinstance(T, Mapping) or isinstance(strength, Mapping):
            raise InvalidParameterError("Give strengths per label only together with `methods`.")
        chosen, strengths = default_methods(pos, neg, ode, T)
        if strength is not None:
            strengths = resolve_strengths(chosen, strength=strength)
    else:
        chosen = dict(methods)
        if T is None and strength is None:
            raise InvalidParameterError(
                "With `methods`, give `strength` (norm-relative) or `T` (native), one number or "
                "one per label."
            )
        strengths = resolve_strengths(chosen, strength=strength, T=T)
    start = neg[:n_paths] if start_acts is None else as_float_acts(start_acts, "start_acts")
    prompt_act = collect_activations(model, [prompt], hook, progress=False)
    assert isinstance(prompt_act, Tensor)
    prompt_act = prompt_act.float()

    main = _section(
        model,
        hook,
        chosen,
        strengths,
        pos,
        neg,
        start,
        prompt=prompt,
        prompt_act=prompt_act,
        targets=targets,
        resolution=resolution,
        suffix="",
        full=True,
        interactive=interactive,
        size=figure_size,
    )
    ref, one = main.ref, main.one
    paths = main.frames["paths"]
    summary = _summary_frame(paths, main.steps)

    # A barrier that bends, beside the default one.
    bent_steerer, bent_note = bent, ""
    bent_label = "" if bent is None else repr(bent.barrier)
    if bent_steerer is None and min_bend is not None:
        bent_steerer, bent_note, bent_label = _bent_barrier(pos, neg, min_bend)
    elif bent_steerer is not None:
        bent_note = f"Bent barrier given: {bent_label}."
    bent_section: _Section | None = None
    if bent_steerer is not None:
        bent_steerer._check_is_fitted()
        rel = chosen[ref].strength_for(strengths[ref])
        others = {m: s for m, s in chosen.items() if m not in (ref, one)}
        bent_methods: dict[str, AbstractSteerer] = {
            ref + BENT: bent_steerer,
            one + BENT: _step_of(bent_steerer, pos, neg),
            **others,
        }
        bent_strengths = resolve_strengths(
            bent_methods,
            T={
                ref + BENT: bent_steerer.T_for(rel),
                one + BENT: bent_methods[one + BENT].T_for(rel),
                **{m: strengths[m] for m in others},
            },
        )
        bent_section = _section(
            model,
            hook,
            bent_methods,
            bent_strengths,
            pos,
            neg,
            start,
            prompt=prompt,
            prompt_act=prompt_act,
            targets=targets,
            resolution=resolution,
            suffix="_bent",
            full=False,
            interactive=False,
            size=figure_size,
        )

    figures: dict[str, go.Figure] = dict(main.figures)
    captions = dict(main.captions)
    frames: dict[str, pd.DataFrame] = dict(main.frames)
    frames["summary"] = summary
    if main.diagnostic is not None:
        frames["diagnostic"] = main.diagnostic.to_frame()
    if bent_section is not None:
        figures.update(bent_section.figures)
        captions.update(bent_section.captions)
        frames.update(bent_section.frames)
        if bent_section.diagnostic is not None:
            frames["diagnostic_bent"] = bent_section.diagnostic.to_frame()
    figures.update(extra_sections or {})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[Path]] = {}
    for name, frame in frames.items():
        path = out / f"{name}.csv"
        atomic_write_text(path, frame.to_csv(index=False))
        files[name] = [path]
    skipped = static_export_status() if static_formats else None
    width, height = figure_size if figure_size is not None else (None, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        written = save_figures(
            figures,
            out / "figures",
            formats=("json", *static_formats),
            width=width,
            height=height,
            static="auto" if skipped else "require",
        )
    for name, paths_written in written.items():
        files.setdefault(name, []).extend(paths_written)

    diag = main.diagnostic
    headline_gap = diag.median("gap") if diag is not None else None
    in_view = main.in_view or {}
    paths_gap = in_view.get("full_rel")
    notes = []
    if diag is not None:
        notes.append(
            f"Multi-step {ref} ends {_pct(headline_gap)} of the displacement away from one step "
            f"of its field ({one}), in all dimensions (median over {len(diag.rows)} fit "
            f"activations; 90th percentile {_pct(diag.quantile('gap', 0.9))}; on the "
            f"{start.shape[0]} drawn paths {_pct(paths_gap)})"
            + (
                f"; the barrier's curvature accounts for {_pct(diag.median('bend'))}, the rest "
                "is the rotation on the norm sphere."
                if diag.tangent
                else "."
            )
            + f" In the mean-difference view the end points are only "
            f"{_pct(in_view.get('in_view_rel'))} of the displacement apart; the difference view "
            f"shows {_pct((main.in_diff_view or {}).get('shown'))} of their full distance."
        )
    notes.append(
        f"Paths start from {start.shape[0]} activations; strengths: "
        + ", ".join(f"{m} T={strengths[m]:.4g}" for m in chosen)
        + f". Barrier h of {ref} judges every path."
    )
    if diag is not None:
        notes.append("Nonlinearity diagnostic on the fit data: " + diag.summary())
    if bent_note:
        notes.append(bent_note)
    if bent_section is not None and bent_section.diagnostic is not None:
        notes.append(
            "Bent barrier: "
            + _gap_sentence(bent_section.diagnostic, bent_section.ref, bent_section.one)
        )
    notes += list(extra_notes)
    if skipped:
        notes.append(f"PNG/SVG/PDF were not written: {skipped}")
    view: Projection = fit_projection(pos, neg, method="mean_diff")
    intro = [
        ("model", str(getattr(getattr(model, "cfg", None), "model_name", type(model).__name__))),
        ("hook", hook),
        (
            "fit data",
            f"{pos.shape[0]} positive, {neg.shape[0]} negative activations, d_model {pos.shape[1]}",
        ),
        (
            "view",
            f"{view.method}: {', '.join(view.axis_labels)} (explained variance "
            + ", ".join(f"{v:.1%}" for v in view.explained_variance)
            + "); difference view: one-step direction, ODE end - one-step end",
        ),
        ("prompt for per-step logits", repr(prompt)),
    ]
    main_names = [n for n in main.figures if n != "slider"]
    sections: list[tuple[str, str, Sequence[str]]] = [
        (f"Default barrier ({ref})", _gap_sentence(diag, ref, one), main_names)
    ]
    if "slider" in main.figures:
        sections.append(("Interactive", "", ["slider"]))
    if bent_section is not None:
        sections.append(
            (
                f"A barrier that bends ({bent_section.ref})",
                bent_note
                + " "
                + _gap_sentence(bent_section.diagnostic, bent_section.ref, bent_section.one),
                list(bent_section.figures),
            )
        )
    elif min_bend is not None:
        sections.append(("A barrier that bends", bent_note, []))
    if extra_sections:
        sections.append(("More", "", list(extra_sections)))
    page = _render_html(
        title or f"ODESteer vs one-step steering at {hook}",
        intro,
        summary,
        notes,
        sections,
        figures,
        captions,
    )
    html_path = out / "report.html"
    atomic_write_text(html_path, page)
    bent_summary = None
    if bent_section is not None and bent_section.diagnostic is not None:
        bd = bent_section.diagnostic
        bent_summary = {
            "reference": bent_section.ref,
            "barrier": bent_label,
            "relative_end_gap": bd.median("gap"),
            "relative_end_gap_p90": bd.quantile("gap", 0.9),
            "bend": bd.median("bend"),
            "diagnostic": bd.summary(),
        }
    result_summary = {
        "reference": ref,
        "one_step": one,
        "T": strengths,
        "relative_end_gap": headline_gap,
        "relative_end_gap_p90": None if diag is None else diag.quantile("gap", 0.9),
        "bend": None if diag is None else diag.median("bend"),
        "relative_end_gap_paths": paths_gap,
        "relative_end_gap_in_view": in_view.get("in_view_rel"),
        "difference_view_shows": (main.in_diff_view or {}).get("shown"),
        "diagnostic": None if diag is None else diag.summary(),
        "bent": bent_summary,
        "bent_note": bent_note or None,
        "methods": summary.to_dict(orient="records"),
        "wall_time_s": time.perf_counter() - t0,
    }
    atomic_write_text(out / "summary.json", json.dumps(result_summary, indent=2, default=float))
    return ComparisonReport(
        html_path=html_path,
        figures=figures,
        frames=frames,
        files=files,
        summary=result_summary,
        static_skipped=skipped,
    )
