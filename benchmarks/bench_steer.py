"""Cost of one ``ODESteer.steer`` call (Euler, 10 steps) against baselines measured in the same run.

Baselines: one-step CAA (``a + T v``), and a plain autograd implementation of the same ODESteer
formula (sketch features, ``torch.autograd.grad`` for the barrier gradient, normalise, Euler),
which must agree with the analytic implementation to 1e-5.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

import lens_odesteer as lo
from benchmarks._timing import compare


def autograd_odesteer(steerer: lo.ODESteer, acts: torch.Tensor, T: float) -> torch.Tensor:
    """The straightforward formula: autograd through ``h = w . phi(a) + c``; Euler steps."""
    barrier = steerer.barrier_
    assert isinstance(barrier, lo.KernelLogisticBarrier)
    fm = barrier.features_
    assert isinstance(fm, lo.PolynomialSketch)
    dt = T / steerer.n_steps
    y = acts.clone()
    with torch.enable_grad():
        for _ in range(steerer.n_steps):
            a = y.detach().requires_grad_()
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
            y = y + dt * g / g.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    return y


def _candidates(
    caa: lo.CAA, ode: lo.ODESteer, acts: torch.Tensor, T: float
) -> dict[str, Callable[[], object]]:
    return {
        "CAA.steer (one step, baseline)": lambda: caa.steer(acts, 1.0),
        "ODESteer.steer (analytic J^T, Euler x10)": lambda: ode.steer(acts, T),
        "autograd formula (Euler x10)": lambda: autograd_odesteer(ode, acts, T),
    }


def run() -> None:
    print("== steer: one call on a batch of 8 activations (ODESteer: sketch n=8000, Euler x10)")
    gen = torch.Generator().manual_seed(0)
    for d_model in (576, 4096):
        pos = torch.randn(512, d_model, generator=gen) + 0.1
        neg = torch.randn(512, d_model, generator=gen) - 0.1
        ode = lo.ODESteer().fit(pos, neg)
        caa = lo.CAA().fit(pos, neg)
        acts = neg[:8] * 10
        T = 5.0
        ours, ref = ode.steer(acts, T), autograd_odesteer(ode, acts, T)
        err = float((ours - ref).abs().max() / ref.abs().max())
        print(f"  d_model={d_model}: max relative difference analytic vs autograd = {err:.1e}")
        assert err < 1e-5, "analytic and autograd ODESteer disagree"
        compare(_candidates(caa, ode, acts, T))


if __name__ == "__main__":
    run()
