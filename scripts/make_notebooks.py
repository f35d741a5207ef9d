"""Write the tutorial notebooks in notebooks/ from the cells below, executed, with their outputs.

The notebooks are committed *with* outputs (figures as static PNG images), so a reader who only
browses the repository sees every table and figure. This script is their source: edit the cells
here, then regenerate.

    .venv/bin/python scripts/make_notebooks.py --execute       # write and run all of them
    .venv/bin/python scripts/make_notebooks.py --execute 05    # only names starting with 05
    .venv/bin/python scripts/make_notebooks.py --check         # committed cells == this script?
    .venv/bin/python scripts/make_notebooks.py --out DIR       # unexecuted copies into DIR

Executing runs the kernel in notebooks/, so the figures notebook 03 saves land in
notebooks/figures/ (ignored by git). tests/test_notebooks.py checks the committed files against
this script and executes a copy of each one (slow).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from textwrap import dedent

import nbformat
from nbclient import NotebookClient
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

OUT = Path(__file__).resolve().parents[1] / "notebooks"
#: Cells whose printed numbers the prose quotes; tests/test_notebooks.py re-runs and compares.
QUOTED = "quoted"


def md(*parts: str) -> NotebookNode:
    """A markdown cell from one or more paragraphs (each dedented on its own)."""
    return new_markdown_cell("\n\n".join(dedent(part).strip() for part in parts))


def code(text: str, *, quoted: bool = False) -> NotebookNode:
    cell = new_code_cell(dedent(text).strip())
    if quoted:
        cell.metadata["tags"] = [QUOTED]
    return cell


#: The first code cell of every notebook, word for word.
SETUP = """
import plotly.io as pio
import torch

import lens_odesteer as lo

pio.renderers.default = "png"  # figures as static images, visible wherever the notebook is read
model = lo.load_model(progress=False)  # SmolLM2-135M-Instruct, offline
hook = lo.resid_post(15)  # "blocks.15.hook_resid_post": the residual stream after block 15
train, test = lo.load_builtin("sentiment").split(test_size=0.2, seed=0)
# 60 training pairs keep the notebook quick on a CPU; use all of them for real work.
pos = lo.collect_activations(model, train.positive_texts()[:60], hook, progress=False)
neg = lo.collect_activations(model, train.negative_texts()[:60], hook, progress=False)
held_out = lo.collect_activations(model, test.negative_texts(), hook, progress=False)
pos.shape, neg.shape, held_out.shape
"""

SETUP_NOTE = """
The setup cell is the same at the top of every notebook in this folder: it loads
SmolLM2-135M-Instruct (offline), picks the hook `blocks.15.hook_resid_post`, splits the
built-in sentiment pairs by group (seed 0), and collects one activation per text at its last
token: `pos` and `neg` from 60 training pairs, `held_out` from the 28 held-out negative texts.
Figures are shown as PNG images; set `pio.renderers.default = "notebook"` for interactive
ones.
"""

# ------------------------------------------------------------------------------------------
# 01: quickstart
# ------------------------------------------------------------------------------------------

QUICKSTART = [
    md(
        """
        # Quickstart: steer SmolLM2 toward positive sentiment with ODESteer and CAA

        ODESteer (ICLR 2026) fits a *barrier* `h(a)` on activations: a kernel log density ratio
        that is positive where activations look like the "good" examples and negative where
        they look like the "bad" ones. Steering moves an activation along `grad h / |grad h|`
        in several small Euler steps, so the path can follow `h` where it curves. CAA
        (contrastive activation addition) is the one-step baseline: add the difference of the
        two class means once.

        This notebook fits both on the same activations and steers generation with them:

        1. load the model and collect contrast activations;
        2. fit ODESteer and CAA;
        3. steer generation, both methods at the same `strength`;
        4. what `strength` means, and why it is comparable across methods;
        5. which tokens are steered (scopes);
        6. save the fitted steerer.

        Everything runs offline on a CPU in a minute or two.
        """
    ),
    md(
        """
        ## 1. Model and contrast activations

        `lo.load_model()` returns a TransformerLens `TransformerBridge` around
        SmolLM2-135M-Instruct (30 blocks, `d_model = 576`), read from a wheel on disk, so no
        network is needed. The built-in `sentiment` set holds *contrast pairs*: one prompt with
        a positive and a negative continuation. `lo.collect_activations` runs each full text
        through the model and keeps the residual stream at the hook at the text's last token:
        one row of 576 numbers per text.
        """
    ),
    code(SETUP),
    md(
        SETUP_NOTE,
        """
        One training pair: the two texts differ only in their sentiment, so the difference
        between `pos` and `neg` is mostly about sentiment.
        """,
    ),
    code("train[0]"),
    md(
        """
        ## 2. Fit ODESteer and CAA

        Both follow scikit-learn's pattern: set hyperparameters in the constructor, `fit(pos,
        neg)` learns from data and returns the steerer. `lo.ODESteer()` uses the paper's
        defaults: a logistic regression on a normalised degree-2 polynomial TensorSketch (8000
        features) as the barrier, and 10 Euler steps. `lo.CAA()` learns `mu+ - mu-`. Fitting
        also records the typical activation norm at the hook, which `strength` is measured
        against (section 4).
        """
    ),
    code(
        """
        ode = lo.ODESteer().fit(pos, neg)  # barrier h, then 10 Euler steps along grad h / |grad h|
        caa = lo.CAA().fit(pos, neg)  # one step along mu+ - mu-
        h = ode.barrier_value(held_out)  # h < 0: the barrier calls the activation negative
        print(f"{ode.name}: {ode.kind}, T is {ode.T_meaning}")
        print(f"{caa.name}: {caa.kind}, T is {caa.T_meaning}")
        print(f"held-out negatives with h < 0: {int((h < 0).sum())} of {len(h)}")
        """
    ),
    md(
        """
        ## 3. Steer generation at one strength

        A `lo.SteeringPlan` says which steerer acts at which hook, how strongly and on which
        tokens. `lo.generate` tokenizes each prompt alone, pads the batch on the left and tells
        the hooks where each row's tokens are, so batched generation steers the same tokens as
        one prompt at a time; without a plan it gives the unsteered baseline with the same
        tokenization. Instead of a plan, `{hook: steerer}` with `strength=` works too.

        The prompts are held-out prompts (never fitted). Decoding is greedy, so the texts are
        reproducible.
        """
    ),
    code(
        """
        import pandas as pd

        pd.set_option("display.max_colwidth", None)
        prompts = [pair.prompt for pair in test][:4]
        plan = lo.SteeringPlan({hook: ode}, strength=0.3)
        texts = {
            "unsteered": lo.generate(model, prompts, max_new_tokens=16),
            "ODESteer": lo.generate(model, prompts, plan, max_new_tokens=16),
            "CAA": lo.generate(model, prompts, {hook: caa}, strength=0.3, max_new_tokens=16),
        }
        pd.DataFrame({"prompt": prompts, **texts})
        """
    ),
    md(
        """
        A quick score: VADER's compound sentiment (from -1 to 1, an offline lexicon; it comes
        with the `[eval]` extra). Four prompts are far too few to rank methods; the evaluation
        suite (`lens-odesteer eval sentiment`) does that with intervals.
        """
    ),
    code(
        """
        from lens_odesteer.evaluation.scoring import vader_compound

        scores = pd.DataFrame({name: vader_compound(t) for name, t in texts.items()}).mean()
        scores.round(3)
        """,
        quoted=True,
    ),
    md(
        """
        At `strength=0.3` both methods make the continuations more positive than unsteered
        (mean compound 0.357 for ODESteer and for CAA, against 0.060): "a sense of connection",
        "a small gem in the area", "a perfect example". Their texts are similar and sometimes
        the same: with the default barrier ODESteer's path is close to a straight line, which
        notebooks 03 to 05 look at closely.

        The same plan also works with TransformerLens's own `generate` inside `lo.steering`,
        a `with` block whose hooks are removed however it ends:
        """
    ),
    code(
        """
        with lo.steering(model, plan):
            print(model.generate("Our trip to the mountains", max_new_tokens=12, verbose=False))
        """
    ),
    md(
        """
        ## 4. What `strength` means

        Each method has a native strength `T` with its own unit: an arc length for ODESteer,
        a multiplier of `mu+ - mu-` for CAA. `strength` puts them on one scale: it is the
        length of the move (the arc length of an ODE path, the step of a one-step method) as a
        fraction of the typical activation norm at the hook, recorded at fit time. So
        `strength=0.3` moves an activation by about 30% of a typical norm, whatever the method.
        `steerer.T_for(strength)` converts; `T=` passes a native value instead.

        Below, each method moves the held-out negatives at three strengths, and the measured
        mean move is divided by their mean norm.
        """
    ),
    code(
        """
        rows = []  # one row per method and strength
        for strength in (0.1, 0.3, 0.5):
            for name, steerer in {"ODESteer": ode, "CAA": caa}.items():
                T = steerer.T_for(strength)
                moved = (steerer.steer(held_out, T) - held_out).norm(dim=-1).mean()
                rows.append({"method": name, "strength": strength, "native T": T,
                             "mean move / mean |a|": float(moved / held_out.norm(dim=-1).mean())})
        print(f"typical norm at the hook (act_norm_): {ode.act_norm_:.1f}")
        moves = pd.DataFrame(rows)
        moves.round(3)
        """,
        quoted=True,
    ),
    md(
        """
        The typical norm is 151.5, so `strength=0.3` is an arc length of `T = 45.448` for
        ODESteer and `1.678 x (mu+ - mu-)` for CAA, and both move the held-out activations by
        0.3 of their norm (0.299 and 0.300 measured). ODESteer's net move falls slightly short
        of its arc length at large strengths (0.495 at 0.5), because its path is not quite
        straight.

        To match methods by their effect on the model rather than by distance,
        `lo.match_strength(methods, kl=0.1, model=model, hook=hook, prompts=prompts)` solves for
        the `T` of each method whose next-token KL from the unsteered model is 0.1 nats.

        ## 5. Which tokens are steered

        `scope="last"` (the default, the paper's) steers each row's last real token, and in
        generation every new token once; `"all"` steers every real token, `"prompt"` the prompt
        tokens only, `"generated"` only new ones, a list such as `[0, -1]` those positions
        (negative counts back from the end of the prompt), and a boolean `[batch, pos]` mask
        exactly the marked tokens. Positions count each row's real tokens, so they mean the same
        with left or right padding, and the hooks keep no state between forward passes: they
        read each call's padding and KV-cache offset from the model's input. Notebook 02 shows
        scopes at work in `run_with_hooks`; `docs/hooks.md` has the details.

        ## 6. Save the steerer

        A steerer is saved as one `.safetensors` file with a JSON header; the provenance (model
        and hook) lets a later session warn when it is attached somewhere else.
        """
    ),
    code(
        """
        path = ode.save("steerers/sentiment_ode_l15.safetensors", provenance={"hook_name": hook})
        again = lo.load_steerer(path)
        print(path, "| loaded copy steers identically:",
              torch.equal(again.steer(held_out, 30.0), ode.steer(held_out, 30.0)))
        """
    ),
    md(
        """
        Next: `02_analysis_script_workflow` (the same plan in `run_with_hooks`,
        `model.hooks()` and `run_with_cache`), `03_trajectories_and_level_sets` (where the
        activations go), `04_per_step_logits` (what each step does to the next token) and
        `05_ode_vs_one_step_on_a_bending_barrier` (when multi-step integration differs from one
        step).
        """
    ),
]

# ------------------------------------------------------------------------------------------
# 02: analysis-script workflow
# ------------------------------------------------------------------------------------------

WORKFLOW = [
    md(
        """
        # In an analysis script: `run_with_hooks`, `model.hooks()` and `run_with_cache`

        `plan.hooks(model)` turns a steering plan into a list of `(hook_name, hook_function)`
        pairs: ordinary TransformerLens forward hooks. They go wherever TransformerLens takes
        hooks, so steering fits into the tools an interpretability analysis already uses. This
        notebook:

        1. runs one steered forward pass with `model.run_with_hooks` and reads the next-token
           change;
        2. caches the steered residual stream with `run_with_cache` inside
           `with model.hooks(...)`, and follows the edit through every later layer;
        3. steers a padded `list[str]` batch;
        4. reuses one set of hooks across many calls;
        5. builds a `lo.SteeringHook` by hand, and compares scopes.
        """
    ),
    code(SETUP),
    md(
        SETUP_NOTE,
        """
        Fit ODESteer and build a plan at `strength=0.3` (a move of 30% of the typical
        activation norm, see notebook 01). `plan.hooks(model)` validates the plan against the
        model (hook name, width) and returns the pairs; nothing is attached yet.
        """,
    ),
    code(
        """
        import pandas as pd

        ode = lo.ODESteer().fit(pos, neg)
        plan = lo.SteeringPlan({hook: ode}, strength=0.3)
        plan.hooks(model)
        """
    ),
    md(
        """
        ## 1. One steered forward pass

        `model.run_with_hooks(tokens, fwd_hooks=...)` attaches the hooks for one call and
        removes them afterwards. With the default scope `"last"` the hook edits the residual
        stream at the last token only, so the next-token prediction there is what changes.
        The table lists the most likely next tokens after steering and how much each moved.
        """
    ),
    code(
        """
        prompt = "The food at this place was"
        tokens = model.to_tokens(prompt)
        clean_lp = model(tokens)[0, -1].log_softmax(-1)
        steered = model.run_with_hooks(tokens, fwd_hooks=plan.hooks(model))
        steered_lp = steered[0, -1].log_softmax(-1)
        kl = float((steered_lp.exp() * (steered_lp - clean_lp)).sum())
        print(f"KL(steered || unsteered) of the next token: {kl:.4f} nats")

        top = torch.topk(steered_lp, 8).indices
        next_tokens = pd.DataFrame({
            "token": [model.to_string(i) for i in top],
            "p unsteered": clean_lp[top].exp().numpy(),
            "p steered": steered_lp[top].exp().numpy(),
            "change in log p": (steered_lp - clean_lp)[top].numpy(),
        })
        next_tokens.round(3)
        """,
        quoted=True,
    ),
    md(
        """
        The edit at one layer shifts the next-token distribution by 0.0839 nats. Strong
        positive words gain most (` exceptional` +0.951 and ` incredible` +0.584 in log
        probability), ` not` loses (-0.380), and the top token ` amazing` stays on top.
        (Notebook 04 follows this change step by step along the ODE path.)

        ## 2. The steered residual stream, layer by layer

        Inside `with model.hooks(fwd_hooks=plan.hooks(model)):` every forward pass is steered,
        including `run_with_cache`, which then records the *steered* residual stream. Comparing
        it with an unsteered cache shows how the edit at layer 15 travels through layers 16 to
        29. For the next-token view at each layer we use the logit lens: the model's final
        norm and unembedding (`model.ln_final`, `model.unembed`) applied to that layer's
        residual stream at the last token.
        """
    ),
    code(
        """
        def resid_only(name):
            return name.endswith("hook_resid_post")

        _, clean = model.run_with_cache(tokens, names_filter=resid_only)
        with model.hooks(fwd_hooks=plan.hooks(model)):
            _, steered = model.run_with_cache(tokens, names_filter=resid_only)

        rows = []
        for layer in range(model.cfg.n_layers):
            a = clean[lo.resid_post(layer)][:, -1:]  # [1, 1, d_model]: the last token
            b = steered[lo.resid_post(layer)][:, -1:]
            lens_a = model.unembed(model.ln_final(a))[0, 0].log_softmax(-1)
            lens_b = model.unembed(model.ln_final(b))[0, 0].log_softmax(-1)
            rows.append({
                "layer": layer,
                "relative change |b - a| / |a|": float((b - a).norm() / a.norm()),
                "logit-lens KL (nats)": float((lens_b.exp() * (lens_b - lens_a)).sum()),
                "top token, unsteered": repr(model.to_string(lens_a.argmax())),
                "top token, steered": repr(model.to_string(lens_b.argmax())),
            })
        layers = pd.DataFrame(rows)
        layers[layers.layer >= 14].round(4)
        """,
        quoted=True,
    ),
    code(
        """
        from plotly.subplots import make_subplots

        from lens_odesteer.viz import apply_theme, method_colour

        panels = ["relative change |b - a| / |a|", "logit-lens KL (nats)"]
        fig = make_subplots(rows=2, cols=1, shared_xaxes=True, subplot_titles=panels,
                            vertical_spacing=0.12)
        for row, column in enumerate(panels, start=1):
            fig.add_scatter(x=layers["layer"], y=layers[column], mode="lines+markers",
                            line_color=method_colour("ODESteer"), showlegend=False, row=row, col=1)
            fig.add_vline(x=15, line_dash="dot", line_color="black", line_width=1, row=row, col=1)
        fig.update_xaxes(title_text="layer (dotted: the steered hook)", row=2, col=1)
        fig.update_layout(title="The edit at layer 15, read at every later layer (last token)")
        apply_theme(fig, width=680, height=460)
        """
    ),
    md(
        """
        How to read it: layers 0 to 14 run before the hook, so they are unchanged (zero in both
        panels). At layer 15 the residual stream moves by 0.2825 of its norm (a little under
        the strength 0.3, which is relative to the typical norm of the fit data, and this
        prompt's activation is a bit longer). Later blocks add their own outputs to the stream,
        so the relative change shrinks, to 0.1194 at layer 29. The logit-lens KL is not
        monotone (it peaks at 0.2455 at layer 17): intermediate layers are not trained to be
        read out this way, and only the last layer's readout is the model's prediction. There
        the KL is 0.0839 nats, the value of section 1, as it must be: the logit lens of the
        last layer is the model's output.

        ## 3. Padded `list[str]` batches

        `run_with_hooks` on a list of strings pads the batch on the right. The steering hook
        reads each row's real length from the model's input, so `"last"` means each row's own
        last token, and pads are never steered. To check, each prompt is also run alone; the
        logits at its last token agree with its row of the batch up to float rounding.
        """
    ),
    code(
        """
        prompts = ["The service was", "After two hours in the queue, the food at this place was",
                   "Our hotel room was"]
        padded = model.to_tokens(prompts)  # right-padded, as run_with_hooks pads them
        batch_logits = model.run_with_hooks(prompts, fwd_hooks=plan.hooks(model))

        rows = []  # one row per prompt
        for i, text in enumerate(prompts):
            n = model.to_tokens(text).shape[1]
            alone = model.run_with_hooks(text, fwd_hooks=plan.hooks(model))[0, -1]
            rows.append({
                "prompt": text, "tokens": n, "pads": padded.shape[1] - n,
                "max |batch row - alone|": float((batch_logits[i, n - 1] - alone).abs().max()),
                "next token": model.to_string(batch_logits[i, n - 1].argmax()),
            })
        batch_check = pd.DataFrame(rows)
        batch_check
        """
    ),
    md(
        """
        The differences are of order `1e-5` on logits of order 10: rounding from a different
        batch shape, not a misplaced edit (steering the wrong token would change the logits by
        whole units). With token input, pass `attention_mask=` to `run_with_hooks` and the hooks
        read the padding from it; for generation use `lo.generate`, which pads on the left and
        is exact with or without the KV cache.

        ## 4. One set of hooks, many calls

        The hooks keep no state between forward passes: everything they need about a call
        they read from that call's input. So build them once and reuse them in a loop, for
        example over held-out prompts. The last column checks that the reused hooks give
        exactly (bitwise) what freshly built ones give.
        """
    ),
    code(
        """
        hooks = plan.hooks(model)  # built once
        rows = []
        for pair in list(test)[:6]:
            toks = model.to_tokens(pair.prompt)
            base = model(toks)[0, -1].log_softmax(-1)
            reused = model.run_with_hooks(toks, fwd_hooks=hooks)[0, -1].log_softmax(-1)
            fresh = model.run_with_hooks(toks, fwd_hooks=plan.hooks(model))[0, -1].log_softmax(-1)
            rows.append({
                "prompt": pair.prompt,
                "KL (nats)": float((reused.exp() * (reused - base)).sum()),
                "top token": model.to_string(reused.argmax()),
                "reused == fresh": torch.equal(reused, fresh),
            })
        reuse = pd.DataFrame(rows)
        reuse.round(4)
        """
    ),
    md(
        """
        ## 5. A hook by hand, and scopes

        `lo.SteeringHook(model, steerer, strength=..., scope=...)` is the hook function
        itself, for code that assembles its own `fwd_hooks` list (several plans' pairs, or
        steering next to an ablation hook). Here a CAA hook with `scope="all"` steers every
        token; the cached residual stream at the hook shows which positions moved, next to
        the plan's `"last"` scope. Every steered position moves by the same CAA vector, so its
        length (about 0.3 of the typical norm) is the same wherever it is applied.
        """
    ),
    code(
        """
        caa = lo.CAA().fit(pos, neg)
        every_token = lo.SteeringHook(model, caa, strength=0.3, scope="all")
        print(every_token, f"| typical norm at the hook: {caa.act_norm_:.1f}")

        moved = {}
        for label, pairs in {"CAA, scope='all'": [(hook, every_token)],
                             "ODESteer plan, scope='last'": plan.hooks(model)}.items():
            with model.hooks(fwd_hooks=pairs):
                _, cache = model.run_with_cache(tokens, names_filter=hook)
            moved[label] = (cache[hook] - clean[hook])[0].norm(dim=-1).double().numpy()
        moved = pd.DataFrame(moved, index=model.to_str_tokens(prompt)).T
        moved.round(1)
        """,
        quoted=True,
    ),
    md(
        """
        With `scope="all"` every position moves by 45.4 (the CAA step at strength 0.3: 0.3
        times the typical norm of 151.5), the BOS token `<|im_start|>` included, since it is a
        real token of the input; pass a list of positions such as `list(range(1, n))` to leave
        it alone. With `"last"` only the final token moves (45.3: the net move of an arc of
        length 45.4 that bends slightly). The same scopes work in `lo.steering` and
        `lo.generate`.

        In short: `plan.hooks(model)` gives hooks for `run_with_hooks` and `model.hooks()`,
        `lo.SteeringHook` gives one hook, and both behave the same in single calls, padded
        batches and loops.
        """
    ),
]

# ------------------------------------------------------------------------------------------
# 03: trajectories and level sets
# ------------------------------------------------------------------------------------------

TRAJECTORIES = [
    md(
        """
        # Trajectories and level sets

        Where does each method move an activation? This notebook draws the paths of ODESteer,
        StepODESteer (one Euler step of the *same* field, ODESteer's own one-step ablation) and
        CAA from held-out negative activations:

        1. in a 2-D view of activation space;
        2. on the level sets of ODESteer's barrier `h` (a slice of it, see below);
        3. as profiles: `h`, the barrier's sigmoid `σ(h)` (not a calibrated probability)
           and the norm `|a|` along each path;
        4. saved as files for a paper.
        """
    ),
    code(SETUP),
    md(
        SETUP_NOTE,
        """
        ## 1. Three methods and a view

        The view is `lo.fit_projection(pos, neg, method="mean_diff")`: the x axis is the
        direction of `mu+ - mu-`, the y axis the top principal component of the data once that
        direction is removed. It is the plane where the classes separate most visibly. Its two
        axes hold only a share of the data's variance (printed below); the other 574 directions
        are hidden.
        """,
    ),
    code(
        """
        methods = {
            "ODESteer": lo.ODESteer().fit(pos, neg),
            "StepODESteer": lo.StepODESteer().fit(pos, neg),
            "CAA": lo.CAA().fit(pos, neg),
        }
        view = lo.fit_projection(pos, neg, method="mean_diff")
        print(view.axis_labels, [round(share, 3) for share in view.explained_variance])
        """,
        quoted=True,
    ),
    md(
        """
        ## 2. Paths in the view

        `lo.trajectory_frame` moves the same activations with every method at the same
        `strength` and returns one tidy row per method, activation (`row`) and saved step:
        ODESteer saves its 10 Euler steps; the one-step methods are saved at the same fractions
        of their single step, so the markers line up. Every point is scored by one barrier
        (ODESteer's, `paths.attrs["reference"]`), so `h` is comparable across methods. The view
        coordinates are `x` and `y`.
        """
    ),
    code(
        """
        start = held_out[:8]
        paths = lo.trajectory_frame(methods, start, strength=0.3, view=view)
        paths.head(3)
        """
    ),
    md(
        """
        ## 3. Level sets: a slice of `h`

        `h` is a function of all 576 coordinates, and a picture can only show two. The colours
        below are `h` on **one plane**: the plane through the mean of the data spanned by the
        two view axes, with every other coordinate held at the mean's value. It is a slice, not
        a projection: the activations and the paths are *projected* onto the view, and they lie
        far from that plane (the `off_plane` distance, printed below the figure), so the colour
        under a point is not that point's `h`. The black line is `h = 0` on the slice. Section
        4 shows each path's own `h`.
        """
    ),
    code(
        """
        from lens_odesteer.analysis import barrier_grid, points_frame
        from lens_odesteer.viz import plot_level_sets

        ends = [steerer.steer(start, steerer.T_for(0.3)) for steerer in methods.values()]
        grid = barrier_grid(methods["ODESteer"], view, points=torch.cat([pos, neg, *ends]),
                            resolution=60)  # the grid covers the data and the path ends
        points = points_frame(view, pos, neg, steerer=methods["ODESteer"])
        level_sets = plot_level_sets(grid, points, paths, width=720, height=560)
        level_sets
        """
    ),
    code(
        """
        off_plane = points.groupby("label")["off_plane"].median()
        moved = paths.loc[paths.step == paths.step.max(), "displacement"].median()
        print(f"median distance from the slice: positives {off_plane['positive']:.1f}, "
              f"negatives {off_plane['negative']:.1f}; a path moves {moved:.1f}")
        """,
        quoted=True,
    ),
    md(
        """
        How to read it: positive activations (green) sit right of the `h = 0` line, negatives
        (pink) left, and the eight held-out negatives travel right, along the mean difference,
        as far as `strength=0.3` takes them. In this view the three methods' paths lie almost on
        top of each other. Mind the scale: the points lie about 30 away from the slice (29.7
        for positives, 30.1 for negatives, in activation units), two thirds of the distance a
        path travels (45.4). So the slice is a guide to the shape of `h`, not a reading of it.

        ## 4. Along the paths

        `plot_trajectory_profile` plots, against the share of each method's strength used so
        far, the barrier `h` and its sigmoid `σ(h)` of each saved point (thin lines:
        single activations; thick: their mean), and the norm `|a|`.
        """
    ),
    code(
        """
        from lens_odesteer.viz import plot_trajectory_profile

        profile = plot_trajectory_profile(paths, title="Along the paths (strength 0.3)",
                                          width=720, height=640)
        profile
        """
    ),
    code(
        """
        first = paths[paths.step == 0].groupby("method", sort=False)
        last = paths[paths.step == paths.step.max()].groupby("method", sort=False)
        summary = last[["h", "p_positive", "norm", "displacement"]].mean()
        summary.insert(0, "h at start", first["h"].mean())
        summary.insert(3, "norm at start", first["norm"].mean())
        summary.round(3)
        """,
        quoted=True,
    ),
    md(
        """
        All three methods raise `h` from -0.093 (mean over the eight activations) to about 0.25
        (0.254 for ODESteer, 0.245 for StepODESteer, 0.239 for CAA), across the boundary, and
        end about the same distance from their start (45.280 and 45.448). The visible
        difference is the norm. ODESteer's default barrier works on `a / |a|` (normalised
        features), so its field is tangent to the sphere of radius `|a|`: the path rotates on
        that sphere, and the mean norm goes only from 152.302 to 152.979, the small outward
        drift of ten straight Euler steps. StepODESteer takes one straight step in the same
        initial direction and leaves the sphere (158.944); CAA's vector is not tangent either
        (154.897). Apart from that rotation the default field hardly turns along the path; the
        paths are nearly straight. Notebook 05 shows a barrier that bends.

        ## 5. Figures for a paper

        `lens_odesteer.viz.save_figures` writes each figure in the formats asked for (PNG, SVG
        and PDF need kaleido and a Chromium-family browser; HTML always works) into a folder,
        and returns the paths it wrote.
        """
    ),
    code(
        """
        from lens_odesteer.viz import save_figures

        written = save_figures({"level_sets": level_sets, "profile": profile},
                               "figures/03_trajectories", formats=("png", "svg"))
        for files in written.values():
            for file in files:
                print(file)
        """
    ),
]

# ------------------------------------------------------------------------------------------
# 04: per-step logits
# ------------------------------------------------------------------------------------------

STEP_LOGITS = [
    md(
        """
        # Per-step next-token changes along the ODE path

        A steering path is a sequence of activations `a(t_0), a(t_1), ..., a(T)`. What does
        each step do to the model's prediction? `lo.step_logits` answers it for one prompt:

        * it runs the prompt and takes the activation at the hook and the last token;
        * every method integrates its path from that activation (ODESteer: 10 Euler steps;
          StepODESteer and CAA: one straight step, saved at the same fractions of `T`);
        * every saved state is patched back into the model at that hook and position (a
          TransformerLens hook on a batch with one copy of the prompt per state), and the
          next-token distribution is recorded.

        Comparing ODESteer with StepODESteer at equal fractions of the same strength shows what
        multi-step integration changes over one step of the same field.
        """
    ),
    code(SETUP),
    md(
        SETUP_NOTE,
        """
        Fit the three methods and patch their paths for one prompt. `targets` are tokens
        tracked whatever happens to them; `top_k` adds the likely tokens that changed most.
        The table shows the `kl` column of `result.steps` (one row per method and step):
        `KL(steered || unsteered)` of the next token, in nats.
        """,
    ),
    code(
        """
        methods = {
            "ODESteer": lo.ODESteer().fit(pos, neg),
            "StepODESteer": lo.StepODESteer().fit(pos, neg),
            "CAA": lo.CAA().fit(pos, neg),
        }
        result = lo.step_logits(model, "The food at that restaurant was", hook, methods,
                                strength=0.3, targets=[" delicious", " terrible"], top_k=8)
        kl = result.steps.pivot(index="step", columns="method", values="kl")[list(methods)]
        kl.map("{:.2e}".format)
        """,
        quoted=True,
    ),
    md(
        """
        Step 0 patches the unsteered activation back, so its KL is zero up to float rounding
        (9.06e-09): a check that the patching itself changes nothing. From there the KL grows
        smoothly, roughly with the square of the distance moved, to 1.18e-01 for ODESteer,
        1.05e-01 for StepODESteer and 1.63e-01 for CAA at the full strength. CAA's step has
        the same length but another direction (the class-mean difference instead of the
        barrier's gradient), and it moves this prediction more.

        ## Which tokens move

        `result.tokens` has one row per method, step and tracked token. The heatmap shows the
        change in log-probability from the unsteered prediction (blue: up, red: down) at each
        step; the starred rows are the targets.
        """
    ),
    code(
        """
        from lens_odesteer.viz import plot_logit_heatmap, plot_target_logprob

        plot_logit_heatmap(result, title="Change in next-token log-probability at each step")
        """
    ),
    md(
        """
        Reading across a row: a token's log-probability changes steadily with each step, in
        the same direction for all three methods. Strong positive words (` exquisite`,
        ` exceptional`, ` sublime`) gain; ` terrible` loses, and so do mild words (` ok`,
        ` good`), as probability moves to the stronger ones. The ODESteer and StepODESteer
        panels are nearly the same picture: the field hardly turns along the path, so ten small
        steps end close to one big step. CAA differs more (` vegan` drops further), since its
        direction is not the barrier's gradient.

        The targets over the path, with the KL below:
        """
    ),
    code("plot_target_logprob(result, title='Target tokens along the paths')"),
    md(
        """
        The last step side by side: the change in log-probability of every tracked token, per
        method, and the largest gap between ODESteer and its one-step ablation.
        """
    ),
    code(
        """
        final = result.tokens[result.tokens.step == result.tokens.step.max()]
        table = final.pivot_table(index="token", columns="method", values="delta_logprob")
        table = table[list(methods)].sort_values("ODESteer").rename(index=repr)
        gap = (table["ODESteer"] - table["StepODESteer"]).abs().max()
        print(f"largest |ODESteer - StepODESteer| over these tokens: {gap:.3f} "
              f"(largest change: {table['ODESteer'].abs().max():.3f})")
        table.round(3)
        """,
        quoted=True,
    ),
    md(
        """
        At the end of the path the two flows of the same field differ by at most 0.097 in
        log-probability (` good`), on changes of up to 1.228. With the default barrier,
        integrating the field changes little over one step of it, in line with the evaluations
        in `docs/RESULTS.md`, where ODESteer and its one-step ablation tie on every task.
        Notebook 05 repeats this comparison on a barrier that bends.
        """
    ),
]

# ------------------------------------------------------------------------------------------
# 05: ODE vs one step on a bending barrier
# ------------------------------------------------------------------------------------------

BENDING = [
    md(
        """
        # ODE vs one step on a barrier that bends

        Integrating `da/dt = v(a)` in many steps differs from one step `a + T v(a)` only where
        the field `v` changes direction along the path. This notebook measures how much it does,
        finds a barrier whose flow bends, and compares ODESteer with one-step addition on it:

        1. the diagnostic `lo.field_variation`, on the default barrier;
        2. `lo.search_barrier`, asked for a barrier that bends;
        3. ODESteer, StepODESteer and CAA on that barrier, in all 576 dimensions and at
           several strengths;
        4. a 2-D view with the difference (ODE end - one-step end) as an axis;
        5. what the difference does to the next token.
        """
    ),
    code(SETUP),
    md(
        SETUP_NOTE,
        """
        ## 1. How much does the default flow bend?

        `lo.field_variation(steerer, acts, T=...)` integrates the field from each activation
        and compares the end with one Euler step of the same field. Two numbers, each a share of
        the distance moved (`|ODE end - a|`), per activation:

        * **gap** = `|ODE end - one-step end|`: everything multi-step integration changes;
        * **bend** = the part of the gap due to the barrier's curvature. ODESteer's default
          features are normalised, so its field is tangent to the sphere `|a| = const` and its
          paths rotate on it even when the barrier is linear in `a / |a|`; bend measures the
          distance from that rotation (the great circle of the linearised barrier).
        """,
    ),
    code(
        """
        default = lo.ODESteer().fit(pos, neg)
        diagnostic = lo.field_variation(default, held_out, T=default.T_for(0.3))
        print(diagnostic.summary())
        """,
        quoted=True,
    ),
    md(
        """
        At `strength=0.3` the ODE ends 13.56% of its displacement away from one step (median
        over the 28 held-out negatives), but only 1.09% comes from the barrier's curvature: the
        rest is the rotation on the sphere, which keeps the norm while one straight step does
        not. The field points almost the same way at every activation (mean pairwise cosine
        0.9991): this barrier is close to linear in `a / |a|` on these data.

        ## 2. Search for a barrier that bends

        `lo.search_barrier` fits 28 barriers (linear probes, polynomial sketches of degree 2
        and 3 over `gamma` and `C`, random Fourier features, a small MLP) on one held-out split
        of the pairs, ranks them by held-out log-likelihood, and runs the diagnostic on each.
        `min_bend=0.01` picks the best-ranked barrier whose median bend is at least 1%.
        """
    ),
    code(
        """
        import pandas as pd

        pd.set_option("display.max_colwidth", None)
        search = lo.search_barrier(pos, neg, min_bend=0.01)
        print("chosen:", search.best.label)
        columns = ["label", "test_log_likelihood", "test_auc", "gap_median", "bend_median",
                   "eligible"]
        search.frame.sort_values("rank")[columns].head(8).round(4)
        """,
        quoted=True,
    ),
    md(
        """
        Every candidate separates the held-out pairs (AUC 1.0 for all), so the ranking is by
        held-out log-likelihood, how confidently each barrier is right. The three best-ranked
        (two MLPs and a linear probe on raw activations) do not bend at all (gap and bend 0:
        their flows are straight lines). The first eligible one, ranked fourth, is the
        normalised degree-3 sketch with `gamma = 10` (held-out log-likelihood -0.0037, against
        -0.0003 for the best), whose median bend is 0.0577 of the displacement at the search's
        default strength (CAA x1). It is `lo.sketch_barrier(degree=3, gamma=10.0)`, written out
        below.

        ## 3. ODE vs one step on the bending barrier, in full dimension

        ODESteer and StepODESteer share the barrier (so the same field); CAA is the class-mean
        difference. `field_variation` on both barriers at three strengths: the gap and bend
        medians, in % of the displacement.
        """
    ),
    code(
        """
        bending = lo.sketch_barrier(degree=3, gamma=10.0)
        methods = {
            "ODESteer": lo.ODESteer(bending).fit(pos, neg),
            "StepODESteer": lo.StepODESteer(bending).fit(pos, neg),
            "CAA": lo.CAA().fit(pos, neg),
        }
        rows = []
        for name, steerer in {"default": default, "bending": methods["ODESteer"]}.items():
            for strength in (0.1, 0.2, 0.3):
                fv = lo.field_variation(steerer, held_out, T=steerer.T_for(strength))
                rows.append({"barrier": name, "strength": strength,
                             "gap %": 100 * fv.median("gap"), "bend %": 100 * fv.median("bend")})
        pd.DataFrame(rows).round(2)
        """,
        quoted=True,
    ),
    md(
        """
        On the bending barrier at `strength=0.3` the ODE end is 16.07% of the displacement away
        from the one-step end, and 8.48% is due to curvature, about eight times the default
        barrier's 1.09%. Both grow with the strength, about in proportion: the longer the path,
        the more the field can turn. In activation units:
        """
    ),
    code(
        """
        h = methods["ODESteer"].barrier_value  # the bending barrier, to judge every end point
        ode_end, step_end, caa_end = (steerer.steer(held_out, steerer.T_for(0.3))
                                      for steerer in methods.values())
        distances = pd.Series({
            "|ODE end - start|": (ode_end - held_out).norm(dim=-1).median(),
            "|ODE end - StepODESteer end|": (ode_end - step_end).norm(dim=-1).median(),
            "|ODE end - CAA end|": (ode_end - caa_end).norm(dim=-1).median(),
            "h at ODESteer end": h(ode_end).median(),
            "h at StepODESteer end": h(step_end).median(),
            "h at CAA end": h(caa_end).median(),
        }).astype(float)
        distances.round(2)
        """,
        quoted=True,
    ),
    md(
        """
        Medians over the held-out negatives: the ODE end lies 7.3 from the one-step end, after a
        move of 45.2; CAA, which steps along another direction, ends 19.7 away. Following the
        field also gets further up the barrier: the median `h` at the end (on this barrier's
        scale, much steeper than the default's) is 17.85 for ODESteer, against 17.06 for its
        own one step and 15.44 for CAA.

        ## 4. A view that shows the difference

        In the mean-difference view of notebook 03 the paths overlap, because that view was not
        chosen to show how they differ. Here the axes are built from two directions with
        `method="directions"`: x is `mu+ - mu-`, and y is the mean of (ODE end - StepODESteer
        end) over the activations, orthogonalised against x. Both axes are in activation units,
        so distances are drawn at their true size. The colours are again a slice of `h`
        (the plane through the data mean spanned by these two axes), not `h` at the points.
        """
    ),
    code(
        """
        from lens_odesteer.analysis import barrier_grid, points_frame
        from lens_odesteer.viz import plot_level_sets

        start = held_out[:6]
        ends = {name: steerer.steer(start, steerer.T_for(0.3)) for name, steerer in methods.items()}
        bend_dir = (ends["ODESteer"] - ends["StepODESteer"]).mean(0)
        view = lo.fit_projection(pos, neg, method="directions",
                                 directions=[pos.mean(0) - neg.mean(0), bend_dir],
                                 labels=["mean difference", "ODE end - one-step end"])
        paths = lo.trajectory_frame(methods, start, strength=0.3, view=view)
        grid = barrier_grid(methods["ODESteer"], view,
                            points=torch.cat([pos, neg, *ends.values()]), resolution=60)
        plot_level_sets(grid, points_frame(view, pos, neg), paths, width=720, height=560,
                        title="Bending barrier (degree-3 sketch, gamma 10), strength 0.3")
        """
    ),
    code(
        """
        end = paths[paths.step == paths.step.max()].groupby("method", sort=False)[["x", "y"]].mean()
        end.round(2)
        """,
        quoted=True,
    ),
    md(
        """
        How to read it: six held-out negatives (pink, left) are moved right by all three
        methods. The one-step paths are straight segments: StepODESteer's heads right and down,
        CAA's straight along the mean difference. The ODESteer paths leave in StepODESteer's
        direction (the same field at the start) and curve back up as the field turns. The path
        ends (crosses) differ mostly along y: on average ODESteer ends at y = -2.58 against
        -9.28 for StepODESteer, while both reach x of about 28 (27.98 and 27.80); CAA, all of
        whose move is along x, gets further right (32.43). The y axis is, by construction, the
        average direction from one-step end to ODE end, so the drawing shows that difference
        at its true size (both axes are in activation units).

        ## 5. Does the model notice?

        The same per-step patching as notebook 04, now on the bending barrier.
        """
    ),
    code(
        """
        result = lo.step_logits(model, "The food at that restaurant was", hook, methods,
                                strength=0.3, targets=[" delicious", " terrible"], top_k=8)
        final = result.tokens[result.tokens.step == result.tokens.step.max()]
        table = final.pivot_table(index="token", columns="method", values="delta_logprob")
        table = table[list(methods)].sort_values("ODESteer").rename(index=repr)
        last_step = result.steps[result.steps.step == result.steps.step.max()]
        last_kl = last_step.set_index("method")["kl"]
        print("KL at the end of the path (nats):", last_kl.round(4).to_dict())
        print(f"largest |ODESteer - StepODESteer| over these tokens: "
              f"{(table['ODESteer'] - table['StepODESteer']).abs().max():.3f}")
        table.round(3)
        """,
        quoted=True,
    ),
    md(
        """
        On this barrier the ODE path and its one-step ablation end at clearly different points
        (sections 3 and 4), yet the next-token distribution after one steered token tells them
        apart only a little: the largest difference in the change of log-probability between
        them is 0.152 (on changes as large as -1.204, for `' made'`), and their KLs from the
        unsteered prediction are 0.1161 and 0.1116 nats (CAA: 0.1626). Whether the difference
        matters for a task is an evaluation question; so far, barriers chosen to bend tie the
        best one-step method (`docs/RESULTS.md`).
        """
    ),
]

NOTEBOOKS: dict[str, list[NotebookNode]] = {
    "01_quickstart.ipynb": QUICKSTART,
    "02_analysis_script_workflow.ipynb": WORKFLOW,
    "03_trajectories_and_level_sets.ipynb": TRAJECTORIES,
    "04_per_step_logits.ipynb": STEP_LOGITS,
    "05_ode_vs_one_step_on_a_bending_barrier.ipynb": BENDING,
}


def build(name: str) -> NotebookNode:
    """The notebook ``name`` with its cells and no outputs."""
    cells = [nbformat.from_dict(cell) for cell in NOTEBOOKS[name]]
    for i, cell in enumerate(cells):
        cell.id = f"cell-{i:02d}"  # stable ids keep regenerated notebooks' diffs small
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def execute(nb: NotebookNode, cwd: Path, *, timeout: int = 900) -> NotebookNode:
    """Run every cell of ``nb`` in a fresh kernel started in ``cwd``; raise on the first error."""
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(cwd)}},
    )
    # tqdm.auto warns in a kernel without ipywidgets; the progress bars are off anyway.
    client.execute(env={**os.environ, "PYTHONWARNINGS": "ignore:IProgress not found"})
    nb.metadata["language_info"] = {"name": "python"}  # no interpreter version in the diff
    return nb


def sources(nb: NotebookNode) -> list[tuple[str, str]]:
    """``(cell_type, source)`` of every cell: what a review of the script compares."""
    return [(cell.cell_type, cell.source) for cell in nb.cells]


def _selected(prefixes: list[str]) -> list[str]:
    names = [n for n in NOTEBOOKS if not prefixes or any(n.startswith(p) for p in prefixes)]
    if not names:
        sys.exit(f"no notebook name starts with {prefixes}; names: {list(NOTEBOOKS)}")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--execute", action="store_true", help="write and run into notebooks/")
    mode.add_argument("--check", action="store_true", help="committed cells == this script?")
    mode.add_argument("--out", type=Path, help="write unexecuted copies into this folder")
    parser.add_argument("names", nargs="*", help="name prefixes, e.g. 01 05 (default: all)")
    args = parser.parse_args()
    names = _selected(args.names)
    if args.check:
        stale = [
            n
            for n in names
            if not (OUT / n).exists()
            or sources(nbformat.read(OUT / n, as_version=4)) != sources(build(n))
        ]
        if stale:
            sys.exit(f"out of date: {stale}; run scripts/make_notebooks.py --execute")
        print("notebooks match scripts/make_notebooks.py")
        return
    target = OUT if args.execute else args.out
    target.mkdir(parents=True, exist_ok=True)
    total = 0.0
    for name in names:
        nb = build(name)
        if args.execute:
            began = time.perf_counter()
            execute(nb, OUT)
            took = time.perf_counter() - began
            total += took
            print(f"{name}: executed in {took:.0f} s")
        nbformat.write(nb, target / name)
    if args.execute:
        print(f"all: {total:.0f} s")


if __name__ == "__main__":
    main()
