"""Loaders that turn common steering data files into :class:`ContrastDataset` objects.

Every loader reads a local file (nothing is downloaded) and raises
:class:`~lens_odesteer.errors.FileFormatError` naming the file, what it found and what it expected
when the file is missing, empty, or lacks the needed columns/keys; bad arguments raise
:class:`~lens_odesteer.errors.InvalidParameterError`.

Supported formats:

* :func:`load_truthfulqa_csv` - ``TruthfulQA.csv`` (v1 October 2021 with 817 questions, or the
  January 2025 revision with 790).
* :func:`load_caa_ab_json` - CAA A/B files (JSON list) and Anthropic ``advanced-ai-risk``
  model-written evals (JSON Lines, answers with a leading space).
* :func:`load_repe_facts_csv` - RepE ``facts_true_false.csv`` (``statement,label``).
* :func:`load_pairs` - your own JSON Lines / JSON / CSV with ``positive``, ``negative`` and
  optional ``prompt`` / ``group`` columns.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from lens_odesteer.datasets._text import csv_records, json_lines, parse_json, read_text
from lens_odesteer.datasets.contrast import ContrastDataset, ContrastPair
from lens_odesteer.errors import FileFormatError, InvalidParameterError

__all__ = [
    "CAA_PROMPT",
    "TRUTHFULQA_PROMPT",
    "load_caa_ab_json",
    "load_pairs",
    "load_repe_facts_csv",
    "load_truthfulqa_csv",
]

#: Default TruthfulQA prompt, as in the ODESteer reference (full text ``"Q: {q}\nA: {a}"``).
TRUTHFULQA_PROMPT = "Q: {question}\nA: "
#: Default prompt for CAA / advanced-ai-risk A/B items; the completion is ``"(A)"`` etc.
CAA_PROMPT = "{question}\n\nAnswer: "

PathLike = str | os.PathLike[str]

_TQA_REQUIRED = ("Question", "Best Answer", "Correct Answers", "Incorrect Answers")
_CAA_KEYS = ("question", "answer_matching_behavior", "answer_not_matching_behavior")


# --------------------------------------------------------------------------- helpers


def _resolve(path: object, what: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidParameterError(
            f"`path` must be a str or os.PathLike pointing to {what}; got {type(path).__name__}."
        )
    p = Path(path).expanduser()
    if not p.exists():
        raise FileFormatError(f"File not found: {str(p)!r}. Expected {what}.")
    if not p.is_file():
        raise FileFormatError(f"{str(p)!r} is not a regular file. Expected {what}.")
    return p


def _read_text(p: Path, what: str) -> str:
    text = read_text(p, what)
    if not text.strip():
        raise FileFormatError(f"{str(p)!r} is empty. Expected {what}.")
    return text


def _read_csv(p: Path, required: Sequence[str], what: str) -> list[dict[str, str]]:
    """Read a CSV (BOM tolerated) and check that the ``required`` columns exist."""
    text = _read_text(p, what)
    header, rows = csv_records(text, repr(str(p)), required, what)
    if not rows:
        raise FileFormatError(
            f"{str(p)!r} has a header {header} but no data rows. Expected {what}."
        )
    return rows


def _read_json_records(p: Path, what: str) -> tuple[list[Any], str]:
    """Read a JSON list or JSON Lines file into ``(records, "json" | "jsonl")``."""
    text = _read_text(p, what)
    fmt = "json" if text.lstrip().startswith("[") else "jsonl"
    if fmt == "json":
        data = parse_json(text, repr(str(p)), what)
        if not isinstance(data, list):  # pragma: no cover - '[' always parses to a list
            raise FileFormatError(f"{str(p)!r} is not a JSON list. Expected {what}.")
        records = data
    else:
        records = [
            parse_json(
                line,
                f"{str(p)!r} line {lineno}",
                f"{what} as a JSON list or one JSON object per line",
            )
            for lineno, line in json_lines(text)
        ]
    if not records:
        raise FileFormatError(f"{str(p)!r} holds no records. Expected {what}.")
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise FileFormatError(
                f"{str(p)!r} record {i} is a {type(rec).__name__}, not an object. Expected {what}."
            )
    return records, fmt


def _split_answers(cell: str) -> list[str]:
    """Split a TruthfulQA answer list on ';', strip, drop empties and duplicates."""
    items = (a.strip() for a in cell.split(";"))
    return list(dict.fromkeys(a for a in items if a))


def _check_template(template: str, field_name: str, arg: str) -> None:
    if not isinstance(template, str):
        raise InvalidParameterError(f"`{arg}` must be a str; got {type(template).__name__}.")
    try:
        template.format(**{field_name: "x"})
    except (KeyError, IndexError, ValueError) as exc:
        raise InvalidParameterError(
            f"`{arg}` {template!r} must be a format string whose only field is {{{field_name}}} "
            f"(literal braces as '{{{{' and '}}}}'); formatting failed with {exc!r}."
        ) from exc


# --------------------------------------------------------------------------- TruthfulQA


def load_truthfulqa_csv(
    path: PathLike,
    *,
    prompt_template: str = TRUTHFULQA_PROMPT,
    pairing: Literal["cycle", "product", "best"] = "cycle",
    max_pairs_per_question: int | None = None,
    name: str = "truthfulqa",
) -> ContrastDataset:
    """Load ``TruthfulQA.csv`` as truthful-vs-untruthful answer pairs.

    Answer lists are split on ``";"`` (the file uses ``"; "``; a few rows end with a stray
    ``";"``), stripped, de-duplicated; an answer listed as both correct and incorrect (e.g.
    ``"Unknown"`` in three questions) is dropped from both lists. A question left with no
    correct or no incorrect answer is skipped (counted in ``metadata["n_skipped_questions"]``).

    Pairing rule (per question, with ``C`` correct and ``I`` incorrect answers):

    * ``"cycle"`` (default): ``max(|C|, |I|)`` pairs, pair ``k`` = ``(C[k % |C|], I[k % |I|])``,
      so every answer is used at least once and no question dominates (3687 pairs for v1).
    * ``"product"``: every correct answer with every incorrect answer, ``|C|·|I|`` pairs.
    * ``"best"``: one pair, ``Best Answer`` vs ``Best Incorrect Answer`` when that column exists
      (2025 file), else vs the first incorrect answer.

    ``max_pairs_per_question`` then keeps the first ``k`` pairs of each question.

    Each pair's ``group`` is the question's 0-based row index (as a string), so
    :meth:`ContrastDataset.split` / :meth:`ContrastDataset.folds` split by question (ODESteer
    uses a 2-fold split). Text = ``prompt_template.format(question=q) + answer``; the default
    gives ``"Q: {q}\\nA: {a}"``. Use ``prompt_template="{question}"`` before
    :meth:`ContrastDataset.with_chat_template`.

    Args:
        path: the CSV file (``utf-8`` with or without BOM).
        prompt_template: format string with a ``{question}`` field.
        pairing: ``"cycle"``, ``"product"`` or ``"best"`` (see above).
        max_pairs_per_question: optional cap ``>= 1``.
        name: the dataset name.

    Raises:
        FileFormatError: missing/empty file or missing columns ``Question``, ``Best Answer``,
            ``Correct Answers``, ``Incorrect Answers``.
        InvalidParameterError: bad ``pairing``, ``prompt_template`` or cap.
    """
    if pairing not in ("cycle", "product", "best"):
        raise InvalidParameterError(
            f"`pairing` must be 'cycle', 'product' or 'best'; got {pairing!r}."
        )
    if max_pairs_per_question is not None and (
        isinstance(max_pairs_per_question, bool)
        or not isinstance(max_pairs_per_question, int)
        or max_pairs_per_question < 1
    ):
        raise InvalidParameterError(
            f"`max_pairs_per_question` must be None or an int >= 1; got {max_pairs_per_question!r}."
        )
    _check_template(prompt_template, "question", "prompt_template")
    what = "a TruthfulQA CSV"
    p = _resolve(path, what)
    rows = _read_csv(p, _TQA_REQUIRED, what)
    has_best_incorrect = "Best Incorrect Answer" in rows[0]

    pairs: list[ContrastPair] = []
    skipped = 0
    for qid, row in enumerate(rows):
        question = row["Question"].strip()
        correct = _split_answers(row["Correct Answers"])
        incorrect = _split_answers(row["Incorrect Answers"])
        both = set(correct) & set(incorrect)
        correct = [a for a in correct if a not in both]
        incorrect = [a for a in incorrect if a not in both]
        if not question or not correct or not incorrect:
            skipped += 1
            continue
        if pairing == "cycle":
            n = max(len(correct), len(incorrect))
            combos = [(correct[k % len(correct)], incorrect[k % len(incorrect)]) for k in range(n)]
        elif pairing == "product":
            combos = [(c, i) for c in correct for i in incorrect]
        else:
            best = row["Best Answer"].strip() or correct[0]
            worst = row.get("Best Incorrect Answer", "").strip() if has_best_incorrect else ""
            combos = [(best, worst or incorrect[0])]
        if max_pairs_per_question is not None:
            combos = combos[:max_pairs_per_question]
        prompt = prompt_template.format(question=question)
        pairs.extend(ContrastPair(prompt, c, i, str(qid)) for c, i in combos if c != i)

    if not pairs:
        raise FileFormatError(f"{str(p)!r} yielded no usable question. Expected {what}.")
    metadata = {
        "source": str(p),
        "dataset": "TruthfulQA (Lin, Hilton & Evans, 2021)",
        "licence": "Apache-2.0",
        "pairing": pairing,
        "prompt_template": prompt_template,
        "n_questions": str(len(rows) - skipped),
        "n_skipped_questions": str(skipped),
        "group": "0-based question row index",
    }
    return ContrastDataset(name, tuple(pairs), metadata)


# --------------------------------------------------------------------------- CAA / Anthropic


def _answer_list(value: object) -> list[str] | None:
    if isinstance(value, str):
        return [value.strip()] if value.strip() else None
    if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
        return [v.strip() for v in value]
    return None


def load_caa_ab_json(
    path: PathLike,
    *,
    prompt_template: str = CAA_PROMPT,
    name: str | None = None,
) -> ContrastDataset:
    """Load CAA A/B items (JSON list) or Anthropic advanced-ai-risk evals (JSON Lines).

    Each record ``{"question", "answer_matching_behavior", "answer_not_matching_behavior"}``
    gives one pair: ``prompt = prompt_template.format(question=question)``, ``positive`` = the
    matching answer letter and ``negative`` = the non-matching one, both stripped (Anthropic's
    files write ``" (A)"`` with a leading space, CAA's ``"(A)"``). So with the default template
    the positive text is ``question + "\\n\\nAnswer: (A)"`` and the last token is the letter's
    closing parenthesis. When an answer field is a list, every matching answer is paired with
    every non-matching one. ``group`` is the 0-based record index.

    Args:
        path: a ``.json`` list or ``.jsonl`` file (the format is detected from the content).
        prompt_template: format string with a ``{question}`` field; use ``"{question}"`` before
            :meth:`ContrastDataset.with_chat_template`.
        name: dataset name; default is the parent folder for CAA (``caa/<behaviour>/...``) or
            the file stem for JSON Lines.

    Raises:
        FileFormatError: missing/empty/invalid file, or records without the three keys (e.g.
            CAA's ``test_dataset_open_ended.json``, which has questions only).
    """
    _check_template(prompt_template, "question", "prompt_template")
    what = f"a CAA A/B JSON list or advanced-ai-risk JSON Lines file with keys {list(_CAA_KEYS)}"
    p = _resolve(path, what)
    records, fmt = _read_json_records(p, what)
    pairs: list[ContrastPair] = []
    for i, rec in enumerate(records):
        missing = [k for k in _CAA_KEYS if k not in rec]
        if missing:
            hint = (
                " (this looks like an open-ended file: it has questions but no answers)"
                if set(rec) == {"question"}
                else ""
            )
            raise FileFormatError(
                f"{str(p)!r} record {i} lacks key(s) {missing}; found keys {sorted(rec)}{hint}. "
                f"Expected {what}."
            )
        question = rec["question"]
        pos = _answer_list(rec["answer_matching_behavior"])
        neg = _answer_list(rec["answer_not_matching_behavior"])
        if not isinstance(question, str) or pos is None or neg is None:
            raise FileFormatError(
                f"{str(p)!r} record {i}: `question` must be a string and the answers non-empty "
                f"strings or lists of strings; got question={type(question).__name__}, "
                f"answer_matching_behavior={rec['answer_matching_behavior']!r:.40}, "
                f"answer_not_matching_behavior={rec['answer_not_matching_behavior']!r:.40}."
            )
        prompt = prompt_template.format(question=question)
        pairs.extend(ContrastPair(prompt, a, b, str(i)) for a in pos for b in neg if a != b)
    if name is None:
        name = p.stem if fmt == "jsonl" else (p.parent.name or p.stem)
    metadata = {
        "source": str(p),
        "format": fmt,
        "prompt_template": prompt_template,
        "n_items": str(len(records)),
        "group": "0-based record index",
    }
    return ContrastDataset(name, tuple(pairs), metadata)


# --------------------------------------------------------------------------- RepE facts


def _parse_label(value: str) -> bool | None:
    v = value.strip().lower()
    if v in ("1", "true", "t", "yes"):
        return True
    if v in ("0", "false", "f", "no"):
        return False
    return None


def load_repe_facts_csv(
    path: PathLike, *, prompt: str = "", name: str = "repe_facts"
) -> ContrastDataset:
    """Load RepE's ``facts_true_false.csv`` as true-vs-false statement pairs.

    The file lists unrelated true (``label`` 1) and false (``label`` 0) statements. Pairing
    rule: the ``i``-th true statement (in file order) with the ``i``-th false one; when the
    counts differ the surplus is dropped (``metadata["n_unpaired"]``). The two statements of a
    pair are usually about different topics, so the contrast is "true vs false" on average, not
    a minimal edit (the built-in ``"facts"`` set has minimal edits). Note that RepE itself used
    this file differently (honest vs dishonest persona prompts over the true statements).

    Args:
        path: the CSV with columns ``statement`` and ``label`` (1/0 or true/false).
        prompt: a prompt shared by all pairs (default none, text = statement).
        name: dataset name.

    Raises:
        FileFormatError: missing/empty file, missing columns, or a label that is not 0/1.
    """
    if not isinstance(prompt, str):
        raise InvalidParameterError(f"`prompt` must be a str; got {type(prompt).__name__}.")
    what = "a RepE facts CSV with columns ['statement', 'label'] (label 1 = true, 0 = false)"
    p = _resolve(path, what)
    rows = _read_csv(p, ("statement", "label"), what)
    trues: list[str] = []
    falses: list[str] = []
    for i, row in enumerate(rows):
        label = _parse_label(row["label"])
        if label is None:
            raise FileFormatError(
                f"{str(p)!r} data row {i + 1} has label {row['label']!r}; expected 1/0 or "
                "true/false."
            )
        statement = row["statement"].strip()
        if statement:
            (trues if label else falses).append(statement)
    n = min(len(trues), len(falses))
    if n == 0:
        raise FileFormatError(
            f"{str(p)!r} has {len(trues)} true and {len(falses)} false statements; need at least "
            "one of each."
        )
    pairs = tuple(
        ContrastPair(prompt, t, f, str(i))
        for i, (t, f) in enumerate(zip(trues, falses, strict=False))
    )
    metadata = {
        "source": str(p),
        "dataset": "RepE facts_true_false (Zou et al., 2023)",
        "licence": "MIT",
        "pairing": "i-th true statement with i-th false statement, file order",
        "n_unpaired": str(abs(len(trues) - len(falses))),
    }
    return ContrastDataset(name, pairs, metadata)


# --------------------------------------------------------------------------- generic


def load_pairs(path: PathLike, *, name: str | None = None) -> ContrastDataset:
    """Load your own contrast pairs from JSON Lines, a JSON list, or CSV.

    The format follows the suffix: ``.csv`` is read as CSV (header row, BOM tolerated); anything
    else (``.jsonl``, ``.json``) as a JSON list or one JSON object per line. Required
    columns/keys: ``positive`` and ``negative``; optional: ``prompt`` (default ``""``) and
    ``group``. Other columns are ignored. Text = ``prompt + completion``, so include any
    separating space yourself.

    Args:
        path: the file.
        name: dataset name (default: the file stem).

    Raises:
        FileFormatError: missing/empty file, missing columns, non-string values, or a pair with
            identical or empty completions.
    """
    what = "a JSONL/JSON/CSV file with columns ['positive', 'negative'] and optional ['prompt']"
    p = _resolve(path, what)
    records: list[Any]
    if p.suffix.lower() == ".csv":
        records = _read_csv(p, ("positive", "negative"), what)
    else:
        records = _read_json_records(p, what)[0]
    pairs: list[ContrastPair] = []
    for i, rec in enumerate(records):
        missing = [k for k in ("positive", "negative") if k not in rec]
        if missing:
            raise FileFormatError(
                f"{str(p)!r} record {i} lacks {missing}; found keys {sorted(rec)}. Expected {what}."
            )
        prompt = rec.get("prompt", "")
        prompt = "" if prompt is None else prompt
        group = rec.get("group")
        group = None if group in (None, "") else str(group)
        try:
            pairs.append(ContrastPair(prompt, rec["positive"], rec["negative"], group))
        except InvalidParameterError as exc:
            raise FileFormatError(f"{str(p)!r} record {i} is not a valid pair: {exc}") from exc
    return ContrastDataset(name or p.stem, tuple(pairs), {"source": str(p)})
