"""The steering context manager and hook on either backend: hygiene, exactness, dtypes, errors.

Hook hygiene (ours removed, the user's untouched, also on exceptions), exactness (``T = 0`` is
the identity; the edit is ``steerer.steer`` in scope and bitwise nothing elsewhere, for every way
the hooks learn a batch's padding) and validation before anything is attached.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.errors import (
    HookNameError,
    InvalidParameterError,
    NotFittedError,
    ShapeMismatchError,
    SteeringConflictError,
)
from lens_odesteer.hooks import SteeringHook, SteeringPlan, steering
from lens_odesteer.models.names import resid_post
from tests.hooks._shared import PROMPTS, TINY_HOOK
from tests.hooks.suite._backend import Capture, attached_hooks, bad_argument, hook_state

HOOK1 = resid_post(1)
T = 5.0


def _enter(*args: Any, **kwargs: Any) -> None:
    """Enter and leave a steering block (for the validation tests)."""
    with steering(*args, **kwargs):
        pass


# -- hygiene ----------------------------------------------------------------------------------
def test_hooks_are_removed_after_the_block_and_user_hooks_survive(
    fresh_tiny: Any, tiny_ode: lo.ODESteer, tiny_caa: lo.CAA
) -> None:
    model = fresh_tiny
    mine = Capture()
    model.add_hook(TINY_HOOK, mine)  # the user's own hook, attached before
    model.add_perma_hook(HOOK1, Capture())  # and a permanent one
    before = hook_state(model)
    plain = model("Hello")
    plan = {TINY_HOOK: tiny_ode, HOOK1: tiny_caa}  # several layers at once
    with steering(model, plan, T=4.0, scope="all") as handle:
        assert handle.attached
        assert len(model.hook_dict[HOOK1].fwd_hooks) == 2  # the permanent one and ours
        steered = model("Hello")
        # TL's own temporary hooks come and go (reset by context level) without touching ours.
        model.run_with_hooks("Hello", fwd_hooks=[(HOOK1, Capture())])
        model.run_with_cache("Hello", names_filter=HOOK1)
        assert torch.equal(model("Hello"), steered)
    assert not handle.attached
    assert hook_state(model) == before
    assert not torch.allclose(plain, steered)
    n_seen = len(mine.seen)
    assert torch.equal(model("Hello"), plain)
    assert len(mine.seen) == n_seen + 1  # the user's hook still fires


def test_hooks_are_removed_after_an_exception_in_the_body(tiny: Any, tiny_ode: lo.ODESteer) -> None:
    before = hook_state(tiny)
    with pytest.raises(RuntimeError, match="boom"), steering(tiny, {TINY_HOOK: tiny_ode}, T=1.0):
        raise RuntimeError("boom")
    assert hook_state(tiny) == before


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_hooks_are_removed_after_an_exception_inside_the_forward(
    tiny: Any, tiny_ode: lo.ODESteer, error: type[BaseException]
) -> None:
    def explode(acts: torch.Tensor, hook: Any) -> None:
        raise error("from another hook")

    with pytest.raises(error), steering(tiny, {TINY_HOOK: tiny_ode}, T=8.0) as handle:
        handle.generate(PROMPTS, max_new_tokens=2)  # fine
        with tiny.hooks(fwd_hooks=[(HOOK1, explode)]):
            handle.generate(PROMPTS, max_new_tokens=2)
    assert attached_hooks(tiny) == {}
    # The interrupted generation left nothing behind in the hook: it acts as a fresh one.
    hook = handle.hooks[TINY_HOOK]
    tokens = tiny.to_tokens(PROMPTS[0])
    fresh = SteeringHook(tiny, tiny_ode, T=8.0)
    assert torch.equal(
        tiny.run_with_hooks(tokens, fwd_hooks=[(TINY_HOOK, hook)]),
        tiny.run_with_hooks(tokens, fwd_hooks=[(TINY_HOOK, fresh)]),
    )


def test_handle_remove_is_idempotent_and_ends_generation(tiny: Any, tiny_caa: lo.CAA) -> None:
    with steering(tiny, {TINY_HOOK: tiny_caa}, T=1.0) as handle:
        assert len(tiny.hook_dict[TINY_HOOK].fwd_hooks) == 1
        assert len(tiny.hook_dict[TINY_HOOK]._forward_hooks) == 1
        assert "attached=True" in repr(handle)
        handle.remove()
        handle.remove()  # idempotent
        assert attached_hooks(tiny) == {}
        assert not handle.attached
        with pytest.raises(SteeringConflictError, match="removed"):
            handle.generate(PROMPTS)
    assert attached_hooks(tiny) == {}


def test_validation_happens_before_anything_is_attached(tiny: Any, tiny_caa: lo.CAA) -> None:
    with pytest.raises(HookNameError):
        _enter(tiny, {TINY_HOOK: tiny_caa, "blocks.1.hook_resid_pots": tiny_caa}, T=1.0)
    assert attached_hooks(tiny) == {}


# -- exactness --------------------------------------------------------------------------------
@pytest.mark.parametrize("scope", ["last", "all", "prompt", [0, -2]], ids=str)
def test_T_zero_reproduces_unsteered_logits_exactly(
    tiny: Any, tiny_ode: lo.ODESteer, scope: Any
) -> None:
    tokens = tiny.to_tokens(PROMPTS[0])
    plain = tiny(tokens)
    with steering(tiny, {TINY_HOOK: tiny_ode, HOOK1: tiny_ode}, T=0.0, scope=scope):
        assert torch.equal(tiny(tokens), plain)
        assert torch.equal(tiny.run_with_hooks(tokens, fwd_hooks=[]), plain)
    with steering(tiny, {TINY_HOOK: tiny_ode}, strength=0.0, scope=scope):
        assert torch.equal(tiny(tokens), plain)


def _steer_and_capture(
    model: Any, steerer: Any, inp: Any, scope: Any, forward_kw: dict[str, Any], **kw: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (activation before, after) the steering hook, captured around it."""
    pre, post = Capture(), Capture()
    with (
        model.hooks(fwd_hooks=[(TINY_HOOK, pre)]),  # registered before ours: the original
        steering(model, {TINY_HOOK: steerer}, T=T, scope=scope, **kw),
        model.hooks(fwd_hooks=[(TINY_HOOK, post)]),  # after ours: the result
    ):
        model(inp, **forward_kw)
    return pre.seen[0], post.seen[0]


def _in_scope(scope: Any, shape: tuple[int, int], lengths: list[int], pad: list[int]) -> Any:
    """The expected in-scope columns, counting each row's real tokens from ``pad``."""
    mask = torch.zeros(shape, dtype=torch.bool)
    for row, (n, p) in enumerate(zip(lengths, pad, strict=True)):
        if scope == "last":
            mask[row, p + n - 1] = True
        elif scope in ("all", "prompt"):
            mask[row, p : p + n] = True
        elif isinstance(scope, list):
            for q in scope:
                mask[row, p + (q if q >= 0 else n + q)] = True
        else:
            width = min(n, scope.shape[1])
            mask[row, p : p + width] = scope[row, :width]
    return mask


MASK = torch.tensor([[True, False, True, True], [False, True, False, False]])
SCOPE_CASES = [
    ("last", "none"),
    ("last", "strings"),
    ("last", "right-mask"),
    ("last", "left-mask"),
    ("last", "fixed"),
    ("all", "none"),
    ("all", "left-mask"),
    ("prompt", "strings"),
    ("prompt", "fixed"),
    ([1, -2], "strings"),
    ([0, -1], "left-mask"),
    (MASK, "none"),
    (MASK, "left-mask"),
    (MASK, "right-mask"),
]


@pytest.mark.parametrize(
    ("scope", "padding"),
    SCOPE_CASES,
    ids=[f"{s if not isinstance(s, torch.Tensor) else 'mask'}-{p}" for s, p in SCOPE_CASES],
)
def test_steered_activation_is_the_steerer_output_in_scope_and_unchanged_elsewhere(
    tiny: Any, tiny_ode: lo.ODESteer, scope: Any, padding: str
) -> None:
    """How the hooks learn the padding of a batch of ``["Hello there", "Hi"]``.

    ``none``: a right-padded token tensor and nothing else (so no padding is known: every row
    counts as a full-width prompt); ``strings``: the ``list[str]`` itself (TL pads it on the
    right and the hooks read the list); ``right-mask``/``left-mask``: a token tensor with
    ``attention_mask=``; ``fixed``: the plan's ``attention_mask`` for a plain token tensor.
    """
    texts = ["Hello there", "Hi"]
    lengths = [len(tiny.to_tokens(t)[0]) for t in texts]
    side = "left" if padding == "left-mask" else "right"
    tokens = tiny.to_tokens(texts, padding_side=side)
    width = tokens.shape[1]
    cols = torch.arange(width)[None]
    n = torch.tensor(lengths)[:, None]
    real = (cols >= width - n) if side == "left" else (cols < n)
    pad = [width - k for k in lengths] if side == "left" else [0, 0]
    inp: Any = texts if padding == "strings" else tokens
    forward_kw = {"attention_mask": real.long()} if padding.endswith("-mask") else {}
    kw = {"attention_mask": real.long()} if padding == "fixed" else {}
    before, after = _steer_and_capture(tiny, tiny_ode, inp, scope, forward_kw, **kw)
    where = _in_scope(scope, (2, width), lengths if padding != "none" else [width] * 2, pad)
    assert torch.equal(after[~where], before[~where])  # bitwise identical out of scope
    torch.testing.assert_close(after[where], tiny_ode.steer(before[where], T), rtol=0, atol=1e-6)
    assert not torch.allclose(after[where], before[where])


def test_steering_hook_and_plan_hooks_work_in_plain_tl_calls(tiny: Any, tiny_caa: lo.CAA) -> None:
    tokens = tiny.to_tokens(PROMPTS[2])
    with steering(tiny, {TINY_HOOK: tiny_caa}, T=2.0):
        expected = tiny(tokens)
    hook = SteeringHook(tiny, tiny_caa, T=2.0, scope="last")
    assert repr(hook) == "SteeringHook(steerer=CAA(), T=2.0, scope='last')"
    assert torch.equal(tiny.run_with_hooks(tokens, fwd_hooks=[(TINY_HOOK, hook)]), expected)
    pairs = SteeringPlan({TINY_HOOK: tiny_caa}, T=2.0).hooks(tiny)
    assert [name for name, _ in pairs] == [TINY_HOOK]
    with tiny.hooks(fwd_hooks=pairs):
        assert torch.equal(tiny(tokens), expected)
    logits, _ = tiny.run_with_cache(tokens, names_filter=HOOK1)
    assert not torch.equal(logits, expected)  # and nothing is left behind


def test_steering_hook_takes_the_model_first(tiny: Any, tiny_caa: lo.CAA) -> None:
    with bad_argument(r"SteeringHook\(model, steerer"):
        SteeringHook(tiny_caa, tiny, T=1.0)  # type: ignore[arg-type]
    with bad_argument("TransformerLens model"):
        SteeringHook(object(), tiny_caa, T=1.0)


def test_per_hook_strengths(tiny: Any, tiny_caa: lo.CAA, tiny_ode: lo.ODESteer) -> None:
    tokens = tiny.to_tokens(PROMPTS[0])
    with steering(tiny, {HOOK1: tiny_ode}, T=3.0, scope="all"):
        only_second = tiny(tokens)
    with steering(
        tiny, {TINY_HOOK: tiny_caa, HOOK1: tiny_ode}, T={TINY_HOOK: 0.0, HOOK1: 3.0}, scope="all"
    ):
        assert torch.equal(tiny(tokens), only_second)
    plan = SteeringPlan({TINY_HOOK: tiny_caa, HOOK1: tiny_ode}, T=3.0, scope="all")
    with steering(tiny, plan.replace(T={TINY_HOOK: 0.0, HOOK1: 3.0})):
        assert torch.equal(tiny(tokens), only_second)
    with bad_argument("is a tuple; give the steerer alone"):
        _enter(tiny, {TINY_HOOK: (tiny_caa, 0.0), HOOK1: (tiny_ode, 3.0)}, scope="all")


# -- dtypes -----------------------------------------------------------------------------------
def test_bf16_model_is_steered_in_float32_and_cast_back(
    fresh_tiny: Any, tiny_ode: lo.ODESteer
) -> None:
    model = fresh_tiny.to(torch.bfloat16)
    tokens = model.to_tokens(PROMPTS[0])
    before, after = _steer_and_capture(model, tiny_ode, tokens, "all", {})
    assert before.dtype == after.dtype == torch.bfloat16
    expected = tiny_ode.steer(before.float(), T).to(torch.bfloat16)  # float32 maths
    torch.testing.assert_close(after, expected, rtol=0, atol=0)
    with steering(model, {TINY_HOOK: tiny_ode}, T=T) as handle:
        hook = handle.hooks[TINY_HOOK]
        assert hook.compute_dtype == hook.steerer.dtype_ == torch.float32
        logits = model(tokens)
        texts = handle.generate(PROMPTS, max_new_tokens=3)
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all() and len(texts) == 3
    assert tiny_ode.dtype_ == torch.float32  # the caller's steerer was not moved


# -- errors -----------------------------------------------------------------------------------
def test_unknown_hook_suggests_a_name(tiny: Any, tiny_caa: lo.CAA) -> None:
    with pytest.raises(HookNameError, match=r"Did you mean 'blocks\.0\.hook_resid_post'"):
        _enter(tiny, {"blocks.0.hook_resid_pots": tiny_caa}, T=1.0)
    with pytest.raises(HookNameError, match="out of range"):
        _enter(tiny, {resid_post(7): tiny_caa}, T=1.0)


def test_width_mismatch(tiny: Any) -> None:
    narrow = lo.CAA().fit(torch.randn(4, 32) + 1, torch.randn(4, 32))
    with pytest.raises(ShapeMismatchError, match="d_model=32"):
        _enter(tiny, {TINY_HOOK: narrow}, T=1.0)


def test_width_is_checked_at_run_time_on_other_hooks(tiny: Any, tiny_caa: lo.CAA) -> None:
    with (
        steering(tiny, {"blocks.0.attn.hook_z": tiny_caa}, T=1.0),
        pytest.raises(ShapeMismatchError, match=r"\[batch, pos, 64\]"),
    ):
        tiny("Hi")


@pytest.mark.parametrize("case", ["name", "past-n_ctx", "before-n_ctx", "float-mask"])
def test_bad_scopes(tiny: Any, tiny_caa: lo.CAA, case: str) -> None:
    n_ctx = tiny.cfg.n_ctx
    scope, match = {
        "name": ("lastt", "Unknown scope"),
        "past-n_ctx": ([n_ctx], "out of range"),
        "before-n_ctx": ([-n_ctx - 1], "out of range"),
        "float-mask": (torch.zeros(2, 3), "boolean mask"),
    }[case]
    with pytest.raises(InvalidParameterError, match=match):
        _enter(tiny, {TINY_HOOK: tiny_caa}, T=1.0, scope=scope)


def test_bad_strengths_and_steerers(tiny: Any, tiny_caa: lo.CAA) -> None:
    with pytest.raises(InvalidParameterError, match="No strength"):
        _enter(tiny, {TINY_HOOK: tiny_caa})
    with pytest.raises(InvalidParameterError, match=">= 0"):
        _enter(tiny, {TINY_HOOK: tiny_caa}, T=-1.0)
    with pytest.raises(InvalidParameterError, match="one value per hook"):
        _enter(tiny, {TINY_HOOK: tiny_caa}, T={HOOK1: 1.0})
    with pytest.raises(NotFittedError):
        _enter(tiny, {TINY_HOOK: lo.CAA()}, T=1.0)
    assert attached_hooks(tiny) == {}


def test_gated_hook_points_are_rejected(tiny: Any, tiny_caa: lo.CAA) -> None:
    with pytest.raises(InvalidParameterError, match="use_attn_in"):
        _enter(tiny, {"blocks.0.hook_attn_in": tiny_caa}, T=1.0)
    assert attached_hooks(tiny) == {}


def test_fixed_attention_mask_of_another_batch_is_reported(tiny: Any, tiny_caa: lo.CAA) -> None:
    mask = torch.ones(2, 5, dtype=torch.long)
    with (
        steering(tiny, {TINY_HOOK: tiny_caa}, T=1.0, attention_mask=mask),
        pytest.raises(ShapeMismatchError, match=r"attention_mask of shape \[2, 5\]"),
    ):
        tiny(tiny.to_tokens(PROMPTS))
