"""Barriers: exact gradients (autograd, finite differences, inference mode), logistic parity."""

from __future__ import annotations

import math

import pytest
import torch

from lens_odesteer.barriers import (
    AbstractBarrier,
    KernelLogisticBarrier,
    LinearBarrier,
    MLPValueBarrier,
    fit_logistic,
)
from lens_odesteer.features import PolynomialSketch, RandomFourierFeatures

BARRIERS = {
    "sketch": lambda: KernelLogisticBarrier(PolynomialSketch(n_components=256, gamma=1.0)),
    "sketch-deg3": lambda: KernelLogisticBarrier(PolynomialSketch(n_components=128, degree=3)),
    "rff": lambda: KernelLogisticBarrier(RandomFourierFeatures(n_components=128)),
    "linear": lambda: LinearBarrier(),
    "linear-normalized": lambda: LinearBarrier(normalize=True),
    "mlp": lambda: MLPValueBarrier(hidden=16, max_iter=100),
}


@pytest.fixture(params=list(BARRIERS), ids=list(BARRIERS))
def fitted(request, blobs64) -> tuple[AbstractBarrier, torch.Tensor]:
    pos, neg = blobs64
    return BARRIERS[request.param]().fit(pos, neg), torch.cat([pos, neg])


def test_barrier_grad_matches_autograd_in_float64(fitted) -> None:
    barrier, x = fitted
    a = x[::7].clone().requires_grad_()
    with torch.enable_grad():
        h = barrier._value_and_grad(a)[0]
        (auto,) = torch.autograd.grad(h.sum(), a)
    torch.testing.assert_close(barrier.grad(x[::7]), auto, rtol=1e-10, atol=1e-12)


def test_barrier_grad_matches_finite_differences(fitted) -> None:
    barrier, x = fitted
    a = x[3]
    eps = 1e-6
    fd = torch.stack(
        [
            (barrier.value(a + eps * e) - barrier.value(a - eps * e)) / (2 * eps)
            for e in torch.eye(a.numel(), dtype=a.dtype)
        ]
    )
    torch.testing.assert_close(barrier.grad(a), fd, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("mode", ["inference_mode", "no_grad"])
def test_barrier_grad_works_without_autograd(fitted, mode) -> None:
    barrier, x = fitted
    expected = barrier.grad(x[:5])
    ctx = torch.inference_mode() if mode == "inference_mode" else torch.no_grad()
    with ctx:
        got = barrier.grad(x[:5])
        value = barrier.value(x[:5])
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert torch.isfinite(value).all()


def test_barrier_value_and_grad_agree_with_value(fitted) -> None:
    barrier, x = fitted
    h, _ = barrier.value_and_grad(x.reshape(2, 40, -1))
    torch.testing.assert_close(h.reshape(-1), barrier.value(x), rtol=1e-10, atol=1e-10)


def test_barrier_classifies_its_training_data(fitted) -> None:
    barrier, x = fitted
    labels = torch.arange(80) < 40
    acc = ((barrier.logit(x) > 0) == labels).double().mean()
    assert acc > 0.75


def test_barrier_prior_correction_is_log_odds_of_class_sizes(blobs64) -> None:
    pos, neg = blobs64
    bar = LinearBarrier().fit(pos[:10], neg)
    assert bar.log_prior_ratio_ == pytest.approx(math.log(40 / 10))
    torch.testing.assert_close(
        bar.value(pos) - bar.logit(pos), torch.full((40,), math.log(4.0), dtype=torch.float64)
    )


def test_fit_logistic_matches_scikit_learn() -> None:
    sklearn = pytest.importorskip("sklearn.linear_model")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(300, 12, generator=gen, dtype=torch.float64)
    w_true = torch.randn(12, generator=gen, dtype=torch.float64)
    y = (x @ w_true + 0.5 * torch.randn(300, generator=gen, dtype=torch.float64)) > 0.3
    ours = fit_logistic(x, y, C=0.7, tol=1e-8, max_iter=2000)
    ref = sklearn.LogisticRegression(C=0.7, tol=1e-12, max_iter=5000).fit(x.numpy(), y.numpy())
    torch.testing.assert_close(ours.coef, torch.from_numpy(ref.coef_[0]), rtol=1e-5, atol=1e-6)
    assert ours.intercept == pytest.approx(float(ref.intercept_[0]), abs=1e-6)
    assert ours.converged


def test_fit_logistic_warns_when_not_converged() -> None:
    x = torch.randn(50, 4, dtype=torch.float64)
    with pytest.warns(UserWarning, match="max_iter"):
        fit_logistic(x, x[:, 0] > 0, max_iter=1, tol=1e-12)


def test_identical_classes_give_flat_barrier() -> None:
    x = torch.randn(30, 5, dtype=torch.float64)
    bar = KernelLogisticBarrier(PolynomialSketch(n_components=64)).fit(x, x.clone())
    assert bar.grad(x).abs().max() < 1e-6
    assert bar.value(x).abs().max() < 1e-6


@pytest.mark.parametrize("normalize", [True, False])
def test_degree2_sketch_barrier_quadratic_form_equals_fft_path(normalize) -> None:
    gen = torch.Generator().manual_seed(4)
    pos = torch.randn(60, 9, generator=gen, dtype=torch.float64) + 1
    neg = torch.randn(60, 9, generator=gen, dtype=torch.float64) - 1
    sketch = PolynomialSketch(n_components=512, gamma=0.7, coef0=0.4, normalize=normalize)
    bar = KernelLogisticBarrier(sketch).fit(pos, neg)
    assert bar._quadratic is not None, "small widths use the quadratic form"
    x = torch.randn(7, 9, generator=gen, dtype=torch.float64) * 5
    h, g = bar.value_and_grad(x)
    dot, grad = bar.features_.dot_and_grad(x, bar.coef_)
    torch.testing.assert_close(
        h, dot + bar.intercept_ + bar.log_prior_ratio_, rtol=1e-12, atol=1e-12
    )
    torch.testing.assert_close(g, grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(bar.value(x), h, rtol=1e-12, atol=1e-12)
