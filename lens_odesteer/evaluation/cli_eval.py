"""The work behind ``lens-odesteer eval``: run tasks, the layer sweep, and write a report.

``TASK`` is one task, ``all`` (every task in turn) or ``layers`` (held-out barrier accuracy/AUC
per layer plus a small steered sweep). Results go to ``--out`` (default ``runs/eval/<task>``;
with ``all``, ``<out>/<task>`` for each task, default ``runs/eval/<task>`` too). Each task folder
gets ``summary.csv``, ``paired.csv``, ``units.csv``, ``results.json`` and ``report.md``
(markdown tables); figures are added by the CLI through :mod:`lens_odesteer.viz.eval_plots`.

Every option is checked by :func:`plan_eval` before the model is loaded, so a typo costs a
second, not a model load; :func:`eval_choices_text` lists the tasks, methods and ``--set`` keys
from the code (``lens-odesteer eval list`` and ``lens-odesteer eval --help`` print it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.evaluation.distributed import current_shard
from lens_odesteer.evaluation.layers import barrier_layer_sweep, steered_layer_sweep
from lens_odesteer.evaluation.methods import ALL_METHODS, PAPER_T, parse_methods
from lens_odesteer.evaluation.runner import check_eval_options, evaluate
from lens_odesteer.evaluation.store import atomic_write_text, write_csv
from lens_odesteer.evaluation.tables import (
    headline_markdown,
    reliability_markdown,
    results_markdown,
)
from lens_odesteer.evaluation.tasks import TASKS, Task, make_task, task_options

__all__ = [
    "DEFAULT_OUT",
    "LAYER_SETTINGS",
    "EvalPlan",
    "eval_choices_text",
    "parse_settings",
    "plan_eval",
    "run_eval_command",
    "task_report",
]

#: Results go to ``DEFAULT_OUT/<task>`` unless ``--out`` is given.
DEFAULT_OUT = Path("runs") / "eval"
#: ``--set`` keys of ``lens-odesteer eval layers`` and their defaults.
LAYER_SETTINGS: dict[str, Any] = {
    "task": "truthfulqa_mc",
    "steered_layers": (5, 10, 15, 20, 25),
    "steered_quick": True,
}
#: Settings with a flag of their own.
_FLAGGED = {"seed": "--seed", "quick": "--quick"}

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


_FLOW_METHODS = (
    "ODESteer",
    "ODESteer-searched",
    "ODESteer-bent",
    "RFFODESteer",
    "TruthFlow",
    "HPR",
    "AngularSteering",
    "SphericalSteering",
)


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
            "the validation prompts' last tokens (0 for one-step fields; for the rotations and "
            "TruthFlow, their own path against one step along its initial velocity); bend %: the "
            "part of it due to the barrier's curvature.",
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
    lines += _issue17_sections(folder, summary)
    lines.append(
        f"Scoring time summed over parts {sum(wall.values()):.0f} s; this run "
        f"{results['wall_s']:.0f} s ({results['parts_computed']} parts computed, "
        f"{results['parts_reused']} reused); sizes: `{json.dumps(results['splits'])}`"
    )
    return "\n".join(lines) + "\n"


def _issue17_sections(folder: Path, summary: pd.DataFrame) -> list[str]:
    """Report lines on side effects and per-item reliability (when the run wrote them)."""
    lines: list[str] = []
    if summary["metric"].astype(str).str.startswith("side_").any():
        lines += [
            "Side effects at each method's chosen strength (columns side_*): "
            "side_fact_pref_change = change in log p(true) - log p(false) on the built-in fact "
            "pairs against the unsteered model (negative: steering cost knowledge); "
            "side_neutral_ppl = perplexity of neutral web text steered at every token, "
            "side_neutral_ppl_ratio = its ratio to the unsteered model's; 95% bootstrap "
            "intervals over items.",
            "",
        ]
    path = folder / "reliability.csv"
    if path.exists() and path.stat().st_size > 1:
        rel = pd.read_csv(path)
        if not rel.empty:
            lines += [
                "Per-item reliability (Tan et al., 2024): steerability = slope of each item's "
                "propensity against the signed strength (displacement / mean norm; 0 = "
                "unsteered), anti-steerable = a negative slope; pair agreement and d' from the "
                "fit activations:",
                "",
                reliability_markdown(rel),
                "",
            ]
    return lines


def _threads(n: int | None) -> None:
    if n is not None:
        if n < 1:
            raise InvalidParameterError(f"--threads must be >= 1; got {n}.")
        torch.set_num_threads(n)


def _fmt(value: Any) -> str:
    return json.dumps(list(value) if isinstance(value, tuple) else value, default=str)


def eval_choices_text(width: int = 100) -> str:
    """The tasks, method names and ``--set`` keys (with defaults) of ``lens-odesteer eval``.

    Built from :data:`~lens_odesteer.evaluation.tasks.TASKS`,
    :data:`~lens_odesteer.evaluation.methods.ALL_METHODS` and each task's constructor.
    """

    def wrap(text: str, indent: str) -> list[str]:
        # Names such as ODESteer-margin must not be split at their hyphen.
        return textwrap.wrap(
            text,
            width,
            initial_indent="  ",
            subsequent_indent=indent,
            break_on_hyphens=False,
            break_long_words=False,
        )

    def block(title: str, body: str) -> list[str]:
        return [title, *wrap(body, "  ")]

    lines = block(
        "tasks:",
        f"{', '.join(TASKS)}; 'all' runs the {len(TASKS)} in turn; 'layers' sweeps layers "
        "(barrier accuracy per layer, then a small steered sweep); 'list' prints this text.",
    )
    lines += block(
        "methods (--methods, comma-separated; default: all; 'none' = unsteered, always run):",
        ", ".join(ALL_METHODS)
        + "; baselines: 'prompt' (the task's instruction, no steering), 'prompt+<method>', "
        + f"'<method>@paper' (the paper's own T, for {', '.join(PAPER_T)})",
    )
    lines.append("--set keys per task (KEY=VALUE, JSON values; [default]):")
    options = {name: task_options(name) for name in TASKS} | {"layers": LAYER_SETTINGS}
    for name, opts in options.items():
        body = ", ".join(f"{key} [{_fmt(default)}]" for key, default in opts.items())
        lines += wrap(f"{name}: {body}", "      ")
    return "\n".join(lines)


@dataclass(frozen=True)
class EvalPlan:
    """A checked ``lens-odesteer eval`` command: everything needed except the model.

    Attributes:
        task: the TASK argument (a task name, ``all`` or ``layers``).
        methods: the method names (``none`` first).
        grid: displacement fractions, or None for each task's default.
        tasks: task name -> (the built task, its ``--set`` options, its output folder); for
            ``layers``, the task whose first split the barriers are fitted on.
        layers: the layers of ``layers`` (None: every third).
        out: the output folder of ``layers``.
        settings: the ``--set`` options of ``layers`` (with ``--data-dir`` as ``data_dir``).
    """

    task: str
    methods: list[str]
    grid: tuple[float, ...] | None
    tasks: dict[str, tuple[Task, dict[str, Any], Path]] = field(default_factory=dict)
    layers: list[int] | None = None
    out: Path | None = None
    settings: dict[str, Any] = field(default_factory=dict)


def _grid(raw: str | None) -> tuple[float, ...] | None:
    if raw is None:
        return None
    try:
        values = tuple(float(x) for x in raw.split(","))
    except ValueError:
        values = ()
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise InvalidParameterError(
            f"--grid expects comma-separated positive fractions of the mean activation norm, "
            f"e.g. 0.05,0.1,0.2; got {raw!r}."
        )
    return values


def _layer_list(raw: str | None) -> list[int] | None:
    if raw is None:
        return None
    try:
        values = [int(x) for x in raw.split(",")]
    except ValueError:
        values = []
    if not values or any(v < 0 for v in values):
        raise InvalidParameterError(
            f"--layers expects comma-separated layer indices (ints >= 0), e.g. 0,3,6; got {raw!r}."
        )
    return values


def _check_value(task: str, key: str, value: Any, default: Any) -> None:
    if default is None or value is None:
        return
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise InvalidParameterError(
            f"--set {key}={_fmt(value)} for task {task!r}: expected a value like its default "
            f"{_fmt(default)} (JSON); got a {type(value).__name__}."
        )


def _task_settings(name: str, settings: dict[str, Any], quiet_keys: set[str]) -> dict[str, Any]:
    """The ``--set`` options task ``name`` accepts, type-checked against its defaults."""
    opts = LAYER_SETTINGS if name == "layers" else task_options(name)
    out = {}
    for key, value in settings.items():
        if key in opts:
            _check_value(name, key, value, opts[key])
            out[key] = value
        elif key not in quiet_keys:
            raise InvalidParameterError(
                f"--set {key}=... is not an option of task {name!r}. Valid keys: "
                f"{', '.join(opts)} (see `lens-odesteer eval list`)."
            )
    return out


def _check_out(folder: Path) -> None:
    """Refuse an output folder that is a file or cannot be created or written."""
    if folder.exists() and not folder.is_dir():
        raise InvalidParameterError(
            f"--out {str(folder)!r} is an existing file; give a folder (it is created if "
            "missing, and resumed if it holds an earlier run)."
        )
    parent = folder
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InvalidParameterError(
            f"--out {str(folder)!r} cannot be created: {str(parent)!r} is a file."
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidParameterError(
            f"--out {str(folder)!r} cannot be written: no write permission on {str(parent)!r}; "
            "choose another folder."
        )


def plan_eval(args: argparse.Namespace) -> EvalPlan:
    """Check every option of ``lens-odesteer eval`` and build its tasks, without a model.

    Raises:
        InvalidParameterError: an unknown task, method or ``--set`` key, a bad ``--grid``,
            ``--layers``, ``--out``, ``--kl-budget``, ``--max-ppl-ratio``, ``--seed``,
            ``--n-boot`` or ``--layer``, or a task size out of range (also under ``--quick``);
            messages name the flag, the value and the valid choices.
        DataNotFoundError: the tasks' data files are missing (with the command to fetch them).
    """
    if args.task not in (*TASKS, "all", "layers"):
        raise InvalidParameterError(
            f"Unknown task {args.task!r}. Expected one of: {', '.join(TASKS)}, all, layers "
            "(or list)."
        )
    methods = parse_methods(args.methods)
    grid = _grid(args.grid)
    check_eval_options(
        flags=True,
        strength=args.strength,
        kl_budget=args.kl_budget,
        max_ppl_ratio=args.max_ppl_ratio,
        seed=args.seed,
        n_boot=args.n_boot,
        layer=args.layer,
    )
    layers = _layer_list(args.layers)
    settings = parse_settings(args.set)
    for key, flag in _FLAGGED.items():
        if key in settings:
            raise InvalidParameterError(f"--set {key}=... is not accepted; use {flag} instead.")
    if args.data_dir is not None:
        settings.setdefault("data_dir", args.data_dir)
    if args.task == "layers":
        out = Path(args.out) if args.out is not None else DEFAULT_OUT / "layers"
        _check_out(out)
        layer_settings = _task_settings("layers", settings, quiet_keys={"data_dir"})
        if "data_dir" in settings:
            layer_settings["data_dir"] = settings["data_dir"]
        task_name = layer_settings.get("task", LAYER_SETTINGS["task"])
        if task_name not in TASKS:
            raise InvalidParameterError(
                f"--set task={task_name!r} for 'layers': expected one of {', '.join(TASKS)}."
            )
        # Built now, so missing data is reported before the model loads.
        data = {"data_dir": settings["data_dir"]} if "data_dir" in settings else {}
        barrier_task = make_task(task_name, seed=args.seed, **data)
        return EvalPlan(
            args.task,
            methods,
            grid,
            tasks={task_name: (barrier_task, data, out)},
            layers=layers,
            out=out,
            settings=layer_settings,
        )
    names = list(TASKS) if args.task == "all" else [args.task]
    if args.task == "all":
        known = {key for name in names for key in task_options(name)}
        unknown = [key for key in settings if key not in known]
        if unknown:
            raise InvalidParameterError(
                f"--set {unknown[0]}=... is an option of no task; see `lens-odesteer eval list` "
                "for each task's keys."
            )
    tasks = {}
    for name in names:
        # With 'all', a key goes to the tasks that have it.
        quiet = set(settings) if args.task == "all" else set()
        kwargs = _task_settings(name, settings, quiet_keys=quiet)
        if args.out is None:
            folder = DEFAULT_OUT / name
        else:
            folder = Path(args.out) / name if args.task == "all" else Path(args.out)
        _check_out(folder)
        task = make_task(name, quick=args.quick, seed=args.seed, **kwargs)
        tasks[name] = (task, kwargs, folder)
    return EvalPlan(args.task, methods, grid, tasks=tasks)


def run_eval_command(args: argparse.Namespace) -> list[Path]:
    """Run ``lens-odesteer eval`` and return the task folders written."""
    plan = plan_eval(args)
    _threads(args.threads)
    from lens_odesteer.models.loading import load_model

    t0 = time.perf_counter()
    model = load_model(args.model)
    if plan.task == "layers":
        assert plan.out is not None
        ((barrier_task, _, _),) = plan.tasks.values()
        return [_layers(args, model, plan, barrier_task)]
    folders = []
    for name, (task, kwargs, folder) in plan.tasks.items():
        summary = evaluate(
            task,
            model,
            methods=plan.methods,
            layer=args.layer,
            quick=args.quick,
            out_dir=folder,
            strength=args.strength,
            grid=plan.grid,
            kl_budget=args.kl_budget,
            max_ppl_ratio=args.max_ppl_ratio,
            seed=args.seed,
            n_boot=args.n_boot,
            fresh=args.fresh,
            task_kwargs=kwargs,
            side_effects=not getattr(args, "no_side_effects", False),
        )
        if not current_shard().is_main:
            continue  # data-parallel: rank 0 writes the report (and the CLI the figures)
        report = task_report(folder)
        atomic_write_text(folder / "report.md", report)
        print(report, flush=True)
        print(f"{name}: {summary.attrs['wall_s']:.0f} s, results in {folder}", file=sys.stderr)
        folders.append(folder)
    print(f"total wall time {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return folders


def _layers(args: argparse.Namespace, model: Any, plan: EvalPlan, task_obj: Task) -> Path:
    assert plan.out is not None
    out, settings = plan.out, dict(plan.settings)
    data = {"data_dir": settings["data_dir"]} if "data_dir" in settings else None
    frame = barrier_layer_sweep(task_obj, model, plan.layers, seed=args.seed)
    write_csv(out / "layer_barriers.csv", frame)
    print(frame.to_string(index=False), flush=True)
    steered = steered_layer_sweep(
        task_obj.name,
        model,
        list(settings.get("steered_layers", LAYER_SETTINGS["steered_layers"])),
        methods=("CAA", "ODESteer"),
        out_dir=out / "steered",
        quick=True if args.quick else bool(settings.get("steered_quick", True)),
        task_kwargs=data,
    )
    write_csv(out / "layer_steered.csv", steered)
    print(steered.to_string(index=False), flush=True)
    return out
