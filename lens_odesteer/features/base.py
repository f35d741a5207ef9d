"""The feature-map interface: ``a -> phi(a)`` with an analytic Jacobian-transpose product."""

from __future__ import annotations

from abc import abstractmethod

import torch
from jaxtyping import Float
from torch import Tensor

from lens_odesteer._component import Component


class AbstractFeatureMap(Component):
    """A fitted map ``phi: R^d -> R^n`` whose Jacobian-transpose products are exact.

    Feature maps are the kernel part of a kernel logistic barrier ``h(a) = w . phi(a) + b``.
    They never use autograd, so their gradients work inside ``torch.inference_mode()``.
    """

    @abstractmethod
    def fit(self, acts: Float[Tensor, "n_samples d_model"]) -> AbstractFeatureMap:
        """Draw the random state (from ``seed``) and any data-dependent constants."""

    @property
    @abstractmethod
    def n_features_out(self) -> int:
        """Width ``n`` of ``phi(a)``."""

    @abstractmethod
    def transform(self, acts: Float[Tensor, "*batch d_model"]) -> Float[Tensor, "*batch n_feat"]:
        """Return ``phi(acts)``."""

    @abstractmethod
    def dot_and_grad(
        self, acts: Float[Tensor, "batch d_model"], coef: Float[Tensor, " n_feat"]
    ) -> tuple[Float[Tensor, " batch"], Float[Tensor, "batch d_model"]]:
        """Return ``coef . phi(a)`` and its gradient ``J_phi(a)^T coef`` for each row."""

    def vjp(
        self, acts: Float[Tensor, "batch d_model"], cotangent: Float[Tensor, "batch n_feat"]
    ) -> Float[Tensor, "batch d_model"]:
        """Return ``J_phi(a)^T c`` with a per-row cotangent ``c`` (slower than ``dot_and_grad``)."""
        rows = [self.dot_and_grad(acts[i : i + 1], cotangent[i])[1] for i in range(acts.shape[0])]
        if not rows:
            return torch.zeros_like(acts)
        return torch.cat(rows)
