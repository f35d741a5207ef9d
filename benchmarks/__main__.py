"""Run the benchmarks: ``python -m benchmarks`` (all) or ``python -m benchmarks steer fit``."""

from __future__ import annotations

import sys

from benchmarks import bench_fit, bench_generate, bench_steer

BENCHMARKS = {"steer": bench_steer.run, "fit": bench_fit.run, "generate": bench_generate.run}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {sorted(BENCHMARKS)}", file=sys.stderr)
        return 2
    for name in names:
        BENCHMARKS[name]()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
