"""The evaluation layer sweep never fits and tests the same TruthfulQA question (real data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lens_odesteer.evaluation.layers import grouped_fit_test
from lens_odesteer.evaluation.tasks.truthfulqa_mc import TruthfulQAMC


@pytest.fixture(scope="module")
def task(eval_data: Path) -> TruthfulQAMC:
    # Three correct and three incorrect answers per question: several rows share a question.
    return TruthfulQAMC(data_dir=eval_data, max_answers_per_side=3)


@pytest.mark.parametrize("max_texts", [None, 600])
def test_no_truthfulqa_question_straddles_fit_and_test(
    task: TruthfulQAMC, max_texts: int | None
) -> None:
    for split in task.splits():
        pos_groups, _ = split.row_groups()
        assert len(set(pos_groups)) < len(pos_groups)  # the data really has shared questions
        data = grouped_fit_test(split, test_size=0.3, max_texts=max_texts, seed=0)
        parts = data.parts
        fit = {data.pos_groups[i] for i in parts.pos_fit} | {
            data.neg_groups[i] for i in parts.neg_fit
        }
        test = {data.pos_groups[i] for i in parts.pos_test} | {
            data.neg_groups[i] for i in parts.neg_test
        }
        assert fit and test and not fit & test, f"{split.name}: questions {sorted(fit & test)[:5]}"
        n = len(data.pos_texts) + len(data.neg_texts)
        assert max_texts is None or n <= max_texts
        # The texts are those of the kept questions: each starts with its question's prompt.
        by_qid = {q.qid: q.prompt for q in task.questions}
        for texts, groups in ((data.pos_texts, data.pos_groups), (data.neg_texts, data.neg_groups)):
            assert all(t.startswith(by_qid[g]) for t, g in zip(texts, groups, strict=True))
