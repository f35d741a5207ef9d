"""ODESteer as a composition: swapping barrier, solver, steps and stop; parameters; strength.

Also the declared attributes every steerer carries (``kind``, ``name``, ``T_meaning``,
``max_T``), the norm-relative strength (``T_for``/``strength_for``/``match_displacement``) and
the safety of the class registry that loading relies on.
"""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest
import torch

import lens_odesteer as lo
from lens_odesteer._component import _CONFIGS, _REGISTRY, register_config, registered
from lens_odesteer.barriers import LinearBarrier, MLPValueBarrier
from lens_odesteer.errors import InvalidParameterError, NotFittedError
from lens_odesteer.flows import RK4, AdaptiveSteps, Dopri5, Euler, Midpoint
from lens_odesteer.steerers import BarrierMargin, match_displacement, mean_displacement
from tests.steerer_zoo import ALL_STEERERS


def _data(d: int = 10, n: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    shift = torch.randn(d, generator=gen)
    base = torch.randn(d, generator=gen) * 2
    pos = torch.randn(n, d, generator=gen) + base + shift
    neg = torch.randn(n, d, generator=gen) + base - shift
    pos[:, 1] += 0.5 * pos[:, 0] ** 2
    return pos, neg


def _sketch(**kw: object) -> lo.barriers.KernelLogisticBarrier:
    return lo.sketch_barrier(**{"n_components": 128, "gamma": 1.0, **kw})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def fitted_ode() -> lo.ODESteer:
    return lo.ODESteer(_sketch()).fit(*_data())


# -- composition ---------------------------------------------------------------------------------
def test_default_barrier_is_the_papers_sketch() -> None:
    pos, neg = _data(n=12)
    s = lo.ODESteer().fit(pos, neg)
    assert s.barrier is None and repr(s.barrier_) == repr(lo.sketch_barrier())
    assert isinstance(s.barrier_.features_, lo.features.PolynomialSketch)
    assert s.barrier_.features_.n_components == 8000


def test_barrier_template_is_copied_not_fitted() -> None:
    template = _sketch()
    s = lo.ODESteer(template).fit(*_data())
    assert not template.is_fitted and s.barrier_ is not template and s.barrier is template


def test_swapping_the_barrier_changes_the_path() -> None:
    pos, neg = _data()
    lin = lo.ODESteer(LinearBarrier()).fit(pos, neg)
    out = lin.steer(neg, 2.0)  # a linear barrier's unit field is constant: a straight step
    w = lin.barrier_.coef_ / lin.barrier_.coef_.norm()
    torch.testing.assert_close(out, neg + 2.0 * w, rtol=1e-5, atol=1e-5)
    value = lo.ODESteer(MLPValueBarrier(hidden=4, max_iter=20)).fit(pos, neg)
    assert value.name == "ValueSteer" and not torch.allclose(value.steer(neg, 2.0), out)


def test_solver_names_and_objects_are_the_same_solver(fitted_ode: lo.ODESteer) -> None:
    neg = _data(seed=1)[1]
    by_name = lo.ODESteer(_sketch(), solver="rk4", steps=3).fit(*_data())
    by_obj = lo.ODESteer(_sketch(), solver=RK4(), steps=3).fit(*_data())
    assert torch.equal(by_name.steer(neg, 3.0), by_obj.steer(neg, 3.0))
    assert not torch.equal(by_obj.steer(neg, 3.0), fitted_ode.steer(neg, 3.0))


def test_steps_and_stop_swap_without_touching_the_barrier(fitted_ode: lo.ODESteer) -> None:
    pos, neg = _data()
    one = lo.ODESteer(_sketch(), steps=1).fit(pos, neg)
    step = lo.StepODESteer(_sketch()).fit(pos, neg)
    assert torch.equal(one.steer(neg, 2.0), step.steer(neg, 2.0))
    assert one.kind == step.kind == "one_step" and one.name == "StepODESteer"
    stopped = lo.ODESteer(_sketch(), stop=BarrierMargin(0.0)).fit(pos, neg)
    inside = pos[stopped.barrier_value(pos) >= 0]
    assert inside.shape[0] > 0 and torch.equal(stopped.steer(inside, 5.0), inside)
    traj = stopped.trajectory(torch.cat([neg, pos]), 5.0)
    assert traj.stopped is not None and bool(traj.stopped.any())


def test_adaptive_solver_needs_a_controller_and_vice_versa() -> None:
    pos, neg = _data(n=10)
    with pytest.raises(InvalidParameterError, match=r"adaptive; pass `steps=AdaptiveSteps"):
        lo.ODESteer(_sketch(), solver="dopri5").fit(pos, neg)
    with pytest.raises(InvalidParameterError, match="fixed step"):
        lo.ODESteer(_sketch(), solver=RK4(), steps=AdaptiveSteps()).fit(pos, neg)
    with pytest.raises(InvalidParameterError, match="Unknown solver 'rk45'"):
        lo.ODESteer(_sketch(), solver="rk45").fit(pos, neg)
    with pytest.raises(InvalidParameterError, match="`steps` must be an int >= 1"):
        lo.ODESteer(_sketch(), steps=0).fit(pos, neg)
    s = lo.ODESteer(_sketch(), solver=Dopri5(), steps=AdaptiveSteps(rtol=1e-6)).fit(pos, neg)
    assert s.trajectory(neg, 1.0, n_save=5).n_saved == 5


def test_contradiction_found_after_set_params_on_a_fitted_steerer(fitted_ode: lo.ODESteer) -> None:
    s = lo.ODESteer(_sketch()).fit(*_data())
    s.set_params(solver=Dopri5())
    with pytest.raises(InvalidParameterError, match="AdaptiveSteps"):
        s.steer(_data()[1], 1.0)


@pytest.mark.parametrize(
    ("make", "name", "kind"),
    [
        (lambda: lo.ODESteer(), "ODESteer", "flow"),
        (lambda: lo.ODESteer(steps=1, solver=Midpoint()), "ODESteer", "flow"),
        (lambda: lo.ODESteer(steps=1, solver=Euler()), "StepODESteer", "one_step"),
        (lambda: lo.StepODESteer(), "StepODESteer", "one_step"),
        (lambda: lo.RFFODESteer(), "RFFODESteer", "flow"),
        (lambda: lo.RFFStepODESteer(), "RFFStepODESteer", "one_step"),
        (lambda: lo.ValueSteer(), "ValueSteer", "flow"),
        (lambda: lo.ODESteer(LinearBarrier()), "ODESteer", "flow"),
        (lambda: lo.CAA(), "CAA", "one_step"),
        (lambda: lo.LinAcT(), "LinAcT", "one_step"),
    ],
)
def test_name_and_kind_follow_the_composition(make, name, kind) -> None:
    s = make()
    assert (s.name, s.kind) == (name, kind)


def test_presets_are_odesteer_instances_with_their_settings() -> None:
    value = lo.ValueSteer(hidden=8)
    assert isinstance(value, lo.ODESteer) and value.normalize is False
    assert repr(value.barrier) == repr(lo.value_barrier(hidden=8))
    rff = lo.RFFODESteer(n_components=64, bandwidth=2.0, steps=3)
    assert rff.steps == 3 and rff.barrier.features.bandwidth == 2.0
    assert lo.StepODESteer(LinearBarrier()).steps == 1


def test_every_steerer_declares_its_strength() -> None:
    for make in ALL_STEERERS.values():
        s = make()
        assert isinstance(s.T_meaning, str) and s.T_meaning
        assert s.strength_meaning == s.T_meaning  # the old name still works
        assert s.max_T is None or s.max_T > 0
    assert lo.LinAcT.max_T == lo.MiMiC.max_T == 1.0 and lo.CAA.max_T is None


# -- parameters ----------------------------------------------------------------------------------
def test_get_params_deep_has_nested_keys() -> None:
    params = lo.ODESteer(_sketch(), stop=BarrierMargin(0.5)).get_params()
    assert params["barrier__features__n_components"] == 128
    assert params["barrier__C"] == 1.0 and params["stop"] == BarrierMargin(0.5)
    assert set(lo.ODESteer().get_params(deep=False)) == {
        "barrier",
        "solver",
        "steps",
        "stop",
        "normalize",
        "min_grad_norm",
    }


def test_set_params_round_trip() -> None:
    s = lo.ODESteer(_sketch(seed=3), solver=RK4(), steps=4, stop=BarrierMargin(1.0))
    s2 = lo.ODESteer()
    assert s2.set_params(**s.get_params()) is s2
    assert s2.get_params() == s.get_params()
    assert repr(s2) == repr(s)


def test_set_params_nested_on_a_default_barrier_builds_it() -> None:
    s = lo.ODESteer().set_params(barrier__features__n_components=64, barrier__C=0.5)
    assert s.get_params()["barrier__features__n_components"] == 64
    assert s.barrier.C == 0.5 and s.barrier.features.gamma == 0.1


def test_set_params_rejects_unknown_names() -> None:
    with pytest.raises(InvalidParameterError, match=r"Invalid parameter 'n_steps' for ODESteer"):
        lo.ODESteer().set_params(n_steps=3)
    with pytest.raises(InvalidParameterError, match="Invalid parameter 'bogus'"):
        lo.ODESteer(_sketch()).set_params(barrier__bogus=1)


def test_changing_steps_on_a_fitted_steerer_needs_no_refit() -> None:
    pos, neg = _data()
    s = lo.ODESteer(_sketch()).fit(pos, neg)
    barrier = s.barrier_
    before = s.steer(neg, 3.0)
    s.set_params(steps=2, solver="midpoint")
    assert s.is_fitted and s.barrier_ is barrier
    after = s.steer(neg, 3.0)
    assert not torch.equal(after, before)
    fresh = lo.ODESteer(_sketch(), steps=2, solver="midpoint").fit(pos, neg)
    assert torch.equal(after, fresh.steer(neg, 3.0))


def test_changing_normalize_keeps_the_fit_and_updates_speed() -> None:
    pos, neg = _data()
    s = lo.ODESteer(_sketch()).fit(pos, neg)
    assert s.speed_ == pytest.approx(1.0, rel=1e-5)
    s.set_params(normalize=False)
    fresh = lo.ODESteer(_sketch(), normalize=False).fit(pos, neg)
    assert s.is_fitted and s.speed_ == pytest.approx(fresh.speed_, rel=1e-5)
    assert torch.equal(s.steer(neg, 0.5), fresh.steer(neg, 0.5))


def test_changing_barrier_params_unfits_the_steerer() -> None:
    s = lo.ODESteer(_sketch()).fit(*_data())
    s.set_params(barrier__C=0.5)
    assert not s.is_fitted and not hasattr(s, "barrier_")
    with pytest.raises(NotFittedError):
        s.steer(_data()[1], 1.0)
    caa = lo.ITI().fit(*_data())
    caa.set_params(C=0.1)
    assert not caa.is_fitted


# -- strength ------------------------------------------------------------------------------------
def test_fit_records_norms() -> None:
    pos, neg = _data()
    caa = lo.CAA().fit(pos, neg)
    assert caa.act_norm_ == pytest.approx(float(torch.cat([pos, neg]).norm(dim=-1).mean()))
    assert caa.speed_ == pytest.approx(float((pos.mean(0) - neg.mean(0)).norm()))
    assert isinstance(caa.act_norm_, float) and isinstance(caa.speed_, float)


@pytest.mark.parametrize("name", ["CAA", "ITI", "RepE", "StepODESteer"])
def test_T_for_moves_one_step_methods_by_the_strength(name) -> None:
    pos, neg = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = ALL_STEERERS[name]().fit(pos, neg)
    T = s.T_for(0.1)
    moved = mean_displacement(s, neg, T)
    assert moved == pytest.approx(0.1 * s.act_norm_, rel=1e-5)
    assert s.strength_for(T) == pytest.approx(0.1)


def test_T_for_validates_and_names_the_largest_strength() -> None:
    s = lo.LinAcT().fit(*_data())
    with pytest.raises(InvalidParameterError, match="strength"):
        s.T_for(-1.0)
    with pytest.raises(InvalidParameterError, match="strength"):
        s.T_for(float("nan"))
    largest = s.strength_for(1.0)
    assert s.T_for(largest) == pytest.approx(1.0)
    with pytest.raises(
        InvalidParameterError, match=rf"largest strength it can reach is {largest:.4g}"
    ):
        s.T_for(largest * 2)
    with pytest.raises(InvalidParameterError, match="above the largest T"):
        s.strength_for(1.5)


def test_match_displacement_solves_on_the_real_paths() -> None:
    pos, neg = _data()
    steerers = {
        "ode": lo.ODESteer(_sketch(gamma=5.0)).fit(pos, neg),
        "value": lo.ValueSteer(hidden=8, max_iter=30).fit(pos, neg),
        "caa": lo.CAA().fit(pos, neg),
        "linact": lo.LinAcT().fit(pos, neg),
    }
    Ts = match_displacement(steerers, neg, 0.05)
    target = 0.05 * float(neg.norm(dim=-1).mean())
    for label, T in Ts.items():
        assert mean_displacement(steerers[label], neg, T) == pytest.approx(target, rel=1e-3), label
    assert match_displacement(steerers, neg, 0.0) == dict.fromkeys(steerers, 0.0)


def test_match_displacement_says_when_a_strength_is_out_of_reach() -> None:
    pos, neg = _data()
    linact = lo.LinAcT().fit(pos, neg)
    with pytest.raises(InvalidParameterError, match="largest T"):
        match_displacement({"linact": linact}, neg, 100.0)
    stopped = lo.ODESteer(_sketch(), stop=BarrierMargin(-1e9)).fit(pos, neg)
    with pytest.raises(InvalidParameterError, match="the most it reached is 0"):
        match_displacement({"stopped": stopped}, neg, 0.1)


# -- registry ------------------------------------------------------------------------------------
class CAA(lo.CAA):  # a user's subclass reusing a library name
    """Defined in a test module: must never be registered or written to a file."""


class MyEuler(Euler):
    pass


def test_user_subclass_never_replaces_a_library_class(tmp_path: Path) -> None:
    assert registered("CAA") is lo.CAA and _REGISTRY["CAA"] is lo.CAA
    assert "MyEuler" not in _CONFIGS
    pos, neg = _data()
    path = lo.CAA().fit(pos, neg).save(tmp_path / "caa")
    assert type(lo.load_steerer(path)) is lo.CAA
    with pytest.raises(TypeError, match="name lens_odesteer's own classes only"):
        CAA().fit(pos, neg).save(tmp_path / "mine")
    with pytest.raises(TypeError, match="cannot be saved"):
        lo.ODESteer(_sketch(), solver=MyEuler()).fit(pos, neg).save(tmp_path / "solver")
    with pytest.raises(TypeError, match="own classes"):
        register_config(MyEuler)


def test_every_registered_class_is_the_librarys() -> None:
    for name, cls in {**_REGISTRY, **_CONFIGS}.items():
        assert cls.__module__.startswith("lens_odesteer.") and cls.__name__ == name


def test_steerers_do_not_import_io() -> None:
    """``steerer.save`` needs nothing from io: the dependency points one way (io -> steerers)."""
    root = Path(lo.__file__).parent / "steerers"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.module != "lens_odesteer.io", path
            if isinstance(node, ast.Import):
                assert all(a.name != "lens_odesteer.io" for a in node.names), path


def test_configs_round_trip_through_a_file(tmp_path: Path) -> None:
    pos, neg = _data()
    s = lo.ODESteer(
        _sketch(),
        solver=Dopri5(),
        steps=AdaptiveSteps(rtol=1e-4, atol=1e-6),
        stop=BarrierMargin(0.5),
    ).fit(pos, neg)
    loaded = lo.load_steerer(s.save(tmp_path / "s"))
    assert loaded.get_params(deep=False)["steps"] == AdaptiveSteps(rtol=1e-4, atol=1e-6)
    assert loaded.stop == BarrierMargin(0.5) and loaded.solver == Dopri5()
    assert torch.equal(loaded.steer(neg, 1.0), s.steer(neg, 1.0))
    assert loaded.T_for(0.1) == s.T_for(0.1)
