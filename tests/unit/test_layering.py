"""Dependencies point one way: maths -> steerers -> hooks/models -> analysis -> viz -> CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "lens_odesteer"

# Lower number = lower layer. A module may import its own layer or lower ones only.
LAYERS: dict[str, int] = {
    "_version": 0,
    "errors": 0,
    "_validation": 0,
    "_component": 0,
    "_atomic": 0,
    "features": 1,
    "flows": 1,
    "barriers": 2,
    "steerers": 3,
    "io": 3,
    "datasets": 0,
    "models": 4,
    "activations": 4,
    "hooks": 4,
    "analysis": 5,
    "evaluation": 6,
    "viz": 7,
    "report": 8,
    "demo": 8,
    "cli": 9,
    "__init__": 10,
    "__main__": 10,
}
#: Third-party packages allowed only in these top-level parts of the package.
CONFINED = {
    "transformer_lens": {"models", "activations", "hooks", "analysis", "evaluation", "cli"},
    "transformers": {"models", "activations", "hooks", "evaluation", "demo", "cli"},
    "plotly": {"viz", "report", "demo", "cli"},
    "sklearn": set(),
}


def _part(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(PACKAGE)) for p in MODULES])
def test_module_imports_point_down(path: Path) -> None:
    part = _part(path)
    assert part in LAYERS, f"add {part!r} to the layer table in {__file__}"
    for name in _imports(path):
        top = name.split(".")
        if top[0] == "lens_odesteer" and len(top) > 1:
            target = top[1]
            assert LAYERS.get(target, 99) <= LAYERS[part], (
                f"{path.relative_to(PACKAGE)} (layer {part}) imports upward: {name}"
            )
        if top[0] in CONFINED:
            assert part in CONFINED[top[0]], f"{path.relative_to(PACKAGE)} must not import {name}"
