"""The identity feature map, which turns a kernel logistic barrier into a linear probe."""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor

from lens_odesteer.features.base import AbstractFeatureMap


class IdentityFeatures(AbstractFeatureMap):
    """``phi(a) = a`` (or ``a / |a|`` with ``normalize=True``).

    Example:
        >>> import torch
        >>> from lens_odesteer.features import IdentityFeatures
        >>> IdentityFeatures().fit(torch.randn(4, 3)).transform(torch.ones(2, 3)).shape
        torch.Size([2, 3])
    """

    _scalar_attrs = ("d_model_",)

    def __init__(self, normalize: bool = False, min_norm: float = 1e-6) -> None:
        self.normalize = normalize
        self.min_norm = min_norm

    @property
    def n_features_out(self) -> int:
        self._check_is_fitted()
        return self.d_model_

    def fit(self, acts: Float[Tensor, "n_samples d_model"]) -> IdentityFeatures:
        self.d_model_ = int(acts.shape[-1])
        return self

    def transform(self, acts: Float[Tensor, "*batch d_model"]) -> Float[Tensor, "*batch n_feat"]:
        self._check_is_fitted()
        if self.normalize:
            return acts / acts.norm(dim=-1, keepdim=True).clamp_min(self.min_norm)
        return acts

    def dot_and_grad(
        self, acts: Float[Tensor, "batch d_model"], coef: Float[Tensor, " n_feat"]
    ) -> tuple[Float[Tensor, " batch"], Float[Tensor, "batch d_model"]]:
        self._check_is_fitted()
        if not self.normalize:
            return acts @ coef, coef.expand_as(acts)
        norm = acts.norm(dim=-1, keepdim=True).clamp_min(self.min_norm)
        a_hat = acts / norm
        grad = (coef - (a_hat @ coef).unsqueeze(-1) * a_hat) / norm
        return a_hat @ coef, grad
