"""Figure export: HTML always; PNG/SVG/PDF through kaleido + a local Chromium; clear failures."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import plotly.graph_objects as go
import pytest

from lens_odesteer.errors import ExportError, InvalidParameterError
from lens_odesteer.viz import export
from lens_odesteer.viz.export import save_figure, save_figures, static_export_status
from lens_odesteer.viz.theme import apply_theme

#: Set to 1 on a machine without a browser to skip the real static export (CI installs one).
ALLOW_NO_BROWSER = os.environ.get("LENS_ODESTEER_ALLOW_NO_BROWSER") == "1"


def _fig() -> go.Figure:
    return apply_theme(go.Figure(go.Scatter(x=[0, 1, 2], y=[1, 3, 2], name="line")))


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_html_is_self_contained(tmp_path: Path) -> None:
    path = save_figure(_fig(), tmp_path / "f.html", width=300, height=200)
    text = path.read_text()
    assert '<script src="http' not in text and "Plotly" in text and len(text) > 1_000_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.html"]  # no temp files left


@pytest.mark.slow
def test_static_export_writes_real_png_svg_pdf(tmp_path: Path) -> None:
    reason = static_export_status()
    if reason is not None and ALLOW_NO_BROWSER:
        pytest.skip(reason)
    assert reason is None, reason
    written = save_figures(
        {"a": _fig(), "b": _fig()},
        tmp_path,
        formats=("html", "png", "svg", "pdf"),
        width=400,
        height=300,
        scale=2,
    )
    assert {p.name for ps in written.values() for p in ps} == {
        f"{n}.{e}" for n in "ab" for e in ("html", "png", "svg", "pdf")
    }
    assert _png_size(tmp_path / "a.png") == (800, 600)  # width x scale, height x scale
    assert (tmp_path / "a.svg").read_text().lstrip().startswith("<svg")
    assert (tmp_path / "a.pdf").read_bytes()[:5] == b"%PDF-"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    # Without an explicit size, each figure keeps its own layout size.
    sized = _fig().update_layout(width=520, height=340)
    save_figures({"own": sized, "plain": go.Figure()}, tmp_path, formats=("png",), scale=1)
    assert _png_size(tmp_path / "own.png") == (520, 340)
    assert _png_size(tmp_path / "plain.png") == (700, 500)  # kaleido's default


def test_without_a_browser_static_export_says_how_to_fix_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("BROWSER_PATH", raising=False)
    reason = static_export_status()
    assert reason is not None and "apt-get install -y chromium" in reason
    with pytest.raises(ExportError, match="chromium"):
        save_figure(_fig(), tmp_path / "f.png")
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    with pytest.warns(RuntimeWarning, match="Wrote HTML only"):
        written = save_figures({"f": _fig()}, tmp_path, formats=("html", "png"))
    assert [p.name for p in written["f"]] == ["f.html"]
    with pytest.raises(ExportError):
        save_figures({"f": _fig()}, tmp_path, formats=("png",), static="require")


def test_kaleido_failure_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "static_export_status", lambda: None)

    def boom(figs: object, paths: list[str], **kw: object) -> None:
        Path(paths[0]).write_bytes(b"partial")
        raise RuntimeError("browser crashed")

    monkeypatch.setattr(export.pio, "write_images", boom)
    with pytest.raises(ExportError, match="browser crashed"):
        save_figure(_fig(), tmp_path / "f.pdf")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"path": "f.gif"}, "suffix"),
        ({"path": "missing/f.html"}, "does not exist"),
        ({"path": "f.png", "width": 0}, "width"),
        ({"path": "f.png", "scale": -1.0}, "scale"),
    ],
)
def test_bad_export_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    path = tmp_path / kwargs.pop("path")
    with pytest.raises(InvalidParameterError, match=match):
        save_figure(_fig(), path, **kwargs)


def test_bad_figure_names_and_formats(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="plain file name"):
        save_figures({"../x": _fig()}, tmp_path)
    with pytest.raises(InvalidParameterError, match="Unknown formats"):
        save_figures({"x": _fig()}, tmp_path, formats=("bmp",))
