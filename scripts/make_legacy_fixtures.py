"""Write the legacy steerer files that ``tests/unit/test_legacy_files.py`` loads.

These files pin the on-disk format of lens_odesteer 0.1.0 (steerer schema 1, before the
composable ``ODESteer`` of issue 13): every steerer class of that version, fitted on a small
seeded synthetic dataset (d_model 16), saved, plus each one's ``steer(x, T)`` output on a fixed
input. The test checks that the current code loads every file and reproduces the output exactly.

The script uses the OLD constructors, so it runs only against a checkout of that version
(commit 21d666a), e.g.::

    PYTHONPATH=/path/to/checkout-21d666a python scripts/make_legacy_fixtures.py

It refuses to run against the current code. Output: ``tests/data/legacy_v0.1.0/`` with one
``<name>.safetensors`` per steerer, ``outputs.safetensors`` (input and expected outputs) and
``manifest.json`` (the constructor call and ``T`` of each file).
"""

from __future__ import annotations

import inspect
import json
import sys
import warnings
from pathlib import Path

import torch
from safetensors.torch import save_file

import lens_odesteer as lo

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "legacy_v0.1.0"

#: name -> (constructor source evaluated with ``lo`` in scope, T, fit in float64?)
CASES: dict[str, tuple[str, float, bool]] = {
    "odesteer_default": ("lo.ODESteer(n_components=128)", 2.0, False),
    "odesteer_margin": ("lo.ODESteer(n_components=128, margin=0.0)", 2.0, False),
    "odesteer_dopri5": (
        "lo.ODESteer(n_components=128, solver='dopri5', rtol=1e-4, atol=1e-4)",
        2.0,
        False,
    ),
    "odesteer_linear": ("lo.ODESteer(custom_barrier=lo.LinearBarrier())", 2.0, False),
    "odesteer_rk4_custom": (
        "lo.ODESteer(n_components=64, degree=3, gamma=0.5, coef0=0.5, C=0.5, seed=3,"
        " solver='rk4', n_steps=4, min_grad_norm=1e-6, max_iter=200, tol=1e-3)",
        1.5,
        False,
    ),
    "odesteer_float64": ("lo.ODESteer(n_components=128, gamma=1.0)", 2.0, True),
    "stepodesteer": ("lo.StepODESteer(n_components=128)", 2.0, False),
    "rffodesteer": ("lo.RFFODESteer(n_components=128)", 2.0, False),
    "rffstepodesteer": ("lo.RFFStepODESteer(n_components=128, bandwidth=3.0)", 2.0, False),
    "valuesteer": ("lo.ValueSteer(hidden=8, value_max_iter=50)", 1.0, False),
    "valuesteer_normalized": (
        "lo.ValueSteer(hidden=8, value_max_iter=50, normalize=True, n_steps=5, margin=1.0)",
        2.0,
        False,
    ),
    "caa": ("lo.CAA()", 1.0, False),
    "iti": ("lo.ITI()", 2.0, False),
    "repe": ("lo.RepE()", 2.0, False),
    "linact": ("lo.LinAcT()", 0.5, False),
    "mimic": ("lo.MiMiC()", 0.5, False),
}


def data(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two seeded, slightly curved classes in 16 dimensions and a fixed input to steer."""
    gen = torch.Generator().manual_seed(1234)
    d = 16
    direction = torch.randn(d, generator=gen)
    direction = direction / direction.norm()
    base = torch.randn(d, generator=gen) * 2
    pos = torch.randn(48, d, generator=gen) + base + 1.2 * direction
    neg = torch.randn(48, d, generator=gen) + base - 1.2 * direction
    pos[:, 1] += 0.3 * pos[:, 0] ** 2  # some curvature, so the kernel barrier bends
    x = torch.randn(6, d, generator=gen) + base
    return pos.to(dtype), neg.to(dtype), x.to(dtype)


def main() -> None:
    if "custom_barrier" not in inspect.signature(lo.ODESteer).parameters:
        sys.exit("This script needs lens_odesteer 0.1.0 (commit 21d666a) on PYTHONPATH.")
    OUT.mkdir(parents=True, exist_ok=True)
    # The outputs depend on the thread count in the last bit; tests/unit/test_legacy_files.py
    # compares on the same count.
    torch.set_num_threads(2)
    outputs: dict[str, torch.Tensor] = {}
    manifest: dict[str, dict[str, object]] = {}
    for name, (src, T, f64) in CASES.items():
        pos, neg, x = data(torch.float64 if f64 else torch.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # short L-BFGS budgets warn; irrelevant here
            steerer = eval(src, {"lo": lo}).fit(pos, neg)
        steerer.save(OUT / name, provenance={"fixture": name})
        outputs[f"{name}.input"] = x.contiguous()
        outputs[f"{name}.output"] = steerer.steer(x, T).contiguous()
        manifest[name] = {
            "constructor": src,
            "T": T,
            "class": type(steerer).__name__,
            "float64": f64,
        }
    save_file(outputs, str(OUT / "outputs.safetensors"))
    meta = {"library_version": lo.__version__, "schema_version": 1, "files": manifest}
    (OUT / "manifest.json").write_text(json.dumps(meta, indent=2) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(CASES)} steerers to {OUT} ({total / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
