"""Throughput of ``ODESteer.vector_field`` and ``ODESteer.steer`` against plain autograd.

Grid: batch 1, 8, 64 and 512 at d_model 576, 2048 and 4096 (quick: 576 and 4096, batch up to 64).
ODESteer at its defaults (sketch n = 8000, degree 2, Euler x10) is fitted on synthetic data of
each width; speed does not depend on the data. The baseline is the straightforward
implementation of the same formula: the TensorSketch written out (CountSketch by scatter-add,
FFT product), ``torch.autograd.grad`` for the barrier gradient, normalise, Euler. Before timing,
the library's field and end point must agree with it to 1e-5 (max abs difference of the unit
field; max abs difference of the end point relative to its largest entry).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from functools import partial

import torch

import lens_odesteer as lo
from benchmarks._timing import compare, machine, markdown_table, rate
from lens_odesteer.barriers import KernelLogisticBarrier
from lens_odesteer.features import PolynomialSketch

WIDTHS = (576, 2048, 4096)
BATCHES = (1, 8, 64, 512)
QUICK_WIDTHS = (576, 4096)
QUICK_BATCHES = (1, 8, 64)
T = 5.0
TOL = 1e-5


def autograd_field(steerer: lo.ODESteer, acts: torch.Tensor) -> torch.Tensor:
    """``grad h / |grad h|`` with ``h = w . phi(a) + c``, phi written out, autograd for grad."""
    barrier = steerer.barrier_
    assert isinstance(barrier, KernelLogisticBarrier)
    fm = barrier.features_
    assert isinstance(fm, PolynomialSketch)
    with torch.enable_grad():
        a = acts.detach().requires_grad_()
        a_hat = a / a.norm(dim=-1, keepdim=True)
        x = torch.cat(
            [a_hat * math.sqrt(fm.gamma), torch.full_like(a[:, :1], math.sqrt(fm.coef0))], -1
        )
        spectra = []
        for k in range(fm.degree):
            cs = torch.zeros(a.shape[0], fm.n_components, dtype=a.dtype)
            cs = cs.index_add(1, fm.hashes_[k], x * fm.signs_[k])
            spectra.append(torch.fft.rfft(cs))
        prod = spectra[0]
        for s in spectra[1:]:
            prod = prod * s
        phi = torch.fft.irfft(prod, n=fm.n_components)
        h = phi @ barrier.coef_ + barrier.intercept_
        (g,) = torch.autograd.grad(h.sum(), a)
    return g / g.norm(dim=-1, keepdim=True).clamp_min(steerer.min_grad_norm)


def autograd_steer(steerer: lo.ODESteer, acts: torch.Tensor, T: float) -> torch.Tensor:
    """Euler steps of :func:`autograd_field` (ODESteer's default solver)."""
    assert steerer.solver == "euler" and isinstance(steerer.steps, int)
    dt = T / steerer.steps
    y = acts.clone()
    for _ in range(steerer.steps):
        y = y + dt * autograd_field(steerer, y)
    return y


def _fit(d_model: int) -> lo.ODESteer:
    gen = torch.Generator().manual_seed(d_model)
    direction = torch.randn(d_model, generator=gen)
    direction = direction / direction.norm()
    pos = torch.randn(512, d_model, generator=gen) + 0.5 * direction
    neg = torch.randn(512, d_model, generator=gen) - 0.5 * direction
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence does not matter for speed
        return lo.ODESteer(lo.sketch_barrier(max_iter=200)).fit(pos, neg)


def _path(steerer: lo.ODESteer, batch: int) -> str:
    barrier = steerer.barrier_
    quad = getattr(barrier, "_quadratic", None) is not None
    if quad and batch >= getattr(barrier, "_quadratic_min_rows", 0):
        return "quadratic form"
    return "FFT"


def _repeats(batch: int, quick: bool) -> tuple[int, int]:
    """(repeats, warmup): fewer rounds where one call is long."""
    if batch >= 512:
        return (3, 1)
    if batch >= 64:
        return (5, 1) if quick else (7, 2)
    return (7, 2) if quick else (15, 3)


def _check(name: str, ours: torch.Tensor, ref: torch.Tensor, relative: bool) -> float:
    err = float((ours - ref).abs().max())
    if relative:
        err /= float(ref.abs().max())
    if not err <= TOL:
        raise AssertionError(f"{name}: library and autograd differ by {err:.2e} > {TOL:g}")
    return err


def run(quick: bool = False) -> None:
    widths, batches = (QUICK_WIDTHS, QUICK_BATCHES) if quick else (WIDTHS, BATCHES)
    print(
        "== steer: activations/s of ODESteer.vector_field and .steer (sketch n=8000, Euler x10) "
        "vs the same formula with autograd"
    )
    print(f"   machine: {machine()}")
    rows: list[list[str]] = []
    misses: list[str] = []
    for d_model in widths:
        steerer = _fit(d_model)
        gen = torch.Generator().manual_seed(1)
        for batch in batches:
            acts = torch.randn(batch, d_model, generator=gen) * 10
            e_field = _check(
                f"field d={d_model} b={batch}",
                steerer.vector_field(acts),
                autograd_field(steerer, acts),
                relative=False,
            )
            e_steer = _check(
                f"steer d={d_model} b={batch}",
                steerer.steer(acts, T),
                autograd_steer(steerer, acts, T),
                relative=True,
            )
            candidates: dict[str, Callable[[], object]] = {
                "field": partial(steerer.vector_field, acts),
                "field autograd": partial(autograd_field, steerer, acts),
                "steer": partial(steerer.steer, acts, T),
                "steer autograd": partial(autograd_steer, steerer, acts, T),
            }
            repeats, warmup = _repeats(batch, quick)
            med = compare(candidates, repeats=repeats, warmup=warmup, show=False)
            f_ratio = med["field autograd"] / med["field"]
            s_ratio = med["steer autograd"] / med["steer"]
            rows.append(
                [
                    str(d_model),
                    str(batch),
                    _path(steerer, batch),
                    rate(batch, med["field"]),
                    rate(batch, med["field autograd"]),
                    f"x{f_ratio:.2f}",
                    rate(batch, med["steer"]),
                    rate(batch, med["steer autograd"]),
                    f"x{s_ratio:.2f}",
                    f"{max(e_field, e_steer):.0e}",
                ]
            )
            print(
                f"   d_model={d_model:5d} batch={batch:4d}: field x{f_ratio:5.2f}, "
                f"steer x{s_ratio:5.2f} ({med['steer'] * 1e3:8.2f} ms vs "
                f"{med['steer autograd'] * 1e3:8.2f} ms)",
                flush=True,
            )
            need = 2.0 if batch <= 64 else 1.0
            if s_ratio < need:
                misses.append(f"d_model {d_model} batch {batch}: x{s_ratio:.2f} < x{need:g}")
    header = [
        "d_model",
        "batch",
        "path",
        "field act/s",
        "autograd act/s",
        "speed-up",
        "steer act/s",
        "autograd act/s",
        "speed-up",
        "max diff",
    ]
    print(markdown_table(header, rows))
    print(
        "   target (steer): >= x2 at batch <= 64, >= x1 everywhere: "
        + ("met" if not misses else "NOT met at " + "; ".join(misses))
    )


if __name__ == "__main__":
    run()
