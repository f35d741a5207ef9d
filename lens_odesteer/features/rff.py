r"""Random Fourier features for the Gaussian kernel (Rahimi & Recht, 2007).

``phi(a) = sqrt(2/n) cos(W a + b)`` with ``W ~ N(0, I / sigma^2)`` and ``b ~ U[0, 2 pi)``, so that
``phi(a) . phi(a') ~ exp(-|a - a'|^2 / (2 sigma^2))``. As in ODESteer's RFF ablation, ``sigma`` is
by default the median pairwise distance of the fit data divided by ``sqrt(2)``, and activations
are not normalised. The gradient of ``w . phi(a)`` is ``-sqrt(2/n) W^T (w * sin(W a + b))``.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import Tensor

from lens_odesteer._distances import median_pairwise_distance
from lens_odesteer._validation import check_finite_float, check_positive_int, check_seed
from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.features.base import AbstractFeatureMap


class RandomFourierFeatures(AbstractFeatureMap):
    """Gaussian-kernel random Fourier features with an analytic gradient.

    Args:
        n_components: number of features ``n``.
        bandwidth: ``"median"`` (median pairwise distance / sqrt 2, from the fit data, by
            :func:`lens_odesteer._distances.median_pairwise_distance`, which gives 1 for
            identical rows) or a positive float ``sigma``.
        normalize: map ``a / |a|`` instead of ``a`` (off in ODESteer's ablation).
        seed: seed of ``W``, ``b`` and of the subsample used for the median.
        max_median_samples: rows used to estimate the median distance.

    Attributes:
        weights_: ``[n, d_model]`` random frequencies ``W``.
        offsets_: ``[n]`` random phases ``b``.
        bandwidth_: the ``sigma`` in use.
        d_model_: input width seen in ``fit``.

    Example:
        >>> import torch
        >>> from lens_odesteer.features import RandomFourierFeatures
        >>> rff = RandomFourierFeatures(n_components=32, seed=0).fit(torch.randn(20, 4))
        >>> rff.transform(torch.randn(5, 4)).shape
        torch.Size([5, 32])
    """

    _tensor_attrs = ("weights_", "offsets_")
    _scalar_attrs = ("bandwidth_", "d_model_")

    def __init__(
        self,
        n_components: int = 8000,
        bandwidth: float | str = "median",
        normalize: bool = False,
        seed: int = 0,
        max_median_samples: int = 2000,
        min_norm: float = 1e-6,
    ) -> None:
        self.n_components = n_components
        self.bandwidth = bandwidth
        self.normalize = normalize
        self.seed = seed
        self.max_median_samples = max_median_samples
        self.min_norm = min_norm

    @property
    def n_features_out(self) -> int:
        return self.n_components

    def fit(self, acts: Float[Tensor, "n_samples d_model"]) -> RandomFourierFeatures:
        """Choose ``sigma`` and draw ``W`` and ``b`` from ``seed``."""
        check_positive_int(self.n_components, "n_components")
        check_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        x = self._prepare(acts)
        if isinstance(self.bandwidth, str):
            if self.bandwidth != "median":
                raise InvalidParameterError(
                    f"`bandwidth` must be 'median' or a positive number; got {self.bandwidth!r}."
                )
            # 1.0 when the fit rows are not apart (any bandwidth gives the same flat fit).
            distance = median_pairwise_distance(x, max_rows=self.max_median_samples, generator=gen)
            sigma = distance / math.sqrt(2.0)
        else:
            sigma = check_finite_float(self.bandwidth, "bandwidth", minimum=0.0, strict=True)
        d = int(acts.shape[-1])
        weights = torch.randn(self.n_components, d, generator=gen, dtype=torch.float64) / sigma
        offsets = torch.rand(self.n_components, generator=gen, dtype=torch.float64) * 2 * math.pi
        self.weights_: Float[Tensor, "n_feat d_model"] = weights.to(acts.dtype)
        self.offsets_: Float[Tensor, " n_feat"] = offsets.to(acts.dtype)
        self.bandwidth_ = float(sigma)
        self.d_model_ = d
        return self

    def _prepare(self, acts: Tensor) -> Tensor:
        if self.normalize:
            return acts / acts.norm(dim=-1, keepdim=True).clamp_min(self.min_norm)
        return acts

    def transform(self, acts: Float[Tensor, "*batch d_model"]) -> Float[Tensor, "*batch n_feat"]:
        self._check_is_fitted()
        z = self._prepare(acts) @ self.weights_.mT + self.offsets_
        return torch.cos(z) * math.sqrt(2.0 / self.n_components)

    def dot_and_grad(
        self, acts: Float[Tensor, "batch d_model"], coef: Float[Tensor, " n_feat"]
    ) -> tuple[Float[Tensor, " batch"], Float[Tensor, "batch d_model"]]:
        self._check_is_fitted()
        scale = math.sqrt(2.0 / self.n_components)
        x = self._prepare(acts)
        z = x @ self.weights_.mT + self.offsets_
        value = torch.cos(z) @ coef * scale
        g_x = -(torch.sin(z) * coef) @ self.weights_ * scale
        if self.normalize:
            norm = acts.norm(dim=-1, keepdim=True).clamp_min(self.min_norm)
            g_x = (g_x - (g_x * x).sum(-1, keepdim=True) * x) / norm
        return value, g_x
