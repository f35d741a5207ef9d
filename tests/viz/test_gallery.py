"""docs/gallery.md stays in step with the code: its page, its images and (slow) its data."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import lens_odesteer.viz as viz

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
GALLERY = DOCS / "gallery"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_gallery", ROOT / "scripts/make_gallery.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_gallery"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return _script()


@pytest.fixture(scope="module")
def stored() -> dict[str, Any]:
    return json.loads((GALLERY / "gallery.json").read_text())


def test_every_figure_type_is_in_the_gallery(script: ModuleType) -> None:
    drawn = {function for function, _ in script.ORDER.values()}
    plots = {name for name in viz.__all__ if name.startswith("plot_")}
    assert plots <= drawn, f"add {sorted(plots - drawn)} to scripts/make_gallery.py"


def test_page_and_images_match_the_stored_data(script: ModuleType, stored: dict) -> None:
    assert (DOCS / "gallery.md").read_text() == script.markdown(stored), (
        "docs/gallery.md is stale: run .venv/bin/python scripts/make_gallery.py"
    )
    sizes = {}
    for name in script.ORDER:
        png = GALLERY / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        sizes[name] = png.stat().st_size
    assert sum(sizes.values()) < 1_500_000, sizes  # small enough for the repository
    assert set(stored) >= {"level_sets", "heatmap", "metric_vs_strength"}


def _close(new: Any, old: Any, where: str) -> list[str]:
    if isinstance(old, dict):
        if set(new) != set(old):
            return [f"{where}: keys {sorted(new)} != {sorted(old)}"]
        return [e for k in old for e in _close(new[k], old[k], f"{where}.{k}")]
    if isinstance(old, list):
        if len(new) != len(old):
            return [f"{where}: length {len(new)} != {len(old)}"]
        return [
            e
            for i, (a, b) in enumerate(zip(new, old, strict=True))
            for e in _close(a, b, f"{where}[{i}]")
        ]
    if isinstance(old, float):
        # Fits and forward passes differ in the last bits between thread counts and machines.
        if math.isclose(float(new), old, rel_tol=5e-3, abs_tol=1e-4):
            return []
        return [f"{where}: {new} != {old}"]
    return [] if new == old else [f"{where}: {new!r} != {old!r}"]


@pytest.mark.slow
def test_gallery_data_regenerates(script: ModuleType, stored: dict) -> None:
    """Rebuild every figure's data from the real model and compare it with the stored record."""
    data = script.gallery_data()
    errors = _close(json.loads(json.dumps(data.numbers)), stored, "gallery")
    assert not errors, "the gallery's data changed; rerun scripts/make_gallery.py:\n" + "\n".join(
        errors
    )
    # And each figure can be drawn from it (no image is written).
    figures = script.render(data)
    assert list(figures) == list(script.ORDER)
