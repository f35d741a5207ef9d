"""Write the notebooks in notebooks/ from the cell sources below (outputs are not committed).

Run: .venv/bin/python scripts/make_notebooks.py  (tests/test_notebooks.py executes them).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

OUT = Path(__file__).resolve().parents[1] / "notebooks"

SETUP = """\
import torch
import lens_odesteer as lo

model = lo.load_model(progress=False)          # SmolLM2-135M-Instruct, offline, cached
hook = lo.resid_post(15)                        # "blocks.15.hook_resid_post"
data = lo.load_builtin("sentiment")             # positive / negative pairs
train, test = data.split(test_size=0.2, seed=0)
# 60 training pairs keep this notebook quick on a CPU; use them all for real work.
pos = lo.collect_activations(model, train.positive_texts()[:60], hook, progress=False)
neg = lo.collect_activations(model, train.negative_texts()[:60], hook, progress=False)
held_out_neg = lo.collect_activations(model, test.negative_texts()[:8], hook, progress=False)
pos.shape, neg.shape"""

QUICKSTART = [
    new_markdown_cell(
        "# Quickstart: ODESteer and CAA on SmolLM2\n\n"
        "Fit ODESteer (multi-step, kernel barrier) and CAA (one-step mean difference) on the "
        "built-in sentiment pairs at layer 15, steer generation toward positive sentiment, and "
        "compare. Runs offline on CPU in about a minute."
    ),
    new_code_cell(SETUP),
    new_markdown_cell(
        "ODESteer's `T` is an arc length in activation units; CAA's is a multiplier of "
        "`mu+ - mu-`. Matching `T_ode = |mu+ - mu-|` with CAA x1 compares equal displacements."
    ),
    new_code_cell(
        "ode = lo.ODESteer().fit(pos, neg)\n"
        "caa = lo.CAA().fit(pos, neg)\n"
        "T = float(caa.direction_.norm())\n"
        "norm = float(pos.norm(dim=-1).mean())\n"
        "print(f'T = |mu+ - mu-| = {T:.1f}; mean residual norm {norm:.0f}')"
    ),
    new_code_cell(
        "import pandas as pd\n"
        "from lens_odesteer.hooks import generate\n\n"
        "prompts = [p.prompt.rstrip() for p in test][:4]\n"
        "runs = {\n"
        "    'unsteered': generate(model, prompts, None, max_new_tokens=20),\n"
        "    'CAA': generate(model, prompts, {hook: caa}, T=1.0, max_new_tokens=20),\n"
        "    'ODESteer': generate(model, prompts, {hook: ode}, T=T, max_new_tokens=20),\n"
        "}\n"
        "pd.DataFrame({'prompt': prompts, **runs})"
    ),
    new_markdown_cell("Score the continuations with VADER (an offline sentiment lexicon)."),
    new_code_cell(
        "from lens_odesteer.evaluation.scoring import vader_compound\n\n"
        "scores = {name: vader_compound(texts) for name, texts in runs.items()}\n"
        "summary = pd.DataFrame({name: [s.mean()] for name, s in scores.items()}, "
        "index=['mean VADER compound'])\n"
        "summary"
    ),
    new_markdown_cell(
        "What the edit does at the last prompt token: the ODESteer barrier `h` (log density "
        "ratio, `h > 0` = positive side) before and after each method."
    ),
    new_code_cell(
        "last = lo.collect_activations(model, prompts, hook, progress=False)\n"
        "h = pd.DataFrame({\n"
        "    'unsteered': ode.barrier_value(last),\n"
        "    'CAA': ode.barrier_value(caa.steer(last, 1.0)),\n"
        "    'ODESteer': ode.barrier_value(ode.steer(last, T)),\n"
        "})\n"
        "assert (h['ODESteer'] > h['unsteered']).all() and (h['CAA'] > h['unsteered']).all()\n"
        "h"
    ),
    new_code_cell(
        "path = ode.save('/tmp/lens_odesteer_quickstart', provenance={'hook_name': hook})\n"
        "assert lo.load_steerer(path).steer(last, T).equal(ode.steer(last, T))\n"
        "path"
    ),
]

TRAJECTORIES = [
    new_markdown_cell(
        "# Trajectories and level sets\n\n"
        "Where does ODESteer move an activation, and how does that differ from one-step "
        "addition? We project activations into the plane spanned by the mean difference and "
        "the top principal component of what remains, draw the barrier `h` on that plane, and "
        "overlay the paths of ODESteer, StepODESteer (one Euler step of the same field) and CAA."
    ),
    new_code_cell(SETUP),
    new_code_cell(
        "from lens_odesteer.analysis import fit_projection, barrier_grid, points_frame, "
        "trajectory_frame\n"
        "from lens_odesteer.viz import plot_level_sets, plot_trajectory_profile\n\n"
        "ode = lo.ODESteer().fit(pos, neg)\n"
        "step = lo.StepODESteer().fit(pos, neg)\n"
        "caa = lo.CAA().fit(pos, neg)\n"
        "T = float(caa.direction_.norm())\n"
        "methods = {'ODESteer': ode, 'StepODESteer': step, 'CAA': caa}\n"
        "strengths = {'ODESteer': T, 'StepODESteer': T, 'CAA': 1.0}   # equal displacement\n"
        "view = fit_projection(pos, neg, method='mean_diff')\n"
        "view.axis_labels, [round(v, 3) for v in view.explained_variance]"
    ),
    new_code_cell(
        "paths = trajectory_frame(methods, held_out_neg, strengths, view=view)\n"
        "# Sanity: every path starts at the projection of its activation.\n"
        "start = paths[paths.step == 0]\n"
        "assert abs(start[['x', 'y']].to_numpy() - "
        "view.transform(held_out_neg).repeat(3, 1).numpy()).max() < 1e-3\n"
        "paths.head()"
    ),
    new_code_cell(
        "grid = barrier_grid(ode, view, points=torch.cat([pos, neg, held_out_neg]), "
        "resolution=60)\n"
        "points = points_frame(view, pos, neg, steerer=ode)\n"
        "fig = plot_level_sets(grid, points, paths)\n"
        "fig"
    ),
    new_markdown_cell(
        "The level sets are a slice: `h` is evaluated on the plane through the data mean. "
        "`points['off_plane']` says how far each activation lies from that plane."
    ),
    new_code_cell("plot_trajectory_profile(paths)"),
    new_code_cell(
        "ode_path = paths[paths.method == 'ODESteer'].sort_values(['row', 'step'])\n"
        "assert (ode_path.groupby('row')['h'].diff().dropna() > 0).all()   # h rises each step\n"
        "end = paths[paths.step == paths.step.max()].set_index(['method', 'row'])\n"
        "gap = ((end.loc['ODESteer'][['x', 'y']] - end.loc['StepODESteer'][['x', 'y']]) ** 2)"
        ".sum(axis=1) ** 0.5\n"
        "print(f'ODE vs one-step end points differ by {float((gap / T).mean()):.2%} of the "
        "displacement in this view')"
    ),
    new_markdown_cell("Export a figure for a paper (PNG/SVG/PDF need kaleido and Chromium)."),
    new_code_cell(
        "import tempfile\n"
        "from lens_odesteer.viz import save_figures, static_export_status\n\n"
        "out = tempfile.mkdtemp()\n"
        "formats = ('html', 'png', 'svg') if static_export_status() is None else ('html',)\n"
        "save_figures({'level_sets': fig}, out, formats=formats, width=700, height=560)"
    ),
]

STEP_LOGITS = [
    new_markdown_cell(
        "# Per-step logit changes\n\n"
        "Patch the activation at each ODE step `a(t_k)` back into the model at the hook and "
        "record the next-token distribution, for ODESteer and for one-step addition at matching "
        "`t`. Step 0 is the unsteered activation, so its KL is zero up to float noise."
    ),
    new_code_cell(SETUP),
    new_code_cell(
        "from lens_odesteer.analysis import step_logits\n"
        "from lens_odesteer.viz import plot_logit_heatmap, plot_target_logprob\n\n"
        "ode = lo.ODESteer().fit(pos, neg)\n"
        "step = lo.StepODESteer().fit(pos, neg)\n"
        "caa = lo.CAA().fit(pos, neg)\n"
        "T = float(caa.direction_.norm())\n"
        "result = step_logits(\n"
        "    model, 'The food at that restaurant was', hook,\n"
        "    {'ODESteer': ode, 'StepODESteer': step, 'CAA': caa},\n"
        "    {'ODESteer': T, 'StepODESteer': T, 'CAA': 1.0},\n"
        "    targets=[' delicious', ' terrible'], top_k=8,\n"
        ")\n"
        "assert result.steps.loc[result.steps.step == 0, 'kl'].abs().max() < 1e-5\n"
        "result.steps.head(12)"
    ),
    new_code_cell("plot_logit_heatmap(result)"),
    new_code_cell("plot_target_logprob(result)"),
    new_code_cell(
        "final = result.tokens[result.tokens.step == result.tokens.step.max()]\n"
        "final.pivot_table(index='token', columns='method', values='delta_logprob')"
        ".sort_values('ODESteer')"
    ),
]


def _write(name: str, cells: list) -> None:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, OUT / name)


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    _write("01_quickstart.ipynb", QUICKSTART)
    _write("02_trajectories_and_level_sets.ipynb", TRAJECTORIES)
    _write("03_per_step_logits.ipynb", STEP_LOGITS)
