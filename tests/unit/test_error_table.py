"""Every row of docs/ERRORS.md is one case here: bad input -> the documented error or result."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import lens_odesteer as lo
from lens_odesteer.errors import (
    FileFormatError,
    HookNameError,
    InvalidActivationsError,
    InvalidParameterError,
    NotFittedError,
    ShapeMismatchError,
)
from lens_odesteer.evaluation.methods import make_steerer, parse_methods
from lens_odesteer.evaluation.tasks import make_task
from lens_odesteer.steerers import AbstractSteerer

DOC = Path(__file__).resolve().parents[2] / "docs" / "ERRORS.md"
GEN = torch.Generator().manual_seed(0)
POS = torch.randn(20, 4, generator=GEN) + 1
NEG = torch.randn(20, 4, generator=GEN) - 1


@dataclass(frozen=True)
class Case:
    id: str
    run: Callable[[Path], object]
    error: type[BaseException] | None = None
    match: str = ""


def _ode(seed: int = 0, **kw) -> lo.ODESteer:
    return lo.ODESteer(lo.sketch_barrier(n_components=64, seed=seed), **kw)


def _finite_steer(steerer: AbstractSteerer, acts: torch.Tensor, T: float) -> torch.Tensor:
    out = steerer.steer(acts, T)
    assert out.shape == acts.shape and out.dtype == acts.dtype and torch.isfinite(out).all()
    return out


def _identical(_: Path) -> None:
    s = _ode().fit(POS, POS.clone())
    assert torch.equal(_finite_steer(s, POS, 5.0), POS), "a flat barrier must leave rows put"


def _single(_: Path) -> None:
    for cls in (lo.ODESteer, lo.CAA, lo.ITI, lo.RepE, lo.LinAcT, lo.MiMiC, lo.ValueSteer):
        _finite_steer(cls().fit(POS[:1], NEG[:1]), NEG, 1.0)


def _separable(_: Path) -> None:
    s = _ode().fit(POS + 100, NEG - 100)
    _finite_steer(s, NEG, 3.0)


def _imbalance(_: Path) -> None:
    neg = torch.randn(100, 4, generator=torch.Generator().manual_seed(1)) - 1
    s = _ode().fit(POS[:1], neg)
    assert s.barrier_.log_prior_ratio_ == pytest.approx(torch.log(torch.tensor(100.0)).item())
    _finite_steer(s, neg, 3.0)


def _huge_T(_: Path) -> None:
    for s in (_ode(), _ode(solver="rk4"), lo.CAA()):
        _finite_steer(s.fit(POS, NEG), NEG, 1e6)


def _half(_: Path) -> None:
    s = _ode().fit(POS, NEG)
    for dtype in (torch.float16, torch.bfloat16):
        _finite_steer(s, NEG.to(dtype), 2.0)


def _norms(_: Path) -> None:
    s = _ode().fit(POS, NEG)
    for scale in (1e6, 1e-6, 0.0):
        _finite_steer(s, NEG * scale, 2.0)


def _deterministic(_: Path) -> None:
    a, b = _ode(seed=3).fit(POS, NEG), _ode(seed=3).fit(POS, NEG)
    assert torch.equal(a.steer(NEG, 2.0), b.steer(NEG, 2.0))
    assert torch.equal(a.steer(NEG, 2.0), a.steer(NEG, 2.0))


def _zero_grad(_: Path) -> None:
    s = lo.ODESteer(lo.barriers.LinearBarrier()).fit(POS, NEG)
    s.barrier_.coef_ = torch.zeros(4)
    assert torch.equal(_finite_steer(s, NEG, 2.0), NEG)


def _saved(tmp: Path) -> Path:
    return lo.CAA().fit(POS, NEG).save(tmp / "caa")


def _truncated(tmp: Path) -> object:
    path = _saved(tmp)
    path.write_bytes(path.read_bytes()[:-7])
    return lo.load_steerer(path)


def _foreign(tmp: Path) -> object:
    save_file({"w": torch.zeros(2)}, str(tmp / "f.safetensors"))
    return lo.load_steerer(tmp / "f.safetensors")


def _wrong_format(tmp: Path) -> object:
    (tmp / "x.safetensors").write_text("hello")
    return lo.load_steerer(tmp / "x.safetensors")


def _tiny_model():
    return lo.tiny_bridge()


def _hook_typo(_: Path) -> object:
    model = _tiny_model()
    steerer = lo.CAA().fit(torch.randn(4, 64), torch.randn(4, 64))
    with lo.steering(model, {"blocks.1.hook_resid_pots": steerer}, T=1.0):
        pass
    return None


def _hook_width(_: Path) -> object:
    with lo.steering(_tiny_model(), {"blocks.1.hook_resid_post": lo.CAA().fit(POS, NEG)}, T=1.0):
        pass
    return None


def _not_residual(_: Path) -> object:
    model = _tiny_model()
    steerer = lo.CAA().fit(torch.randn(4, 64), torch.randn(4, 64))
    with lo.steering(model, {"blocks.0.attn.hook_pattern": steerer}, T=1.0):
        model(model.to_tokens("Hello"))
    return None


def _scope(_: Path) -> object:
    steerer = lo.CAA().fit(torch.randn(4, 64), torch.randn(4, 64))
    with lo.steering(_tiny_model(), {"blocks.1.hook_resid_post": steerer}, T=1.0, scope="first"):
        pass
    return None


def _position(_: Path) -> object:
    steerer = lo.CAA().fit(torch.randn(4, 64), torch.randn(4, 64))
    with lo.steering(_tiny_model(), {"blocks.1.hook_resid_post": steerer}, T=1.0, scope=[10_000]):
        pass
    return None


CASES = [
    Case(
        "acts-rank",
        lambda _: lo.CAA().fit(torch.tensor(1.0), NEG),
        InvalidActivationsError,
        r"shape \[\.\.\., d_model\]",
    ),
    Case(
        "acts-width-fit",
        lambda _: lo.CAA().fit(POS, NEG[:, :3]),
        ShapeMismatchError,
        "same hook",
    ),
    Case(
        "acts-width-steer",
        lambda _: lo.CAA().fit(POS, NEG).steer(torch.ones(2, 5), 1.0),
        ShapeMismatchError,
        "fitted on d_model=4",
    ),
    Case(
        "acts-nonfinite-fit",
        lambda _: lo.CAA().fit(POS.clone().fill_(float("nan")), NEG),
        InvalidActivationsError,
        "non-finite",
    ),
    Case(
        "acts-nonfinite-steer",
        lambda _: lo.CAA().fit(POS, NEG).steer(torch.full((2, 4), float("inf")), 1.0),
        InvalidActivationsError,
        "non-finite",
    ),
    Case(
        "acts-empty", lambda _: lo.CAA().fit(POS, NEG[:0]), InvalidActivationsError, "is empty"
    ),
    Case(
        "acts-integer",
        lambda _: lo.CAA().fit(POS.long(), NEG),
        InvalidActivationsError,
        "floating tensor",
    ),
    Case(
        "labels-values",
        lambda _: lo.CAA().fit(POS, torch.full((20,), 2)),
        InvalidParameterError,
        "0/1",
    ),
    Case(
        "labels-shape",
        lambda _: lo.CAA().fit(POS, torch.ones(7, dtype=torch.long)),
        ShapeMismatchError,
        "one label per activation",
    ),
    Case("one-per-class", _single),
    Case("identical-classes", _identical),
    Case("separable-classes", _separable),
    Case("imbalance-1-100", _imbalance),
    Case("unfitted", lambda _: lo.ODESteer().steer(NEG, 1.0), NotFittedError, "not fitted"),
    Case(
        "T-negative",
        lambda _: lo.CAA().fit(POS, NEG).steer(NEG, -1.0),
        InvalidParameterError,
        "`T` must be >= 0",
    ),
    Case(
        "T-nonfinite",
        lambda _: lo.CAA().fit(POS, NEG).steer(NEG, float("nan")),
        InvalidParameterError,
        "`T` must be finite",
    ),
    Case(
        "steps",
        lambda _: _ode(steps=0).fit(POS, NEG),
        InvalidParameterError,
        "`steps` must be an int >= 1",
    ),
    Case(
        "steps-solver",
        lambda _: _ode(solver="dopri5").fit(POS, NEG),
        InvalidParameterError,
        r"adaptive; pass `steps=AdaptiveSteps\(\.\.\.\)`",
    ),
    Case(
        "solver",
        lambda _: _ode(solver="rk45").fit(POS, NEG),
        InvalidParameterError,
        "Unknown solver 'rk45'",
    ),
    Case(
        "n_components",
        lambda _: lo.ODESteer(lo.sketch_barrier(n_components=0)).fit(POS, NEG),
        InvalidParameterError,
        "`n_components` must be >= 1",
    ),
    Case("scope", _scope, InvalidParameterError, "scope"),
    Case("position", _position, InvalidParameterError, "position"),
    Case("hook-typo", _hook_typo, HookNameError, "blocks.1.hook_resid_post"),
    Case("hook-width", _hook_width, ShapeMismatchError, "d_model=4"),
    Case("hook-not-residual", _not_residual, ShapeMismatchError, r"\[batch, pos, 64\]"),
    Case(
        "file-missing",
        lambda tmp: lo.load_steerer(tmp / "none.safetensors"),
        FileFormatError,
        "No steerer file",
    ),
    Case("file-truncated", _truncated, FileFormatError, ""),
    Case("file-wrong-format", _wrong_format, FileFormatError, "not a readable safetensors"),
    Case("file-foreign", _foreign, FileFormatError, "not a lens_odesteer steerer"),
    Case(
        "half-overflow",
        lambda _: lo.CAA().fit(POS * 1e4, NEG * 1e4).steer(torch.full((2, 4), 6e4).half(), 5.0),
        InvalidActivationsError,
        "exceed the range of torch.float16",
    ),
    Case(
        "eval-method",
        lambda _: parse_methods("CAA,ODESteerr"),
        InvalidParameterError,
        "Unknown method 'ODESteerr'. Expected one of",
    ),
    Case(
        "eval-searched-unfitted",
        lambda _: make_steerer("ODESteer-searched"),
        InvalidParameterError,
        "fit_method",
    ),
    Case(
        "eval-seeds",
        lambda _: make_task("sentiment", seeds=()),
        InvalidParameterError,
        "non-empty sequence of ints",
    ),
    Case("zero-gradient", _zero_grad),
    Case("huge-T", _huge_T),
    Case("half-precision", _half),
    Case("huge-tiny-zero-norms", _norms),
    Case("deterministic", _deterministic),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_error_table_case(case: Case, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if case.error is None:
            case.run(tmp_path)
            return
        with pytest.raises(case.error, match=case.match) as info:
            case.run(tmp_path)
    assert isinstance(info.value, lo.LensOdesteerError)


def test_docs_table_lists_exactly_these_cases() -> None:
    ids = re.findall(r"^\| `([A-Za-z0-9_-]+)` \|", DOC.read_text(), flags=re.M)
    assert sorted(ids) == sorted(c.id for c in CASES)
