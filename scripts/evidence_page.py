"""Build docs/EVIDENCE.md (the full-size comparison, per model and task) from evaluation runs.

Each ``--run MODEL:TASK=FOLDER`` names one finished ``lens-odesteer eval`` output folder. The
page takes every number from the folder's own files (``results.json``, ``paired.csv``,
``reliability.csv``, ``report.md``); nothing is typed by hand. The commit, the exact command and
the wall time come from ``FOLDER.time`` when the shell wrapper that ran the process wrote one
(lines ``start <task> <options> <date> commit <sha>`` and ``end <date> rc 0 wall_s <n>``); without
it the page says the commit is unknown and gives the evaluation's own ``wall_s``. A run folder
without ``results.json`` is listed as unfinished, with the parts it has stored so far.

    PYTHONPATH=. .venv/bin/python scripts/evidence_page.py \\
        --run smollm2:truthfulqa_mc=/work/runs17b/smollm2_tqa_mc --out docs/EVIDENCE.md

The steerability and paired-difference figures of the runs named by ``--figures`` are copied
(PNG) next to the page, under ``evidence/<model>/<label>/``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd
from run_log import read_processes, written_at

from lens_odesteer.evaluation.tasks import task_class

BEGIN, END = "<!-- evidence:begin -->", "<!-- evidence:end -->"
FIGURES = ("steerability.png", "paired_differences.png")
#: the multi-step method whose verdict heads each table
HEADLINE = "ODESteer"


@dataclass
class Run:
    model: str
    task: str
    folder: Path
    commit: str = "unknown"
    command: str = ""
    wall_s: float | None = None
    results: dict = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return (self.folder / "results.json").exists()


def parse_time(path: Path, written: datetime | None) -> tuple[str, str, float | None]:
    """``(commits, options, wall_s)`` from a ``.time`` file.

    A resumed run has several processes: the wall times of all of them add up, the commits of
    all of them are listed (the later ones reused the earlier ones' parts), and the options are
    the last finished process's. With ``written`` (when ``results.json`` was written), processes
    that started later did not make the results and are left out.
    """
    ended = [
        p
        for p in read_processes(path)
        if p.wall_s is not None and (written is None or p.started <= written)
    ]
    finished = [p for p in ended if p.rc == "0"]
    if not finished:
        return "unknown", "", None
    commits = ", ".join(dict.fromkeys(p.commit for p in ended))
    return commits, finished[-1].options, sum(p.wall_s or 0.0 for p in ended)


def load_run(spec: str) -> Run:
    try:
        key, folder = spec.split("=", 1)
        model, task = key.split(":", 1)
    except ValueError:
        sys.exit(f"--run expects MODEL:TASK=FOLDER; got {spec!r}")
    run = Run(model, task, Path(folder))
    if not run.folder.is_dir():
        sys.exit(f"--run {spec!r}: {folder!r} is not a folder")
    timing = run.folder.with_name(run.folder.name + ".time")
    if timing.exists():
        results = run.folder / "results.json"
        written = written_at(results) if results.exists() else None
        run.commit, options, run.wall_s = parse_time(timing, written)
        if options:
            # The .time line lost the shell quoting of JSON values such as behaviors=["x"].
            words = [f"'{w}'" if re.search(r'[\[\]"]', w) else w for w in options.split()]
            run.command = (
                f"lens-odesteer eval {' '.join(words)} --out runs/{run.folder.name} --threads 1"
            )
    if run.finished:
        run.results = json.loads((run.folder / "results.json").read_text())
        if run.wall_s is None:
            run.wall_s = float(run.results["wall_s"])
    return run


def fmt_ci(est: float, low: float, high: float) -> str:
    return f"{est:+.4f} [{low:+.4f}, {high:+.4f}]"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def headline_rows(run: Run) -> list[str]:
    """One Markdown row per group: ODESteer against the best one-step method."""
    cls = task_class(run.task)
    paired = pd.read_csv(run.folder / "paired.csv", keep_default_na=False)
    rows = paired[
        (paired["method"] == HEADLINE)
        & (paired["metric"] == cls.primary)
        & (paired["baseline_chosen_by"] != "design")
    ]
    if len(run.results.get("splits", {})) == 1 and not cls.pooled:
        rows = rows[rows["group"] != "all"]  # one split: "all" repeats it
    out = []
    for _, r in rows.iterrows():
        out.append(
            f"| {run.model} | {run.task} | {r['group']} | {cls.primary} | {r['baseline']} | "
            f"{fmt_ci(r['estimate'], r['ci_low'], r['ci_high'])} | {int(r['n_units'])} | "
            f"±{r['mde']:.4f} | **{r['verdict']}** |"
        )
    return out


def unfinished_note(run: Run) -> str:
    parts = run.folder / "parts"
    n = len(list(parts.glob("*.csv"))) if parts.is_dir() else 0
    return (
        f"- **{run.model} / {run.task}: not finished.** The resumable store holds {n} scored "
        f"part{'s' * (n != 1)}; running the same command again continues from them."
    )


def label(run: Run) -> str:
    """``task``, or ``task-<split>`` for a run of one split (one behaviour set)."""
    splits = list(run.results.get("splits", {}))
    return f"{run.task}-{splits[0]}" if len(splits) == 1 else run.task


def commits(listed: str) -> str:
    """``Commit `abc```, or ``Commits `abc`, `def` (resumed: ...)`` for a resumed run."""
    shas = listed.split(", ")
    if len(shas) == 1:
        return f"Commit `{shas[0]}`"
    quoted = ", ".join(f"`{c}`" for c in shas)
    return f"Commits {quoted} (a resumed run: later processes reused the earlier ones' parts)"


def section(run: Run, figures_root: Path, page: Path, index: int, figures: set[str]) -> str:
    lines = [f"### {run.model}: {label(run)}", ""]
    sizes = json.dumps(run.results.get("splits", {}))
    model = run.results.get("model", {})
    lines += [
        f"- Model: `{model.get('model_name', '?')}` ({model.get('dtype', '?')}, "
        f"{model.get('device', '?')}), hook `{run.results['config']['hook']}`.",
        f"- {commits(run.commit)}, library {run.results.get('library_version', '?')}, "
        f"torch {run.results.get('torch_version', '?')}; wall time {duration(run.wall_s)} "
        f"({run.results.get('processes', 1)} process(es), one thread).",
        f"- Command: `{run.command or 'see results.json config'}`",
        f"- Sizes per split: `{sizes}`",
        "",
    ]
    report = (run.folder / "report.md").read_text()
    report = re.sub(r"^### .*\n", "", report, count=1)  # the title is this section's
    lines += [report.strip().replace("\n### ", "\n#### "), ""]
    target = figures_root / run.model / (label(run) if index == 0 else f"{label(run)}-{index}")
    shown = []
    for name in FIGURES if f"{run.model}:{label(run)}" in figures else ():
        src = run.folder / name
        if src.exists():
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target / name)
            shown.append(target / name)
    for path in shown:
        rel = path.relative_to(page.parent).as_posix()
        lines.append(f"![{run.model} {run.task} {path.stem}]({rel})")
    if shown:
        lines.append("")
    return "\n".join(lines)


def build(runs: list[Run], figures_root: Path, page: Path, figures: set[str]) -> str:
    done = [r for r in runs if r.finished]
    lines = [
        BEGIN,
        "",
        f"Multi-step {HEADLINE} against the best one-step method of each run (chosen on "
        "validation), on the primary metric; the interval is a 95% paired bootstrap, "
        "'detectable' the smallest difference the comparison had 80% power to detect.",
        "",
        "| model | task | group | metric | best one-step | ODESteer - it [95% CI] | units | "
        "detectable | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in done:
        lines += headline_rows(run)
    lines.append("")
    lines += [unfinished_note(r) for r in runs if not r.finished]
    lines.append("")
    seen: dict[tuple[str, str], int] = {}
    for run in done:
        index = seen.get((run.model, label(run)), 0)
        seen[(run.model, label(run))] = index + 1
        lines.append(section(run, figures_root, page, index, figures))
    lines.append(END)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", required=True, help="MODEL:TASK=FOLDER")
    parser.add_argument("--out", type=Path, required=True, help="the page (spliced if it exists)")
    parser.add_argument(
        "--figures",
        action="append",
        default=[],
        help="MODEL:LABEL (e.g. smollm2:truthfulqa_mc, smollm2:behaviors-refusal) whose "
        "steerability and paired-difference PNGs are copied beside the page (each about "
        "0.3 MB, so only the ones the page needs)",
    )
    args = parser.parse_args(argv)
    runs = [load_run(spec) for spec in args.run]
    page: Path = args.out
    figures_root = page.parent / "evidence"
    text = build(runs, figures_root, page, set(args.figures))
    if page.exists() and BEGIN in page.read_text():
        old = page.read_text()
        text = old[: old.index(BEGIN)] + text + old[old.index(END) + len(END) + 1 :]
    tmp = page.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(page)
    print(f"wrote {page} ({len(runs)} runs, {sum(r.finished for r in runs)} finished)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
