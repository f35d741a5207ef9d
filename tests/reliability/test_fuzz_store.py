"""Deterministic fuzzing of the evaluation store: parts, activation caches, steerers, seals and
the configuration fingerprint.

A store is filled (parts with awkward text, NaN and many rows; a sealed activation cache; a
sealed steerer), then damaged in seeded ways: truncated (also exactly at a row boundary, which
leaves valid CSV), extended, emptied, bytes flipped, seals removed, cut, retyped or swapped
between files, contents swapped between parts, a folder in place of a part, the fingerprint
damaged or another configuration's. Reopening the store must then either refuse with a
:class:`~lens_odesteer.errors.LensOdesteerError` (another configuration only) or, for every
stored item, give back exactly what was written or say it recomputes it; a damaged item is
never read as whole.
"""

from __future__ import annotations

import io
import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

import lens_odesteer as lo
from lens_odesteer.errors import LensOdesteerError
from lens_odesteer.evaluation.runner import _cached_acts
from lens_odesteer.evaluation.store import PartStore, seal_path

DEFAULT_CASES = 240
SLOW_CASES = 2400
FINGERPRINT = {"task": "fuzz", "layer": 1, "grid": [0.1, 0.2]}
KEYS = [f"fold{k}|{m}|{ph}|0|0.1" for k in (0, 1) for m in ("CAA", "ODESteer") for ph in ("val",)]
OUTCOMES: dict[str, int] = {}
TEXTS = ["plain", "a,b", 'say "hi"', "two\nlines", "sep\u2028x", "nel\x85y", "", "None", "1e5"]


def _frame(rng: random.Random, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "unit": list(range(n)),
            "seed": 0,
            "lp": [rng.choice([rng.uniform(-9, 0), float("nan")]) for _ in range(n)],
            "continuation": [rng.choice(TEXTS) for _ in range(n)],
            "method": "CAA",
        }
    )


def _build(root: Path, rng: random.Random) -> dict[str, Any]:
    """A store with every kind of sealed file; returns what was written."""
    store = PartStore(root, FINGERPRINT, log=lambda line: None)
    parts = {key: _frame(rng, rng.randint(1, 30)) for key in KEYS}
    for key, frame in parts.items():
        store.put(key, frame)
    cache = root / "cache" / "fold0-pos.pt"
    cache.parent.mkdir(parents=True, exist_ok=True)
    acts = torch.randn(7, 5, generator=torch.Generator().manual_seed(rng.randint(0, 99)))
    torch.save(acts, cache)
    store.seal(cache, rows=7)
    gen = torch.Generator().manual_seed(0)
    steerer = lo.CAA().fit(torch.randn(6, 5, generator=gen) + 1, torch.randn(6, 5, generator=gen))
    path = steerer.save(root / "steerers" / "fold0-CAA.safetensors")
    store.seal(path)
    return {"parts": parts, "cache": (cache, acts), "steerer": (path, steerer)}


# -- damage ---------------------------------------------------------------------------------------
def _files(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not p.name.endswith(".seal") and p.name != "fingerprint.json"
    )


def _part_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "parts").glob("*.csv") if p.is_file())


def _seals(root: Path) -> list[Path]:
    return sorted(root.rglob("*.seal"))


def d_truncate(rng: random.Random, root: Path) -> str:
    f = rng.choice(_files(root))
    data = f.read_bytes()
    f.write_bytes(data[: rng.randrange(len(data))] if data else b"x")
    return f"truncate {f.name}"


def d_row_boundary(rng: random.Random, root: Path) -> str:
    """Cut a part after a complete row: still valid CSV, fewer rows."""
    f = rng.choice(_part_files(root))
    text = f.read_text(encoding="utf-8", errors="replace")
    cuts = [i + 1 for i, c in enumerate(text) if c == "\n"][:-1]
    if not cuts:
        f.write_text("")
        return f"empty {f.name}"
    f.write_text(text[: rng.choice(cuts)], encoding="utf-8")
    return f"row-boundary cut {f.name}"


def d_extend(rng: random.Random, root: Path) -> str:
    f = rng.choice(_part_files(root))
    lines = f.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True) or ["x\n"]
    f.write_text("".join([*lines, lines[-1]]), encoding="utf-8")
    return f"repeat last row {f.name}"


def d_empty(rng: random.Random, root: Path) -> str:
    f = rng.choice(_files(root))
    f.write_bytes(b"")
    return f"empty {f.name}"


def d_flip(rng: random.Random, root: Path) -> str:
    f = rng.choice(_files(root))
    data = bytearray(f.read_bytes() or b"x")
    i = rng.randrange(len(data))
    data[i] ^= rng.randrange(1, 256)
    f.write_bytes(bytes(data))
    return f"flip byte {i} of {f.name}"


def d_seal(rng: random.Random, root: Path) -> str:
    seal = rng.choice(_seals(root))
    kind = rng.choice(["delete", "cut", "garbage", "list", "retype", "version", "config", "key"])
    if kind == "delete":
        seal.unlink()
    elif kind == "cut":
        seal.write_bytes(seal.read_bytes()[: rng.randrange(1, 30)])
    elif kind == "garbage":
        seal.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randint(0, 40))))
    elif kind == "list":
        seal.write_text("[1, 2]")
    else:
        record = json.loads(seal.read_text())
        field = {"retype": rng.choice(["bytes", "sha256", "rows"]), "version": "seal"}.get(kind)
        field = field or kind
        record[field] = rng.choice([None, "1", 2.5, [1], {"a": 1}, -1, 10**30])
        seal.write_text(json.dumps(record))
    return f"seal {kind} {seal.name}"


def d_swap_parts(rng: random.Random, root: Path) -> str:
    a, b = rng.sample(_part_files(root), 2)
    with_seals = rng.random() < 0.5 and seal_path(a).exists() and seal_path(b).exists()
    pairs = [(a, b), (seal_path(a), seal_path(b))] if with_seals else [(a, b)]
    for x, y in pairs:
        dx, dy = x.read_bytes(), y.read_bytes()
        x.write_bytes(dy)
        y.write_bytes(dx)
    return f"swap {a.name} <-> {b.name}{' with seals' if with_seals else ''}"


def d_folder(rng: random.Random, root: Path) -> str:
    f = rng.choice(_part_files(root))
    f.unlink()
    f.mkdir()
    return f"folder in place of {f.name}"


def d_fingerprint(rng: random.Random, root: Path) -> str:
    stamp = root / "parts" / "fingerprint.json"
    kind = rng.choice(["cut", "empty", "list", "delete", "deep"])
    if kind == "cut":
        stamp.write_bytes(stamp.read_bytes()[: rng.randrange(1, 10)])
    elif kind == "empty":
        stamp.write_bytes(b"")
    elif kind == "list":
        stamp.write_text("[]")
    elif kind == "deep":
        stamp.write_text("[" * 100_000 + "]" * 100_000)
    else:
        stamp.unlink()
    return f"fingerprint {kind}"


def d_other_config(rng: random.Random, root: Path) -> str:
    stamp = root / "parts" / "fingerprint.json"
    stamp.write_text(json.dumps({**FINGERPRINT, "layer": rng.randint(2, 9)}))
    return "fingerprint of another configuration"


def d_legacy(rng: random.Random, root: Path) -> str:
    """Parts written before seals existed (an older version)."""
    for seal in _seals(root / "parts"):
        seal.unlink()
    return "no seals (older version)"


DAMAGES: dict[str, Callable[[random.Random, Path], str]] = {
    "truncate": d_truncate,
    "row_boundary": d_row_boundary,
    "extend": d_extend,
    "empty": d_empty,
    "flip": d_flip,
    "seal": d_seal,
    "swap_parts": d_swap_parts,
    "folder": d_folder,
    "fingerprint": d_fingerprint,
    "other_config": d_other_config,
    "legacy": d_legacy,
}


# -- the oracle -----------------------------------------------------------------------------------
def _same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    try:
        pd.testing.assert_frame_equal(a, b, check_dtype=False)
    except AssertionError:
        return False
    return True


def check_store(root: Path, written: dict[str, Any]) -> tuple[str, str | None]:
    """``(outcome, failure)``: "refused", "recomputed" (some item) or "intact"."""
    lines: list[str] = []
    try:
        store = PartStore(root, FINGERPRINT, log=lines.append)
    except LensOdesteerError:
        return "refused", None
    except Exception as exc:
        return "failed", f"PartStore raised {type(exc).__name__}: {exc}"
    recomputed = 0
    try:
        for key, frame in written["parts"].items():
            n_lines = len(lines)
            got = store.reuse(key)
            if got is None:
                if not store.path(key).exists() and not lines[n_lines:]:
                    return "failed", f"part {key} vanished"
                if not lines[n_lines:] and store.path(key).exists():
                    return "failed", f"part {key} recomputed without a line"
                recomputed += 1
            elif not _same(got, frame):
                return "failed", f"part {key} read back different:\n{got}\nvs\n{frame}"
        cache, acts = written["cache"]
        got_acts = _cached_acts(store, cache, acts.shape[0])
        if got_acts is None:
            recomputed += 1
        elif not torch.equal(got_acts, acts):
            return "failed", "the activation cache read back different"
        path, steerer = written["steerer"]
        if store.whole(path, what="steerer") is None:
            recomputed += 1
        else:
            loaded = lo.load_steerer(path)
            if not torch.equal(loaded.direction_, steerer.direction_):  # type: ignore[attr-defined]
                return "failed", "the steerer read back different"
    except Exception as exc:
        return "failed", f"{type(exc).__module__}.{type(exc).__name__}: {exc}"[:400]
    return ("recomputed" if recomputed else "intact"), None


def run_fuzz(tmp: Path, n_cases: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    pristine = tmp / "pristine"
    written = _build(pristine, rng)
    counts: dict[str, int] = {"tried": 0}
    failures = []
    names = sorted(DAMAGES)
    for i in range(n_cases):
        root = tmp / f"case{i}"
        shutil.copytree(pristine, root)
        done = [DAMAGES[names[i % len(names)]](rng, root)]
        if rng.random() < 0.3:  # a second damage of any kind
            done.append(DAMAGES[rng.choice(names)](rng, root))
        outcome, problem = check_store(root, written)
        counts["tried"] += 1
        counts[outcome] = counts.get(outcome, 0) + 1
        if problem is not None:
            failures.append(f"case {i}: {done} -> {problem}")
        shutil.rmtree(root)
    print(f"\nfuzz_store (seed {seed}): {counts}")
    assert not failures, f"{len(failures)} cases mishandled:\n" + "\n".join(failures[:20])
    return counts


def test_fuzz_store(tmp_path: Path) -> None:
    counts = run_fuzz(tmp_path, DEFAULT_CASES, 16)
    OUTCOMES.update({f"default_{k}": v for k, v in counts.items()})
    assert counts["tried"] == DEFAULT_CASES and counts.get("refused", 0) > 0


@pytest.mark.slow
def test_fuzz_store_slow(tmp_path: Path) -> None:
    counts = run_fuzz(tmp_path, SLOW_CASES, 1616)
    assert counts["tried"] == SLOW_CASES


def test_undamaged_store_reads_back_everything(tmp_path: Path) -> None:
    written = _build(tmp_path / "s", random.Random(0))
    assert check_store(tmp_path / "s", written) == ("intact", None)


def test_seal_round_trip_bytes(tmp_path: Path) -> None:
    """Reading goes through the very bytes that were hashed (no second read of the file)."""
    store = PartStore(tmp_path, FINGERPRINT, log=lambda line: None)
    frame = pd.DataFrame({"x": [1.5, 2.5]})
    store.put("k", frame)
    data = store.whole(store.path("k"), what="part", key="k")
    assert data is not None and pd.read_csv(io.BytesIO(data)).x.tolist() == [1.5, 2.5]
