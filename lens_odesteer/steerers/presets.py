"""The paper's ODESteer variants as presets: functions that return a configured :class:`ODESteer`.

They keep the method names used across the evaluation suite; each result is a plain ODESteer
whose ``name`` says which variant it is, so ``isinstance(s, ODESteer)`` holds for all of them.
"""

from __future__ import annotations

from lens_odesteer.barriers.base import AbstractBarrier
from lens_odesteer.barriers.builders import rff_barrier, value_barrier
from lens_odesteer.flows.control import AdaptiveSteps, StopEvent
from lens_odesteer.flows.solvers import AbstractSolver
from lens_odesteer.steerers.odesteer import ODESteer

__all__ = ["RFFODESteer", "RFFStepODESteer", "StepODESteer", "ValueSteer"]


def StepODESteer(
    barrier: AbstractBarrier | None = None,
    *,
    stop: StopEvent | None = None,
    normalize: bool = True,
    min_grad_norm: float = 1e-8,
) -> ODESteer:
    """One explicit Euler step of ODESteer's field: ``a + T * grad h / |grad h|``.

    The paper's ablation: same barrier, same unit field, no integration. Equals
    ``ODESteer(barrier, solver="euler", steps=1, ...)``.

    Example:
        >>> import torch, lens_odesteer as lo
        >>> pos, neg = torch.randn(64, 16) + 0.5, torch.randn(64, 16) - 0.5
        >>> s = lo.StepODESteer(lo.sketch_barrier(n_components=512)).fit(pos, neg)
        >>> s.name, s.kind
        ('StepODESteer', 'one_step')
        >>> round(float((s.steer(neg, T=1.5) - neg).norm(dim=-1).max()), 5)  # unit field
        1.5
    """
    return ODESteer(
        barrier,
        solver="euler",
        steps=1,
        stop=stop,
        normalize=normalize,
        min_grad_norm=min_grad_norm,
    )


def RFFODESteer(
    n_components: int = 8000,
    bandwidth: float | str = "median",
    C: float = 1.0,
    seed: int = 0,
    max_iter: int = 1000,
    tol: float = 1e-4,
    *,
    solver: str | AbstractSolver = "euler",
    steps: int | AdaptiveSteps = 10,
    stop: StopEvent | None = None,
    normalize: bool = True,
    min_grad_norm: float = 1e-8,
) -> ODESteer:
    """ODESteer on a Gaussian random-Fourier-feature barrier (the paper's RFF ablation).

    ``ODESteer(rff_barrier(n_components, bandwidth, C, seed, max_iter, tol), ...)``; the
    keyword-only arguments are ODESteer's.

    Example:
        >>> import torch, lens_odesteer as lo
        >>> pos, neg = torch.randn(64, 16) + 0.5, torch.randn(64, 16) - 0.5
        >>> s = lo.RFFODESteer(n_components=256).fit(pos, neg)
        >>> s.name, s.steer(neg, T=1.0).shape
        ('RFFODESteer', torch.Size([64, 16]))
    """
    return ODESteer(
        rff_barrier(n_components, bandwidth, C=C, seed=seed, max_iter=max_iter, tol=tol),
        solver=solver,
        steps=steps,
        stop=stop,
        normalize=normalize,
        min_grad_norm=min_grad_norm,
    )


def RFFStepODESteer(
    n_components: int = 8000,
    bandwidth: float | str = "median",
    C: float = 1.0,
    seed: int = 0,
    max_iter: int = 1000,
    tol: float = 1e-4,
    *,
    stop: StopEvent | None = None,
    normalize: bool = True,
    min_grad_norm: float = 1e-8,
) -> ODESteer:
    """One Euler step of the RFF barrier's unit field (``a + T v(a)``).

    Example:
        >>> import torch, lens_odesteer as lo
        >>> pos, neg = torch.randn(64, 16) + 0.5, torch.randn(64, 16) - 0.5
        >>> lo.RFFStepODESteer(n_components=256).fit(pos, neg).name
        'RFFStepODESteer'
    """
    return ODESteer(
        rff_barrier(n_components, bandwidth, C=C, seed=seed, max_iter=max_iter, tol=tol),
        solver="euler",
        steps=1,
        stop=stop,
        normalize=normalize,
        min_grad_norm=min_grad_norm,
    )


def ValueSteer(
    hidden: int = 64,
    weight_decay: float = 1e-3,
    seed: int = 0,
    max_iter: int = 300,
    *,
    solver: str | AbstractSolver = "euler",
    steps: int | AdaptiveSteps = 10,
    stop: StopEvent | None = None,
    normalize: bool = False,
    min_grad_norm: float = 1e-8,
) -> ODESteer:
    """Gradient ascent on a learned value network (RE-Control-style "output optimisation").

    ``ODESteer(value_barrier(hidden, weight_decay, seed, max_iter), normalize=False, ...)``: the
    raw gradient is followed, so ``T / steps`` is the gradient-ascent step size; with
    ``normalize=True`` it is ODESteer's unit field on this barrier.

    Example:
        >>> import torch, lens_odesteer as lo
        >>> pos, neg = torch.randn(64, 16) + 0.5, torch.randn(64, 16) - 0.5
        >>> s = lo.ValueSteer(hidden=16).fit(pos, neg)
        >>> s.name, bool((s.barrier_value(s.steer(neg, T=1.0)) > s.barrier_value(neg)).all())
        ('ValueSteer', True)
    """
    return ODESteer(
        value_barrier(hidden, weight_decay, seed=seed, max_iter=max_iter),
        solver=solver,
        steps=steps,
        stop=stop,
        normalize=normalize,
        min_grad_norm=min_grad_norm,
    )
