"""collect_activations on the tiny bridge: positions, spans, batching and masking."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor
from transformer_lens.model_bridge import TransformerBridge

import lens_odesteer.activations as activations_module
from lens_odesteer.activations import answer_spans, collect_activations, prefix_lengths
from lens_odesteer.errors import HookNameError, InvalidParameterError
from lens_odesteer.models import mlp_out, resid_post, resid_pre

TEXTS = [
    "The capital of France is",
    "Hi",
    "A much longer sentence than all of the others in this list",
    "x",
    "Grüße aus Köln",
    "Two words",
]
HOOK = resid_post(0)
BAD_INPUT = (InvalidParameterError, TypeError)  # TypeError: beartype/jaxtyping in the full run


def collect(
    model: TransformerBridge, texts: list[str], hook: str = HOOK, **kwargs: object
) -> Tensor:
    out = collect_activations(model, texts, hook, progress=False, **kwargs)  # type: ignore[arg-type]
    assert isinstance(out, Tensor)
    return out


def reference(model: TransformerBridge, text: str, hook: str = HOOK, **kwargs: object) -> Tensor:
    """The full activation ``[pos, d]`` of one text run alone through the whole model."""
    toks = model.to_tokens(text, **kwargs)  # type: ignore[arg-type]
    with torch.inference_mode():
        _, cache = model.run_with_cache(toks, names_filter=hook)
    return cache[hook][0].clone()


def one_by_one(model: TransformerBridge, texts: list[str], **kwargs: object) -> Tensor:
    return torch.cat([collect(model, [t], **kwargs) for t in texts])


def test_last_position_equals_the_unbatched_full_forward(tiny: TransformerBridge) -> None:
    out = collect(tiny, TEXTS, batch_size=4)
    assert out.shape == (len(TEXTS), 64)
    assert out.dtype == torch.float32 and out.device.type == "cpu"
    assert not out.is_inference()  # usable with autograd later
    expected = torch.stack([reference(tiny, t)[-1] for t in TEXTS])
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("hook", [resid_pre(0), resid_post(1), mlp_out(1), "blocks.0.hook_out"])
@pytest.mark.parametrize("position", ["last", "mean", 0, 2, -2])
def test_batched_equals_one_by_one(tiny: TransformerBridge, hook: str, position: str | int) -> None:
    texts = TEXTS[:3] + TEXTS[4:]  # every text has at least 3 tokens with BOS
    single = one_by_one(tiny, texts, hook=hook, position=position)
    for batch_size in (2, 16):
        batched = collect(tiny, texts, hook, position=position, batch_size=batch_size)
        torch.testing.assert_close(batched, single, atol=1e-4, rtol=1e-4)


def test_positions_pick_the_documented_tokens(tiny: TransformerBridge) -> None:
    text = TEXTS[0]
    full = reference(tiny, text)
    torch.testing.assert_close(collect(tiny, [text], position=0)[0], full[0])
    torch.testing.assert_close(collect(tiny, [text], position=3)[0], full[3])
    torch.testing.assert_close(collect(tiny, [text], position=-2)[0], full[-2])
    torch.testing.assert_close(collect(tiny, [text], position="mean")[0], full[1:].mean(0))
    torch.testing.assert_close(
        collect(tiny, [text], position="mean", include_bos=True)[0], full.mean(0)
    )


def test_prepend_bos_false_changes_the_tokens(tiny: TransformerBridge) -> None:
    text = TEXTS[0]
    full = reference(tiny, text, prepend_bos=False)
    assert len(full) == len(text.encode())
    got = collect(tiny, [text], position="mean", prepend_bos=False)[0]
    torch.testing.assert_close(got, full.mean(0))  # no BOS, so nothing is dropped
    torch.testing.assert_close(collect(tiny, [text], prepend_bos=False, position=0)[0], full[0])


def test_pad_tokens_are_never_read(
    tiny: TransformerBridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = []
    for pad_id in (2, 0, 100, 258):
        monkeypatch.setattr(activations_module, "pad_token_id", lambda model, pad_id=pad_id: pad_id)
        results.append(
            collect_activations(
                tiny, TEXTS, [HOOK, mlp_out(1)], position="mean", batch_size=6, progress=False
            )
        )
    for other in results[1:]:
        for name in (HOOK, mlp_out(1)):
            assert torch.equal(results[0][name], other[name])


def test_stop_at_layer_matches_the_full_forward(tiny: TransformerBridge) -> None:
    """Early stopping (layer 0 of 2) with a left-padded mask gives the full-forward numbers."""
    assert activations_module._stop_layer(tiny, [HOOK]) == 1
    assert activations_module._stop_layer(tiny, [resid_post(1)]) is None
    assert activations_module._stop_layer(tiny, [HOOK, "hook_embed"]) is None
    out = collect(tiny, TEXTS, position="mean", batch_size=6)
    expected = torch.stack([reference(tiny, t)[1:].mean(0) for t in TEXTS])
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_several_hooks_give_a_dict(tiny: TransformerBridge) -> None:
    hooks = [resid_post(1), HOOK, "hook_embed", resid_post(1)]
    out = collect_activations(tiny, TEXTS, hooks, progress=False)
    assert isinstance(out, dict)
    assert list(out) == [resid_post(1), HOOK, "hook_embed"]
    for name, acts in out.items():
        torch.testing.assert_close(acts, collect(tiny, TEXTS, name))


def test_spans_select_token_ranges(tiny: TransformerBridge) -> None:
    texts = TEXTS[:3]
    spans = [(1, 4), (-2, 3), (5, -1)]
    fulls = [reference(tiny, t) for t in texts]
    mean = collect(tiny, texts, position="mean", spans=spans, batch_size=3)
    last = collect(tiny, texts, position="last", spans=spans, batch_size=3)
    first = collect(tiny, texts, position=0, spans=spans, batch_size=3)
    for i, (start, end) in enumerate(spans):
        window = fulls[i][start:end]
        torch.testing.assert_close(mean[i], window.mean(0), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(last[i], window[-1], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(first[i], window[0], atol=1e-5, rtol=1e-5)


def test_answer_spans_cover_the_answer_tokens(tiny: TransformerBridge) -> None:
    prompts, answers = ["Q: 2+2? A:", "Hello"], [" 4", " world, again"]
    texts, spans = answer_spans(tiny, prompts, answers)
    assert texts == ["Q: 2+2? A: 4", "Hello world, again"]
    # byte tokenizer: BOS + one token per byte
    assert spans == [(11, 13), (6, 19)]
    assert prefix_lengths(tiny, prompts, texts) == [11, 6]
    out = collect(tiny, texts, position="mean", spans=spans)
    torch.testing.assert_close(out[1], reference(tiny, texts[1])[6:19].mean(0))


def test_hooks_are_removed_afterwards(fresh_tiny: TransformerBridge) -> None:
    toks = fresh_tiny.to_tokens(TEXTS[0])
    with torch.inference_mode():
        before = fresh_tiny(toks)
    collect(fresh_tiny, TEXTS, resid_post(1))
    with pytest.raises(InvalidParameterError):
        collect(fresh_tiny, ["ab", "abcdef"], resid_post(1), position=-5)
    with torch.inference_mode():
        assert torch.equal(fresh_tiny(toks), before)
    assert not any(hp.fwd_hooks for hp in fresh_tiny.hook_dict.values())


@pytest.mark.parametrize(
    ("texts", "match"),
    [([], "empty"), ("just a string", "single string"), (["ok", 3], r"texts\[1\]")],
)
def test_bad_texts_are_rejected(tiny: TransformerBridge, texts: object, match: str) -> None:
    with pytest.raises(BAD_INPUT):
        collect_activations(tiny, texts, HOOK, progress=False)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match=match):
        activations_module._check_texts(texts)


def test_unknown_hooks_are_rejected_with_suggestions(tiny: TransformerBridge) -> None:
    with pytest.raises(HookNameError, match=r"Did you mean 'blocks\.0\.hook_resid_post'"):
        collect(tiny, TEXTS, "blocks.0.resid_post")
    with pytest.raises(HookNameError, match="out of range"):
        collect_activations(tiny, TEXTS, [HOOK, resid_post(7)], progress=False)
    with pytest.raises(BAD_INPUT):
        collect_activations(tiny, TEXTS, [], progress=False)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"position": 3}, r"position=3 is out of range for `texts\[1\]`, which has 3 token"),
        ({"position": -4}, r"texts\[1\]"),
        ({"position": "first"}, "Unknown position 'first'"),
        ({"batch_size": 0}, "batch_size"),
        ({"spans": [(0, 1)]}, "one \\(start, end\\) pair per text"),
        ({"spans": [(0, 1), (2, 2)]}, r"spans\[1\]"),
        ({"spans": [(0, 1), (0, 9)]}, r"spans\[1\]"),
        ({"spans": [(0, 2), (0, 3)], "position": 2}, r"span \(0, 2\) of `texts\[0\]`"),
    ],
)
def test_bad_positions_are_rejected(
    tiny: TransformerBridge, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        collect(tiny, ["abcd", "Hi"], **kwargs)


def test_mean_of_a_bos_only_text_is_an_error(tiny: TransformerBridge) -> None:
    with pytest.raises(InvalidParameterError, match="no token besides BOS"):
        collect(tiny, ["a", ""], position="mean")
    bos_only = collect(tiny, [""], position="mean", include_bos=True)
    torch.testing.assert_close(bos_only, collect(tiny, [""], position="last"))
    with pytest.raises(InvalidParameterError, match="gives no tokens"):
        collect(tiny, [""], prepend_bos=False)


def test_progress_bar_can_be_disabled(
    tiny: TransformerBridge, capsys: pytest.CaptureFixture[str]
) -> None:
    collect(tiny, TEXTS)
    assert "collect_activations" not in capsys.readouterr().err
    collect_activations(tiny, TEXTS, HOOK, progress=True, batch_size=2)
    assert "collect_activations" in capsys.readouterr().err


class ClassicLike:
    """A duck-typed stand-in for a TL 2.x ``HookedTransformer``, delegating to a bridge."""

    def __init__(self, bridge: TransformerBridge) -> None:
        self._bridge = bridge
        self.cfg = bridge.cfg
        self.tokenizer = bridge.tokenizer
        self.padding_sides: list[str] = []

    @property
    def hook_dict(self) -> dict[str, object]:
        return self._bridge.hook_dict

    def to_tokens(self, *args: object, **kwargs: object) -> Tensor:
        return self._bridge.to_tokens(*args, **kwargs)  # type: ignore[arg-type]

    def hooks(self, *args: object, **kwargs: object) -> object:
        return self._bridge.hooks(*args, **kwargs)  # type: ignore[arg-type]

    def __call__(self, *args: object, **kwargs: object) -> object:
        self.padding_sides.append(self.tokenizer.padding_side)
        return self._bridge(*args, **kwargs)


def test_classic_models_are_supported_by_duck_typing(fresh_tiny: TransformerBridge) -> None:
    classic = ClassicLike(fresh_tiny)
    side = classic.tokenizer.padding_side
    out = collect_activations(
        classic, TEXTS, [HOOK, mlp_out(1)], position="mean", batch_size=4, progress=False
    )
    expected = collect_activations(
        fresh_tiny, TEXTS, [HOOK, mlp_out(1)], position="mean", batch_size=4, progress=False
    )
    assert isinstance(out, dict) and isinstance(expected, dict)
    for name in expected:
        assert torch.equal(out[name], expected[name])
    # TL 2.x only honours the attention mask with a left-padding tokenizer; restored after.
    assert classic.padding_sides == ["left", "left"]
    assert classic.tokenizer.padding_side == side
