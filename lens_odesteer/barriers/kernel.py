r"""Kernel logistic barriers: ``h(a) = w . phi(a) + b + log((1 - pi) / pi)``.

A logistic regression on features ``phi`` estimates the posterior log-odds
``log p(+|a) / p(-|a) = log p_+(a) / p_-(a) + log(pi / (1 - pi))`` with ``pi = n_pos / n``;
adding ``log((1 - pi) / pi)`` gives the log density ratio ODESteer uses as its barrier.
"""

from __future__ import annotations

import math
from typing import TypeVar

import torch
from jaxtyping import Float
from torch import Tensor

from lens_odesteer._component import Component
from lens_odesteer.barriers.base import AbstractBarrier
from lens_odesteer.barriers.logistic import fit_logistic
from lens_odesteer.features.base import AbstractFeatureMap
from lens_odesteer.features.identity import IdentityFeatures
from lens_odesteer.features.sketch import PolynomialSketch, sketch_quadratic_form

_FIT_CHUNK = 4096
#: When the exact quadratic form of a degree-2 sketch barrier replaces the FFTs (n = 8000), by
#: d_model: always up to 1536; up to 2048 for batches of at least ``_QUADRATIC_MIN_ROWS_WIDE``
#: rows; never above 2048 (there the FFTs are cheaper and the matrix takes 67 MB at 4096).
#: Measured on 2 CPU threads, Euler x10 (quiet machine): the quadratic form is 1.3-2x faster at
#: d_model 1536 for batches 8-128 (and 3-7x at 576-1024); at 2048 it is 1.1x slower for batches
#: up to 8 and 1.1-1.4x faster from 16 to 128 rows.
_QUADRATIC_ALWAYS_MAX_D = 1536
_QUADRATIC_MAX_D = 2048
_QUADRATIC_MIN_ROWS_WIDE = 16
_LB = TypeVar("_LB", bound="_LogisticBarrier")


class _LogisticBarrier(AbstractBarrier):
    """Shared fitting and evaluation for logistic barriers on a feature map."""

    _tensor_attrs = ("coef_",)
    _scalar_attrs = ("d_model_", "log_prior_ratio_", "intercept_", "n_iter_", "converged_")
    _component_attrs = ("features_",)

    C: float
    max_iter: int
    tol: float

    def _make_features(self) -> AbstractFeatureMap:
        raise NotImplementedError

    def fit(
        self: _LB,
        pos_acts: Float[Tensor, "n_pos d_model"],
        neg_acts: Float[Tensor, "n_neg d_model"],
    ) -> _LB:
        acts = torch.cat([pos_acts, neg_acts])
        labels = torch.zeros(acts.shape[0], dtype=torch.bool, device=acts.device)
        labels[: pos_acts.shape[0]] = True
        features = self._make_features().fit(acts)
        if isinstance(features, PolynomialSketch):
            feats = features.transform(acts)  # blocks of rows inside, written in place
        else:
            feats = torch.cat(
                [
                    features.transform(acts[i : i + _FIT_CHUNK])
                    for i in range(0, len(acts), _FIT_CHUNK)
                ]
            )
        result = fit_logistic(feats, labels, C=self.C, max_iter=self.max_iter, tol=self.tol)
        pi = pos_acts.shape[0] / acts.shape[0]
        self.features_ = features
        self.coef_: Float[Tensor, " n_feat"] = result.coef
        self.intercept_ = result.intercept
        self.log_prior_ratio_ = math.log((1.0 - pi) / pi)
        self.n_iter_ = result.n_iter
        self.converged_ = result.converged
        self.d_model_ = int(acts.shape[-1])
        self._on_moved()
        return self

    def _on_moved(self) -> None:
        self._quadratic: tuple[Tensor, Tensor] | None = None
        self._quadratic_min_rows = 0
        if not hasattr(self, "coef_"):
            return
        self._coef_spectrum = torch.fft.rfft(self.coef_)
        fm = self.features_
        if isinstance(fm, PolynomialSketch) and fm.degree == 2 and fm.d_model_ <= _QUADRATIC_MAX_D:
            wide = fm.d_model_ > _QUADRATIC_ALWAYS_MAX_D
            self._enable_quadratic(_QUADRATIC_MIN_ROWS_WIDE if wide else 0)

    def _enable_quadratic(self, min_rows: int) -> None:
        """Evaluate the degree-2 sketch barrier as its exact quadratic form in ``z = [a_hat; 1]``.

        ``coef . phi = z^T Q z`` with ``Q = [[A, b/2], [b/2, c]]`` (see
        :func:`~lens_odesteer.features.sketch.sketch_quadratic_form`): one small matmul per
        evaluation instead of FFTs of length n, for batches of at least ``min_rows`` rows.
        Stored as ``(2 Q[:d], 2 Q[d])`` so that ``2 Q z = a_hat @ 2 Q[:d] + 2 Q[d]`` (the
        gradient in ``z``) is one ``addmm``.
        """
        fm = self.features_
        assert isinstance(fm, PolynomialSketch)
        mat, vec, const = sketch_quadratic_form(fm, self.coef_)
        top = torch.cat([2 * mat, vec.unsqueeze(1)], dim=1)
        last = torch.cat([vec, 2 * const.reshape(1)])
        self._quadratic = (top, last)
        self._quadratic_min_rows = min_rows

    def _value_and_grad(
        self, acts: Float[Tensor, "batch d_model"]
    ) -> tuple[Float[Tensor, " batch"], Float[Tensor, "batch d_model"]]:
        fm = self.features_
        if self._quadratic is not None and acts.shape[0] >= self._quadratic_min_rows:
            assert isinstance(fm, PolynomialSketch)
            dot, grad = _quadratic_dot_and_grad(fm, self._quadratic, acts)
        elif isinstance(fm, PolynomialSketch):
            dot, grad = fm.dot_and_grad_spectrum(acts, self.coef_, self._coef_spectrum)
        else:
            dot, grad = fm.dot_and_grad(acts, self.coef_)
        return dot + (self.intercept_ + self.log_prior_ratio_), grad

    def _value(self, acts: Float[Tensor, "batch d_model"]) -> Float[Tensor, " batch"]:
        if self._quadratic is not None and acts.shape[0] >= self._quadratic_min_rows:
            return self._value_and_grad(acts)[0]
        return self.features_.transform(acts) @ self.coef_ + (
            self.intercept_ + self.log_prior_ratio_
        )


class KernelLogisticBarrier(_LogisticBarrier):
    r"""ODESteer's barrier: L2 logistic regression on a kernel feature map.

    Args:
        features: the feature map (unfitted template; copied at fit). Default: ODESteer's
            ``PolynomialSketch(n_components=8000, degree=2, gamma=0.1, coef0=1.0, seed=0)``.
        C: inverse L2 strength, as scikit-learn's ``LogisticRegression(C=...)``.
        max_iter: L-BFGS iterations.
        tol: max-abs gradient at which L-BFGS stops.

    Attributes:
        features_: the fitted feature map.
        coef_: ``[n_feat]`` weights ``w``; ``intercept_``: ``b``.
        log_prior_ratio_: ``log((1 - pi) / pi)``, ``pi = n_pos / (n_pos + n_neg)``.
        n_iter_, converged_: L-BFGS diagnostics.

    Example:
        >>> import torch
        >>> from lens_odesteer.barriers import KernelLogisticBarrier
        >>> from lens_odesteer.features import PolynomialSketch
        >>> pos, neg = torch.randn(40, 8) + 1, torch.randn(40, 8) - 1
        >>> bar = KernelLogisticBarrier(PolynomialSketch(n_components=256)).fit(pos, neg)
        >>> bar.value(pos).shape, bar.grad(pos).shape
        (torch.Size([40]), torch.Size([40, 8]))
    """

    def __init__(
        self,
        features: AbstractFeatureMap | None = None,
        C: float = 1.0,
        max_iter: int = 1000,
        tol: float = 1e-4,
    ) -> None:
        self.features = features
        self.C = C
        self.max_iter = max_iter
        self.tol = tol

    def _make_features(self) -> AbstractFeatureMap:
        if self.features is None:
            return PolynomialSketch()
        return self.features.unfitted_copy()

    def _default_component(self, name: str) -> Component | None:
        return PolynomialSketch() if name == "features" else None


class LinearBarrier(_LogisticBarrier):
    r"""A linear probe barrier ``h(a) = w . a + b + log((1 - pi) / pi)`` (ITI's probe).

    Its gradient ``w`` is constant, so one Euler step of its field is the exact flow.

    Args:
        C: inverse L2 strength; max_iter, tol: L-BFGS settings.
        normalize: fit on ``a / |a|`` instead of ``a`` (the gradient then rotates ``a``).

    Example:
        >>> import torch
        >>> from lens_odesteer.barriers import LinearBarrier
        >>> bar = LinearBarrier().fit(torch.randn(30, 4) + 1, torch.randn(30, 4) - 1)
        >>> bar.coef_.shape
        torch.Size([4])
    """

    def __init__(
        self, C: float = 1.0, normalize: bool = False, max_iter: int = 1000, tol: float = 1e-4
    ) -> None:
        self.C = C
        self.normalize = normalize
        self.max_iter = max_iter
        self.tol = tol

    def _make_features(self) -> AbstractFeatureMap:
        return IdentityFeatures(normalize=self.normalize)


def _quadratic_dot_and_grad(
    fm: PolynomialSketch, quad: tuple[Tensor, Tensor], acts: Tensor
) -> tuple[Tensor, Tensor]:
    """``coef . phi(a) = z^T Q z`` with ``z = [a_hat; 1]``, and its gradient in ``a``.

    With ``g = 2 Q z`` (the gradient in ``z``) and ``t = a_hat . g[:d]``: the value is
    ``(t + g[d]) / 2``; the gradient in ``a`` is ``g[:d]`` without its radial part ``t a_hat``,
    divided by ``|a|`` (the Jacobian of the normalisation).
    """
    top, last = quad
    a_hat, norm = fm._direction(acts)
    g = torch.addmm(last, a_hat, top)
    g_hat = g[:, :-1]
    t = (a_hat * g_hat).sum(-1, keepdim=True)
    value = (t + g[:, -1:]).squeeze(-1).mul_(0.5)
    if fm.normalize:
        return value, torch.addcmul(g_hat, t, a_hat, value=-1.0).div_(norm)
    return value, g_hat.contiguous()
