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

from lens_odesteer.barriers.base import AbstractBarrier
from lens_odesteer.barriers.logistic import fit_logistic
from lens_odesteer.features.base import AbstractFeatureMap
from lens_odesteer.features.identity import IdentityFeatures
from lens_odesteer.features.sketch import PolynomialSketch, sketch_quadratic_form

_FIT_CHUNK = 4096
#: When the exact quadratic form of a degree-2 sketch barrier replaces the FFTs (n = 8000), by
#: d_model: always up to 1536; up to 2048 for batches of at least ``_QUADRATIC_MIN_ROWS_WIDE``
#: rows; never above 2048 (there the FFTs are cheaper and the matrix takes 67 MB at 4096).
#: Measured on one CPU core, Euler x10: the quadratic form is 3-7x faster at d_model 576-1024,
#: 1.1-2x at 1536; at 2048 it is 1.4x slower for batches of 1-8, even at 64 and 1.4x faster at
#: 512.
_QUADRATIC_ALWAYS_MAX_D = 1536
_QUADRATIC_MAX_D = 2048
_QUADRATIC_MIN_ROWS_WIDE = 128
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
        self._quadratic: tuple[Tensor, Tensor, Tensor] | None = None
        self._quadratic_min_rows = 0
        if not hasattr(self, "coef_"):
            return
        self._coef_spectrum = torch.fft.rfft(self.coef_)
        fm = self.features_
        if isinstance(fm, PolynomialSketch) and fm.degree == 2 and fm.d_model_ <= _QUADRATIC_MAX_D:
            # Exact rewrite of the degree-2 sketch barrier as a quadratic form in a / |a|: one
            # small matmul per evaluation instead of FFTs of length n.
            self._quadratic = sketch_quadratic_form(fm, self.coef_)
            if fm.d_model_ > _QUADRATIC_ALWAYS_MAX_D:
                self._quadratic_min_rows = _QUADRATIC_MIN_ROWS_WIDE

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
    fm: PolynomialSketch, quad: tuple[Tensor, Tensor, Tensor], acts: Tensor
) -> tuple[Tensor, Tensor]:
    """``coef . phi(a)`` and its gradient through ``a_hat^T A a_hat + b . a_hat + c``."""
    mat, vec, const = quad
    a_hat, norm = fm._direction(acts)
    a_mat = a_hat @ mat
    value = (a_mat * a_hat).sum(-1) + a_hat @ vec + const
    g_hat = 2 * a_mat + vec
    if fm.normalize:
        radial = (g_hat * a_hat).sum(-1, keepdim=True)
        return value, (g_hat - radial * a_hat) / norm
    return value, g_hat
