"""Every row of docs/ERRORS.md is one case here: bad input -> the documented error or result."""

from __future__ import annotations

import json
import re
import struct
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jaxtyping
import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

import lens_odesteer as lo
from lens_odesteer.datasets import load_pairs
from lens_odesteer.errors import (
    FileFormatError,
    HookNameError,
    InvalidActivationsError,
    InvalidParameterError,
    NotFittedError,
    ParameterTypeError,
    ProvenanceError,
    ShapeMismatchError,
)
from lens_odesteer.evaluation import evaluate
from lens_odesteer.evaluation.methods import make_steerer, parse_methods
from lens_odesteer.evaluation.runner import _cached_acts
from lens_odesteer.evaluation.store import PartStore
from lens_odesteer.evaluation.tasks import make_task
from lens_odesteer.flows import AdaptiveSteps, Dopri5
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
    #: Run without the test-time runtime type checker (jaxtyping + beartype), as users do: for
    #: inputs the annotations exclude on purpose (a path as bytes, a NumPy scalar ``T``).
    untyped: bool = False


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


LEGACY = Path(__file__).resolve().parents[1] / "data" / "legacy_v0.1.0"


# -- saving what cannot be loaded -----------------------------------------------------------------
def _save_refused(tmp: Path, provenance: object) -> object:
    """A save that must be refused and leave the good file there untouched."""
    caa = lo.CAA().fit(POS, NEG)
    good = caa.save(tmp / "caa")
    before = good.read_bytes()
    try:
        return caa.save(tmp / "caa", provenance=provenance)  # type: ignore[arg-type]
    finally:
        assert good.read_bytes() == before and lo.load_steerer(good).is_fitted


def _circular(tmp: Path) -> object:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    return _save_refused(tmp, loop)


def _suffix(tmp: Path) -> None:
    lo.CAA().fit(POS, NEG).save(tmp / "adir")
    assert lo.load_steerer(tmp / "adir").is_fitted  # what save("adir") wrote


# -- untrusted files: refused before any work -----------------------------------------------------
def _edited(tmp: Path, edit: Callable[[dict[str, Any]], None], src: Path | None = None) -> Path:
    """A steerer file whose JSON header was edited by hand."""
    path = src or _ode(steps=4).fit(POS, NEG).save(tmp / "ode")
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    table = json.loads(raw[8 : 8 + n])
    header = json.loads(table["__metadata__"]["lens_odesteer"])
    edit(header)
    table["__metadata__"]["lens_odesteer"] = json.dumps(header)
    new = json.dumps(table).encode()
    new += b" " * (-len(new) % 8)
    out = tmp / "edited.safetensors"
    out.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n :])
    return out


def _set(*path: Any, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(header: dict[str, Any]) -> None:
        node = header
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


def _load_fast(path: Path, seconds: float = 5.0) -> object:
    t0 = time.perf_counter()
    try:
        return lo.load_steerer(path)
    finally:
        assert time.perf_counter() - t0 < seconds, "the load did unbounded work"


def _huge_steps(tmp: Path) -> object:
    return _load_fast(_edited(tmp, _set("component", "params", "steps", value=10**8)))


def _huge_width(tmp: Path) -> object:
    edit = _set("component", "fitted", "scalars", "d_model_", value=200_000_000)
    return _load_fast(_edited(tmp, edit))


def _bad_types(tmp: Path) -> object:
    for path, value in (
        (("component", "fitted", "scalars", "dtype_"), {"dtype": "complex64"}),
        (("dtype",), "complex64"),
        (("component", "fitted", "scalars", "n_pos_"), "lots"),
    ):
        with pytest.raises(FileFormatError):
            _load_fast(_edited(tmp, _set(*path, value=value)))
    return _load_fast(_edited(tmp, _set("component", "params", "normalize", value="no")))


def _v1_outer(tmp: Path) -> object:
    edit = _set("component", "params", "n_components", value=10**9)
    return _load_fast(_edited(tmp, edit, LEGACY / "odesteer_default.safetensors"))


def _probe_bounded(tmp: Path) -> None:
    path = _edited(tmp, _set("component", "params", "steps", value=100_000))
    assert _load_fast(path, 2.0).steps == 100_000  # type: ignore[attr-defined]


# -- provenance -----------------------------------------------------------------------------------
def _loaded_for_tiny(tmp: Path, provenance: dict[str, Any]) -> AbstractSteerer:
    steerer = lo.CAA().fit(torch.randn(8, 64) + 1, torch.randn(8, 64))
    return lo.load_steerer(steerer.save(tmp / "caa", provenance=provenance))


def _prov_layer(tmp: Path) -> None:
    steerer = _loaded_for_tiny(tmp, {"layer": 1})
    hook = "blocks.0.hook_resid_post"
    with lo.steering(_tiny_model(), {hook: steerer}, T=1.0, on_provenance_mismatch="raise"):
        pass


def _prov_site(tmp: Path) -> None:
    steerer = _loaded_for_tiny(tmp, {"hook_name": "blocks.1.hook_resid_post"})
    hook = "blocks.1.hook_attn_out"
    with lo.steering(_tiny_model(), {hook: steerer}, T=1.0, on_provenance_mismatch="raise"):
        pass


def _prov_bare(tmp: Path) -> object:
    model = _tiny_model()
    steerer = _loaded_for_tiny(tmp, {"layer": 1})
    hook = lo.SteeringHook(model, steerer, T=1.0, on_provenance_mismatch="raise")
    return model.run_with_hooks("Hi", fwd_hooks=[("blocks.0.hook_resid_post", hook)])


# -- dtypes and non-finite rows -------------------------------------------------------------------
def _half_steerer(_: Path) -> object:
    """The FFT sketch has no float16/bfloat16 kernel on the CPU: refused when moved or attached."""
    wide = _ode().fit(torch.randn(20, 64) + 1, torch.randn(20, 64) - 1)
    with pytest.raises(InvalidParameterError, match=r"cannot compute in torch\.float16"):
        lo.SteeringHook(_tiny_model(), wide, T=1.0, compute_dtype=torch.float16)
    return _ode().fit(POS, NEG).to(dtype=torch.bfloat16)


def _nan_row_adaptive(_: Path) -> None:
    model = _tiny_model()
    pos, neg = torch.randn(16, 64) + 0.5, torch.randn(16, 64) - 0.5
    ode = lo.ODESteer(
        lo.sketch_barrier(n_components=64), solver=Dopri5(), steps=AdaptiveSteps()
    ).fit(pos, neg)
    for dtype in (torch.float32, torch.float16):
        acts = torch.randn(2, 5, 64).to(dtype)
        acts[0, 2] = float("nan")
        hook = lo.SteeringHook(model, ode, T=1.0, scope="all")
        t0 = time.perf_counter()
        with pytest.warns(UserWarning, match="passed through unsteered"):
            out = hook(acts)
        assert time.perf_counter() - t0 < 10.0
        assert torch.isnan(out[0, 2]).all() and bool(torch.isfinite(out[1]).all())
        assert not torch.equal(out[1], acts[1]), "the other rows are steered"


# -- data files -----------------------------------------------------------------------------------
def _line_separators(tmp: Path) -> None:
    rec = {"prompt": "a\u2028b\x85c\u2029", "positive": " yes", "negative": " no"}
    path = tmp / "p.jsonl"
    path.write_text(json.dumps(rec, ensure_ascii=False) + "\n", encoding="utf-8")
    assert load_pairs(path)[0].prompt == rec["prompt"]


def _long_field(tmp: Path) -> None:
    long = "x" * 200_000
    (tmp / "p.csv").write_text(f"positive,negative\n{long},b\n", encoding="utf-8")
    assert load_pairs(tmp / "p.csv")[0].positive == long


def _duplicate_column(tmp: Path) -> object:
    (tmp / "p.csv").write_text("positive,negative,positive\na,b,c\n", encoding="utf-8")
    return load_pairs(tmp / "p.csv")


def _deep_json(tmp: Path) -> object:
    (tmp / "p.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    return load_pairs(tmp / "p.json")


# -- evaluation store -----------------------------------------------------------------------------
def _store_part(tmp: Path) -> None:
    frame = pd.DataFrame({"unit": range(12), "mc2": np.linspace(0, 1, 12)})
    for cut in (lambda data: data[: len(data) // 2], lambda data: b""):
        lines: list[str] = []
        store = PartStore(tmp / str(len(lines)), {"t": 1}, log=lines.append)
        store.put("fold0|CAA|test|0|1", frame)
        path = store.path("fold0|CAA|test|0|1")
        path.write_bytes(cut(path.read_bytes()))
        assert store.reuse("fold0|CAA|test|0|1") is None and "recomputing" in lines[-1]


def _store_cache(tmp: Path) -> None:
    lines: list[str] = []
    store = PartStore(tmp, {"t": 1}, log=lines.append)
    cache = tmp / "cache" / "fold0-pos.pt"
    cache.parent.mkdir()
    torch.save(torch.randn(5, 4), cache)
    store.seal(cache, rows=5)
    cache.write_bytes(cache.read_bytes()[:100])
    assert _cached_acts(store, cache, 5) is None and "recomputing" in lines[-1]


def _store_other_config(tmp: Path) -> object:
    PartStore(tmp, {"t": 1}).put("k", pd.DataFrame({"a": [1]}))
    return PartStore(tmp, {"t": 2})


# -- numbers, seeds, devices, paths ---------------------------------------------------------------
def _numpy_T(_: Path) -> None:
    caa = lo.CAA().fit(POS, NEG)
    assert torch.equal(caa.steer(NEG, np.float32(2)), caa.steer(NEG, 2.0))


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
    Case("save-provenance-nan", lambda t: _save_refused(t, {"val_auc": float("nan")}),
         InvalidParameterError, "finite numbers only"),
    Case("save-provenance-not-dict", lambda t: _save_refused(t, [1, 2]), ParameterTypeError,
         "must be a JSON object", untyped=True),
    Case("save-provenance-object", lambda t: _save_refused(t, {"t": torch.ones(1)}),
         ParameterTypeError, "not JSON-serialisable"),
    Case("save-provenance-circular", _circular, InvalidParameterError, "circular reference"),
    Case("fit-overflow", lambda _: lo.CAA().fit(torch.full((3, 4), 3e38),
         torch.full((3, 4), -3e38)), InvalidActivationsError, "overflowed torch.float32"),
    Case("save-suffix", _suffix),
    Case("path-type", lambda _: lo.load_steerer(b"caa.safetensors"), ParameterTypeError,
         "got bytes", untyped=True),
    Case("file-huge-steps", _huge_steps, FileFormatError, r"outside the accepted range"),
    Case("file-huge-width", _huge_width, FileFormatError, r"d_model_.*expected an int in"),
    Case("file-bad-types", _bad_types, FileFormatError, "`normalize` of ODESteer is 'no'"),
    Case("file-v1-sizes", _v1_outer, FileFormatError, "n_components"),
    Case("file-probe-bounded", _probe_bounded),
    Case("provenance-layer", _prov_layer, ProvenanceError, "layer: fitted on 1, now 0"),
    Case("provenance-site", _prov_site, ProvenanceError, "hook_site: fitted on 'hook_resid_post'"),
    Case("provenance-bare-hook", _prov_bare, ProvenanceError, "layer: fitted on 1, now 0"),
    Case("half-steerer", _half_steerer, InvalidParameterError, r"compute in torch\.bfloat16"),
    Case("dtype-integer", lambda _: lo.CAA().fit(POS, NEG).to(dtype=torch.int64),
         InvalidParameterError, "must be a floating torch dtype"),
    Case("nan-row-upstream", _nan_row_adaptive),
    Case("jsonl-line-separators", _line_separators),
    Case("csv-long-field", _long_field),
    Case("csv-duplicate-column", _duplicate_column, FileFormatError, "more than once"),
    Case("json-deep", _deep_json, FileFormatError, "nested too deeply"),
    Case("store-damaged-part", _store_part),
    Case("store-damaged-cache", _store_cache),
    Case("store-other-config", _store_other_config, FileFormatError, "another configuration"),
    Case("eval-options", lambda _: evaluate("truthfulqa_mc", max_ppl_ratio=float("nan")),
         InvalidParameterError, "`max_ppl_ratio` must be a finite number >= 1"),
    Case("eval-grid", lambda _: evaluate("truthfulqa_mc", grid=(0.1, float("inf"))),
         InvalidParameterError, "`grid` must hold finite fractions"),
    Case("task-sizes", lambda _: make_task("truthfulqa_mc", quick=True, n_test=-5),
         InvalidParameterError, "`n_test` must be an int >= 1 or None; got -5"),
    Case("T-numpy", _numpy_T, untyped=True),
    Case("T-huge-int", lambda _: lo.CAA().fit(POS, NEG).steer(NEG, 10**400),
         InvalidParameterError, "beyond the float range", untyped=True),
    Case("seed-huge", lambda _: lo.ODESteer(lo.sketch_barrier(n_components=64, seed=2**70))
         .fit(POS, NEG), InvalidParameterError, r"\[0, 2\*\*64 - 1\]"),
    Case("device-unknown", lambda _: lo.CAA().fit(POS, NEG).to(device="bogus"),
         InvalidParameterError, "not a device torch knows"),
]  # fmt: skip


@pytest.fixture
def untyped(request: pytest.FixtureRequest) -> Iterator[None]:
    """Turn the runtime type checker off for one case (see ``Case.untyped``)."""
    was = jaxtyping.config.jaxtyping_disable
    jaxtyping.config.update("jaxtyping_disable", bool(request.param))
    try:
        yield
    finally:
        jaxtyping.config.update("jaxtyping_disable", was)


@pytest.mark.parametrize(
    ("case", "untyped"),
    [(c, c.untyped) for c in CASES],
    ids=[c.id for c in CASES],
    indirect=["untyped"],
)
def test_error_table_case(case: Case, tmp_path: Path, untyped: None) -> None:
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
