"""Deterministic fuzzing of the dataset loaders with text that line-based readers get wrong.

Records hold raw U+2028, U+2029, U+0085, vertical tabs, form feeds, file/group/record
separators, quotes, commas, backslashes, braces, emoji and (in CSV) line breaks inside quoted
fields; files use ``\\n``, ``\\r\\n`` or ``\\r`` line ends, a BOM or not, and now and then a
field longer than the csv module's default limit (131,072 characters). Every loader (the
contrast-pair loaders and the evaluation tasks' own) must read back exactly the strings that
were written. Malformed variants (a duplicated CSV column, JSON nested thousands of levels deep,
a cut record) must raise a :class:`~lens_odesteer.errors.LensOdesteerError`.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lens_odesteer.datasets.loaders import (
    CAA_PROMPT,
    load_caa_ab_json,
    load_pairs,
    load_repe_facts_csv,
    load_truthfulqa_csv,
)
from lens_odesteer.errors import LensOdesteerError
from lens_odesteer.evaluation.tasks.behaviors import load_ab_items
from lens_odesteer.evaluation.tasks.detox import load_rtp_prompts, load_toxigen
from lens_odesteer.evaluation.tasks.truthfulqa_mc import load_truthfulqa_mc

DEFAULT_CASES = 180
SLOW_CASES = 1800
#: Characters ``str.splitlines`` breaks on but JSON may hold raw inside a string.
SEPARATORS = ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"]
OTHERS = [*"abc XYZ,'\"\\{}:[]\t", "é", "\u200b", "😀", "ß"]
OUTCOMES: dict[str, int] = {}


def text(rng: random.Random, *, csv_breaks: bool = False, semicolons: bool = True) -> str:
    """A string that starts and ends with a letter (loaders strip fields) with awkward insides."""
    pool = SEPARATORS * 3 + OTHERS + (["\n", "\r\n", "\r"] if csv_breaks else [])
    middle = "".join(rng.choice(pool) for _ in range(rng.randint(0, 12)))
    if not semicolons:
        middle = middle.replace(";", "")
    if rng.random() < 0.03:
        middle += "L" * rng.randint(131_073, 140_000)  # over the csv module's default limit
    return f"a{middle}z{rng.randint(0, 10**6)}"


def line_end(rng: random.Random) -> str:
    return rng.choice(["\n", "\r\n", "\r"])


def write(path: Path, body: str, rng: random.Random) -> Path:
    bom = "\ufeff" if rng.random() < 0.2 else ""
    path.write_bytes((bom + body).encode("utf-8"))
    return path


def jsonl(rng: random.Random, records: list[Any]) -> str:
    end = line_end(rng)
    return end.join(json.dumps(r, ensure_ascii=False) for r in records) + end


def csv_text(rng: random.Random, header: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO(newline="")
    end = rng.choice(["\n", "\r\n"])
    # csv quotes a field only for the characters of its own line end: with "\n" a bare "\r"
    # would be written unquoted (a file no reader can split right), so quote every field then.
    quoting = csv.QUOTE_ALL if end == "\n" else csv.QUOTE_MINIMAL
    writer = csv.writer(buf, lineterminator=end, quoting=quoting)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


# -- one case per loader: write records, load them, compare ------------------------------------
def case_pairs(rng: random.Random, folder: Path) -> None:
    n = rng.randint(1, 6)
    recs = [
        {"prompt": text(rng, csv_breaks=True), "positive": text(rng, csv_breaks=True),
         "negative": text(rng, csv_breaks=True) + "n"}
        for _ in range(n)
    ]  # fmt: skip
    fmt = rng.choice(["jsonl", "json", "csv"])
    if fmt == "csv":
        body = csv_text(rng, ["prompt", "positive", "negative"], [list(r.values()) for r in recs])
    elif fmt == "json":
        body = json.dumps(recs, ensure_ascii=False)
    else:
        body = jsonl(rng, recs)
    data = load_pairs(write(folder / f"pairs.{fmt}", body, rng))
    got = [{"prompt": p.prompt, "positive": p.positive, "negative": p.negative} for p in data]
    assert got == recs, fmt


def case_caa(rng: random.Random, folder: Path) -> None:
    recs = [
        {"question": text(rng), "answer_matching_behavior": " (A)",
         "answer_not_matching_behavior": " (B)"}
        for _ in range(rng.randint(1, 5))
    ]  # fmt: skip
    fmt = rng.choice(["jsonl", "json"])
    body = jsonl(rng, recs) if fmt == "jsonl" else json.dumps(recs, ensure_ascii=False)
    data = load_caa_ab_json(write(folder / f"ab.{fmt}", body, rng))
    assert [p.prompt for p in data] == [CAA_PROMPT.format(question=r["question"]) for r in recs]
    items = load_ab_items(folder / f"ab.{fmt}")
    assert [it.question for it in items] == [r["question"] for r in recs]


def case_repe(rng: random.Random, folder: Path) -> None:
    trues = [text(rng, csv_breaks=True) for _ in range(rng.randint(1, 4))]
    falses = [text(rng, csv_breaks=True) for _ in range(len(trues))]
    rows = [[t, "1"] for t in trues] + [[f, "0"] for f in falses]
    rng.shuffle(rows)
    data = load_repe_facts_csv(
        write(folder / "facts.csv", csv_text(rng, ["statement", "label"], rows), rng)
    )
    order_t = [r[0] for r in rows if r[1] == "1"]
    order_f = [r[0] for r in rows if r[1] == "0"]
    assert [(p.positive, p.negative) for p in data] == list(zip(order_t, order_f, strict=True))


def case_truthfulqa(rng: random.Random, folder: Path) -> None:
    header = ["Type", "Category", "Question", "Best Answer", "Correct Answers", "Incorrect Answers"]
    rows, expected = [], []
    for _ in range(rng.randint(1, 4)):
        q = text(rng, csv_breaks=True)
        good = [text(rng, semicolons=False) for _ in range(rng.randint(1, 3))]
        bad = [text(rng, semicolons=False) + "x" for _ in range(rng.randint(1, 3))]
        rows.append(["t", "c", q, good[0], "; ".join(good), "; ".join(bad)])
        expected.append((q, good, bad))
    path = write(folder / "TruthfulQA.csv", csv_text(rng, header, rows), rng)
    data = load_truthfulqa_csv(path, prompt_template="{question}", pairing="product")
    want = [(q, c, i) for q, good, bad in expected for c in good for i in bad]
    assert [(p.prompt, p.positive, p.negative) for p in data] == want
    mc = load_truthfulqa_mc(path)
    assert [m.question for m in mc] == [q for q, _, _ in expected]
    assert [[a for a, t in m.mc2 if t] for m in mc] == [good for _, good, _ in expected]


def case_truthfulqa_json(rng: random.Random, folder: Path) -> None:
    recs = []
    for _ in range(rng.randint(1, 4)):
        good, bad = text(rng), text(rng) + "x"
        recs.append(
            {"question": text(rng), "mc1_targets": {good: 1, bad: 0},
             "mc2_targets": {good: 1, bad: 0}}
        )  # fmt: skip
    mc = load_truthfulqa_mc(
        write(folder / "mc_task.json", json.dumps(recs, ensure_ascii=False), rng)
    )
    assert [m.question for m in mc] == [r["question"] for r in recs]
    assert [m.answers() for m in mc] == [list(r["mc2_targets"]) for r in recs]


def case_rtp(rng: random.Random, folder: Path) -> None:
    prompts = [text(rng) for _ in range(rng.randint(1, 5))]
    body = jsonl(
        rng, [{"prompt": {"text": p}, "continuation": {"text": text(rng)}} for p in prompts]
    )
    assert load_rtp_prompts(write(folder / "toxic.jsonl", body, rng)) == prompts


def case_toxigen(rng: random.Random, folder: Path) -> None:
    neutral = list(dict.fromkeys(text(rng) for _ in range(rng.randint(1, 5))))
    hate = list(dict.fromkeys(text(rng) + "h" for _ in range(rng.randint(1, 5))))
    (folder / "tg" / "group").mkdir(parents=True)
    end = line_end(rng)
    write(folder / "tg" / "group" / "neutral_group.txt", end.join(neutral) + end, rng)
    write(folder / "tg" / "group" / "hate_group.txt", end.join(hate) + end, rng)
    assert load_toxigen(folder / "tg") == (neutral, hate)


# -- malformed variants: refused with the library's error -------------------------------------
def bad_duplicate_column(rng: random.Random, folder: Path) -> None:
    body = csv_text(rng, ["prompt", "positive", "negative", "positive"], [["p", "a", "b", "c"]])
    load_pairs(write(folder / "dup.csv", body, rng))


def bad_deep_json(rng: random.Random, folder: Path) -> None:
    depth = rng.randint(50_000, 120_000)
    loader = rng.choice([load_pairs, load_caa_ab_json])
    body = "[" * depth + "]" * depth if rng.random() < 0.5 else '{"a": ' * depth + "1" + "}" * depth
    loader(write(folder / rng.choice(["deep.json", "deep.jsonl"]), body, rng))


def bad_cut_record(rng: random.Random, folder: Path) -> None:
    recs = [{"prompt": text(rng), "positive": text(rng), "negative": text(rng) + "n"}]
    end = line_end(rng)
    line = json.dumps(recs[0], ensure_ascii=False)
    body = end.join([line] * 3)
    cut = len(body) - rng.randrange(1, len(line))  # inside the last record
    load_pairs(write(folder / "cut.jsonl", body[:cut], rng))


def bad_duplicate_tqa(rng: random.Random, folder: Path) -> None:
    header = ["Question", "Best Answer", "Correct Answers", "Incorrect Answers", "Question"]
    body = csv_text(rng, header, [["q", "a", "a", "b", "q2"]])
    rng.choice([load_truthfulqa_csv, load_truthfulqa_mc])(
        write(folder / "TruthfulQA.csv", body, rng)
    )


GOOD: dict[str, Callable[[random.Random, Path], None]] = {
    "pairs": case_pairs,
    "caa": case_caa,
    "repe": case_repe,
    "truthfulqa_csv": case_truthfulqa,
    "truthfulqa_json": case_truthfulqa_json,
    "rtp": case_rtp,
    "toxigen": case_toxigen,
}
BAD: dict[str, Callable[[random.Random, Path], None]] = {
    "duplicate_column": bad_duplicate_column,
    "deep_json": bad_deep_json,
    "cut_record": bad_cut_record,
    "duplicate_tqa": bad_duplicate_tqa,
}


def run_fuzz(tmp: Path, n_cases: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    names = sorted(GOOD) + sorted(BAD)
    counts = {"tried": 0, "handled": 0, "refused": 0}
    failures = []
    for i in range(n_cases):
        name = names[i % len(names)]
        folder = tmp / f"case{i}"
        folder.mkdir()
        counts["tried"] += 1
        try:
            (GOOD.get(name) or BAD[name])(rng, folder)
        except LensOdesteerError as exc:
            if name in GOOD:
                failures.append(f"case {i} ({name}): refused valid data: {exc}"[:300])
            else:
                counts["refused"] += 1
        except Exception as exc:
            failures.append(f"case {i} ({name}): {type(exc).__name__}: {exc}"[:300])
        else:
            if name in BAD:
                failures.append(f"case {i} ({name}): malformed file accepted")
            else:
                counts["handled"] += 1
    print(f"\nfuzz_datasets (seed {seed}): {counts}")
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:20])
    return counts


def test_fuzz_dataset_loaders(tmp_path: Path) -> None:
    counts = run_fuzz(tmp_path, DEFAULT_CASES, 2028)
    OUTCOMES.update(counts)
    assert counts["handled"] > 0 and counts["refused"] > 0


@pytest.mark.slow
def test_fuzz_dataset_loaders_slow(tmp_path: Path) -> None:
    run_fuzz(tmp_path, SLOW_CASES, 85)


@pytest.mark.parametrize("sep", SEPARATORS)
def test_raw_line_separator_inside_a_jsonl_string(tmp_path: Path, sep: str) -> None:
    """The reported case: valid JSONL with a raw U+2028 / U+0085 ... used to be cut in two."""
    path = tmp_path / "p.jsonl"
    path.write_text(
        json.dumps({"prompt": f"x{sep}y", "positive": "a", "negative": "b"}, ensure_ascii=False)
        + "\n",
        encoding="utf-8",
    )
    assert load_pairs(path)[0].prompt == f"x{sep}y"
