"""Dependencies point one way: maths -> steerers -> hooks/models -> analysis -> viz -> CLI.

Three rules, each read from the source with :mod:`ast` (nothing is imported):

* a module imports only its own layer or lower ones (:data:`LAYERS`), with third-party packages
  confined to the parts that need them (:data:`CONFINED`); imports inside functions count, so a
  lazy import that goes up a layer is reported too;
* tensor-only analysis (every module of ``lens_odesteer/analysis`` outside ``model_runs/``)
  never imports TransformerLens, transformers or the model-facing parts of the package, and
  never takes or calls a model;
* no import cycle between modules: the graph of runtime imports (module level and inside
  functions; ``if TYPE_CHECKING:`` blocks excluded) has no cycle, apart from the ones listed in
  :data:`KNOWN_CYCLES`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "lens_odesteer"

# Lower number = lower layer. A module may import its own layer or lower ones only.
LAYERS: dict[str, int] = {
    "_version": 0,
    "errors": 0,
    "_validation": 0,
    "_component": 0,
    "_file_rules": 0,
    "_atomic": 0,
    "_splits": 0,
    "_distances": 0,
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


# --------------------------------------------------------------------------- tensor-only analysis

ANALYSIS = PACKAGE / "analysis"
MODEL_RUNS = ANALYSIS / "model_runs"
#: What tensor-only analysis must not import: the model libraries and the parts that run models.
MODEL_FACING = (
    "transformer_lens",
    "transformers",
    "lens_odesteer.activations",
    "lens_odesteer.hooks",
    "lens_odesteer.models",
    "lens_odesteer.evaluation",
    "lens_odesteer.analysis.model_runs",
)
#: Methods of a TransformerLens model; calling one means running the model.
MODEL_CALLS = {"run_with_hooks", "run_with_cache", "to_tokens", "to_str_tokens", "generate"}
TENSOR_ANALYSIS = sorted(
    p for p in ANALYSIS.rglob("*.py") if MODEL_RUNS not in p.parents and p.name != "__init__.py"
)


@pytest.mark.parametrize(
    "path", TENSOR_ANALYSIS, ids=[str(p.relative_to(PACKAGE)) for p in TENSOR_ANALYSIS]
)
def test_tensor_analysis_never_touches_a_model(path: Path) -> None:
    """Analysis that runs the model lives in analysis/model_runs/; the rest works on tensors."""
    where = path.relative_to(PACKAGE)
    for name in _imports(path):
        bad = [m for m in MODEL_FACING if name == m or name.startswith(m + ".")]
        assert not bad, (
            f"{where} is tensor-only analysis but imports {name}; move the code that needs it "
            "to lens_odesteer/analysis/model_runs/"
        )
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
            assert "model" not in {a.arg for a in args}, (
                f"{where}:{node.lineno} {node.name}() takes a `model`; functions that run the "
                "model belong in lens_odesteer/analysis/model_runs/"
            )
        if isinstance(node, ast.Attribute) and node.attr in MODEL_CALLS:
            raise AssertionError(
                f"{where}:{node.lineno} calls .{node.attr}(), which runs a model; move it to "
                "lens_odesteer/analysis/model_runs/"
            )


# --------------------------------------------------------------------------- import cycles

#: Cycles that exist today and are being broken elsewhere; each entry is the set of modules of
#: one strongly connected component of the import graph. Empty this as they are fixed (the stale
#: check below fails while an entry no longer matches a real cycle).
#:
#: * hooks.build -> hooks.plan -> hooks.hook -> hooks.build: the hooks redesign in progress
#:   (``plan`` builds hooks lazily, ``hook`` and ``build`` import each other's names).
KNOWN_CYCLES: set[frozenset[str]] = set()


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULE_PATHS = {_module_name(p): p for p in MODULES}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements that run: at module level, in classes and in functions, not under
    ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield from _runtime_imports(ast.Module(body=[other], type_ignores=[]))
            continue
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        yield from _runtime_imports(child)


def _targets(node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """Modules of the package that an import statement loads (``from pkg import mod`` is
    ``pkg.mod`` when that is a module, else ``pkg``)."""
    if isinstance(node, ast.Import):
        yield from (a.name for a in node.names if a.name in MODULE_PATHS)
    elif node.module and node.level == 0 and node.module in MODULE_PATHS:
        for alias in node.names:
            sub = f"{node.module}.{alias.name}"
            yield sub if sub in MODULE_PATHS else node.module


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports at run time (edges to itself left out).

    Importing ``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__``; those implicit edges are
    left out, since a package importing its own submodules is how packages work.
    """
    graph = {}
    for name, path in MODULE_PATHS.items():
        tree = ast.parse(path.read_text())
        graph[name] = {t for node in _runtime_imports(tree) for t in _targets(node)} - {name}
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(component)
    return out


def one_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A closed path through ``component``, start repeated at the end, for the message."""
    start = min(component)
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:  # breadth first, so the path printed is a shortest cycle through `start`
        nxt = []
        for node in frontier:
            for child in sorted(graph[node] & component):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [*reversed(path), start]
                if child not in parent:
                    parent[child] = node
                    nxt.append(child)
        frontier = nxt
    raise AssertionError(f"no cycle through {start} in {sorted(component)}")


def test_import_graph_sees_lazy_and_skips_type_checking_imports() -> None:
    graph = import_graph()
    # evaluation.layers imports the runner inside steered_layer_sweep.
    assert "lens_odesteer.evaluation.runner" in graph["lens_odesteer.evaluation.layers"]
    # analysis.auc imports nothing of the package but errors.
    assert graph["lens_odesteer.analysis.auc"] == {"lens_odesteer.errors"}
    toy = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(toy) == [{"a", "b", "c"}]
    assert one_cycle(toy, {"a", "b", "c"}) == ["a", "b", "c", "a"]


def test_no_import_cycle_between_modules() -> None:
    graph = import_graph()
    cycles = [c for c in strongly_connected(graph) if frozenset(c) not in KNOWN_CYCLES]
    message = "\n".join(
        f"{' -> '.join(one_cycle(graph, c))}   (modules in this cycle: {', '.join(sorted(c))})"
        for c in cycles
    )
    assert not cycles, (
        f"import cycles between modules (break them; a lazy import counts):\n{message}"
    )


def test_known_cycles_are_still_real() -> None:
    real = {frozenset(c) for c in strongly_connected(import_graph())}
    stale = [sorted(c) for c in KNOWN_CYCLES if c not in real]
    assert not stale, f"remove these fixed cycles from KNOWN_CYCLES in {__file__}: {stale}"
