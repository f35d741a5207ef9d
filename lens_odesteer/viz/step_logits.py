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

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lens_odesteer.analysis.model_runs.logits import StepLogits
from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.viz._renamed import module_getattr
from lens_odesteer.viz.theme import apply_theme, method_colour

_VALUES = {
    "delta_logprob": "change in log-probability",
    "delta_logit": "change in logit",
    "logprob": "log-probability",
    "logit": "logit",
    "prob": "probability",
}
_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def _check(result: StepLogits) -> None:
    if not isinstance(result, StepLogits):
        raise InvalidParameterError(
            "Expected the StepLogits returned by lens_odesteer.analysis.step_logits; "
            f"got {type(result).__name__}."
        )


def _token_label(token: str, token_id: int, is_target: bool) -> str:
    shown = repr(token)[1:-1] if token.strip() else f"␣×{len(token)}" if token else "∅"
    return f"{'★ ' if is_target else ''}{shown} ({token_id})"


def plot_logit_heatmap(
    result: StepLogits,
    *,
    value: str = "delta_logprob",
    title: str | None = None,
    width: int | None = None,
    height: int | None = None,
) -> go.Figure:
    """One heatmap per method: tracked tokens (rows) against step (columns).

    ``value`` is ``"delta_logprob"`` (default: change from the unsteered prediction),
    ``"delta_logit"``, ``"logprob"``, ``"logit"`` or ``"prob"``. Targets are starred and come
    first. Difference values share one symmetric colour scale across methods.
    """
    _check(result)
    if value not in _VALUES:
        raise InvalidParameterError(f"`value` must be one of {list(_VALUES)}; got {value!r}.")
    frame = result.tokens
    methods = list(dict.fromkeys(frame["method"]))
    tokens = frame.drop_duplicates("token_id")[["token_id", "token", "is_target"]]
    labels = [_token_label(t, i, g) for i, t, g in tokens.itertuples(index=False, name=None)]
    diverging = value.startswith("delta")
    bound = float(np.nanmax(np.abs(frame[value]))) if diverging else None
    fig = make_subplots(
        rows=1,
        cols=len(methods),
        shared_yaxes=True,
        horizontal_spacing=0.03,
        subplot_titles=methods,
    )
    for col, method in enumerate(methods, start=1):
        sub = frame[frame["method"] == method]
        z = sub.pivot_table(index="token_id", columns="step", values=value)
        z = z.reindex(index=tokens["token_id"].tolist())
        fig.add_trace(
            go.Heatmap(
                z=z.to_numpy(),
                x=z.columns.tolist(),
                y=labels,
                colorscale="RdBu" if diverging else "Viridis",
                zmid=0.0 if diverging else None,
                zmin=-bound if bound else None,
                zmax=bound if bound else None,
                showscale=col == len(methods),
                colorbar={"title": {"text": _VALUES[value]}},
                hovertemplate="step %{x}<br>%{y}<br>%{z:.3g}<extra>" + str(method) + "</extra>",
            ),
            row=1,
            col=col,
        )
        fig.update_xaxes(
            title_text="step", row=1, col=col, dtick=1 if z.shape[1] <= 6 else 2, tickangle=0
        )
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(
        title={"text": title or f"Next-token {_VALUES[value]} at each step<br>({result.hook})"},
    )
    n_tok = len(labels)
    return apply_theme(
        fig,
        width=width or max(520, 300 * len(methods) + 220),
        height=height or max(360, 28 * n_tok + 170),
    )


def plot_target_logprob(
    result: StepLogits,
    *,
    x: str = "fraction",
    title: str | None = None,
    width: int | None = 760,
    height: int | None = 620,
) -> go.Figure:
    """Target tokens' log-probabilities against ``x`` per method (top), KL (bottom).

    ``x`` is ``"fraction"`` (t/T, default), ``"t"`` or ``"displacement"``. Without targets,
    the top panel shows the tracked tokens that changed most.
    """
    _check(result)
    if x not in ("fraction", "t", "displacement"):
        raise InvalidParameterError(f"`x` must be 'fraction', 't' or 'displacement'; got {x!r}.")
    tokens = result.tokens
    steps = result.steps
    chosen = tokens[tokens["is_target"]]
    if chosen.empty:
        ids = list(dict.fromkeys(tokens["token_id"]))[:3]
        chosen = tokens[tokens["token_id"].isin(ids)]
    if x == "displacement":
        chosen = chosen.merge(steps[["method", "step", "displacement"]], on=["method", "step"])
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        row_heights=[0.65, 0.35],
        subplot_titles=["log P(token)", "KL(steered || unsteered), nats"],
    )
    token_ids = list(dict.fromkeys(chosen["token_id"]))
    for method in dict.fromkeys(steps["method"]):
        colour = method_colour(str(method))
        for j, tid in enumerate(token_ids):
            sub = chosen[(chosen["method"] == method) & (chosen["token_id"] == tid)].sort_values(
                "step"
            )
            token = sub["token"].iloc[0]
            fig.add_trace(
                go.Scatter(
                    x=sub[x],
                    y=sub["logprob"],
                    mode="lines+markers",
                    name=f"{method}: {token!r}",
                    legendgroup=str(method),
                    line={"color": colour, "width": 2.5, "dash": _DASHES[j % len(_DASHES)]},
                    marker={"size": 5},
                ),
                row=1,
                col=1,
            )
        sub = steps[steps["method"] == method].sort_values("step")
        fig.add_trace(
            go.Scatter(
                x=sub[x],
                y=sub["kl"],
                mode="lines+markers",
                name=f"{method}: KL",
                legendgroup=str(method),
                showlegend=False,
                line={"color": colour, "width": 2.5},
                marker={"size": 5},
            ),
            row=2,
            col=1,
        )
    x_title = {
        "fraction": "t / T",
        "t": "t (each method's own time)",
        "displacement": "distance from the unsteered activation",
    }[x]
    fig.update_xaxes(title_text=x_title, row=2, col=1)
    fig.update_layout(
        title={"text": title or f"Target tokens along the paths: {result.prompt!r}"},
        legend={"orientation": "h", "y": -0.15, "x": 0.0, "yanchor": "top"},
    )
    fig = apply_theme(fig, width=width, height=height)
    fig.update_layout(margin={"b": 130})
    return fig


__getattr__ = module_getattr(__name__)
