"""Integrators: convergence order on exact solutions, adaptive error control, early stopping."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lens_odesteer.errors import IntegrationError, InvalidParameterError
from lens_odesteer.flows import RK4, SOLVERS, AdaptiveSteps, Dopri5, Euler, SaveAt, integrate
from lens_odesteer.steerers import BarrierMargin

ROT = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)


def rotation(y: torch.Tensor) -> torch.Tensor:
    """dy/dt = A y with A a rotation generator: y(t) = expm(tA) y0 (a curved field)."""
    return y @ ROT.T


def rotation_exact(y0: torch.Tensor, t: float) -> torch.Tensor:
    c, s = math.cos(t), math.sin(t)
    return y0 @ torch.tensor([[c, -s], [s, c]], dtype=torch.float64).T


def logistic_field(y: torch.Tensor) -> torch.Tensor:
    """dy/dt = y (1 - y) per coordinate: y(t) = 1 / (1 + (1/y0 - 1) e^-t)."""
    return y * (1 - y)


@pytest.mark.parametrize("name", ["euler", "midpoint", "heun", "rk4"])
@pytest.mark.parametrize("problem", ["rotation", "logistic"])
def test_fixed_step_solver_converges_with_its_order(name, problem) -> None:
    y0 = torch.tensor([[1.0, 0.2], [0.3, -0.8]], dtype=torch.float64)
    T = 2.0
    if problem == "rotation":
        field, exact = rotation, rotation_exact(y0, T)
    else:
        y0 = y0.abs() * 0.5 + 0.1
        field = logistic_field
        exact = 1 / (1 + (1 / y0 - 1) * math.exp(-T))
    steps = [8, 16, 32, 64]
    errs = [
        (integrate(field, y0, T, solver=name, steps=n, save=SaveAt()).y1 - exact).abs().max()
        for n in steps
    ]
    slope = np.polyfit(np.log([T / n for n in steps]), np.log([float(e) for e in errs]), 1)[0]
    assert abs(slope - SOLVERS[name].order) < 0.3, (name, slope, errs)


@pytest.mark.parametrize("tol", [1e-4, 1e-7, 1e-10])
def test_adaptive_solver_meets_tolerance_per_row(tol) -> None:
    y0 = torch.tensor([[1.0, 0.0], [0.0, 5.0], [3.0, -2.0]], dtype=torch.float64)
    traj = integrate(
        rotation,
        y0,
        3.0,
        solver=Dopri5(),
        steps=AdaptiveSteps(rtol=tol, atol=tol),
        save=SaveAt(n=7),
    )
    ts = traj.ts.tolist()
    assert ts[0] == 0.0 and ts[-1] == 3.0 and len(ts) == 7
    for k, t in enumerate(ts):
        err = (traj.ys[k] - rotation_exact(y0, t)).abs().max()
        assert err < 200 * tol, (t, err)
    assert traj.n_field_evals > 0 and traj.n_row_evals >= traj.n_field_evals


def test_adaptive_solver_spends_more_evaluations_for_tighter_tolerance() -> None:
    y0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    loose = integrate(
        rotation, y0, 3.0, solver=Dopri5(), steps=AdaptiveSteps(1e-3, 1e-3), save=SaveAt()
    )
    tight = integrate(
        rotation, y0, 3.0, solver=Dopri5(), steps=AdaptiveSteps(1e-9, 1e-9), save=SaveAt()
    )
    assert tight.n_field_evals > loose.n_field_evals


def test_adaptive_solver_raises_when_out_of_steps() -> None:
    y0 = torch.ones(1, 2, dtype=torch.float64)
    with pytest.raises(IntegrationError, match="max_steps"):
        control = AdaptiveSteps(rtol=1e-12, atol=1e-12, max_steps=5)
        integrate(rotation, y0, 50.0, solver=Dopri5(), steps=control, save=SaveAt())


@pytest.mark.parametrize("name", list(SOLVERS))
def test_zero_horizon_is_identity(name) -> None:
    y0 = torch.randn(4, 3, dtype=torch.float64)
    steps = AdaptiveSteps() if SOLVERS[name].adaptive else 10
    traj = integrate(rotation_3d, y0, 0.0, solver=name, steps=steps, save=SaveAt())
    assert torch.equal(traj.y1, y0)
    assert traj.n_field_evals == 0


def rotation_3d(y: torch.Tensor) -> torch.Tensor:
    return torch.stack([-y[:, 1], y[:, 0], torch.zeros_like(y[:, 2])], dim=-1)


def test_two_halves_equal_the_whole_for_fixed_steps() -> None:
    y0 = torch.randn(5, 3, dtype=torch.float64)
    whole = integrate(rotation_3d, y0, 2.0, solver=RK4(), steps=10).y1
    half = integrate(rotation_3d, y0, 1.0, solver=RK4(), steps=5).y1
    again = integrate(rotation_3d, half, 1.0, solver=RK4(), steps=5).y1
    torch.testing.assert_close(whole, again, rtol=1e-13, atol=1e-13)


def test_save_all_has_time_on_the_leading_axis() -> None:
    y0 = torch.randn(3, 2, dtype=torch.float64)
    traj = integrate(rotation, y0, 1.0, solver=Euler(), steps=4)
    assert traj.ys.shape == (5, 3, 2)
    torch.testing.assert_close(traj.ts, torch.linspace(0, 1, 5, dtype=torch.float64))
    assert torch.equal(traj.y0, y0)
    assert traj.n_field_evals == 4 and traj.n_row_evals == 12


class _Monitored:
    """Field pushing coordinate 0 up at unit speed; the monitored value is coordinate 0."""

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        return self.velocity_and_value(y)[0]

    def velocity_and_value(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v = torch.zeros_like(y)
        v[:, 0] = 1.0
        return v, y[:, 0]


@pytest.mark.parametrize("solver", ["euler", "rk4", "dopri5"])
def test_margin_freezes_rows_and_skips_safe_rows(solver) -> None:
    y0 = torch.tensor([[-3.0, 1.0], [0.5, 2.0], [-0.25, 0.0]], dtype=torch.float64)
    steps = AdaptiveSteps(initial_steps=40) if solver == "dopri5" else 40
    # dopri5 steps onto every save time: 41 of them cap its steps at 0.25, as 40 fixed steps
    kw = {
        "solver": solver,
        "steps": steps,
        "save": SaveAt(n=41) if solver == "dopri5" else SaveAt(),
    }
    traj = integrate(_Monitored(), y0, 10.0, stop=BarrierMargin(0.0), **kw)
    assert torch.equal(traj.y1[1], y0[1]), "a row starting inside the safe set must not move"
    assert traj.stopped is not None and traj.stopped.tolist() == [True, True, True]
    # Rows stop at the first step start with h >= 0: overshoot is below one step (0.25).
    assert 0.0 <= float(traj.y1[0, 0]) < 0.25 + 1e-12
    assert 0.0 <= float(traj.y1[2, 0]) < 0.25 + 1e-12
    free = integrate(_Monitored(), y0, 10.0, **kw)
    assert traj.n_row_evals < free.n_row_evals


def test_margin_requires_a_monitored_field() -> None:
    with pytest.raises(InvalidParameterError, match="velocity_and_value"):
        integrate(rotation, torch.ones(1, 2, dtype=torch.float64), 1.0, stop=BarrierMargin(0.0))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"T": -1.0}, "`T` must be >= 0"),
        ({"T": float("nan")}, "`T` must be finite"),
        ({"T": float("inf")}, "`T` must be finite"),
        ({"steps": 0}, "`steps` must be >= 1"),
        ({"solver": "dopri5"}, r"adaptive and chooses its own steps; pass `steps=AdaptiveSteps"),
        ({"steps": AdaptiveSteps()}, "fixed-step solver with no error estimate"),
        ({"solver": Dopri5(), "steps": AdaptiveSteps()}, r"SaveAt\(steps=True\)` needs a fixed"),
        ({"save": SaveAt(n=4)}, "n - 1 = 3 to divide the 10 steps"),
        ({"stop": lambda y, v: y > 0.5}, "must return a bool tensor of shape"),
        ({"solver": "rk45"}, "Unknown solver 'rk45'. Expected one of"),
    ],
)
def test_integrate_rejects_bad_parameters(kwargs, match) -> None:
    args = {"T": 1.0, **kwargs}
    T = args.pop("T")
    with pytest.raises(InvalidParameterError, match=match):
        integrate(rotation, torch.ones(1, 2, dtype=torch.float64), T, **args)


def test_integrate_rejects_a_float_step_count() -> None:
    with pytest.raises((InvalidParameterError, TypeError), match="steps"):
        integrate(rotation, torch.ones(1, 2, dtype=torch.float64), 1.0, steps=2.5)  # type: ignore[arg-type]


def test_integrate_rejects_unknown_save_mode() -> None:
    # Under the test suite's runtime type checking the annotation may fire first.
    with pytest.raises((InvalidParameterError, TypeError), match="save"):
        integrate(rotation, torch.ones(1, 2, dtype=torch.float64), 1.0, save="some")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: SaveAt(steps=True, n=3), "not both"),
        (lambda: SaveAt(n=1), "int >= 2"),
        (lambda: AdaptiveSteps(rtol=0.0, atol=0.0), "cannot both be 0"),
        (lambda: AdaptiveSteps(rtol=-1.0), "`rtol` must be a finite float >= 0"),
        (lambda: AdaptiveSteps(max_steps=0), "`max_steps` must be an int >= 1"),
        (lambda: BarrierMargin(float("inf")), "`margin` must be a finite number"),
    ],
)
def test_config_objects_validate_when_built(make, match) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        make()


def test_euler_is_exactly_repeated_steps() -> None:
    """Bitwise: each Euler step is ``y + dt * v(y)`` with ``dt = T / steps`` in the state dtype."""
    gen = torch.Generator().manual_seed(0)
    y0 = torch.randn(6, 5, generator=gen)
    mat = torch.randn(5, 5, generator=gen)

    def field(y: torch.Tensor) -> torch.Tensor:
        return torch.tanh(y @ mat)

    y, dt = y0.clone(), torch.as_tensor(3.0 / 10, dtype=y0.dtype)
    for _ in range(10):
        y = y + dt * (field(y) * 1.0)
    assert torch.equal(integrate(field, y0, 3.0, steps=10, save=SaveAt()).y1, y)


def test_saveat_points_on_a_fixed_grid() -> None:
    y0 = torch.randn(2, 2, dtype=torch.float64)
    every = integrate(rotation, y0, 1.0, steps=8)
    some = integrate(rotation, y0, 1.0, steps=8, save=SaveAt(n=5))
    ends = integrate(rotation, y0, 1.0, steps=8, save=SaveAt())
    assert torch.equal(some.ys, every.ys[::2]) and torch.equal(some.ts, every.ts[::2])
    assert torch.equal(ends.ys, every.ys[[0, -1]]) and ends.ts.tolist() == [0.0, 1.0]


def test_a_generic_stop_event_sees_states_and_freezes_rows() -> None:
    y0 = torch.tensor([[0.0, 1.0], [2.0, 0.0]], dtype=torch.float64)
    seen: list[object] = []

    def far_right(y: torch.Tensor, value: torch.Tensor | None) -> torch.Tensor:
        seen.append(value)
        return y[:, 0] > 1.5

    traj = integrate(rotation, y0, 1.0, steps=4, save=SaveAt(), stop=far_right)
    assert traj.stopped is not None and traj.stopped.tolist() == [False, True]
    assert torch.equal(traj.y1[1], y0[1]) and not torch.equal(traj.y1[0], y0[0])
    assert all(v is None for v in seen)  # the rotation field monitors nothing


def test_solvers_are_frozen_and_the_abstract_one_cannot_be_built() -> None:
    from lens_odesteer.flows import AbstractSolver

    assert Euler() == Euler() and RK4().order == 4 and Dopri5().adaptive
    with pytest.raises(TypeError, match="no `tableau`"):
        AbstractSolver()
