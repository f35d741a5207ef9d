"""One battery of checks run against every steerer (scikit-learn's common-checks idea)."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.steerers import AbstractSteerer
from tests.steerer_zoo import ALL_STEERERS

NAMES = list(ALL_STEERERS)


def _data(d: int = 12, n: int = 48, dtype: torch.dtype = torch.float32, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    direction = torch.randn(d, generator=gen)
    direction = direction / direction.norm()
    base = torch.randn(d, generator=gen) * 3
    pos = torch.randn(n, d, generator=gen) + base + 1.5 * direction
    neg = torch.randn(n, d, generator=gen) + base - 1.5 * direction
    return pos.to(dtype), neg.to(dtype)


@pytest.fixture(scope="module")
def fitted() -> dict[str, AbstractSteerer]:
    pos, neg = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {name: make().fit(pos, neg) for name, make in ALL_STEERERS.items()}


@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_self_and_sets_state(name) -> None:
    pos, neg = _data()
    s = ALL_STEERERS[name]()
    assert not s.is_fitted
    out = s.fit(pos, neg)
    assert out is s and s.is_fitted
    assert (s.d_model_, s.n_pos_, s.n_neg_, s.dtype_) == (12, 48, 48, torch.float32)


@pytest.mark.parametrize("name", NAMES)
def test_unfitted_steerer_raises_not_fitted(name) -> None:
    s = ALL_STEERERS[name]()
    with pytest.raises(lo.errors.NotFittedError, match=r"not fitted yet; call `\.fit"):
        s.steer(torch.zeros(2, 12), 1.0)


@pytest.mark.parametrize("name", NAMES)
def test_steer_preserves_shape_dtype_and_leading_axes(name, fitted) -> None:
    s = fitted[name]
    acts = _data()[1][:24].reshape(2, 3, 4, 12)
    out = s.steer(acts, 0.5)
    assert out.shape == acts.shape and out.dtype == acts.dtype
    flat = s.steer(acts.reshape(-1, 12), 0.5)
    torch.testing.assert_close(out.reshape(-1, 12), flat, rtol=1e-6, atol=1e-6)
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        low = s.steer(acts.to(dtype), 0.5)
        assert low.dtype == dtype and torch.isfinite(low).all()


@pytest.mark.parametrize("name", NAMES)
def test_zero_strength_is_bitwise_identity(name, fitted) -> None:
    acts = _data()[1]
    assert torch.equal(fitted[name].steer(acts, 0.0), acts)
    traj = fitted[name].trajectory(acts, 0.0)
    assert torch.equal(traj.y1, acts)


@pytest.mark.parametrize("name", NAMES)
def test_batch_split_does_not_change_results(name, fitted) -> None:
    s = fitted[name]
    acts = _data(seed=3)[1]
    whole = s.steer(acts, 0.7)
    parts = torch.cat([s.steer(acts[:5], 0.7), s.steer(acts[5:17], 0.7), s.steer(acts[17:], 0.7)])
    torch.testing.assert_close(whole, parts, rtol=1e-5, atol=1e-5)
    one_by_one = torch.cat([s.steer(acts[i : i + 1], 0.7) for i in range(len(acts))])
    torch.testing.assert_close(whole, one_by_one, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_fit_is_deterministic_and_refit_replaces_state(name) -> None:
    pos, neg = _data()
    acts = _data(seed=5)[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = ALL_STEERERS[name]().fit(pos, neg)
        b = ALL_STEERERS[name]().fit(pos, neg)
        assert torch.equal(a.steer(acts, 0.9), b.steer(acts, 0.9)), (
            "same seed must be bit-identical"
        )
        pos2, neg2 = _data(d=7, seed=9)
        a.fit(pos2, neg2)
    assert a.d_model_ == 7
    assert a.steer(torch.zeros(1, 7) + 1.0, 0.3).shape == (1, 7)


@pytest.mark.parametrize("name", NAMES)
def test_labels_interface_equals_pos_neg_interface(name) -> None:
    pos, neg = _data()
    acts = torch.cat([pos, neg])
    labels = torch.cat([torch.ones(48, dtype=torch.long), torch.zeros(48, dtype=torch.long)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = ALL_STEERERS[name]().fit(pos, neg)
        b = ALL_STEERERS[name]().fit(acts, labels)
        c = ALL_STEERERS[name]().fit(acts, labels.bool())
    probe = _data(seed=4)[1]
    assert torch.equal(a.steer(probe, 0.4), b.steer(probe, 0.4))
    assert torch.equal(a.steer(probe, 0.4), c.steer(probe, 0.4))


@pytest.mark.parametrize("name", NAMES)
def test_to_returns_a_moved_copy(name, fitted) -> None:
    s = fitted[name]
    before = copy.deepcopy(s)
    moved = s.to(dtype=torch.float64)
    assert moved is not s and moved.dtype_ == torch.float64 and s.dtype_ == torch.float32
    acts = _data(seed=2)[1]
    torch.testing.assert_close(s.steer(acts, 0.5), before.steer(acts, 0.5), rtol=0, atol=0)
    out64 = moved.steer(acts.double(), 0.5)
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out64.float(), s.steer(acts, 0.5), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("name", NAMES)
def test_save_load_reproduces_outputs_bit_for_bit(name, fitted, tmp_path) -> None:
    s = fitted[name]
    path = s.save(tmp_path / name, provenance={"model_name": "test", "hook_name": "h", "layer": 3})
    loaded = lo.load_steerer(path)
    assert type(loaded) is type(s)
    assert loaded.provenance_ == {"model_name": "test", "hook_name": "h", "layer": 3}
    assert repr(loaded) == repr(s)
    acts = _data(seed=6)[1]
    assert torch.equal(loaded.steer(acts, 1.3), s.steer(acts, 1.3))
    assert torch.equal(loaded.vector_field(acts), s.vector_field(acts))
    if s.has_barrier:
        assert torch.equal(loaded.barrier_value(acts), s.barrier_value(acts))
    assert list(tmp_path.iterdir()) == [path], "no temporary files may be left behind"


@pytest.mark.parametrize("name", NAMES)
def test_trajectory_layout_and_endpoint(name, fitted) -> None:
    s = fitted[name]
    acts = _data(seed=7)[1][:6].reshape(2, 3, 12)
    traj = s.trajectory(acts, 0.8)
    assert traj.ys.shape[1:] == (2, 3, 12)
    assert traj.ts[0] == 0 and float(traj.ts[-1]) == pytest.approx(0.8)
    assert torch.equal(traj.ys[0], acts)
    torch.testing.assert_close(traj.y1, s.steer(acts, 0.8), rtol=1e-6, atol=1e-6)
    assert traj.hs is not None and traj.hs.shape == traj.ys.shape[:-1]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("d_model", [576, 4096])
def test_every_steerer_runs_at_model_widths(name, d_model) -> None:
    pos, neg = _data(d=d_model, n=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = ALL_STEERERS[name]().fit(pos, neg)
    out = s.steer(neg[:8], T=5.0)
    assert out.shape == (8, d_model) and torch.isfinite(out).all()
    assert not torch.equal(out, neg[:8])


DEFAULT_CLASSES = [
    lo.ODESteer,
    lo.StepODESteer,
    lo.RFFODESteer,
    lo.RFFStepODESteer,
    lo.ValueSteer,
    lo.CAA,
    lo.ITI,
    lo.RepE,
    lo.LinAcT,
    lo.MiMiC,
]


@pytest.mark.parametrize("cls", DEFAULT_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("d_model", [576, 4096])
def test_default_estimators_fit_and_steer_at_model_widths(cls, d_model) -> None:
    """The README example with every class at its defaults (sketch n=8000 for ODESteer)."""
    pos, neg = _data(d=d_model, n=64)
    out = cls().fit(pos, neg).steer(neg[:8], T=5.0 if cls not in (lo.LinAcT, lo.MiMiC) else 1.0)
    assert out.shape == (8, d_model) and out.dtype == torch.float32
    assert torch.isfinite(out).all() and not torch.equal(out, neg[:8])
    moved = (out - neg[:8]).norm(dim=-1)
    if cls in (lo.StepODESteer, lo.RFFStepODESteer, lo.ITI, lo.RepE):
        torch.testing.assert_close(moved, torch.full_like(moved, 5.0), rtol=1e-5, atol=1e-4)
    if cls in (lo.ODESteer, lo.RFFODESteer):
        assert (moved <= 5.0 + 1e-4).all() and (moved > 4.0).all()


def test_steerers_improve_their_barrier_on_negatives(fitted) -> None:
    neg = _data(seed=11)[1]
    for name, s in fitted.items():
        if not s.has_barrier or name == "MiMiC":
            continue
        before, after = s.barrier_value(neg), s.barrier_value(s.steer(neg, 0.5))
        assert (after >= before - 1e-5).float().mean() > 0.95, name


def test_mimic_only_moves_rows_its_probe_calls_negative(fitted) -> None:
    s = fitted["MiMiC"]
    pos, neg = _data()
    acts = torch.cat([pos, neg])
    out = s.steer(acts, 1.0)
    assert isinstance(s, lo.MiMiC)
    called_positive = s.probe_.logit(acts) >= 0
    assert called_positive.any() and (~called_positive).any()
    assert torch.equal(out[called_positive], acts[called_positive])
    assert not torch.equal(out[~called_positive], acts[~called_positive])


def test_mimic_full_map_matches_the_positive_moments() -> None:
    gen = torch.Generator().manual_seed(0)
    mix = torch.randn(4, 4, generator=gen, dtype=torch.float64)
    neg = torch.randn(4000, 4, generator=gen, dtype=torch.float64)
    pos = torch.randn(4000, 4, generator=gen, dtype=torch.float64) @ mix + 3.0
    s = lo.MiMiC(shrinkage=0.0, gate=False).fit(pos, neg)
    moved = s.steer(neg, 1.0)
    torch.testing.assert_close(moved.mean(0), pos.mean(0), rtol=0, atol=1e-8)
    torch.testing.assert_close(torch.cov(moved.T), torch.cov(pos.T), rtol=1e-6, atol=1e-6)


def test_linact_full_map_matches_per_dimension_quantiles() -> None:
    gen = torch.Generator().manual_seed(0)
    neg = torch.randn(5000, 3, generator=gen, dtype=torch.float64)
    pos = neg * torch.tensor([2.0, 0.5, 1.0], dtype=torch.float64) + torch.tensor([1.0, -1.0, 0.0])
    s = lo.LinAcT().fit(pos, neg)
    torch.testing.assert_close(s.scale_, torch.tensor([2.0, 0.5, 1.0], dtype=torch.float64))
    torch.testing.assert_close(s.steer(neg, 1.0), pos)
    half = s.steer(neg, 0.5)
    torch.testing.assert_close(half, (neg + pos) / 2)


def test_caa_and_repe_directions() -> None:
    pos, neg = _data(d=6)
    caa = lo.CAA().fit(pos, neg)
    torch.testing.assert_close(caa.direction_, pos.mean(0) - neg.mean(0))
    rep = lo.RepE().fit(pos, neg)
    assert float(rep.direction_ @ caa.direction_) > 0
    diffs = (pos - neg).double()
    u = torch.linalg.svd(diffs, full_matrices=False).Vh[0]
    assert abs(float(u.float() @ rep.direction_)) == pytest.approx(1.0, abs=1e-5)
    rnd = lo.RepE().fit(pos[:30], neg)
    assert rnd.direction_.norm() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(lo.errors.InvalidParameterError, match="pairing='random'"):
        lo.RepE(pairing="index").fit(pos[:30], neg)


def test_iti_moves_exactly_T_along_probe_normal() -> None:
    pos, neg = _data()
    iti = lo.ITI().fit(pos, neg)
    out = iti.steer(neg, 2.5)
    torch.testing.assert_close(
        (out - neg).norm(dim=-1), torch.full((48,), 2.5), rtol=1e-5, atol=1e-5
    )
    assert float(iti.direction_ @ iti.barrier_.coef_) > 0
