r"""A learned-value barrier: a small MLP ``V(a)`` trained to score positive over negative.

This is the "output optimisation" view of RE-Control: a value network on the hidden state whose
gradient ascent moves activations toward higher value. Here ``V`` is a one-hidden-layer tanh MLP
on standardised activations, trained with the logistic loss on the same positive/negative data
as the other barriers (full-batch L-BFGS, deterministic given ``seed``), and
``h(a) = V(a) + log((1 - pi) / pi)``. Its gradient is analytic:
``grad h = W1^T (w2 * (1 - tanh(z)^2)) / sigma`` with ``z = W1 (a - mu) / sigma + b1``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from lens_odesteer._validation import check_finite_float, check_positive_int, check_seed
from lens_odesteer.barriers.base import AbstractBarrier


class MLPValueBarrier(AbstractBarrier):
    """One-hidden-layer tanh value network as a barrier (RE-Control style).

    Args:
        hidden: hidden width.
        weight_decay: L2 penalty on all weights (per sample, as in ``mean loss + wd/2 |theta|^2``).
        max_iter: L-BFGS iterations (the network is not trained to convergence; like early
            stopping, the budget is part of the regularisation).
        standardize: standardise each input coordinate with the fit data's mean and std.
        seed: seed of the initial weights.

    Attributes:
        w1_ ``[hidden, d_model]``, b1_ ``[hidden]``, w2_ ``[hidden]``, b2_: network weights.
        mean_, scale_ ``[d_model]``: input standardisation.
        log_prior_ratio_: ``log((1 - pi) / pi)``.

    Example:
        >>> import torch
        >>> from lens_odesteer.barriers import MLPValueBarrier
        >>> bar = MLPValueBarrier(hidden=8).fit(torch.randn(30, 4) + 1, torch.randn(30, 4) - 1)
        >>> bar.grad(torch.zeros(2, 4)).shape
        torch.Size([2, 4])
    """

    _tensor_attrs = ("w1_", "b1_", "w2_", "mean_", "scale_")
    _scalar_attrs = ("d_model_", "log_prior_ratio_", "b2_", "n_iter_")

    def __init__(
        self,
        hidden: int = 64,
        weight_decay: float = 1e-3,
        max_iter: int = 300,
        standardize: bool = True,
        seed: int = 0,
    ) -> None:
        self.hidden = hidden
        self.weight_decay = weight_decay
        self.max_iter = max_iter
        self.standardize = standardize
        self.seed = seed

    def fit(
        self,
        pos_acts: Float[Tensor, "n_pos d_model"],
        neg_acts: Float[Tensor, "n_neg d_model"],
    ) -> MLPValueBarrier:
        check_positive_int(self.hidden, "hidden")
        check_positive_int(self.max_iter, "max_iter")
        check_seed(self.seed)
        wd = check_finite_float(self.weight_decay, "weight_decay", minimum=0.0)
        acts = torch.cat([pos_acts, neg_acts])
        n, d = acts.shape
        signs = torch.cat([acts.new_ones(len(pos_acts)), -acts.new_ones(len(neg_acts))])
        if self.standardize:
            mean = acts.mean(0)
            scale = acts.std(0, correction=0).clamp_min(1e-6) if n > 1 else acts.new_ones(d)
        else:
            mean, scale = acts.new_zeros(d), acts.new_ones(d)
        x = (acts - mean) / scale
        gen = torch.Generator().manual_seed(self.seed)
        w1 = torch.randn(self.hidden, d, generator=gen, dtype=torch.float64) / math.sqrt(d)
        w2 = torch.randn(self.hidden, generator=gen, dtype=torch.float64) / math.sqrt(self.hidden)
        params = [
            w1.to(acts).requires_grad_(),
            acts.new_zeros(self.hidden).requires_grad_(),
            w2.to(acts).requires_grad_(),
            acts.new_zeros(()).requires_grad_(),
        ]
        opt = torch.optim.LBFGS(
            params,
            max_iter=self.max_iter,
            tolerance_grad=1e-6,
            tolerance_change=0.0,
            line_search_fn="strong_wolfe",
        )

        def closure() -> Tensor:
            opt.zero_grad()
            a1, c1, a2, c2 = params
            out = torch.tanh(x @ a1.T + c1) @ a2 + c2
            loss = F.softplus(-signs * out).mean() + 0.5 * wd * ((a1 * a1).sum() + (a2 * a2).sum())
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        final = [p.detach().clone() for p in params]
        if not all(bool(torch.isfinite(p).all()) for p in final):
            raise FloatingPointError(
                "MLPValueBarrier training diverged (non-finite weights); raise `weight_decay`."
            )
        n_iter = int(opt.state[opt._params[0]].get("n_iter", 0))
        pi = len(pos_acts) / n
        self.w1_, self.b1_, self.w2_ = final[0], final[1], final[2]
        self.b2_ = float(final[3])
        self.mean_, self.scale_ = mean, scale
        self.log_prior_ratio_ = math.log((1.0 - pi) / pi)
        self.n_iter_ = n_iter
        self.d_model_ = d
        return self

    def _value_and_grad(
        self, acts: Float[Tensor, "batch d_model"]
    ) -> tuple[Float[Tensor, " batch"], Float[Tensor, "batch d_model"]]:
        x = (acts - self.mean_) / self.scale_
        hid = torch.tanh(x @ self.w1_.mT + self.b1_)
        value = hid @ self.w2_ + (self.b2_ + self.log_prior_ratio_)
        grad = ((1 - hid * hid) * self.w2_) @ self.w1_ / self.scale_
        return value, grad
