"""Affine transport baselines: Linear-AcT (per-dimension OT) and MiMiC (mean+covariance OT).

Both learn an affine map ``m(a)`` from the negative to the positive distribution; ``T``
interpolates ``a + T (m(a) - a)`` from the identity (0) to the full map (1). Their field
``m(a) - a`` is the gradient of a quadratic barrier, so they sit in the same unified view.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from jaxtyping import Float
from torch import Tensor

from lens_odesteer._validation import check_finite_float
from lens_odesteer.barriers.kernel import LinearBarrier
from lens_odesteer.steerers.base import AbstractSteerer, _OneStepSteerer


class LinAcT(_OneStepSteerer):
    r"""Linear activation transport: a per-dimension affine 1-D optimal-transport map.

    For each coordinate ``i`` the monotone (1-D OT) map from the negative to the positive marginal
    is estimated by matching quantiles and fitted by least squares as ``a_i -> w_i a_i + b_i``
    (Rodriguez et al., 2024). Steering is ``a + T ((w - 1) a + b)``: ``T = 0`` is the identity,
    ``T = 1`` the full map. Barrier: ``h(a) = sum_i (w_i - 1) a_i^2 / 2 + b . a``.

    Args:
        n_quantiles: quantile levels matched per coordinate (default: ``max(n_pos, n_neg)``).

    Attributes:
        scale_ ``[d_model]``: ``w``; shift_ ``[d_model]``: ``b``.

    Example:
        >>> import torch, lens_odesteer as lo
        >>> act = lo.LinAcT().fit(torch.randn(200, 3) * 2 + 1, torch.randn(200, 3))
        >>> act.scale_.shape
        torch.Size([3])
    """

    _tensor_attrs = ("scale_", "shift_")
    _scalar_attrs = AbstractSteerer._base_scalars
    T_meaning: ClassVar[str] = "interpolation from identity (0) to the full map (1)"
    max_T: ClassVar[float | None] = 1.0

    def __init__(self, n_quantiles: int | None = None) -> None:
        self.n_quantiles = n_quantiles

    def _fit(
        self, pos: Float[Tensor, "n_pos d_model"], neg: Float[Tensor, "n_neg d_model"]
    ) -> None:
        m = self.n_quantiles or max(pos.shape[0], neg.shape[0])
        levels = (torch.arange(m, dtype=pos.dtype, device=pos.device) + 0.5) / m
        q_pos = _quantiles(pos, levels)
        q_neg = _quantiles(neg, levels)
        mean_n, mean_p = q_neg.mean(0), q_pos.mean(0)
        cov = ((q_neg - mean_n) * (q_pos - mean_p)).mean(0)
        var = ((q_neg - mean_n) ** 2).mean(0)
        degenerate = var <= 1e-12 * (1 + mean_n.abs() ** 2)
        scale = torch.where(degenerate, torch.ones_like(var), cov / var.clamp_min(1e-30))
        self.scale_ = scale
        self.shift_ = mean_p - scale * mean_n

    def _velocity(self, acts: Float[Tensor, "batch d_model"]) -> Float[Tensor, "batch d_model"]:
        return (self.scale_ - 1) * acts + self.shift_

    def _barrier(self, acts: Float[Tensor, "batch d_model"]) -> Float[Tensor, " batch"]:
        return 0.5 * ((self.scale_ - 1) * acts * acts).sum(-1) + acts @ self.shift_


def _quantiles(x: Tensor, levels: Tensor) -> Tensor:
    """Per-column quantiles of ``x`` at ``levels`` (linear interpolation), shape ``[m, d]``."""
    srt = x.sort(dim=0).values
    n = srt.shape[0]
    pos = levels * (n - 1)
    lo = pos.floor().long().clamp(0, n - 1)
    hi = (lo + 1).clamp(max=n - 1)
    frac = (pos - lo.to(pos.dtype)).unsqueeze(-1)
    return srt[lo] * (1 - frac) + srt[hi] * frac


class MiMiC(_OneStepSteerer):
    r"""MiMiC: the affine optimal-transport map between Gaussian fits of the two classes.

    ``m(a) = W a + c`` with ``W = S^{-1/2} (S^{1/2} P S^{1/2})^{1/2} S^{-1/2}`` (``S``, ``P`` the
    negative and positive covariances, shrunk toward a scaled identity by ``shrinkage``) and
    ``c = mu_+ - W mu_-`` (Singh et al., 2024). It is applied only to rows a linear probe
    classifies as negative; ``T`` interpolates from identity (0) to the map (1). Barrier:
    ``h(a) = a^T (W - I) a / 2 + c . a`` (``W`` is symmetric).

    Args:
        shrinkage: weight of ``tr(Sigma)/d * I`` mixed into each covariance (0..1).
        gate: apply only to rows the probe calls negative (True) or to all rows.
        C: inverse L2 strength of the gating probe.

    Attributes:
        weight_ ``[d_model, d_model]``: ``W``; bias_ ``[d_model]``: ``c``; probe_: the probe.

    Example:
        >>> import torch, lens_odesteer as lo
        >>> mim = lo.MiMiC().fit(torch.randn(100, 3) + 2, torch.randn(100, 3))
        >>> mim.weight_.shape
        torch.Size([3, 3])
    """

    _tensor_attrs = ("weight_", "bias_")
    _scalar_attrs = AbstractSteerer._base_scalars
    _component_attrs = ("probe_",)
    T_meaning: ClassVar[str] = "interpolation from identity (0) to the full map (1)"
    max_T: ClassVar[float | None] = 1.0

    def __init__(self, shrinkage: float = 0.1, gate: bool = True, C: float = 1.0) -> None:
        self.shrinkage = shrinkage
        self.gate = gate
        self.C = C

    def _fit(
        self, pos: Float[Tensor, "n_pos d_model"], neg: Float[Tensor, "n_neg d_model"]
    ) -> None:
        lam = check_finite_float(self.shrinkage, "shrinkage", minimum=0.0)
        p64, n64 = pos.to(torch.float64), neg.to(torch.float64)
        mu_p, mu_n = p64.mean(0), n64.mean(0)
        weight = _gaussian_ot_matrix(p64 - mu_p, n64 - mu_n, lam)
        self.weight_ = weight.to(pos.dtype)
        self.bias_ = (mu_p - weight @ mu_n).to(pos.dtype)
        self.probe_ = LinearBarrier(C=self.C).fit(pos, neg)

    def _gate(self, acts: Tensor) -> Tensor:
        if not self.gate:
            return torch.ones(acts.shape[0], 1, dtype=acts.dtype, device=acts.device)
        logit = self.probe_._value(acts) - self.probe_.log_prior_ratio_
        return (logit < 0).to(acts.dtype).unsqueeze(-1)

    def _velocity(self, acts: Float[Tensor, "batch d_model"]) -> Float[Tensor, "batch d_model"]:
        return (acts @ self.weight_.mT + self.bias_ - acts) * self._gate(acts)

    def _barrier(self, acts: Float[Tensor, "batch d_model"]) -> Float[Tensor, " batch"]:
        quad = ((acts @ self.weight_.mT) * acts).sum(-1) - (acts * acts).sum(-1)
        return 0.5 * quad + acts @ self.bias_


def _gaussian_ot_matrix(xp: Tensor, xn: Tensor, lam: float) -> Tensor:
    """Symmetric ``W`` of the Gaussian OT map from centred negatives ``xn`` to positives ``xp``.

    Covariances are shrunk: ``(1 - lam) X^T X / (n - 1) + lam tr(.)/d I``. When there are fewer
    rows than dimensions, both covariances are ``scale * I`` outside the span ``Q`` of the data, so
    ``W`` is computed on that ``k``-dimensional span and is ``sqrt(tau_+ / tau_-) I`` elsewhere.
    """
    d = xp.shape[1]
    n_p, n_n = max(xp.shape[0] - 1, 1), max(xn.shape[0] - 1, 1)
    tau_p = float((xp * xp).sum()) / n_p / d
    tau_n = float((xn * xn).sum()) / n_n / d
    k = xp.shape[0] + xn.shape[0]
    if k >= d:
        cov_p = _shrink(xp.T @ xp / n_p, lam, tau_p)
        cov_n = _shrink(xn.T @ xn / n_n, lam, tau_n)
        return _ot_from_covs(cov_p, cov_n)
    q, _ = torch.linalg.qr(torch.cat([xp, xn]).T)  # [d, k], orthonormal, spans the data
    yp, yn = xp @ q, xn @ q
    w_q = _ot_from_covs(_shrink(yp.T @ yp / n_p, lam, tau_p), _shrink(yn.T @ yn / n_n, lam, tau_n))
    ratio = (tau_p / tau_n) ** 0.5 if lam > 0 and tau_n > 0 and tau_p > 0 else 1.0
    eye_k = torch.eye(k, dtype=xp.dtype, device=xp.device)
    weight = q @ (w_q - ratio * eye_k) @ q.T
    weight.diagonal().add_(ratio)
    return weight


def _shrink(cov: Tensor, lam: float, tau: float) -> Tensor:
    out = (1 - lam) * cov
    out.diagonal().add_(lam * max(tau, 1e-12))
    return out


def _ot_from_covs(cov_p: Tensor, cov_n: Tensor) -> Tensor:
    sqrt_n, inv_sqrt_n = _sqrt_and_inv_sqrt(cov_n)
    middle, _ = _sqrt_and_inv_sqrt(sqrt_n @ cov_p @ sqrt_n)
    weight = inv_sqrt_n @ middle @ inv_sqrt_n
    return (weight + weight.T) / 2


def _sqrt_and_inv_sqrt(mat: Tensor) -> tuple[Tensor, Tensor]:
    vals, vecs = torch.linalg.eigh((mat + mat.T) / 2)
    floor = vals.max().clamp_min(1e-300) * 1e-10
    vals = vals.clamp_min(floor)
    return (vecs * vals.sqrt()) @ vecs.T, (vecs * vals.rsqrt()) @ vecs.T
