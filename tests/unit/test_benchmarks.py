"""The benchmark helpers stay runnable: registry, reference formula, memory sampler, GPU script."""

from __future__ import annotations

import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

import lens_odesteer as lo
from benchmarks import __main__ as bench_main
from benchmarks import _fit_data, bench_fit, bench_steer
from benchmarks._timing import compare, markdown_table, rate, round_ratios, time_rounds

ROOT = Path(__file__).resolve().parents[2]


def test_every_benchmark_is_registered() -> None:
    # Every benchmarks/bench_<name>.py is runnable by name, and nothing else is registered.
    on_disk = {p.stem.removeprefix("bench_") for p in (ROOT / "benchmarks").glob("bench_*.py")}
    assert set(bench_main.BENCHMARKS) == on_disk
    assert {"steer", "fit", "collect", "load", "generate", "eval"} <= on_disk
    assert bench_main.main(["no-such-benchmark"]) == 2


def test_autograd_reference_matches_the_library() -> None:
    gen = torch.Generator().manual_seed(0)
    pos, neg = torch.randn(40, 12, generator=gen) + 0.5, torch.randn(40, 12, generator=gen) - 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ode = lo.ODESteer(lo.sketch_barrier(n_components=256, max_iter=50)).fit(pos, neg)
    acts = torch.randn(5, 12, generator=gen) * 4
    ref_field = bench_steer.autograd_field(ode, acts)
    torch.testing.assert_close(ode.vector_field(acts), ref_field, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        ode.steer(acts, 2.0), bench_steer.autograd_steer(ode, acts, 2.0), rtol=1e-5, atol=1e-5
    )
    with pytest.raises(AssertionError, match="differ"):
        bench_steer._check("x", ref_field, ref_field + 1e-3, relative=False)


def test_peak_rss_sees_a_large_allocation() -> None:
    with bench_fit._PeakRSS(interval=0.001) as mem:
        block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
        float(block.sum())
        # keep it alive until the sampler has read the RSS twice (a busy machine can starve
        # the sampling thread for longer than the allocation lives)
        seen, deadline = mem.samples, time.monotonic() + 10
        while mem.samples < seen + 2 and time.monotonic() < deadline:
            time.sleep(0.001)
        del block
    assert mem.peak_mb > 40


def test_synthetic_fit_data_is_deterministic_and_balanced() -> None:
    a = _fit_data.synthetic(40, 16, n_test=10)
    b = _fit_data.synthetic(40, 16, n_test=10)
    assert [t.shape for t in a] == [(20, 16), (20, 16), (10, 16)]
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


def test_timing_helpers() -> None:
    med = compare({"a": lambda: None, "b": lambda: sum(range(100))}, repeats=3, warmup=1)
    assert set(med) == {"a", "b"} and all(v >= 0 for v in med.values())
    assert rate(2000, 1.0) == "2.0k" and rate(5, 2.0) == "2.5"
    samples = time_rounds({"a": lambda: None, "b": lambda: None}, repeats=4, warmup=0)
    assert [len(v) for v in samples.values()] == [4, 4]
    ratios = round_ratios({"base": [1.0, 2.0, 4.0], "x": [1.5, 2.0, 2.0]}, "base")
    assert ratios == {"base": [1.0, 1.0, 1.0], "x": [0.5, 1.0, 1.5]}  # per round, sorted
    table = markdown_table(["x", "y"], [["1", "2"]])
    assert table.splitlines() == ["| x | y |", "| :--- | ---: |", "| 1 | 2 |"]


@pytest.mark.slow
def test_gpu_overhead_script_runs_tiny_on_cpu() -> None:
    cmd = [sys.executable, "scripts/check_gpu_overhead.py", "--tiny", "--new-tokens", "2"]
    cmd += ["--repeats", "1", "--batches", "1,8"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=True)
    lines = out.stdout.splitlines()
    rows = [ln for ln in lines if ln.startswith("| ODESteer") or ln.startswith("| unsteered")]
    assert len(rows) == 4, out.stdout
    assert "| unsteered | " in out.stdout and "x1.000" in out.stdout
    paths = [ln for ln in lines if ln.startswith("| 64 |")]
    assert len(paths) == 2, out.stdout  # batches 1 and 8 at d_model 64
