r"""ODESteer: integrate the (normalised) gradient of a barrier for a time ``T``.

One class, composed like a scikit-learn meta-estimator and a diffrax solve: the *barrier* (what
to climb, with its feature map and classifier), the *solver* and *steps* (how to integrate) and
the *stop* event (when a row is done). The paper's method, its one-step ablation, the RFF
ablation and RE-Control-style value ascent are presets of it
(:mod:`lens_odesteer.steerers.presets`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import ClassVar, Literal

import torch
from jaxtyping import Float
from torch import Tensor

from lens_odesteer._component import Component
from lens_odesteer._validation import check_finite_float
from lens_odesteer.barriers.base import AbstractBarrier
from lens_odesteer.barriers.builders import sketch_barrier
from lens_odesteer.barriers.kernel import KernelLogisticBarrier
from lens_odesteer.barriers.value import MLPValueBarrier
from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.features.rff import RandomFourierFeatures
from lens_odesteer.flows.control import AdaptiveSteps, StopEvent
from lens_odesteer.flows.integrate import integrate
from lens_odesteer.flows.save import SaveAt
from lens_odesteer.flows.solvers import AbstractSolver, Euler, get_solver
from lens_odesteer.flows.trajectory import Trajectory
from lens_odesteer.steerers.base import AbstractSteerer
from lens_odesteer.steerers.field import BarrierField

_FLOW_PARAMS = frozenset({"solver", "steps", "stop", "normalize", "min_grad_norm"})


class ODESteer(AbstractSteerer):
    r"""ODESteer: solve ``da/dt = grad h / |grad h|`` over ``[0, T]`` for a fitted barrier ``h``.

    With the default barrier, ``h(a) = w . phi(a) + b + log((1 - pi) / pi)`` is the paper's
    kernel log density ratio (``phi`` the normalised degree-2 TensorSketch). The field has unit
    norm, so ``T`` is an arc length in activation units; because ``phi`` sees only ``a / |a|``,
    the flow rotates ``a`` on its norm sphere. Choose ``T`` relative to the residual norm at the
    hook, e.g. with :meth:`T_for`. Defaults follow the paper's reference (10 Euler steps).

    Main arguments:
        barrier: an unfitted barrier template (copied and fitted in ``fit``); build one with
            :func:`~lens_odesteer.barriers.sketch_barrier`,
            :func:`~lens_odesteer.barriers.rff_barrier`,
            :func:`~lens_odesteer.barriers.value_barrier` or pass any
            :class:`~lens_odesteer.barriers.AbstractBarrier` (e.g. ``LinearBarrier()``). None:
            the paper's ``sketch_barrier()`` (n = 8000, degree 2, gamma 0.1, coef0 1, C = 1).
        solver: ``Euler()`` (default), ``Midpoint()``, ``Heun()``, ``RK4()`` or the adaptive
            ``Dopri5()`` from :mod:`lens_odesteer.flows`, or their names (``"rk4"``).
        steps: number of equal steps (fixed-step solvers), or an
            :class:`~lens_odesteer.flows.AdaptiveSteps` controller for ``Dopri5()``.
        stop: None, or a stop event such as :class:`~lens_odesteer.steerers.BarrierMargin`
            (freeze each row once ``h >= margin``; rows starting there are untouched).

    Other arguments:
        normalize: integrate ``grad h / |grad h|`` (True) or ``grad h`` itself.
        min_grad_norm: floor of ``|grad h|`` in the normalisation.

    ``set_params`` on a fitted steerer: ``solver``, ``steps``, ``stop``, ``normalize`` and
    ``min_grad_norm`` take effect at once (the fitted barrier is kept; ``speed_`` follows
    ``normalize``); changing ``barrier`` or any ``barrier__*`` parameter drops the fitted state,
    so the steerer must be fitted again.

    Attributes:
        barrier_: the fitted barrier.
        grad_norms_: ``[n_neg]`` ``|grad h|`` at the negative fit rows (gives ``speed_`` for
            either ``normalize``). Plus ``d_model_``, ``n_pos_``, ``n_neg_``, ``dtype_``,
            ``act_norm_``, ``speed_``.

    Example:
        >>> import torch, lens_odesteer as lo
        >>> pos, neg = torch.randn(64, 16) + 0.5, torch.randn(64, 16) - 0.5
        >>> steerer = lo.ODESteer(lo.sketch_barrier(n_components=512)).fit(pos, neg)
        >>> out = steerer.steer(neg, T=2.0)
        >>> bool((steerer.barrier_value(out) > steerer.barrier_value(neg)).float().mean() > 0.9)
        True
        >>> steerer.set_params(solver="rk4", steps=4).name, steerer.is_fitted
        ('ODESteer', True)
    """

    _tensor_attrs = ("grad_norms_",)
    _scalar_attrs = AbstractSteerer._base_scalars
    _component_attrs = ("barrier_",)
    _optional_fitted = (*AbstractSteerer._optional_fitted, "grad_norms_")
    _refit_free = _FLOW_PARAMS
    T_meaning: ClassVar[str] = (
        "integration time along the field; an arc length in activation units when "
        "normalize=True (unit speed)"
    )

    barrier_: AbstractBarrier
    grad_norms_: Tensor | None

    def __init__(
        self,
        barrier: AbstractBarrier | None = None,
        *,
        solver: str | AbstractSolver = "euler",
        steps: int | AdaptiveSteps = 10,
        stop: StopEvent | None = None,
        normalize: bool = True,
        min_grad_norm: float = 1e-8,
    ) -> None:
        self.barrier = barrier
        self.solver = solver
        self.steps = steps
        self.stop = stop
        self.normalize = normalize
        self.min_grad_norm = min_grad_norm

    # -- composition --------------------------------------------------------------------------
    def _flow(self) -> tuple[AbstractSolver, int | AdaptiveSteps]:
        """The validated solver and steps (the adaptive controller's reversal hold resolved)."""
        solver = get_solver(self.solver)
        steps = self.steps
        if isinstance(steps, AdaptiveSteps):
            if not solver.adaptive:
                raise InvalidParameterError(
                    f"`steps={steps!r}` is a step-size controller, but solver {solver!r} has a "
                    "fixed step; pass `steps=<int>` or use `solver=Dopri5()`."
                )
            if steps.hold_on_reversal is None:
                steps = dataclasses.replace(steps, hold_on_reversal=bool(self.normalize))
        elif not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise InvalidParameterError(
                f"`steps` must be an int >= 1 or an AdaptiveSteps controller; got {steps!r}."
            )
        elif solver.adaptive:
            raise InvalidParameterError(
                f"Solver {solver!r} is adaptive; pass `steps=AdaptiveSteps(...)` (e.g. "
                f"`AdaptiveSteps(rtol=1e-5, atol=1e-5, initial_steps={steps})`) instead of "
                f"steps={steps}, or pick a fixed-step solver such as `RK4()`."
            )
        if self.stop is not None and not callable(self.stop):
            raise InvalidParameterError(
                f"`stop` must be None or a stop event such as `BarrierMargin(0.0)`; got "
                f"{self.stop!r}."
            )
        if not isinstance(self.normalize, bool):
            raise InvalidParameterError(
                f"`normalize` must be True or False; got {self.normalize!r}."
            )
        check_finite_float(self.min_grad_norm, "min_grad_norm", minimum=0.0, strict=True)
        return solver, steps

    def _template(self) -> AbstractBarrier:
        template = self.barrier if self.barrier is not None else sketch_barrier()
        if not isinstance(template, AbstractBarrier):
            raise InvalidParameterError(
                f"`barrier` must be an unfitted barrier (e.g. `lo.sketch_barrier()`, "
                f"`LinearBarrier()`) or None; got {template!r}."
            )
        return template

    def _default_component(self, name: str) -> Component | None:
        return sketch_barrier() if name == "barrier" else None

    @property
    def kind(self) -> Literal["one_step", "flow"]:
        """``"one_step"`` for one Euler step (``steps=1``), else ``"flow"``."""
        steps = self.steps
        one = isinstance(steps, int) and not isinstance(steps, bool) and steps == 1
        try:
            euler = isinstance(get_solver(self.solver), Euler)
        except InvalidParameterError:
            euler = False
        return "one_step" if one and euler else "flow"

    @property
    def name(self) -> str:
        """``"ODESteer"``, ``"StepODESteer"``, ``"RFFODESteer"``, ``"RFFStepODESteer"`` or
        ``"ValueSteer"``, from the barrier and ``kind``."""
        one = self.kind == "one_step"
        bar = self.barrier
        if isinstance(bar, MLPValueBarrier):
            return "ValueSteer"
        if isinstance(bar, KernelLogisticBarrier) and isinstance(
            bar.features, RandomFourierFeatures
        ):
            return "RFFStepODESteer" if one else "RFFODESteer"
        return "StepODESteer" if one else "ODESteer"

    def _params_changed(self, names: Iterable[str]) -> None:
        names = set(names)
        super()._params_changed(names)
        if self.is_fitted and names & {"normalize", "min_grad_norm"}:
            self.speed_ = self._speed_from_grad_norms()

    def _speed_from_grad_norms(self) -> float | None:
        g = self.grad_norms_
        if g is None:
            return None  # loaded from a file that predates recorded norms
        if self.normalize:
            return float((g / g.clamp_min(self.min_grad_norm)).mean())
        return float(g.mean())

    # -- fitting and the maths ----------------------------------------------------------------
    def _fit(
        self, pos: Float[Tensor, "n_pos d_model"], neg: Float[Tensor, "n_neg d_model"]
    ) -> None:
        self._flow()
        self.barrier_ = self._template().unfitted_copy().fit(pos, neg)
        self.grad_norms_ = self.barrier_._value_and_grad(neg)[1].norm(dim=-1)

    def _field(self) -> BarrierField:
        return BarrierField(self.barrier_, self.normalize, self.min_grad_norm)

    def _velocity(self, acts: Float[Tensor, "batch d_model"]) -> Float[Tensor, "batch d_model"]:
        return self._field()(acts)

    def _barrier(self, acts: Float[Tensor, "batch d_model"]) -> Float[Tensor, " batch"]:
        return self.barrier_._value(acts)

    def _solve(self, acts: Tensor, T: float, save: SaveAt) -> Trajectory:
        solver, steps = self._flow()
        field = self._field()
        return integrate(field, acts, T, solver=solver, steps=steps, save=save, stop=self.stop)

    def _steer(
        self, acts: Float[Tensor, "batch d_model"], T: float
    ) -> Float[Tensor, "batch d_model"]:
        return self._solve(acts, T, SaveAt()).ys[-1]

    def _trajectory(
        self, acts: Float[Tensor, "batch d_model"], T: float, n_save: int | None
    ) -> Trajectory:
        steps = self.steps
        if isinstance(steps, AdaptiveSteps):
            save = SaveAt(n=n_save or steps.initial_steps + 1)
        else:
            save = SaveAt(steps=True)
        return self._solve(acts, T, save)

    # -- convenience --------------------------------------------------------------------------
    def proba(self, acts: Float[Tensor, "*batch d_model"]) -> Float[Tensor, " *batch"]:
        """``P(positive | a)`` from the barrier's classifier (training prior)."""
        acts_t, flat = self._prepare(acts)
        return torch.sigmoid(self.barrier_._value(flat) - self.barrier_.log_prior_ratio_).reshape(
            acts_t.shape[:-1]
        )
