"""Fit grid: wall time, peak memory and held-out accuracy of ``ODESteer.fit`` vs scikit-learn.

Configurations: 2k, 8k and 32k training activations (half positive) of width 576 (real SmolLM2
activations, see ``_fit_data``; synthetic if the shared data is missing) and 4096 (synthetic);
held-out accuracy on 2,000 other activations (1,000 per class; for real data from unseen texts).
Quick: 2k and 8k at 576, 2k at 4096.

Baseline: scikit-learn's ``LogisticRegression(C=1.0, max_iter=1000)`` (L2, lbfgs: the reference
implementation's settings) on the same sketch features, which it has to be given; its time is
the features plus the regression.

Each fit runs in its own fresh Python process (``python -m benchmarks.bench_fit --worker``), so
that one configuration's memory cannot flatter or burden the next, after a warm-up fit on 8 rows
outside the timing: the first ``torch.optim.LBFGS`` of a process imports ``torch._dynamo``
(2-3 s, once per process, as scikit-learn's import is on its side; printed as "warm-up").

Memory: a thread samples the process's resident set size (``/proc/self/statm``) every 5 ms
during the fit; "peak MB" is the highest sample minus the RSS just before the fit, with the data
already loaded: the extra memory the fit needs beyond its inputs. (``tracemalloc`` does not see
torch's allocations, and ``ru_maxrss`` alone would include the data generation before the fit.)
Freed large blocks go back to the OS, so RSS follows the live tensors; a peak shorter than 5 ms
could be missed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import torch

from benchmarks import _fit_data
from benchmarks._timing import machine, markdown_table

SIZES = (2000, 8000, 32000)
WIDTHS = (576, 4096)
QUICK = ((576, 2000), (576, 8000), (4096, 2000))
TIMEOUT_S = 1800
_ROOT = Path(__file__).resolve().parents[1]


class _PeakRSS:
    """Samples this process's RSS in a thread; ``peak_mb`` is the max above the start value."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.start = self.peak = self._rss()
        self.samples = 0  # readings taken by the thread so far
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            self.samples += 1
            time.sleep(self.interval)

    def __enter__(self) -> _PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def peak_mb(self) -> float:
        return (self.peak - self.start) / 2**20


def _accuracy(scores: torch.Tensor) -> float:
    labels = torch.arange(len(scores)) < len(scores) // 2
    return float(((scores > 0) == labels).float().mean())


def _load(source: str, width: int, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if source == "real":
        return _fit_data.real(n)
    return _fit_data.synthetic(n, width)


def worker(kind: str, source: str, width: int, n: int) -> dict[str, object]:
    """One fit in this process; returns the measurements."""
    import lens_odesteer as lo
    from lens_odesteer.barriers import KernelLogisticBarrier
    from lens_odesteer.features import PolynomialSketch

    tr_p, tr_n, te = _load(source, width, n)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        if kind == "ours":  # torch.optim's first L-BFGS imports torch._dynamo (seconds), once
            lo.ODESteer(lo.sketch_barrier(max_iter=2)).fit(tr_p[:8], tr_n[:8])
        else:
            PolynomialSketch().fit(tr_p[:8]).transform(tr_p[:8])
    warmup = time.perf_counter() - start
    gc.collect()
    if kind == "ours":
        with _PeakRSS() as mem:
            start = time.perf_counter()
            with warnings.catch_warnings(record=True):
                warnings.simplefilter("always")
                ode = lo.ODESteer().fit(tr_p, tr_n)
            seconds = time.perf_counter() - start
        barrier = ode.barrier_
        assert isinstance(barrier, KernelLogisticBarrier)
        return {
            "seconds": seconds,
            "peak_mb": mem.peak_mb,
            "acc": _accuracy(barrier.logit(te)),
            "n_iter": barrier.n_iter_,
            "converged": barrier.converged_,
            "warmup_s": warmup,
        }
    from sklearn.linear_model import LogisticRegression

    with _PeakRSS() as mem:
        start = time.perf_counter()
        sketch = PolynomialSketch().fit(tr_p)
        feats = torch.cat([sketch.transform(tr_p), sketch.transform(tr_n)]).numpy()
        t_feat = time.perf_counter() - start
        labels = [1] * len(tr_p) + [0] * len(tr_n)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            clf = LogisticRegression(C=1.0, max_iter=1000).fit(feats, labels)
        seconds = time.perf_counter() - start
    scores = torch.from_numpy(clf.decision_function(sketch.transform(te).numpy()))
    return {
        "seconds": seconds,
        "features_s": t_feat,
        "peak_mb": mem.peak_mb,
        "acc": _accuracy(scores),
        "n_iter": int(clf.n_iter_[0]),
        "converged": not any("converge" in str(w.message).lower() for w in caught),
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "warmup_s": warmup,
    }


def _spawn(kind: str, source: str, width: int, n: int, timeout: float) -> dict[str, object]:
    cmd = [sys.executable, "-m", "benchmarks.bench_fit", "--worker", kind, source]
    cmd += [str(width), str(n)]
    try:
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=_ROOT
        )
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:.0f} s"}
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": f"exit {out.returncode}: {tail[:120]}"}
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _has_sklearn() -> bool:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return False
    return True


def run(quick: bool = False) -> None:
    configs = list(QUICK) if quick else [(w, n) for w in WIDTHS for n in SIZES]
    print("== fit: ODESteer.fit (sketch n=8000 + torch L-BFGS) vs sklearn LogisticRegression")
    print(f"   machine: {machine()}")
    real_ok = _fit_data.real_available()
    if real_ok:
        took = _fit_data.build_real_cache()
        if took:
            print(f"   collected the real SmolLM2 activations once in {took:.0f} s (cached)")
    else:
        print("   shared RealToxicityPrompts data not found: width 576 uses synthetic data too")
    sk = _has_sklearn()
    rows: list[list[str]] = []
    for width, n in configs:
        source = "real" if width == 576 and real_ok else "synthetic"
        ours = _spawn("ours", source, width, n, TIMEOUT_S)
        ref: dict[str, object] = {"error": "no sklearn"}
        if sk:
            ref = _spawn("sklearn", source, width, n, TIMEOUT_S)

        def cell(res: dict[str, object], key: str, fmt: str) -> str:
            return "-" if "error" in res else format(res[key], fmt)

        ratio = "-"
        if "error" not in ours and "error" not in ref:
            ratio = f"x{float(ref['seconds']) / float(ours['seconds']):.2f}"  # type: ignore[arg-type]
        rows.append(
            [
                str(width),
                source,
                f"{n // 1000}k",
                cell(ours, "seconds", ".2f"),
                cell(ours, "peak_mb", ".0f"),
                cell(ours, "acc", ".3f"),
                cell(ref, "seconds", ".2f"),
                cell(ref, "features_s", ".2f"),
                cell(ref, "peak_mb", ".0f"),
                cell(ref, "acc", ".3f"),
                ratio,
            ]
        )
        notes = [
            f"{k}: {v['error']}" for k, v in (("ours", ours), ("sklearn", ref)) if "error" in v
        ]
        for name, res in (("ours", ours), ("sklearn", ref)):
            if "error" not in res and not res.get("converged", True):
                notes.append(f"{name}: not converged in {res['n_iter']} iterations")
        print(
            f"   d={width} n={n}: ours {cell(ours, 'seconds', '.2f')} s acc "
            f"{cell(ours, 'acc', '.3f')} (warm-up {cell(ours, 'warmup_s', '.1f')} s, L-BFGS "
            f"iterations {cell(ours, 'n_iter', 'd')}); sklearn {cell(ref, 'seconds', '.2f')} s "
            f"acc {cell(ref, 'acc', '.3f')} (iterations {cell(ref, 'n_iter', 'd')})"
            + (f"  [{'; '.join(notes)}]" if notes else ""),
            flush=True,
        )
    header = [
        "d_model",
        "data",
        "n train",
        "ours s",
        "ours peak MB",
        "ours acc",
        "sklearn s",
        "(of which features)",
        "sklearn peak MB",
        "sklearn acc",
        "sklearn / ours",
    ]
    print(markdown_table(header, rows))


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", nargs=4, metavar=("KIND", "SOURCE", "WIDTH", "N"))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.worker:
        kind, source, width, n = args.worker
        print(json.dumps(worker(kind, source, int(width), int(n))))
        return 0
    run(args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
