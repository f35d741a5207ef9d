"""Fluency metrics: Dist-n, repetition and continuation perplexity (tiny model, then SmolLM2)."""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterator

import numpy as np
import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.evaluation.fluency import (
    continuation_nll,
    continuation_perplexity,
    distinct_n,
    fluency_frame,
    repetition_rate,
)
from lens_odesteer.hooks import generate, steering
from lens_odesteer.models import tiny_bridge

BAD_INPUT = (InvalidParameterError, TypeError)  # TypeError: beartype/jaxtyping in the full run


@pytest.fixture(scope="module", autouse=True)
def _torch_threads() -> Iterator[None]:
    """One torch thread (override: LENS_ODESTEER_TEST_THREADS), as in tests/hooks/conftest.py.

    Small forward passes stall in OpenMP hand-offs on a busy 2-core machine; one thread is
    faster and far more stable there.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("LENS_ODESTEER_TEST_THREADS", "1")))
    yield
    torch.set_num_threads(before)


HOOK = "blocks.1.hook_resid_post"


# -- Dist-n and repetition ------------------------------------------------------------------


def test_distinct_n_known_values() -> None:
    assert distinct_n(["a a a a"], 1) == 0.25
    assert distinct_n(["a a a a"], 2) == pytest.approx(1 / 3)
    assert distinct_n(["the cat sat on the mat"], 1) == pytest.approx(5 / 6)
    assert distinct_n(["one two three", "four five six"], 3) == 1.0
    # Corpus level: the same sentence twice halves Dist-n; n-grams never span two texts.
    assert distinct_n(["x y z", "x y z"], 2) == 0.5
    assert distinct_n(["x y", "z"], 2) == 1.0  # only "x y"; no "y z" across texts
    assert math.isnan(distinct_n(["too short"], 3))
    assert distinct_n(["a a a a"], 1) < distinct_n(["the quick brown fox"], 1)


def test_distinct_n_whitespace_vs_custom_tokens() -> None:
    assert distinct_n(["Cat cat, cat."], 1) == 1.0  # whitespace words, case and punctuation kept
    words = lambda s: s.lower().replace(",", " ").replace(".", " ").split()  # noqa: E731
    assert distinct_n(["Cat cat, cat."], 1, tokenize=words) == pytest.approx(1 / 3)


def test_repetition_rate_known_values() -> None:
    rates = repetition_rate(
        [
            "a b c d a b c d a b c d",  # 9 four-grams, 4 distinct
            "one two three four five six",
            "too short",
        ]
    )
    assert rates.dtype == np.float64 and rates.shape == (3,)
    assert rates[0] == pytest.approx(1 - 4 / 9)
    assert rates[1] == 0.0 and math.isnan(rates[2])
    assert repetition_rate(["a a a a a"], n=1)[0] == pytest.approx(0.8)
    looping = " ".join(["I am happy."] * 10)
    assert repetition_rate([looping])[0] > 0.8


@pytest.mark.parametrize("bad", [[], "a string", [1, 2], None])
def test_text_metrics_reject_bad_lists(bad: object) -> None:
    with pytest.raises(BAD_INPUT):
        distinct_n(bad, 1)  # type: ignore[arg-type]
    with pytest.raises(BAD_INPUT):
        repetition_rate(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [0, -1, 2.0, True])
def test_text_metrics_reject_bad_n(n: object) -> None:
    with pytest.raises(BAD_INPUT):
        distinct_n(["a b"], n)  # type: ignore[arg-type]
    with pytest.raises(BAD_INPUT):
        repetition_rate(["a b"], n)  # type: ignore[arg-type]


# -- perplexity on a tiny random model (fast) ------------------------------------------------


@pytest.fixture(scope="module")
def tiny() -> object:
    return tiny_bridge(seed=3)


PROMPTS = ["Hi", "The weather in spring is", "Q: 2+2? A:", "x"]
CONTS = [" there, friend.", " mild", " 4", " a much longer continuation with many tokens in it"]


def _manual_nll(model: object, prompt: str, cont: str) -> tuple[float, int]:
    """Score one row alone from the full forward of prompt + continuation tokens."""
    head = model.to_tokens(prompt)[0]  # type: ignore[attr-defined]
    tail = model.to_tokens(cont, prepend_bos=False)[0]  # type: ignore[attr-defined]
    ids = torch.cat([head, tail])[None]
    with torch.no_grad():
        logp = torch.log_softmax(model(ids)[0].float(), -1)  # type: ignore[operator]
    picked = [logp[p - 1, ids[0, p]] for p in range(len(head), ids.shape[1])]
    return -float(torch.stack(picked).sum()), len(tail)


def test_perplexity_boundary_matches_manual_computation(tiny: object) -> None:
    nll, counts = continuation_nll(tiny, PROMPTS, CONTS)
    for i, (p, c) in enumerate(zip(PROMPTS, CONTS, strict=True)):
        ref_nll, ref_n = _manual_nll(tiny, p, c)
        assert counts[i] == ref_n
        assert nll[i] == pytest.approx(ref_nll, rel=1e-5)
    ppl = continuation_perplexity(tiny, PROMPTS, CONTS)
    np.testing.assert_allclose(ppl, np.exp(nll / counts), rtol=1e-12)


def test_perplexity_batched_equals_one_at_a_time(tiny: object) -> None:
    batched = continuation_perplexity(tiny, PROMPTS, CONTS, batch_size=3)
    alone = np.array(
        [continuation_perplexity(tiny, [p], [c])[0] for p, c in zip(PROMPTS, CONTS, strict=True)]
    )
    np.testing.assert_allclose(batched, alone, rtol=1e-4)
    # Token ids score exactly like the strings they came from.
    ids = [tiny.to_tokens(c, prepend_bos=False)[0] for c in CONTS]  # type: ignore[attr-defined]
    np.testing.assert_allclose(continuation_perplexity(tiny, PROMPTS, ids), batched, rtol=1e-6)


def test_perplexity_conditions_on_the_prompt(tiny: object) -> None:
    a = continuation_perplexity(tiny, ["Hello", "Goodbye forever"], [" world", " world"])
    assert a[0] != pytest.approx(a[1], rel=1e-3)
    _, counts = continuation_nll(tiny, ["Hello", "Goodbye forever"], [" world", " world"])
    assert counts.tolist() == [6, 6]  # only the continuation's bytes are scored


def test_empty_continuation_gives_nan(tiny: object) -> None:
    ppl = continuation_perplexity(tiny, ["Hi", "Hi"], ["", " yes"])
    assert math.isnan(ppl[0]) and np.isfinite(ppl[1])
    frame = fluency_frame(tiny, ["Hi", "Hi"], ["", " yes"])
    assert frame.loc[0, "n_tokens"] == 0 and math.isnan(frame.loc[0, "perplexity"])


def test_perplexity_refuses_attached_hooks(tiny: object) -> None:
    caa = lo.CAA().fit(torch.randn(8, 64) + 3, torch.randn(8, 64))
    plain = continuation_perplexity(tiny, PROMPTS, CONTS)
    with steering(tiny, {HOOK: caa}, T=20.0, scope="all"):  # type: ignore[arg-type]
        with pytest.raises(InvalidParameterError, match="unsteered model") as info:
            continuation_perplexity(tiny, PROMPTS, CONTS)
        assert HOOK in str(info.value)
        steered = continuation_perplexity(tiny, PROMPTS, CONTS, allow_hooks=True)
    assert not np.allclose(plain, steered, rtol=1e-3)
    np.testing.assert_allclose(continuation_perplexity(tiny, PROMPTS, CONTS), plain, rtol=1e-6)


def test_perplexity_input_errors(tiny: object) -> None:
    with pytest.raises(InvalidParameterError, match="one continuation per prompt"):
        continuation_perplexity(tiny, ["a", "b"], [" c"])
    with pytest.raises(BAD_INPUT):
        continuation_perplexity(tiny, [], [])
    with pytest.raises(BAD_INPUT):
        continuation_perplexity(tiny, ["a"], " c")  # type: ignore[arg-type]
    with pytest.raises(BAD_INPUT):
        continuation_perplexity(tiny, ["a"], [torch.ones(3)])  # float ids
    with pytest.raises(BAD_INPUT):
        continuation_perplexity(tiny, ["a"], [" c"], batch_size=0)
    with pytest.raises(InvalidParameterError, match="context of 256"):
        continuation_perplexity(tiny, ["a"], [" b" * 200])


def test_fluency_frame_is_tidy(tiny: object) -> None:
    conts = [" fine fine fine fine fine", " the cat sat on the mat", " ok"]
    frame = fluency_frame(tiny, ["A", "B", "C"], conts)
    assert len(frame) == 3 and frame["prompt"].tolist() == ["A", "B", "C"]
    assert frame["continuation"].tolist() == conts
    np.testing.assert_allclose(
        frame["perplexity"], continuation_perplexity(tiny, ["A", "B", "C"], conts)
    )
    np.testing.assert_allclose(frame["perplexity"], np.exp(frame["nll"]))
    assert frame["n_words"].tolist() == [5, 6, 1]
    assert frame.loc[0, "distinct_1"] == 0.2 and frame.loc[1, "distinct_1"] == pytest.approx(5 / 6)
    assert frame.loc[0, "repetition_rate"] == 1 - 1 / 2 and frame.loc[1, "repetition_rate"] == 0.0
    assert math.isnan(frame.loc[2, "repetition_rate"]) and math.isnan(frame.loc[2, "distinct_2"])
    ids = [tiny.to_tokens(c, prepend_bos=False)[0] for c in conts]  # type: ignore[attr-defined]
    from_ids = fluency_frame(tiny, ["A", "B", "C"], ids)
    assert from_ids["continuation"].tolist() == conts  # decoded back for the word metrics


# -- SmolLM2 (slow) -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smol() -> object:
    return lo.load_model(progress=False)


@pytest.mark.slow
def test_smol_reproduces_offline_md_perplexity(smol: object) -> None:
    # OFFLINE.md: HF exp(loss) over the sentence without BOS (first token unscored) = 148.
    ppl = continuation_perplexity(
        smol, ["The"], [" cat sat on the mat and purred quietly."], prepend_bos=False
    )
    assert ppl[0] == pytest.approx(148.2, rel=0.01)


@pytest.mark.slow
def test_smol_greedy_continuation_beats_shuffled_words(smol: object) -> None:
    prompts = ["The capital of France is", "Once upon a time, there was a"]
    # The model's own greedy continuations, as the evaluation tasks generate them.
    texts, tokens = generate(smol, prompts, max_new_tokens=8, return_tokens=True)
    rng = random.Random(0)
    shuffled = []
    for text in texts:
        words = text.split()
        while len(words) > 1 and " ".join(words) == " ".join(text.split()):
            rng.shuffle(words)
        shuffled.append(" " + " ".join(words))
    own = continuation_perplexity(smol, prompts, tokens)
    mixed = continuation_perplexity(smol, prompts, shuffled)
    assert (own < 10).all() and (mixed > 5 * own).all(), (own, mixed, texts, shuffled)
    # Batched (unequal lengths, right-padded) equals one prompt at a time, on the real model.
    conts = [texts[0], shuffled[1] + " and more words to make it longer"]
    batched = continuation_perplexity(smol, prompts, conts)
    alone = np.array(
        [continuation_perplexity(smol, [p], [c])[0] for p, c in zip(prompts, conts, strict=True)]
    )
    np.testing.assert_allclose(batched, alone, rtol=1e-4)


@pytest.mark.slow
def test_smol_chat_prompts_use_the_template(smol: object) -> None:
    plain = continuation_perplexity(smol, ["What is the capital of France?"], [" Paris."])
    chat = continuation_perplexity(
        smol, ["What is the capital of France?"], ["The capital of France is Paris."], chat=True
    )
    assert np.isfinite(plain).all() and chat[0] < 5.0, chat
