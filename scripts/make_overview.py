"""Draw docs/overview.png, the README's picture: ODESteer paths vs one-step steering.

Real data: SmolLM2-135M-Instruct, ``blocks.15.hook_resid_post``, the built-in sentiment pairs
(80% fitted, the held-out negatives steered). The barrier is a degree-3 normalised sketch with
gamma 10 (one that bends, see docs/RESULTS.md); ODESteer integrates its unit field in 10 Euler
steps, StepODESteer takes one step of the same field, CAA one step along the mean difference,
all at the same norm-relative strength. The view is spanned by the mean difference and by the
direction from the one-step end to the ODE end, so the separation is drawn at its true size.

    .venv/bin/python scripts/make_overview.py [--out docs/overview.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import lens_odesteer as lo
from lens_odesteer.analysis import barrier_grid, points_frame
from lens_odesteer.viz import plot_level_sets, save_figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/overview.png")
    parser.add_argument("--strength", type=float, default=0.3)
    args = parser.parse_args()
    model = lo.load_model()
    hook = lo.resid_post(15)
    train, test = lo.load_builtin("sentiment").split(test_size=0.2, seed=0)
    pos = lo.collect_activations(model, train.positive_texts(), hook, progress=False)
    neg = lo.collect_activations(model, train.negative_texts(), hook, progress=False)
    start = lo.collect_activations(model, test.negative_texts()[:6], hook, progress=False)
    barrier = lo.sketch_barrier(gamma=10.0, degree=3)
    methods = {
        "ODESteer": lo.ODESteer(barrier).fit(pos, neg),
        "StepODESteer": lo.StepODESteer(barrier).fit(pos, neg),
        "CAA": lo.CAA().fit(pos, neg),
    }
    T = methods["ODESteer"].T_for(args.strength)
    ode_end = methods["ODESteer"].steer(start, T)
    step_end = methods["StepODESteer"].steer(start, T)
    bend = (ode_end - step_end).mean(0)
    view = lo.fit_projection(
        pos,
        neg,
        method="directions",
        directions=[pos.mean(0) - neg.mean(0), bend],
        labels=["mean difference", "ODE end - one-step end"],
    )
    paths = lo.trajectory_frame(methods, start, strength=args.strength, view=view)
    pad = 2.0
    extent = (
        float(min(paths["x"].min(), view.transform(torch.cat([pos, neg]))[:, 0].min())) - pad,
        float(max(paths["x"].max(), view.transform(torch.cat([pos, neg]))[:, 0].max())) + pad,
        float(min(paths["y"].min(), view.transform(torch.cat([pos, neg]))[:, 1].min())) - pad,
        float(max(paths["y"].max(), view.transform(torch.cat([pos, neg]))[:, 1].max())) + pad,
    )
    grid = barrier_grid(methods["ODESteer"], view, extent=extent)
    fig = plot_level_sets(
        grid,
        points_frame(view, pos, neg),
        paths,
        title=f"Steering paths at strength {args.strength:g} (SmolLM2, layer 15)",
        width=720,
        height=None,  # equal axis scales: the height follows the data's aspect
    )
    out = Path(args.out)
    save_figures({out.stem: fig}, out.parent, formats=("png",), scale=1, static="require")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
