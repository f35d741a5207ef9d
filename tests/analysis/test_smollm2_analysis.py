"""Every analysis frame and figure type, from the real SmolLM2 model, checked by its data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.analysis import step_logits
from lens_odesteer.analysis.level_sets import barrier_grid, points_frame
from lens_odesteer.analysis.projection import fit_projection
from lens_odesteer.analysis.trajectories import trajectory_frame
from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.hooks import SteeringHook
from lens_odesteer.viz.level_sets import plot_level_sets
from lens_odesteer.viz.step_logits import plot_logit_heatmap, plot_target_logprob
from lens_odesteer.viz.trajectories import plot_trajectories_3d, plot_trajectory_profile

pytestmark = pytest.mark.slow

LAYER = 15
N_FIT = 30
PROMPT = "The movie was"


@pytest.fixture(scope="module")
def setup() -> dict[str, object]:
    torch.set_num_threads(1)
    model = lo.load_model(progress=False)
    hook = lo.resid_post(LAYER)
    data = lo.load_builtin("sentiment")
    pos = lo.collect_activations(model, data.positive_texts()[: N_FIT + 4], hook, progress=False)
    neg = lo.collect_activations(model, data.negative_texts()[: N_FIT + 4], hook, progress=False)
    fit_pos, fit_neg, held_out = pos[:N_FIT], neg[:N_FIT], neg[N_FIT:]
    ode = lo.ODESteer().fit(fit_pos, fit_neg)
    step = lo.StepODESteer().fit(fit_pos, fit_neg)
    caa = lo.CAA().fit(fit_pos, fit_neg)
    gap = float(caa.direction_.norm())
    methods = {"ODESteer": ode, "StepODESteer": step, "CAA": caa}
    T = {"ODESteer": gap, "StepODESteer": gap, "CAA": 1.0}
    return {
        "model": model,
        "hook": hook,
        "pos": fit_pos,
        "neg": fit_neg,
        "held_out": held_out,
        "methods": methods,
        "T": T,
        "view": fit_projection(fit_pos, fit_neg),
    }


@pytest.fixture(scope="module")
def paths(setup: dict) -> object:
    return trajectory_frame(setup["methods"], setup["held_out"], T=setup["T"], view=setup["view"])


@pytest.fixture(scope="module")
def logits(setup: dict) -> object:
    return step_logits(
        setup["model"],
        PROMPT,
        setup["hook"],
        setup["methods"],
        T=setup["T"],
        targets=[" great", " terrible"],
        top_k=6,
    )


def test_paths_on_smollm2(setup: dict, paths) -> None:
    view = setup["view"]
    start = view.transform(setup["held_out"]).numpy()
    for method in setup["methods"]:
        first = paths[(paths.method == method) & (paths.step == 0)].sort_values("row")
        assert np.allclose(first[["x", "y"]].to_numpy(), start, atol=1e-4)
    ode = paths[paths.method == "ODESteer"].sort_values(["row", "step"])
    # ODESteer climbs its own barrier at every step; held-out negatives start below zero.
    assert (ode.groupby("row")["h"].diff().dropna() > 0).all()
    assert (ode[ode.step == 0]["h"] < 0).all()
    assert (ode[ode.step == ode.step.max()]["h"] > ode[ode.step == 0]["h"].to_numpy()).all()
    for method in ("StepODESteer", "CAA"):
        sub = paths[paths.method == method]
        end = sub.groupby("row")["displacement"].transform("max")
        assert np.allclose(sub["displacement"], sub["fraction"] * end, rtol=1e-4, atol=1e-3)
    # CAA x1 and ODESteer at T = |mu+ - mu-| move (almost) the same distance.
    last = paths[paths.step == paths.step.max()].groupby("method")["displacement"].mean()
    assert abs(last["CAA"] - setup["T"]["ODESteer"]) < 1e-3 * setup["T"]["ODESteer"]
    assert last["ODESteer"] <= setup["T"]["ODESteer"] + 1e-3


def test_level_sets_on_smollm2(setup: dict, paths) -> None:
    ode, view = setup["methods"]["ODESteer"], setup["view"]
    grid = barrier_grid(ode, view, points=torch.cat([setup["pos"], setup["neg"]]), resolution=9)
    assert grid["h"].min() < 0 < grid["h"].max()  # the boundary h = 0 crosses the slice
    sample = grid.sample(5, random_state=0)
    lifted = view.lift(torch.tensor(sample[["x", "y"]].to_numpy(), dtype=torch.float32))
    assert np.allclose(sample["h"], ode.barrier_value(lifted).double().numpy(), atol=1e-5)
    # h grows along the mean-difference axis of this slice (the classes separate along it).
    by_x = grid.groupby("x")["h"].mean()
    assert by_x.iloc[-1] > by_x.iloc[0]
    points = points_frame(view, setup["pos"], setup["neg"], steerer=ode)
    fig = plot_level_sets(grid, points, paths)
    contour = fig.data[0]
    assert np.allclose(np.asarray(contour.z)[0, 0], grid.sort_values(["y", "x"])["h"].iloc[0])
    ode_traces = [t for t in fig.data if t.name == "ODESteer" and t.type == "scatter"]
    assert len(ode_traces) == 1  # all rows in one trace, separated by gaps
    assert sum(x is None for x in ode_traces[0].x) == setup["held_out"].shape[0]
    subtitle = next(a.text for a in fig.layout.annotations if a.name == "figure-subtitle")
    assert "plane through the data mean" in subtitle.replace("<br>", " ")


def test_profile_and_3d_figures_on_smollm2(setup: dict, paths) -> None:
    fig = plot_trajectory_profile(paths)
    mean_h = [t for t in fig.data if t.name == "ODESteer" and t.showlegend]
    expected = paths[paths.method == "ODESteer"].groupby("step")["h"].mean().to_numpy()
    assert np.allclose(np.asarray(mean_h[0].y), expected)
    view3 = fit_projection(setup["pos"], setup["neg"], n_components=3)
    paths3 = trajectory_frame(setup["methods"], setup["held_out"], T=setup["T"], view=view3)
    fig3 = plot_trajectories_3d(points_frame(view3, setup["pos"], setup["neg"]), paths3)
    assert {t.type for t in fig3.data} == {"scatter3d"}
    assert np.allclose(paths3[["x", "y"]], paths[["x", "y"]], atol=1e-4)  # same first two axes


def test_step_logits_on_smollm2(setup: dict, logits) -> None:
    steps = logits.steps
    # Patching the unsteered activation back in reproduces the plain forward pass.
    assert steps.loc[steps.step == 0, "kl"].abs().max() < 1e-5
    for method in setup["methods"]:
        kl = steps[steps.method == method].sort_values("step")["kl"].to_numpy()
        assert kl[-1] > kl[1] > 0  # moving further changes the prediction more
    # The last ODE step equals what SteeringHook does at the last token in a real forward pass.
    model, hook = setup["model"], setup["hook"]
    ode = setup["methods"]["ODESteer"]
    tokens = model.to_tokens(PROMPT)
    steering_hook = SteeringHook(model, ode, T=setup["T"]["ODESteer"], scope="last")
    with torch.inference_mode():
        out = model.run_with_hooks(tokens, fwd_hooks=[(hook, steering_hook)])
    expected = out[0, -1].float().log_softmax(-1)
    toks = logits.tokens
    final = toks[(toks.method == "ODESteer") & (toks.step == steps.step.max())]
    assert np.allclose(final["logprob"], expected.numpy()[final["token_id"].to_numpy()], atol=2e-4)
    targets = toks[toks.is_target]
    assert set(targets["token"]) == {" great", " terrible"}
    assert np.allclose(np.exp(toks["logprob"]), toks["prob"], rtol=1e-6)
    heat = plot_logit_heatmap(logits)
    assert [t.type for t in heat.data] == ["heatmap"] * 3
    z0 = np.asarray(heat.data[0].z)
    assert np.allclose(z0[:, 0], 0.0, atol=1e-3)  # step 0 column: no change
    lines = plot_target_logprob(logits)
    assert len(lines.data) == 3 * 2 + 3 + 2  # per method: two targets + KL; a key per target


def test_step_logits_rejects_multi_token_targets(setup: dict) -> None:
    with pytest.raises(InvalidParameterError, match="not one"):
        step_logits(
            setup["model"],
            PROMPT,
            setup["hook"],
            setup["methods"],
            T=setup["T"],
            targets=[" extraordinarily wonderful"],
        )
