"""Each figure fix, checked on the figure's data (fast: synthetic activations, the tiny model)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.analysis import barrier_grid, fit_projection, points_frame, step_logits
from lens_odesteer.analysis.differences import (
    difference_frame,
    difference_in_view,
    fit_difference_view,
)
from lens_odesteer.analysis.model_runs.differences import step_logit_differences
from lens_odesteer.analysis.nonlinearity import field_variation
from lens_odesteer.analysis.trajectories import trajectory_frame
from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.report import comparison_report
from lens_odesteer.viz import (
    plot_level_sets,
    plot_logit_heatmap,
    plot_metric_vs_strength,
    plot_target_logprob,
    plot_trajectory_profile,
)
from lens_odesteer.viz.eval_plots import strength_curve
from lens_odesteer.viz.interactive import plot_step_slider
from lens_odesteer.viz.level_sets import MIN_VISIBLE_PX
from lens_odesteer.viz.step_logits import token_text
from lens_odesteer.viz.theme import PAPER_WIDTH, wrap

GEN = torch.Generator().manual_seed(11)
D = 16
# Two classes on a shell of radius ~ 6, so the normalised sketch's field rotates on the sphere.
POS = torch.randn(60, D, generator=GEN) + torch.linspace(1.5, -1.5, D)
NEG = torch.randn(60, D, generator=GEN) - torch.linspace(1.5, -1.5, D)
HOOK = "blocks.1.hook_resid_post"


def _methods() -> dict[str, lo.steerers.AbstractSteerer]:
    barrier = lo.sketch_barrier(n_components=512, gamma=2.0, degree=3)
    ode = lo.ODESteer(barrier).fit(POS, NEG)
    step = lo.StepODESteer(barrier).fit(POS, NEG)
    return {"ODESteer": ode, "StepODESteer": step, "CAA": lo.CAA().fit(POS, NEG)}


@pytest.fixture(scope="module")
def methods() -> dict[str, lo.steerers.AbstractSteerer]:
    return _methods()


@pytest.fixture(scope="module")
def paths(methods: dict) -> pd.DataFrame:
    view = fit_projection(POS, NEG)
    return trajectory_frame(methods, NEG[:5], strength=0.3, view=view, gap_to="StepODESteer")


# --------------------------------------------------------------------------- differences


def test_difference_of_a_method_from_itself_is_all_zeros(paths: pd.DataFrame) -> None:
    diff = difference_frame(paths, "CAA")
    own = diff[diff["method"] == "CAA"]
    assert len(own) == len(paths[paths["method"] == "CAA"])
    for column in ("h", "p_positive", "norm", "displacement", "path_length"):
        assert (own[column] == 0.0).all(), column
    # The profile's difference panels draw exactly those values.
    fig = plot_trajectory_profile(paths, difference_from="CAA")
    base = [t for t in fig.data if t.name == "CAA (baseline)"]
    assert len(base) == 3 and all(np.all(np.asarray(t.y) == 0.0) for t in base)
    ode = [t for t in fig.data if t.name == "ODESteer" and t.showlegend]
    assert np.abs(np.asarray(ode[0].y)).max() > 0


def test_difference_frame_matches_the_paths(paths: pd.DataFrame) -> None:
    diff = difference_frame(paths, "StepODESteer").set_index(["method", "row", "step"]).sort_index()
    wide = paths.set_index(["method", "row", "step"]).sort_index()
    expected = (wide.loc["ODESteer", "norm"] - wide.loc["StepODESteer", "norm"]).sort_index()
    assert np.allclose(diff.loc["ODESteer", "norm"].sort_index(), expected)
    with pytest.raises(InvalidParameterError, match="baseline"):
        difference_frame(paths, "nope")


def test_full_dimensional_gap_equals_the_diagnostic(methods: dict, paths: pd.DataFrame) -> None:
    T = paths.attrs["T"]["ODESteer"]
    diag = field_variation(methods["ODESteer"], NEG[:5], T=T)
    last = paths[(paths["method"] == "ODESteer") & (paths["step"] == paths["step"].max())]
    assert np.allclose(last.sort_values("row")["gap_rel"], diag.rows["gap"], rtol=1e-4)
    assert (paths.loc[paths["method"] == "StepODESteer", "gap"] == 0.0).all()
    assert (paths.loc[paths["step"] == 0, "gap"] == 0.0).all()


def test_difference_view_shows_the_gap_at_true_size(methods: dict) -> None:
    one = NEG[:1]
    view = fit_difference_view(methods, one, strength=0.3)
    assert view.method == "difference" and view.compared == ("ODESteer", "StepODESteer")
    assert torch.allclose(view.basis @ view.basis.T, torch.eye(2), atol=1e-5)
    frame = trajectory_frame(methods, one, strength=0.3, view=view, gap_to="StepODESteer")
    numbers = difference_in_view(frame, "ODESteer", "StepODESteer")
    # One start point: the whole end-to-end difference lies in the view.
    assert numbers["shown"] == pytest.approx(1.0, abs=1e-4)
    assert numbers["full_rel"] > 0.005
    # The mean-difference view hides most of it.
    flat = trajectory_frame(
        methods, one, strength=0.3, view=fit_projection(POS, NEG), gap_to="StepODESteer"
    )
    assert difference_in_view(flat, "ODESteer", "StepODESteer")["shown"] < numbers["shown"]


def test_difference_view_when_both_methods_end_together() -> None:
    lin = lo.ODESteer(lo.barriers.LinearBarrier()).fit(POS, NEG)
    caa = lo.CAA().fit(POS, NEG)
    view = fit_difference_view({"lin": lin, "CAA": caa}, NEG[:4], T={"lin": 2.0, "CAA": 1.0})
    assert view.basis.shape == (2, D)
    view2 = fit_difference_view(
        {"A": caa, "B": lo.CAA().fit(POS, NEG)}, NEG[:4], T=1.0, ode="A", one_step="B"
    )
    assert "coincide" in view2.axis_labels[1]


# --------------------------------------------------------------------------- level sets


def _plot_px_per_unit(fig, axis: str) -> float:
    layout = fig.layout
    width, height, m = layout.width, layout.height, layout.margin
    ax = layout[axis + "axis"]
    lo_, hi_ = ax.range
    d0, d1 = ax.domain
    span = (width - m.l - m.r) if axis == "x" else (height - m.t - m.b)
    return span * (d1 - d0) / (hi_ - lo_)


@pytest.mark.parametrize("width", [760, PAPER_WIDTH])
def test_level_set_axes_have_equal_scale(methods: dict, paths: pd.DataFrame, width: int) -> None:
    view = fit_projection(POS, NEG)
    grid = barrier_grid(methods["ODESteer"], view, points=torch.cat([POS, NEG]), resolution=12)
    fig = plot_level_sets(grid, points_frame(view, POS, NEG), paths, width=width)
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.scaleratio == 1
    assert _plot_px_per_unit(fig, "x") == pytest.approx(_plot_px_per_unit(fig, "y"), rel=0.01)
    assert "activation units" in fig.layout.xaxis.title.text or "act. units" in (
        fig.layout.xaxis.title.text
    )
    # Markers at the start and the end only: one start trace, one end trace per method.
    ends = [
        t
        for t in fig.data
        if t.type == "scatter" and t.mode == "markers" and "end" in str(t.hovertemplate)
    ]
    assert len(ends) == 3 and all(len(t.x) == 5 for t in ends)
    assert not [t for t in fig.data if getattr(t, "mode", None) == "lines+markers"]
    scatter = [t for t in fig.data if t.type == "scatter"]
    lines = [t for t in scatter if t.mode == "lines" and t.name == "ODESteer"]
    outline = [t for t in scatter if t.mode == "lines" and t.line.color == "white"]
    assert len(lines) == 1 and len(outline) == 3  # every method's paths have a white outline
    # The muted background is sequential (no red-blue) and the h = 0 line is strong.
    assert fig.data[0].type == "contour" and "#B2182B" not in str(fig.data[0].colorscale)
    zero = [t for t in fig.data if t.name == "h = 0"]
    assert zero and zero[0].line.color == "black" and zero[0].line.width >= 2


def test_level_sets_say_when_ends_are_too_close_to_see(methods: dict, paths) -> None:
    view = fit_projection(POS, NEG)
    grid = barrier_grid(methods["ODESteer"], view, points=torch.cat([POS, NEG]), resolution=8)
    sub = paths[paths["method"].isin(["ODESteer", "StepODESteer"])].copy()
    sub.attrs.update(paths.attrs)
    # Put both methods' ends at the same place in the view: the figure must say so.
    ode_rows = sub["method"] == "ODESteer"
    sub.loc[ode_rows, ["x", "y"]] = sub.loc[~ode_rows, ["x", "y"]].to_numpy()
    fig = plot_level_sets(grid, None, sub)
    text = next(a.text for a in fig.layout.annotations if a.name == "figure-subtitle")
    assert "too close to see" in text.replace("<br>", " ")
    full = float(sub.loc[ode_rows & (sub["step"] == sub["step"].max()), "gap_rel"].median())
    assert f"{100 * full:.2f}% in all dimensions" in text.replace("<br>", " ")
    assert MIN_VISIBLE_PX > 0


def test_level_sets_inset_zooms_on_one_path(methods: dict, paths) -> None:
    view = fit_projection(POS, NEG)
    grid = barrier_grid(methods["ODESteer"], view, points=torch.cat([POS, NEG]), resolution=8)
    fig = plot_level_sets(grid, None, paths, inset=True)
    x2, y2 = fig.layout.xaxis2, fig.layout.yaxis2
    assert y2.scaleanchor == "x2"
    assert (x2.range[1] - x2.range[0]) < (fig.layout.xaxis.range[1] - fig.layout.xaxis.range[0])
    box = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(box) == 1 and box[0].x0 == x2.range[0]


def test_level_sets_inset_never_hides_a_path_end() -> None:
    # The demo's layout at screen size: paths run from the negatives (left) to the positives
    # (right); the upper right holds the top paths' ends and no data points. The inset used to
    # go there, counting saved states and points alike, and hid those end markers.
    from lens_odesteer.viz.level_sets import _ends, _free_corner, _starts

    rows = []
    for row, (y, x_end) in enumerate([(11, 17), (8, 18), (5, 18), (1.5, 18), (-4, 18)]):
        for method, dy in (("ODESteer", -0.3), ("CAA", 0.0)):
            for step in range(11):
                t = step / 10
                x = -15 + t * (x_end + 15)
                rows.append({"method": method, "row": row, "step": step, "x": x, "y": y + t * dy})
    paths = pd.DataFrame(rows)
    rng = np.random.default_rng(0)
    pos = pd.DataFrame({"x": rng.uniform(5, 22, 80), "y": rng.uniform(-18, 4, 80)})
    neg = pd.DataFrame({"x": rng.uniform(-20, -9, 100), "y": rng.uniform(-18, 22, 100)})
    extent = (-24.0, 24.0, -22.0, 27.0)
    box = (16.0, 19.0, -5.5, -2.5)  # the zoomed row, at the lowest path's ends
    corner, ((a, b), (c, d)) = _free_corner(paths, pd.concat([pos, neg]), extent, box)
    marks = pd.concat([_ends(paths), _starts(paths)])
    mx = (marks["x"] - extent[0]) / (extent[1] - extent[0])
    my = (marks["y"] - extent[2]) / (extent[3] - extent[2])
    assert not ((mx >= a) & (mx <= b) & (my >= c) & (my <= d)).any(), corner
    bx, by = (17.5 - extent[0]) / 48, (-4 - extent[2]) / 49
    assert not (a <= bx <= b and c <= by <= d)  # nor the zoomed box


# --------------------------------------------------------------------------- profile, layout


def test_profile_relabels_the_sigmoid_and_puts_the_legend_below(paths: pd.DataFrame) -> None:
    fig = plot_trajectory_profile(paths)
    titles = [a.text for a in fig.layout.annotations if a.name is None]
    assert any("not calibrated" in t for t in titles)
    assert any("distance from StepODESteer" in t for t in titles)
    assert fig.layout.legend.orientation == "h" and fig.layout.legend.yanchor == "bottom"
    # The title block ends above the subplot titles: the top margin holds all of its lines.
    title = next(a for a in fig.layout.annotations if a.name == "figure-title")
    n_lines = title.text.count("<br>") + 1
    assert fig.layout.margin.t >= 1.3 * 16 * n_lines + 1.9 * 13


def test_paper_width_figures_wrap_and_shrink(paths: pd.DataFrame) -> None:
    fig = plot_trajectory_profile(paths, width=PAPER_WIDTH)
    assert fig.layout.font.size == 10
    for ann in fig.layout.annotations:
        if ann.name in ("figure-title", "figure-subtitle"):
            size = ann.font.size
            assert all(len(line) * 0.56 * size <= PAPER_WIDTH for line in ann.text.split("<br>"))
    assert wrap("a b c", 100, 10) == ["a b c"]


def test_token_text_shows_spaces() -> None:
    assert token_text(" great") == "␣great"
    assert token_text("  ") == "␣␣"
    assert token_text("\n") == "\\n"
    assert token_text("") == "∅"


# --------------------------------------------------------------------------- per-step logits


@pytest.fixture(scope="module")
def tiny() -> dict:
    model = lo.tiny_bridge()
    acts = lo.collect_activations(model, ["ab", "cd", "ef", "gh", "ij", "kl"], HOOK, progress=False)
    pos, neg = acts[:3], acts[3:]
    barrier = lo.sketch_barrier(n_components=128)
    methods = {
        "ODESteer": lo.ODESteer(barrier).fit(pos, neg),
        "StepODESteer": lo.StepODESteer(barrier).fit(pos, neg),
        "CAA": lo.CAA().fit(pos, neg),
    }
    return {"model": model, "pos": pos, "neg": neg, "methods": methods}


def test_heatmap_difference_panels(tiny: dict) -> None:
    res = step_logits(tiny["model"], "abc", HOOK, tiny["methods"], T=1.0, top_k=4, targets=["a"])
    diff = step_logit_differences(res, ["CAA", "ODESteer"])
    assert (diff.loc[diff["baseline"] == "ODESteer", "logprob"] == 0.0).all()
    # ODESteer - CAA in the figure is its own panel with its own colour scale.
    fig = plot_logit_heatmap(res, difference_from=["CAA", "StepODESteer"])
    assert [t.coloraxis for t in fig.data] == ["coloraxis"] * 3 + ["coloraxis2", "coloraxis3"]
    tokens = res.tokens
    ode = tokens[tokens["method"] == "ODESteer"].pivot_table(
        index="token_id", columns="step", values="logprob"
    )
    caa = tokens[tokens["method"] == "CAA"].pivot_table(
        index="token_id", columns="step", values="logprob"
    )
    order = list(dict.fromkeys(tokens["token_id"]))
    expected = (ode - caa).reindex(index=order).to_numpy()
    assert np.allclose(np.asarray(fig.data[3].z, dtype=float), expected, atol=1e-12)
    assert fig.layout.coloraxis2.cmax == pytest.approx(np.abs(expected).max())
    # CAA minus itself: all zeros.
    self_fig = plot_logit_heatmap(res, difference_from="CAA", methods=[])
    res_caa = step_logit_differences(res, "CAA", method="CAA")
    assert (res_caa["logprob"] == 0.0).all()
    assert len(self_fig.data) == 1
    # Targets are starred, leading spaces visible, no token ids by default.
    labels = list(fig.data[0].y)
    assert labels[0].startswith("★ ") and not any("(" in lab for lab in labels)


def test_target_figure_says_when_tokens_were_picked_automatically(tiny: dict) -> None:
    res = step_logits(tiny["model"], "abc", HOOK, tiny["methods"], T=1.0, top_k=3)
    fig = plot_target_logprob(res)
    title = next(a.text for a in fig.layout.annotations if a.name == "figure-title")
    assert "Most-changed" in title
    sub = next(a.text for a in fig.layout.annotations if a.name == "figure-subtitle")
    assert "No targets were given" in sub.replace("<br>", " ")
    diff = plot_target_logprob(res, difference_from="CAA")
    caa = [t for t in diff.data if t.name and t.name.startswith("CAA") and t.y[0] is not None]
    assert all(np.allclose(np.asarray(t.y, dtype=float), 0.0) for t in caa)


def test_slider_moves_paths_and_distribution_together(tiny: dict) -> None:
    view = fit_projection(tiny["pos"], tiny["neg"])
    res = step_logits(
        tiny["model"], "abc", HOOK, tiny["methods"], T=1.0, top_k=4, targets=["a"], view=view
    )
    grid = barrier_grid(
        tiny["methods"]["ODESteer"],
        view,
        extent=(-5.0, 5.0, -5.0, 5.0),
        origin=res.start,
        resolution=6,
    )
    fig = plot_step_slider(res, grid, n_tokens=3)
    n = int(res.steps["step"].max())
    assert len(fig.frames) == n + 1 and fig.layout.sliders[0].active == n
    k = 4
    frame = fig.frames[k]
    markers = [t for t in frame.data if t.type == "scatter" and t.mode == "markers"]
    bars = [t for t in frame.data if t.type == "bar"]
    steps = res.steps.set_index(["method", "step"])
    for trace in markers:
        assert trace.x[0] == pytest.approx(steps.loc[(trace.name, k), "x"])
    tokens = res.tokens.set_index(["method", "step", "token_id"])["prob"]
    target = int(res.tokens.loc[res.tokens["is_target"], "token_id"].iloc[0])
    for bar in bars:
        assert bar.x[0] == pytest.approx(tokens.loc[(bar.name, k, target)])
    # The initial state is the last step, and the HTML animates without a server.
    html = fig.to_html(full_html=False, include_plotlyjs=False)
    assert "Plotly.addFrames('" in html
    with pytest.raises(InvalidParameterError, match="view"):
        plot_step_slider(step_logits(tiny["model"], "abc", HOOK, tiny["methods"], T=1.0))


def test_report_headline_gap_is_the_full_dimensional_diagnostic(tiny: dict, tmp_path) -> None:
    report = comparison_report(
        tiny["model"],
        HOOK,
        tiny["pos"],
        tiny["neg"],
        tmp_path,
        ode=tiny["methods"]["ODESteer"],
        prompt="abc",
        resolution=8,
        static_formats=(),
    )
    diag = report.frames["diagnostic"].set_index("metric")["value"]
    assert report.summary["relative_end_gap"] == pytest.approx(diag["gap_median"])
    assert report.summary["relative_end_gap_in_view"] <= report.summary["relative_end_gap_paths"]
    text = report.html_path.read_text()
    assert "in all dimensions" in text and text.count("Plotly.addFrames('") == 1
    assert {"level_sets_difference", "profile_difference", "slider"} <= set(report.figures)


def test_report_says_when_the_data_gives_no_bent_barrier(tiny: dict, tmp_path) -> None:
    gen = torch.Generator().manual_seed(5)
    pos = torch.randn(24, 64, generator=gen) + 1.0
    neg = torch.randn(24, 64, generator=gen) - 1.0
    report = comparison_report(
        tiny["model"],
        HOOK,
        pos,
        neg,
        tmp_path,
        prompt="abc",
        resolution=6,
        static_formats=(),
        interactive=False,
        min_bend=100.0,  # no barrier bends by 100 times the displacement
    )
    assert report.summary["bent"] is None
    assert "found no barrier whose flow bends" in report.summary["bent_note"]
    assert not [name for name in report.figures if name.endswith("_bent")]
    assert "found no barrier whose flow bends" in report.html_path.read_text()


# --------------------------------------------------------------------------- evaluation


def _fold_units() -> pd.DataFrame:
    """Two folds whose native T differ for the same grid point (14.86 vs 14.95)."""
    rows = []
    for split, scale in (("fold0", 14.86), ("fold1", 14.95)):
        for phase, indices in (("val", [0, 1, 2]), ("test", [2])):
            for i in indices:
                for unit in range(4):
                    rows.append(
                        {
                            "split": split,
                            "method": "ODESteer",
                            "phase": phase,
                            "T": scale * (i + 1) / 3,
                            "T_index": i,
                            "displacement_frac": 0.05 * (i + 1)
                            + (0.001 if split == "fold1" else 0),
                            "x": float(i + unit) + (0.5 if split == "fold1" else 0.0),
                        }
                    )
    return pd.DataFrame(rows)


def test_metric_vs_strength_has_one_point_per_grid_index_per_split() -> None:
    units = _fold_units()
    curve = strength_curve(units, "x")
    val = curve[curve["phase"] == "val"]
    assert val.groupby("split")["T_index"].apply(list).to_dict() == {
        "fold0": [0, 1, 2],
        "fold1": [0, 1, 2],
    }
    fig = plot_metric_vs_strength(units, "x")
    lines = [t for t in fig.data if t.mode == "lines+markers" and t.x[0] is not None]
    assert len(lines) == 2  # one line per split, no zig-zag between folds
    for line in lines:
        assert len(line.x) == 3 and list(line.x) == sorted(line.x)
    # Without T_index the grid index is the rank of T within each split.
    again = strength_curve(units.drop(columns="T_index"), "x")
    assert again[["split", "T_index"]].equals(curve[["split", "T_index"]])
