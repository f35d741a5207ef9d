"""The steerer interface shared by ODESteer and every baseline.

A steerer is a fitted estimator mapping activations to activations::

    steerer.fit(pos_acts, neg_acts)    # or fit(acts, labels); returns self
    steerer.steer(acts, T)             # same shape, dtype and device as acts
    steerer.trajectory(acts, T)        # Trajectory(ts, ys, hs, ...), time on the leading axis
    steerer.vector_field(acts)         # the velocity v(a) whose flow the steerer follows
    steerer.barrier_value(acts)        # h(a), where the method defines one

All maths runs in the steerer's compute dtype (float32 unless it was fitted on float64 data or
moved with ``.to(dtype=...)``); inputs are cast in and results cast back to the input dtype.

Every steerer declares what its strength means (``T_meaning``), whether it takes one step or
follows a flow (``kind``), and the largest ``T`` it accepts (``max_T``). ``fit`` records the mean
activation norm (``act_norm_``) and the mean field speed on the negative rows (``speed_``), so
``T_for(strength)`` turns a strength that means the same for every method (the move as a
fraction of the typical activation norm) into the method's native ``T``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import torch
from jaxtyping import Float
from torch import Tensor

from lens_odesteer._component import Component
from lens_odesteer._validation import (
    as_float_acts,
    check_d_model,
    check_finite,
    check_finite_float,
    split_fit_args,
)
from lens_odesteer.errors import InvalidActivationsError, InvalidParameterError
from lens_odesteer.flows.trajectory import Trajectory
from lens_odesteer.steerers._format import save_steerer

SteererT = TypeVar("SteererT", bound="AbstractSteerer")


class AbstractSteerer(Component):
    """Base class of every steerer; see the module docstring for the interface.

    Attributes (after ``fit``):
        d_model_: activation width.
        n_pos_, n_neg_: number of positive and negative fit activations.
        dtype_: compute dtype.
        act_norm_: mean L2 norm of all fit rows (positive and negative).
        speed_: mean ``|v(a)|`` of the field over the negative fit rows. ``act_norm_`` and
            ``speed_`` are None for a steerer loaded from a file that predates them.
    """

    _base_scalars: ClassVar[tuple[str, ...]] = (
        "d_model_",
        "n_pos_",
        "n_neg_",
        "dtype_",
        "act_norm_",
        "speed_",
    )
    _optional_fitted: ClassVar[tuple[str, ...]] = ("act_norm_", "speed_")
    #: Parameters that ``set_params`` may change on a fitted steerer without a refit.
    _refit_free: ClassVar[frozenset[str]] = frozenset()
    has_barrier: ClassVar[bool] = True
    #: What ``T`` means for this method, for docs and error messages.
    T_meaning: ClassVar[str] = "integration time"
    #: The old name of :attr:`T_meaning` (kept in step with it).
    strength_meaning: ClassVar[str] = "integration time"
    #: The largest ``T`` the method accepts (None: unbounded).
    max_T: ClassVar[float | None] = None
    #: True when ``trajectory`` gives the method's own path (a rotation in closed form, or a
    #: time-dependent learned field) rather than the autonomous flow of ``vector_field``, which
    #: is then only the path's initial velocity; diagnostics measure that path.
    has_own_path: ClassVar[bool] = False

    act_norm_: float | None
    speed_: float | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "strength_meaning" in cls.__dict__ and "T_meaning" not in cls.__dict__:
            cls.T_meaning = cls.strength_meaning  # a subclass written against the old name
        cls.strength_meaning = cls.T_meaning

    @property
    def name(self) -> str:
        """The method's name for labels and colours (the class name unless composed)."""
        return type(self).__name__

    @property
    def kind(self) -> Literal["one_step", "flow"]:
        """``"one_step"`` for ``a + T v(a)``; ``"flow"`` when the steerer integrates a path."""
        return "one_step"

    # -- fitting ------------------------------------------------------------------------------
    def fit(self: SteererT, pos_acts: object, neg_acts: object) -> SteererT:
        """Fit on positive and negative activations.

        Accepts ``fit(pos_acts, neg_acts)`` with two float tensors ``[..., d_model]``, or
        ``fit(acts, labels)`` with bool/int labels (1 = positive) of shape ``acts.shape[:-1]``.
        Float64 data is fitted in float64; anything else in float32.
        """
        pos, neg = split_fit_args(pos_acts, neg_acts)
        dtype = torch.float64 if pos.dtype == torch.float64 else torch.float32
        pos, neg = pos.to(dtype), neg.to(device=pos.device, dtype=dtype)
        self._fit(pos, neg)
        self.d_model_ = int(pos.shape[-1])
        self.n_pos_ = int(pos.shape[0])
        self.n_neg_ = int(neg.shape[0])
        self.dtype_ = dtype
        norms = torch.cat([pos.norm(dim=-1), neg.norm(dim=-1)])
        self.act_norm_ = float(norms.mean())
        self.speed_ = float(self._velocity(neg).norm(dim=-1).mean())
        _check_fit_finite(self, pos, neg)
        return self

    def _params_changed(self, names: Iterable[str]) -> None:
        """A parameter the fit depends on makes a fitted steerer unfitted (see ``set_params``)."""
        if self.is_fitted and not set(names) <= self._refit_free:
            self._clear_fitted()

    def set_params(self: SteererT, **params: Any) -> SteererT:
        """Set parameters (nested ones as ``<name>__<sub_name>``) and return ``self``.

        On a fitted steerer, changing a parameter the fit depends on drops the fitted state
        (call ``fit`` again); parameters that only change how the fitted field is followed
        (for :class:`~lens_odesteer.steerers.ODESteer`: ``solver``, ``steps``, ``stop``,
        ``normalize``, ``min_grad_norm``) keep it, so no refit is needed.
        """
        return super().set_params(**params)

    @abstractmethod
    def _fit(
        self, pos: Float[Tensor, "n_pos d_model"], neg: Float[Tensor, "n_neg d_model"]
    ) -> None:
        """Set the method's fitted attributes from validated 2-D data in the compute dtype."""

    # -- the maths on flat, validated input ---------------------------------------------------
    @abstractmethod
    def _velocity(self, acts: Float[Tensor, "batch d_model"]) -> Float[Tensor, "batch d_model"]:
        """The field ``v(a)``."""

    @abstractmethod
    def _steer(
        self, acts: Float[Tensor, "batch d_model"], T: float
    ) -> Float[Tensor, "batch d_model"]:
        """Steered activations (unchecked hot path, used by the hooks)."""

    @abstractmethod
    def _trajectory(
        self, acts: Float[Tensor, "batch d_model"], T: float, n_save: int | None
    ) -> Trajectory:
        """Trajectory on flat input, without ``hs``."""

    def _barrier(self, acts: Float[Tensor, "batch d_model"]) -> Float[Tensor, " batch"]:
        raise InvalidParameterError(f"{type(self).__name__} defines no barrier function.")

    # -- public API ---------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return all(hasattr(self, a) for a in self._base_scalars) and super().is_fitted

    def _prepare(self, acts: object, name: str = "acts") -> tuple[Tensor, Tensor]:
        """Validate ``acts`` and return it with its flat compute-dtype view."""
        self._check_is_fitted()
        acts_t = as_float_acts(acts, name)
        check_d_model(acts_t, self.d_model_, name)
        check_finite(acts_t, name)
        device = self._device()
        if device is not None and acts_t.device != device:
            raise InvalidActivationsError(
                f"`{name}` is on {acts_t.device} but this steerer's tensors are on {device}; "
                f"move the steerer once with `steerer.to({str(acts_t.device)!r})`."
            )
        return acts_t, acts_t.reshape(-1, acts_t.shape[-1]).to(self.dtype_)

    def _device(self) -> torch.device | None:
        for name in self._tensor_attrs:
            t = getattr(self, name, None)
            if isinstance(t, Tensor):
                return t.device
        for name in self._component_attrs:
            sub = getattr(self, name, None)
            for tname in getattr(sub, "_tensor_attrs", ()):
                t = getattr(sub, tname, None)
                if isinstance(t, Tensor):
                    return t.device
        return None

    def steer(
        self, acts: Float[Tensor, "*batch d_model"], T: float
    ) -> Float[Tensor, "*batch d_model"]:
        """Return steered activations with the shape, dtype and device of ``acts``.

        Args:
            acts: activations ``[..., d_model]``.
            T: strength; see the class docstring for its meaning (``T = 0`` is the identity).
        """
        T = check_finite_float(T, "T", minimum=0.0)
        acts_t, flat = self._prepare(acts)
        if T == 0.0:
            return acts_t.clone()
        out = self._steer(flat, T)
        cast = out.to(acts_t.dtype)
        if not bool(torch.isfinite(cast).all()):  # never hand non-finite values to a model
            if bool(torch.isfinite(out).all()):
                raise InvalidActivationsError(
                    f"The steered activations exceed the range of {acts_t.dtype} (largest value "
                    f"{float(out.abs().max()):.3g}); lower `T` or steer in float32 or bfloat16."
                )
            raise InvalidActivationsError(
                "Steering produced non-finite values (overflow); lower `T`, or check the "
                "steerer's fitted state (e.g. reload it from a trusted file)."
            )
        return cast.reshape(acts_t.shape)

    def trajectory(
        self, acts: Float[Tensor, "*batch d_model"], T: float, *, n_save: int | None = None
    ) -> Trajectory:
        """Return the path from ``acts`` over ``[0, T]`` in the compute dtype.

        ``ys`` has shape ``[n_saved, *batch, d_model]`` and ``hs`` (the barrier, where defined)
        ``[n_saved, *batch]``. ``n_save`` sets the number of saved points for one-step methods
        (a straight path) and the adaptive solver; fixed-step solvers save every step.
        """
        T = check_finite_float(T, "T", minimum=0.0)
        acts_t, flat = self._prepare(acts)
        traj = self._trajectory(flat, T, n_save)
        lead = acts_t.shape[:-1]
        ys = traj.ys.reshape(traj.ys.shape[0], *lead, self.d_model_)
        hs = None
        if self.has_barrier:
            hs = self._barrier(traj.ys.reshape(-1, self.d_model_)).reshape(ys.shape[:-1])
        stopped = traj.stopped.reshape(lead) if traj.stopped is not None else None
        return Trajectory(
            traj.ts, ys, hs, traj.n_field_evals, traj.n_row_evals, stopped, traj.n_steps_rejected
        )

    def vector_field(
        self, acts: Float[Tensor, "*batch d_model"]
    ) -> Float[Tensor, "*batch d_model"]:
        """Return the velocity ``v(a)`` the method integrates (in the compute dtype)."""
        acts_t, flat = self._prepare(acts)
        return self._velocity(flat).reshape(*acts_t.shape[:-1], self.d_model_)

    def barrier_value(self, acts: Float[Tensor, "*batch d_model"]) -> Float[Tensor, " *batch"]:
        """Return the barrier ``h(a)`` (``h >= 0`` is the desired region) in the compute dtype.

        (Named ``barrier`` before the composable ODESteer, whose ``barrier`` is its parameter.)
        """
        acts_t, flat = self._prepare(acts)
        return self._barrier(flat).reshape(acts_t.shape[:-1])

    def save(self, path: str | Path, *, provenance: dict[str, Any] | None = None) -> Path:
        """Save to a ``.safetensors`` file (tensors + a JSON header); see :func:`load_steerer`."""
        return save_steerer(self, path, provenance=provenance)

    # -- strength -----------------------------------------------------------------------------
    def _norm_scale(self) -> tuple[float, float]:
        self._check_is_fitted()
        if self.act_norm_ is None or self.speed_ is None:
            raise InvalidParameterError(
                f"This {self.name} was loaded from a file that predates recorded norms "
                "(written by lens_odesteer 0.1.0 or earlier), so a norm-relative strength cannot "
                "be converted; pass a native `T` instead, or refit the steerer and save it again."
            )
        if not self.speed_ > 0 or not self.act_norm_ > 0:
            raise InvalidParameterError(
                f"{self.name}'s field vanishes on its negative fit rows (speed_={self.speed_}, "
                f"act_norm_={self.act_norm_}), so no `T` moves them; pass a native `T`."
            )
        return self.act_norm_, self.speed_

    def T_for(self, strength: float) -> float:
        """The native ``T`` for a norm-relative ``strength``: ``strength * act_norm_ / speed_``.

        ``strength`` is the move (the arc length of a flow, the step of a one-step method) as a
        fraction of the typical activation norm at the hook, so it means the same for every
        method: ``0.1`` moves a typical negative activation by about a tenth of its norm.

        Raises:
            InvalidParameterError: ``strength`` negative or not finite, a ``T`` above
                ``max_T`` (the message names the largest strength), or a steerer loaded from
                a file that predates the recorded norms.

        Example:
            >>> import torch, lens_odesteer as lo
            >>> caa = lo.CAA().fit(torch.ones(4, 3) * 2, torch.ones(4, 3))
            >>> round(caa.act_norm_, 4), round(caa.speed_, 4)  # mean |a|; |mu+ - mu-|
            (2.5981, 1.7321)
            >>> T = caa.T_for(0.5)  # 0.5 * 2.5981 / 1.7321
            >>> round(T, 4), round(caa.strength_for(T), 4)
            (0.75, 0.5)
        """
        strength = check_finite_float(strength, "strength", minimum=0.0)
        act_norm, speed = self._norm_scale()
        T = strength * act_norm / speed
        if self.max_T is not None and self.max_T < T:
            largest = self.max_T * speed / act_norm
            raise InvalidParameterError(
                f"strength={strength:g} needs T={T:.4g}, but {self.name} accepts T <= "
                f"{self.max_T:g} ({self.T_meaning}); the largest strength it can reach is "
                f"{largest:.4g}."
            )
        return T

    def strength_for(self, T: float) -> float:
        """The norm-relative strength of a native ``T`` (the inverse of :meth:`T_for`)."""
        T = check_finite_float(T, "T", minimum=0.0)
        if self.max_T is not None and self.max_T < T:
            raise InvalidParameterError(
                f"T={T:g} is above the largest T {self.name} accepts ({self.max_T:g}, "
                f"{self.T_meaning})."
            )
        act_norm, speed = self._norm_scale()
        return T * speed / act_norm


class _OneStepSteerer(AbstractSteerer):
    """A method that takes one step ``a + T v(a)``; its path is the straight segment."""

    def _steer(
        self, acts: Float[Tensor, "batch d_model"], T: float
    ) -> Float[Tensor, "batch d_model"]:
        return acts + T * self._velocity(acts)

    def _trajectory(
        self, acts: Float[Tensor, "batch d_model"], T: float, n_save: int | None
    ) -> Trajectory:
        return straight_trajectory(acts, self._steer(acts, T), T, n_save)


def straight_trajectory(
    acts: Float[Tensor, "batch d_model"],
    end: Float[Tensor, "batch d_model"],
    T: float,
    n_save: int | None,
) -> Trajectory:
    """The straight path of a one-step method, saved at ``n_save`` (default 2) equal times."""
    n = 2 if n_save is None else n_save
    if n < 2:
        raise InvalidParameterError(f"`n_save` must be >= 2; got {n}.")
    ts = torch.linspace(0.0, T, n, dtype=torch.float64)
    frac = torch.linspace(0.0, 1.0, n, dtype=acts.dtype, device=acts.device)
    ys = acts.unsqueeze(0) + frac.view(-1, 1, 1) * (end - acts).unsqueeze(0)
    ys[0] = acts
    ys[-1] = end
    return Trajectory(ts, ys, None, 1, int(acts.shape[0]))


def _check_fit_finite(steerer: AbstractSteerer, pos: Tensor, neg: Tensor) -> None:
    """Refuse a fit whose state overflowed (it could be neither used nor saved)."""
    bad = steerer._nonfinite_fitted()
    if bad is None:
        return
    largest = float(torch.cat([pos, neg]).abs().max())
    steerer._clear_fitted()
    raise InvalidActivationsError(
        f"Fitting {steerer.name} overflowed {pos.dtype}: its fitted `{bad}` holds NaN or inf "
        f"(the largest |activation| is {largest:.3g}). Rescale the activations, or fit on "
        "float64 tensors."
    )
