"""The nonlinearity diagnostic on fields with known answers, per layer, and its figure."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from jaxtyping import Float
from torch import Tensor

import lens_odesteer as lo
from lens_odesteer.analysis.layer_sweep import split_by_group
from lens_odesteer.analysis.model_runs.layers import field_variation_by_layer
from lens_odesteer.analysis.nonlinearity import FieldVariation, field_variation
from lens_odesteer.barriers import AbstractBarrier
from lens_odesteer.datasets import ContrastDataset
from lens_odesteer.errors import InvalidParameterError, NotFittedError, ShapeMismatchError


class SaddleBarrier(AbstractBarrier):
    """``h(a) = a_0 a_1``: a curved barrier with a closed-form gradient ``(a_1, a_0, 0, ...)``."""

    def __init__(self) -> None:
        pass

    def fit(
        self,
        pos_acts: Float[Tensor, "n_pos d_model"],
        neg_acts: Float[Tensor, "n_neg d_model"],
    ) -> SaddleBarrier:
        self.d_model_ = int(pos_acts.shape[-1])
        self.log_prior_ratio_ = 0.0
        return self

    def _value_and_grad(
        self, acts: Float[Tensor, "batch d_model"]
    ) -> tuple[Float[Tensor, " batch"], Float[Tensor, "batch d_model"]]:
        grad = torch.zeros_like(acts)
        grad[:, 0], grad[:, 1] = acts[:, 1], acts[:, 0]
        return acts[:, 0] * acts[:, 1], grad


def _blobs(d: int = 6, n: int = 60, seed: int = 0) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    shift = torch.zeros(d)
    shift[0] = 1.5
    pos = torch.randn(n, d, generator=gen) + shift + 4.0
    neg = torch.randn(n, d, generator=gen) - shift + 4.0
    return pos, neg


def _xor(d: int = 4, n: int = 80, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Positives around (2, 2) and (-2, -2), negatives around (2, -2) and (-2, 2)."""
    gen = torch.Generator().manual_seed(seed)
    signs = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]])
    parts = []
    for s in signs:
        x = 0.5 * torch.randn(n // 2, d, generator=gen)
        x[:, :2] += 2 * s
        parts.append(x)
    return torch.cat(parts[:2]), torch.cat(parts[2:])


# --------------------------------------------------------------------------- known answers


def test_field_variation_linear_barrier_has_spread_one_and_no_gap() -> None:
    pos, neg = _blobs()
    steerer = lo.ODESteer(lo.barriers.LinearBarrier()).fit(pos, neg)
    acts = torch.cat([pos, neg])
    fv = field_variation(steerer, acts, T=3.0)
    assert fv.mean_pairwise_cosine == pytest.approx(1.0, abs=1e-6)
    assert np.allclose(fv.pairwise_cosines, 1.0, atol=1e-5)
    assert fv.rows["gap"].max() < 1e-5
    assert fv.rows["bend"].max() < 1e-5
    assert fv.rows["turn_deg"].max() < 0.05
    assert fv.rows["displacement"].to_numpy() == pytest.approx(3.0, rel=1e-5)
    assert not fv.tangent
    assert "within 0.00% of one step" in fv.summary()


def test_field_variation_constant_field_steerer_is_exactly_one_step() -> None:
    pos, neg = _blobs()
    caa = lo.CAA().fit(pos, neg)
    fv = field_variation(caa, torch.cat([pos, neg]), T=1.0)
    assert fv.mean_pairwise_cosine == pytest.approx(1.0, abs=1e-6)
    assert fv.rows["gap"].max() < 1e-5
    assert fv.n_steps == 10 and fv.solver == "euler"


def test_field_variation_direction_linear_barrier_bends_zero_but_gap_is_rotation() -> None:
    # h = w . a / |a|: the flow is the great circle towards w; the gap to the straight step is
    # the rotation on the sphere, the bend is zero. For an arc angle theta, n Euler steps end
    # a distance of about T theta (n - 1) / (2 n) off the one-step line (theta / 2 exactly).
    pos, neg = _blobs()
    steerer = lo.ODESteer(lo.barriers.LinearBarrier(normalize=True)).fit(pos, neg)
    acts = torch.cat([pos, neg])
    T = 2.0
    fv = field_variation(steerer, acts, T=T)
    assert fv.tangent
    assert fv.rows["bend"].max() < 1e-5
    theta = T / fv.rows["norm"].to_numpy()
    assert fv.rows["gap"].to_numpy() == pytest.approx(theta / 2 * 0.9, rel=0.02)
    assert fv.rows["arc_deg"].to_numpy() == pytest.approx(np.rad2deg(theta), rel=0.02)


def test_field_variation_saddle_barrier_known_spread_and_clear_gap() -> None:
    # Field directions at (2, 2), (-2, -2), (2, -2), (-2, 2) are (1, 1), (-1, -1), (-1, 1),
    # (1, -1) over sqrt 2: they sum to zero, so the mean pairwise cosine is -1/3 exactly.
    steerer = lo.ODESteer(SaddleBarrier()).fit(torch.ones(2, 3), torch.zeros(2, 3))
    corners = torch.tensor([[2.0, 2, 0], [-2, -2, 0], [2, -2, 0], [-2, 2, 0]])
    fv = field_variation(steerer, corners, T=1.0)
    assert fv.mean_pairwise_cosine == pytest.approx(-1 / 3, abs=1e-6)
    assert sorted(np.round(fv.pairwise_cosines, 5)) == [-1, -1, 0, 0, 0, 0]
    # Off the axes of symmetry the path of the saddle's flow curves: gap and turning are large.
    starts = torch.tensor([[2.0, -0.5, 0.0], [-1.5, 0.5, 0.3], [0.5, 2.0, -1.0]])
    curved = field_variation(steerer, starts, T=2.0, n_steps=50)
    assert (curved.rows["gap"] > 0.1).all()
    assert (curved.rows["turn_deg"] > 20).all()
    assert (curved.rows["turn_total_deg"] >= curved.rows["turn_deg"] - 1e-4).all()
    assert not curved.tangent
    assert (curved.rows["bend"] == curved.rows["gap"]).all()  # off the sphere: bend is the gap


def test_field_variation_fitted_kernel_barrier_on_xor_is_clearly_curved() -> None:
    pos, neg = _xor()
    steerer = lo.RFFODESteer(n_components=1024, C=10.0).fit(pos, neg)
    acts = torch.cat([pos, neg])
    labels = torch.arange(len(acts)) < len(pos)
    # The class means nearly coincide here, so the default T (|mu+ - mu-|) would be tiny.
    fv = field_variation(steerer, acts, labels=labels, T=2.0)
    assert fv.mean_pairwise_cosine < 0.5
    assert fv.median("gap") > 0.05
    assert fv.median("turn_deg") > 10
    assert fv.auc is not None and fv.auc > 0.9
    # The same data with a linear probe: one direction, no gap, chance-level AUC.
    lin = field_variation(lo.ITI().fit(pos, neg), acts, labels=labels, T=2.0)
    assert lin.mean_pairwise_cosine == pytest.approx(1.0, abs=1e-6)
    assert lin.median("gap") < 1e-5
    assert lin.auc is not None and lin.auc < 0.7


def test_field_variation_end_point_is_the_steerers_own() -> None:
    pos, neg = _blobs()
    steerer = lo.ODESteer(lo.sketch_barrier(n_components=512, gamma=5.0)).fit(pos, neg)
    acts = torch.cat([pos, neg])[::7]
    fv = field_variation(steerer, acts, T=1.5)
    assert fv.solver == "euler" and fv.n_steps == 10
    moved = (steerer.steer(acts, 1.5) - acts).norm(dim=-1).double().numpy()
    assert fv.rows["displacement"].to_numpy() == pytest.approx(moved, rel=1e-5)


def test_field_variation_default_T_matches_mean_difference() -> None:
    pos, neg = _blobs()
    acts = torch.cat([pos, neg])
    labels = torch.arange(len(acts)) < len(pos)
    dist = float((pos.mean(0) - neg.mean(0)).norm())
    unit = field_variation(
        lo.ODESteer(lo.sketch_barrier(n_components=256)).fit(pos, neg), acts, labels=labels
    )
    assert math.isclose(unit.T, dist, rel_tol=1e-5)
    caa = field_variation(lo.CAA().fit(pos, neg), acts, labels=labels)
    assert math.isclose(caa.T, 1.0, rel_tol=1e-5)  # CAA's T is a multiplier of mu+ - mu-


def test_field_variation_one_step_flow_steerer_uses_ten_steps() -> None:
    pos, neg = _blobs()
    step = lo.StepODESteer(lo.sketch_barrier(n_components=256)).fit(pos, neg)
    ode = lo.ODESteer(lo.sketch_barrier(n_components=256)).fit(pos, neg)
    acts = torch.cat([pos, neg])
    a, b = field_variation(step, acts, T=2.0), field_variation(ode, acts, T=2.0)
    assert a.n_steps == 10
    assert a.rows["gap"].to_numpy() == pytest.approx(b.rows["gap"].to_numpy())


def test_field_variation_frame_and_summary() -> None:
    pos, neg = _blobs()
    acts = torch.cat([pos, neg])
    labels = torch.arange(len(acts)) < len(pos)
    fv = field_variation(
        lo.ODESteer(lo.sketch_barrier(n_components=256)).fit(pos, neg), acts, labels=labels
    )
    frame = fv.to_frame()
    assert list(frame.columns) == ["steerer", "T", "solver", "n_steps", "n_rows", "metric", "value"]
    values = dict(zip(frame["metric"], frame["value"], strict=True))
    assert values["mean_pairwise_cosine"] == fv.mean_pairwise_cosine
    assert values["auc"] == fv.auc and values["accuracy"] == fv.accuracy
    assert set(fv.rows.columns) >= {"gap", "bend", "turn_deg", "cos_to_mean", "h", "label"}
    text = fv.summary()
    assert text.startswith("At these settings (ODESteer")
    assert f"{100 * fv.median('gap'):.2f}% of one step" in text
    assert "AUC" in text


def test_field_variation_pair_sample_is_capped_and_seeded() -> None:
    pos, neg = _blobs(n=60)
    steerer = lo.ODESteer(lo.sketch_barrier(n_components=256, gamma=10.0)).fit(pos, neg)
    acts = torch.cat([pos, neg])
    a = field_variation(steerer, acts, T=1.0, max_pairs=500, seed=3)
    b = field_variation(steerer, acts, T=1.0, max_pairs=500, seed=3)
    full = field_variation(steerer, acts, T=1.0)
    assert a.pairwise_cosines.shape == (500,)
    assert np.array_equal(a.pairwise_cosines, b.pairwise_cosines)
    assert full.pairwise_cosines.shape == (120 * 119 // 2,)
    assert full.pairwise_cosines.mean() == pytest.approx(full.mean_pairwise_cosine, abs=1e-5)


def test_field_variation_rejects_bad_input() -> None:
    pos, neg = _blobs()
    acts = torch.cat([pos, neg])
    ode = lo.ODESteer(lo.sketch_barrier(n_components=128)).fit(pos, neg)
    with pytest.raises(InvalidParameterError, match="T interpolates"):
        field_variation(lo.MiMiC().fit(pos, neg), acts, T=1.0)
    with pytest.raises(InvalidParameterError, match="LinAcT"):
        field_variation(lo.LinAcT().fit(pos, neg), acts, T=1.0)
    with pytest.raises(InvalidParameterError, match="pass the strength"):
        field_variation(ode, acts)
    with pytest.raises(ShapeMismatchError, match="one 0/1 label"):
        field_variation(ode, acts, labels=torch.ones(3, dtype=torch.bool))
    with pytest.raises(InvalidParameterError, match="bool or 0/1"):
        field_variation(ode, acts, labels=torch.full((len(acts),), 0.5))
    with pytest.raises(ShapeMismatchError):
        field_variation(ode, acts[:, :3], T=1.0)
    with pytest.raises(NotFittedError):
        field_variation(lo.ODESteer(), acts, T=1.0)
    # A wrong type is caught by our check or, under the test suite's import hook, by beartype.
    with pytest.raises((InvalidParameterError, TypeError), match="steerer"):
        field_variation("ODESteer", acts, T=1.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="`T`"):
        field_variation(ode, acts, T=-1.0)


# --------------------------------------------------------------------------- AUC


def test_field_variation_auc_is_none_for_one_class_labels() -> None:
    gen = torch.Generator().manual_seed(0)
    pos, neg = torch.randn(20, 4, generator=gen) + 1, torch.randn(20, 4, generator=gen) - 1
    fv = field_variation(
        lo.CAA().fit(pos, neg), pos, labels=torch.ones(20, dtype=torch.bool), T=1.0
    )
    assert fv.auc is None and fv.accuracy is not None
    assert math.isnan(fv.to_frame().set_index("metric").loc["auc", "value"])


# --------------------------------------------------------------------------- per layer


def _tiny_data() -> ContrastDataset:
    triples = [
        (f"Review {i}:", f" great, lovely, {i} stars", f" awful, broken, {i} stars")
        for i in range(12)
    ]
    return ContrastDataset.from_triples("tiny", triples)


def test_field_variation_by_layer_on_tiny_model() -> None:
    model = lo.tiny_bridge(n_layers=2)
    frame = field_variation_by_layer(
        model,
        _tiny_data(),
        [0, 1],
        make_steerer=lambda: lo.ODESteer(lo.sketch_barrier(n_components=256)),
        test_size=0.5,
    )
    assert sorted(frame["layer"].unique()) == [0, 1]
    assert set(frame["hook_name"]) == {"blocks.0.hook_resid_post", "blocks.1.hook_resid_post"}
    one = frame[(frame["layer"] == 1) & (frame["metric"] == "mean_pairwise_cosine")]
    assert len(one) == 1 and -1.0 <= float(one["value"].iloc[0]) <= 1.0
    assert (frame.loc[frame["metric"] == "auc", "value"].between(0, 1)).all()
    assert (frame["n_rows"] == 12).all()  # 6 held-out pairs, both texts


def test_split_by_group_matches_dataset_split() -> None:
    triples = [(f"q{i // 3}", f"yes {i}", f"no {i}", str(i // 3)) for i in range(30)]
    data = ContrastDataset.from_triples("grouped", triples)
    pos = torch.arange(30.0).unsqueeze(-1).repeat(1, 2)
    split = split_by_group(data, "h", pos, -pos, test_size=0.3, seed=4)
    _, test = data.split(0.3, seed=4)
    test_rows = sorted(int(p.positive.split()[1]) for p in test)
    assert split.test_pos[:, 0].long().tolist() == test_rows
    assert split.train_pos.shape[0] + split.test_pos.shape[0] == 30
    acts, labels = split.test_acts_and_labels()
    assert labels.sum() == len(test_rows) and acts.shape == (2 * len(test_rows), 2)
    with pytest.raises(ShapeMismatchError, match="one row per pair"):
        split_by_group(data, "h", pos[:5], -pos[:5])


def test_plot_field_variation_figures() -> None:
    from lens_odesteer.viz.nonlinearity import plot_field_variation, plot_field_variation_by_layer

    pos, neg = _blobs()
    acts = torch.cat([pos, neg])
    labels = torch.arange(len(acts)) < len(pos)
    frames = []
    for layer, steerer in enumerate([lo.ODESteer(lo.sketch_barrier(n_components=256)), lo.CAA()]):
        fv = field_variation(steerer.fit(pos, neg), acts, labels=labels, T=1.0)
        frame = fv.to_frame()
        frame.insert(0, "layer", layer)
        frames.append(frame)
    import pandas as pd

    fig = plot_field_variation_by_layer(pd.concat(frames))
    names = {trace.name for trace in fig.data}
    assert names == {"ODESteer", "CAA"}
    assert len(fig.layout.annotations) >= 4  # one title per panel
    hist = plot_field_variation(fv)
    assert len(hist.data) == 3 and isinstance(fv, FieldVariation)
    assert not math.isnan(float(np.nanmean(hist.data[1].x)))


# --------------------------------------------------------------------------- real model


@pytest.mark.slow
def test_field_variation_smollm2_default_barrier_is_nearly_linear() -> None:
    """METHOD.md section 7 on our own data: the default barrier barely bends at any layer."""
    model = lo.load_model(progress=False)
    data = lo.load_builtin("sentiment")[:16]
    frame = field_variation_by_layer(model, data, [5, 15, 25], test_size=0.5, seed=0)
    wide = frame.pivot(index="layer", columns="metric", values="value")
    assert (wide["mean_pairwise_cosine"] > 0.95).all()
    assert (wide["bend_median"] < 0.05).all()
    assert (wide["gap_median"] > wide["bend_median"]).all()  # mostly rotation on the sphere
    assert (wide["auc"] > 0.8).all()
