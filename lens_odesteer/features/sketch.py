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

from lens_odesteer._validation import check_finite_float, check_positive_int, check_seed
from lens_odesteer.features.base import AbstractFeatureMap

#: Rows per block in ``transform`` and ``dot_and_grad`` (see :func:`_block_rows`).
_BLOCK_ROWS_ONE_THREAD = 64
_BLOCK_ROWS_PER_THREAD = 512


def _block_rows() -> int:
    """Rows per block of the FFT computations, by torch's CPU thread count.

    With one thread, 64-row blocks keep a block's spectra in the CPU cache: measured at n = 8000,
    the transform of 4096 rows and the gradient of 2048 rows ran 1.7-2.4x faster than at once.
    With several threads every operation of a block is a parallel region, whose synchronisation
    becomes expensive when other processes compete for the cores (64-row blocks were measured 7x
    slower than one block on a loaded 2-core machine), so blocks are then 512 rows per thread;
    they still bound the temporaries (about 100 MB per 512 rows). Rows are independent, so the
    blocking does not change the results.
    """
    threads = torch.get_num_threads()
    return _BLOCK_ROWS_ONE_THREAD if threads <= 1 else _BLOCK_ROWS_PER_THREAD * threads


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
        check_seed(self.seed)
        d = int(acts.shape[-1])
        gen = torch.Generator().manual_seed(self.seed)
        self.hashes_: Int[Tensor, "degree d_plus_1"] = torch.randint(
            0, self.n_components, (self.degree, d + 1), generator=gen
        )
        bits = torch.randint(0, 2, (self.degree, d + 1), generator=gen)
        self.signs_: Float[Tensor, "degree d_plus_1"] = (bits * 2 - 1).to(acts.dtype)
        self.d_model_ = d
        self._on_moved()
        return self

    def _on_moved(self) -> None:
        self._plan: _SketchPlan | None = None

    # -- forward pieces -------------------------------------------------------------------------
    def _direction(self, acts: Tensor) -> tuple[Tensor, Tensor]:
        if self.normalize:
            norm = torch.linalg.vector_norm(acts, dim=-1, keepdim=True).clamp_min(self.min_norm)
            return acts / norm, norm
        return acts, torch.ones_like(acts[..., :1])

    def _extended(self, a_hat: Tensor) -> Tensor:
        """``z = [a_hat ; 1]``; the sketch input is ``x = z * [sqrt(gamma) ... ; sqrt(coef0)]``."""
        return torch.cat([a_hat, torch.ones_like(a_hat[..., :1])], dim=-1)

    def _get_plan(self, like: Tensor) -> _SketchPlan:
        """Index and weight tables derived from the fitted state, built once per device/dtype."""
        key = (like.device, like.dtype, self.n_components, self.gamma, self.coef0)
        plan: _SketchPlan | None = getattr(self, "_plan", None)
        if plan is None or plan.key != key:
            plan = self._plan = _SketchPlan(self, like, key)
        return plan

    def _count_sketches(self, z: Tensor, plan: _SketchPlan) -> Tensor:
        """``[batch, degree, n]``: every CountSketch of ``x = z * scales``, in one scatter-add."""
        batch = z.shape[0]
        signed = (z.unsqueeze(1) * plan.weights).reshape(batch, -1)
        out = z.new_zeros(batch, self.degree * self.n_components)
        out.index_add_(1, plan.index, signed)
        return out.view(batch, self.degree, self.n_components)

    def transform(self, acts: Float[Tensor, "*batch d_model"]) -> Float[Tensor, "*batch n_feat"]:
        self._check_is_fitted()
        lead = acts.shape[:-1]
        flat = acts.reshape(-1, acts.shape[-1])
        plan = self._get_plan(flat)
        rows = _block_rows()
        blocks = range(0, flat.shape[0], rows)
        if flat.requires_grad and torch.is_grad_enabled():  # autograd through phi: no out=
            parts = [self._transform_block(flat[i : i + rows], plan) for i in blocks]
            phi = torch.cat(parts) if parts else flat.new_empty(0, self.n_components)
        else:  # each block's result written in place: no concatenation afterwards
            phi = flat.new_empty(flat.shape[0], self.n_components)
            for i in blocks:
                self._transform_block(flat[i : i + rows], plan, phi[i : i + rows])
        return phi.reshape(*lead, self.n_components)

    def _transform_block(
        self, flat: Tensor, plan: _SketchPlan, out: Tensor | None = None
    ) -> Tensor:
        a_hat, _ = self._direction(flat)
        spectra = torch.fft.rfft(self._count_sketches(self._extended(a_hat), plan), dim=-1)
        prod = _prod_except(spectra, -1)
        if out is None:
            return torch.fft.irfft(prod, n=self.n_components, dim=-1)
        return torch.fft.irfft(prod, n=self.n_components, dim=-1, out=out)

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
        """``dot_and_grad`` with ``rfft(coef)`` precomputed (the barrier caches it).

        Cost per row: one scatter-add, ``degree`` real FFTs and ``degree`` inverse real FFTs of
        length ``n``, one gather. The value needs no transform of its own: ``coef . phi`` is a
        homogeneous polynomial of degree ``p`` in ``z = [a_hat ; 1]``, so by Euler's theorem it
        equals ``z . grad_z / p``. Large batches run in blocks of rows whose transforms fit in
        the CPU cache.
        """
        plan = self._get_plan(acts)
        rows = _block_rows()
        if acts.shape[0] <= rows:
            return self._dot_and_grad_block(acts, coef_spectrum, plan)
        parts = [self._dot_and_grad_block(b, coef_spectrum, plan) for b in acts.split(rows)]
        return torch.cat([v for v, _ in parts]), torch.cat([g for _, g in parts])

    def _dot_and_grad_block(
        self, acts: Tensor, coef_spectrum: Tensor, plan: _SketchPlan
    ) -> tuple[Tensor, Tensor]:
        n, p = self.n_components, self.degree
        batch, d = acts.shape
        # z = [a_hat ; 1] written into one buffer (a_hat is a view of it).
        z = acts.new_empty(batch, d + 1)
        a_hat = z[:, :d]
        if self.normalize:
            norm = torch.linalg.vector_norm(acts, dim=-1, keepdim=True).clamp_min(self.min_norm)
            if acts.requires_grad and torch.is_grad_enabled():  # out= does not support autograd
                a_hat.copy_(acts / norm)
            else:
                torch.div(acts, norm, out=a_hat)
        else:
            a_hat.copy_(acts)
        z[:, d] = 1.0
        spectra = torch.fft.rfft(self._count_sketches(z, plan), dim=-1)  # [batch, p, m]
        # d(w . phi)/d u_k = irfft(W * conj(prod_{j != k} U_j)) with W = rfft(w). Computed as
        # irfft(conj(W) * prod_{j != k} U_j), which is the same signal reversed in time
        # (j -> -j mod n); the reversal is folded into the gather index, so no conj/flip copies.
        # For p = 2, prod_{j != k} U_j = U_{1-k}: block j of the transform serves k = 1 - j.
        if p == 2:
            others = spectra  # not needed afterwards: multiplied in place
        else:
            others = torch.stack([_prod_except(spectra, k) for k in range(p)], dim=1)
        others.mul_(plan.conj_spectrum(coef_spectrum))
        g_rev = torch.fft.irfft(others, n=n, dim=-1)
        # Adjoint of the CountSketches (a signed gather), summed over k: the gradient in z.
        g_k = g_rev.reshape(batch, p * n).index_select(1, plan.adjoint_index).view(batch, p, -1)
        g_z = g_k[:, 0] * plan.weights[0]
        for k in range(1, p):
            g_z.addcmul_(g_k[:, k], plan.weights[k])
        value = (g_z * z).sum(-1).div_(p)
        g_hat = g_z[:, :-1]
        if self.normalize:
            radial = (g_hat * a_hat).sum(-1, keepdim=True)
            return value, torch.addcmul(g_hat, radial, a_hat, value=-1.0).div_(norm)
        return value, g_hat.contiguous()


class _SketchPlan:
    """Index and weight tables of a fitted sketch on one device and dtype.

    ``index``: flattened ``h_k(i) + k n`` (the scatter of the CountSketches); ``adjoint_index``:
    where the gather of the gradient reads each ``(k, i)`` in the time-reversed transform (see
    ``dot_and_grad_spectrum``); ``weights``: ``signs * [sqrt(gamma), ..., sqrt(coef0)]``.
    """

    __slots__ = ("_conj", "adjoint_index", "index", "key", "weights")

    def __init__(self, sketch: PolynomialSketch, like: Tensor, key: tuple[object, ...]) -> None:
        n, p = sketch.n_components, sketch.degree
        hashes = sketch.hashes_.to(like.device)
        blocks = torch.arange(p, device=like.device).unsqueeze(1)
        self.index = (hashes + blocks * n).reshape(-1)
        source = (1 - blocks) if p == 2 else blocks
        self.adjoint_index = ((-hashes) % n + source * n).reshape(-1)
        scale = torch.full(
            (hashes.shape[1],), math.sqrt(sketch.gamma), dtype=like.dtype, device=like.device
        )
        scale[-1] = math.sqrt(sketch.coef0)
        self.weights = sketch.signs_.to(device=like.device, dtype=like.dtype) * scale  # [p, d+1]
        self.key = key
        self._conj: tuple[Tensor, Tensor] | None = None

    def conj_spectrum(self, spectrum: Tensor) -> Tensor:
        """``conj(spectrum)``, materialised once per coefficient spectrum."""
        if self._conj is None or self._conj[0] is not spectrum:
            self._conj = (spectrum, spectrum.conj().resolve_conj())
        return self._conj[1]


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
    """Product over axis 1 (degree) of ``[batch, p, m]`` spectra, leaving out ``k`` (-1: none)."""
    idx = [j for j in range(spectra.shape[1]) if j != k]
    if not idx:
        return torch.ones_like(spectra[:, 0])
    out = spectra[:, idx[0]]
    for j in idx[1:]:
        out = out * spectra[:, j]
    return out
