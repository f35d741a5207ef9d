"""Who owns the hooks of a ``steering`` block: nesting, ``reset_hooks`` and threads.

The documented promises (lens_odesteer.hooks.context): steering one hook point twice is
refused; hooks removed behind the block's back (``model.reset_hooks()``) are detected; a model
is steered from one thread at a time, so a second thread's ``steering`` on the same model, and a
forward pass from another thread through hooks a block attached, raise
``SteeringConflictError``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.errors import SteeringConflictError
from lens_odesteer.hooks import steering
from lens_odesteer.models.names import resid_post
from tests.hooks._shared import PROMPTS, TINY_HOOK
from tests.hooks.suite._backend import attached_hooks

HOOK1 = resid_post(1)


def test_nested_steering_of_the_same_hook_point_is_refused(
    tiny: Any, tiny_caa: lo.CAA, tiny_ode: lo.ODESteer
) -> None:
    tokens = tiny.to_tokens(PROMPTS[0])
    with steering(tiny, {TINY_HOOK: tiny_caa}, T=1.0) as outer:
        expected = tiny(tokens)
        with (
            pytest.raises(SteeringConflictError, match="already steered by an enclosing"),
            steering(tiny, {HOOK1: tiny_ode, TINY_HOOK: tiny_ode}, T=1.0),
        ):
            pass  # pragma: no cover
        assert outer.attached and len(tiny.hook_dict[TINY_HOOK].fwd_hooks) == 1
        assert tiny.hook_dict[HOOK1].fwd_hooks == []  # the refused block attached nothing
        assert torch.equal(tiny(tokens), expected)
        with steering(tiny, {HOOK1: tiny_ode}, T=1.0) as inner:  # another hook point is fine
            assert inner.attached and outer.attached
        assert outer.attached
    assert attached_hooks(tiny) == {}
    with steering(tiny, {TINY_HOOK: tiny_ode}, T=1.0):  # free again once the block ended
        pass


def test_reset_hooks_inside_a_block_is_detected(fresh_tiny: Any, tiny_caa: lo.CAA) -> None:
    model = fresh_tiny
    tokens = model.to_tokens(PROMPTS[0])
    plain = model(tokens)
    with (
        pytest.warns(UserWarning, match="removed before the `steering` block ended"),
        steering(model, {TINY_HOOK: tiny_caa}, T=2.0) as handle,
    ):
        assert not torch.equal(model(tokens), plain)
        model.reset_hooks()
        assert not handle.attached
        assert torch.equal(model(tokens), plain)  # unsteered from here on
        with pytest.raises(SteeringConflictError, match="reset_hooks"):
            handle.check_attached()
        with pytest.raises(SteeringConflictError, match="reset_hooks"):
            handle.generate(PROMPTS, max_new_tokens=2)
    assert attached_hooks(model) == {}


def _in_thread(fn: Callable[[], Any]) -> BaseException | None:
    """Run ``fn`` in another thread; return what it raised (None when nothing)."""
    raised: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:  # handed back to the test
            raised.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive()
    return raised[0] if raised else None


def test_a_second_thread_cannot_steer_or_run_a_steered_model(
    tiny: Any, tiny_caa: lo.CAA, tiny_ode: lo.ODESteer
) -> None:
    tokens = tiny.to_tokens(PROMPTS[0])
    plain = tiny(tokens)

    def steer_other_hook() -> None:
        with steering(tiny, {HOOK1: tiny_ode}, T=1.0):
            pass  # pragma: no cover

    def steer_same_hook() -> None:
        with steering(tiny, {TINY_HOOK: tiny_ode}, T=1.0):
            pass  # pragma: no cover

    with steering(tiny, {TINY_HOOK: tiny_caa}, T=2.0) as handle:
        steered = tiny(tokens)
        err = _in_thread(steer_other_hook)
        assert isinstance(err, SteeringConflictError), err
        assert "another thread" in str(err)
        err = _in_thread(steer_same_hook)
        assert isinstance(err, SteeringConflictError) and "another thread" in str(err)
        err = _in_thread(lambda: tiny(tokens))  # our hooks must not steer its forward
        assert isinstance(err, SteeringConflictError) and "another thread" in str(err)
        assert tiny.hook_dict[HOOK1].fwd_hooks == []
        assert handle.attached and torch.equal(tiny(tokens), steered)  # this thread unharmed
    assert not torch.equal(steered, plain)
    # Once the block is over, the other thread steers and runs freely.
    results: dict[str, torch.Tensor] = {}

    def steer_and_run() -> None:
        with steering(tiny, {TINY_HOOK: tiny_caa}, T=2.0):
            results["steered"] = tiny(tokens)
        results["plain"] = tiny(tokens)

    assert _in_thread(steer_and_run) is None
    assert torch.equal(results["steered"], steered) and torch.equal(results["plain"], plain)
    assert attached_hooks(tiny) == {}
