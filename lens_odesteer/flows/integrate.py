"""Integrate an autonomous field ``dy/dt = v(y)`` from ``t = 0`` to ``T`` for a batch of rows.

Fixed-step solvers use ``n_steps`` equal steps. The adaptive ``"dopri5"`` solver keeps a step
size per row and controls the local error per row, stepping exactly onto every save time.

Per-row early stopping: with ``margin`` set, a row is frozen as soon as the monitored value (the
barrier ``h``) at the start of a step is ``>= margin``; rows that start there are never moved.
Frozen rows cost no further field evaluations, and the batch keeps its shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol, runtime_checkable

import torch
from jaxtyping import Float
from torch import Tensor

from lens_odesteer._validation import check_finite_float, check_positive_int
from lens_odesteer.errors import IntegrationError, InvalidParameterError
from lens_odesteer.flows.solvers import ExplicitRK, get_solver
from lens_odesteer.flows.trajectory import Trajectory


@runtime_checkable
class MonitoredField(Protocol):
    """A field that can also return the monitored value (the barrier) at the same point."""

    def __call__(self, y: Tensor) -> Tensor: ...

    def velocity_and_value(self, y: Tensor) -> tuple[Tensor, Tensor]: ...


def integrate(
    field: Callable[[Tensor], Tensor],
    y0: Float[Tensor, "batch d_model"],
    T: float,
    *,
    solver: str | ExplicitRK = "euler",
    n_steps: int = 10,
    margin: float | None = None,
    save: Literal["all", "end"] = "all",
    n_save: int | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    max_steps: int = 10_000,
    min_step: float | None = None,
    stop_on_reversal: bool = False,
) -> Trajectory:
    """Solve ``dy/dt = field(y)`` on ``[0, T]`` for every row of ``y0``.

    Main arguments:
        field: ``[batch, d] -> [batch, d]`` velocity; must provide ``velocity_and_value`` (see
            :class:`MonitoredField`) when ``margin`` is set.
        y0: initial states ``[batch, d]``.
        T: horizon (``>= 0``). ``T = 0`` returns the input unchanged.
        solver: ``"euler"``, ``"midpoint"``, ``"heun"``, ``"rk4"`` (fixed step) or ``"dopri5"``.
        n_steps: number of steps (fixed-step) or the initial step count guess (adaptive).

    Other arguments:
        margin: freeze a row once its monitored value is ``>= margin``.
        save: ``"all"`` saves every step (fixed-step) or ``n_save`` equally spaced times
            (adaptive, default ``n_steps + 1``); ``"end"`` saves only ``0`` and ``T``.
        rtol, atol: adaptive error tolerances (per row, RMS norm).
        max_steps: adaptive step budget per row before :class:`IntegrationError`.
        min_step: adaptive steps this short are accepted whatever their error estimate
            (default ``T * 1e-3``). A normalised gradient field is discontinuous at a maximum of
            ``h``; without a floor the error control would shrink steps there forever.
        stop_on_reversal: adaptive only; hold a row still once its field points against the
            field of its previous accepted step. For a normalised gradient flow that means the
            row has reached a maximum of ``h``, where the flow ends.

    Returns:
        A :class:`Trajectory` with ``ys`` of shape ``[n_saved, batch, d]`` (``hs`` is None; the
        steerers fill it in).

    Example:
        >>> import torch
        >>> from lens_odesteer.flows import integrate
        >>> traj = integrate(lambda y: -y, torch.ones(2, 3), 1.0, solver="rk4", n_steps=20)
        >>> round(float(traj.y1[0, 0]), 4)  # exp(-1)
        0.3679
    """
    T = check_finite_float(T, "T", minimum=0.0)
    n_steps = check_positive_int(n_steps, "n_steps")
    method = get_solver(solver)
    if save not in ("all", "end"):
        raise InvalidParameterError(f"`save` must be 'all' or 'end'; got {save!r}.")
    if margin is not None:
        margin = check_finite_float(margin, "margin")
        if not isinstance(field, MonitoredField):
            raise InvalidParameterError(
                "`margin` needs a field with `velocity_and_value` (a barrier steerer's field); "
                f"got {type(field).__name__}."
            )
    if y0.ndim != 2:
        raise InvalidParameterError(f"`y0` must be [batch, d]; got shape {tuple(y0.shape)}.")
    if method.adaptive:
        n_save_eff = 2 if save == "end" else (n_save or n_steps + 1)
        check_positive_int(n_save_eff, "n_save", minimum=2)
        floor = T * 1e-3 if min_step is None else check_finite_float(min_step, "min_step")
        return _integrate_adaptive(
            field,
            y0,
            T,
            method,
            n_steps,
            margin,
            n_save_eff,
            rtol,
            atol,
            max_steps,
            floor,
            stop_on_reversal,
        )
    return _integrate_fixed(field, y0, T, method, n_steps, margin, save)


def _start(
    field: Callable[[Tensor], Tensor], y: Tensor, margin: float | None
) -> tuple[Tensor, Tensor | None]:
    if margin is None:
        return field(y), None
    assert isinstance(field, MonitoredField)
    return field.velocity_and_value(y)


def _integrate_fixed(
    field: Callable[[Tensor], Tensor],
    y0: Tensor,
    T: float,
    method: ExplicitRK,
    n_steps: int,
    margin: float | None,
    save: str,
) -> Trajectory:
    batch = y0.shape[0]
    ts = torch.linspace(0.0, T, n_steps + 1, dtype=torch.float64)
    stopped = torch.zeros(batch, dtype=torch.bool, device=y0.device) if margin is not None else None
    if T == 0.0 or batch == 0:
        n_out = n_steps + 1 if save == "all" else 2
        ys = y0.unsqueeze(0).expand(n_out, *y0.shape).clone()
        return Trajectory(ts if save == "all" else ts[[0, -1]], ys, None, 0, 0, stopped)
    dt = T / n_steps
    y = y0.clone()
    saved = [y0.clone()] if save == "all" else []
    n_evals = n_rows = 0
    for _ in range(n_steps):
        if stopped is None:
            k1, _h = _start(field, y, None)
            n_evals, n_rows = n_evals + 1, n_rows + batch
            ks = method.stages(field, y, torch.as_tensor(dt, dtype=y.dtype), k1)
            n_evals, n_rows = n_evals + len(ks) - 1, n_rows + batch * (len(ks) - 1)
            y = method.combine(y, torch.as_tensor(dt, dtype=y.dtype), ks, method.b)
        else:
            idx = (~stopped).nonzero().flatten()
            if idx.numel() > 0:
                y_act = y.index_select(0, idx)
                k1, h = _start(field, y_act, margin)
                n_evals, n_rows = n_evals + 1, n_rows + idx.numel()
                assert h is not None and margin is not None
                reached = h >= margin
                stopped[idx[reached]] = True
                keep = ~reached
                if bool(keep.any()):
                    sub = idx[keep]
                    y_sub, k1_sub = y_act[keep], k1[keep]
                    ks = method.stages(field, y_sub, torch.as_tensor(dt, dtype=y.dtype), k1_sub)
                    extra = len(ks) - 1
                    n_evals, n_rows = n_evals + extra, n_rows + extra * sub.numel()
                    y = y.index_copy(
                        0,
                        sub,
                        method.combine(y_sub, torch.as_tensor(dt, dtype=y.dtype), ks, method.b),
                    )
        if save == "all":
            saved.append(y)
    if save == "end":
        saved = [y0.clone(), y]
        ts = ts[[0, -1]]
    return Trajectory(ts, torch.stack(saved), None, n_evals, n_rows, stopped)


def _integrate_adaptive(
    field: Callable[[Tensor], Tensor],
    y0: Tensor,
    T: float,
    method: ExplicitRK,
    n_steps: int,
    margin: float | None,
    n_save: int,
    rtol: float,
    atol: float,
    max_steps: int,
    min_step: float,
    stop_on_reversal: bool,
) -> Trajectory:
    assert method.b_err is not None
    rtol = check_finite_float(rtol, "rtol", minimum=0.0)
    atol = check_finite_float(atol, "atol", minimum=0.0)
    if rtol == 0.0 and atol == 0.0:
        raise InvalidParameterError("`rtol` and `atol` cannot both be 0 for an adaptive solver.")
    check_positive_int(max_steps, "max_steps")
    batch = y0.shape[0]
    ts = torch.linspace(0.0, T, n_save, dtype=torch.float64)
    ys = y0.unsqueeze(0).repeat(n_save, *([1] * y0.ndim))
    stopped = torch.zeros(batch, dtype=torch.bool, device=y0.device) if margin is not None else None
    if T == 0.0 or batch == 0:
        return Trajectory(ts, ys, None, 0, 0, stopped)
    y = y0.clone()
    t = torch.zeros(batch, dtype=torch.float64, device=y0.device)
    dt = torch.full((batch,), T / n_steps, dtype=torch.float64, device=y0.device)
    next_save = torch.ones(batch, dtype=torch.long, device=y0.device)
    done = torch.zeros(batch, dtype=torch.bool, device=y0.device)
    ts_dev = ts.to(y0.device)
    n_evals = n_rows = n_rejected = 0
    steps_taken = torch.zeros(batch, dtype=torch.long, device=y0.device)
    order = min(method.order, 4)
    prev_k1 = torch.zeros_like(y0) if stop_on_reversal else None

    def hold(rows: Tensor) -> None:
        done[rows] = True
        for r in rows.tolist():  # fill the remaining save slots with the held state
            ys[int(next_save[r]) :, r] = y[r]

    while not bool(done.all()):
        idx = (~done).nonzero().flatten()
        if int(steps_taken[idx].max()) >= max_steps:
            raise IntegrationError(
                f"The adaptive solver used {max_steps} steps on a row without reaching T={T}; "
                "raise `max_steps`, loosen `rtol`/`atol`, or use a fixed-step solver."
            )
        y_r = y.index_select(0, idx)
        k1, h = _start(field, y_r, margin)
        n_evals, n_rows = n_evals + 1, n_rows + idx.numel()
        if h is not None:
            assert stopped is not None and margin is not None
            reached = h >= margin
            if bool(reached.any()):
                stopped[idx[reached]] = True
                hold(idx[reached])
                keep = ~reached
                idx, y_r, k1 = idx[keep], y_r[keep], k1[keep]
                if idx.numel() == 0:
                    continue
        if prev_k1 is not None:
            reversed_ = (k1 * prev_k1[idx]).sum(-1) < 0
            if bool(reversed_.any()):
                hold(idx[reversed_])
                keep = ~reversed_
                idx, y_r, k1 = idx[keep], y_r[keep], k1[keep]
                if idx.numel() == 0:
                    continue
        target = ts_dev[next_save[idx]]
        remaining = target - t[idx]
        dt_r = torch.minimum(dt[idx], remaining)
        hits = dt_r >= remaining
        step = dt_r.to(y.dtype).unsqueeze(-1)
        ks = method.stages(field, y_r, step, k1)
        extra = len(ks) - 1
        n_evals, n_rows = n_evals + extra, n_rows + extra * idx.numel()
        y_hi = method.combine(y_r, step, ks, method.b)
        y_lo = method.combine(y_r, step, ks, method.b_err)
        scale = atol + rtol * torch.maximum(y_r.abs(), y_hi.abs())
        err = ((y_hi - y_lo) / scale).pow(2).mean(-1).sqrt().to(torch.float64)
        accept = (err <= 1.0) | (dt_r <= min_step)
        factor = torch.where(
            err > 0, 0.9 * err.clamp_min(1e-10).pow(-1.0 / (order + 1)), torch.full_like(err, 5.0)
        ).clamp(0.2, 5.0)
        n_rejected += int((~accept).sum())
        steps_taken[idx] += 1
        acc = idx[accept]
        if acc.numel() > 0:
            y = y.index_copy(0, acc, y_hi[accept])
            if prev_k1 is not None:
                prev_k1[acc] = k1[accept]
            new_t = torch.where(hits[accept], target[accept], t[acc] + dt_r[accept])
            t[acc] = new_t
            hit_rows = acc[hits[accept]]
            if hit_rows.numel() > 0:
                slots = next_save[hit_rows]
                ys[slots, hit_rows] = y[hit_rows]
                next_save[hit_rows] = slots + 1
                done[hit_rows] = next_save[hit_rows] >= n_save
        new_dt = torch.where(accept & hits, torch.maximum(dt[idx], dt_r * factor), dt_r * factor)
        dt[idx] = new_dt.clamp_min(min_step)
    return Trajectory(ts, ys, None, n_evals, n_rows, stopped, n_rejected)
