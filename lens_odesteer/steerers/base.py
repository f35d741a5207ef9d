"""The steerer interface shared by ODESteer and every baseline.

A steerer is a fitted estimator mapping activations to activations::

    steerer.fit(pos_acts, neg_acts)    # or fit(acts, labels); returns self
    steerer.steer(acts, T)             # same shape, dtype and device as acts
    steerer.trajectory(acts, T)        # Trajectory(ts, ys, hs, ...), time on the leading axis
    steerer.vector_field(acts)         # the velocity v(a) whose flow the steerer follows
    steerer.barrier(acts)              # h(a), where the method defines one

All maths runs in the steerer's compute dtype (float32 unless it was fitted on float64 data or
moved with ``.to(dtype=...)``); inputs are cast in and results cast back to the input dtype.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar, TypeVar

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

SteererT = TypeVar("SteererT", bound="AbstractSteerer")


class AbstractSteerer(Component):
    """Base class of every steerer; see the module docstring for the interface.

    Attributes (after ``fit``):
        d_model_: activation width.
        n_pos_, n_neg_: number of positive and negative fit activations.
        dtype_: compute dtype.
    """

    _base_scalars: ClassVar[tuple[str, ...]] = ("d_model_", "n_pos_", "n_neg_", "dtype_")
    has_barrier: ClassVar[bool] = True
    #: What ``T`` means for this method, for docs and error messages.
    strength_meaning: ClassVar[str] = "integration time"

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
        return self

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

    def barrier(self, acts: Float[Tensor, "*batch d_model"]) -> Float[Tensor, " *batch"]:
        """Return the barrier ``h(a)`` (``h >= 0`` is the desired region) in the compute dtype."""
        acts_t, flat = self._prepare(acts)
        return self._barrier(flat).reshape(acts_t.shape[:-1])

    def save(self, path: str | Path, *, provenance: dict[str, Any] | None = None) -> Path:
        """Save to a ``.safetensors`` file (tensors + a JSON header); see :func:`load_steerer`."""
        from lens_odesteer.io import save_steerer

        return save_steerer(self, path, provenance=provenance)


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
