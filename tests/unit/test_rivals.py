"""The paper's other baselines and today's rivals: each method's defining property.

The common checks (identity at zero strength, shapes, save/load, batch splits, ...) run on them
through :mod:`tests.steerer_zoo`; this file checks what makes each one what it is: HPR, Angular
and Spherical Steering keep the norm; Angular Steering reproduces activation addition and
directional ablation; TruthFlow's learned flow carries held-out negatives into the positive
distribution on a curved problem where CAA cannot; mean-centring subtracts the mean of all rows.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.analysis.nonlinearity import field_variation, has_flow_path
from lens_odesteer.analysis.trajectories import trajectory_frame
from lens_odesteer.evaluation.methods import ALL_METHODS, MAX_T, ONE_STEP, make_steerer
from lens_odesteer.flows import RK4, integrate
from lens_odesteer.steerers import (
    HPR,
    AngularSteering,
    MeanCentring,
    SphericalSteering,
    TruthFlow,
)
from lens_odesteer.viz.theme import METHOD_COLOURS
from tests.steerer_zoo import ALL_STEERERS, NORM_PRESERVING_STEERERS

RIVALS = ["MeanCentring", "HPR", "AngularSteering", "SphericalSteering", "TruthFlow"]


def _data(
    d: int = 16, n: int = 80, seed: int = 0, dtype: torch.dtype = torch.float32, offset: float = 2.0
):
    gen = torch.Generator().manual_seed(seed)
    direction = torch.randn(d, generator=gen, dtype=torch.float64)
    direction = direction / direction.norm()
    base = torch.randn(d, generator=gen, dtype=torch.float64) * offset
    pos = torch.randn(n, d, generator=gen, dtype=torch.float64) + base + 1.5 * direction
    neg = torch.randn(n, d, generator=gen, dtype=torch.float64) + base - 1.5 * direction
    return pos.to(dtype), neg.to(dtype)


@pytest.fixture(scope="module")
def fitted() -> dict[str, lo.steerers.AbstractSteerer]:
    pos, neg = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {name: ALL_STEERERS[name]().fit(pos, neg) for name in NORM_PRESERVING_STEERERS}


# -- norm preservation -------------------------------------------------------------------------
@pytest.mark.parametrize("name", NORM_PRESERVING_STEERERS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rotations_keep_the_norm_exactly(name, dtype, fitted) -> None:
    s = fitted[name].to(dtype=dtype)
    acts = torch.cat(_data(seed=3, dtype=dtype))
    tol = 1e-6 if dtype == torch.float32 else 1e-13
    moved_any = False
    for T in (0.05, 0.3, 1.0, 2.5, 10.0):
        out = s.steer(acts, T)
        torch.testing.assert_close(out.norm(dim=-1), acts.norm(dim=-1), rtol=tol, atol=0.0)
        moved_any |= not torch.equal(out, acts)
        traj = s.trajectory(acts, T)
        torch.testing.assert_close(
            traj.ys.norm(dim=-1), acts.norm(dim=-1).expand_as(traj.ys[..., 0]), rtol=tol, atol=0.0
        )
    assert moved_any
    v = s.vector_field(acts)  # the initial velocity is tangent to the norm sphere
    cos = (v * acts).sum(-1) / (v.norm(dim=-1) * acts.norm(dim=-1)).clamp_min(1e-30)
    assert float(cos.abs().max()) < 10 * tol


# -- Angular Steering --------------------------------------------------------------------------
def test_angular_steering_basis_is_orthonormal_and_points_to_the_positives() -> None:
    pos, neg = _data()
    ang = AngularSteering().fit(pos, neg)
    b = ang.basis_.double()
    torch.testing.assert_close(b @ b.T, torch.eye(2, dtype=torch.float64), atol=1e-6, rtol=0)
    unit = lambda x: x / x.norm(dim=-1, keepdim=True)  # noqa: E731
    mp, mn = unit(pos).mean(0), unit(neg).mean(0)
    expected = unit(unit(mp) - unit(mn))
    torch.testing.assert_close(ang.basis_[0], expected, atol=1e-6, rtol=0)


def test_angular_steering_turns_by_T_toward_the_target_and_stops_on_it() -> None:
    pos, neg = _data(dtype=torch.float64)  # fitted in float64: an orthonormal float64 basis
    ang64 = AngularSteering().fit(pos, neg)
    acts = torch.cat([pos, neg])

    def phi(x: torch.Tensor) -> torch.Tensor:
        xy = x @ ang64.basis_.T
        return torch.atan2(xy[:, 1], xy[:, 0])

    before = phi(acts)
    for T in (0.1, 0.7, 2.0):
        after = phi(ang64.steer(acts, T))
        expected = torch.sign(before) * (before.abs() - T).clamp_min(0)
        torch.testing.assert_close(after, expected, atol=1e-9, rtol=0)
    # saturation: T = pi (and beyond) is the paper's operator at 0 degrees for every row
    full = ang64.rotate_to(acts, 0.0)
    torch.testing.assert_close(ang64.steer(acts, math.pi), full, atol=1e-10, rtol=0)
    torch.testing.assert_close(ang64.steer(acts, 50.0), full, atol=1e-10, rtol=0)
    # only the in-plane part changes
    outside = lambda x: x - (x @ ang64.basis_.T) @ ang64.basis_  # noqa: E731
    torch.testing.assert_close(outside(ang64.steer(acts, 1.0)), outside(acts), atol=1e-10, rtol=0)


def test_angular_steering_is_the_flow_of_its_rotation_field() -> None:
    pos, neg = _data(dtype=torch.float64)
    ang = AngularSteering().fit(pos, neg)
    acts = neg[:20]
    T = 0.8  # below every row's angle to the target, so no row stops on the way
    xy = acts @ ang.basis_.T
    assert bool((torch.atan2(xy[:, 1], xy[:, 0]).abs() > T).all())
    numeric = integrate(ang.vector_field, acts, T, solver=RK4(), steps=200).y1
    torch.testing.assert_close(ang.steer(acts, T), numeric, atol=1e-8, rtol=0)


def test_angular_steering_reproduces_ablation_and_addition() -> None:
    """Both act only in the plane of b_1 and b_2: a rotation there plus an in-plane rescaling."""
    pos, neg = _data(dtype=torch.float64)
    ang = AngularSteering().fit(pos, neg)
    b1, b2 = ang.basis_
    acts = torch.cat(_data(seed=5, dtype=torch.float64))
    x1, x2 = acts @ b1, acts @ b2
    r = torch.hypot(x1, x2)
    # directional ablation a - (b1 . a) b1: rotate to +-90 degrees, rescale the in-plane part
    ablated = acts - x1.unsqueeze(-1) * b1
    up, down = ang.rotate_to(acts, math.pi / 2), ang.rotate_to(acts, -math.pi / 2)
    assert float((up @ b1).abs().max()) < 1e-10  # the feature is removed, the norm is kept
    torch.testing.assert_close(up.norm(dim=-1), acts.norm(dim=-1), rtol=1e-13, atol=0)
    rotated = torch.where((x2 >= 0).unsqueeze(-1), up, down)
    rescaled = rotated + (x2 - torch.sign(x2) * r).unsqueeze(-1) * b2
    torch.testing.assert_close(rescaled, ablated, atol=1e-10, rtol=0)
    # activation addition a + alpha b1: rotate to the angle of P a + alpha b1, rescale
    for alpha in (-3.0, 0.5, 4.0):
        added = acts + alpha * b1
        angle = torch.atan2(x2, x1 + alpha)
        length = torch.hypot(x1 + alpha, x2)
        for i in range(0, len(acts), 17):
            row = ang.rotate_to(acts[i : i + 1], float(angle[i]))[0]
            plane = (row @ b1) * b1 + (row @ b2) * b2
            out = row - plane + plane * (length[i] / r[i])
            torch.testing.assert_close(out, added[i], atol=1e-10, rtol=0)


def test_adaptive_angular_steering_only_turns_rows_against_the_target() -> None:
    pos, neg = _data()
    ang = AngularSteering(adaptive=True).fit(pos, neg)
    acts = torch.cat([pos, neg])
    out = ang.steer(acts, 1.0)
    against = acts @ ang.basis_[0] < 0
    assert against.any() and (~against).any()
    assert torch.equal(out[~against], acts[~against])
    assert not torch.equal(out[against], acts[against])


# -- Spherical Steering ------------------------------------------------------------------------
def test_spherical_steering_closes_the_gated_fraction_of_the_angle() -> None:
    pos, neg = _data(dtype=torch.float64)
    sph = SphericalSteering(kappa=5.0, beta=-0.2).fit(pos, neg)
    mu = sph.target_
    diff = pos.mean(0) - neg.mean(0)
    torch.testing.assert_close(mu, diff / diff.norm())
    test_pos, test_neg = _data(seed=7, dtype=torch.float64)
    acts = torch.cat([test_neg, test_pos + 6 * mu])  # the second half sits on the positive side

    def angle(x: torch.Tensor) -> torch.Tensor:
        return torch.arccos(((x @ mu) / x.norm(dim=-1)).clamp(-1, 1))

    cos = (acts @ mu) / acts.norm(dim=-1)
    delta = -torch.tanh(5.0 * cos)
    gate = ((delta + 0.2) / 1.2).clamp_min(0)
    torch.testing.assert_close(sph.gate(acts), gate)
    for T in (0.3, 1.0, 4.0):
        out = sph.steer(acts, T)
        frac = (T * gate).clamp(max=1.0)
        torch.testing.assert_close(angle(out), (1 - frac) * angle(acts), atol=1e-6, rtol=0)
        closed = gate == 0
        assert closed.any() and torch.equal(out[closed], acts[closed])  # gate shut: untouched
    # the barrier is the gate's vMF log-odds log(p_T / p_H)
    torch.testing.assert_close(sph.barrier_value(acts), 2 * 5.0 * cos)


# -- HPR ---------------------------------------------------------------------------------------
def test_hpr_rotates_negatives_toward_their_reflection_by_the_predicted_angle() -> None:
    # centred data: the probe has no intercept, so its hyperplane passes through the origin
    pos, neg = _data(dtype=torch.float64, offset=0.0)
    hpr = HPR().fit(pos, neg)
    acts = torch.cat(_data(seed=9, dtype=torch.float64, offset=0.0))
    w = hpr.coef_
    out = hpr.steer(acts, 1.0)
    negative = acts @ w < 0
    assert negative.any() and (~negative).any()
    assert torch.equal(out[~negative], acts[~negative])  # the probe calls them positive
    a, o = acts[negative], out[negative]
    reflected = a - 2 * (a @ w).unsqueeze(-1) * w / (w @ w)  # Householder reflection
    torch.testing.assert_close(reflected.norm(dim=-1), a.norm(dim=-1))
    # out lies in the plane of a and H a, on the arc from a toward H a ...
    basis, _ = torch.linalg.qr(torch.stack([a, reflected], dim=-1))
    in_plane = (basis @ (basis.mT @ o.unsqueeze(-1))).squeeze(-1)
    torch.testing.assert_close(in_plane, o, atol=1e-9, rtol=0)
    assert bool(((o @ w) > (a @ w)).all())
    # ... at the predicted angle (capped at the angle to w)
    unit = lambda x: x / x.norm(dim=-1, keepdim=True)  # noqa: E731
    turned = torch.arccos((unit(a) * unit(o)).sum(-1).clamp(-1, 1))
    to_normal = torch.arccos((unit(a) @ unit(w)).clamp(-1, 1))
    expected = torch.minimum(hpr.predicted_angle(a), to_normal)
    torch.testing.assert_close(turned, expected, atol=1e-6, rtol=0)
    # a large T stops on the probe normal, where the logit peaks
    far = hpr.steer(a, 100.0)
    torch.testing.assert_close(unit(far), unit(w).expand_as(far), atol=1e-6, rtol=0)


def test_hpr_angle_predictor_learns_the_angles_to_the_positives() -> None:
    gen = torch.Generator().manual_seed(0)
    d = 8
    pos = torch.randn(200, d, generator=gen, dtype=torch.float64) + 4 * torch.eye(d)[0]
    # negatives whose angle to the positive cloud depends on the row (the tilt of the second axis)
    neg = pos[:100].clone()
    tilt = torch.rand(100, generator=gen, dtype=torch.float64) * 6
    neg[:, 0] -= tilt
    neg[:, 1] += tilt
    hpr = HPR(hidden=16, max_iter=300).fit(pos, neg)
    target = torch.arccos(
        ((neg / neg.norm(dim=-1, keepdim=True)) @ (pos / pos.norm(dim=-1, keepdim=True)).T)
        .amax(-1)
        .clamp(-1, 1)
    )
    assert hpr.angle_rmse_ < 0.25 * float(target.std())
    torch.testing.assert_close(hpr.predicted_angle(neg), target, atol=0.15, rtol=0)


# -- TruthFlow ---------------------------------------------------------------------------------
def _moons(n: int, seed: int, d: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved arcs: positives on the upper moon, negatives on the lower one."""
    gen = torch.Generator().manual_seed(seed)
    th_p = torch.rand(n, generator=gen) * math.pi
    th_n = torch.rand(n, generator=gen) * math.pi
    pos, neg = torch.zeros(n, d), torch.zeros(n, d)
    pos[:, 0], pos[:, 1] = torch.cos(th_p), torch.sin(th_p)
    neg[:, 0], neg[:, 1] = 1 - torch.cos(th_n), 0.5 - torch.sin(th_n)
    return pos + 0.05 * torch.randn(n, d, generator=gen), neg + 0.05 * torch.randn(
        n, d, generator=gen
    )


def test_truthflow_carries_heldout_negatives_into_the_positives_where_caa_cannot() -> None:
    pos, neg = _moons(300, 0)
    held_pos, held_neg = _moons(300, 1)  # the held-out classifier's data
    test_neg = _moons(150, 2)[1]
    nn = torch.cdist(held_pos, held_pos).fill_diagonal_(float("inf")).amin(-1)
    radius = 2 * float(nn.quantile(0.95))
    ref = torch.cat([held_pos, held_neg])
    is_pos = torch.cat([torch.ones(len(held_pos)), torch.zeros(len(held_neg))])

    def share_positive(x: torch.Tensor) -> float:
        """Held-out 10-NN vote says positive, and a held-out positive lies within `radius`."""
        vote = is_pos[torch.cdist(x, ref).topk(10, largest=False).indices].mean(-1) > 0.5
        near = torch.cdist(x, held_pos).amin(-1) <= radius
        return float((vote & near).float().mean())

    assert share_positive(test_neg) == 0.0
    flow = TruthFlow(hidden=64, n_iter=1000).fit(pos, neg)
    assert share_positive(flow.steer(test_neg, 1.0)) > 0.95
    caa = lo.CAA().fit(pos, neg)
    best_caa = max(
        share_positive(caa.steer(test_neg, T)) for T in torch.linspace(0.1, 4, 40).tolist()
    )
    assert best_caa < 0.75  # a translation moves the lower arc onto the upper one nowhere whole
    # the learned path bends: it is not the straight step along its initial velocity
    fv = field_variation(flow, test_neg, T=1.0)
    assert fv.median("gap") > 0.05 and fv.n_steps == flow.steps


def test_truthflow_pairings_and_subspace() -> None:
    pos, neg = _data(d=6, n=40)
    with pytest.raises(lo.errors.InvalidParameterError, match="pairing='nearest'"):
        TruthFlow(n_iter=5, pairing="index").fit(pos[:30], neg)
    with pytest.raises(lo.errors.InvalidParameterError, match="fixed-step"):
        TruthFlow(n_iter=5, solver="dopri5").fit(pos, neg)
    flow = TruthFlow(hidden=8, n_iter=50, subspace_rank=2).fit(pos, neg)
    assert flow.subspace_ is not None and flow.subspace_.shape == (2, 6)
    out = flow.steer(neg, 1.0)
    # the correction lies in the subspace
    corr = (out - neg).double()
    basis = flow.subspace_.double()
    torch.testing.assert_close(corr @ basis.T @ basis, corr, atol=1e-5, rtol=0)
    # changing the solver keeps the fitted field
    flow.set_params(solver="rk4", steps=3)
    assert flow.is_fitted and flow.trajectory(neg, 1.0).ys.shape[0] == 4


# -- mean-centring -----------------------------------------------------------------------------
def test_mean_centring_subtracts_the_mean_of_all_rows() -> None:
    pos, neg = _data(n=80)
    mc = MeanCentring().fit(pos[:30], neg)
    mean_all = torch.cat([pos[:30], neg]).mean(0)
    torch.testing.assert_close(mc.direction_, pos[:30].mean(0) - mean_all)
    caa = lo.CAA().fit(pos[:30], neg)
    torch.testing.assert_close(mc.direction_, caa.direction_ * 80 / 110)
    # the same norm-relative strength gives the same move as CAA
    torch.testing.assert_close(
        mc.steer(neg, mc.T_for(0.1)), caa.steer(neg, caa.T_for(0.1)), rtol=1e-5, atol=1e-5
    )


# -- the analysis and the evaluation treat them like the others --------------------------------
def test_diagnostics_and_trajectory_frame_cover_the_rivals() -> None:
    pos, neg = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        methods = {name: ALL_STEERERS[name]().fit(pos, neg) for name in RIVALS}
    frame = trajectory_frame(methods, neg[:5], strength=0.1)
    assert set(frame["method"]) == set(RIVALS)
    for name in ["HPR", "AngularSteering", "SphericalSteering"]:
        sub = frame[frame["method"] == name]
        start = sub[sub["step"] == 0].set_index("row")["norm"]
        assert (sub.set_index("row")["norm"] - start).abs().max() < 1e-4  # arcs on the sphere
        assert not bool(sub["one_step"].iloc[0])
    assert bool(frame.loc[frame["method"] == "MeanCentring", "one_step"].iloc[0])
    for name, s in methods.items():
        assert has_flow_path(s)
        fv = field_variation(s, torch.cat([pos, neg]), T=s.T_for(0.1))
        if name == "MeanCentring":
            assert fv.median("gap") == pytest.approx(0.0, abs=1e-4)  # one step, by construction
        else:
            assert fv.median("gap") > 0  # an arc (or a learned curve) is not its tangent step
        assert math.isfinite(fv.median("bend"))


def test_evaluation_knows_the_rivals() -> None:
    for name in RIVALS:
        assert name in ALL_METHODS and name in METHOD_COLOURS
        s = make_steerer(name)
        assert s is not None and type(s).__name__ == name
    assert MAX_T["AngularSteering"] == math.pi
    assert "MeanCentring" in ONE_STEP and "HPR" not in ONE_STEP and "TruthFlow" not in ONE_STEP
