"""The steering context manager on a tiny bridge: hook hygiene, exactness, dtypes, errors."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.hooks import SteeringHook, attach, make_hooks, steering
from lens_odesteer.models import resid_post
from tests.hooks._shared import PROMPTS, TINY_HOOK

HOOK1 = resid_post(1)


def _hook_state(model: Any) -> dict[str, tuple[list[int], list[int]]]:
    """Per hook point: ids of its TL handles and of its torch forward hooks."""
    return {
        name: ([id(h) for h in point.fwd_hooks], list(point._forward_hooks))
        for name, point in model.hook_dict.items()
    }


def _enter(*args: Any, **kwargs: Any) -> None:
    """Enter and leave a steering block (for the validation tests)."""
    with steering(*args, **kwargs):
        pass


class Capture:
    """A plain user hook that stores what it sees."""

    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []

    def __call__(self, acts: torch.Tensor, hook: Any) -> None:
        self.seen.append(acts.detach().clone())


# -- hygiene ----------------------------------------------------------------------------------
def test_hooks_are_removed_after_the_block_and_user_hooks_survive(
    fresh_tiny: Any, tiny_ode: lo.ODESteer, tiny_caa: lo.CAA
) -> None:
    model = fresh_tiny
    mine = Capture()
    model.add_hook(TINY_HOOK, mine)  # the user's own hook, attached before
    before = _hook_state(model)
    plain = model("Hello")
    plan = {TINY_HOOK: tiny_ode, HOOK1: tiny_caa}  # several layers at once
    with steering(model, plan, T=4.0, scope="all") as handle:
        assert handle.attached and len(model.hook_dict[HOOK1].fwd_hooks) == 1
        steered = model("Hello")
        # TL's own temporary hooks come and go without touching ours.
        model.run_with_hooks("Hello", fwd_hooks=[(HOOK1, Capture())])
        assert torch.equal(model("Hello"), steered)
    assert not handle.attached
    assert _hook_state(model) == before
    assert not torch.allclose(plain, steered)
    n_seen = len(mine.seen)
    assert torch.equal(model("Hello"), plain)
    assert len(mine.seen) == n_seen + 1  # the user's hook still fires


def test_hooks_are_removed_after_an_exception_in_the_body(tiny: Any, tiny_ode: lo.ODESteer) -> None:
    before = _hook_state(tiny)
    with pytest.raises(RuntimeError, match="boom"), steering(tiny, {TINY_HOOK: tiny_ode}, T=1.0):
        raise RuntimeError("boom")
    assert _hook_state(tiny) == before


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_hooks_are_removed_after_an_exception_inside_the_forward(
    tiny: Any, tiny_ode: lo.ODESteer, error: type[BaseException]
) -> None:
    before = _hook_state(tiny)

    def explode(acts: torch.Tensor, hook: Any) -> None:
        raise error("from another hook")

    with pytest.raises(error), steering(tiny, {TINY_HOOK: tiny_ode}, T=1.0) as handle:
        handle.generate(PROMPTS, max_new_tokens=2)  # fine
        with tiny.hooks(fwd_hooks=[(HOOK1, explode)]):
            handle.generate(PROMPTS, max_new_tokens=2)
    assert _hook_state(tiny) == before
    assert all(hook.layout is None for hook in handle.hooks.values())


def test_attach_until_remove(tiny: Any, tiny_caa: lo.CAA) -> None:
    handle = attach(tiny, {TINY_HOOK: tiny_caa}, T=1.0)
    try:
        assert len(tiny.hook_dict[TINY_HOOK].fwd_hooks) == 1
        assert "attached=True" in repr(handle)
    finally:
        handle.remove()
    handle.remove()  # idempotent
    assert tiny.hook_dict[TINY_HOOK].fwd_hooks == []
    with pytest.raises(lo.InvalidParameterError, match="removed"):
        handle.generate(PROMPTS)


def test_validation_happens_before_anything_is_attached(tiny: Any, tiny_caa: lo.CAA) -> None:
    with pytest.raises(lo.HookNameError):
        _enter(tiny, {TINY_HOOK: tiny_caa, "blocks.1.hook_resid_pots": tiny_caa}, T=1.0)
    assert tiny.list_hooks() == {}


# -- exactness --------------------------------------------------------------------------------
@pytest.mark.parametrize("scope", ["last", "all", [0, -2]])
def test_T_zero_reproduces_unsteered_logits_exactly(
    tiny: Any, tiny_ode: lo.ODESteer, scope: Any
) -> None:
    tokens = tiny.to_tokens(PROMPTS[0])
    plain = tiny(tokens)
    with steering(tiny, {TINY_HOOK: tiny_ode, HOOK1: tiny_ode}, T=0.0, scope=scope):
        assert torch.equal(tiny(tokens), plain)


def _steer_and_capture(
    model: Any, steerer: Any, tokens: torch.Tensor, scope: Any, **kw: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (activation before, after) the steering hook, captured around it."""
    pre, post = Capture(), Capture()
    point = model.hook_dict[TINY_HOOK]
    handle_pre = point.add_hook(pre, dir="fwd")  # registered before ours: sees the original
    try:
        with (
            steering(model, {TINY_HOOK: steerer}, T=5.0, scope=scope, **kw),
            model.hooks(fwd_hooks=[(TINY_HOOK, post)]),  # after ours: sees the result
        ):
            model(tokens)
    finally:
        handle_pre.hook.remove()
        point.fwd_hooks.remove(handle_pre)
    return pre.seen[0], post.seen[0]


def _in_scope(scope: Any, shape: tuple[int, int], lengths: list[int] | None) -> torch.Tensor:
    batch, seq = shape
    lengths = lengths or [seq] * batch
    mask = torch.zeros(batch, seq, dtype=torch.bool)
    for row, n in enumerate(lengths):
        if scope == "last":
            mask[row, n - 1] = True
        elif scope in ("all", "prompt"):
            mask[row, :n] = True
        elif isinstance(scope, list):
            for p in scope:
                mask[row, p if p >= 0 else n + p] = True
        else:
            width = min(seq, scope.shape[1])
            mask[row, :width] = scope[row, :width]
    return mask


@pytest.mark.parametrize(
    ("scope", "right_padded"),
    [
        ("last", False),
        ("last", True),
        ("all", False),
        ("prompt", True),
        ([1, -2], True),
        (torch.tensor([[True, False, True, True], [False, True, False, False]]), False),
    ],
)
def test_steered_activation_is_the_steerer_output_in_scope_and_unchanged_elsewhere(
    tiny: Any, tiny_ode: lo.ODESteer, scope: Any, right_padded: bool
) -> None:
    texts = ["Hello there", "Hi"]
    tokens = tiny.to_tokens(texts)  # TL pads lists on the RIGHT
    lengths = [len(tiny.to_tokens(t)[0]) for t in texts] if right_padded else None
    kw = {"lengths": lengths} if lengths else {}
    before, after = _steer_and_capture(tiny, tiny_ode, tokens, scope, **kw)
    where = _in_scope(scope, tuple(tokens.shape), lengths)
    assert torch.equal(after[~where], before[~where])  # bitwise identical out of scope
    torch.testing.assert_close(after[where], tiny_ode.steer(before[where], 5.0), rtol=0, atol=1e-6)
    assert not torch.allclose(after[where], before[where])


def test_without_lengths_last_is_the_last_column(tiny: Any, tiny_caa: lo.CAA) -> None:
    """Documented limitation: on right-padded input the last column may be a pad."""
    tokens = tiny.to_tokens(["Hello there", "Hi"])
    before, after = _steer_and_capture(tiny, tiny_caa, tokens, "last")
    changed = (after != before).any(-1)
    assert changed[:, -1].all() and not changed[:, :-1].any()


def test_steering_hook_and_make_hooks_work_in_plain_tl_calls(tiny: Any, tiny_caa: lo.CAA) -> None:
    tokens = tiny.to_tokens(PROMPTS[2])
    with steering(tiny, {TINY_HOOK: tiny_caa}, T=2.0):
        expected = tiny(tokens)
    hook = SteeringHook(tiny_caa, 2.0, scope="last")
    assert repr(hook) == "SteeringHook(steerer=CAA(), T=2.0, scope='last')"
    assert torch.equal(tiny.run_with_hooks(tokens, fwd_hooks=[(TINY_HOOK, hook)]), expected)
    pairs = make_hooks(tiny, {"blocks.0.hook_out": tiny_caa}, T=2.0)  # canonical bridge name
    with tiny.hooks(fwd_hooks=pairs):
        assert torch.equal(tiny(tokens), expected)


def test_per_hook_strengths(tiny: Any, tiny_caa: lo.CAA, tiny_ode: lo.ODESteer) -> None:
    tokens = tiny.to_tokens(PROMPTS[0])
    with steering(tiny, {HOOK1: tiny_ode}, T=3.0, scope="all"):
        only_second = tiny(tokens)
    with steering(
        tiny, {TINY_HOOK: tiny_caa, HOOK1: tiny_ode}, T={TINY_HOOK: 0.0, HOOK1: 3.0}, scope="all"
    ):
        assert torch.equal(tiny(tokens), only_second)
    with steering(tiny, {TINY_HOOK: (tiny_caa, 0.0), HOOK1: (tiny_ode, 3.0)}, scope="all"):
        assert torch.equal(tiny(tokens), only_second)


# -- dtypes -----------------------------------------------------------------------------------
def test_bf16_model_is_steered_in_float32_and_cast_back(
    fresh_tiny: Any, tiny_ode: lo.ODESteer
) -> None:
    model = fresh_tiny.to(torch.bfloat16)
    tokens = model.to_tokens(PROMPTS[0])
    before, after = _steer_and_capture(model, tiny_ode, tokens, "all")
    assert before.dtype == after.dtype == torch.bfloat16
    expected = tiny_ode.steer(before.float(), 5.0).to(torch.bfloat16)  # float32 maths
    torch.testing.assert_close(after, expected, rtol=0, atol=0)
    with steering(model, {TINY_HOOK: tiny_ode}, T=5.0) as handle:
        hook = handle.hooks[TINY_HOOK]
        assert hook.compute_dtype == hook.steerer.dtype_ == torch.float32
        logits = model(tokens)
        texts = handle.generate(PROMPTS, max_new_tokens=3)
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all() and len(texts) == 3
    assert tiny_ode.dtype_ == torch.float32  # the caller's steerer was not moved


# -- errors -----------------------------------------------------------------------------------
def test_unknown_hook_suggests_a_name(tiny: Any, tiny_caa: lo.CAA) -> None:
    with pytest.raises(lo.HookNameError, match=r"Did you mean 'blocks\.0\.hook_resid_post'"):
        _enter(tiny, {"blocks.0.hook_resid_pots": tiny_caa}, T=1.0)
    with pytest.raises(lo.HookNameError, match="out of range"):
        _enter(tiny, {resid_post(7): tiny_caa}, T=1.0)


def test_width_mismatch(tiny: Any) -> None:
    narrow = lo.CAA().fit(torch.randn(4, 32) + 1, torch.randn(4, 32))
    with pytest.raises(lo.ShapeMismatchError, match="d_model=32"):
        _enter(tiny, {TINY_HOOK: narrow}, T=1.0)


def test_width_is_checked_at_run_time_on_other_hooks(tiny: Any, tiny_caa: lo.CAA) -> None:
    with (
        steering(tiny, {"blocks.0.attn.hook_z": tiny_caa}, T=1.0),
        pytest.raises(lo.ShapeMismatchError, match=r"\[batch, pos, 64\]"),
    ):
        tiny("Hi")


@pytest.mark.parametrize(
    ("scope", "match"),
    [
        ("lastt", "Unknown scope"),
        ([300], "out of range"),
        ([-257], "out of range"),
        (torch.zeros(2, 3), "boolean mask"),
    ],
)
def test_bad_scopes(tiny: Any, tiny_caa: lo.CAA, scope: Any, match: str) -> None:
    with pytest.raises(lo.InvalidParameterError, match=match):
        _enter(tiny, {TINY_HOOK: tiny_caa}, T=1.0, scope=scope)


def test_bad_strengths_and_steerers(tiny: Any, tiny_caa: lo.CAA) -> None:
    with pytest.raises(lo.InvalidParameterError, match="No strength"):
        _enter(tiny, {TINY_HOOK: tiny_caa})
    with pytest.raises(lo.InvalidParameterError, match=">= 0"):
        _enter(tiny, {TINY_HOOK: tiny_caa}, T=-1.0)
    with pytest.raises(lo.InvalidParameterError, match="no steerer"):
        _enter(tiny, {TINY_HOOK: tiny_caa}, T={HOOK1: 1.0})
    with pytest.raises(lo.NotFittedError):
        _enter(tiny, {TINY_HOOK: lo.CAA()}, T=1.0)
    with pytest.raises(lo.InvalidParameterError, match="same hook point"):
        _enter(tiny, {TINY_HOOK: tiny_caa, "blocks.0.hook_out": tiny_caa}, T=1.0)


def test_gated_hook_and_resid_mid_warning(tiny: Any, tiny_caa: lo.CAA) -> None:
    with pytest.raises(lo.InvalidParameterError, match="use_attn_in"):
        _enter(tiny, {"blocks.0.hook_attn_in": tiny_caa}, T=1.0)
    with pytest.warns(UserWarning, match="only the MLP"):
        _enter(tiny, {"blocks.0.hook_resid_mid": tiny_caa}, T=1.0)


def test_layout_batch_mismatch_is_reported(tiny: Any, tiny_caa: lo.CAA) -> None:
    with (
        steering(tiny, {TINY_HOOK: tiny_caa}, T=1.0, lengths=[3, 2]),
        pytest.raises(lo.ShapeMismatchError, match="2 rows"),
    ):
        tiny(tiny.to_tokens(PROMPTS))


def _changed_columns(model: Any, hook: SteeringHook, text: str) -> list[int]:
    pre, post = Capture(), Capture()
    model.run_with_hooks(text, fwd_hooks=[(TINY_HOOK, pre), (TINY_HOOK, hook), (TINY_HOOK, post)])
    return (post.seen[0] != pre.seen[0]).any(-1)[0].nonzero().flatten().tolist()


def test_plain_forwards_one_token_longer_are_independent_prompts(
    tiny: Any, tiny_caa: lo.CAA
) -> None:
    """Only a pass that really extends the previous input is read as a no-cache step."""
    hook = SteeringHook(tiny_caa, 2.0, scope="last")
    assert _changed_columns(tiny, hook, "Hi") == [2]  # BOS, "H", "i"
    assert _changed_columns(tiny, hook, "Hey") == [3]  # not "Hi" plus a token
    assert _changed_columns(tiny, hook, "Hey!") == [3, 4]  # "Hey" plus a token: a generation step
    hook.reset()
    assert _changed_columns(tiny, hook, "Hey!") == [4]
