"""Command line: ``lens-odesteer demo`` (argument parsing only; the work is in the library)."""

from __future__ import annotations

import argparse
import sys

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
    return parser


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
                )
            )
    except LensOdesteerError as exc:
        print(f"lens-odesteer: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
