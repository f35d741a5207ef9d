"""Integrate an autonomous field ``dy/dt = v(y)`` from ``t = 0`` to ``T`` for a batch of rows.

Each concern is its own argument (as in diffrax): the solver (``Euler()``, ..., ``Dopri5()``),
the steps (an int for fixed-step solvers, :class:`~lens_odesteer.flows.AdaptiveSteps` for the
adaptive one), what to save (:class:`~lens_odesteer.flows.SaveAt`) and when a row stops (a stop
event, see :mod:`lens_odesteer.flows.control`). Fixed-step solvers take ``steps`` equal steps;
the adaptive solver keeps a step size per row, controls the local error per row and steps
exactly onto every save time. Both loops freeze rows through the same routine
(:func:`_active_rows`): a frozen row keeps its state, costs no further field evaluations, and
the batch keeps its shape.

This module knows nothing about barriers: a field may *monitor* a value (any per-row scalar,
see :class:`MonitoredField`), which is handed to the stop event and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch
from jaxtyping import Float
from torch import Tensor

from lens_odesteer._validation import check_finite_float
from lens_odesteer.errors import IntegrationError, InvalidParameterError
from lens_odesteer.flows.control import AdaptiveSteps, StopEvent
from lens_odesteer.flows.save import SaveAt
from lens_odesteer.flows.solvers import AbstractSolver, ExplicitRK, get_solver
from lens_odesteer.flows.trajectory import Trajectory

_EVERY_STEP = SaveAt(steps=True)


@runtime_checkable
class MonitoredField(Protocol):
    """A field that can also return a monitored per-row value at the same point."""

    def __call__(self, y: Tensor) -> Tensor: ...

    def velocity_and_value(self, y: Tensor) -> tuple[Tensor, Tensor]: ...


def integrate(
    field: Callable[[Tensor], Tensor],
    y0: Float[Tensor, "batch d"],
    T: float,
    *,
    solver: str | AbstractSolver = "euler",
    steps: int | AdaptiveSteps = 10,
    save: SaveAt = _EVERY_STEP,
    stop: StopEvent | None = None,
) -> Trajectory:
    """Solve ``dy/dt = field(y)`` on ``[0, T]`` for every row of ``y0``.

    Main arguments:
        field: ``[batch, d] -> [batch, d]`` velocity. If it also has ``velocity_and_value``
            (:class:`MonitoredField`), the value it returns is passed to ``stop``.
        y0: initial states ``[batch, d]``.
        T: horizon (``>= 0``). ``T = 0`` returns the input unchanged.
        solver: a solver object (``Euler()``, ``Midpoint()``, ``Heun()``, ``RK4()``,
            ``Dopri5()``) or its name.
        steps: number of equal steps (fixed-step solvers), or an :class:`AdaptiveSteps`
            controller (adaptive solvers).

    Other arguments:
        save: what to keep (default: every step; the adaptive solver needs ``SaveAt()`` or
            ``SaveAt(n=...)``).
        stop: per-row stop event ``(y, value) -> mask`` checked at the start of each step.

    Returns:
        A :class:`Trajectory` with ``ys`` of shape ``[n_saved, batch, d]`` and ``stopped``
        (rows frozen by ``stop``; None without it). ``hs`` is None: a caller that knows what
        the field follows (a steerer) fills it in.

    Raises:
        InvalidParameterError: an unknown solver, ``steps`` that does not fit the solver
            (an int for an adaptive solver or a controller for a fixed-step one), or a
            ``save`` the solver cannot honour.
        IntegrationError: the adaptive solver ran out of ``max_steps`` on a row. (A row of
            ``y0`` holding NaN or inf is not integrated: it keeps its values.)

    Example:
        >>> import torch
        >>> from lens_odesteer.flows import RK4, integrate
        >>> traj = integrate(lambda y: -y, torch.ones(2, 3), 1.0, solver=RK4(), steps=20)
        >>> round(float(traj.y1[0, 0]), 4)  # exp(-1)
        0.3679
    """
    T = check_finite_float(T, "T", minimum=0.0)
    method = get_solver(solver)
    _check_steps(method, steps)
    if not isinstance(save, SaveAt):
        raise InvalidParameterError(
            f"`save` must be a SaveAt (e.g. `SaveAt()`, `SaveAt(steps=True)`, `SaveAt(n=11)`); "
            f"got {save!r}."
        )
    if stop is not None and not callable(stop):
        raise InvalidParameterError(
            f"`stop` must be None or a callable `(y, value) -> bool mask`; got {stop!r}."
        )
    if y0.ndim != 2:
        raise InvalidParameterError(f"`y0` must be [batch, d]; got shape {tuple(y0.shape)}.")
    if isinstance(steps, AdaptiveSteps):
        if save.steps:
            raise InvalidParameterError(
                "`SaveAt(steps=True)` needs a fixed-step solver: adaptive rows take different "
                "numbers of steps. Use `SaveAt(n=...)` (equally spaced times) or `SaveAt()`."
            )
        return _integrate_adaptive(field, y0, T, method.tableau, steps, save.n or 2, stop)
    return _integrate_fixed(field, y0, T, method.tableau, steps, _save_index(save, steps), stop)


def _check_steps(method: AbstractSolver, steps: object) -> None:
    if isinstance(steps, AdaptiveSteps):
        if not method.adaptive:
            raise InvalidParameterError(
                f"`steps={steps!r}` is a step-size controller, but {method!r} is a fixed-step "
                "solver with no error estimate; pass an int (the number of steps) or use "
                "`solver=Dopri5()`."
            )
        return
    if not isinstance(steps, int) or isinstance(steps, bool):
        raise InvalidParameterError(
            f"`steps` must be an int >= 1 (fixed-step solvers) or an AdaptiveSteps controller "
            f"(adaptive solvers); got {steps!r}."
        )
    if method.adaptive:
        raise InvalidParameterError(
            f"{method!r} is adaptive and chooses its own steps; pass "
            f"`steps=AdaptiveSteps(...)` (initial_steps={steps} gives the first step T/{steps}) "
            "instead of an int, or use a fixed-step solver such as `RK4()`."
        )
    if steps < 1:
        raise InvalidParameterError(f"`steps` must be >= 1; got {steps}.")


def _save_index(save: SaveAt, n_steps: int) -> list[int]:
    """Step indices a fixed-step solve keeps (0 is the start, ``n_steps`` the end)."""
    if save.steps:
        return list(range(n_steps + 1))
    if save.n is None:
        return [0, n_steps]
    if n_steps % (save.n - 1) != 0:
        raise InvalidParameterError(
            f"`SaveAt(n={save.n})` needs n - 1 = {save.n - 1} to divide the {n_steps} steps of a "
            "fixed-step solver; choose another `n` or `steps`."
        )
    return list(range(0, n_steps + 1, n_steps // (save.n - 1)))


def _stop_mask(stop: StopEvent, y: Tensor, value: Tensor | None) -> Tensor:
    mask = stop(y, value)
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != y.shape[:1]:
        got = f"{mask.dtype} {tuple(mask.shape)}" if isinstance(mask, Tensor) else repr(mask)
        raise InvalidParameterError(
            f"The stop event {stop!r} must return a bool tensor of shape {tuple(y.shape[:1])} "
            f"(one flag per row); got {got}."
        )
    return mask


def _active_rows(
    field: Callable[[Tensor], Tensor],
    y: Tensor,
    idx: Tensor,
    stop: StopEvent | None,
    stopped: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Evaluate the field on rows ``idx`` of ``y`` and freeze those the stop event hits.

    Returns ``(idx, y_rows, k1, frozen)``: the rows still moving, their states and field, and
    the indices frozen now (recorded in ``stopped``). The one row-freezing routine of both loops.
    """
    y_rows = y.index_select(0, idx)
    if stop is not None and isinstance(field, MonitoredField):
        k1, value = field.velocity_and_value(y_rows)
    else:
        k1, value = field(y_rows), None
    frozen = idx[:0]
    if stop is not None:
        assert stopped is not None
        hit = _stop_mask(stop, y_rows, value)
        if bool(hit.any()):
            frozen = idx[hit]
            stopped[frozen] = True
            idx, y_rows, k1 = _drop(hit, idx, y_rows, k1)
    return idx, y_rows, k1, frozen


def _drop(hit: Tensor, *rows: Tensor) -> tuple[Tensor, ...]:
    keep = ~hit
    return tuple(r[keep] for r in rows)


def _integrate_fixed(
    field: Callable[[Tensor], Tensor],
    y0: Tensor,
    T: float,
    method: ExplicitRK,
    n_steps: int,
    save_index: list[int],
    stop: StopEvent | None,
) -> Trajectory:
    batch = y0.shape[0]
    ts = torch.linspace(0.0, T, n_steps + 1, dtype=torch.float64)[save_index]
    stopped = torch.zeros(batch, dtype=torch.bool, device=y0.device) if stop is not None else None
    if T == 0.0 or batch == 0:
        ys = y0.unsqueeze(0).expand(len(save_index), *y0.shape).clone()
        return Trajectory(ts, ys, None, 0, 0, stopped)
    dt = torch.as_tensor(T / n_steps, dtype=y0.dtype)
    keep = set(save_index)
    y = y0.clone()
    saved = [y0.clone()]
    n_evals = n_rows = 0
    for step in range(1, n_steps + 1):
        if stopped is None:
            k1 = field(y)
            ks = method.stages(field, y, dt, k1)
            n_evals, n_rows = n_evals + len(ks), n_rows + batch * len(ks)
            y = method.combine(y, dt, ks, method.b)
        else:
            idx = (~stopped).nonzero().flatten()
            if idx.numel() > 0:
                n_active = idx.numel()
                idx, y_sub, k1, _ = _active_rows(field, y, idx, stop, stopped)
                n_evals, n_rows = n_evals + 1, n_rows + n_active
                if idx.numel() > 0:
                    ks = method.stages(field, y_sub, dt, k1)
                    extra = len(ks) - 1
                    n_evals, n_rows = n_evals + extra, n_rows + extra * idx.numel()
                    y = y.index_copy(0, idx, method.combine(y_sub, dt, ks, method.b))
        if step in keep:
            saved.append(y)
    return Trajectory(ts, torch.stack(saved), None, n_evals, n_rows, stopped)


def _integrate_adaptive(
    field: Callable[[Tensor], Tensor],
    y0: Tensor,
    T: float,
    method: ExplicitRK,
    control: AdaptiveSteps,
    n_save: int,
    stop: StopEvent | None,
) -> Trajectory:
    assert method.b_err is not None
    rtol, atol, max_steps = control.rtol, control.atol, control.max_steps
    min_step = T * 1e-3 if control.min_step is None else control.min_step
    batch = y0.shape[0]
    ts = torch.linspace(0.0, T, n_save, dtype=torch.float64)
    ys = y0.unsqueeze(0).repeat(n_save, *([1] * y0.ndim))
    stopped = torch.zeros(batch, dtype=torch.bool, device=y0.device) if stop is not None else None
    if T == 0.0 or batch == 0:
        return Trajectory(ts, ys, None, 0, 0, stopped)
    y = y0.clone()
    t = torch.zeros(batch, dtype=torch.float64, device=y0.device)
    dt = torch.full((batch,), T / control.initial_steps, dtype=torch.float64, device=y0.device)
    next_save = torch.ones(batch, dtype=torch.long, device=y0.device)
    # A row that starts non-finite can never pass the error test; it would use up max_steps and
    # fail the whole batch. It stays as it is (every save slot already holds y0).
    done = ~torch.isfinite(y0).all(-1)
    ts_dev = ts.to(y0.device)
    n_evals = n_rows = n_rejected = 0
    steps_taken = torch.zeros(batch, dtype=torch.long, device=y0.device)
    order = min(method.order, 4)
    prev_k1 = torch.zeros_like(y0) if control.hold_on_reversal else None

    def hold(rows: Tensor) -> None:
        done[rows] = True
        for r in rows.tolist():  # fill the remaining save slots with the held state
            ys[int(next_save[r]) :, r] = y[r]

    while not bool(done.all()):
        idx = (~done).nonzero().flatten()
        if int(steps_taken[idx].max()) >= max_steps:
            raise IntegrationError(
                f"The adaptive solver used {max_steps} steps on a row without reaching T={T}; "
                "raise `AdaptiveSteps(max_steps=...)`, loosen `rtol`/`atol`, or use a "
                "fixed-step solver."
            )
        n_evals, n_rows = n_evals + 1, n_rows + idx.numel()
        idx, y_r, k1, frozen = _active_rows(field, y, idx, stop, stopped)
        if frozen.numel() > 0:
            hold(frozen)
        if idx.numel() == 0:
            continue
        if prev_k1 is not None:
            reversed_ = (k1 * prev_k1[idx]).sum(-1) < 0
            if bool(reversed_.any()):
                hold(idx[reversed_])
                idx, y_r, k1 = _drop(reversed_, idx, y_r, k1)
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
