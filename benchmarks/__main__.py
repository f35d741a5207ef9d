"""Run the benchmarks: ``python -m benchmarks [--quick] [name ...]`` (no name: all of them).

Names: steer (field and steer throughput grid), fit (fit time, memory and accuracy grid),
collect (activation collection vs a plain forward pass), load (default model, GGUF and cached),
generate (steered generation overhead), eval (TruthfulQA MC scoring throughput, split vs
full passes). ``--quick`` runs smaller grids and fewer repeats;
``--threads N`` sets torch's CPU threads (also for the benchmarks' child processes).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from benchmarks import (
    bench_collect,
    bench_eval,
    bench_fit,
    bench_generate,
    bench_load,
    bench_steer,
)

BENCHMARKS: dict[str, Callable[[bool], None]] = {
    "steer": bench_steer.run,
    "fit": bench_fit.run,
    "collect": bench_collect.run,
    "load": bench_load.run,
    "generate": bench_generate.run,
    "eval": bench_eval.run,
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "names", nargs="*", metavar="name", help=f"any of {', '.join(BENCHMARKS)}, or all"
    )
    parser.add_argument("--quick", action="store_true", help="smaller grids, fewer repeats")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)  # child processes (fit, load)
    names = [n for n in args.names if n != "all"] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}", file=sys.stderr)
        return 2
    for name in names:
        BENCHMARKS[name](args.quick)
        print(flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
