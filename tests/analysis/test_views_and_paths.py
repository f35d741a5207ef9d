"""Projection, level-set grid and path frames on synthetic data with known geometry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.analysis.level_sets import barrier_grid, points_frame
from lens_odesteer.analysis.projection import fit_projection
from lens_odesteer.analysis.trajectories import trajectory_frame
from lens_odesteer.errors import InvalidParameterError, ShapeMismatchError

GEN = torch.Generator().manual_seed(3)
D = 12
POS = torch.randn(60, D, generator=GEN, dtype=torch.float64) * 0.7 + torch.linspace(0, 1, D)
NEG = torch.randn(60, D, generator=GEN, dtype=torch.float64) * 0.7 - torch.linspace(0, 1, D)


def test_pca_basis_is_orthonormal_and_matches_numpy_svd() -> None:
    view = fit_projection(POS, NEG, method="pca", n_components=3)
    assert torch.allclose(view.basis @ view.basis.T, torch.eye(3, dtype=torch.float64), atol=1e-12)
    data = torch.cat([POS, NEG]).numpy()
    _, s, vt = np.linalg.svd(data - data.mean(0), full_matrices=False)
    for ours, ref in zip(view.basis.numpy(), vt[:3], strict=True):
        assert abs(abs(float(ours @ ref)) - 1.0) < 1e-9  # same axis up to sign
    shares = s[:3] ** 2 / (s**2).sum()
    assert np.allclose(view.explained_variance, shares, atol=1e-9)


def test_mean_diff_first_axis_is_the_mean_difference() -> None:
    view = fit_projection(POS, NEG, method="mean_diff")
    diff = POS.mean(0) - NEG.mean(0)
    assert torch.allclose(view.basis[0], diff / diff.norm(), atol=1e-12)
    assert abs(float(view.basis[0] @ view.basis[1])) < 1e-12
    x_pos, x_neg = view.transform(POS)[:, 0], view.transform(NEG)[:, 0]
    assert torch.allclose(x_pos.mean() - x_neg.mean(), diff.norm(), atol=1e-10)


def test_directions_are_orthonormalised_in_order() -> None:
    d1, d2 = torch.zeros(D, dtype=torch.float64), torch.zeros(D, dtype=torch.float64)
    d1[0], d2[0], d2[1] = 2.0, 1.0, 1.0
    view = fit_projection(POS, NEG, method="directions", directions=[d1, d2])
    assert torch.allclose(view.basis[0], d1 / 2)
    assert torch.allclose(view.basis[1], torch.eye(D, dtype=torch.float64)[1])
    with pytest.raises(InvalidParameterError, match="linearly dependent"):
        fit_projection(POS, NEG, method="directions", directions=[d1, 3 * d1])


def test_lift_and_transform_round_trip_through_any_origin() -> None:
    view = fit_projection(POS, NEG)
    coords = torch.randn(7, 2, generator=GEN, dtype=torch.float64) * 3
    origin = POS[5]
    lifted = view.lift(coords, origin)
    assert torch.allclose(view.transform(lifted), coords, atol=1e-10)
    assert torch.allclose(view.lift(view.transform(origin), origin), origin, atol=1e-10)
    # Off-plane components of the origin are kept: lifted points differ from it only in-plane.
    assert torch.allclose(
        view.residual_norm(lifted - origin + view.mean),
        torch.zeros(7, dtype=torch.float64),
        atol=1e-10,
    )


def test_projection_errors_name_the_problem() -> None:
    with pytest.raises(InvalidParameterError, match="n_components"):
        fit_projection(POS, NEG, n_components=4)
    with pytest.raises(InvalidParameterError, match="needs both"):
        fit_projection(POS, None, method="mean_diff")
    with pytest.raises(ShapeMismatchError, match="d_model=12"):
        fit_projection(POS, NEG).transform(torch.zeros(3, 5))
    with pytest.raises(InvalidParameterError, match="projection method"):
        fit_projection(POS, NEG, method="tsne")  # type: ignore[arg-type]


def test_grid_values_are_the_barrier_of_the_lifted_points() -> None:
    ode = lo.ODESteer(lo.sketch_barrier(n_components=512)).fit(POS, NEG)
    view = fit_projection(POS, NEG)
    origin = NEG[0]
    c = view.transform(origin)
    extent = (float(c[0]) - 2, float(c[0]) + 2, float(c[1]) - 1, float(c[1]) + 1)
    grid = barrier_grid(ode, view, extent=extent, origin=origin, resolution=5)
    assert len(grid) == 25 and grid.attrs["slice"].startswith("plane through a chosen activation")
    centre = grid.iloc[12]  # odd resolution: the middle grid point is the origin itself
    assert abs(centre.x - float(c[0])) < 1e-12 and abs(centre.y - float(c[1])) < 1e-12
    assert abs(centre.h - float(ode.barrier_value(origin))) < 1e-9
    pts = torch.tensor(grid[["x", "y"]].to_numpy())
    expected = ode.barrier_value(view.lift(pts, origin))
    assert np.allclose(grid["h"], expected.numpy(), atol=1e-9)
    assert np.allclose(grid["p_positive"], 1 / (1 + np.exp(-grid["h"])), atol=1e-12)


def test_points_frame_reports_what_the_view_hides() -> None:
    view = fit_projection(POS, NEG)
    frame = points_frame(view, POS, NEG)
    assert list(frame["label"].value_counts()) == [60, 60]
    hidden = view.residual_norm(POS).numpy()
    assert np.allclose(frame.loc[frame.label == "positive", "off_plane"], hidden)


def test_paths_start_at_the_projection_and_one_step_paths_are_straight() -> None:
    ode = lo.ODESteer(lo.sketch_barrier(n_components=512)).fit(POS, NEG)
    step = lo.StepODESteer(lo.sketch_barrier(n_components=512)).fit(POS, NEG)
    caa = lo.CAA().fit(POS, NEG)
    view = fit_projection(POS, NEG)
    start = NEG[:4]
    T = {"ODESteer": 2.0, "StepODESteer": 2.0, "CAA": 0.5}
    frame = trajectory_frame(
        {"ODESteer": ode, "StepODESteer": step, "CAA": caa}, start, T=T, view=view
    )
    proj = view.transform(start).numpy()
    for method in ("ODESteer", "StepODESteer", "CAA"):
        first = frame[(frame.method == method) & (frame.step == 0)].sort_values("row")
        assert np.allclose(first[["x", "y"]].to_numpy(), proj, atol=1e-10)
    for method in ("StepODESteer", "CAA"):
        sub = frame[frame.method == method]
        end = sub.groupby("row")["displacement"].transform("max")
        # Straight: distance from the start grows linearly in t, and equals the distance travelled.
        assert np.allclose(sub["displacement"], sub["fraction"] * end, atol=1e-9)
        assert np.allclose(sub["path_length"], sub["displacement"], atol=1e-9)
    ode_rows = frame[frame.method == "ODESteer"].sort_values(["row", "step"])
    # Unit field, Euler: each step moves exactly dt, so the arc length is T.
    assert np.allclose(ode_rows.groupby("row")["path_length"].max(), 2.0, atol=1e-9)
    assert (ode_rows.groupby("row")["h"].diff().dropna() > 0).all()
    assert frame.attrs["reference"] == "ODESteer"
