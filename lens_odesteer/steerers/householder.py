r"""Householder pseudo-rotation (HPR): reflect about a probe's hyperplane, rotate toward it.

Pham & Nguyen (EMNLP 2024). A linear probe through the origin separates the classes; a row the
probe calls negative is reflected about the probe's hyperplane (a Householder reflection, which
keeps the norm) and the activation is rotated toward its reflection by an angle a small network
predicts from the activation. The result keeps ``|a|`` exactly.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
from jaxtyping import Float
from torch import Tensor

from lens_odesteer._validation import (
    check_choice,
    check_finite_float,
    check_positive_int,
    check_seed,
)
from lens_odesteer.barriers.logistic import fit_logistic
from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.steerers.base import AbstractSteerer
from lens_odesteer.steerers.rotation import _ClosedPathSteerer, rotate_toward, tangent_toward

__all__ = ["HPR"]

#: Rows of the nearest-positive search compared at once.
_CHUNK = 1024


class HPR(_ClosedPathSteerer):
    r"""Householder pseudo-rotation: a norm-preserving rotation toward the probe's positive side.

    Fitting (Pham & Nguyen, 2024):

    1. a logistic probe without intercept, ``p(+ | a) = sigmoid(w . a)``, so its hyperplane
       ``w . a = 0`` passes through the origin and the Householder reflection
       ``H a = a - 2 (w . a) w / |w|^2`` keeps the norm;
    2. an angle predictor ``theta(a) = pi sigmoid(f(a))`` (``f`` a one-hidden-layer GELU network on
       standardised activations), regressed with the squared error on the angle between each
       negative row and its positive counterpart.

    Steering: a row with ``w . a < 0`` turns by ``T theta(a)`` in the plane of ``a`` and ``H a``,
    toward ``H a``: ``a' = |a| (cos(phi) a / |a| + sin(phi) u)`` with ``u`` the unit tangent toward
    ``H a`` (which is the tangent toward ``w``); other rows are unchanged. ``T = 1`` is HPR as
    published (the reference's angle scale ``alpha = 1``). The plane of ``a`` and ``H a`` contains
    ``w``, and the rotation stops on ``w / |w|``, where the probe's logit peaks, so a large ``T``
    saturates instead of turning past it (at ``T <= 1`` this only matters for a predicted angle
    beyond the angle to ``w``, over 90 degrees for a negative row).

    The reference pairs each negative with the positive answer to the same prompt. ``fit`` sees
    two sets of rows, so ``pairing="nearest"`` (default) takes as counterpart the positive row at
    the smallest angle, and ``pairing="index"`` pairs ``pos[i]`` with ``neg[i]`` for paired data.
    The reference's predictor halves its width layer by layer from ``d_model``; a single hidden
    layer of ``hidden`` units (full-batch L-BFGS, seeded) keeps fitting to seconds on a CPU.

    Barrier: the probe's logit ``h(a) = w . a``, which the rotation raises.

    Args:
        C: inverse L2 strength of the probe.
        hidden: width of the angle predictor's hidden layer.
        weight_decay: L2 penalty on the predictor's weights.
        max_iter: L-BFGS iterations for the predictor.
        pairing: ``"nearest"`` or ``"index"`` (see above).
        seed: seed of the predictor's initial weights.

    Attributes:
        coef_ ``[d_model]``: the probe's ``w``.
        w1_ ``[hidden, d_model]``, b1_ ``[hidden]``, w2_ ``[hidden]``, b2_: the angle predictor.
        mean_, scale_ ``[d_model]``: its input standardisation.
        angle_rmse_: root-mean-square error (radians) of the predictor on its training rows.

    Example:
        >>> import torch
        >>> from lens_odesteer.steerers import HPR
        >>> g = torch.Generator().manual_seed(0)
        >>> pos, neg = torch.randn(40, 8, generator=g) + 1, torch.randn(40, 8, generator=g) - 1
        >>> hpr = HPR(hidden=8).fit(pos, neg)
        >>> out = hpr.steer(neg, T=1.0)
        >>> torch.allclose(out.norm(dim=-1), neg.norm(dim=-1))
        True
        >>> float((hpr.barrier_value(out) - hpr.barrier_value(neg)).min()) >= 0
        True
    """

    _tensor_attrs = ("coef_", "w1_", "b1_", "w2_", "mean_", "scale_")
    _scalar_attrs = (*AbstractSteerer._base_scalars, "b2_", "angle_rmse_")
    T_meaning: ClassVar[str] = (
        "multiplier of the predicted rotation angle (1 is HPR as published); rows turn toward "
        "the probe normal and stop on it"
    )

    coef_: Tensor
    w1_: Tensor
    b1_: Tensor
    w2_: Tensor
    mean_: Tensor
    scale_: Tensor
    b2_: float
    angle_rmse_: float

    def __init__(
        self,
        C: float = 1.0,
        hidden: int = 64,
        weight_decay: float = 1e-4,
        max_iter: int = 200,
        pairing: Literal["nearest", "index"] = "nearest",
        seed: int = 0,
    ) -> None:
        self.C = C
        self.hidden = hidden
        self.weight_decay = weight_decay
        self.max_iter = max_iter
        self.pairing = pairing
        self.seed = seed

    # -- fitting ------------------------------------------------------------------------------
    def _fit(
        self, pos: Float[Tensor, "n_pos d_model"], neg: Float[Tensor, "n_neg d_model"]
    ) -> None:
        check_positive_int(self.hidden, "hidden")
        check_positive_int(self.max_iter, "max_iter")
        check_seed(self.seed)
        wd = check_finite_float(self.weight_decay, "weight_decay", minimum=0.0)
        pairing = check_choice(self.pairing, "pairing", ("nearest", "index"))
        acts = torch.cat([pos, neg])
        labels = torch.zeros(acts.shape[0], dtype=torch.bool, device=acts.device)
        labels[: pos.shape[0]] = True
        probe = fit_logistic(acts, labels, C=self.C, fit_intercept=False)
        if float(probe.coef.norm()) == 0.0:
            raise InvalidParameterError(
                "HPR's probe came out zero (the classes are not separable through the origin); "
                "check the labels or lower the regularisation (raise `C`)."
            )
        self.coef_ = probe.coef
        targets = _pair_angles(pos, neg, pairing)
        self._fit_predictor(acts, neg, targets, wd)

    def _fit_predictor(self, acts: Tensor, neg: Tensor, targets: Tensor, wd: float) -> None:
        n, d = acts.shape
        mean = acts.mean(0)
        scale = acts.std(0, correction=0).clamp_min(1e-6) if n > 1 else acts.new_ones(d)
        gen = torch.Generator().manual_seed(self.seed)
        w1 = torch.randn(self.hidden, d, generator=gen, dtype=torch.float64) / math.sqrt(d)
        w2 = torch.randn(self.hidden, generator=gen, dtype=torch.float64) / math.sqrt(self.hidden)
        # start the output at the mean target angle, so the fit refines around it
        start = float(torch.logit((targets.mean() / math.pi).clamp(1e-4, 1 - 1e-4)))
        # normal tensors (not inference tensors) even when fit runs under inference_mode
        with torch.inference_mode(False), torch.enable_grad():
            x = ((neg - mean) / scale).clone()
            y = targets.clone()
            params = [
                w1.to(acts).requires_grad_(),
                torch.zeros(self.hidden, dtype=acts.dtype, device=acts.device).requires_grad_(),
                (w2 * 0.1).to(acts).requires_grad_(),
                torch.full((), start, dtype=acts.dtype, device=acts.device).requires_grad_(),
            ]
            opt = torch.optim.LBFGS(
                params,
                max_iter=self.max_iter,
                tolerance_grad=1e-7,
                tolerance_change=0.0,
                line_search_fn="strong_wolfe",
            )

            def closure() -> Tensor:
                opt.zero_grad()
                a1, c1, a2, c2 = params
                pred = math.pi * torch.sigmoid(torch.nn.functional.gelu(x @ a1.T + c1) @ a2 + c2)
                penalty = 0.5 * wd * ((a1 * a1).sum() + (a2 * a2).sum())
                loss = ((pred - y) ** 2).mean() + penalty
                loss.backward()
                return loss

            opt.step(closure)
        final = [p.detach().clone() for p in params]
        if not all(bool(torch.isfinite(p).all()) for p in final):
            raise FloatingPointError(
                "HPR's angle predictor diverged (non-finite weights); raise `weight_decay`."
            )
        self.w1_, self.b1_, self.w2_ = final[0], final[1], final[2]
        self.b2_ = float(final[3])
        self.mean_, self.scale_ = mean, scale
        self.angle_rmse_ = float(((self._angle(neg) - targets) ** 2).mean().sqrt())

    # -- the maths ----------------------------------------------------------------------------
    def _angle(self, acts: Tensor) -> Tensor:
        x = (acts - self.mean_) / self.scale_
        z = torch.nn.functional.gelu(x @ self.w1_.mT + self.b1_) @ self.w2_ + self.b2_
        return math.pi * torch.sigmoid(z)

    def predicted_angle(self, acts: Float[Tensor, "*batch d_model"]) -> Float[Tensor, " *batch"]:
        """The angle predictor's output ``theta(a)`` in radians (``(0, pi)``)."""
        acts_t, flat = self._prepare(acts)
        return self._angle(flat).reshape(acts_t.shape[:-1])

    def _plan(self, acts: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(tangent toward w, angle to w, predicted angle, rows to rotate)``."""
        normal = self.coef_ / self.coef_.norm()
        tangent, to_normal, ok = tangent_toward(acts, normal)
        move = ok & (acts @ self.coef_ < 0)
        return tangent, to_normal, self._angle(acts), move

    def _steer(
        self, acts: Float[Tensor, "batch d_model"], T: float
    ) -> Float[Tensor, "batch d_model"]:
        tangent, to_normal, theta, move = self._plan(acts)
        angle = torch.minimum(T * theta, to_normal)
        return torch.where(move.unsqueeze(-1), rotate_toward(acts, tangent, angle), acts)

    def _velocity(self, acts: Float[Tensor, "batch d_model"]) -> Float[Tensor, "batch d_model"]:
        tangent, _, theta, move = self._plan(acts)
        speed = theta * acts.norm(dim=-1) * move.to(acts.dtype)
        return speed.unsqueeze(-1) * tangent

    def _barrier(self, acts: Float[Tensor, "batch d_model"]) -> Float[Tensor, " batch"]:
        return acts @ self.coef_


def _pair_angles(pos: Tensor, neg: Tensor, pairing: str) -> Tensor:
    """Angle (radians) between each negative row and its positive counterpart."""
    unit_p = pos / pos.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(pos.dtype).tiny)
    unit_n = neg / neg.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(neg.dtype).tiny)
    if pairing == "index":
        if pos.shape[0] != neg.shape[0]:
            raise InvalidParameterError(
                f"HPR(pairing='index') needs as many positive as negative rows; got "
                f"{pos.shape[0]} and {neg.shape[0]}. Use pairing='nearest' or pass paired data."
            )
        cos = (unit_p * unit_n).sum(-1)
    else:
        cos = torch.cat(
            [(unit_n[i : i + _CHUNK] @ unit_p.T).amax(-1) for i in range(0, len(neg), _CHUNK)]
        )
    return torch.arccos(cos.clamp(-1.0, 1.0))
