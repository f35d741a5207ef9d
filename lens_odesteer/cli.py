"""Command line: ``lens-odesteer demo`` and ``lens-odesteer eval`` (argument parsing only; the
work is in the library)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lens_odesteer.errors import LensOdesteerError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lens-odesteer", description="ODE-based activation steering for TransformerLens."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="fit ODESteer and CAA on a built-in contrast set and compare generations",
        description="Fit ODESteer and one-step CAA on the default model and print unsteered, "
        "CAA and ODESteer continuations side by side.",
    )
    demo.add_argument("--model", default=None, help="local HF folder or .gguf (default SmolLM2)")
    demo.add_argument("--dataset", default="sentiment", choices=["sentiment", "facts"])
    demo.add_argument("--layer", type=int, default=None, help="residual layer (default: middle)")
    demo.add_argument("--caa-strength", type=float, default=1.0, help="CAA multiplier")
    demo.add_argument("--n-prompts", type=int, default=8)
    demo.add_argument("--max-new-tokens", type=int, default=24)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", default="runs/demo", help="folder for steerers and summary.json")
    demo.add_argument("--prompt", action="append", default=[], help="prompt to use (repeatable)")
    demo.add_argument(
        "--no-report", action="store_true", help="skip the HTML comparison report and figures"
    )
    _add_eval_parser(sub)
    return parser


def _add_eval_parser(sub: Any) -> None:
    ev = sub.add_parser(
        "eval",
        help="evaluate steering methods on a task with bootstrap confidence intervals",
        description="Fit every method on the task's contrast data at one layer, choose each "
        "method's strength on validation data, score held-out data, and save CSV/JSON results "
        "and figures. TASK is truthfulqa_mc, truthfulqa_gen, detox, sentiment, behaviors, "
        "'all' (the five in turn) or 'layers' (layer sweep).",
    )
    ev.add_argument("task", help="task name, 'all' or 'layers'")
    ev.add_argument("--methods", default=None, help="comma-separated methods (default: all)")
    ev.add_argument("--layer", type=int, default=None, help="residual layer (default: middle)")
    ev.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    ev.add_argument("--out", default="runs/eval", help="output folder (resumes if it exists)")
    ev.add_argument("--strength", default="grid", choices=["grid", "displacement", "kl"])
    ev.add_argument("--grid", default=None, help="displacement fractions, e.g. 0.05,0.1,0.2")
    ev.add_argument("--kl-budget", type=float, default=0.1, help="nats, for --strength kl")
    ev.add_argument("--max-ppl-ratio", type=float, default=2.0)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--n-boot", type=int, default=2000)
    ev.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ev.add_argument("--model", default=None, help="local HF folder or .gguf (default SmolLM2)")
    ev.add_argument("--data-dir", default=None, help="data folder (default ../shared/data)")
    ev.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="task option, e.g. --set n_test=40 (JSON values; repeatable)",
    )
    ev.add_argument("--layers", default=None, help="layers for 'layers', e.g. 0,3,6")
    ev.add_argument("--fresh", action="store_true", help="discard partial results in --out")
    ev.add_argument("--no-figures", action="store_true")


def _run_eval(args: argparse.Namespace) -> None:
    from lens_odesteer.evaluation.cli_eval import run_eval_command

    folders = run_eval_command(args)
    if not args.no_figures:
        from lens_odesteer.viz.eval_plots import write_eval_figures

        for folder in folders:
            for path in write_eval_figures(folder):
                print(f"figure: {path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lens-odesteer`` command."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            from lens_odesteer.demo import DemoConfig, run_demo

            run_demo(
                DemoConfig(
                    model=args.model,
                    dataset=args.dataset,
                    layer=args.layer,
                    caa_strength=args.caa_strength,
                    n_prompts=args.n_prompts,
                    max_new_tokens=args.max_new_tokens,
                    seed=args.seed,
                    out_dir=args.out,
                    prompts=tuple(args.prompt),
                    report=not args.no_report,
                )
            )
        elif args.command == "eval":
            _run_eval(args)
    except LensOdesteerError as exc:
        print(f"lens-odesteer: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
