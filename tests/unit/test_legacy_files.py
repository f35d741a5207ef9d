"""Files written by lens_odesteer 0.1.0 (schema 1) load and steer bit for bit like they did.

The fixtures in ``tests/data/legacy_v0.1.0`` were written by ``scripts/make_legacy_fixtures.py``
with the 0.1.0 code (one class per ODESteer variant). Loading migrates them to the composed
:class:`~lens_odesteer.ODESteer`; refitting the new presets on the same data reproduces the old
classes' outputs too.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import lens_odesteer as lo
from lens_odesteer.barriers import LinearBarrier
from lens_odesteer.flows import RK4, AdaptiveSteps, Dopri5
from lens_odesteer.steerers import BarrierMargin

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "tests" / "data" / "legacy_v0.1.0"
MANIFEST = json.loads((FOLDER / "manifest.json").read_text())["files"]
OUTPUTS = load_file(str(FOLDER / "outputs.safetensors"))


def _script_data() -> Callable[[torch.dtype], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    path = ROOT / "scripts" / "make_legacy_fixtures.py"
    spec = importlib.util.spec_from_file_location("make_legacy_fixtures", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.data  # type: ignore[no-any-return]


#: The same steerers written with today's API (fixture name -> constructor, expected name).
NEW_API: dict[str, tuple[Callable[[], lo.steerers.AbstractSteerer], str]] = {
    "odesteer_default": (lambda: lo.ODESteer(lo.sketch_barrier(n_components=128)), "ODESteer"),
    "odesteer_margin": (
        lambda: lo.ODESteer(lo.sketch_barrier(n_components=128), stop=BarrierMargin(0.0)),
        "ODESteer",
    ),
    "odesteer_dopri5": (
        lambda: lo.ODESteer(
            lo.sketch_barrier(n_components=128),
            solver=Dopri5(),
            steps=AdaptiveSteps(rtol=1e-4, atol=1e-4),
        ),
        "ODESteer",
    ),
    "odesteer_linear": (lambda: lo.ODESteer(LinearBarrier()), "ODESteer"),
    "odesteer_rk4_custom": (
        lambda: lo.ODESteer(
            lo.sketch_barrier(
                n_components=64,
                degree=3,
                gamma=0.5,
                coef0=0.5,
                C=0.5,
                seed=3,
                max_iter=200,
                tol=1e-3,
            ),
            solver=RK4(),
            steps=4,
            min_grad_norm=1e-6,
        ),
        "ODESteer",
    ),
    "odesteer_float64": (
        lambda: lo.ODESteer(lo.sketch_barrier(n_components=128, gamma=1.0)),
        "ODESteer",
    ),
    "stepodesteer": (
        lambda: lo.StepODESteer(lo.sketch_barrier(n_components=128)),
        "StepODESteer",
    ),
    "rffodesteer": (lambda: lo.RFFODESteer(n_components=128), "RFFODESteer"),
    "rffstepodesteer": (
        lambda: lo.RFFStepODESteer(n_components=128, bandwidth=3.0),
        "RFFStepODESteer",
    ),
    "valuesteer": (lambda: lo.ValueSteer(hidden=8, max_iter=50), "ValueSteer"),
    "valuesteer_normalized": (
        lambda: lo.ValueSteer(
            hidden=8, max_iter=50, normalize=True, steps=5, stop=BarrierMargin(1.0)
        ),
        "ValueSteer",
    ),
    "caa": (lambda: lo.CAA(), "CAA"),
    "iti": (lambda: lo.ITI(), "ITI"),
    "repe": (lambda: lo.RepE(), "RepE"),
    "linact": (lambda: lo.LinAcT(), "LinAcT"),
    "mimic": (lambda: lo.MiMiC(), "MiMiC"),
}


#: The fixtures' outputs were computed on 2 torch threads. Summation order in the kernels
#: depends on the thread count (the 0.1.0 code itself differs in the last bit between 1 and 2
#: threads), so the bit-for-bit comparisons run on the same count.
FIXTURE_THREADS = 2


@pytest.fixture(autouse=True)
def _fixture_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(FIXTURE_THREADS)
    yield
    torch.set_num_threads(before)


def test_every_fixture_has_a_new_api_twin() -> None:
    assert set(NEW_API) == set(MANIFEST)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_legacy_file_loads_and_steers_bit_for_bit(name: str) -> None:
    entry = MANIFEST[name]
    steerer = lo.load_steerer(FOLDER / f"{name}.safetensors")
    out = steerer.steer(OUTPUTS[f"{name}.input"], entry["T"])
    assert torch.equal(out, OUTPUTS[f"{name}.output"])
    assert steerer.name == NEW_API[name][1] == entry["class"]
    assert steerer.provenance_ == {"fixture": name}  # type: ignore[attr-defined]
    assert steerer.act_norm_ is None and steerer.speed_ is None
    with pytest.raises(lo.errors.InvalidParameterError, match="predates recorded norms"):
        steerer.T_for(0.1)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_legacy_file_params_equal_the_new_api(name: str) -> None:
    loaded = lo.load_steerer(FOLDER / f"{name}.safetensors")
    fresh = NEW_API[name][0]()
    want = {k: v for k, v in fresh.get_params(deep=True).items() if not _is_component(v)}
    got = {k: v for k, v in loaded.get_params(deep=True).items() if not _is_component(v)}
    if isinstance(fresh, lo.ODESteer):  # a string solver and its object are the same solver
        want["solver"] = lo.flows.get_solver(want["solver"])
        got["solver"] = lo.flows.get_solver(got["solver"])
    assert got == want


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_new_api_refit_reproduces_the_old_classes(name: str) -> None:
    entry = MANIFEST[name]
    pos, neg, x = _script_data()(torch.float64 if entry["float64"] else torch.float32)
    assert torch.equal(x, OUTPUTS[f"{name}.input"])
    make, expected_name = NEW_API[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        steerer = make().fit(pos, neg)
    assert steerer.name == expected_name
    assert torch.equal(steerer.steer(x, entry["T"]), OUTPUTS[f"{name}.output"])


def test_legacy_file_can_be_resaved_and_refits_to_record_norms(tmp_path: Path) -> None:
    old = lo.load_steerer(FOLDER / "odesteer_margin.safetensors")
    again = lo.load_steerer(old.save(tmp_path / "again"))
    x = OUTPUTS["odesteer_margin.input"]
    assert torch.equal(again.steer(x, 2.0), old.steer(x, 2.0))
    pos, neg, _ = _script_data()(torch.float32)
    assert old.fit(pos, neg).T_for(0.1) > 0


def test_unmigratable_legacy_file_names_the_version(tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    src = FOLDER / "stepodesteer.safetensors"
    with safe_open(str(src), framework="pt") as f:
        header = json.loads(f.metadata()["lens_odesteer"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    header["component"]["params"]["extra"] = 1
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata={"lens_odesteer": json.dumps(header)})
    with pytest.raises(
        lo.errors.FileFormatError, match=r"lens_odesteer 0\.1\.0 \(steerer schema 1\)"
    ):
        lo.load_steerer(bad)


def _is_component(value: object) -> bool:
    return isinstance(value, lo.steerers.AbstractSteerer.__mro__[1])
