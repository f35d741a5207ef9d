"""Soak test (slow, about two to three minutes): many steering blocks, saves and loads, and an
evaluation killed at random points and resumed.

* In process: sequential ``steering`` blocks (some raising inside), saves interrupted at random
  (the rename fails as a Ctrl-C would), loads; every block leaves no hook behind, every steered
  output equals the reference, and every file on disk is the last complete save.
* Evaluation: ``tests/reliability/_soak_eval.py`` runs in a subprocess that is killed
  (SIGKILL) at random points; between runs a random stored file (part, seal, activation cache or
  steerer) may be damaged. The final tables must equal those of an uninterrupted run and every
  damage must be reported as recomputed, never read as whole.

The counts are printed (``-s``) and recorded in ``COUNTS``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.errors import LensOdesteerError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
HOOK = "blocks.1.hook_resid_post"
STEER_BUDGET_S = 35.0
EVAL_BUDGET_S = 70.0
COUNTS: dict[str, int] = {}

pytestmark = pytest.mark.slow


def _count(key: str, n: int = 1) -> None:
    COUNTS[key] = COUNTS.get(key, 0) + n


# -- steering blocks, saves and loads ------------------------------------------------------------
class _Interrupted(BaseException):
    """Stands for a Ctrl-C during a save."""


def test_soak_steering_saves_and_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(0)
    model = lo.tiny_bridge()
    tokens = model.to_tokens(["The cat sat", "A dog ran far"])
    gen = torch.Generator().manual_seed(0)
    pos, neg = torch.randn(24, 64, generator=gen) + 0.5, torch.randn(24, 64, generator=gen) - 0.5
    makers = {
        "CAA": lo.CAA,
        "ODESteer": lambda: lo.ODESteer(lo.sketch_barrier(n_components=128), steps=4),
        "MiMiC": lo.MiMiC,
    }
    fitted = {name: make().fit(pos, neg) for name, make in makers.items()}
    reference = {}
    for name, steerer in fitted.items():
        with lo.steering(model, {HOOK: steerer}, strength=0.1, scope="all"):
            reference[name] = model(tokens)
    on_disk = {name: fitted[name].save(tmp_path / name) for name in fitted}
    real_replace = os.replace
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < STEER_BUDGET_S:
        name = rng.choice(sorted(fitted))
        action = rng.random()
        if action < 0.4:  # a steering block, sometimes raising inside
            raises = rng.random() < 0.3
            try:
                with lo.steering(model, {HOOK: fitted[name]}, strength=0.1, scope="all"):
                    out = model(tokens)
                    if raises:
                        raise RuntimeError("user code failed")
                torch.testing.assert_close(out, reference[name], rtol=0, atol=0)
            except RuntimeError as exc:
                assert raises and "user code failed" in str(exc)
                _count("steer_raised")
            assert all(not p.fwd_hooks for p in model.hook_dict.values()), "a hook stayed"
            _count("steering_blocks")
        elif action < 0.7:  # a save, interrupted at random before its rename
            interrupted = rng.random() < 0.5

            def replace(src: Any, dst: Any) -> None:
                raise _Interrupted

            if interrupted:
                monkeypatch.setattr(os, "replace", replace)
            try:
                fitted[name].save(on_disk[name], provenance={"n": rng.randint(0, 9)})
            except _Interrupted:
                assert interrupted
                _count("saves_interrupted")
            finally:
                monkeypatch.setattr(os, "replace", real_replace)
            assert not list(tmp_path.glob(".*")), "a temporary file was left behind"
            _count("saves")
        else:  # a load of whatever is on disk: always the last complete save
            loaded = lo.load_steerer(on_disk[name])
            with lo.steering(model, {HOOK: loaded}, strength=0.1, scope="all"):
                torch.testing.assert_close(model(tokens), reference[name], rtol=0, atol=0)
            _count("loads")
    print(f"\nsoak steering: {dict(sorted(COUNTS.items()))}")
    assert COUNTS.get("steering_blocks", 0) >= 20 and COUNTS.get("loads", 0) >= 10


# -- evaluation killed and resumed ---------------------------------------------------------------
def _driver(out: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    with open(log, "wb") as err:  # a file, not a pipe: a full pipe would stall the child
        return subprocess.Popen(
            [sys.executable, str(HERE / "_soak_eval.py"), str(out)],
            cwd=ROOT,
            env=env,
            stdout=err,  # the runner's progress lines, which name recomputed files
            stderr=subprocess.STDOUT,
        )


def _stamps(out: Path) -> dict[Path, int]:
    """Modification times of the files under ``out``, listed while the child writes there.

    A temporary file the child renames or removes between the listing and the ``stat`` is
    simply not counted.
    """
    stamps: dict[Path, int] = {}
    if not out.exists():
        return stamps
    for p in out.rglob("*"):
        try:
            if p.is_file():
                stamps[p] = p.stat().st_mtime_ns
        except FileNotFoundError:
            continue
    return stamps


def _writes_since(out: Path, before: dict[Path, int]) -> int:
    """Files created or rewritten since ``before`` was taken (this run's progress)."""
    return sum(1 for p, t in _stamps(out).items() if before.get(p) != t)


def _damage(rng: random.Random, out: Path) -> tuple[str, Path] | None:
    """Damage one sealed file at random; return how and which (None: nothing to damage)."""
    files = [
        p
        for p in out.rglob("*")
        if p.is_file()
        and p.parent.name in ("parts", "cache", "steerers")
        and not p.name.startswith(".")
        and p.with_name(p.name + ".seal").exists()
    ]
    if not files:
        return None
    target = rng.choice(sorted(files))
    data = target.read_bytes()
    how = rng.choice(["truncate", "empty", "flip", "seal"] if data else ["seal"])
    if how == "truncate":
        target.write_bytes(data[: rng.randrange(max(1, len(data)))])
    elif how == "empty":
        target.write_bytes(b"")
    elif how == "flip":
        i = rng.randrange(len(data))
        target.write_bytes(data[:i] + bytes([data[i] ^ 0x5A]) + data[i + 1 :])
    else:
        seal = target.with_name(target.name + ".seal")
        seal.write_bytes(seal.read_bytes()[: rng.randrange(1, 20)])
    return how, target


def _tables(out: Path) -> dict[str, pd.DataFrame]:
    tables = {}
    for name in ("summary.csv", "paired.csv", "diagnostic.csv", "units.csv"):
        frame = pd.read_csv(out / name, keep_default_na=False)
        tables[name] = frame.drop(columns=[c for c in ("wall_s",) if c in frame])
    return tables


def _chosen(out: Path) -> dict[str, Any]:
    """Each method's chosen strength and diagnostics from results.json (timings left out)."""
    chosen = json.loads((out / "results.json").read_text())["chosen"]
    return {key: {k: v for k, v in info.items() if k != "fit_s"} for key, info in chosen.items()}


def test_soak_evaluation_resumes_after_random_kills(tmp_path: Path) -> None:
    sys.path.insert(0, str(HERE))
    try:
        import _soak_eval  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(HERE))
    rng = random.Random(16)
    reference_dir = tmp_path / "reference"
    _soak_eval.run(reference_dir)
    expected = _tables(reference_dir)
    expected_chosen = _chosen(reference_dir)
    n_files = len(_stamps(reference_dir))
    counts = {"evaluations": 0, "runs": 0, "killed": 0, "damaged": 0, "damage_reported": 0}
    t0 = time.perf_counter()
    while counts["evaluations"] == 0 or time.perf_counter() - t0 < EVAL_BUDGET_S:
        # One evaluation, from an empty folder to its tables, killed and damaged on the way.
        out = tmp_path / f"resumed{counts['evaluations']}"
        pending: dict[Path, str] = {}  # damaged file -> how, until a run says it recomputes it
        expect_writes = n_files  # about how many files the next run still writes
        while True:
            kill = time.perf_counter() - t0 < EVAL_BUDGET_S
            target = rng.randint(1, max(1, expect_writes))
            before = _stamps(out)
            log = tmp_path / f"run{counts['runs']}.log"
            proc = _driver(out, log)
            counts["runs"] += 1
            killed = False
            while proc.poll() is None:
                if kill and _writes_since(out, before) >= target:
                    time.sleep(rng.random() * 0.05)
                    proc.send_signal(signal.SIGKILL)
                    killed = True
                    break
                time.sleep(0.005)
            proc.wait()
            text = log.read_text(errors="replace")
            for path in [p for p in pending if p.name in text]:
                del pending[path]
                counts["damage_reported"] += 1
            if not killed:
                assert proc.returncode == 0, text
                break
            counts["killed"] += 1
            # Kill the next run within what is probably left (resumed runs rewrite a few
            # output files besides the remaining work).
            expect_writes = max(8, expect_writes - target + 8)
            if rng.random() < 0.5:
                damaged = _damage(rng, out)
                if damaged is not None:
                    pending[damaged[1]] = damaged[0]
                    counts["damaged"] += 1
        assert not pending, f"damaged files reused without a word: {pending}"
        got = _tables(out)
        for name, frame in expected.items():
            pd.testing.assert_frame_equal(got[name], frame, check_exact=True, obj=name)
        assert _chosen(out) == expected_chosen
        assert not [p for p in out.rglob(".*") if p.is_file()], "temporary files left behind"
        counts["evaluations"] += 1
    COUNTS.update({f"eval_{k}": v for k, v in counts.items()})
    print(f"\nsoak evaluation: {counts}")
    assert counts["killed"] >= 3 and counts["damage_reported"] == counts["damaged"]


def test_store_never_reads_a_damaged_part_as_whole(tmp_path: Path) -> None:
    """The soak's claim in one place: each damage kind makes ``reuse`` recompute, with a line."""
    from lens_odesteer.evaluation.store import PartStore

    frame = pd.DataFrame({"unit": range(12), "lp": [0.5 * i for i in range(12)], "prompt": "x"})
    for how in ("truncate", "empty", "flip", "seal", "no-seal", "other-config"):
        lines: list[str] = []
        store = PartStore(tmp_path / how, {"a": 1}, log=lines.append)
        store.put("k", frame)
        path = store.path("k")
        data = path.read_bytes()
        if how == "truncate":
            path.write_bytes(data[: len(data) // 2])
        elif how == "empty":
            path.write_bytes(b"")
        elif how == "flip":
            path.write_bytes(data[:-3] + b"9" + data[-2:])
        elif how == "seal":
            path.with_name(path.name + ".seal").write_text("{")
        elif how == "no-seal":
            path.with_name(path.name + ".seal").unlink()
        else:
            (tmp_path / how / "parts" / "fingerprint.json").write_text("[")
            store = PartStore(tmp_path / how, {"a": 2}, log=lines.append)
        assert store.reuse("k") is None, how
        assert lines and "recomputing" in lines[-1], how
        _count("store_damages_detected")
    with pytest.raises(LensOdesteerError):
        PartStore(tmp_path / "truncate", {"a": 3})  # another configuration: refused
