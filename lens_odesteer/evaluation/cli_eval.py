"""The work behind ``lens-odesteer eval``: run tasks, the layer sweep, and write a report.

``TASK`` is one task, ``all`` (every task in turn, each in ``<out>/<task>``) or ``layers``
(held-out barrier accuracy/AUC per layer plus a small steered sweep). Each task folder gets
``summary.csv``, ``paired.csv``, ``units.csv``, ``results.json`` and ``report.md`` (markdown
tables); figures are added by the CLI through :mod:`lens_odesteer.viz.eval_plots`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.evaluation.layers import barrier_layer_sweep, steered_layer_sweep
from lens_odesteer.evaluation.runner import evaluate
from lens_odesteer.evaluation.store import atomic_write_text, write_csv
from lens_odesteer.evaluation.tables import headline_markdown, results_markdown
from lens_odesteer.evaluation.tasks import TASKS

__all__ = ["parse_settings", "run_eval_command", "task_report"]

FLUENCY = ("ppl", "dist1", "dist2", "dist3", "repetition")


def parse_settings(items: list[str]) -> dict[str, Any]:
    """``["n_test=40", "seeds=[0,1]"]`` -> ``{"n_test": 40, "seeds": (0, 1)}`` (JSON values).

    Example:
        >>> parse_settings(["n_test=40", "behaviors=[\\"refusal\\"]", "path=x.json"])
        {'n_test': 40, 'behaviors': ('refusal',), 'path': 'x.json'}
    """
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise InvalidParameterError(f"--set expects KEY=VALUE; got {item!r}.")
        key, raw = item.split("=", 1)
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key.strip()] = tuple(value) if isinstance(value, list) else value
    return out


_FLOW_METHODS = ("ODESteer", "ODESteer-searched", "ODESteer-bent", "RFFODESteer")


def _pct(row: pd.Series, name: str) -> str:
    return (
        f"{100 * row[f'{name}_median']:.2f}% [{100 * row[f'{name}_ci_low']:.2f}, "
        f"{100 * row[f'{name}_ci_high']:.2f}]"
    )


def task_report(folder: str | Path) -> str:
    """Markdown tables of one task folder: results per method and the paired headline."""
    folder = Path(folder)
    summary = pd.read_csv(folder / "summary.csv", keep_default_na=False)
    paired_path = folder / "paired.csv"
    paired = (
        pd.read_csv(paired_path, keep_default_na=False)
        if paired_path.exists() and paired_path.stat().st_size > 1
        else pd.DataFrame()
    )
    results = json.loads((folder / "results.json").read_text())
    metrics = [m for m in dict.fromkeys(summary["metric"]) if m not in FLUENCY]
    # Compute time per method from the parts themselves (a resumed run reuses them, so its own
    # timings would be near zero): the sum over parts of their scoring time.
    units = pd.read_csv(folder / "units.csv", keep_default_na=False)
    parts = units.drop_duplicates(["split", "method", "phase", "T_index"])
    wall = pd.to_numeric(parts["wall_s"], errors="coerce").groupby(parts["method"]).sum().to_dict()
    extra = {"scoring s": {str(m): f"{v:.0f}" for m, v in wall.items()}}
    diag_path = folder / "diagnostic.csv"
    diag = pd.read_csv(diag_path) if diag_path.exists() else pd.DataFrame()
    searched: list[str] = []
    if "gap_median" in diag:
        means = diag.groupby("method", sort=False)[["gap_median", "bend_median"]].mean()
        for col, title in (("gap_median", "ODE gap %"), ("bend_median", "bend %")):
            extra[title] = {
                str(m): "" if pd.isna(v) else f"{100 * v:.2f}" for m, v in means[col].items()
            }
    if "search_barrier" in diag:
        for _, row in diag.dropna(subset=["search_barrier"]).iterrows():
            searched.append(
                f"- {row['method']} ({row['split']}): {row['search_barrier']}, held-out AUC "
                f"{row['search_test_auc']:.3f} vs best linear probe "
                f"{row['search_linear_test_auc']:.3f}; median bend on its held-out rows "
                f"{100 * row['search_heldout_bend_median']:.2f}%"
            )
    lines = [f"### {results['config']['task']}", ""]
    groups = list(dict.fromkeys(summary["group"]))
    for group in groups:
        if len(groups) > 1:
            lines += [f"**{group}**", ""]
        lines.append(
            results_markdown(
                summary,
                [*metrics, *[f for f in FLUENCY if f in set(summary["metric"])]],
                group=group,
                extra=extra if group == "all" else None,
            )
        )
        lines.append("")
    if "gap_median" in diag:
        lines += [
            "ODE gap %: median |multi-step end - one-step end| / displacement at the chosen T on "
            "the validation prompts' last tokens (0 for one-step fields); bend %: the part of it "
            "due to the barrier's curvature.",
            "",
        ]
    if "gap_ci_low" in diag:
        flows = diag[diag["method"].isin(_FLOW_METHODS)].dropna(subset=["gap_median"])
        if not flows.empty:
            lines += ["Gap and bend per split (median over rows, 95% bootstrap interval):", ""]
            for _, row in flows.iterrows():
                lines.append(
                    f"- {row['method']} ({row['split']}, {int(row['n_rows'])} rows): gap "
                    f"{_pct(row, 'gap')}, bend {_pct(row, 'bend')}"
                )
            lines.append("")
    if searched:
        lines += ["Searched barriers:", "", *searched, ""]
    if not paired.empty:
        primary = metrics[0]
        lines += [
            f"Paired differences in {primary} (method - best one-step baseline, chosen "
            f"on {paired['baseline_chosen_by'].iloc[0]}):",
            "",
        ]
        lines.append(headline_markdown(paired[paired["group"] == "all"], primary))
        lines.append("")
    lines.append(
        f"Scoring time summed over parts {sum(wall.values()):.0f} s; this run "
        f"{results['wall_s']:.0f} s ({results['parts_computed']} parts computed, "
        f"{results['parts_reused']} reused); sizes: `{json.dumps(results['splits'])}`"
    )
    return "\n".join(lines) + "\n"


def _threads(n: int | None) -> None:
    if n is not None:
        if n < 1:
            raise InvalidParameterError(f"--threads must be >= 1; got {n}.")
        torch.set_num_threads(n)


def run_eval_command(args: argparse.Namespace) -> list[Path]:
    """Run ``lens-odesteer eval`` and return the task folders written."""
    _threads(args.threads)
    from lens_odesteer.models.loading import load_model

    t0 = time.perf_counter()
    model = load_model(args.model)
    settings = parse_settings(args.set)
    if args.data_dir is not None:
        settings.setdefault("data_dir", args.data_dir)
    grid = None if args.grid is None else tuple(float(g) for g in args.grid.split(","))
    out = Path(args.out)
    if args.task == "layers":
        return [_layers(args, model, out, settings)]
    names = list(TASKS) if args.task == "all" else [args.task]
    for name in names:
        if name not in TASKS:
            raise InvalidParameterError(
                f"Unknown task {name!r}. Expected one of: {', '.join(TASKS)}, all, layers."
            )
    folders = []
    for name in names:
        folder = out / name if args.task == "all" else out
        kwargs = dict(settings)
        if name.startswith("truthfulqa") and "data_dir" in kwargs:
            kwargs["path"] = str(Path(kwargs.pop("data_dir")) / "truthfulqa/v1/mc_task.json")
        summary = evaluate(
            name,
            model,
            methods=args.methods,
            layer=args.layer,
            quick=args.quick,
            out_dir=folder,
            strength=args.strength,
            grid=grid,
            kl_budget=args.kl_budget,
            max_ppl_ratio=args.max_ppl_ratio,
            seed=args.seed,
            n_boot=args.n_boot,
            fresh=args.fresh,
            task_kwargs=kwargs,
        )
        report = task_report(folder)
        atomic_write_text(folder / "report.md", report)
        print(report, flush=True)
        print(f"{name}: {summary.attrs['wall_s']:.0f} s, results in {folder}", file=sys.stderr)
        folders.append(folder)
    print(f"total wall time {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return folders


def _layers(args: argparse.Namespace, model: Any, out: Path, settings: dict[str, Any]) -> Path:
    task = settings.pop("task", "truthfulqa_mc")
    layers = None if args.layers is None else [int(x) for x in args.layers.split(",")]
    frame = barrier_layer_sweep(task, model, layers, seed=args.seed)
    write_csv(out / "layer_barriers.csv", frame)
    print(frame.to_string(index=False), flush=True)
    steered_layers = settings.pop("steered_layers", (5, 10, 15, 20, 25))
    steered = steered_layer_sweep(
        task,
        model,
        list(steered_layers),
        methods=("CAA", "ODESteer"),
        out_dir=out / "steered",
        quick=True if args.quick else bool(settings.pop("steered_quick", True)),
    )
    write_csv(out / "layer_steered.csv", steered)
    print(steered.to_string(index=False), flush=True)
    return out
