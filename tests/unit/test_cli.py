"""The command line: help for every flag, choices listed from the code, and bad options refused
with one line (exit code 2) before any model is loaded."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

import lens_odesteer as lo
from lens_odesteer import cli
from lens_odesteer.evaluation.cli_eval import DEFAULT_OUT, LAYER_SETTINGS, plan_eval
from lens_odesteer.evaluation.methods import ALL_METHODS
from lens_odesteer.evaluation.tasks import TASKS, task_options


@pytest.fixture(autouse=True)
def _no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a model in this module is a failure: every check must come before it."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("lens_odesteer.models.loading.load_model", refuse)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found.update({f"{name} {k}": v for k, v in _subparsers(sub).items()})
    return found


def test_every_flag_has_help() -> None:
    commands = _subparsers(cli._parser())
    assert {"demo", "eval", "data", "data fetch", "data list", "data check"} <= set(commands)
    for name, parser in commands.items():
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"`lens-odesteer {name} {'/'.join(action.option_strings)}`"


def _choices_are_listed(text: str) -> None:
    for method in ALL_METHODS:
        assert method in text
    for task in TASKS:
        assert f"{task}:" in text
        for key in task_options(task):
            assert f"{key} [" in text
    for key in LAYER_SETTINGS:
        assert f"{key} [" in text


def test_eval_help_lists_methods_and_set_keys(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["eval", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    _choices_are_listed(out)
    assert "runs/eval/<task>" in out and "--max-ppl-ratio" in out


def test_eval_list_prints_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["eval", "list"]) == 0
    _choices_are_listed(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["truthfulqa"], "Unknown task 'truthfulqa'"),
        (["truthfulqa_mc", "--grid", "0.1,abc"], "--grid expects comma-separated positive"),
        (["truthfulqa_mc", "--grid", "0.1,-2"], "got '0.1,-2'"),
        (["truthfulqa_mc", "--grid", "nan"], "--grid"),
        (["truthfulqa_mc", "--methods", "CAA,Nope"], "Unknown method 'Nope'. Expected one of"),
        (["truthfulqa_mc", "--methods", ","], "`methods` is empty"),
        (["truthfulqa_mc", "--set", "n_tset=3"], "--set n_tset=... is not an option of task"),
        (["truthfulqa_mc", "--set", "n_test"], "--set expects KEY=VALUE"),
        (["truthfulqa_mc", "--set", 'n_test="many"'], "expected a value like its default 12"),
        (["truthfulqa_mc", "--set", "seed=3"], "use --seed instead"),
        (["all", "--set", "nope=1"], "--set nope=... is an option of no task"),
        (["layers", "--layers", "0,x"], "--layers expects comma-separated layer indices"),
        (["layers", "--set", 'task="nope"'], "--set task='nope' for 'layers'"),
        (["truthfulqa_mc", "--grid", ""], "--grid expects comma-separated positive"),
        (["truthfulqa_mc", "--grid", "inf"], "--grid expects comma-separated positive"),
        (["truthfulqa_mc", "--set", "bogus=1"], "--set bogus=... is not an option of task"),
        (["truthfulqa_mc", "--max-ppl-ratio", "nan"], "--max-ppl-ratio must be a finite number"),
        (["truthfulqa_mc", "--max-ppl-ratio", "0.5"], "--max-ppl-ratio must be a finite number"),
        (["truthfulqa_mc", "--kl-budget", "-1"], "--kl-budget must be a finite number > 0"),
        (["truthfulqa_mc", "--n-boot", "0"], "--n-boot must be an int >= 1"),
        (["truthfulqa_mc", "--seed", "-1"], "--seed must be an int >= 0"),
        (["truthfulqa_mc", "--layer", "-3"], "--layer must be a layer index"),
        (["truthfulqa_mc", "--quick", "--set", "n_test=-5"], "`n_test` must be an int >= 1"),
        (["truthfulqa_mc", "--set", "n_val=0"], "`n_val` must be an int >= 1; got 0"),
    ],
)
def test_bad_eval_options_fail_in_one_line_before_the_model_loads(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["eval", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lens-odesteer: error: ") and err.count("\n") == 1
    assert expected in err


def test_out_that_is_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("")
    for out in (blocker, blocker / "below"):
        assert cli.main(["eval", "truthfulqa_mc", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"--out {str(out)!r}" in err and err.count("\n") == 1


def test_missing_data_is_reported_before_the_model_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["eval", "sentiment", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "realtoxicityprompts_decodingtrust/nontoxic.jsonl" in err and str(tmp_path) in err
    assert "lens-odesteer data fetch --only realtoxicityprompts_decodingtrust" in err
    assert err.count("\n") == 1


def _plan(*argv: str) -> dict[str, tuple[dict[str, object], Path]]:
    plan = plan_eval(cli._parser().parse_args(["eval", *argv]))
    return {name: (kwargs, folder) for name, (_, kwargs, folder) in plan.tasks.items()}


def test_output_folder_per_task_by_default(eval_data: Path, tmp_path: Path) -> None:
    data = ["--data-dir", str(eval_data)]
    assert _plan("sentiment", *data)["sentiment"][1] == DEFAULT_OUT / "sentiment"
    assert _plan("detox", "--out", str(tmp_path / "x"), *data)["detox"][1] == tmp_path / "x"
    every = _plan("all", "--set", 'behaviors=["refusal"]', "--set", "n_test=3", *data)
    assert {name: folder for name, (_, folder) in every.items()} == {
        name: DEFAULT_OUT / name for name in TASKS
    }
    # With 'all', a key goes to the tasks that have it.
    assert every["behaviors"][0]["behaviors"] == ("refusal",)
    assert "behaviors" not in every["truthfulqa_mc"][0]
    assert all(kwargs["n_test"] == 3 for kwargs, _ in every.values())
    outs = _plan("all", "--out", str(tmp_path / "runs"), *data)
    assert outs["detox"][1] == tmp_path / "runs" / "detox"


def test_behaviors_fit_on_every_item_but_validation(eval_data: Path) -> None:
    """``--set n_fit=null``: the full-size behaviour runs fit on all generate items but n_val."""
    from lens_odesteer.evaluation.tasks import make_task

    plan = _plan(
        "behaviors",
        "--set",
        'behaviors=["refusal", "myopic-reward"]',
        "--set",
        "n_fit=null",
        "--set",
        "n_test=null",
        "--data-dir",
        str(eval_data),
    )
    kwargs = plan["behaviors"][0]
    task = make_task("behaviors", **kwargs)
    splits = {s.name: s for s in task.splits()}
    assert set(splits) == {"refusal", "myopic-reward"}
    for name, split in splits.items():
        n_items = len(json.loads((eval_data / "caa" / name / "generate_dataset.json").read_text()))
        info = split.info
        assert info["n_val"] == 4 and info["n_test"] == 50, name
        # Every two-choice item is used once (a few records of a set may not be A/B).
        assert info["n_fit"] + info["n_val"] <= n_items and info["n_fit"] > 0.9 * n_items, name
        assert len(split.pos_texts) == len(split.neg_texts) == info["n_fit"]
        fit_q = {t.split("\n\nAnswer: (")[0] for t in split.pos_texts}
        assert not fit_q & {u.question for u in split.val}, name
    with pytest.raises(lo.InvalidParameterError, match=r"Unknown behaviour\(s\) \['sycophantic'\]"):
        make_task("behaviors", data_dir=eval_data, behaviors=("sycophantic",))
