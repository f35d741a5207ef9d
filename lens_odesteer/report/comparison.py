"""One call that compares ODESteer with one-step steering on a model and writes an HTML report.

:func:`comparison_report` fits (or takes) an ODESteer and its one-step baselines, builds the
analysis frames (view, barrier level sets, paths, per-step logits), draws the figures and writes a
self-contained ``report.html`` (plotly.js inlined once; it opens offline), the frames as CSV, and
each figure as PNG/SVG/PDF when static export is available here.

Strengths are matched: ODESteer and StepODESteer integrate for the same arc length ``T`` (default
``|mu+ - mu-|``), and CAA uses the multiplier that moves by the same distance, ``T / |mu+ - mu-|``.
"""

from __future__ import annotations

import html
import json
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
from lens_odesteer.analysis.level_sets import barrier_grid, points_frame
from lens_odesteer.analysis.model_runs.logits import StepLogits, step_logits
from lens_odesteer.analysis.nonlinearity import FieldVariation, field_variation, has_flow_path
from lens_odesteer.analysis.projection import fit_projection
from lens_odesteer.analysis.trajectories import strengths as resolve_strengths
from lens_odesteer.analysis.trajectories import trajectory_frame
from lens_odesteer.errors import InvalidParameterError, ShapeMismatchError
from lens_odesteer.models.names import HookedModel, validate_hook_name
from lens_odesteer.steerers import CAA, AbstractSteerer, ODESteer, StepODESteer
from lens_odesteer.viz.export import save_figures, static_export_status
from lens_odesteer.viz.level_sets import plot_level_sets
from lens_odesteer.viz.step_logits import plot_logit_heatmap, plot_target_logprob
from lens_odesteer.viz.trajectories import plot_trajectory_profile


@dataclass
class ComparisonReport:
    """What :func:`comparison_report` wrote and computed.

    Attributes:
        html_path: the self-contained HTML report.
        figures: name -> plotly figure (``level_sets``, ``profile``, ``heatmap``, ``targets``).
        frames: name -> tidy frame (``grid``, ``points``, ``paths``, ``step_tokens``,
            ``step_summary``, ``summary``), each also written as CSV next to the report.
        files: name -> every file written for it.
        summary: headline numbers (per method: mean final ``h``, displacement, KL), the
            ODE-vs-one-step end-point gap in the view, and the nonlinearity diagnostic's
            sentence (:func:`lens_odesteer.analysis.nonlinearity.field_variation`).
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
    # The same barrier template (and seed), so the one-step ablation has the identical barrier.
    step = StepODESteer(
        ode.barrier, stop=ode.stop, normalize=ode.normalize, min_grad_norm=ode.min_grad_norm
    )
    step.fit(pos_acts, neg_acts)
    caa = CAA().fit(pos_acts, neg_acts)
    gap = float(caa.direction_.norm())
    if gap == 0.0:
        raise InvalidParameterError(
            "The positive and negative means are equal; there is no direction to steer along."
        )
    strength = gap if T is None else check_finite_float(T, "T", minimum=0.0, strict=True)
    methods: dict[str, AbstractSteerer] = {"ODESteer": ode, "StepODESteer": step, "CAA": caa}
    return methods, {"ODESteer": strength, "StepODESteer": strength, "CAA": strength / gap}


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


def _end_gap(paths: pd.DataFrame, ode_label: str, step_label: str) -> float | None:
    """Mean |ODE end - one-step end| / one-step displacement over rows (relative gap)."""
    if ode_label not in set(paths["method"]) or step_label not in set(paths["method"]):
        return None
    cols = [c for c in ("x", "y", "z") if c in paths]
    if not cols:
        return None
    last = paths.loc[paths.groupby(["method", "row"])["step"].idxmax()].set_index(["method", "row"])
    ode_end, step_end = last.loc[ode_label][cols], last.loc[step_label][cols]
    disp = last.loc[step_label]["displacement"]
    gap = ((ode_end - step_end) ** 2).sum(axis=1) ** 0.5
    return float((gap / disp.clip(lower=1e-12)).mean())


def _table_html(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0, classes="tbl")


def _render_html(
    title: str,
    intro: list[tuple[str, str]],
    summary: pd.DataFrame,
    notes: list[str],
    figures: Mapping[str, go.Figure],
    captions: Mapping[str, str],
) -> str:
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:Arial,Helvetica,sans-serif;max-width:1100px;margin:2em auto;"
        "color:#222;line-height:1.45}h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em}"
        ".tbl{border-collapse:collapse;font-size:0.92em}.tbl td,.tbl th{padding:4px 10px;"
        "border-bottom:1px solid #ddd;text-align:right}.tbl th{background:#f3f3f3}"
        ".cap{color:#444;font-size:0.93em;max-width:900px}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<table class='tbl'>",
    ]
    parts += [
        f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
        f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
        for k, v in intro
    ]
    parts.append("</table><h2>Summary</h2>")
    parts.append(_table_html(summary))
    parts += [f"<p class='cap'>{html.escape(n)}</p>" for n in notes]
    first = True
    for name, fig in figures.items():
        parts.append(f"<h2>{html.escape(name.replace('_', ' ').capitalize())}</h2>")
        parts.append(f"<p class='cap'>{html.escape(captions.get(name, ''))}</p>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=first))
        first = False
    parts.append(f"<p class='cap'>Written by lens_odesteer {__version__}.</p></body></html>")
    return "\n".join(parts)


_CAPTIONS = {
    "level_sets": "Filled contours: the ODESteer barrier h on a plane of activation space (the "
    "black line is h = 0, the decision boundary). Dots: fitted activations. Lines: paths from "
    "held-out negative activations; ODESteer solid, one-step methods dashed; a cross marks the "
    "end. Points off the plane are drawn at their projection.",
    "profile": "Barrier h, P(positive) = sigmoid(h) and the norm |a| along each path, all judged "
    "by the ODESteer barrier. Thin lines: single activations; thick: their mean.",
    "heatmap": "Change in next-token log-probability at each step, when the step's activation is "
    "patched in at the hook (the rest of the forward pass runs as usual). Starred rows are the "
    "target tokens; the others are the likely tokens that changed most.",
    "targets": "Target tokens' log-probabilities and the KL divergence of the steered from the "
    "unsteered next-token distribution, against t/T.",
}


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
        prompt, targets: the per-step logit analysis (targets: single tokens to follow).
        resolution: grid points per axis of the level-set figure.
        static_formats: formats exported besides HTML (skipped with a note when no browser).
        figure_size: ``(width, height)`` in pixels of exported figures (default: their own).
        extra_sections, extra_notes: more figures and sentences for the report.
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
    if methods is None:
        if isinstance(T, Mapping) or isinstance(strength, Mapping):
            raise InvalidParameterError(
                "Give strengths per label only together with `methods`."
            )
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
    view = fit_projection(pos, neg, method="mean_diff")
    paths = trajectory_frame(chosen, start, T=strengths, view=view)
    ref = paths.attrs["reference"]
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
    steps = step_logits(model, prompt, hook, chosen, T=strengths, targets=targets, reference=ref)
    summary = _summary_frame(paths, steps)
    diagnostic = _diagnostic(chosen[ref], pos, neg, strengths[ref])
    one_step = [
        m for m in chosen if m != ref and bool(paths.loc[paths.method == m, "one_step"].iloc[0])
    ]
    gap = _end_gap(paths, ref, one_step[0]) if one_step else None

    figures: dict[str, go.Figure] = {
        "level_sets": plot_level_sets(grid, points, paths),
        "profile": plot_trajectory_profile(paths),
        "heatmap": plot_logit_heatmap(steps),
        "targets": plot_target_logprob(steps),
    }
    figures.update(extra_sections or {})
    frames = {
        "grid": grid,
        "points": points,
        "paths": paths,
        "step_tokens": steps.tokens,
        "step_summary": steps.steps,
        "summary": summary,
    }
    if diagnostic is not None:
        frames["diagnostic"] = diagnostic.to_frame()
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

    notes = [
        f"Paths start from {start.shape[0]} activations; strengths: "
        + ", ".join(f"{m} T={strengths[m]:.4g}" for m in chosen)
        + f". Barrier h of {ref} judges every path.",
    ]
    if gap is not None:
        notes.append(
            f"In this view, the {ref} end points lie on average {100 * gap:.2f}% of the "
            f"displacement away from the {one_step[0]} end points (0% means multi-step steering "
            "ended where one step did; the view hides off-plane differences)."
        )
    if diagnostic is not None:
        notes.append("Nonlinearity diagnostic on the fit data: " + diagnostic.summary())
    notes += list(extra_notes)
    if skipped:
        notes.append(f"PNG/SVG/PDF were not written: {skipped}")
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
            + ")",
        ),
        ("prompt for per-step logits", repr(prompt)),
    ]
    page = _render_html(
        title or f"ODESteer vs one-step steering at {hook}",
        intro,
        summary,
        notes,
        figures,
        _CAPTIONS,
    )
    html_path = out / "report.html"
    atomic_write_text(html_path, page)
    result_summary = {
        "reference": ref,
        "T": strengths,
        "relative_end_gap": gap,
        "diagnostic": None if diagnostic is None else diagnostic.summary(),
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
