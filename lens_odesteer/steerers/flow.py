"""Barrier-flow steerers: integrate ``v = grad h / |grad h|`` (or ``grad h``) for a time ``T``.

:class:`ODESteer` is the paper's method; :class:`StepODESteer` takes one Euler step of the same
field; the RFF variants swap the sketch for random Fourier features; :class:`ValueSteer` follows
the gradient of a learned value network (RE-Control style).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import torch
from jaxtyping import Float
from torch import Tensor

from lens_odesteer._validation import check_finite_float, check_positive_int
from lens_odesteer.barriers.base import AbstractBarrier
from lens_odesteer.barriers.kernel import KernelLogisticBarrier
from lens_odesteer.barriers.value import MLPValueBarrier
from lens_odesteer.features.rff import RandomFourierFeatures
from lens_odesteer.features.sketch import PolynomialSketch
from lens_odesteer.flows.integrate import integrate
from lens_odesteer.flows.solvers import ExplicitRK, get_solver
from lens_odesteer.flows.trajectory import Trajectory
from lens_odesteer.steerers.base import AbstractSteerer


class BarrierField:
    """The velocity of a barrier flow: ``grad h / max(|grad h|, min_grad_norm)`` or ``grad h``.

    A row whose gradient vanishes gets a vanishing velocity (never NaN), so it stays put.
    """

    def __init__(self, barrier: AbstractBarrier, normalize: bool, min_grad_norm: float) -> None:
        self.barrier = barrier
        self.normalize = normalize
        self.min_grad_norm = min_grad_norm

    def velocity_and_value(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(v(y), h(y))`` from one barrier evaluation."""
        h, g = self.barrier._value_and_grad(y)
        if self.normalize:
            g = g / g.norm(dim=-1, keepdim=True).clamp_min(self.min_grad_norm)
        return g, h

    def __call__(self, y: Tensor) -> Tensor:
        return self.velocity_and_value(y)[0]


class _FlowSteerer(AbstractSteerer):
    """Shared machinery; subclasses choose the barrier and the step settings."""

    _tensor_attrs = ()
    _scalar_attrs = AbstractSteerer._base_scalars
    _component_attrs = ("barrier_",)

    solver: str
    n_steps: int
    margin: float | None
    normalize: bool
    min_grad_norm: float
    rtol: float
    atol: float
    barrier_: AbstractBarrier

    @abstractmethod
    def _make_barrier(self) -> AbstractBarrier:
        """An unfitted barrier built from the constructor arguments."""

    def _check_flow_params(self) -> ExplicitRK:
        method = get_solver(self.solver)
        check_positive_int(self.n_steps, "n_steps")
        if self.margin is not None:
            check_finite_float(self.margin, "margin")
        check_finite_float(self.min_grad_norm, "min_grad_norm", minimum=0.0, strict=True)
        return method

    def _fit(
        self, pos: Float[Tensor, "n_pos d_model"], neg: Float[Tensor, "n_neg d_model"]
    ) -> None:
        self._check_flow_params()
        self.barrier_ = self._make_barrier().fit(pos, neg)

    def _field(self) -> BarrierField:
        return BarrierField(self.barrier_, self.normalize, self.min_grad_norm)

    def _velocity(self, acts: Float[Tensor, "batch d_model"]) -> Float[Tensor, "batch d_model"]:
        return self._field()(acts)

    def _barrier(self, acts: Float[Tensor, "batch d_model"]) -> Float[Tensor, " batch"]:
        return self.barrier_._value(acts)

    def _solve(self, acts: Tensor, T: float, save: str, n_save: int | None) -> Trajectory:
        method = self._check_flow_params()
        return integrate(
            self._field(),
            acts,
            T,
            solver=method,
            n_steps=self.n_steps,
            margin=self.margin,
            save="all" if save == "all" else "end",
            n_save=n_save,
            rtol=self.rtol,
            atol=self.atol,
            stop_on_reversal=self.normalize,
        )

    def _steer(
        self, acts: Float[Tensor, "batch d_model"], T: float
    ) -> Float[Tensor, "batch d_model"]:
        return self._solve(acts, T, "end", None).ys[-1]

    def _trajectory(
        self, acts: Float[Tensor, "batch d_model"], T: float, n_save: int | None
    ) -> Trajectory:
        return self._solve(acts, T, "all", n_save)

    # Convenience accessors --------------------------------------------------------------------
    def proba(self, acts: Float[Tensor, "*batch d_model"]) -> Float[Tensor, " *batch"]:
        """``P(positive | a)`` from the barrier's classifier (training prior)."""
        acts_t, flat = self._prepare(acts)
        return torch.sigmoid(self.barrier_._value(flat) - self.barrier_.log_prior_ratio_).reshape(
            acts_t.shape[:-1]
        )


class ODESteer(_FlowSteerer):
    r"""ODESteer: integrate the normalised gradient of a kernel log-density-ratio barrier.

    ``h(a) = w . phi(a) + b + log((1 - pi) / pi)`` with ``phi`` the normalised degree-2
    TensorSketch, and ``da/dt = grad h / |grad h|`` solved over ``[0, T]``. The field has unit norm,
    so ``T`` is an arc length in activation units; because ``phi`` sees only ``a / |a|``, the flow
    rotates ``a`` on its norm sphere (Euler adds about ``sum(dt^2) / (2 |a|)`` to the norm). Choose
    ``T`` relative to the residual norm at the hook. Defaults follow the paper's reference.

    Args:
        n_components, degree, gamma, coef0, seed: sketch settings (8000, 2, 0.1, 1.0, 0).
        C: inverse L2 strength of the logistic regression (1.0).
        solver: ``"euler"`` (default), ``"midpoint"``, ``"heun"``, ``"rk4"``, or the adaptive
            ``"dopri5"``.
        n_steps: steps over ``[0, T]`` (10).
        margin: if set, freeze each row once ``h >= margin`` (rows starting there are untouched).
        custom_barrier: any unfitted :class:`~lens_odesteer.barriers.AbstractBarrier` (for
            example ``LinearBarrier()`` or ``MLPValueBarrier()``); overrides the sketch settings.
        normalize: integrate ``grad h / |grad h|`` (True) or ``grad h``.
        min_grad_norm: floor of ``|grad h|`` in the normalisation.
        max_iter, tol: L-BFGS settings of the logistic regression.
        rtol, atol: tolerances of the adaptive solver.

    Attributes:
        barrier_: the fitted barrier. Plus ``d_model_``, ``n_pos_``, ``n_neg_``, ``dtype_``.

    Example:
        >>> import torch, lens_odesteer as lo
        >>> pos, neg = torch.randn(64, 16) + 0.5, torch.randn(64, 16) - 0.5
        >>> steerer = lo.ODESteer(n_components=512).fit(pos, neg)
        >>> out = steerer.steer(neg, T=2.0)
        >>> bool((steerer.barrier(out) > steerer.barrier(neg)).float().mean() > 0.9)
        True
    """

    def __init__(
        self,
        n_components: int = 8000,
        degree: int = 2,
        gamma: float = 0.1,
        coef0: float = 1.0,
        C: float = 1.0,
        seed: int = 0,
        solver: str = "euler",
        n_steps: int = 10,
        margin: float | None = None,
        custom_barrier: AbstractBarrier | None = None,
        normalize: bool = True,
        min_grad_norm: float = 1e-8,
        max_iter: int = 1000,
        tol: float = 1e-4,
        rtol: float = 1e-5,
        atol: float = 1e-5,
    ) -> None:
        self.n_components = n_components
        self.degree = degree
        self.gamma = gamma
        self.coef0 = coef0
        self.C = C
        self.seed = seed
        self.solver = solver
        self.n_steps = n_steps
        self.margin = margin
        self.custom_barrier = custom_barrier
        self.normalize = normalize
        self.min_grad_norm = min_grad_norm
        self.max_iter = max_iter
        self.tol = tol
        self.rtol = rtol
        self.atol = atol

    def _make_barrier(self) -> AbstractBarrier:
        if self.custom_barrier is not None:
            return self.custom_barrier.unfitted_copy()
        sketch = PolynomialSketch(
            n_components=self.n_components,
            degree=self.degree,
            gamma=self.gamma,
            coef0=self.coef0,
            seed=self.seed,
        )
        return KernelLogisticBarrier(sketch, C=self.C, max_iter=self.max_iter, tol=self.tol)


class StepODESteer(ODESteer):
    """One explicit Euler step of ODESteer's field: ``a + T * grad h / |grad h|``.

    The paper's ablation: same barrier, same unit field, no integration. Arguments as
    :class:`ODESteer` without ``solver``, ``n_steps``, ``rtol`` and ``atol``.

    Example:
        >>> import torch, lens_odesteer as lo
        >>> pos, neg = torch.randn(64, 16) + 0.5, torch.randn(64, 16) - 0.5
        >>> s = lo.StepODESteer(n_components=512).fit(pos, neg)
        >>> round(float((s.steer(neg, T=1.5) - neg).norm(dim=-1).max()), 5)  # unit field
        1.5
    """

    strength_meaning: ClassVar[str] = "step length (unit field)"

    def __init__(
        self,
        n_components: int = 8000,
        degree: int = 2,
        gamma: float = 0.1,
        coef0: float = 1.0,
        C: float = 1.0,
        seed: int = 0,
        margin: float | None = None,
        custom_barrier: AbstractBarrier | None = None,
        normalize: bool = True,
        min_grad_norm: float = 1e-8,
        max_iter: int = 1000,
        tol: float = 1e-4,
    ) -> None:
        super().__init__(
            n_components=n_components,
            degree=degree,
            gamma=gamma,
            coef0=coef0,
            C=C,
            seed=seed,
            solver="euler",
            n_steps=1,
            margin=margin,
            custom_barrier=custom_barrier,
            normalize=normalize,
            min_grad_norm=min_grad_norm,
            max_iter=max_iter,
            tol=tol,
        )


class RFFODESteer(_FlowSteerer):
    """ODESteer with a Gaussian random-Fourier-feature barrier (the paper's RFF ablation).

    Args:
        n_components: number of random features (8000).
        bandwidth: ``"median"`` (median pairwise distance / sqrt 2) or a float sigma.
        C, seed, solver, n_steps, margin, normalize, min_grad_norm, max_iter, tol, rtol, atol:
            as :class:`ODESteer`.

    Example:
        >>> import torch, lens_odesteer as lo
        >>> pos, neg = torch.randn(64, 16) + 0.5, torch.randn(64, 16) - 0.5
        >>> lo.RFFODESteer(n_components=256).fit(pos, neg).steer(neg, T=1.0).shape
        torch.Size([64, 16])
    """

    def __init__(
        self,
        n_components: int = 8000,
        bandwidth: float | str = "median",
        C: float = 1.0,
        seed: int = 0,
        solver: str = "euler",
        n_steps: int = 10,
        margin: float | None = None,
        normalize: bool = True,
        min_grad_norm: float = 1e-8,
        max_iter: int = 1000,
        tol: float = 1e-4,
        rtol: float = 1e-5,
        atol: float = 1e-5,
    ) -> None:
        self.n_components = n_components
        self.bandwidth = bandwidth
        self.C = C
        self.seed = seed
        self.solver = solver
        self.n_steps = n_steps
        self.margin = margin
        self.normalize = normalize
        self.min_grad_norm = min_grad_norm
        self.max_iter = max_iter
        self.tol = tol
        self.rtol = rtol
        self.atol = atol

    def _make_barrier(self) -> AbstractBarrier:
        rff = RandomFourierFeatures(
            n_components=self.n_components, bandwidth=self.bandwidth, seed=self.seed
        )
        return KernelLogisticBarrier(rff, C=self.C, max_iter=self.max_iter, tol=self.tol)


class RFFStepODESteer(RFFODESteer):
    """One Euler step of the RFF barrier's unit field (``a + T v(a)``).

    Example:
        >>> import torch, lens_odesteer as lo
        >>> pos, neg = torch.randn(64, 16) + 0.5, torch.randn(64, 16) - 0.5
        >>> lo.RFFStepODESteer(n_components=256).fit(pos, neg).steer(neg, T=1.0).shape
        torch.Size([64, 16])
    """

    strength_meaning: ClassVar[str] = "step length (unit field)"

    def __init__(
        self,
        n_components: int = 8000,
        bandwidth: float | str = "median",
        C: float = 1.0,
        seed: int = 0,
        margin: float | None = None,
        normalize: bool = True,
        min_grad_norm: float = 1e-8,
        max_iter: int = 1000,
        tol: float = 1e-4,
    ) -> None:
        super().__init__(
            n_components=n_components,
            bandwidth=bandwidth,
            C=C,
            seed=seed,
            solver="euler",
            n_steps=1,
            margin=margin,
            normalize=normalize,
            min_grad_norm=min_grad_norm,
            max_iter=max_iter,
            tol=tol,
        )


class ValueSteer(_FlowSteerer):
    """Gradient ascent on a learned value network (RE-Control-style "output optimisation").

    The barrier is :class:`~lens_odesteer.barriers.MLPValueBarrier` trained on the same
    positive/negative data. By default the raw gradient is followed (``normalize=False``), so
    ``T / n_steps`` is the gradient-ascent step size; with ``normalize=True`` it is ODESteer's
    unit field on this barrier.

    Args:
        hidden, weight_decay, seed, value_max_iter: value-network settings.
        solver, n_steps, margin, normalize, min_grad_norm, rtol, atol: as :class:`ODESteer`.

    Example:
        >>> import torch, lens_odesteer as lo
        >>> pos, neg = torch.randn(64, 16) + 0.5, torch.randn(64, 16) - 0.5
        >>> s = lo.ValueSteer(hidden=16).fit(pos, neg)
        >>> bool((s.barrier(s.steer(neg, T=1.0)) > s.barrier(neg)).all())
        True
    """

    strength_meaning: ClassVar[str] = "total gradient-ascent step size"

    def __init__(
        self,
        hidden: int = 64,
        weight_decay: float = 1e-3,
        seed: int = 0,
        value_max_iter: int = 300,
        solver: str = "euler",
        n_steps: int = 10,
        margin: float | None = None,
        normalize: bool = False,
        min_grad_norm: float = 1e-8,
        rtol: float = 1e-5,
        atol: float = 1e-5,
    ) -> None:
        self.hidden = hidden
        self.weight_decay = weight_decay
        self.seed = seed
        self.value_max_iter = value_max_iter
        self.solver = solver
        self.n_steps = n_steps
        self.margin = margin
        self.normalize = normalize
        self.min_grad_norm = min_grad_norm
        self.rtol = rtol
        self.atol = atol

    def _make_barrier(self) -> AbstractBarrier:
        return MLPValueBarrier(
            hidden=self.hidden,
            weight_decay=self.weight_decay,
            max_iter=self.value_max_iter,
            seed=self.seed,
        )
