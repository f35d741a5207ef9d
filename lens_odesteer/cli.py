"""Command line: ``lens-odesteer demo``, ``lens-odesteer eval`` and ``lens-odesteer data``
(argument parsing only; the work is in the library)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from lens_odesteer.errors import LensOdesteerError


class _Parser(argparse.ArgumentParser):
    """An argument parser whose epilog is computed only when help is shown.

    The ``eval`` epilog lists method names and task options read from the code, which imports
    the evaluation modules; other commands should not pay for that.
    """

    def __init__(self, *args: Any, epilog_fn: Callable[[], str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._epilog_fn = epilog_fn

    def format_help(self) -> str:
        if self._epilog_fn is not None and self.epilog is None:
            self.epilog = self._epilog_fn()
        return super().format_help()


def _eval_epilog() -> str:
    from lens_odesteer.evaluation.cli_eval import eval_choices_text

    return eval_choices_text()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lens-odesteer", description="ODE-based activation steering for TransformerLens."
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    demo = sub.add_parser(
        "demo",
        help="fit ODESteer and CAA on a built-in contrast set and compare generations",
        description="Fit ODESteer and one-step CAA on the default model and print unsteered, "
        "CAA and ODESteer continuations side by side.",
    )
    demo.add_argument(
        "--model",
        default=None,
        help="a local HF folder or .gguf, or gemma-3-270m after `bash scripts/dev.sh models` "
        "(default: SmolLM2-135M-Instruct)",
    )
    demo.add_argument(
        "--dataset",
        default="sentiment",
        choices=["sentiment", "facts"],
        help="built-in contrast set to fit on (default: sentiment)",
    )
    demo.add_argument("--layer", type=int, default=None, help="residual layer (default: middle)")
    demo.add_argument(
        "--strength",
        type=float,
        default=0.2,
        help="norm-relative strength for both methods: the move as a fraction of the mean "
        "activation norm at the hook (default: 0.2)",
    )
    demo.add_argument(
        "--n-prompts", type=int, default=8, help="held-out prompts to continue (default: 8)"
    )
    demo.add_argument(
        "--max-new-tokens", type=int, default=24, help="tokens per continuation (default: 24)"
    )
    demo.add_argument(
        "--seed", type=int, default=0, help="seed of the fit/held-out split (default: 0)"
    )
    demo.add_argument("--out", default="runs/demo", help="folder for steerers and summary.json")
    demo.add_argument("--prompt", action="append", default=[], help="prompt to use (repeatable)")
    demo.add_argument(
        "--no-report", action="store_true", help="skip the HTML comparison report and figures"
    )
    _add_eval_parser(sub)
    _add_data_parser(sub)
    return parser


def _add_eval_parser(sub: Any) -> None:
    ev = sub.add_parser(
        "eval",
        help="evaluate steering methods on a task with bootstrap confidence intervals",
        description="Fit every method on the task's contrast data at one layer, choose each\n"
        "method's strength on validation data, score held-out data, and save CSV/JSON\n"
        "results and figures in --out. Options are checked before the model loads.\n"
        "The tasks read public datasets: get them with `lens-odesteer data fetch`.",
        epilog_fn=_eval_epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument(
        "task", help="task name, 'all', 'layers', or 'list' (print tasks, methods, --set keys)"
    )
    ev.add_argument(
        "--methods", default=None, help="comma-separated method names (default: all; see below)"
    )
    ev.add_argument("--layer", type=int, default=None, help="residual layer (default: middle)")
    ev.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    ev.add_argument(
        "--out",
        default=None,
        help="output folder, resumed if it holds an earlier run (default: runs/eval/<task>; "
        "with 'all': <out>/<task>)",
    )
    ev.add_argument(
        "--strength",
        default="grid",
        choices=["grid", "displacement", "kl"],
        help="how each method's strength is chosen: 'grid' tries the --grid displacements and "
        "keeps the best on validation data; 'displacement' uses the first --grid value; 'kl' "
        "matches --kl-budget (default: grid)",
    )
    ev.add_argument(
        "--grid",
        default=None,
        help="displacements as fractions of the mean activation norm, e.g. 0.05,0.1,0.2 "
        "(default: the task's own grid)",
    )
    ev.add_argument(
        "--kl-budget", type=float, default=0.1, help="nats, for --strength kl (default: 0.1)"
    )
    ev.add_argument(
        "--max-ppl-ratio",
        type=float,
        default=2.0,
        help="generation tasks: a strength counts only if the perplexity of the steered text "
        "stays within this multiple of the unsteered text's (default: 2.0)",
    )
    ev.add_argument(
        "--seed", type=int, default=0, help="seed of the task's data subsets (default: 0)"
    )
    ev.add_argument(
        "--n-boot",
        type=int,
        default=2000,
        help="bootstrap resamples for the 95%% confidence intervals (default: 2000)",
    )
    ev.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ev.add_argument(
        "--model",
        default=None,
        help="a local HF folder or .gguf, or gemma-3-270m after `bash scripts/dev.sh models` "
        "(default: SmolLM2-135M-Instruct)",
    )
    ev.add_argument(
        "--data-dir",
        default=None,
        help="evaluation data folder (default: $LENS_ODESTEER_DATA, else the user cache filled "
        "by `lens-odesteer data fetch`, else ../shared/data beside a checkout)",
    )
    ev.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="task option, e.g. --set n_test=40 (JSON values; repeatable; keys below)",
    )
    ev.add_argument("--layers", default=None, help="layers for 'layers', e.g. 0,3,6")
    ev.add_argument("--fresh", action="store_true", help="discard partial results in --out")
    ev.add_argument(
        "--no-side-effects",
        action="store_true",
        help="skip the side_* rows (facts preference, neutral perplexity) to save time",
    )
    ev.add_argument(
        "--no-figures", action="store_true", help="write tables and reports but no figures"
    )


def _add_data_parser(sub: Any) -> None:
    data = sub.add_parser(
        "data",
        help="download and check the public datasets the evaluation tasks read",
        description="The evaluation tasks read public datasets (TruthfulQA, CAA behaviour sets, "
        "RealToxicityPrompts, ToxiGen, ...). `data fetch` downloads each file from its pinned "
        "source and keeps it only if its sha256 matches; `data check` verifies the files found; "
        "`data list` shows sources, licences and what is present.",
    )
    actions = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--only",
        nargs="+",
        action="extend",
        default=None,
        metavar="NAME",
        help="folders (truthfulqa, caa, ...), sub-folders (caa/refusal) or file paths "
        "(default: everything, about 14 MB)",
    )
    common.add_argument(
        "--data-dir",
        default=None,
        help="data folder (default: $LENS_ODESTEER_DATA, else the user cache)",
    )
    actions.add_parser(
        "list", parents=[common], help="show each dataset: source, licence, files present"
    ).add_argument("--files", action="store_true", help="one line per file")
    fetch = actions.add_parser(
        "fetch", parents=[common], help="download the files not yet present, checking sha256"
    )
    fetch.add_argument(
        "--base-url",
        default=None,
        help="mirror laid out like the data folder (http://, https:// or file://; default: "
        "$LENS_ODESTEER_DATA_URL, else each file's pinned upstream URL)",
    )
    fetch.add_argument(
        "--timeout", type=float, default=60.0, help="seconds per connection (default: 60)"
    )
    actions.add_parser(
        "check", parents=[common], help="verify the sha256 of the files found (exit 1 if wrong)"
    )


def _run_eval(args: argparse.Namespace) -> None:
    if args.task == "list":
        from lens_odesteer.evaluation.cli_eval import eval_choices_text

        print(eval_choices_text())
        return
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
                    strength=args.strength,
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
        elif args.command == "data":
            from lens_odesteer.datasets.cli_data import run_data_command

            return run_data_command(args)
    except LensOdesteerError as exc:
        print(f"lens-odesteer: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
