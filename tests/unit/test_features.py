"""Feature maps: analytic gradients equal autograd and finite differences; kernels approximated."""

from __future__ import annotations

import math

import pytest
import torch

from lens_odesteer.features import (
    AbstractFeatureMap,
    IdentityFeatures,
    PolynomialSketch,
    RandomFourierFeatures,
)

FEATURE_MAPS = [
    lambda: PolynomialSketch(n_components=128, degree=2, gamma=0.7, seed=1),
    lambda: PolynomialSketch(n_components=64, degree=3, gamma=0.5, coef0=0.3, seed=2),
    lambda: PolynomialSketch(n_components=64, degree=1, seed=3),
    lambda: PolynomialSketch(n_components=96, normalize=False, seed=4),
    lambda: RandomFourierFeatures(n_components=64, seed=5),
    lambda: RandomFourierFeatures(n_components=64, normalize=True, bandwidth=0.8, seed=6),
    lambda: IdentityFeatures(),
    lambda: IdentityFeatures(normalize=True),
]


def _data() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(30, 7, generator=gen, dtype=torch.float64) * 3


@pytest.mark.parametrize("make", FEATURE_MAPS)
def test_feature_map_dot_and_grad_matches_autograd(make) -> None:
    x = _data()
    fm: AbstractFeatureMap = make().fit(x)
    coef = torch.randn(
        fm.n_features_out, dtype=torch.float64, generator=torch.Generator().manual_seed(9)
    )
    a = x[:6].clone().requires_grad_()
    with torch.enable_grad():
        value = fm.transform(a) @ coef
        (auto,) = torch.autograd.grad(value.sum(), a)
    with torch.inference_mode():
        dot, grad = fm.dot_and_grad(x[:6], coef)
    torch.testing.assert_close(dot, value.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, auto, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("make", FEATURE_MAPS)
def test_feature_map_grad_matches_central_differences(make) -> None:
    x = _data()
    fm = make().fit(x)
    coef = torch.randn(
        fm.n_features_out, dtype=torch.float64, generator=torch.Generator().manual_seed(3)
    )
    a = x[7]
    _, grad = fm.dot_and_grad(a[None], coef)
    eps = 1e-6
    fd = torch.empty_like(a)
    for i in range(a.numel()):
        e = torch.zeros_like(a)
        e[i] = eps
        fd[i] = (fm.transform(a + e) @ coef - fm.transform(a - e) @ coef) / (2 * eps)
    torch.testing.assert_close(grad[0], fd, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("make", FEATURE_MAPS)
def test_feature_map_vjp_matches_per_row_autograd(make) -> None:
    x = _data()
    fm = make().fit(x)
    cot = torch.randn(4, fm.n_features_out, dtype=torch.float64)
    a = x[:4].clone().requires_grad_()
    with torch.enable_grad():
        (auto,) = torch.autograd.grad((fm.transform(a) * cot).sum(), a)
    torch.testing.assert_close(fm.vjp(x[:4], cot), auto, rtol=1e-10, atol=1e-12)


def test_sketch_gradient_is_orthogonal_to_activation() -> None:
    x = _data()
    fm = PolynomialSketch(n_components=256, seed=0).fit(x)
    coef = torch.randn(256, dtype=torch.float64)
    _, grad = fm.dot_and_grad(x, coef)
    cos = (grad * x).sum(-1) / (grad.norm(dim=-1) * x.norm(dim=-1))
    assert cos.abs().max() < 1e-12


def test_sketch_approximates_polynomial_kernel_on_directions() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(20, 16, generator=gen, dtype=torch.float64)
    gamma, coef0 = 0.5, 1.0
    phi = PolynomialSketch(n_components=8000, gamma=gamma, coef0=coef0, seed=0).fit(x).transform(x)
    xn = x / x.norm(dim=-1, keepdim=True)
    exact = (gamma * xn @ xn.T + coef0) ** 2
    err = (phi @ phi.T - exact).abs()
    # TensorSketch is unbiased with O(1/sqrt(n)) error; n=8000 keeps it well under 0.1 here.
    assert err.mean() < 0.03
    assert err.max() < 0.15


def test_sketch_is_scale_invariant() -> None:
    x = _data()
    fm = PolynomialSketch(n_components=128, seed=0).fit(x)
    torch.testing.assert_close(fm.transform(x * 7.5), fm.transform(x), rtol=1e-12, atol=1e-12)


def test_rff_approximates_gaussian_kernel() -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(30, 5, generator=gen, dtype=torch.float64)
    rff = RandomFourierFeatures(n_components=20000, seed=0).fit(x)
    phi = rff.transform(x)
    sigma = rff.bandwidth_
    exact = torch.exp(-(torch.cdist(x, x) ** 2) / (2 * sigma**2))
    assert (phi @ phi.T - exact).abs().max() < 4 / math.sqrt(20000) * 3


def test_rff_median_bandwidth() -> None:
    x = _data()
    rff = RandomFourierFeatures(n_components=8, seed=0).fit(x)
    d = torch.cdist(x, x)
    iu = torch.triu_indices(30, 30, 1)
    assert rff.bandwidth_ == pytest.approx(float(d[iu[0], iu[1]].median()) / math.sqrt(2))


@pytest.mark.parametrize("cls", [PolynomialSketch, RandomFourierFeatures])
def test_feature_map_random_state_comes_from_seed(cls) -> None:
    x = _data()
    a, b, c = (
        cls(n_components=32, seed=3).fit(x),
        cls(n_components=32, seed=3).fit(x),
        cls(n_components=32, seed=4).fit(x),
    )
    torch.testing.assert_close(a.transform(x), b.transform(x), rtol=0, atol=0)
    assert not torch.allclose(a.transform(x), c.transform(x))
    state = torch.random.get_rng_state()
    cls(n_components=32, seed=3).fit(x)
    assert torch.equal(state, torch.random.get_rng_state()), "fit must not touch the global RNG"
