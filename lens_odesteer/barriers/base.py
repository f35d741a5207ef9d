"""The barrier interface: ``h(a)``, its exact gradient and the posterior it implies."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import torch
from jaxtyping import Float
from torch import Tensor

from lens_odesteer._component import Component
from lens_odesteer._validation import check_d_model


class AbstractBarrier(Component):
    r"""A fitted scalar function ``h`` on activations; the desired set is ``{a : h(a) >= 0}``.

    For density-ratio barriers ``h(a) = log p_+(a) - log p_-(a)``, the logit of a classifier
    corrected by the prior odds. Every barrier's gradient is analytic (no autograd), so it works
    inside ``torch.inference_mode()`` and ``torch.no_grad()``.
    """

    _scalar_attrs: ClassVar[tuple[str, ...]] = ("d_model_", "log_prior_ratio_")
    d_model_: int
    log_prior_ratio_: float

    @abstractmethod
    def fit(
        self,
        pos_acts: Float[Tensor, "n_pos d_model"],
        neg_acts: Float[Tensor, "n_neg d_model"],
    ) -> AbstractBarrier:
        """Fit on positive and negative activations (2-D, same width, finite)."""

    @abstractmethod
    def _value_and_grad(
        self, acts: Float[Tensor, "batch d_model"]
    ) -> tuple[Float[Tensor, " batch"], Float[Tensor, "batch d_model"]]:
        """Unchecked ``value_and_grad`` on 2-D input (the hot path)."""

    def _value(self, acts: Float[Tensor, "batch d_model"]) -> Float[Tensor, " batch"]:
        return self._value_and_grad(acts)[0]

    def value_and_grad(
        self, acts: Float[Tensor, "*batch d_model"]
    ) -> tuple[Float[Tensor, " *batch"], Float[Tensor, "*batch d_model"]]:
        """Return ``h(acts)`` and ``grad h(acts)``."""
        self._check_is_fitted()
        check_d_model(acts, self.d_model_)
        flat = acts.reshape(-1, acts.shape[-1])
        h, g = self._value_and_grad(flat)
        return h.reshape(acts.shape[:-1]), g.reshape(acts.shape)

    def value(self, acts: Float[Tensor, "*batch d_model"]) -> Float[Tensor, " *batch"]:
        """Return ``h(acts)``."""
        self._check_is_fitted()
        check_d_model(acts, self.d_model_)
        return self._value(acts.reshape(-1, acts.shape[-1])).reshape(acts.shape[:-1])

    def grad(self, acts: Float[Tensor, "*batch d_model"]) -> Float[Tensor, "*batch d_model"]:
        """Return ``grad h(acts)``."""
        return self.value_and_grad(acts)[1]

    def logit(self, acts: Float[Tensor, "*batch d_model"]) -> Float[Tensor, " *batch"]:
        """Classifier logit ``log P(pos|a) / P(neg|a)`` under the training prior."""
        return self.value(acts) - self.log_prior_ratio_

    def proba(self, acts: Float[Tensor, "*batch d_model"]) -> Float[Tensor, " *batch"]:
        """``P(positive | a)`` under the training class balance."""
        return torch.sigmoid(self.logit(acts))
