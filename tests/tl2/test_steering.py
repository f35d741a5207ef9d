"""The steering context manager and hook on a classic HookedTransformer (TL 2.x).

The same guarantees as tests/hooks/test_steering_tiny.py on a TL 4 bridge: hook hygiene (ours
removed, the user's untouched, also on exceptions), exactness (T = 0 is the identity; the edit
is ``steerer.steer`` in scope and nothing elsewhere) and validation.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.hooks import SteeringHook, attach, make_hooks, steering
from lens_odesteer.models.names import resid_post
from tests.tl2._shared import PROMPTS, TINY_HOOK, attached_hooks

HOOK1 = resid_post(1)
T = 5.0


def _hook_state(model: Any) -> dict[str, tuple[list[int], list[int]]]:
    """Per hook point: ids of its TL handles and keys of its torch forward hooks."""
    return {
        name: ([id(h) for h in point.fwd_hooks], list(point._forward_hooks))
        for name, point in model.hook_dict.items()
    }


def _enter(*args: Any, **kwargs: Any) -> None:
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
    model.add_hook(TINY_HOOK, mine)  # the user's own hook (TL context level 0)
    model.add_perma_hook(HOOK1, Capture())  # and a permanent one
    before = _hook_state(model)
    plain = model("Hello")
    with steering(model, {TINY_HOOK: tiny_ode, HOOK1: tiny_caa}, T=4.0, scope="all") as handle:
        assert handle.attached
        assert len(model.hook_dict[HOOK1].fwd_hooks) == 2  # the permanent one and ours
        steered = model("Hello")
        # TL's own temporary hooks come and go (reset by context level) without touching ours.
        model.run_with_hooks("Hello", fwd_hooks=[(HOOK1, Capture())])
        model.run_with_cache("Hello", names_filter=HOOK1)
        assert torch.equal(model("Hello"), steered)
    assert not handle.attached
    assert _hook_state(model) == before
    assert not torch.allclose(plain, steered)
    n_seen = len(mine.seen)
    assert torch.equal(model("Hello"), plain)
    assert len(mine.seen) == n_seen + 1  # the user's hook still fires


def test_hooks_are_removed_after_an_exception_in_the_body(tiny: Any, tiny_ode: lo.ODESteer) -> None:
    with pytest.raises(RuntimeError, match="boom"), steering(tiny, {TINY_HOOK: tiny_ode}, T=1.0):
        raise RuntimeError("boom")
    assert attached_hooks(tiny) == {}


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_hooks_are_removed_after_an_exception_inside_the_forward(
    tiny: Any, tiny_ode: lo.ODESteer, error: type[BaseException]
) -> None:
    def explode(acts: torch.Tensor, hook: Any) -> None:
        raise error("from another hook")

    with pytest.raises(error), steering(tiny, {TINY_HOOK: tiny_ode}, T=1.0) as handle:
        handle.generate(PROMPTS, max_new_tokens=2)  # fine
        with tiny.hooks(fwd_hooks=[(HOOK1, explode)]):
            handle.generate(PROMPTS, max_new_tokens=2)
    assert attached_hooks(tiny) == {}
    assert all(hook.layout is None for hook in handle.hooks.values())


def test_attach_until_remove(tiny: Any, tiny_caa: lo.CAA) -> None:
    handle = attach(tiny, {TINY_HOOK: tiny_caa}, T=1.0)
    try:
        assert len(tiny.hook_dict[TINY_HOOK].fwd_hooks) == 1
        assert len(tiny.hook_dict[TINY_HOOK]._forward_hooks) == 1
    finally:
        handle.remove()
    handle.remove()  # idempotent
    assert attached_hooks(tiny) == {}
    with pytest.raises(lo.InvalidParameterError, match="removed"):
        handle.generate(PROMPTS)


def test_validation_happens_before_anything_is_attached(tiny: Any, tiny_caa: lo.CAA) -> None:
    with pytest.raises(lo.HookNameError):
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


def _steer_and_capture(
    model: Any, steerer: Any, tokens: torch.Tensor, scope: Any, **kw: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (activation before, after) the steering hook, captured around it."""
    pre, post = Capture(), Capture()
    forward_kw = {"attention_mask": kw["attention_mask"]} if "attention_mask" in kw else {}
    with (
        model.hooks(fwd_hooks=[(TINY_HOOK, pre)]),  # registered before ours: the original
        steering(model, {TINY_HOOK: steerer}, T=T, scope=scope, **kw),
        model.hooks(fwd_hooks=[(TINY_HOOK, post)]),  # after ours: the result
    ):
        model(tokens, **forward_kw)
    return pre.seen[0], post.seen[0]


def _in_scope(scope: Any, shape: tuple[int, int], lengths: list[int] | None, pad: list[int]) -> Any:
    batch, seq = shape
    lengths = lengths or [seq] * batch
    mask = torch.zeros(batch, seq, dtype=torch.bool)
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


SCOPE_CASES = [
    ("last", "none"),
    ("last", "right"),
    ("last", "left"),
    ("all", "none"),
    ("prompt", "right"),
    ("all", "left"),
    ([1, -2], "right"),
    ([0, -1], "left"),
    (torch.tensor([[True, False, True, True], [False, True, False, False]]), "none"),
    (torch.tensor([[True, False, True, True], [False, True, False, False]]), "left"),
]


@pytest.mark.parametrize(
    ("scope", "padding"),
    SCOPE_CASES,
    ids=[f"{s if not isinstance(s, torch.Tensor) else 'mask'}-{p}" for s, p in SCOPE_CASES],
)
def test_steered_activation_is_the_steerer_output_in_scope_and_unchanged_elsewhere(
    tiny: Any, tiny_ode: lo.ODESteer, scope: Any, padding: str
) -> None:
    """``padding``: none (no layout given), right (``lengths=``), left (``attention_mask=``)."""
    texts = ["Hello there", "Hi"]
    lengths = [len(tiny.to_tokens(t)[0]) for t in texts]
    kw: dict[str, Any] = {}
    pad = [0, 0]
    if padding == "left":
        tokens = tiny.to_tokens(texts, padding_side="left")
        kw["attention_mask"] = (
            torch.arange(tokens.shape[1]) >= tokens.shape[1] - torch.tensor(lengths)[:, None]
        ).long()
        pad = [tokens.shape[1] - n for n in lengths]
    else:
        tokens = tiny.to_tokens(texts)  # TL pads lists on the RIGHT
        if padding == "right":
            kw["lengths"] = lengths
    before, after = _steer_and_capture(tiny, tiny_ode, tokens, scope, **kw)
    where = _in_scope(scope, tuple(tokens.shape), lengths if padding != "none" else None, pad)
    assert torch.equal(after[~where], before[~where])  # bitwise identical out of scope
    torch.testing.assert_close(after[where], tiny_ode.steer(before[where], T), rtol=0, atol=1e-6)
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
    assert torch.equal(tiny.run_with_hooks(tokens, fwd_hooks=[(TINY_HOOK, hook)]), expected)
    pairs = make_hooks(tiny, {TINY_HOOK: tiny_caa}, T=2.0)
    with tiny.hooks(fwd_hooks=pairs):
        assert torch.equal(tiny(tokens), expected)
    logits, _ = tiny.run_with_cache(tokens, names_filter=HOOK1)
    assert not torch.equal(logits, expected)  # and nothing is left behind


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


def test_resid_mid_is_the_real_residual_here(tiny: Any, tiny_caa: lo.CAA) -> None:
    """No bridge warning on a HookedTransformer, and the edit reaches the block output."""
    tokens = tiny.to_tokens(PROMPTS[0])
    mid = "blocks.0.hook_resid_mid"
    _, plain = tiny.run_with_cache(tokens, names_filter=[mid, TINY_HOOK])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with steering(tiny, {mid: tiny_caa}, T=3.0, scope="all"):
            _, steered = tiny.run_with_cache(tokens, names_filter=[mid, TINY_HOOK])
    shift = steered[mid] - plain[mid]
    torch.testing.assert_close(shift, (3.0 * tiny_caa.direction_).expand_as(shift))
    # resid_post = resid_mid + mlp_out: the shift is carried by the skip connection.
    moved = steered[TINY_HOOK] - plain[TINY_HOOK]
    assert (moved - shift).norm() < moved.norm()


def test_bf16_model_is_steered_in_float32_and_cast_back(
    fresh_tiny: Any, tiny_ode: lo.ODESteer
) -> None:
    model = fresh_tiny.to(torch.bfloat16)
    tokens = model.to_tokens(PROMPTS[0])
    before, after = _steer_and_capture(model, tiny_ode, tokens, "all")
    assert before.dtype == after.dtype == torch.bfloat16
    expected = tiny_ode.steer(before.float(), T).to(torch.bfloat16)
    torch.testing.assert_close(after, expected, rtol=0, atol=0)
    with steering(model, {TINY_HOOK: tiny_ode}, T=T) as handle:
        hook = handle.hooks[TINY_HOOK]
        assert hook.compute_dtype == hook.steerer.dtype_ == torch.float32
        texts = handle.generate(PROMPTS, max_new_tokens=3)
    assert len(texts) == 3
    assert tiny_ode.dtype_ == torch.float32  # the caller's steerer was not moved


# -- errors -----------------------------------------------------------------------------------
def test_unknown_hook_suggests_a_name(tiny: Any, tiny_caa: lo.CAA) -> None:
    with pytest.raises(lo.HookNameError, match=r"Did you mean 'blocks\.0\.hook_resid_post'"):
        _enter(tiny, {"blocks.0.hook_resid_pots": tiny_caa}, T=1.0)
    with pytest.raises(lo.HookNameError, match="out of range"):
        _enter(tiny, {resid_post(7): tiny_caa}, T=1.0)
    with pytest.raises(lo.HookNameError, match=r"Unknown hook 'blocks\.0\.hook_out'"):
        _enter(tiny, {"blocks.0.hook_out": tiny_caa}, T=1.0)  # a bridge-only name


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
        ([128], "out of range"),  # n_ctx = 128
        ([-129], "out of range"),
        (torch.zeros(2, 3), "boolean mask"),
    ],
    ids=["name", "past-n_ctx", "before-n_ctx", "float-mask"],
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


def test_gated_hook_points_are_rejected(tiny: Any, tiny_caa: lo.CAA) -> None:
    """TL 2.x asserts in check_hooks_to_add; the library turns it into a clear error."""
    with pytest.raises(lo.InvalidParameterError, match="use_attn_in"):
        _enter(tiny, {"blocks.0.hook_attn_in": tiny_caa}, T=1.0)
    assert attached_hooks(tiny) == {}


def test_layout_batch_mismatch_is_reported(tiny: Any, tiny_caa: lo.CAA) -> None:
    with (
        steering(tiny, {TINY_HOOK: tiny_caa}, T=1.0, lengths=[3, 2]),
        pytest.raises(lo.ShapeMismatchError, match="2 rows"),
    ):
        tiny(tiny.to_tokens(PROMPTS))
