r"""The normalised polynomial TensorSketch used by ODESteer.

``phi(a)`` approximates the polynomial kernel on directions,
:math:`k(a, a') = (\gamma \cos(a, a') + c_0)^p`, with a degree-``p`` TensorSketch
(Pham & Pagh, 2013): ``x = [sqrt(gamma) a/|a| ; sqrt(coef0)]``, ``p`` independent CountSketches
``u_k = C_k x`` (random hash ``[d+1] -> [n]`` and random signs), and
``phi = irfft(prod_k rfft(u_k))``, the circular convolution of the sketches.

The gradient of ``w . phi(a)`` is analytic: the adjoint of a circular convolution is a circular
correlation, so ``d(w . phi)/d u_k = irfft(rfft(w) * conj(prod_{j != k} rfft(u_j)))``; the adjoint
of a CountSketch is a signed gather; the normalisation contributes the projection
``(I - a_hat a_hat^T) / |a|``. Because ``phi`` depends on ``a / |a|`` only, the gradient is
orthogonal to ``a``.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float, Int
from torch import Tensor

from lens_odesteer._validation import check_finite_float, check_positive_int
from lens_odesteer.features.base import AbstractFeatureMap


class PolynomialSketch(AbstractFeatureMap):
    """Degree-``degree`` TensorSketch of ``[sqrt(gamma) a_hat ; sqrt(coef0)]`` (ODESteer's phi).

    Args:
        n_components: sketch width ``n`` (ODESteer: 8000).
        degree: polynomial degree ``p`` (ODESteer: 2).
        gamma: scale of the direction term (ODESteer: 0.1).
        coef0: constant term (ODESteer: 1.0).
        normalize: use ``a / |a|`` (True, ODESteer) or ``a`` itself.
        seed: seed of the hashes and signs, drawn in ``fit``.
        min_norm: activations with a smaller norm are treated as having this norm.

    Attributes:
        hashes_: ``[degree, d_model + 1]`` bucket of each input coordinate.
        signs_: ``[degree, d_model + 1]`` random signs (+1/-1).
        d_model_: input width seen in ``fit``.

    Example:
        >>> import torch
        >>> from lens_odesteer.features import PolynomialSketch
        >>> phi = PolynomialSketch(n_components=64, seed=0).fit(torch.randn(10, 8))
        >>> phi.transform(torch.randn(3, 8)).shape
        torch.Size([3, 64])
    """

    _tensor_attrs = ("hashes_", "signs_")
    _scalar_attrs = ("d_model_",)

    def __init__(
        self,
        n_components: int = 8000,
        degree: int = 2,
        gamma: float = 0.1,
        coef0: float = 1.0,
        normalize: bool = True,
        seed: int = 0,
        min_norm: float = 1e-6,
    ) -> None:
        self.n_components = n_components
        self.degree = degree
        self.gamma = gamma
        self.coef0 = coef0
        self.normalize = normalize
        self.seed = seed
        self.min_norm = min_norm

    @property
    def n_features_out(self) -> int:
        return self.n_components

    def fit(self, acts: Float[Tensor, "n_samples d_model"]) -> PolynomialSketch:
        """Draw hashes and signs for inputs of width ``acts.shape[-1]`` from ``seed``."""
        check_positive_int(self.n_components, "n_components")
        check_positive_int(self.degree, "degree")
        check_finite_float(self.gamma, "gamma", minimum=0.0, strict=True)
        check_finite_float(self.coef0, "coef0", minimum=0.0)
        check_positive_int(self.seed, "seed", minimum=0)
        d = int(acts.shape[-1])
        gen = torch.Generator().manual_seed(self.seed)
        self.hashes_: Int[Tensor, "degree d_plus_1"] = torch.randint(
            0, self.n_components, (self.degree, d + 1), generator=gen
        )
        bits = torch.randint(0, 2, (self.degree, d + 1), generator=gen)
        self.signs_: Float[Tensor, "degree d_plus_1"] = (bits * 2 - 1).to(acts.dtype)
        self.d_model_ = d
        return self

    # -- forward pieces -------------------------------------------------------------------------
    def _direction(self, acts: Tensor) -> tuple[Tensor, Tensor]:
        if self.normalize:
            norm = acts.norm(dim=-1, keepdim=True).clamp_min(self.min_norm)
            return acts / norm, norm
        return acts, torch.ones_like(acts[..., :1])

    def _extended(self, a_hat: Tensor) -> Tensor:
        const = torch.full_like(a_hat[..., :1], math.sqrt(self.coef0))
        return torch.cat([a_hat * math.sqrt(self.gamma), const], dim=-1)

    def _count_sketches(self, x: Tensor) -> Tensor:
        """``[degree, batch, n]``: each CountSketch of the rows of ``x``."""
        out = x.new_zeros(self.degree, x.shape[0], self.n_components)
        for k in range(self.degree):
            out[k].index_add_(1, self.hashes_[k], x * self.signs_[k])
        return out

    def transform(self, acts: Float[Tensor, "*batch d_model"]) -> Float[Tensor, "*batch n_feat"]:
        self._check_is_fitted()
        lead = acts.shape[:-1]
        flat = acts.reshape(-1, acts.shape[-1])
        a_hat, _ = self._direction(flat)
        spectra = torch.fft.rfft(self._count_sketches(self._extended(a_hat)), dim=-1)
        phi = torch.fft.irfft(spectra.prod(dim=0), n=self.n_components, dim=-1)
        return phi.reshape(*lead, self.n_components)

    def dot_and_grad(
        self, acts: Float[Tensor, "batch d_model"], coef: Float[Tensor, " n_feat"]
    ) -> tuple[Float[Tensor, " batch"], Float[Tensor, "batch d_model"]]:
        self._check_is_fitted()
        return self.dot_and_grad_spectrum(acts, coef, torch.fft.rfft(coef))

    def dot_and_grad_spectrum(
        self,
        acts: Float[Tensor, "batch d_model"],
        coef: Float[Tensor, " n_feat"],
        coef_spectrum: Tensor,
    ) -> tuple[Float[Tensor, " batch"], Float[Tensor, "batch d_model"]]:
        """``dot_and_grad`` with ``rfft(coef)`` precomputed (the barrier caches it)."""
        n = self.n_components
        a_hat, norm = self._direction(acts)
        spectra = torch.fft.rfft(self._count_sketches(self._extended(a_hat)), dim=-1)
        # w . irfft(P) by Parseval, without an inverse transform: (1/n) sum_k c_k Re(conj(W_k) P_k)
        # with c_k = 1 for the DC (and Nyquist) bin and 2 elsewhere.
        weights = torch.full(
            (coef_spectrum.shape[-1],), 2.0 / n, dtype=acts.dtype, device=acts.device
        )
        weights[0] = 1.0 / n
        if n % 2 == 0:
            weights[-1] = 1.0 / n
        prod = _prod_except(spectra, -1)
        value = prod.real @ (coef_spectrum.real * weights) + prod.imag @ (
            coef_spectrum.imag * weights
        )
        # All adjoint correlations in one inverse transform: d(w . phi)/d u_k.
        others = torch.stack([_prod_except(spectra, k) for k in range(self.degree)])
        g_u = torch.fft.irfft(coef_spectrum * others.conj(), n=n, dim=-1)
        grad_x = g_u[0][:, self.hashes_[0]] * self.signs_[0]
        for k in range(1, self.degree):
            grad_x = grad_x + g_u[k][:, self.hashes_[k]] * self.signs_[k]
        g_hat = grad_x[:, :-1] * math.sqrt(self.gamma)
        if self.normalize:
            radial = (g_hat * a_hat).sum(-1, keepdim=True)
            grad = (g_hat - radial * a_hat) / norm
        else:
            grad = g_hat
        return value, grad


def sketch_quadratic_form(
    sketch: PolynomialSketch, coef: Float[Tensor, " n_feat"]
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Write ``coef . phi(a)`` of a degree-2 sketch as a quadratic form in ``a_hat``.

    With ``u = CS_1 x`` and ``v = CS_2 x``, ``w . (u circ-conv v) = x^T M x`` where
    ``M[i, k] = s_1(i) s_2(k) w[(h_1(i) + h_2(k)) mod n]``; splitting
    ``x = [sqrt(gamma) a_hat ; sqrt(coef0)]`` gives
    ``coef . phi(a) = a_hat^T A a_hat + b . a_hat + c`` with ``A`` symmetric. This is exact (not an
    approximation of the sketch), costs ``(d+1)^2`` multiply-adds per row instead of FFTs of
    length ``n``, and shows that ODESteer's default barrier is a quadratic function of the
    direction ``a / |a|``.

    Returns:
        ``(A [d, d], b [d], c [])``.
    """
    if sketch.degree != 2:
        raise ValueError(f"a quadratic form exists for degree 2 only; got degree {sketch.degree}.")
    h1, h2 = sketch.hashes_[0], sketch.hashes_[1]
    idx = (h1.unsqueeze(1) + h2.unsqueeze(0)) % sketch.n_components
    m = coef[idx] * sketch.signs_[0].unsqueeze(1) * sketch.signs_[1].unsqueeze(0)
    q = (m + m.T) / 2
    g, c0 = sketch.gamma, sketch.coef0
    return g * q[:-1, :-1], 2 * math.sqrt(g * c0) * q[:-1, -1], c0 * q[-1, -1]


def _prod_except(spectra: Tensor, k: int) -> Tensor:
    """Product over the leading axis of ``spectra`` leaving out index ``k`` (-1: keep all)."""
    idx = [j for j in range(spectra.shape[0]) if j != k]
    if not idx:
        return torch.ones_like(spectra[0])
    out = spectra[idx[0]]
    for j in idx[1:]:
        out = out * spectra[j]
    return out
