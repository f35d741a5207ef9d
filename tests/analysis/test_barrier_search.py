"""Barrier search: it ranks on held-out data, prefers a curved barrier where the data needs one."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

import lens_odesteer as lo
from lens_odesteer.analysis.barrier_search import (
    BarrierCandidate,
    default_barrier_grid,
    search_barrier,
)
from lens_odesteer.barriers import KernelLogisticBarrier, LinearBarrier, MLPValueBarrier
from lens_odesteer.errors import InvalidParameterError, ShapeMismatchError
from lens_odesteer.features import PolynomialSketch, RandomFourierFeatures


def _xor(d: int = 4, n: int = 60, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Positives around (2, 2) and (-2, -2), negatives around (2, -2) and (-2, 2)."""
    gen = torch.Generator().manual_seed(seed)
    signs = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]])
    parts = []
    for s in signs:
        x = 0.6 * torch.randn(n // 2, d, generator=gen)
        x[:, :2] += 2 * s
        parts.append(x)
    return torch.cat(parts[:2]), torch.cat(parts[2:])


def _small_grid() -> list[BarrierCandidate]:
    return [
        BarrierCandidate("linear", {"normalize": False}, LinearBarrier()),
        BarrierCandidate("linear", {"normalize": True}, LinearBarrier(normalize=True)),
        BarrierCandidate(
            "rff",
            {"bandwidth": 2.0},
            KernelLogisticBarrier(RandomFourierFeatures(512, bandwidth=2.0), C=10.0),
        ),
        BarrierCandidate(
            "sketch_raw",
            {"gamma": 0.1},
            KernelLogisticBarrier(PolynomialSketch(512, gamma=0.1, normalize=False), C=10.0),
        ),
        BarrierCandidate("mlp", {"hidden": 16}, MLPValueBarrier(hidden=16)),
    ]


def test_search_barrier_picks_a_curved_barrier_on_xor() -> None:
    pos, neg = _xor()
    result = search_barrier(pos, neg, candidates=_small_grid(), T=2.0)
    frame = result.frame
    assert result.best.family != "linear"
    assert frame["rank"].tolist().count(1) == 1 and frame["best"].sum() == 1
    linear = frame[frame["family"] == "linear"]
    assert (linear["test_auc"] < 0.75).all()  # no linear probe separates XOR
    best_row = frame[frame["best"]].iloc[0]
    assert best_row["test_auc"] > 0.95
    assert best_row["test_log_likelihood"] == frame["test_log_likelihood"].max()
    # ... and its flow bends, which the linear probes' flows cannot.
    assert result.diagnostic.mean_pairwise_cosine < 0.6
    assert result.diagnostic.median("gap") > 0.05
    assert (linear.loc[~linear["normalize"].astype(bool), "gap_median"] < 1e-5).all()
    assert isinstance(result.steerer, lo.ODESteer) and result.steerer.is_fitted
    text = result.summary()
    assert text.startswith("Best of 5 barriers by held-out log-likelihood")
    assert "Best linear probe" in text and "of one step" in text


def test_search_barrier_on_linear_data_keeps_the_linear_answer_competitive() -> None:
    gen = torch.Generator().manual_seed(1)
    shift = torch.zeros(6)
    shift[0] = 0.8
    pos = torch.randn(80, 6, generator=gen) + shift
    neg = torch.randn(80, 6, generator=gen) - shift
    result = search_barrier(pos, neg, candidates=_small_grid(), T=1.0)
    frame = result.frame.set_index("label")
    lin = frame.loc["linear(normalize=False)"]
    assert lin["test_auc"] >= frame["test_auc"].max() - 0.05
    assert lin["mean_pairwise_cosine"] == pytest.approx(1.0, abs=1e-6)


def test_search_barrier_auc_criterion_held_out_and_refit() -> None:
    pos, neg = _xor()
    test_pos, test_neg = _xor(seed=7)
    grid = _small_grid()[:3]
    result = search_barrier(
        pos,
        neg,
        candidates=grid,
        criterion="auc",
        held_out=(test_pos, test_neg),
        diagnose_all=False,
        refit=True,
        T=1.0,
    )
    assert "gap_median" not in result.frame.columns
    assert result.frame.loc[result.frame["best"], "test_auc"].iloc[0] == pytest.approx(
        result.frame["test_auc"].max()
    )
    assert result.steerer.n_pos_ == len(pos) + len(test_pos)  # refit on both parts
    assert result.diagnostic.rows.shape[0] == len(test_pos) + len(test_neg)


def test_search_barrier_split_is_seeded() -> None:
    pos, neg = _xor()
    grid = _small_grid()[:2]
    a = search_barrier(pos, neg, candidates=grid, seed=3, T=1.0, diagnose_all=False)
    b = search_barrier(pos, neg, candidates=grid, seed=3, T=1.0, diagnose_all=False)
    cols = ["test_log_likelihood", "test_auc", "train_log_likelihood"]
    assert a.frame[cols].equals(b.frame[cols])
    assert a.steerer.n_pos_ == len(pos) - round(0.3 * len(pos))


def test_search_barrier_min_bend_prefers_a_bending_flow() -> None:
    gen = torch.Generator().manual_seed(2)
    shift = torch.zeros(4)
    shift[0] = 1.0
    pos = torch.randn(60, 4, generator=gen) + shift
    neg = torch.randn(60, 4, generator=gen) - shift
    grid = _small_grid()
    plain = search_barrier(pos, neg, candidates=grid, T=2.0)
    bending = search_barrier(pos, neg, candidates=grid, T=2.0, min_bend=0.02)
    chosen = bending.frame[bending.frame["best"]].iloc[0]
    assert chosen["eligible"] and chosen["bend_median"] >= 0.02
    eligible = bending.frame[bending.frame["eligible"]]
    assert chosen["test_log_likelihood"] == eligible["test_log_likelihood"].max()
    assert bending.diagnostic.median("bend") >= 0.02
    assert plain.frame["test_log_likelihood"].max() >= chosen["test_log_likelihood"]
    with pytest.warns(UserWarning, match="No candidate bends"):
        none = search_barrier(pos, neg, candidates=grid[:2], T=2.0, min_bend=0.5)
    assert none.frame["best"].sum() == 1 and not none.frame["eligible"].any()
    with pytest.raises(InvalidParameterError, match="diagnose_all"):
        search_barrier(pos, neg, candidates=grid[:1], min_bend=0.1, diagnose_all=False)


def test_default_barrier_grid_covers_the_families() -> None:
    pos, neg = _xor()
    grid = default_barrier_grid(torch.cat([pos, neg]), n_components=256)
    families = {c.family for c in grid}
    assert families == {"linear", "sketch", "sketch_raw", "rff", "mlp"}
    assert len(grid) == 28
    assert len({c.label for c in grid}) == len(grid)
    sketches = [c.params for c in grid if c.family == "sketch"]
    assert {p["degree"] for p in sketches} == {2, 3}
    assert {p["n_components"] for p in sketches} == {256, 2000}


def test_search_barrier_rejects_bad_input() -> None:
    pos, neg = _xor()
    with pytest.raises(InvalidParameterError, match="criterion"):
        search_barrier(pos, neg, candidates=_small_grid()[:1], criterion="accuracy")
    with pytest.raises(InvalidParameterError, match="empty"):
        search_barrier(pos, neg, candidates=[])
    with pytest.raises(InvalidParameterError, match="test_size"):
        search_barrier(pos, neg, candidates=_small_grid()[:1], test_size=1.5)
    with pytest.raises(ShapeMismatchError, match="held_out"):
        search_barrier(pos, neg, candidates=_small_grid()[:1], held_out=(pos[:, :2], neg[:, :2]))
    # Mismatched widths: our check, or beartype's under the test suite's import hook.
    with pytest.raises((ShapeMismatchError, TypeError)):
        search_barrier(pos, neg[:, :2])


def test_plot_barrier_search_marks_the_best() -> None:
    from lens_odesteer.viz.nonlinearity import plot_barrier_search

    pos, neg = _xor()
    result = search_barrier(pos, neg, candidates=_small_grid()[:3], T=1.0)
    fig = plot_barrier_search(result.frame)
    names = [trace.name for trace in fig.data]
    assert names[-1] == "best" and set(names[:-1]) == {"linear", "rff"}
    assert list(fig.data[-1].text) == [result.best.label]
    with pytest.raises(InvalidParameterError, match="diagnose_all"):
        plot_barrier_search(result.frame.drop(columns=["gap_median"]))


@pytest.mark.slow
def test_search_barrier_smollm2_layer15_sentiment() -> None:
    """One collection, a few fits on SmolLM2: the search runs on real activations, and on this
    near-linear task even its best barrier keeps field directions close together."""
    model = lo.load_model(progress=False)
    data = lo.load_builtin("sentiment")[:32]
    hook = lo.resid_post(15)
    pos = lo.collect_activations(model, data.positive_texts(), hook, progress=False)
    neg = lo.collect_activations(model, data.negative_texts(), hook, progress=False)
    assert isinstance(pos, Tensor) and isinstance(neg, Tensor)
    grid = [
        BarrierCandidate("linear", {"normalize": True}, LinearBarrier(normalize=True)),
        BarrierCandidate(
            "sketch",
            {"gamma": 0.1},
            KernelLogisticBarrier(PolynomialSketch(2000, gamma=0.1)),
        ),
        BarrierCandidate(
            "sketch",
            {"gamma": 10.0},
            KernelLogisticBarrier(PolynomialSketch(2000, gamma=10.0)),
        ),
    ]
    result = search_barrier(pos, neg, candidates=grid, seed=0)
    frame = result.frame
    assert len(frame) == 3 and frame["best"].sum() == 1
    best = frame[frame["best"]].iloc[0]
    assert best["test_log_likelihood"] == frame["test_log_likelihood"].max()
    assert (frame["test_auc"] > 0.8).all()
    assert (frame["mean_pairwise_cosine"] > 0.95).all()
    lin = frame[frame["family"] == "linear"].iloc[0]
    assert lin["bend_median"] < 1e-4  # linear in a/|a|: the great circle exactly
    assert result.diagnostic.tangent
