"""The main job: fit ODESteer and CAA on a built-in contrast set and compare steered generations.

On the default model (SmolLM2-135M-Instruct, offline) it collects last-token activations of the
built-in sentiment pairs at one residual-stream hook, fits ODESteer and one-step activation
addition (CAA), and generates greedy continuations of held-out neutral prompts unsteered, with CAA
and with ODESteer (scope ``"last"``). For each prompt it prints the three continuations with the
ODESteer barrier ``h`` at the last prompt token before and after each method's edit, and a VADER
sentiment score of each continuation; then it saves both steerers with their provenance and writes
the comparison report (:func:`lens_odesteer.report.comparison_report`: barrier level sets, paths
of ODESteer vs one-step steering with difference views, per-step logit changes, an interactive
slider) as ``<out>/report/report.html``. Beside the default barrier the report shows the barrier
that ``search_barrier(pos, neg, min_bend=0.01)`` finds (about a minute), or says that the data
gives none. The headline gap is measured in all dimensions, not in a 2-D view.

Both methods run at the same norm-relative ``strength`` (the move as a fraction of the mean
activation norm at the hook): CAA steps ``strength * norm`` along ``mu_+ - mu_-`` and ODESteer
integrates for the same arc length, so the comparison is not one of two unrelated scales.
"""

from __future__ import annotations

import io
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import torch

from lens_odesteer.activations import collect_activations
from lens_odesteer.datasets import load_builtin
from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.hooks import SteeringPlan, generate
from lens_odesteer.models.loading import load_model, model_provenance
from lens_odesteer.models.names import model_n_layers, resid_post
from lens_odesteer.report import comparison_report
from lens_odesteer.steerers import CAA, ODESteer


@dataclass(frozen=True)
class DemoConfig:
    """Settings of :func:`run_demo` (the ``lens-odesteer demo`` command)."""

    model: str | None = None
    dataset: str = "sentiment"
    layer: int | None = None
    strength: float = 0.2
    n_prompts: int = 8
    max_new_tokens: int = 24
    test_size: float = 0.2
    seed: int = 0
    out_dir: str = "runs/demo"
    prompts: tuple[str, ...] = field(default_factory=tuple)
    report: bool = True
    #: Single tokens the per-step figures follow (default: the dataset's, see TARGETS).
    targets: tuple[str, ...] | None = None
    #: Search for a barrier whose flow bends at least this much and show it in the report
    #: beside the default one (None: default barrier only).
    min_bend: float | None = 0.01


#: Target tokens of the per-step logit figures for the built-in sets (a positive and a negative
#: word that can follow the held-out prompts); other sets follow the tokens that changed most.
TARGETS: dict[str, tuple[str, ...]] = {"sentiment": (" inspired", " sad")}


def run_demo(config: DemoConfig, stream: TextIO | io.TextIOBase = sys.stdout) -> dict[str, Any]:
    """Run the demo, print the side-by-side report to ``stream`` and return a summary dict."""
    t_start = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    if not config.strength > 0:
        raise InvalidParameterError(
            f"`strength` must be > 0 (a fraction of the activation norm, e.g. 0.2); got "
            f"{config.strength}."
        )
    say("loading the model (first run dequantises the GGUF and caches it)")
    model = load_model(config.model)
    n_layers = model_n_layers(model)
    layer = config.layer if config.layer is not None else n_layers // 2
    hook = resid_post(layer)
    data = load_builtin(config.dataset)
    train, test = data.split(test_size=config.test_size, seed=config.seed)
    say(f"collecting activations at {hook} for {2 * len(train)} texts of '{data.name}'")
    pos = collect_activations(model, train.positive_texts(), hook, progress=False)
    neg = collect_activations(model, train.negative_texts(), hook, progress=False)
    assert isinstance(pos, torch.Tensor) and isinstance(neg, torch.Tensor)
    say("fitting ODESteer (sketch n=8000, degree 2, Euler x10) and CAA")
    ode = ODESteer().fit(pos, neg)
    caa = CAA().fit(pos, neg)
    T = ode.T_for(config.strength)
    T_caa = caa.T_for(config.strength)
    norm = float(torch.cat([pos, neg]).norm(dim=-1).mean())
    prompts = list(config.prompts) or [p.prompt for p in test][: config.n_prompts]
    prompts = [p.rstrip() for p in prompts]
    say(f"generating {config.max_new_tokens} tokens for {len(prompts)} prompts x 3 methods")
    kw: dict[str, Any] = {"max_new_tokens": config.max_new_tokens, "do_sample": False}
    texts: dict[str, list[str]] = {}
    plans = {
        "unsteered": None,
        "CAA": SteeringPlan({hook: caa}, strength=config.strength),
        "ODESteer": SteeringPlan({hook: ode}, strength=config.strength),
    }
    for method, plan in plans.items():
        completions = generate(model, prompts, plan, **kw)
        assert isinstance(completions, list)
        texts[method] = completions
    last = collect_activations(model, prompts, hook, progress=False)
    assert isinstance(last, torch.Tensor)
    barrier = {
        "unsteered": ode.barrier_value(last),
        "CAA": ode.barrier_value(caa.steer(last, T_caa)),
        "ODESteer": ode.barrier_value(ode.steer(last, T)),
    }
    scores = _vader_scores(texts)
    _print_report(stream, hook, norm, config.strength, T, T_caa, prompts, texts, barrier, scores)
    out = Path(config.out_dir)
    provenance = {**_json_safe(model_provenance(model)), "hook_name": hook, "layer": layer}
    provenance["dataset"] = data.name
    paths = {
        "ODESteer": str(ode.save(out / "odesteer", provenance=provenance)),
        "CAA": str(caa.save(out / "caa", provenance=provenance)),
    }
    summary: dict[str, Any] = {
        "config": asdict(config),
        "hook": hook,
        "mean_residual_norm": norm,
        "strength": config.strength,
        "T_odesteer": T,
        "T_caa": T_caa,
        "prompts": prompts,
        "continuations": texts,
        "barrier_at_last_prompt_token": {k: v.tolist() for k, v in barrier.items()},
        "vader_compound": scores,
        "mean_vader_compound": (
            {k: sum(v) / len(v) for k, v in scores.items()} if scores is not None else None
        ),
        "steerer_files": paths,
        "wall_time_s": time.perf_counter() - t_start,
    }
    if config.report:
        say(
            "writing the comparison report (level sets, paths, per-step logits"
            + (", a search for a barrier that bends)" if config.min_bend is not None else ")")
        )
        held_out = collect_activations(
            model, test.negative_texts()[: config.n_prompts], hook, progress=False
        )
        assert isinstance(held_out, torch.Tensor)
        targets = config.targets if config.targets is not None else TARGETS.get(data.name)
        report = comparison_report(
            model,
            hook,
            pos,
            neg,
            out / "report",
            ode=ode,
            strength=config.strength,
            start_acts=held_out,
            prompt=prompts[0],
            targets=list(targets) if targets else None,
            min_bend=config.min_bend,
        )
        summary["report"] = str(report.html_path)
        # The headline is the full-dimensional gap; the number a 2-D view shows is kept apart.
        summary["relative_end_gap_ode_vs_step"] = report.summary["relative_end_gap"]
        summary["relative_end_gap_in_view"] = report.summary["relative_end_gap_in_view"]
        summary["bend_ode_vs_step"] = report.summary["bend"]
        summary["bent_barrier"] = report.summary["bent"]
        if report.summary["relative_end_gap"] is not None:
            stream.write(
                f"\nODESteer vs its one step (StepODESteer), all dimensions: the end points are "
                f"{100 * report.summary['relative_end_gap']:.2f}% of the displacement apart "
                f"(bend {100 * report.summary['bend']:.2f}%); a 2-D mean-difference view shows "
                f"{100 * report.summary['relative_end_gap_in_view']:.2f}%.\n"
            )
        if report.summary["bent"] is not None:
            b = report.summary["bent"]
            stream.write(
                f"Bent barrier ({b['barrier']}): gap {100 * b['relative_end_gap']:.2f}%, bend "
                f"{100 * b['bend']:.2f}%.\n"
            )
        elif report.summary["bent_note"]:
            stream.write(f"{report.summary['bent_note']}\n")
        if report.summary["diagnostic"]:
            summary["nonlinearity"] = report.summary["diagnostic"]
            stream.write(f"\n{report.summary['diagnostic']}\n")
        stream.write(f"\nComparison report: {report.html_path}\n")
        if report.static_skipped:
            stream.write(f"(figures written as HTML only: {report.static_skipped})\n")
    summary["wall_time_s"] = time.perf_counter() - t_start
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    say(f"saved steerers and summary to {out}/")
    return summary


def _vader_scores(texts: dict[str, list[str]]) -> dict[str, list[float]] | None:
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError:
        return None
    analyzer = SentimentIntensityAnalyzer()
    return {
        k: [float(analyzer.polarity_scores(t)["compound"]) for t in v] for k, v in texts.items()
    }


def _print_report(
    stream: TextIO | io.TextIOBase,
    hook: str,
    norm: float,
    strength: float,
    T: float,
    T_caa: float,
    prompts: list[str],
    texts: dict[str, list[str]],
    barrier: dict[str, torch.Tensor],
    scores: dict[str, list[float]] | None,
) -> None:
    w = stream.write
    w(f"\nSteering at {hook}: mean residual norm {norm:.1f}; strength {strength:g} for both\n")
    w(f"methods: CAA multiplier T = {T_caa:.3g}, ODESteer arc length T = {T:.3g}.\n")
    w("h = ODESteer barrier (log density ratio positive/negative) at the last prompt token.\n")
    for i, prompt in enumerate(prompts):
        w(f"\n--- prompt {i + 1}: {prompt!r}\n")
        for method, outs in texts.items():
            h = float(barrier[method][i])
            vader = f"  vader {scores[method][i]:+.2f}" if scores is not None else ""
            text = " ".join(outs[i].split())
            w(f"  {method:<10s} h={h:+7.2f}{vader} | {text}\n")
    if scores is not None:
        w("\nMean VADER compound over the prompts: ")
        w(", ".join(f"{k} {sum(v) / len(v):+.3f}" for k, v in scores.items()) + "\n")


def _json_safe(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (v if isinstance(v, (str, int, float, bool, type(None))) else str(v))
        for k, v in obj.items()
    }
