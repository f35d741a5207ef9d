"""Figures of per-step logit changes: a token x step heatmap and target log-probabilities vs t.

Example:
    >>> import lens_odesteer as lo
    >>> from lens_odesteer.analysis import step_logits
    >>> from lens_odesteer.viz.step_logits import plot_logit_heatmap, plot_target_logprob
    >>> model = lo.tiny_bridge()
    >>> hook = "blocks.1.hook_resid_post"
    >>> acts = lo.collect_activations(model, ["ab", "cd", "ef", "gh"], hook, progress=False)
    >>> ode = lo.ODESteer(lo.sketch_barrier(n_components=128)).fit(acts[:2], acts[2:])
    >>> caa = lo.CAA().fit(acts[:2], acts[2:])
    >>> res = step_logits(model, "abc", hook, {"ODESteer": ode, "CAA": caa}, T=1.0, targets=["a"])
    >>> [t.type for t in plot_logit_heatmap(res).data]
    ['heatmap', 'heatmap']
    >>> len(plot_target_logprob(res).data) >= 4
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lens_odesteer.analysis.model_runs.differences import step_logit_differences
from lens_odesteer.analysis.model_runs.logits import StepLogits
from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.viz._renamed import module_getattr
from lens_odesteer.viz.theme import (
    FONT_SIZE,
    finish_layout,
    font_size,
    legend_rows,
    method_colour,
)

_VALUES = {
    "delta_logprob": "change in log-probability",
    "delta_logit": "change in logit",
    "logprob": "log-probability",
    "logit": "logit",
    "prob": "probability",
}
_SHORT_VALUES = {
    "delta_logprob": "Δ log p",
    "delta_logit": "Δ logit",
    "logprob": "log p",
    "logit": "logit",
    "prob": "p",
}
_UNITS = {"logprob": "nats", "logit": "logit units", "prob": "probability"}
#: A log-probability difference below this (nats) changes no prediction a reader could see.
_SMALLEST_EFFECT = 1e-3
_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def _check(result: StepLogits) -> None:
    if not isinstance(result, StepLogits):
        raise InvalidParameterError(
            "Expected the StepLogits returned by lens_odesteer.analysis.step_logits; "
            f"got {type(result).__name__}."
        )


def token_text(token: str) -> str:
    """A token as a reader can see it: leading and trailing spaces as ``␣``, control characters
    escaped, the empty token as ``∅``.

    Example:
        >>> token_text(" great"), token_text("\\n"), token_text("  ")
        ('␣great', '\\\\n', '␣␣')
    """
    if not token:
        return "∅"
    body = token.strip(" ")
    lead = len(token) - len(token.lstrip(" "))
    trail = len(token) - len(token.rstrip(" ")) if body else 0
    inner = repr(body)[1:-1] if body else ""
    return "␣" * lead + inner + "␣" * trail


def _token_label(token: str, token_id: int, is_target: bool, show_ids: bool = False) -> str:
    shown = token_text(token)
    return f"{'★ ' if is_target else ''}{shown}" + (f" ({token_id})" if show_ids else "")


def _hidden_lines(
    chosen: pd.DataFrame, steps: pd.DataFrame, ref: str, methods: list[str]
) -> list[str]:
    """Methods whose lines lie on the reference's, closer than 1% of the panel's range."""
    notes = []
    lp = chosen.pivot_table(index=["token_id", "step"], columns="method", values="logprob")
    kl = steps.pivot_table(index="step", columns="method", values="kl")
    for other in methods:
        if other == ref or other not in lp or ref not in lp:
            continue
        d_lp = float((lp[ref] - lp[other]).abs().max())
        d_kl = float((kl[ref] - kl[other]).abs().max())
        span_lp = float(np.nanmax(lp.to_numpy()) - np.nanmin(lp.to_numpy())) or 1.0
        span_kl = float(np.nanmax(kl.to_numpy()) - np.nanmin(kl.to_numpy())) or 1.0
        if d_lp < 0.01 * span_lp or d_kl < 0.01 * span_kl:
            notes.append(
                f"{ref} and {other} differ by at most {d_lp:.2g} nats in log P and {d_kl:.2g} "
                "in KL (use difference_from to see it)."
            )
    return notes


def _round1(value: float) -> float:
    """``value`` rounded down to one significant digit (a colour-bar tick inside the range)."""
    if value <= 0:
        return 0.0
    power = 10.0 ** np.floor(np.log10(value))
    return float(np.floor(value / power) * power)


def _pivot(frame: pd.DataFrame, value: str, order: list[int]) -> pd.DataFrame:
    z = frame.pivot_table(index="token_id", columns="step", values=value)
    return z.reindex(index=order)


def plot_logit_heatmap(
    result: StepLogits,
    *,
    value: str = "delta_logprob",
    title: str | None = None,
    width: int | None = None,
    height: int | None = None,
    difference_from: str | Sequence[str] | None = None,
    show_ids: bool = False,
    subtitle: str | None = None,
    methods: Sequence[str] | None = None,
) -> go.Figure:
    """One heatmap per method: tracked tokens (rows) against step (columns).

    ``value`` is ``"delta_logprob"`` (default: change from the unsteered prediction),
    ``"delta_logit"``, ``"logprob"``, ``"logit"`` or ``"prob"``. Target tokens (``targets=`` of
    :func:`step_logits`) are starred and come first; the other rows are the likely tokens that
    changed most. Leading spaces are shown as ``␣``. The method panels share one colour scale.

    Args:
        difference_from: one or more baselines; adds a row of panels of the reference method
            (``result.reference``, the ODE) minus each baseline, each with its own colour scale
            (:func:`~lens_odesteer.analysis.model_runs.differences.step_logit_differences`), so
            a difference far smaller than the changes themselves is still visible.
        show_ids: add each token's id to its label.
        methods: the method panels to draw, in order (default all, but at paper-column width
            with ``difference_from`` and more than two methods only the reference: the
            difference row shows the others); ``[]`` with ``difference_from`` draws only the
            differences.
        subtitle: notes under the title; when two method panels differ by less than the shared
            colour scale can show, the subtitle says so with the number.
    """
    _check(result)
    if value not in _VALUES:
        raise InvalidParameterError(f"`value` must be one of {list(_VALUES)}; got {value!r}.")
    frame = result.tokens
    every = list(dict.fromkeys(frame["method"]))
    diffs: list[str] = []
    if difference_from is not None:
        diffs = [difference_from] if isinstance(difference_from, str) else list(difference_from)
    if methods is not None:
        shown = list(methods)
    elif diffs and font_size(width) < FONT_SIZE and len(every) > 2:
        # A paper column cannot hold every panel: the reference and its differences.
        shown = [result.reference]
    else:
        shown = every
    unknown = [m for m in shown if m not in every]
    if unknown:
        raise InvalidParameterError(f"`methods` {unknown} are not in the result ({every}).")
    tokens = frame.drop_duplicates("token_id")[["token_id", "token", "is_target"]]
    order = tokens["token_id"].tolist()
    labels = [
        _token_label(t, i, g, show_ids) for i, t, g in tokens.itertuples(index=False, name=None)
    ]
    diverging = value.startswith("delta")
    diff_frame = step_logit_differences(result, diffs) if diffs else None
    diff_value = {"delta_logprob": "logprob", "delta_logit": "logit"}.get(value, value)
    bound = float(np.nanmax(np.abs(frame[value]))) if diverging else None
    if not shown and not diffs:
        raise InvalidParameterError("Nothing to draw: give `methods` or `difference_from`.")
    n_cols = max(len(shown), len(diffs))
    n_rows = int(bool(shown)) + int(bool(diffs))
    diff_row = n_rows
    w = width or max(520, 230 * n_cols + 200)
    base = font_size(width)
    compact = base < 13
    label_px = (6.2 if compact else 7.5) * max(len(x) for x in labels) + 14
    panel_px = (w - label_px - (70 if compact else 90)) / n_cols
    subplot_titles: list[str] = []
    if shown:
        subplot_titles += list(shown) + [""] * (n_cols - len(shown))
    broken = False
    for b in diffs:
        text = f"{result.reference} − {b}"
        if len(text) * 0.6 * base > panel_px:
            text, broken = f"{result.reference} −<br>{b}", True
        subplot_titles.append(text)
    if diffs:
        subplot_titles += [""] * (n_cols - len(diffs))
    fig = make_subplots(
        rows=n_rows,
        cols=n_cols,
        shared_yaxes=True,
        horizontal_spacing=0.03 if not diffs else 0.05,
        vertical_spacing=0.2 if compact or broken else 0.14,
        subplot_titles=subplot_titles,
    )
    steps_max = int(frame["step"].max())
    for col, method in enumerate(shown, start=1):
        sub = frame[frame["method"] == method]
        z = _pivot(sub, value, order)
        fig.add_trace(
            go.Heatmap(
                z=z.to_numpy(),
                x=z.columns.tolist(),
                y=labels,
                coloraxis="coloraxis",
                hovertemplate="step %{x}<br>%{y}<br>%{z:.3g}<extra>" + str(method) + "</extra>",
            ),
            row=1,
            col=col,
        )
    notes = [subtitle] if subtitle else []
    if diff_frame is not None:
        for k, base_label in enumerate(diffs):
            part = diff_frame[diff_frame["baseline"] == base_label]
            z = _pivot(part, diff_value, order)
            largest = float(np.nanmax(np.abs(z.to_numpy()))) if z.size else 0.0
            axis = f"coloraxis{k + 2}"
            fig.add_trace(
                go.Heatmap(
                    z=z.to_numpy(),
                    x=z.columns.tolist(),
                    y=labels,
                    coloraxis=axis,
                    hovertemplate="step %{x}<br>%{y}<br>%{z:.3g}<extra>"
                    + f"{result.reference} − {base_label}</extra>",
                ),
                row=diff_row,
                col=k + 1,
            )
            if largest < _SMALLEST_EFFECT:
                notes.append(
                    f"{result.reference} − {base_label}: largest |difference| {largest:.2g} "
                    f"({_UNITS.get(diff_value, '')}), below any effect on the prediction."
                )
            if bound and base_label in shown and result.reference in shown:
                share = largest / bound
                if share < 0.02:
                    notes.append(
                        f"The {result.reference} and {base_label} panels differ by at most "
                        f"{largest:.3g} ({100 * share:.1f}% of the shared scale)."
                    )
    for r in range(1, n_rows + 1):
        for c in range(1, n_cols + 1):
            fig.update_xaxes(
                title_text="step" if r == n_rows or (r == 1 and c > len(diffs)) else None,
                row=r,
                col=c,
                dtick=1 if steps_max <= 6 else (5 if compact else 2) if steps_max <= 12 else None,
                tickangle=0,
                showgrid=False,
            )
    fig.update_yaxes(autorange="reversed", showgrid=False, tickfont={"size": base - 1})
    # Colour scales: the method panels share one (right of the first row); each difference
    # panel has its own, drawn as a thin bar under it.
    layout: dict[str, object] = {
        "coloraxis": {
            "colorscale": "RdBu" if diverging else "Viridis",
            "cmid": 0.0 if diverging else None,
            "cmin": -bound if bound else None,
            "cmax": bound if bound else None,
            "colorbar": {
                "title": {"text": _SHORT_VALUES[value], "side": "right"},
                "thickness": 8 if base < 13 else 12,
                "len": (0.42 if diffs and shown else 0.9),
                "y": 1.0,
                "yanchor": "top",
                "x": (fig.get_subplot(1, len(shown)).xaxis.domain[1] + 0.01) if shown else 1.0,
                "xanchor": "left",
                "xpad": 4,
                "outlinewidth": 0,
                "tickfont": {"size": base - 1},
            },
        }
    }
    tok_px = 15 if base < 13 else 20
    plot_h = len(labels) * tok_px * n_rows
    top_guess = 70 + (3 if diffs and compact else 0) * base
    fig_h = height or int(plot_h + top_guess + (60 if base < 13 else 80) + 60 * (n_rows - 1))
    for k in range(len(diffs)):
        assert diff_frame is not None
        xaxis = fig.get_subplot(diff_row, k + 1).xaxis
        x0, x1 = xaxis.domain
        largest = float(diff_frame.loc[diff_frame["baseline"] == diffs[k], diff_value].abs().max())
        layout[f"coloraxis{k + 2}"] = {
            "colorscale": "PuOr",
            "cmid": 0.0,
            "cmin": -largest if largest > 0 else -1e-12,
            "cmax": largest if largest > 0 else 1e-12,
            "colorbar": {
                "orientation": "h",
                "thickness": 7 if base < 13 else 9,
                "len": (x1 - x0) * 0.95,
                "lenmode": "fraction",
                "tickangle": 0,
                "x": (x0 + x1) / 2,
                "xanchor": "center",
                "y": -0.02,
                "yanchor": "top",
                "yref": "container",
                "outlinewidth": 0,
                "tickfont": {"size": base - 2},
                "tickvals": [-_round1(largest), 0.0, _round1(largest)],
            },
        }
    fig.update_layout(**layout)
    default = (
        f"Next-token {_VALUES[value]} at each step"
        if shown
        else f"Differences in next-token {_VALUES[diff_value]} at each step"
    )
    where = f"Prompt {result.prompt!r}, patched at {result.hook}, position {result.position}."
    kind = (
        "★ target tokens first, then"
        if bool(tokens["is_target"].any())
        else "No target tokens given:"
    )
    notes.insert(0, f"{where} Rows: {kind} the likely tokens that changed most.")
    finish_layout(
        fig,
        title=title or default,
        subtitle=" ".join(notes),
        width=w,
        height=fig_h,
        legend="none",
        subplot_titles=True,
        extra_top=1.3 * base if broken and not shown else 0.0,
        right=70 if base < 13 else 90,
        left=int(label_px),
        extra_bottom=(34 if base < 13 else 44) if diffs else 0.0,
    )
    if diffs:
        # The difference colour bars sit under their panels, in the bottom margin.
        margin_b = fig.layout.margin.b or 0
        for k in range(len(diffs)):
            fig.layout[f"coloraxis{k + 2}"].colorbar.update(
                y=(margin_b - 3.3 * base - 8) / fig_h, yref="container", yanchor="top"
            )
    return fig


def plot_target_logprob(
    result: StepLogits,
    *,
    x: str = "fraction",
    title: str | None = None,
    width: int | None = 760,
    height: int | None = None,
    difference_from: str | None = None,
    n_tokens: int = 3,
    subtitle: str | None = None,
) -> go.Figure:
    """Target tokens' log-probabilities against ``x`` per method (top), KL (bottom).

    ``x`` is ``"fraction"`` (t/T, default), ``"t"`` or ``"displacement"``. Without targets the
    top panel shows the ``n_tokens`` tracked tokens that changed most, and the title says so
    (they were picked by the analysis, not by you). Each token has its own dash; leading spaces
    are shown as ``␣``.

    Args:
        difference_from: a method label; both panels then show each method minus that method
            at the same step (log-probabilities in nats, and the difference of the KLs), so the
            baseline is zero and a small difference fills the panel.
        n_tokens: how many automatically chosen tokens to draw when there are no targets.
        subtitle: notes under the title.
    """
    _check(result)
    if x not in ("fraction", "t", "displacement"):
        raise InvalidParameterError(f"`x` must be 'fraction', 't' or 'displacement'; got {x!r}.")
    tokens = result.tokens
    steps = result.steps
    methods = list(dict.fromkeys(steps["method"]))
    if difference_from is not None and difference_from not in methods:
        raise InvalidParameterError(
            f"`difference_from` {difference_from!r} is not one of the methods {methods}."
        )
    chosen = tokens[tokens["is_target"]]
    has_targets = not chosen.empty
    if not has_targets:
        ids = list(dict.fromkeys(tokens["token_id"]))[:n_tokens]
        chosen = tokens[tokens["token_id"].isin(ids)]
    chosen = chosen.merge(steps[["method", "step", "displacement", "kl"]], on=["method", "step"])
    if difference_from is not None:
        base = chosen[chosen["method"] == difference_from].set_index(["token_id", "step"])
        key = pd.MultiIndex.from_frame(chosen[["token_id", "step"]])
        chosen = chosen.assign(
            logprob=chosen["logprob"].to_numpy() - base["logprob"].reindex(key).to_numpy()
        )
        kl_base = steps[steps["method"] == difference_from].set_index("step")["kl"]
        steps = steps.assign(kl=steps["kl"].to_numpy() - kl_base.reindex(steps["step"]).to_numpy())
    delta = "Δ " if difference_from is not None else ""
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.12,
        row_heights=[0.62, 0.38],
        subplot_titles=[
            f"{delta}log P(token)" + (f" (minus {difference_from})" if delta else ""),
            f"{delta}KL(steered || unsteered), nats"
            + (f" (minus {difference_from})" if delta else ""),
        ],
    )
    token_ids = list(dict.fromkeys(chosen["token_id"]))
    # Reverse order: the first method (the ODE) is drawn last, on top of its one-step ablation.
    for rank, method in list(enumerate(methods))[::-1]:
        colour = method_colour(str(method))
        is_base = method == difference_from
        for j, tid in enumerate(token_ids):
            sub = chosen[(chosen["method"] == method) & (chosen["token_id"] == tid)].sort_values(
                "step"
            )
            if sub.empty:
                continue
            token = token_text(str(sub["token"].iloc[0]))
            fig.add_trace(
                go.Scatter(
                    x=sub[x],
                    y=sub["logprob"],
                    mode="lines",
                    name=f"{method}: {token}",
                    legendgroup=str(method),
                    line={
                        "color": colour,
                        "width": 1.5 if is_base else 2.5,
                        "dash": _DASHES[j % len(_DASHES)],
                    },
                    showlegend=False,
                    hovertemplate=f"{method}: {token}<br>%{{x:.3g}}<br>%{{y:.4g}}<extra></extra>",
                ),
                row=1,
                col=1,
            )
        sub = steps[steps["method"] == method].sort_values("step")
        fig.add_trace(
            go.Scatter(
                x=sub[x],
                y=sub["kl"],
                mode="lines",
                name=str(method) + (" (baseline)" if is_base else ""),
                legendgroup=str(method),
                legendrank=1000 + rank,
                showlegend=True,
                line={"color": colour, "width": 1.5 if is_base else 2.5},
            ),
            row=2,
            col=1,
        )
    for j, tid in enumerate(token_ids):  # one legend entry per token: its dash
        token = token_text(str(chosen.loc[chosen["token_id"] == tid, "token"].iloc[0]))
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="lines",
                name=token,
                legendrank=2000 + j,
                line={"color": "#555555", "width": 2, "dash": _DASHES[j % len(_DASHES)]},
            ),
            row=1,
            col=1,
        )
    x_title = {
        "fraction": "t / T (share of each method's strength)",
        "t": "t (each method's own time)",
        "displacement": "distance from the unsteered activation",
    }[x]
    fig.update_xaxes(title_text=x_title, row=2, col=1)
    shown = ", ".join(token_text(str(t)) for t in dict.fromkeys(chosen["token"]))
    if has_targets:
        default = "Target tokens along the paths"
        notes = [f"Targets: {shown}."]
    else:
        default = "Most-changed tokens along the paths"
        notes = [f"No targets were given; these tokens ({shown}) changed most."]
    notes.insert(0, f"Prompt {result.prompt!r} at {result.hook}.")
    if difference_from is None:
        notes += _hidden_lines(chosen, steps, result.reference, methods)
    if subtitle:
        notes.insert(0, subtitle)
    w = width or 760
    base = font_size(width)
    rows = legend_rows([*methods, *(str(t) for t in token_ids)], w - 16, base)
    fig_h = height or int((300 if base < 13 else 430) + 2 * base * rows)
    finish_layout(
        fig,
        title=title or default,
        subtitle=" ".join(notes),
        width=w,
        height=fig_h,
        legend="below",
        subplot_titles=True,
    )
    return fig


__getattr__ = module_getattr(__name__)
