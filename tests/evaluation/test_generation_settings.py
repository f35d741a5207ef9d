"""Seeds and decoding settings shared by the generation tasks."""

from __future__ import annotations

import pytest

from lens_odesteer.errors import InvalidParameterError
from lens_odesteer.evaluation.sampling import SamplingConfig
from lens_odesteer.evaluation.tasks import make_task
from lens_odesteer.evaluation.tasks._generation import SampleSettings


def test_seeds_by_phase_and_config_entries() -> None:
    s = SampleSettings.build([3, 4], [7], SamplingConfig(max_new_tokens=5, stop_strings=("\n",)))
    assert s.seeds_for("val") == (7,) and s.seeds_for("test") == (3, 4)
    cfg = s.config(per="question")
    assert cfg["samples_per_question"] == 2 and cfg["seeds"] == [3, 4]
    assert cfg["sampling"]["max_new_tokens"] == 5 and cfg["sampling"]["stop_strings"] == ["\n"]


@pytest.mark.parametrize("bad", [(), "01", (0, 1.5), (True,)])
def test_bad_seeds_are_refused(bad: object) -> None:
    with pytest.raises(InvalidParameterError, match="seeds"):
        SampleSettings.build(bad, (0,), SamplingConfig())  # type: ignore[arg-type]


@pytest.mark.parametrize("task", ["detox", "sentiment", "truthfulqa_gen"])
def test_tasks_refuse_empty_validation_seeds(task: str) -> None:
    with pytest.raises(InvalidParameterError, match="val_seeds"):
        make_task(task, val_seeds=())
