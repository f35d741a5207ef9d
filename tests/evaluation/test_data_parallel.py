"""Data-parallel evaluation: two ranks under ``accelerate launch`` (gloo, CPU) give the same
summary, paired and unit tables as one process, each rank scoring part of the work; a rerun
reuses everything; shards and launcher variables are checked."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lens_odesteer.errors import FileFormatError, InvalidParameterError
from lens_odesteer.evaluation.distributed import Shard, current_shard, local_device
from lens_odesteer.evaluation.store import PartStore

WORKER = Path(__file__).with_name("dp_worker.py")
ACCELERATE = Path(sys.executable).with_name("accelerate")
LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    env["OMP_NUM_THREADS"] = "1"
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _launch(out: Path) -> None:
    # On CPU, accelerate's `--cpu` means an MPI launch; `--multi_gpu` is its torchrun launcher,
    # which starts plain processes (gloo) when there is no GPU.
    _run(
        [
            str(ACCELERATE),
            "launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "--main_process_port",
            str(_free_port()),
            str(WORKER),
            str(out),
        ]
    )


def _ranks(out: Path) -> list[dict[str, int]]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))]


@pytest.mark.slow
@pytest.mark.skipif(not ACCELERATE.exists(), reason="accelerate's launcher is not installed")
def test_two_ranks_match_one_process_and_resume(tmp_path: Path) -> None:
    single, parallel = tmp_path / "single", tmp_path / "parallel"
    _run([sys.executable, str(WORKER), str(single)])
    _launch(parallel)
    ranks = _ranks(parallel)
    assert [r["rank"] for r in ranks] == [0, 1] and {r["world"] for r in ranks} == {2}
    total = _ranks(single)[0]["computed"]
    # each rank scored part of the work, and together exactly what one process scored
    assert all(r["computed"] > 0 for r in ranks)
    assert sum(r["computed"] for r in ranks) == total
    for name in ("summary.csv", "paired.csv", "units.csv", "diagnostic.csv"):
        a = pd.read_csv(single / name)
        b = pd.read_csv(parallel / name)
        # the scoring wall time is the only column that may differ
        a, b = a.drop(columns="wall_s", errors="ignore"), b.drop(columns="wall_s", errors="ignore")
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    for name in ("summary.csv", "paired.csv"):
        assert (single / name).read_bytes() == (parallel / name).read_bytes()
    assert json.loads((parallel / "results.json").read_text())["processes"] == 2
    assert not list(parallel.rglob("*.tmp"))
    # a rerun of the launch reuses every part on both ranks
    _launch(parallel)
    assert [r["computed"] for r in _ranks(parallel)] == [0, 0]
    assert (single / "summary.csv").read_bytes() == (parallel / "summary.csv").read_bytes()


class _Alone(Shard):
    """A shard of a pretend group: barriers return at once (no other process)."""

    def barrier(self) -> None:
        pass


def test_shard_owns_items_round_robin(tmp_path: Path) -> None:
    PartStore(tmp_path, {"a": 1}, shard=_Alone(0, 3))  # rank 0 prepares the folder
    store = PartStore(tmp_path, {"a": 1}, shard=_Alone(1, 3))
    assert [store.owns() for _ in range(7)] == [False, True, False, False, True, False, False]
    assert [Shard(0, 2).owner(i) for i in range(4)] == [0, 1, 0, 1]
    single = PartStore(tmp_path / "one", {"a": 1})
    assert all(single.owns() for _ in range(5))
    with pytest.raises(FileFormatError, match="same command"):
        PartStore(tmp_path, {"a": 2}, shard=_Alone(1, 3))


def test_wait_whole_reads_a_sealed_file_and_times_out(tmp_path: Path) -> None:
    store = PartStore(tmp_path, {"a": 1}, log=lambda line: None)
    frame = store.put("k", pd.DataFrame({"x": [1.0, 2.0]}))
    assert store.wait("k", timeout_s=1.0).equals(frame)
    unsealed = tmp_path / "parts" / "late.csv"
    unsealed.write_text("x\n1\n")  # written but not sealed: its owner is still working
    with pytest.raises(TimeoutError, match="waited"):
        store.wait_whole(unsealed, what="part", timeout_s=0.2)
    assert store.damaged == []  # waiting is silent


@pytest.mark.parametrize(
    ("rank", "world", "match"),
    [(2, 2, "out of range"), (-1, 2, "rank"), (0, 0, "world"), (True, 2, "rank")],
)
def test_shard_refuses_bad_ranks(rank: int, world: int, match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        Shard(rank, world)


def test_current_shard_reads_the_launcher_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in LAUNCH_VARS:
        monkeypatch.delenv(var, raising=False)
    assert current_shard() == Shard(0, 1)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert current_shard().world == 1
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(InvalidParameterError, match="WORLD_SIZE='two' is not an integer"):
        current_shard()
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(InvalidParameterError, match="torchrun"):
        current_shard()  # RANK missing
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(InvalidParameterError, match="out of range"):
        current_shard()
    assert local_device("cpu") == "cpu"


def test_evaluate_needs_a_folder_to_share(monkeypatch: pytest.MonkeyPatch) -> None:
    from lens_odesteer.evaluation import evaluate

    with pytest.raises(InvalidParameterError, match="out_dir"):
        evaluate("sentiment", object(), quick=True, shard=Shard(0, 2))
