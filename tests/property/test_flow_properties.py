"""Hypothesis properties of the barrier steerers (random data, widths, seeds and strengths)."""

from __future__ import annotations

import warnings

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lens_odesteer as lo
from lens_odesteer.flows import AdaptiveSteps
from lens_odesteer.steerers import BarrierMargin

widths = st.integers(min_value=2, max_value=16)
seeds = st.integers(min_value=0, max_value=2**16)
strengths = st.floats(min_value=0.01, max_value=3.0, allow_nan=False)


def _blobs(d: int, seed: int, n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    direction = torch.randn(d, generator=gen, dtype=torch.float64)
    direction /= direction.norm()
    scale = float(torch.rand((), generator=gen, dtype=torch.float64)) * 2 + 0.5
    base = torch.randn(d, generator=gen, dtype=torch.float64) * 4
    pos = torch.randn(n, d, generator=gen, dtype=torch.float64) * scale + base + direction
    neg = torch.randn(n, d, generator=gen, dtype=torch.float64) * scale + base - direction
    return pos, neg


def _sketch(seed: int) -> lo.barriers.KernelLogisticBarrier:
    return lo.sketch_barrier(n_components=128, gamma=1.0, seed=seed % 97)


def _steps(solver: str, k: int) -> int | AdaptiveSteps:
    """``k`` fixed steps, or the adaptive solver's controller whose first step is ``T / k``."""
    return AdaptiveSteps(initial_steps=k) if solver == "dopri5" else k


def _steerers(seed: int) -> list[lo.steerers.AbstractSteerer]:
    return [
        lo.ODESteer(_sketch(seed)),
        lo.ODESteer(
            lo.sketch_barrier(n_components=64, degree=3, gamma=0.5, seed=seed % 89),
            solver="midpoint",
        ),
        lo.RFFODESteer(n_components=64, seed=seed % 83),
        lo.ValueSteer(hidden=8, max_iter=30, seed=seed % 79, normalize=True),
    ]


@given(d=widths, seed=seeds, T=strengths)
def test_zero_T_is_identity_and_field_has_unit_norm(d, seed, T) -> None:
    pos, neg = _blobs(d, seed)
    acts = torch.cat([pos, neg])
    for s in _steerers(seed):
        s.fit(pos, neg)
        assert torch.equal(s.steer(acts, 0.0), acts)
        v = s.vector_field(acts)
        norms = v.norm(dim=-1)
        # Unit speed wherever the gradient does not vanish (it may vanish only at isolated points).
        assert ((norms - 1).abs() < 1e-9).float().mean() == 1.0


@settings(max_examples=15)
@given(d=widths, seed=seeds, T=strengths)
def test_barrier_does_not_decrease_along_trajectories_on_fit_data(d, seed, T) -> None:
    pos, neg = _blobs(d, seed)
    acts = torch.cat([pos, neg])
    n_steps = 200
    dt = T / n_steps
    for make in (
        lambda: lo.ODESteer(_sketch(seed), steps=n_steps),
        lambda: lo.RFFODESteer(n_components=64, steps=n_steps, seed=seed % 83),
    ):
        s = make().fit(pos, neg)
        traj = s.trajectory(acts, T)
        assert traj.hs is not None
        dh = traj.hs[1:] - traj.hs[:-1]
        grads = s.barrier_.grad(traj.ys)
        dg = (grads[1:] - grads[:-1]).norm(dim=-1)
        # The exact flow has dh/dt = |grad h| >= 0. An Euler step of length dt along the unit
        # gradient gains dt |g| >= 0 and loses at most dt |g_next - g| / 2 to curvature (exact for
        # quadratic h); only near a maximum of h, where |g| is small, can that loss win.
        assert (dh >= -0.6 * dt * dg - 1e-12).all(), float((dh + 0.5 * dt * dg).min())
        assert (traj.hs[-1] >= traj.hs[0] - 1e-12).all()


@given(d=widths, seed=seeds, T=strengths, k=st.integers(min_value=1, max_value=12))
def test_one_ode_step_equals_step_odesteer(d, seed, T, k) -> None:
    pos, neg = _blobs(d, seed)
    ode = lo.ODESteer(_sketch(seed), steps=k).fit(pos, neg)
    step = lo.StepODESteer(_sketch(seed)).fit(pos, neg)
    traj = ode.trajectory(neg, T)
    torch.testing.assert_close(traj.ys[1], step.steer(neg, T / k), rtol=1e-12, atol=1e-12)
    one = lo.ODESteer(_sketch(seed), steps=1).fit(pos, neg)
    assert torch.equal(one.steer(neg, T), step.steer(neg, T))


@given(d=widths, seed=seeds, T=strengths, k=st.integers(min_value=2, max_value=20))
def test_linear_barrier_ode_equals_one_step_addition(d, seed, T, k) -> None:
    pos, neg = _blobs(d, seed)
    for solver in ("euler", "rk4", "dopri5"):
        barrier = lo.barriers.LinearBarrier()
        ode = lo.ODESteer(barrier, steps=_steps(solver, k), solver=solver).fit(pos, neg)
        iti = lo.ITI().fit(pos, neg)
        torch.testing.assert_close(ode.steer(neg, T), iti.steer(neg, T), rtol=1e-9, atol=1e-9)


@given(d=widths, seed=seeds, T=strengths, k=st.integers(min_value=1, max_value=30))
def test_sketch_ode_preserves_norm_up_to_euler_error(d, seed, T, k) -> None:
    pos, neg = _blobs(d, seed)
    s = lo.ODESteer(_sketch(seed), steps=k).fit(pos, neg)
    out = s.steer(neg, T)
    r0, r1 = neg.norm(dim=-1), out.norm(dim=-1)
    dt = T / k
    # The field is unit and orthogonal to a: |a_{j+1}|^2 = |a_j|^2 + dt^2 exactly, so the norm
    # grows by at most sum(dt^2) / (2 |a|).
    torch.testing.assert_close(r1**2, r0**2 + k * dt**2, rtol=1e-9, atol=1e-9)
    assert (r1 - r0 <= k * dt**2 / (2 * r0) + 1e-12).all()


@given(d=widths, seed=seeds, T=strengths, margin=st.floats(min_value=-1.0, max_value=1.0))
def test_early_stopping_leaves_rows_above_margin_unchanged(d, seed, T, margin) -> None:
    pos, neg = _blobs(d, seed)
    acts = torch.cat([pos, neg])
    for solver in ("euler", "rk4", "dopri5"):
        flow = {"solver": solver, "steps": _steps(solver, 10)}
        s = lo.ODESteer(_sketch(0), stop=BarrierMargin(margin), **flow).fit(pos, neg)
        h0 = s.barrier_value(acts)
        out = s.steer(acts, T)
        safe = h0 >= margin
        assert torch.equal(out[safe], acts[safe])
        free = lo.ODESteer(_sketch(0), **flow).fit(pos, neg)
        h_free = free.barrier_value(free.steer(acts[~safe], T))
        assert (s.barrier_value(out[~safe]) <= h_free + 1e-9).all()


@given(d=widths, seed=seeds, T=strengths, cut=st.integers(min_value=1, max_value=47))
def test_results_do_not_depend_on_batch_split(d, seed, T, cut) -> None:
    pos, neg = _blobs(d, seed)
    acts = torch.cat([pos, neg])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for s in _steerers(seed):
            s.fit(pos, neg)
            whole = s.steer(acts, T)
            parts = torch.cat([s.steer(acts[:cut], T), s.steer(acts[cut:], T)])
            torch.testing.assert_close(whole, parts, rtol=1e-12, atol=1e-12)
