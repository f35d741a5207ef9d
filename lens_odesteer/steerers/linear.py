"""One-step baselines with a constant field: CAA (mean difference), mean-centring, ITI (probe)
and RepE (PCA).

A linear barrier has a constant gradient, so one Euler step ``a + T v`` is the exact flow and
multi-step integration changes nothing; these are ODESteer's baselines in the unified view.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from jaxtyping import Float
from torch import Tensor

from lens_odesteer._validation import check_choice, check_seed
from lens_odesteer.barriers.kernel import LinearBarrier
from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.steerers.base import AbstractSteerer, _OneStepSteerer


class _ConstantFieldSteerer(_OneStepSteerer):
    """``v(a) = direction_``; ``h(a) = direction_ . a + offset_``."""

    _tensor_attrs = ("direction_",)
    _scalar_attrs = (*AbstractSteerer._base_scalars, "offset_")

    direction_: Tensor
    offset_: float

    def _velocity(self, acts: Float[Tensor, "batch d_model"]) -> Float[Tensor, "batch d_model"]:
        return self.direction_.expand_as(acts).clone()

    def _steer(
        self, acts: Float[Tensor, "batch d_model"], T: float
    ) -> Float[Tensor, "batch d_model"]:
        return acts + T * self.direction_

    def _barrier(self, acts: Float[Tensor, "batch d_model"]) -> Float[Tensor, " batch"]:
        return acts @ self.direction_ + self.offset_


class CAA(_ConstantFieldSteerer):
    r"""Activation addition with the mean difference (ActAdd / CAA): ``a + T (mu_+ - mu_-)``.

    ``T`` is a multiplier of the unnormalised mean difference (CAA's usual ``T = 1``). The barrier
    is the log density ratio of two unit-covariance Gaussians,
    ``h(a) = (mu_+ - mu_-) . a - (|mu_+|^2 - |mu_-|^2) / 2``.

    Attributes:
        direction_: ``mu_+ - mu_-``; ``offset_``: the constant of ``h``.

    Example:
        >>> import torch, lens_odesteer as lo
        >>> caa = lo.CAA().fit(torch.ones(3, 4), torch.zeros(3, 4))
        >>> caa.steer(torch.zeros(1, 4), T=1.0)
        tensor([[1., 1., 1., 1.]])
    """

    T_meaning: ClassVar[str] = "multiplier of the mean difference"

    def __init__(self) -> None:
        pass

    def _fit(
        self, pos: Float[Tensor, "n_pos d_model"], neg: Float[Tensor, "n_neg d_model"]
    ) -> None:
        mu_p, mu_n = pos.mean(0), neg.mean(0)
        self.direction_ = mu_p - mu_n
        self.offset_ = float(-(mu_p @ mu_p - mu_n @ mu_n) / 2)


class MeanCentring(_ConstantFieldSteerer):
    r"""Mean-centred activation addition (Jorgensen et al., 2023): ``a + T (mu_+ - mu_all)``.

    The steering vector is the mean of the target (positive) activations minus the mean of *all*
    fit activations, ``mu_all = (n_+ mu_+ + n_- mu_-) / (n_+ + n_-)``, which removes the offset
    every activation shares. Pass the target rows as positives and the rest of the training
    sample as negatives (the paper subtracts the mean over the whole training set). With a contrast
    set the vector is ``n_- / n`` times CAA's mean difference, so at the same norm-relative
    ``strength`` the two coincide; they differ in ``T`` (a multiplier of this vector; the paper's
    usual coefficient is applied to it unnormalised). Barrier: the log density ratio of
    unit-covariance Gaussians at ``mu_+`` and ``mu_all``,
    ``h(a) = (mu_+ - mu_all) . a - (|mu_+|^2 - |mu_all|^2) / 2``.

    Attributes:
        direction_: ``mu_+ - mu_all``; ``offset_``: the constant of ``h``.

    Example:
        >>> import torch
        >>> from lens_odesteer.steerers import MeanCentring
        >>> mc = MeanCentring().fit(torch.ones(3, 2), torch.zeros(1, 2))
        >>> mc.direction_  # mean of target rows minus mean of all four rows
        tensor([0.2500, 0.2500])
    """

    T_meaning: ClassVar[str] = "multiplier of the target mean minus the mean of all activations"

    def __init__(self) -> None:
        pass

    def _fit(
        self, pos: Float[Tensor, "n_pos d_model"], neg: Float[Tensor, "n_neg d_model"]
    ) -> None:
        mu_p = pos.mean(0)
        mu_all = torch.cat([pos, neg]).mean(0)
        self.direction_ = mu_p - mu_all
        self.offset_ = float(-(mu_p @ mu_p - mu_all @ mu_all) / 2)


class ITI(_ConstantFieldSteerer):
    r"""Inference-time intervention along a linear probe: ``a + T w / |w|``.

    The probe is an L2 logistic regression on the activations
    (:class:`~lens_odesteer.barriers.LinearBarrier`); its log-density-ratio is the barrier and its
    unit normal the direction, so ``T`` is a distance in activation units.

    Args:
        C: inverse L2 strength of the probe.
        max_iter, tol: L-BFGS settings.

    Attributes:
        barrier_: the fitted probe; direction_: its unit normal ``w / |w|``.

    Example:
        >>> import torch, lens_odesteer as lo
        >>> iti = lo.ITI().fit(torch.randn(40, 4) + 1, torch.randn(40, 4) - 1)
        >>> round(float(iti.direction_.norm()), 4)
        1.0
    """

    _tensor_attrs = ("direction_",)
    _scalar_attrs = AbstractSteerer._base_scalars
    _component_attrs = ("barrier_",)
    T_meaning: ClassVar[str] = "distance along the unit probe normal"

    def __init__(self, C: float = 1.0, max_iter: int = 1000, tol: float = 1e-4) -> None:
        self.C = C
        self.max_iter = max_iter
        self.tol = tol

    def _fit(
        self, pos: Float[Tensor, "n_pos d_model"], neg: Float[Tensor, "n_neg d_model"]
    ) -> None:
        self.barrier_ = LinearBarrier(C=self.C, max_iter=self.max_iter, tol=self.tol).fit(pos, neg)
        w = self.barrier_.coef_
        self.direction_ = w / w.norm().clamp_min(1e-12)

    def _barrier(self, acts: Float[Tensor, "batch d_model"]) -> Float[Tensor, " batch"]:
        return self.barrier_._value(acts)


class RepE(_ConstantFieldSteerer):
    r"""Representation engineering: the first principal component of paired differences.

    ``u_1`` is the top right-singular vector of the *uncentred* matrix of differences
    ``pos_i - neg_i`` (centring would remove the shared shift that carries the concept), with its
    sign aligned to ``mu_+ - mu_-``; steering is ``a + T u_1`` with ``T`` a distance. The barrier is
    ``h(a) = u_1 . (a - (mu_+ + mu_-) / 2)``.

    Args:
        pairing: ``"index"`` pairs ``pos[i]`` with ``neg[i]`` (needs equal counts); ``"random"``
            draws ``max(n_pos, n_neg)`` pairs covering every row (seeded); ``"auto"`` is
            ``"index"`` for equal counts and ``"random"`` otherwise.
        seed: seed of the random pairing.

    Example:
        >>> import torch, lens_odesteer as lo
        >>> rep = lo.RepE().fit(torch.randn(20, 4) + 1, torch.randn(20, 4) - 1)
        >>> round(float(rep.direction_.norm()), 4)
        1.0
    """

    T_meaning: ClassVar[str] = "distance along the unit principal direction"

    def __init__(self, pairing: Literal["auto", "index", "random"] = "auto", seed: int = 0) -> None:
        self.pairing = pairing
        self.seed = seed

    def _fit(
        self, pos: Float[Tensor, "n_pos d_model"], neg: Float[Tensor, "n_neg d_model"]
    ) -> None:
        pairing = check_choice(self.pairing, "pairing", ("auto", "index", "random"))
        check_seed(self.seed)
        n_p, n_n = pos.shape[0], neg.shape[0]
        if pairing == "auto":
            pairing = "index" if n_p == n_n else "random"
        if pairing == "index":
            if n_p != n_n:
                raise InvalidParameterError(
                    f"RepE(pairing='index') needs as many positive as negative rows; got {n_p} and "
                    f"{n_n}. Use pairing='random' (or 'auto') or pass paired data."
                )
            diffs = pos - neg
        else:
            gen = torch.Generator().manual_seed(self.seed)
            m = max(n_p, n_n)
            ip = torch.randperm(n_p, generator=gen).repeat(m // n_p + 1)[:m]
            ineg = torch.randperm(n_n, generator=gen).repeat(m // n_n + 1)[:m]
            diffs = pos[ip.to(pos.device)] - neg[ineg.to(neg.device)]
        u1 = _top_right_singular_vector(diffs).to(pos.dtype)
        mean_diff = pos.mean(0) - neg.mean(0)
        if float(u1 @ mean_diff) < 0:
            u1 = -u1
        self.direction_ = u1
        midpoint = (pos.mean(0) + neg.mean(0)) / 2
        self.offset_ = float(-(self.direction_ @ midpoint))


def _top_right_singular_vector(mat: Tensor) -> Tensor:
    """Unit top right-singular vector of ``mat`` via the smaller Gram matrix (float64)."""
    m64 = mat.to(torch.float64)
    n, d = m64.shape
    if d <= n:
        _vals, vecs = torch.linalg.eigh(m64.T @ m64)
        u = vecs[:, -1]
    else:
        _vals, vecs = torch.linalg.eigh(m64 @ m64.T)
        u = m64.T @ vecs[:, -1]
    norm = u.norm()
    if float(norm) == 0.0:
        return torch.zeros(d, dtype=torch.float64, device=mat.device)
    return u / norm
