r"""TruthFlow: a velocity field learned by flow matching, from the negative to the positive rows.

Wang, Cao, Cao & Chen (ICML 2025) learn a time-dependent field ``v(a, t)`` whose flow over
``t in [0, 1]`` carries a representation from the hallucinated to the truthful side, with the
conditional flow-matching loss on straight interpolations, and integrate it with the midpoint
method at inference. Unlike ODESteer's barrier gradient, the field is free to curve with the
data, so this is the natural multi-step competitor.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from lens_odesteer._validation import (
    check_choice,
    check_finite_float,
    check_positive_int,
    check_seed,
)
from lens_odesteer.barriers.kernel import LinearBarrier
from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.flows.integrate import integrate
from lens_odesteer.flows.save import SaveAt
from lens_odesteer.flows.solvers import AbstractSolver, get_solver
from lens_odesteer.flows.trajectory import Trajectory
from lens_odesteer.steerers.base import AbstractSteerer
from lens_odesteer.steerers.linear import _top_right_singular_vector

__all__ = ["TruthFlow"]

#: Frequencies (multiples of pi) of the sinusoidal time features; ``t`` itself is the first one.
_TIME_FREQS = (1.0, 2.0, 3.0, 4.0)
_N_TIME = 1 + 2 * len(_TIME_FREQS)
_CHUNK = 1024


def _time_features(t: Tensor) -> Tensor:
    """``[t, sin(k pi t), cos(k pi t), ...]`` for a column of times ``[batch, 1]``."""
    parts = [t]
    for k in _TIME_FREQS:
        parts += [torch.sin(k * math.pi * t), torch.cos(k * math.pi * t)]
    return torch.cat(parts, dim=-1)


class TruthFlow(AbstractSteerer):
    r"""TruthFlow: integrate a flow-matched velocity field ``v(a, t)`` for a time ``T``.

    Training (Wang et al., 2025): for pairs ``(x_0, x_1)`` of a negative and a positive row and
    ``t ~ U[0, 1]``, the straight interpolation ``x_t = (1 - t) x_0 + t x_1`` has velocity
    ``x_1 - x_0``, and the field minimises the conditional flow-matching loss
    ``E |v(x_t, t) - (x_1 - x_0)|^2`` (Adam, ``n_iter`` minibatches, seeded). ``v`` is a two-layer
    SiLU network on standardised activations and sinusoidal features of ``t``, whose output is
    scaled per coordinate by the spread of the training velocities.

    Steering solves ``da/dt = v(a, t)`` from ``a`` over ``[0, T]`` with the library's fixed-step
    solvers (the paper's midpoint method by default): ``T = 1`` carries a negative row to the
    positive distribution; beyond 1 the field is held at ``t = 1`` (it keeps moving in the
    direction the flow arrives with). The paper then projects the correction ``a(T) - a`` onto
    the top singular directions of its training corrections; ``subspace_rank`` does that with
    the pair velocities ``x_1 - x_0`` (None, the default, keeps the whole correction, so the path
    is the learned flow itself; the rank is a per-task choice). ``vector_field`` is
    ``v(a, 0)``, the path's initial velocity; the path itself comes from ``trajectory``
    (``has_own_path``).

    The paper pairs each query's hallucinated and truthful representations. ``fit`` sees two sets
    of rows, so ``pairing="nearest"`` (default) pairs each negative with its nearest positive (a
    query-specific target when rows of the same prompt lie close together); ``"index"`` pairs
    ``pos[i]`` with ``neg[i]``; ``"random"`` draws fresh independent pairs for every minibatch
    (the standard independent coupling).

    TruthFlow has no barrier of its own; ``barrier_value`` is a linear probe's log density ratio
    fitted on the same rows (ITI's), used only to score paths.

    Main arguments:
        hidden: width of the network's two hidden layers.
        n_iter: training minibatches.
        pairing: ``"nearest"``, ``"index"`` or ``"random"`` (see above).
        solver, steps: integration (``"midpoint"`` and 10 steps by default); changing them on a
            fitted steerer keeps the fitted field.

    Other arguments:
        batch_size: rows per minibatch; lr: Adam's learning rate (cosine-decayed to a tenth).
        subspace_rank: project the correction on this many top singular directions (None: off).
        seed: seed of the initial weights, the minibatches and the times.

    Attributes:
        w1_ ``[hidden, d_model + 9]``, b1_, w2_ ``[hidden, hidden]``, b2_, w3_ ``[d_model,
        hidden]``, b3_: the network; mean_, scale_ ``[d_model]``: input standardisation;
        out_scale_ ``[d_model]``: output scale; subspace_ ``[k, d_model]`` or None; probe_: the
        probe behind ``barrier_value``; train_loss_: the flow-matching loss over the last tenth
        of training, relative to ``E |x_1 - x_0|^2``.

    Example:
        >>> import torch
        >>> from lens_odesteer.steerers import TruthFlow
        >>> g = torch.Generator().manual_seed(0)
        >>> pos, neg = torch.randn(64, 4, generator=g) + 2, torch.randn(64, 4, generator=g)
        >>> tf = TruthFlow(hidden=32, n_iter=300).fit(pos, neg)
        >>> moved = tf.steer(neg, T=1.0)
        >>> bool((moved.mean(0) - pos.mean(0)).norm() < 0.5 * (neg.mean(0) - pos.mean(0)).norm())
        True
    """

    _tensor_attrs = (
        "w1_",
        "b1_",
        "w2_",
        "b2_",
        "w3_",
        "b3_",
        "mean_",
        "scale_",
        "out_scale_",
        "subspace_",
    )
    _scalar_attrs = (*AbstractSteerer._base_scalars, "train_loss_")
    _component_attrs = ("probe_",)
    _optional_fitted = (*AbstractSteerer._optional_fitted, "subspace_")
    _refit_free = frozenset({"solver", "steps"})
    has_own_path: ClassVar[bool] = True
    T_meaning: ClassVar[str] = (
        "integration time of the learned flow (1 carries negatives to the positive "
        "distribution; beyond 1 the field is held at t = 1)"
    )

    w1_: Tensor
    b1_: Tensor
    w2_: Tensor
    b2_: Tensor
    w3_: Tensor
    b3_: Tensor
    mean_: Tensor
    scale_: Tensor
    out_scale_: Tensor
    subspace_: Tensor | None
    probe_: LinearBarrier
    train_loss_: float

    def __init__(
        self,
        hidden: int = 256,
        n_iter: int = 2000,
        pairing: Literal["nearest", "index", "random"] = "nearest",
        *,
        solver: str | AbstractSolver = "midpoint",
        steps: int = 10,
        batch_size: int = 256,
        lr: float = 1e-3,
        subspace_rank: int | None = None,
        seed: int = 0,
    ) -> None:
        self.hidden = hidden
        self.n_iter = n_iter
        self.pairing = pairing
        self.solver = solver
        self.steps = steps
        self.batch_size = batch_size
        self.lr = lr
        self.subspace_rank = subspace_rank
        self.seed = seed

    @property
    def kind(self) -> Literal["one_step", "flow"]:
        """``"flow"``: the steerer integrates its learned field."""
        return "flow"

    def _flow(self) -> tuple[AbstractSolver, int]:
        solver = get_solver(self.solver)
        if solver.adaptive:
            raise InvalidParameterError(
                f"TruthFlow integrates with a fixed-step solver; got {solver!r}. Use "
                "`solver='midpoint'` (the paper's), 'euler', 'heun' or 'rk4'."
            )
        return solver, check_positive_int(self.steps, "steps")

    # -- fitting ------------------------------------------------------------------------------
    def _fit(
        self, pos: Float[Tensor, "n_pos d_model"], neg: Float[Tensor, "n_neg d_model"]
    ) -> None:
        self._flow()
        check_positive_int(self.hidden, "hidden")
        check_positive_int(self.n_iter, "n_iter")
        check_positive_int(self.batch_size, "batch_size")
        check_seed(self.seed)
        lr = check_finite_float(self.lr, "lr", minimum=0.0, strict=True)
        pairing = check_choice(self.pairing, "pairing", ("nearest", "index", "random"))
        rank = self.subspace_rank
        if rank is not None:
            rank = check_positive_int(rank, "subspace_rank")
        gen = torch.Generator().manual_seed(self.seed)
        partner = _partners(pos, neg, pairing, gen)
        disp = pos[partner.to(pos.device)] - neg
        acts = torch.cat([pos, neg])
        n, d = acts.shape
        self.mean_ = acts.mean(0)
        self.scale_ = acts.std(0, correction=0).clamp_min(1e-6) if n > 1 else acts.new_ones(d)
        out_scale = disp.pow(2).mean(0).sqrt()
        self.out_scale_ = out_scale.clamp_min(1e-6 * float(out_scale.max().clamp_min(1e-30)))
        self._train(pos, neg, None if pairing == "random" else partner, disp, lr, gen)
        self.subspace_ = None
        if rank is not None:
            top = _top_directions(disp, min(rank, d, disp.shape[0]))
            self.subspace_ = top.to(pos.dtype).contiguous()  # row-major, as a loaded file
        self.probe_ = LinearBarrier().fit(pos, neg)

    def _train(
        self,
        pos: Tensor,
        neg: Tensor,
        partner: Tensor | None,
        disp: Tensor,
        lr: float,
        gen: torch.Generator,
    ) -> None:
        d, h = pos.shape[1], self.hidden
        dt, dev = pos.dtype, pos.device
        shapes = [(h, d + _N_TIME), (h, h), (d, h)]
        weights = [
            torch.randn(*s, generator=gen, dtype=torch.float64) / math.sqrt(s[1]) for s in shapes
        ]
        weights[2] = weights[2] * 0.01  # start near the zero field
        norm2 = float(disp.pow(2).sum(-1).mean().clamp_min(1e-30))
        batch = min(self.batch_size, max(neg.shape[0], 1))
        losses: list[float] = []
        with torch.inference_mode(False), torch.enable_grad():
            pos_t, neg_t = pos.clone(), neg.clone()
            params = [
                weights[0].to(device=dev, dtype=dt).requires_grad_(),
                torch.zeros(h, dtype=dt, device=dev).requires_grad_(),
                weights[1].to(device=dev, dtype=dt).requires_grad_(),
                torch.zeros(h, dtype=dt, device=dev).requires_grad_(),
                weights[2].to(device=dev, dtype=dt).requires_grad_(),
                torch.zeros(d, dtype=dt, device=dev).requires_grad_(),
            ]
            opt = torch.optim.Adam(params, lr=lr)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(
                opt, T_max=self.n_iter, eta_min=0.1 * lr
            )
            tail = max(1, self.n_iter // 10)
            for it in range(self.n_iter):
                i0 = torch.randint(0, neg_t.shape[0], (batch,), generator=gen)
                if partner is None:
                    i1 = torch.randint(0, pos_t.shape[0], (batch,), generator=gen)
                else:
                    i1 = partner[i0]
                t = torch.rand(batch, 1, generator=gen, dtype=torch.float64).to(dev, dt)
                x0, x1 = neg_t[i0.to(dev)], pos_t[i1.to(dev)]
                xt = (1 - t) * x0 + t * x1
                pred = self._net(params, xt, t)
                loss = (pred - (x1 - x0)).pow(2).sum(-1).mean() / norm2
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                if it >= self.n_iter - tail:
                    losses.append(float(loss.detach()))
        final = [p.detach().clone() for p in params]
        if not all(bool(torch.isfinite(p).all()) for p in final):
            raise FloatingPointError(
                "TruthFlow training diverged (non-finite weights); lower `lr`."
            )
        self.w1_, self.b1_, self.w2_, self.b2_, self.w3_, self.b3_ = final
        self.train_loss_ = float(sum(losses) / len(losses))

    # -- the field ----------------------------------------------------------------------------
    def _net(self, params: list[Tensor], x: Tensor, t: Tensor) -> Tensor:
        w1, b1, w2, b2, w3, b3 = params
        z = torch.cat([(x - self.mean_) / self.scale_, _time_features(t)], dim=-1)
        hid = F.silu(F.silu(z @ w1.mT + b1) @ w2.mT + b2)
        return (hid @ w3.mT + b3) * self.out_scale_

    def _field(self, x: Tensor, t: Tensor) -> Tensor:
        params = [self.w1_, self.b1_, self.w2_, self.b2_, self.w3_, self.b3_]
        return self._net(params, x, t.clamp(0.0, 1.0))

    def _project(self, start: Tensor, end: Tensor) -> Tensor:
        """``start + P (end - start)`` with ``P`` the subspace projection (identity if none)."""
        if self.subspace_ is None:
            return end
        basis = self.subspace_
        return start + ((end - start) @ basis.mT) @ basis

    def _velocity(self, acts: Float[Tensor, "batch d_model"]) -> Float[Tensor, "batch d_model"]:
        v = self._field(acts, acts.new_zeros(acts.shape[0], 1))
        if self.subspace_ is None:
            return v
        return (v @ self.subspace_.mT) @ self.subspace_

    def _augmented(self) -> Callable[[Tensor], Tensor]:
        """The autonomous field on ``[a, t]`` (time as a last coordinate with ``dt/ds = 1``)."""

        def field(y: Tensor) -> Tensor:
            x, t = y[:, :-1], y[:, -1:]
            return torch.cat([self._field(x, t), torch.ones_like(t)], dim=-1)

        return field

    def _solve(self, acts: Tensor, T: float, save: SaveAt) -> Trajectory:
        solver, steps = self._flow()
        y0 = torch.cat([acts, acts.new_zeros(acts.shape[0], 1)], dim=-1)
        traj = integrate(self._augmented(), y0, T, solver=solver, steps=steps, save=save)
        ys = self._project(acts.unsqueeze(0), traj.ys[..., :-1])
        return Trajectory(traj.ts, ys, None, traj.n_field_evals, traj.n_row_evals)

    def _steer(
        self, acts: Float[Tensor, "batch d_model"], T: float
    ) -> Float[Tensor, "batch d_model"]:
        return self._solve(acts, T, SaveAt()).ys[-1]

    def _trajectory(
        self, acts: Float[Tensor, "batch d_model"], T: float, n_save: int | None
    ) -> Trajectory:
        return self._solve(acts, T, SaveAt(steps=True))

    def _barrier(self, acts: Float[Tensor, "batch d_model"]) -> Float[Tensor, " batch"]:
        return self.probe_._value(acts)


def _partners(pos: Tensor, neg: Tensor, pairing: str, gen: torch.Generator) -> Tensor:
    """Index of the positive row paired with each negative row (a random draw for "random")."""
    if pairing == "index":
        if pos.shape[0] != neg.shape[0]:
            raise InvalidParameterError(
                f"TruthFlow(pairing='index') needs as many positive as negative rows; got "
                f"{pos.shape[0]} and {neg.shape[0]}. Use pairing='nearest' or 'random'."
            )
        return torch.arange(neg.shape[0])
    if pairing == "random":
        return torch.randint(0, pos.shape[0], (neg.shape[0],), generator=gen)
    out = [torch.cdist(neg[i : i + _CHUNK], pos).argmin(-1) for i in range(0, len(neg), _CHUNK)]
    return torch.cat(out).cpu()


def _top_directions(mat: Tensor, k: int) -> Tensor:
    """The top ``k`` right singular vectors of ``mat`` (uncentred), as rows ``[k, d]``."""
    m64 = mat.to(torch.float64)
    if k == 1:
        return _top_right_singular_vector(m64).unsqueeze(0)
    _u, _s, vh = torch.linalg.svd(m64, full_matrices=False)
    return vh[:k]
