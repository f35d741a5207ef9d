"""The tutorial notebooks: committed as scripts/make_notebooks.py writes them, with their outputs.

Fast checks read the committed files: cells equal the script's, every cell ran without errors,
figures are static PNG images, no ``assert`` in tutorial cells, numbers in the prose come from
the notebook, and the folder stays small. The slow test executes a copy of each notebook on the
real default model, runs the checks that used to be ``assert``s inside tutorial cells in the same
kernel, and compares the numbers the prose quotes with the committed outputs.
"""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path
from textwrap import dedent
from types import ModuleType

import nbformat
import pytest
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "notebooks"
MAX_FOLDER_BYTES = 3_000_000


def _load_script() -> ModuleType:
    path = ROOT / "scripts" / "make_notebooks.py"
    spec = importlib.util.spec_from_file_location("make_notebooks", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPT = _load_script()
NAMES = list(SCRIPT.NOTEBOOKS)


def _committed(name: str) -> NotebookNode:
    return nbformat.read(FOLDER / name, as_version=4)


def _code_cells(nb: NotebookNode) -> list[NotebookNode]:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def _output_text(cell: NotebookNode) -> str:
    """What a reader sees as text in a cell's outputs (printed text and plain reprs)."""
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts.append(out.data.get("text/plain", ""))
    return "\n".join(parts)


_NUMBER = re.compile(r"(?<![\w.])-?\d+\.\d+(?:e[-+]?\d+)?(?!\w)(?!\.\d)")
_ANY_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


# -- the committed files ---------------------------------------------------------------------


def test_the_five_walkthroughs_are_committed() -> None:
    assert sorted(p.name for p in FOLDER.glob("*.ipynb")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_committed_cells_are_the_scripts(name: str) -> None:
    assert SCRIPT.sources(_committed(name)) == SCRIPT.sources(SCRIPT.build(name)), (
        f"{name} differs from scripts/make_notebooks.py; regenerate it with "
        "`.venv/bin/python scripts/make_notebooks.py --execute`"
    )


@pytest.mark.parametrize("name", NAMES)
def test_committed_outputs_are_complete_and_static(name: str) -> None:
    cells = _code_cells(_committed(name))
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1)), (
        f"{name} was not executed top to bottom in one kernel"
    )
    for cell in cells:
        assert cell.outputs, f"a cell of {name} shows nothing: {cell.source[:60]!r}"
        for out in cell.outputs:
            assert out.output_type != "error", f"{name}: {out.ename}: {out.evalue}"
            assert not (out.output_type == "stream" and out.name == "stderr"), (
                f"{name} prints to stderr (a warning?): {out.text[:200]!r}"
            )
            data = out.get("data", {})
            # Plotly's HTML/JS outputs do not render on a code host and are large.
            assert not any("plotly" in mime for mime in data), f"{name} has a plotly JS output"
            assert "plotly" not in data.get("text/html", "").lower()
    figures = [c for c in cells if any("image/png" in o.get("data", {}) for o in c.outputs)]
    expected = {"01": 0, "02": 1, "03": 2, "04": 2, "05": 1}[name[:2]]
    assert len(figures) == expected


def test_the_folder_stays_small() -> None:
    size = sum(p.stat().st_size for p in FOLDER.glob("*.ipynb"))
    assert size < MAX_FOLDER_BYTES, f"notebooks/*.ipynb hold {size / 1e6:.1f} MB"


@pytest.mark.parametrize("name", NAMES)
def test_one_setup_no_asserts_no_shared_links(name: str) -> None:
    nb = _committed(name)
    assert _code_cells(nb)[0].source == SCRIPT.SETUP.strip()
    for cell in nb.cells:
        assert "../shared" not in cell.source
        if cell.cell_type == "code":
            assert not re.search(r"^\s*assert\b", cell.source, re.M), cell.source[:60]


@pytest.mark.parametrize("name", NAMES)
def test_numbers_in_the_prose_come_from_the_notebook(name: str) -> None:
    """Every decimal number in a markdown cell is printed by a cell, or written in one."""
    nb = _committed(name)
    shown = []
    for cell in _code_cells(nb):
        for text in (cell.source, _output_text(cell)):
            shown += [float(n) for n in _ANY_NUMBER.findall(text)]
    missing = []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for quoted in _NUMBER.findall(cell.source):
            if "e" in quoted:
                ok = any(math.isclose(value, float(quoted), rel_tol=5e-3) for value in shown)
            else:
                decimals = len(quoted.split(".")[1])
                ok = any(f"{value:.{decimals}f}" == quoted for value in shown)
            if not ok:
                missing.append(quoted)
    assert not missing, f"{name}: the prose states {missing}, which no cell shows"


# -- executing a copy ------------------------------------------------------------------------

#: Run after the last cell, in the same kernel: the checks that do not belong in a tutorial.
CHECKS = {
    "01": """
        assert (h < 0).all()
        assert scores["ODESteer"] > scores["unsteered"] and scores["CAA"] > scores["unsteered"]
        ratio = moves["mean move / mean |a|"] / moves["strength"]
        assert ratio.between(0.97, 1.02).all(), moves
        assert model.hook_dict[hook].fwd_hooks == []
        assert torch.equal(again.steer(held_out, 30.0), ode.steer(held_out, 30.0))
    """,
    "02": """
        change, lens_kl = layers["relative change |b - a| / |a|"], layers["logit-lens KL (nats)"]
        assert (change[layers.layer < 15] == 0).all() and (lens_kl[layers.layer < 15] == 0).all()
        assert (change[layers.layer >= 15] > 0).all()
        assert abs(lens_kl.iloc[-1] - kl) < 1e-4
        assert (batch_check["max |batch row - alone|"] < 1e-3).all()
        assert batch_check["pads"].max() > 0
        assert reuse["reused == fresh"].all()
        caa_row, plan_row = moved.iloc[0], moved.iloc[1]
        assert (caa_row > 40).all() and abs(caa_row.max() - caa_row.min()) < 1e-3
        assert (plan_row.iloc[:-1] == 0).all() and plan_row.iloc[-1] > 40
        assert model.hook_dict[hook].fwd_hooks == []
    """,
    "03": """
        import numpy as np
        first = paths[paths.step == 0].sort_values(["method", "row"])
        xy = view.transform(start).numpy()
        for _, sub in first.groupby("method"):
            assert np.abs(sub[["x", "y"]].to_numpy() - xy).max() < 1e-3
        ode_path = paths[paths.method == "ODESteer"].sort_values(["row", "step"])
        assert (ode_path.groupby("row")["h"].diff().dropna() > 0).all()
        assert (summary["h"] > 0).all() and (summary["h at start"] < 0).all()
        drift = summary["norm"] / summary["norm at start"] - 1
        assert drift["ODESteer"] < 0.01 < drift["StepODESteer"]
        assert all(f.stat().st_size > 0 for files in written.values() for f in files)
    """,
    "04": """
        assert kl.loc[0].abs().max() < 1e-6
        assert (kl.diff().dropna() > 0).all().all()
        assert gap < 0.25 * table["ODESteer"].abs().max()
    """,
    "05": """
        assert search.best.label == "sketch(degree=3, gamma=10, C=1, n_components=8000)"
        bend = pd.DataFrame(rows).set_index(["barrier", "strength"])["bend %"]
        assert bend["bending", 0.3] > 5 * bend["default", 0.3]
        assert distances["h at ODESteer end"] > distances["h at StepODESteer end"]
        assert end.loc["ODESteer", "y"] - end.loc["StepODESteer", "y"] > 3
        assert result.steps.loc[result.steps.step == 0, "kl"].abs().max() < 1e-6
    """,
}


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=0.02, abs_tol=2e-3)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES, ids=[n.split("_")[0] for n in NAMES])
def test_notebook_runs_clean(name: str, tmp_path: Path) -> None:
    committed = _committed(name)
    nb = nbformat.from_dict(committed)
    nb.cells.append(new_code_cell(dedent(CHECKS[name[:2]]).strip()))
    # In tmp_path, so the files a notebook writes (figures, a steerer) stay out of the repo.
    SCRIPT.execute(nb, tmp_path)  # raises CellExecutionError, with the failing cell, on any error
    errors = [out for c in _code_cells(nb) for out in c.outputs if out.output_type == "error"]
    assert not errors

    # The prose quotes the committed outputs of these cells; they must still hold.
    stale = []
    fresh_cells = _code_cells(nb)
    for i, cell in enumerate(_code_cells(committed)):
        if SCRIPT.QUOTED not in cell.metadata.get("tags", []):
            continue
        old = [float(n) for n in _ANY_NUMBER.findall(_output_text(cell))]
        new = [float(n) for n in _ANY_NUMBER.findall(_output_text(fresh_cells[i]))]
        if len(old) != len(new) or not all(_close(a, b) for a, b in zip(old, new, strict=True)):
            stale.append(cell.source.splitlines()[0])
    assert not stale, (
        f"{name}: these cells now print other numbers than the committed ones the prose "
        f"quotes: {stale}; regenerate with `scripts/make_notebooks.py --execute` and update "
        "the prose"
    )
