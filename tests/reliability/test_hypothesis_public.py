"""Hypothesis tests of the public steering API over random shapes, dtypes and parameters.

Property: every public call (``fit``, ``steer``, ``trajectory``, ``vector_field``, ``barrier``)
either returns finite tensors of the documented shape (``steer``: the input's shape and dtype),
or raises a :class:`lens_odesteer.LensOdesteerError`. Any other exception type is a failure,
except a ``jaxtyping.TypeCheckError`` raised by the runtime type checker at the boundary of the
public method itself (wrong argument type or rank passed by the caller).
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lens_odesteer as lo
from lens_odesteer.flows import AdaptiveSteps
from lens_odesteer.steerers import AbstractSteerer, BarrierMargin

EXAMPLES = int(
    os.environ.get("RELIABILITY_EXAMPLES", "40")
)  # per hypothesis test (9 steerers + 5 solvers + 3 input tests)
COUNTS: Counter[str] = Counter()

STEERERS: dict[str, Callable[[], lo.steerers.AbstractSteerer]] = {
    "ODESteer": lambda: lo.ODESteer(lo.sketch_barrier(n_components=64)),
    "StepODESteer": lambda: lo.StepODESteer(lo.sketch_barrier(n_components=64)),
    "RFFODESteer": lambda: lo.RFFODESteer(n_components=32),
    "ValueSteer": lambda: lo.ValueSteer(hidden=4, max_iter=10),
    "CAA": lambda: lo.CAA(),
    "ITI": lambda: lo.ITI(),
    "RepE": lambda: lo.RepE(),
    "LinAcT": lambda: lo.LinAcT(),
    "MiMiC": lambda: lo.MiMiC(),
}
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
SCALES = [0.0, 1e-6, 1.0, 1e3, 1e6]
VALID_T = st.one_of(
    st.sampled_from([0.0, 0.5, 1.0, 1e4]),
    st.floats(min_value=0.0, max_value=50.0, allow_nan=False, allow_infinity=False),
)
INVALID_T = st.sampled_from([-1.0, -1e-9, math.nan, math.inf, -math.inf])


# -- outcome classification ---------------------------------------------------------------------
class Violation(AssertionError):
    pass


class Float16Overflow(Violation):
    """``steer`` on float16 input whose steered values (finite in the compute dtype) exceed the
    float16 range came back as inf. Tested on its own by the strict xfail
    ``test_float16_overflow_is_an_error_not_inf``; the random tests count these cases."""


def _is_boundary_type_check(exc: BaseException, public: str) -> bool:
    """A type-checker error raised on the arguments of the public method we called."""
    mod = type(exc).__module__
    if not (mod.startswith("jaxtyping") or mod.startswith("beartype")):
        return False
    first = str(exc).splitlines()[0] if str(exc) else ""
    # Only errors about the *arguments* of the public method (not its return value, and not
    # any internal function) are the caller's fault.
    return "checking the parameters of" in first and first.rstrip(".").endswith(f".{public}")


def call(what: str, public: str, fn: Callable[[], Any]) -> Any:
    """Run ``fn``; return its result, or None if it raised an acceptable error."""
    try:
        return fn()
    except lo.LensOdesteerError:
        COUNTS["raised LensOdesteerError"] += 1
        return None
    except Exception as exc:
        if _is_boundary_type_check(exc, public):
            COUNTS["raised boundary TypeCheckError"] += 1
            method, _, arg = what.partition(".")[2].partition("(")
            COUNTS[f"  of which in {method}({arg.split(',')[0][:12]}...)"] += 1
            return None
        raise Violation(
            f"{what}: {type(exc).__module__}.{type(exc).__qualname__}: {str(exc)[:600]}"
        ) from exc


def check_finite_tensor(what: str, t: Any, shape: tuple[int, ...], dtype: Any = None) -> None:
    if not isinstance(t, torch.Tensor):
        raise Violation(f"{what}: returned {type(t).__name__}, not a tensor")
    if tuple(t.shape) != shape:
        raise Violation(f"{what}: shape {tuple(t.shape)}, expected {shape}")
    if dtype is not None and t.dtype != dtype:
        raise Violation(f"{what}: dtype {t.dtype}, expected {dtype}")
    if t.numel() and not bool(torch.isfinite(t).all()):
        n_bad = int((~torch.isfinite(t)).sum())
        raise Violation(f"{what}: {n_bad} non-finite value(s) in a {t.dtype} output")


# -- data ---------------------------------------------------------------------------------------
@st.composite
def fit_data(draw: st.DrawFn, max_d: int = 12) -> tuple[torch.Tensor, torch.Tensor, str]:
    d = draw(st.integers(1, max_d))
    kind = draw(st.sampled_from(["random", "identical", "separable", "imbalanced", "zeros"]))
    scale = draw(st.sampled_from(SCALES[1:]))
    dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.float16]))
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    if kind == "imbalanced":
        n_pos, n_neg = draw(st.integers(1, 2)), draw(st.integers(20, 100))
    else:
        n_pos, n_neg = draw(st.integers(1, 20)), draw(st.integers(1, 20))
    pos = torch.randn(n_pos, d, generator=gen, dtype=torch.float64)
    neg = torch.randn(n_neg, d, generator=gen, dtype=torch.float64)
    if kind == "identical":
        neg = pos.clone()
    elif kind == "separable":
        pos[:, 0] = pos[:, 0].abs() + 5.0
        neg[:, 0] = -neg[:, 0].abs() - 5.0
    elif kind == "zeros":
        pos.zero_()
        neg.zero_()
    pos, neg = (pos * scale).to(dtype), (neg * scale).to(dtype)
    desc = f"{kind} d={d} n_pos={n_pos} n_neg={n_neg} scale={scale} dtype={dtype} seed={seed}"
    return pos, neg, desc


@st.composite
def inputs(draw: st.DrawFn, d: int) -> tuple[torch.Tensor, str]:
    lead = draw(st.lists(st.integers(0, 3), min_size=0, max_size=3))
    dtype = draw(st.sampled_from(DTYPES))
    scale = draw(st.sampled_from(SCALES))
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(*lead, d, generator=gen, dtype=torch.float64) * scale).to(dtype)
    return x, f"x{tuple(x.shape)} {dtype} scale={scale}"


def fitted(name: str, make: Callable[[], AbstractSteerer], data: Any) -> Any:
    pos, neg, desc = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = call(f"{name}.fit({desc})", "fit", lambda: make().fit(pos, neg))
    COUNTS[f"fit {name.split(',')[0]}"] += 1
    if s is None:
        return None, desc
    check_finite_tensor(f"{name}.vector_field probe", s.vector_field(pos[:1]), (1, pos.shape[1]))
    return s, desc


def check_steer(s: AbstractSteerer, name: str, x: torch.Tensor, T: float, where: str) -> None:
    COUNTS["steer calls"] += 1
    out = call(f"{name}.steer({where}, T={T})", "steer", lambda: s.steer(x, T))
    if out is not None:
        if not (math.isfinite(T) and T >= 0):
            raise Violation(f"{name}.steer({where}, T={T}) accepted an invalid T")
        if bool(torch.isfinite(x).all()):
            what = f"{name}.steer({where}, T={T})"
            if x.dtype == torch.float16 and out.numel() and not bool(torch.isfinite(out).all()):
                wide = s.steer(x.to(s.dtype_), T)
                if bool(torch.isfinite(wide).all()) and float(wide.abs().max()) > 65504:
                    COUNTS["float16 overflow to inf (see the xfail test)"] += 1
                    raise Float16Overflow(f"{what}: result overflows float16 and becomes inf")
            check_finite_tensor(what, out, tuple(x.shape), x.dtype)


def check_all_methods(
    s: AbstractSteerer, name: str, x: torch.Tensor, T: float, where: str
) -> None:
    check_steer(s, name, x, T, where)
    lead = tuple(x.shape[:-1])
    finite_in = bool(torch.isfinite(x).all())
    v = call(f"{name}.vector_field({where})", "vector_field", lambda: s.vector_field(x))
    if v is not None and finite_in:
        check_finite_tensor(f"{name}.vector_field({where})", v, (*lead, s.d_model_))
    if s.has_barrier:
        h = call(f"{name}.barrier({where})", "barrier_value", lambda: s.barrier_value(x))
        if h is not None and finite_in:
            check_finite_tensor(f"{name}.barrier({where})", h, lead)
    tr = call(f"{name}.trajectory({where}, T={T})", "trajectory", lambda: s.trajectory(x, T))
    if tr is not None and finite_in:
        n = tr.ys.shape[0]
        check_finite_tensor(f"{name}.trajectory.ys({where}, T={T})", tr.ys, (n, *lead, s.d_model_))
        if tr.hs is not None:
            check_finite_tensor(f"{name}.trajectory.hs({where}, T={T})", tr.hs, (n, *lead))


# -- tests --------------------------------------------------------------------------------------
COMMON = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def run_steerer_case(
    name: str, data: st.DataObject, make: Callable[[], AbstractSteerer]
) -> None:
    s, fdesc = fitted(name, make, data.draw(fit_data()))
    if s is None:
        return
    d = s.d_model_
    for _ in range(2):
        x, xdesc = data.draw(inputs(d))
        T = data.draw(VALID_T)
        check_all_methods(s, name, x, T, f"{xdesc}; fit {fdesc}")
    x, xdesc = data.draw(inputs(d))
    check_steer(s, name, x, data.draw(INVALID_T), f"{xdesc}; fit {fdesc}")
    COUNTS["steerer examples"] += 1


@pytest.mark.parametrize("name", list(STEERERS))
@COMMON
@given(data=st.data())
def test_public_api_property(name: str, data: st.DataObject) -> None:
    # Float16Overflow: a separate, explicit strict-xfail test covers this design bug.
    with contextlib.suppress(Float16Overflow):
        run_steerer_case(name, data, STEERERS[name])


@pytest.mark.parametrize("solver", ["euler", "midpoint", "heun", "rk4", "dopri5"])
@COMMON
@given(
    data=st.data(),
    n_steps=st.integers(1, 20),
    margin=st.one_of(st.none(), st.sampled_from([-1.0, 0.0, 0.25, 3.0]), st.floats(-5, 5)),
)
def test_ode_solver_property(
    solver: str, data: st.DataObject, n_steps: int, margin: float | None
) -> None:
    def make() -> lo.steerers.AbstractSteerer:
        steps = AdaptiveSteps(initial_steps=n_steps) if solver == "dopri5" else n_steps
        stop = None if margin is None else BarrierMargin(margin)
        barrier = lo.sketch_barrier(n_components=64)
        return lo.ODESteer(barrier, solver=solver, steps=steps, stop=stop)

    with contextlib.suppress(Float16Overflow):
        run_steerer_case(f"ODESteer[{solver},n_steps={n_steps},margin={margin}]", data, make)


def _bad_fit_inputs(d: int, gen: torch.Generator) -> dict[str, tuple[Any, Any]]:
    good = torch.randn(5, d, generator=gen)
    nan = good.clone()
    nan[1, 0] = math.nan
    inf = good.clone()
    inf[0, -1] = -math.inf
    return {
        "int tensors": (good.long(), good.long()),
        "bool tensors": (good > 0, good < 0),
        "nan entry": (nan, good),
        "inf entry": (good, inf),
        "0-d": (torch.tensor(1.0), torch.tensor(2.0)),
        "mismatched widths": (good, torch.randn(5, d + 1, generator=gen)),
        "empty pos": (torch.zeros(0, d), good),
        "empty neg": (good, torch.zeros(0, d)),
        "zero width": (torch.zeros(5, 0), torch.zeros(5, 0)),
        "labels all one class": (good, torch.ones(5, dtype=torch.long)),
        "labels wrong values": (good, torch.tensor([0, 1, 2, 0, 1])),
        "labels wrong length": (good, torch.tensor([0, 1])),
        "complex": (good.to(torch.complex64), good.to(torch.complex64)),
        "None": (None, None),
        "string": ("abc", "def"),
        "nested list ragged": ([[1.0, 2.0], [3.0]], [[1.0, 2.0]]),
    }


@pytest.mark.parametrize("name", list(STEERERS))
@COMMON
@given(d=st.integers(1, 12), seed=st.integers(0, 2**16), case=st.integers(0, 15))
def test_invalid_fit_inputs_raise_library_errors(name: str, d: int, seed: int, case: int) -> None:
    cases = _bad_fit_inputs(d, torch.Generator().manual_seed(seed))
    label = sorted(cases)[case]
    first, second = cases[label]
    COUNTS["invalid fit calls"] += 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = call(f"{name}.fit({label}, d={d})", "fit", lambda: STEERERS[name]().fit(first, second))
    if s is not None:
        raise Violation(f"{name}.fit accepted invalid input: {label} (d={d})")


@pytest.mark.parametrize("name", list(STEERERS))
def test_invalid_steer_inputs_raise_library_errors(name: str) -> None:
    gen = torch.Generator().manual_seed(0)
    pos, neg = torch.randn(6, 4, generator=gen) + 1, torch.randn(6, 4, generator=gen) - 1
    unfitted = STEERERS[name]()
    assert call(f"unfitted {name}.steer", "steer", lambda: unfitted.steer(pos, 1.0)) is None
    s = STEERERS[name]().fit(pos, neg)
    nan = pos.clone()
    nan[0, 0] = math.nan
    bad: dict[str, Any] = {
        "wrong width": torch.randn(3, 5),
        "0-d": torch.tensor(1.0),
        "int": torch.ones(3, 4, dtype=torch.long),
        "bool": torch.ones(3, 4, dtype=torch.bool),
        "nan": nan,
        "inf": pos * math.inf,
        "zero width": torch.zeros(3, 0),
        "list": [[0.0] * 4],
    }
    for label, x in bad.items():
        for method in ("steer", "trajectory", "vector_field", "barrier_value"):
            if method == "barrier_value" and not s.has_barrier:
                continue
            fn = getattr(s, method)
            args = (x, 1.0) if method in ("steer", "trajectory") else (x,)
            COUNTS["invalid steer-input calls"] += 1
            out = call(f"{name}.{method}({label})", method, lambda fn=fn, args=args: fn(*args))
            if out is not None and label != "list":
                raise Violation(f"{name}.{method} accepted invalid input: {label}")
    for bad_T in (-1.0, math.nan, math.inf, "1.0", None, torch.ones(2)):
        COUNTS["invalid T calls"] += 1
        out = call(f"{name}.steer(T={bad_T!r})", "steer", lambda T=bad_T: s.steer(pos, T))
        if out is not None:
            raise Violation(f"{name}.steer accepted T={bad_T!r}")


FLOAT16_REASON = (
    "steer() computes in float32 and casts back to the input dtype without a range check "
    "(AbstractSteerer.steer in lens_odesteer/steerers/base.py: `self._steer(flat, T)"
    ".to(acts_t.dtype)`): float16 activations whose steered values exceed 65504 silently "
    "become inf. It should raise a clear error (e.g. InvalidActivationsError/IntegrationError "
    "'steered activations overflow float16; steer in float32 or lower T') rather than return "
    "inf, which poisons every later layer"
)


@pytest.mark.parametrize("name", ["CAA", "LinAcT", "ValueSteer", "ODESteer"])
def test_float16_overflow_is_an_error_not_inf(name: str) -> None:
    gen = torch.Generator().manual_seed(0)
    if name == "ValueSteer":  # tiny-scale data: the value net's gradient is ~1 / scale
        pos, neg = torch.randn(1, 4, generator=gen) * 1e-6, torch.randn(20, 4, generator=gen) * 1e-6
        x, T = torch.zeros(2, 4, dtype=torch.float16), 30.0
    else:
        pos = torch.randn(8, 4, generator=gen) * 1e3 + 2e3
        neg = torch.randn(8, 4, generator=gen) * 1e3 - 2e3
        x, T = torch.full((2, 4), 6e4, dtype=torch.float16), 1e4
    s = STEERERS[name]().fit(pos, neg)
    assert bool(torch.isfinite(s.steer(x.float(), T)).all())  # finite in float32
    out = call(f"{name}.steer(float16)", "steer", lambda: s.steer(x, T))
    if out is not None:
        check_finite_tensor(f"{name}.steer(float16, T={T})", out, (2, 4), torch.float16)


def test_zz_report_counts() -> None:
    """Last in the file: print how much the random tests exercised."""
    print("\nhypothesis_public counts:")
    for key, value in sorted(COUNTS.items()):
        print(f"  {key}: {value}")
    if COUNTS["steerer examples"]:
        assert COUNTS["steer calls"] >= COUNTS["steerer examples"]
