"""L2-regularised logistic regression fitted in torch with L-BFGS.

The objective is scikit-learn's ``LogisticRegression(C=C, solver="lbfgs")`` divided by the number
of samples: ``mean_i log(1 + exp(-y_i (w . x_i + b))) + ||w||^2 / (2 C n)`` with ``y in {-1, +1}``;
the intercept is not penalised. Dividing by ``n`` leaves the minimiser unchanged and makes the
gradient tolerance comparable to scikit-learn's ``tol`` (max-abs of the gradient).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor

from lens_odesteer._validation import check_finite_float, check_positive_int


@dataclass(frozen=True)
class LogisticFit:
    """Result of :func:`fit_logistic`."""

    coef: Float[Tensor, " n_feat"]
    intercept: float
    n_iter: int
    converged: bool
    grad_max: float


def fit_logistic(
    feats: Float[Tensor, "n_samples n_feat"],
    labels: Bool[Tensor, " n_samples"],
    *,
    C: float = 1.0,
    max_iter: int = 1000,
    tol: float = 1e-4,
    fit_intercept: bool = True,
) -> LogisticFit:
    """Fit an L2 logistic regression (label True = positive) and return its coefficients.

    Runs in the dtype of ``feats``. Warns (``UserWarning``) if L-BFGS stops before the max-abs
    gradient falls below ``tol``.

    Example:
        >>> import torch
        >>> from lens_odesteer.barriers.logistic import fit_logistic
        >>> x = torch.cat([torch.randn(50, 3) + 2, torch.randn(50, 3) - 2])
        >>> y = torch.arange(100) < 50
        >>> fit = fit_logistic(x, y)
        >>> bool(((x @ fit.coef + fit.intercept > 0) == y).float().mean() > 0.9)
        True
    """
    C = check_finite_float(C, "C", minimum=0.0, strict=True)
    check_positive_int(max_iter, "max_iter")
    tol = check_finite_float(tol, "tol", minimum=0.0, strict=True)
    n, p = feats.shape
    signs = labels.to(feats.dtype) * 2 - 1
    theta = torch.zeros(p + 1, dtype=feats.dtype, device=feats.device, requires_grad=True)
    reg = 1.0 / (C * n)
    opt = torch.optim.LBFGS(
        [theta],
        lr=1.0,
        max_iter=max_iter,
        max_eval=max_iter * 2,
        tolerance_grad=tol,
        tolerance_change=0.0,
        history_size=10,
        line_search_fn="strong_wolfe",
    )
    n_evals = 0

    def closure() -> Tensor:
        nonlocal n_evals
        n_evals += 1
        opt.zero_grad()
        w = theta[:p]
        b = theta[p] if fit_intercept else theta.new_zeros(())
        margins = (feats @ w + b) * signs
        loss = F.softplus(-margins).mean() + 0.5 * reg * (w @ w)
        loss.backward()
        if not fit_intercept:
            assert theta.grad is not None
            theta.grad[p] = 0.0
        return loss

    with torch.enable_grad():
        opt.step(closure)
        closure()
    assert theta.grad is not None
    grad_max = float(theta.grad.abs().max())
    state = opt.state[opt._params[0]]
    n_iter = int(state.get("n_iter", 0))
    converged = grad_max <= tol
    if not converged:
        warnings.warn(
            f"Logistic regression stopped after {n_iter} L-BFGS iterations with max |grad| = "
            f"{grad_max:.2e} > tol = {tol:.1e}; increase `max_iter` or `tol`.",
            UserWarning,
            stacklevel=3,
        )
    coef = theta.detach()[:p].clone()
    intercept = float(theta.detach()[p]) if fit_intercept else 0.0
    return LogisticFit(coef, intercept, n_iter, converged, grad_max)
