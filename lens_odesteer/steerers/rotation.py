r"""Norm-preserving rotations: Angular Steering and Spherical Steering.

Both rotate an activation instead of adding to it, so ``|steer(a, T)| = |a|`` (to float
rounding) for every ``T``. Their paths are arcs given in closed form, so they are ``"flow"``
steerers with their own path (``has_own_path``): ``trajectory`` samples the arc, and
``vector_field`` is its initial velocity ``d steer(a, T) / dT`` at ``T = 0``, which is tangent to
the norm sphere. Each rotation stops on its target direction, so a large ``T`` saturates instead
of turning past it.

Householder pseudo-rotation, the third rotation method, lives in
:mod:`lens_odesteer.steerers.householder`.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from lens_odesteer._validation import check_finite_float
from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.flows.trajectory import Trajectory
from lens_odesteer.steerers.base import AbstractSteerer
from lens_odesteer.steerers.linear import _top_right_singular_vector

__all__ = ["AngularSteering", "SphericalSteering"]

#: Saved points of a closed-form path when ``n_save`` is not given.
DEFAULT_N_SAVE = 11
#: Rows closer than this (radians) to their target are left as they are.
_MIN_ANGLE = 1e-6


class _ClosedPathSteerer(AbstractSteerer):
    """A steerer whose path ``t -> steer(a, t)`` is known in closed form for every ``t``."""

    has_own_path: ClassVar[bool] = True

    @property
    def kind(self) -> Literal["one_step", "flow"]:
        """``"flow"``: the path is an arc, not the straight step ``a + T v(a)``."""
        return "flow"

    def _trajectory(
        self, acts: Float[Tensor, "batch d_model"], T: float, n_save: int | None
    ) -> Trajectory:
        n = DEFAULT_N_SAVE if n_save is None else n_save
        if isinstance(n, bool) or not isinstance(n, int) or n < 2:
            raise InvalidParameterError(f"`n_save` must be an int >= 2; got {n_save!r}.")
        ts = torch.linspace(0.0, T, n, dtype=torch.float64)
        ys = torch.stack([acts if float(t) == 0.0 else self._steer(acts, float(t)) for t in ts])
        return Trajectory(ts, ys, None, n - 1, (n - 1) * int(acts.shape[0]))


def rotate_toward(
    acts: Float[Tensor, "batch d_model"],
    tangent: Float[Tensor, "batch d_model"],
    angle: Float[Tensor, " batch"],
) -> Float[Tensor, "batch d_model"]:
    r"""Rotate each row of ``acts`` by ``angle`` along the great circle toward ``tangent``.

    ``tangent`` holds unit vectors orthogonal to the rows. The result is
    ``|a| (cos(angle) a / |a| + sin(angle) tangent)``, rescaled so that its norm is ``|a|`` to the
    last bit the dtype allows.
    """
    norm = acts.norm(dim=-1, keepdim=True)
    unit = acts / norm.clamp_min(torch.finfo(acts.dtype).tiny)
    ang = angle.unsqueeze(-1)
    out = torch.cos(ang) * unit + torch.sin(ang) * tangent
    return out * (norm / out.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(acts.dtype).tiny))


def tangent_toward(
    acts: Float[Tensor, "batch d_model"], target: Float[Tensor, " d_model"]
) -> tuple[Float[Tensor, "batch d_model"], Float[Tensor, " batch"], Bool[Tensor, " batch"]]:
    """Unit tangent at ``a / |a|`` toward the unit vector ``target``, the angle between them and
    whether the tangent is defined (the row is not parallel or antiparallel to ``target``)."""
    norm = acts.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(acts.dtype).tiny)
    unit = acts / norm
    cos = (unit @ target).clamp(-1.0, 1.0)
    perp = target - cos.unsqueeze(-1) * unit
    sin = perp.norm(dim=-1)
    angle = torch.atan2(sin, cos)
    ok = (angle > _MIN_ANGLE) & (angle < math.pi - _MIN_ANGLE)
    tangent = perp / sin.clamp_min(torch.finfo(acts.dtype).tiny).unsqueeze(-1)
    return tangent, angle, ok


class AngularSteering(_ClosedPathSteerer):
    r"""Angular Steering: rotate the activation's component in a fixed plane toward the target.

    The plane is spanned by the target direction ``b_1`` and a second axis ``b_2``
    (Vu & Nguyen, NeurIPS 2025). ``b_1`` is the paper's difference-in-means direction on
    per-row normalised activations, ``mean(a_+ / |a_+|)`` and ``mean(a_- / |a_-|)`` each rescaled to
    unit norm before the difference, pointing to the positive class. The paper takes ``b_2`` from
    the top principal component of the per-layer candidate directions; a steerer fitted at one
    hook sees one layer, so ``b_2`` here is the top principal component of the (centred,
    normalised) fit activations after ``b_1`` is projected out.

    Writing the in-plane part of ``a`` as ``r (cos phi b_1 + sin phi b_2)``, the paper's operator
    sets every in-plane angle to a chosen ``theta`` (:meth:`rotate_to`):
    ``a' = a - P a + |P a| (cos theta b_1 + sin theta b_2)``. So that ``T = 0`` is the identity,
    :meth:`steer` instead turns ``phi`` toward the target by ``T`` radians and stops on it:
    ``phi' = sign(phi) max(|phi| - T, 0)``; ``T = pi`` gives the paper's operator at
    ``theta = 0`` for every row. The path is the flow of the field
    ``v(a) = sign(phi) (x_2 b_1 - x_1 b_2)`` (``x_i = b_i . a``), a unit angular speed. Only
    ``P a`` changes, so ``|a|`` and the part of ``a`` outside the plane are kept.

    Activation addition and directional ablation are the paper's special cases: adding
    ``alpha b_1`` changes only ``P a``, so it is :meth:`rotate_to` at the angle of
    ``P a + alpha b_1`` followed by rescaling the in-plane part; ablating ``b_1`` is
    :meth:`rotate_to` at ``+-90`` degrees (the sign of ``x_2``) followed by rescaling the in-plane
    part to ``|x_2|``.

    Barrier: ``h(a) = b_1 . a - b_1 . (mu_+ + mu_-) / 2``, which the rotation raises.

    Args:
        adaptive: the paper's adaptive variant: rotate only rows whose component along the
            target is negative (``b_1 . a < 0``); the paper's default is to rotate every row.

    Attributes:
        basis_ ``[2, d_model]``: ``b_1`` and ``b_2`` (orthonormal); offset_: the constant of ``h``.

    Example:
        >>> import torch
        >>> from lens_odesteer.steerers import AngularSteering
        >>> g = torch.Generator().manual_seed(0)
        >>> pos, neg = torch.randn(40, 8, generator=g) + 1, torch.randn(40, 8, generator=g) - 1
        >>> ang = AngularSteering().fit(pos, neg)
        >>> out = ang.steer(neg, T=0.5)
        >>> torch.allclose(out.norm(dim=-1), neg.norm(dim=-1))
        True
        >>> bool((ang.barrier_value(out) >= ang.barrier_value(neg)).all())
        True
    """

    _tensor_attrs = ("basis_",)
    _scalar_attrs = (*AbstractSteerer._base_scalars, "offset_")
    T_meaning: ClassVar[str] = (
        "angle (radians) by which the in-plane component turns toward the target direction; it "
        "stops on the target, so T = pi is the paper's Angular Steering at 0 degrees"
    )
    max_T: ClassVar[float | None] = math.pi

    basis_: Tensor
    offset_: float

    def __init__(self, adaptive: bool = False) -> None:
        self.adaptive = adaptive

    def _fit(
        self, pos: Float[Tensor, "n_pos d_model"], neg: Float[Tensor, "n_neg d_model"]
    ) -> None:
        if not isinstance(self.adaptive, bool):
            raise InvalidParameterError(f"`adaptive` must be True or False; got {self.adaptive!r}.")
        d = pos.shape[-1]
        if d < 2:
            raise InvalidParameterError(
                f"AngularSteering rotates in a plane, so it needs d_model >= 2; got {d}."
            )
        p64, n64 = pos.to(torch.float64), neg.to(torch.float64)
        unit_p = p64 / p64.norm(dim=-1, keepdim=True).clamp_min(1e-300)
        unit_n = n64 / n64.norm(dim=-1, keepdim=True).clamp_min(1e-300)
        mp, mn = unit_p.mean(0), unit_n.mean(0)
        diff = mp / mp.norm().clamp_min(1e-300) - mn / mn.norm().clamp_min(1e-300)
        if float(diff.norm()) == 0.0:
            diff = p64.mean(0) - n64.mean(0)
        if float(diff.norm()) == 0.0:
            raise InvalidParameterError(
                "The positive and negative activations have the same mean direction, so "
                "AngularSteering has no target direction; check the labels."
            )
        b1 = diff / diff.norm()
        units = torch.cat([unit_p, unit_n])
        resid = units - units.mean(0)
        resid = resid - (resid @ b1).unsqueeze(-1) * b1
        b2 = _top_right_singular_vector(resid)
        b2 = b2 - (b2 @ b1) * b1
        if float(b2.norm()) < 1e-6:  # the data leave no variance outside b1: any orthogonal axis
            e = torch.zeros_like(b1)
            e[int(b1.abs().argmin())] = 1.0
            b2 = e - (e @ b1) * b1
        b2 = b2 / b2.norm()
        self.basis_ = torch.stack([b1, b2]).to(pos.dtype)
        self.offset_ = float(-(b1 @ (p64.mean(0) + n64.mean(0)) / 2))

    def _coords(self, acts: Tensor) -> tuple[Tensor, Tensor]:
        """In-plane coordinates ``x_1 = b_1 . a`` and ``x_2 = b_2 . a``."""
        xy = acts @ self.basis_.mT
        return xy[:, 0], xy[:, 1]

    def _with_angle(self, acts: Tensor, x1: Tensor, x2: Tensor, angle: Tensor) -> Tensor:
        """``a`` with its in-plane part set to the same length at ``angle`` from ``b_1``."""
        r = torch.hypot(x1, x2)
        d1 = r * torch.cos(angle) - x1
        d2 = r * torch.sin(angle) - x2
        out = acts + d1.unsqueeze(-1) * self.basis_[0] + d2.unsqueeze(-1) * self.basis_[1]
        norm = acts.norm(dim=-1, keepdim=True)
        return out * (norm / out.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(acts.dtype).tiny))

    def _mask(self, x1: Tensor) -> Tensor:
        if self.adaptive:
            return x1 < 0
        return torch.ones_like(x1, dtype=torch.bool)

    def _steer(
        self, acts: Float[Tensor, "batch d_model"], T: float
    ) -> Float[Tensor, "batch d_model"]:
        x1, x2 = self._coords(acts)
        phi = torch.atan2(x2, x1)
        new = torch.sign(phi) * (phi.abs() - T).clamp_min(0.0)
        move = self._mask(x1) & (phi.abs() > _MIN_ANGLE)
        return torch.where(move.unsqueeze(-1), self._with_angle(acts, x1, x2, new), acts)

    def _velocity(self, acts: Float[Tensor, "batch d_model"]) -> Float[Tensor, "batch d_model"]:
        x1, x2 = self._coords(acts)
        phi = torch.atan2(x2, x1)
        move = (self._mask(x1) & (phi.abs() > _MIN_ANGLE)).to(acts.dtype)
        s = torch.sign(phi) * move
        return (s * x2).unsqueeze(-1) * self.basis_[0] - (s * x1).unsqueeze(-1) * self.basis_[1]

    def _barrier(self, acts: Float[Tensor, "batch d_model"]) -> Float[Tensor, " batch"]:
        return acts @ self.basis_[0] + self.offset_

    def rotate_to(
        self, acts: Float[Tensor, "*batch d_model"], angle: float
    ) -> Float[Tensor, "*batch d_model"]:
        """The paper's operator: set every in-plane angle to ``angle`` (radians from ``b_1``).

        ``a - P a + |P a| (cos(angle) b_1 + sin(angle) b_2)``; with ``adaptive=True`` only rows
        with ``b_1 . a < 0`` change. Multiply degrees by ``pi / 180``.

        Example:
            >>> import torch
            >>> from lens_odesteer.steerers import AngularSteering
            >>> g = torch.Generator().manual_seed(1)
            >>> x = torch.randn(30, 6, generator=g)
            >>> ang = AngularSteering().fit(x + 1, x - 1)
            >>> out = ang.rotate_to(x, torch.pi / 2)  # 90 degrees: nothing left along b_1
            >>> float((out @ ang.basis_[0]).abs().max()) < 1e-5
            True
        """
        value = check_finite_float(angle, "angle")
        acts_t, flat = self._prepare(acts)
        x1, x2 = self._coords(flat)
        target = torch.full_like(x1, value)
        out = torch.where(
            self._mask(x1).unsqueeze(-1), self._with_angle(flat, x1, x2, target), flat
        )
        return out.to(acts_t.dtype).reshape(acts_t.shape)


class SphericalSteering(_ClosedPathSteerer):
    r"""Spherical Steering: a gated geodesic rotation toward the target direction.

    Following You, Deng & Chen (ICML 2026): the target prototype is
    ``mu_T = (mu_+ - mu_-) / |mu_+ - mu_-|`` and the opposite prototype ``mu_H = -mu_T`` (the
    contrastive, antipodal prototypes of the reference). A von Mises-Fisher gate with
    concentration ``kappa`` compares ``p_T, p_H = softmax(kappa cos(a, mu_T), kappa cos(a, mu_H))``;
    with ``delta = p_H - p_T = -tanh(kappa cos(a, mu_T))``, rows with ``delta > beta`` are steered
    with gate ``g = (delta - beta) / (1 - beta)``, the others are left alone. A steered row turns
    on its norm sphere along the great circle toward ``mu_T``, from the angle ``theta`` to
    ``(1 - t) theta`` with ``t = min(T g, 1)``: ``T`` is the paper's ``alpha``, the fraction of the
    angle closed at a fully open gate (``T = 1`` lands such rows on ``mu_T``; a larger ``T``
    saturates more rows there). Steering adapts per activation: rows already on the positive side
    barely move. Defaults are the reference's TruthfulQA settings for Llama-3.1-8B-Instruct
    (``kappa = 20``, ``beta = -0.15``).

    Barrier: the gate's log-odds ``h(a) = log(p_T / p_H) = 2 kappa cos(a, mu_T)``.

    Args:
        kappa: vMF concentration of the gate (> 0).
        beta: gate threshold on ``p_H - p_T``, in ``[-1, 1)``.

    Attributes:
        target_ ``[d_model]``: ``mu_T`` (unit).

    Example:
        >>> import torch
        >>> from lens_odesteer.steerers import SphericalSteering
        >>> g = torch.Generator().manual_seed(0)
        >>> pos, neg = torch.randn(40, 8, generator=g) + 1, torch.randn(40, 8, generator=g) - 1
        >>> sph = SphericalSteering().fit(pos, neg)
        >>> out = sph.steer(neg, T=0.5)
        >>> torch.allclose(out.norm(dim=-1), neg.norm(dim=-1))
        True
        >>> torch.equal(sph.steer(pos, 0.5)[sph.gate(pos) == 0], pos[sph.gate(pos) == 0])
        True
    """

    _tensor_attrs = ("target_",)
    _scalar_attrs = AbstractSteerer._base_scalars
    T_meaning: ClassVar[str] = (
        "fraction alpha of the angle to the target direction closed at a fully open gate "
        "(min(alpha * gate, 1) per row; 1 lands a fully gated row on the target)"
    )

    target_: Tensor

    def __init__(self, kappa: float = 20.0, beta: float = -0.15) -> None:
        self.kappa = kappa
        self.beta = beta

    def _check_params(self) -> tuple[float, float]:
        kappa = check_finite_float(self.kappa, "kappa", minimum=0.0, strict=True)
        beta = check_finite_float(self.beta, "beta", minimum=-1.0)
        if beta >= 1.0:
            raise InvalidParameterError(f"`beta` must be in [-1, 1); got {beta}.")
        return kappa, beta

    def _fit(
        self, pos: Float[Tensor, "n_pos d_model"], neg: Float[Tensor, "n_neg d_model"]
    ) -> None:
        self._check_params()
        diff = pos.to(torch.float64).mean(0) - neg.to(torch.float64).mean(0)
        if float(diff.norm()) == 0.0:
            raise InvalidParameterError(
                "The positive and negative means coincide, so SphericalSteering has no target "
                "direction; check the labels."
            )
        self.target_ = (diff / diff.norm()).to(pos.dtype)

    def _cos(self, acts: Tensor) -> Tensor:
        norm = acts.norm(dim=-1).clamp_min(torch.finfo(acts.dtype).tiny)
        return ((acts @ self.target_) / norm).clamp(-1.0, 1.0)

    def _gate(self, acts: Tensor) -> Tensor:
        kappa, beta = self._check_params()
        delta = -torch.tanh(kappa * self._cos(acts))
        return ((delta - beta) / (1.0 - beta)).clamp_min(0.0)

    def gate(self, acts: Float[Tensor, "*batch d_model"]) -> Float[Tensor, " *batch"]:
        """The confidence gate ``g(a)`` in ``[0, 1]`` (0: the row is not steered)."""
        acts_t, flat = self._prepare(acts)
        return self._gate(flat).reshape(acts_t.shape[:-1])

    def _steer(
        self, acts: Float[Tensor, "batch d_model"], T: float
    ) -> Float[Tensor, "batch d_model"]:
        tangent, theta, ok = tangent_toward(acts, self.target_)
        frac = (T * self._gate(acts)).clamp(max=1.0)
        move = ok & (frac > 0)
        return torch.where(move.unsqueeze(-1), rotate_toward(acts, tangent, frac * theta), acts)

    def _velocity(self, acts: Float[Tensor, "batch d_model"]) -> Float[Tensor, "batch d_model"]:
        tangent, theta, ok = tangent_toward(acts, self.target_)
        speed = self._gate(acts) * theta * acts.norm(dim=-1) * ok.to(acts.dtype)
        return speed.unsqueeze(-1) * tangent

    def _barrier(self, acts: Float[Tensor, "batch d_model"]) -> Float[Tensor, " batch"]:
        kappa, _ = self._check_params()
        return 2.0 * kappa * self._cos(acts)
