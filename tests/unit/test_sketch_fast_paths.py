"""The sketch's fast paths (blocks of rows, cached tables, path choice by width) change nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from lens_odesteer.barriers import KernelLogisticBarrier
from lens_odesteer.barriers import kernel as kernel_module
from lens_odesteer.features import PolynomialSketch
from lens_odesteer.features import sketch as sketch_module


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread, so the blocks are small (64 rows) and a test covers several."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert sketch_module._block_rows() == sketch_module._BLOCK_ROWS_ONE_THREAD
        yield
    finally:
        torch.set_num_threads(before)


def test_block_rows_grow_with_threads() -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert sketch_module._block_rows() == 2 * sketch_module._BLOCK_ROWS_PER_THREAD
    finally:
        torch.set_num_threads(before)


def _rows(n: int, d: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=dtype) * 3


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_blocked_rows_equal_one_row_at_a_time(degree: int, one_thread: None) -> None:
    block = sketch_module._block_rows()
    n_rows = 2 * block + 5  # several blocks
    x = _rows(n_rows, 6, 0)
    fm = PolynomialSketch(n_components=96, degree=degree, seed=1).fit(x)
    coef = _rows(1, 96, 2)[0]
    phi = fm.transform(x)
    value, grad = fm.dot_and_grad(x, coef)
    for i in (0, block, n_rows - 1):
        v_i, g_i = fm.dot_and_grad(x[i : i + 1], coef)
        torch.testing.assert_close(phi[i : i + 1], fm.transform(x[i : i + 1]), rtol=0, atol=0)
        torch.testing.assert_close(value[i : i + 1], v_i, rtol=0, atol=0)
        torch.testing.assert_close(grad[i : i + 1], g_i, rtol=0, atol=0)
    torch.testing.assert_close(value, phi @ coef, rtol=1e-12, atol=1e-12)


def test_cached_tables_follow_dtype_moves_and_refits() -> None:
    x = _rows(20, 5, 3)
    fm = PolynomialSketch(n_components=64, seed=0).fit(x.float())
    coef = _rows(1, 64, 4)[0]
    v32, _ = fm.dot_and_grad(x.float(), coef.float())
    moved = fm.to(dtype=torch.float64)
    v64, g64 = moved.dot_and_grad(x, coef)
    assert v64.dtype == g64.dtype == torch.float64
    torch.testing.assert_close(v64.float(), v32, rtol=1e-5, atol=1e-5)
    # A refit with another seed draws new hashes: the cached tables must not survive it.
    refit = fm.to(dtype=torch.float64)
    refit.seed = 7
    refit.fit(x)
    fresh = PolynomialSketch(n_components=64, seed=7).fit(x)
    torch.testing.assert_close(refit.dot_and_grad(x, coef)[1], fresh.dot_and_grad(x, coef)[1])
    assert not torch.allclose(refit.dot_and_grad(x, coef)[1], g64)


@pytest.mark.filterwarnings("ignore:Logistic regression stopped")
def test_wide_barrier_switches_path_by_batch_with_equal_results() -> None:
    d = kernel_module._QUADRATIC_ALWAYS_MAX_D + 8
    assert d <= kernel_module._QUADRATIC_MAX_D
    pos, neg = _rows(24, d, 5) + 0.5, _rows(24, d, 6) - 0.5
    bar = KernelLogisticBarrier(PolynomialSketch(n_components=256), max_iter=30).fit(pos, neg)
    assert bar._quadratic is not None and bar._quadratic_min_rows > 1
    many = _rows(bar._quadratic_min_rows, d, 7)  # quadratic form
    h_many, g_many = bar.value_and_grad(many)
    h_few, g_few = bar.value_and_grad(many[:3])  # FFTs
    torch.testing.assert_close(h_few, h_many[:3], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g_few, g_many[:3], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(bar.value(many[:3]), h_few, rtol=1e-10, atol=1e-12)


@pytest.mark.filterwarnings("ignore:Logistic regression stopped")
def test_widest_barrier_uses_ffts_only() -> None:
    d = kernel_module._QUADRATIC_MAX_D + 1
    pos, neg = _rows(8, d, 8) + 0.5, _rows(8, d, 9) - 0.5
    bar = KernelLogisticBarrier(PolynomialSketch(n_components=64), max_iter=5).fit(pos, neg)
    assert bar._quadratic is None


def test_transform_in_blocks_supports_autograd(one_thread: None) -> None:
    x = _rows(2 * sketch_module._block_rows() + 3, 5, 10)
    fm = PolynomialSketch(n_components=32, seed=2).fit(x)
    a = x.clone().requires_grad_()
    with torch.enable_grad():
        phi = fm.transform(a)
        (grad,) = torch.autograd.grad(phi.sum(), a)
    torch.testing.assert_close(phi.detach(), fm.transform(x), rtol=0, atol=0)
    _, ours = fm.dot_and_grad(x, torch.ones(32, dtype=x.dtype))
    torch.testing.assert_close(grad, ours, rtol=1e-10, atol=1e-12)
    assert fm.transform(x[:0]).shape == (0, 32)
