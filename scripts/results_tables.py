"""Build the evaluation part of docs/RESULTS.md from the run folders of ``lens-odesteer eval``.

Every number comes from a run folder's ``summary.csv``, ``paired.csv``, ``diagnostic.csv``,
``units.csv``, ``results.json`` and ``report.md``; the paired differences of the rivals against
ODESteer and CAA are recomputed from ``units.csv`` with the library's own paired bootstrap (same
resamples and seed as the run). Nothing is typed by hand, so the tables can be regenerated:

    PYTHONPATH=. .venv/bin/python scripts/results_tables.py --runs /work/eval_runs \
        --commit 7b3fb24 --date 2026-12-03 --splice docs/RESULTS.md

``--runs`` holds one folder per task (``truthfulqa_mc``, ``truthfulqa_gen``, ``detox``,
``sentiment``, ``behaviors``); a task whose folder has no ``summary.csv`` is listed as not run.
The wall time of a run is read from ``<runs>/<task>.time`` (a line ``end ... wall_s N``, written
by the shell wrapper that timed the process) and falls back to ``results.json``'s ``wall_s`` (the
evaluation alone, without loading the model). ``--splice FILE`` replaces the text between
``<!-- eval-tables:begin -->`` and ``<!-- eval-tables:end -->`` in FILE; without it the Markdown
goes to standard output.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from run_log import Process, read_processes, written_at

from lens_odesteer.evaluation.methods import ALL_METHODS
from lens_odesteer.evaluation.summary import paired_differences
from lens_odesteer.evaluation.tasks import task_class

BEGIN, END = "<!-- eval-tables:begin -->", "<!-- eval-tables:end -->"

#: task -> (section title, the command's options after the task name)
TASKS: dict[str, tuple[str, str]] = {
    "truthfulqa_mc": (
        "TruthfulQA multiple choice (817-question v1, 2-fold CV, 40 test questions; "
        "displacement grid)",
        "--set n_test=20",
    ),
    "truthfulqa_gen": (
        "TruthfulQA generation (MiniLM similarity proxy, 2 folds, 24 questions x 2 samples)",
        "--set folds=2",
    ),
    "detox": (
        "Detoxification (toxic RealToxicityPrompts, Jigsaw classifier, 48 prompts x 2 samples; "
        "lower is better)",
        "--grid 0.1,0.2,0.3 --set n_val=12 --set n_test=48",
    ),
    "sentiment": (
        "Sentiment (neutral prompts steered positive, VADER compound, 48 prompts x 2 samples)",
        "--grid 0.1,0.2,0.3 --set n_val=12 --set n_test=48",
    ),
    "behaviors": (
        "Behaviours (5 CAA A/B sets x 16 items; shift = P(matching | toward) - P(matching | away))",
        "--grid 0.1,0.25,0.5 --set n_val=6 --set n_test=16",
    ),
}

#: ODESteer's family: the multi-step methods of the headline comparison.
ODE_FAMILY = (
    "ODESteer",
    "StepODESteer",
    "ODESteer-searched",
    "ODESteer-bent",
    "ODESteer-margin",
    "RFFODESteer",
    "ValueSteer",
)
RIVALS = ("HPR", "AngularSteering", "SphericalSteering", "TruthFlow", "MeanCentring")


def command(task: str) -> str:
    return (
        f"lens-odesteer eval {task} {TASKS[task][1]} --out runs/eval/{task} --threads 1"
    ).replace("  ", " ")


def signed(x: float, digits: int = 3) -> str:
    return f"{x:+.{digits}f}"


def interval(est: float, low: float, high: float, digits: int = 3) -> str:
    """``+0.012 [-0.003, +0.027]``; one more digit while an interval's end that excludes 0
    would print as 0 (so a win never shows as ``[+0.000, ...]``)."""
    while digits < 6 and ((0 < low < 0.5 * 10.0**-digits) or (-0.5 * 10.0**-digits < high < 0)):
        digits += 1
    return f"{signed(est, digits)} [{signed(low, digits)}, {signed(high, digits)}]"


def verdict(
    low: float,
    high: float,
    higher_is_better: bool,
    words: tuple[str, str, str] = ("better", "tie", "worse"),
) -> str:
    """``better`` / ``tie`` / ``worse``: a side only when the whole interval is on it."""
    good, tie, bad = words
    if low > 0:
        return good if higher_is_better else bad
    if high < 0:
        return bad if higher_is_better else good
    return tie


class Run:
    """One task's run folder."""

    def __init__(self, task: str, folder: Path, runs: Path):
        self.task, self.folder = task, folder
        cls = task_class(task)
        self.primary: str = cls.primary
        self.higher: bool = cls.higher_is_better
        self.pooled: bool = cls.pooled
        self.summary = pd.read_csv(folder / "summary.csv", keep_default_na=False)
        paired = folder / "paired.csv"
        self.paired = (
            pd.read_csv(paired, keep_default_na=False)
            if paired.exists() and paired.stat().st_size > 1
            else pd.DataFrame()
        )
        self.units = pd.read_csv(folder / "units.csv", keep_default_na=False, na_values=[""])
        self.diag = pd.read_csv(folder / "diagnostic.csv")
        self.results = json.loads((folder / "results.json").read_text())
        self.report = (folder / "report.md").read_text()
        self.n_boot = int(self.results["config"]["n_boot"])
        self.seed = int(self.results["config"]["seed"])
        self.wall_s = self._wall(runs)

    def _processes(self, runs: Path) -> list[Process]:
        timing = runs / f"{self.task}.time"
        return read_processes(timing) if timing.exists() else []

    def _wall(self, runs: Path) -> tuple[float, str]:
        # Only the processes that ended by the time these results were written (a later
        # process, e.g. a longer run with more methods that was stopped, did not make them).
        written = written_at(self.folder / "results.json")
        walls = [
            p.wall_s
            for p in self._processes(runs)
            if p.ended is not None and p.wall_s is not None
            and p.ended <= written + timedelta(minutes=2)
        ]  # fmt: skip
        if walls:
            # A resumed run: the processes add up (the earlier ones were cut short).
            return sum(walls), "process" if len(walls) == 1 else f"{len(walls)} processes"
        return float(self.results["wall_s"]), "evaluation"

    def commits(self, runs: Path) -> list[str]:
        """The commits of the processes that made these results, from ``<task>.time``."""
        written = written_at(self.folder / "results.json")
        return list(dict.fromkeys(p.commit for p in self._processes(runs) if p.started <= written))

    @property
    def methods(self) -> list[str]:
        part = self.summary[self.summary["group"] == "all"]
        return list(dict.fromkeys(part["method"]))

    def estimate(self, method: str) -> pd.Series:
        part = self.summary[
            (self.summary["group"] == "all")
            & (self.summary["method"] == method)
            & (self.summary["metric"] == self.primary)
        ]
        return part.iloc[0]

    def ranking(self) -> list[tuple[int, str, float]]:
        """(rank, method, estimate), best first; equal estimates share the better rank."""
        values = [(m, float(self.estimate(m)["estimate"])) for m in self.methods]
        values.sort(key=lambda mv: -mv[1] if self.higher else mv[1])
        out, rank, last = [], 0, None
        for i, (m, v) in enumerate(values, start=1):
            if last is None or not np.isclose(v, last, rtol=0, atol=5e-7):
                rank, last = i, v
            out.append((rank, m, v))
        return out

    def rank_of(self, method: str) -> int:
        return next(r for r, m, _ in self.ranking() if m == method)

    def diff(self, method: str, baseline: str) -> tuple[float, float, float, int]:
        frame = paired_differences(
            self.units,
            self.primary,
            method,
            baseline,
            pooled=self.pooled,
            n_boot=self.n_boot,
            seed=self.seed,
        )
        row = frame[frame["group"] == "all"].iloc[0]
        return (
            float(row["estimate"]),
            float(row["ci_low"]),
            float(row["ci_high"]),
            int(row["n_units"]),
        )

    def gap_bend(self, method: str) -> str:
        d = self.diag[self.diag["method"] == method]
        if d.empty or "gap_median" not in d or d["gap_median"].isna().all():
            return ""
        if float(d["T"].max()) > 1e6:
            # A gated method matched at a huge T on some split (a few validation rows moved):
            # its one step along the initial velocity is then no reference for the path.
            return f"n/a (T up to {float(d['T'].max()):.2g})"
        return f"{100 * d['gap_median'].mean():.1f} / {100 * d['bend_median'].mean():.1f}"

    @property
    def best_one_step(self) -> str:
        return str(self.paired["baseline"].iloc[0]) if not self.paired.empty else ""


def load_runs(runs: Path) -> tuple[dict[str, Run], list[str]]:
    found, missing = {}, []
    for task in TASKS:
        folder = runs / task
        if (folder / "summary.csv").exists() and (folder / "report.md").exists():
            found[task] = Run(task, folder, runs)
        else:
            missing.append(task)
    return found, missing


def headline(runs: dict[str, Run]) -> list[str]:
    lines = [
        "### Headline: ODE-based methods vs the best one-step method (chosen on validation)",
        "",
        "| task | metric | method | best one-step (validation) | paired difference [95% CI] "
        "| units | gap / bend % | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task, run in runs.items():
        p = run.paired[(run.paired["group"] == "all") & (run.paired["metric"] == run.primary)]
        for method in ODE_FAMILY:
            row = p[p["method"] == method]
            if row.empty:
                continue
            r = row.iloc[0]
            lo, hi = float(r["ci_low"]), float(r["ci_high"])
            lines.append(
                f"| {task} | {run.primary} | {method} | {r['baseline']} | "
                f"{interval(float(r['estimate']), lo, hi)} | {int(r['n_units'])} | "
                f"{run.gap_bend(method)} | {verdict(lo, hi, run.higher, ('win', 'tie', 'loss'))} |"
            )
    lines += [
        "",
        "A win or a loss needs the whole interval on one side of 0 (for toxicity lower is "
        'better, so a positive difference is a loss); "gap / bend" is the method\'s mean over '
        "splits at its chosen `T`. A method that is itself the best one-step method has no row.",
        "",
    ]
    return lines


def ode_vs_step(runs: dict[str, Run]) -> list[str]:
    lines = [
        "ODESteer against its one-step ablation and the searched barriers against default "
        "ODESteer (paired, same test units):",
        "",
        "| task | metric | method - baseline | paired difference [95% CI] | units | verdict |",
        "|---|---|---|---|---|---|",
    ]
    pairs = (
        ("ODESteer", "StepODESteer"),
        ("ODESteer-searched", "ODESteer"),
        ("ODESteer-bent", "ODESteer"),
    )
    rows = 0
    for task, run in runs.items():
        for a, b in pairs:
            if a in run.methods and b in run.methods:
                rows += 1
                est, lo, hi, n = run.diff(a, b)
                lines.append(
                    f"| {task} | {run.primary} | {a} - {b} | {interval(est, lo, hi, 4)} | {n} | "
                    f"{verdict(lo, hi, run.higher)} |"
                )
    if not rows:
        return [
            "ODESteer against its one-step ablation StepODESteer and the searched barriers: not "
            "in these runs (the methods did not run).",
            "",
        ]
    return [*lines, ""]


def rivals(runs: dict[str, Run]) -> list[str]:
    lines = [
        "### Rivals: where HPR, AngularSteering, SphericalSteering, TruthFlow and MeanCentring "
        "rank",
        "",
        "Rank among all methods of the run (the unsteered model included) by the test metric, "
        "best first (toxicity: lowest first; equal estimates share a rank); paired differences "
        "rival - ODESteer and rival - CAA on the same test units with 95% bootstrap intervals "
        "(resampled over units as in the run). Verdict: better / worse only when the whole "
        "interval is on one side of 0, in the task's direction; otherwise tie.",
        "",
        "| task | metric | rival | rank | test metric [95% CI] | rival - ODESteer | verdict "
        "| rival - CAA | verdict | gap / bend % |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    tally: dict[str, dict[str, list[str]]] = {r: {"ODESteer": [], "CAA": []} for r in RIVALS}
    ranks: dict[str, list[str]] = {r: [] for r in RIVALS}
    for task, run in runs.items():
        n = len(run.methods)
        for rival in RIVALS:
            if rival not in run.methods:
                lines.append(f"| {task} | {run.primary} | {rival} | not run | | | | | | |")
                continue
            e = run.estimate(rival)
            cells = [
                task,
                run.primary,
                rival,
                f"{run.rank_of(rival)} / {n}",
                f"{float(e['estimate']):.3f} [{float(e['ci_low']):.3f}, {float(e['ci_high']):.3f}]",
            ]
            ranks[rival].append(f"{task} {run.rank_of(rival)}/{n}")
            for base in ("ODESteer", "CAA"):
                if base not in run.methods:
                    cells += ["", ""]
                    continue
                est, lo, hi, _ = run.diff(rival, base)
                v = verdict(lo, hi, run.higher)
                tally[rival][base].append(v)
                cells += [interval(est, lo, hi), v]
            cells.append(run.gap_bend(rival))
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Full ranking per task (test metric, best first):", ""]
    for task, run in runs.items():
        order = ", ".join(f"{r}. {m} {v:.3f}" for r, m, v in run.ranking())
        lines.append(f"- **{task}** ({run.primary}): {order}")
    lines += ["", "In short (over the tasks that ran):", ""]
    for rival in RIVALS:
        parts = []
        for base in ("ODESteer", "CAA"):
            vs = tally[rival][base]
            if vs:
                parts.append(
                    f"vs {base} {vs.count('better')} better / {vs.count('tie')} tie / "
                    f"{vs.count('worse')} worse"
                )
        lines.append(f"- **{rival}**: rank {', '.join(ranks[rival])}; {'; '.join(parts)}.")
    return [*lines, ""]


def methods_note(run: Run) -> str:
    """How many of the evaluation's methods the run holds, naming the missing ones."""
    missing = [m for m in ALL_METHODS if m not in run.methods]
    if not missing:
        return f"all {len(ALL_METHODS)} methods"
    return (
        f"{len(run.methods)} of the {len(ALL_METHODS)} methods (not run: {', '.join(missing)}; "
        "the best one-step method below is the best of those run)"
    )


def task_sections(
    runs: dict[str, Run], missing: list[str], commit: str, date: str, runs_dir: Path
) -> list[str]:
    lines: list[str] = []
    for task, run in runs.items():
        title, _ = TASKS[task]
        wall, kind = run.wall_s
        what = {
            "process": "wall time of the process, model loading included",
            "evaluation": "the evaluation's own wall time",
        }.get(kind, f"wall time of {kind} added up, the run resumed")
        body = run.report.split("\n", 1)[1].lstrip("\n")  # drop report.md's "### task" line
        made = run.commits(runs_dir) or [commit]
        at = (
            f"commit `{made[0]}`"
            if len(made) == 1
            else "commits "
            + ", ".join(f"`{c}`" for c in made)
            + " (a resumed run; later processes reused the earlier ones' parts)"
        )
        lines += [
            f"### {title}",
            "",
            f"`{command(task)}`: {wall / 60:.1f} min wall ({what}); run {date} at {at}, "
            f"{methods_note(run)}.",
            "",
            body.rstrip("\n"),
            "",
        ]
    for task in missing:
        lines += [f"### {TASKS[task][0]}", "", unfinished_note(task, runs_dir, commit), ""]
    return lines


def unfinished_note(task: str, runs_dir: Path, commit: str) -> str:
    """What a task without results got through: its processes and the finished (split, method)s.

    Read from ``<runs>/<task>.time`` (the wrapper's start/end lines) and ``<runs>/<task>.log``
    (the runner's ``[time] split/method: T=...`` lines); the run resumes from its stored parts.
    """
    timing, log = runs_dir / f"{task}.time", runs_dir / f"{task}.log"
    if not timing.exists():
        return f"Not run at commit `{commit}`."
    processes = read_processes(timing)
    walls = [p.wall_s for p in processes if p.wall_s is not None]
    running = len(processes) - len(walls)
    if running:
        # The last process has no end line yet: count it up to now.
        walls.append((datetime.now(timezone.utc) - processes[-1].started).total_seconds())
    done: dict[str, list[str]] = {}
    if log.exists():
        for split, method in re.findall(
            r"\]\s+([^\s/:]+)/([^\s:]+): T=", log.read_text(errors="replace")
        ):
            done.setdefault(split, [])
            if method not in done[split]:
                done[split].append(method)
    got = "; ".join(f"{split}: {', '.join(ms)}" for split, ms in done.items()) or "nothing"
    state = ", the last one still running when this page was written" if running else ""
    return (
        f"**Did not finish** at commit `{commit}`: {len(walls)} process(es), "
        f"{sum(walls) / 60:.1f} min wall in all{state}. Finished (split: methods): {got}. "
        f"The stored parts stay in the run folder; the same command resumes from them."
    )


def build(runs_dir: Path, commit: str, date: str) -> str:
    runs, missing = load_runs(runs_dir)
    lines = [BEGIN, ""]
    lines += headline(runs)
    lines += ode_vs_step(runs)
    lines += rivals(runs)
    lines += task_sections(runs, missing, commit, date, runs_dir)
    lines.append(END)
    return "\n".join(lines)


def splice(path: Path, text: str) -> None:
    doc = path.read_text()
    if BEGIN not in doc or END not in doc:
        sys.exit(f"{path} has no {BEGIN} ... {END} block to replace.")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(head + text + tail)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=Path, required=True, help="folder of task run folders")
    parser.add_argument("--commit", required=True, help="commit the runs were made at")
    parser.add_argument("--date", required=True, help="date of the runs (YYYY-MM-DD)")
    parser.add_argument("--splice", type=Path, help="Markdown file whose marked block to replace")
    args = parser.parse_args(argv)
    text = build(args.runs, args.commit, args.date)
    if args.splice:
        splice(args.splice, text)
    else:
        print(text)


if __name__ == "__main__":
    main()
