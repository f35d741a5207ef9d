"""Each steerer is moved (device and compute dtype) once, when attached, never per call."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.errors import InvalidActivationsError
from lens_odesteer.hooks import _model
from lens_odesteer.steerers import AbstractSteerer


def test_steerer_moved_once_at_attach_and_never_per_call(
    tiny: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tiny
    gen = torch.Generator().manual_seed(0)
    pos, neg = torch.randn(32, 64, generator=gen) + 0.5, torch.randn(32, 64, generator=gen)
    plan = {
        "blocks.0.hook_resid_post": lo.ODESteer(lo.sketch_barrier(n_components=128)).fit(pos, neg),
        "blocks.1.hook_resid_post": lo.CAA().fit(pos, neg),
    }
    calls: list[tuple[str, object, object]] = []
    original = AbstractSteerer.to

    def counting_to(self, device=None, dtype=None):
        calls.append((type(self).__name__, device, dtype))
        return original(self, device=device, dtype=dtype)

    monkeypatch.setattr(AbstractSteerer, "to", counting_to)
    # float64 maths forces a conversion, so the move is observable on a CPU-only machine.
    with lo.steering(model, plan, T=1.0, scope="all", compute_dtype=torch.float64) as handle:
        at_attach = list(calls)
        for name, hook in handle.hooks.items():
            assert hook.device == _model.hook_device(model, name)
            assert hook.steerer.dtype_ == torch.float64
        model(model.to_tokens(["Hello there", "Hi"], padding_side="left"))
        handle.generate(["Hello there", "Hi"], max_new_tokens=4)
        handle.generate(["Hello there"], max_new_tokens=4, use_past_kv_cache=False)
    assert len(at_attach) == 2, at_attach
    assert calls == at_attach, "no steerer may be moved inside the hook calls"


def test_float16_model_overflow_is_an_error_not_inf(fresh_tiny: Any) -> None:
    model = fresh_tiny.to(torch.float16)
    gen = torch.Generator().manual_seed(1)
    caa = lo.CAA().fit(
        torch.randn(8, 64, generator=gen) * 1e4, -torch.randn(8, 64, generator=gen) * 1e4
    )
    with (
        pytest.raises(InvalidActivationsError, match="exceed the range of float16"),
        lo.steering(model, {"blocks.0.hook_resid_post": caa}, T=100.0, scope="all"),
    ):
        model(model.to_tokens("Hello"))
    assert model.hook_dict["blocks.0.hook_resid_post"].fwd_hooks == []
