"""Write figures for papers: HTML always, PNG/SVG/PDF through kaleido and a local browser.

Plotly's static export (kaleido 1.x) drives a Chromium-family browser. On Debian-like machines
``apt-get install -y chromium`` provides one that kaleido finds by itself; no download happens.
Without kaleido or a browser, :func:`save_figure` raises :class:`ExportError` naming the fix, and
:func:`save_figures` (with ``static="auto"``) still writes the HTML files and says what it skipped.

Files are written to a temporary name in the target folder and renamed into place, so an
interrupted export never leaves a half-written figure behind.

Example:
    >>> import tempfile, plotly.graph_objects as go
    >>> from lens_odesteer.viz.export import save_figure
    >>> fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1]))
    >>> path = save_figure(fig, tempfile.mkdtemp() + "/line.html")
    >>> path.suffix, path.stat().st_size > 1000
    ('.html', True)
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import warnings
from collections.abc import Iterable, Mapping
from contextlib import ExitStack
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio

from lens_odesteer._atomic import atomic_path
from lens_odesteer.errors import ExportError, InvalidParameterError

STATIC_FORMATS = ("png", "svg", "pdf")
ALL_FORMATS = ("html", "json", *STATIC_FORMATS)
_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

INSTALL_HINT = (
    "Static export needs the `kaleido` package (pip install 'kaleido>=1.0') and a Chromium-family "
    "browser: on Debian/Ubuntu run `apt-get install -y chromium` (kaleido finds /usr/bin/chromium "
    "by itself), or set BROWSER_PATH to an installed Chrome/Chromium."
)


def static_export_status() -> str | None:
    """Return None when PNG/SVG/PDF export should work here, else the reason it cannot."""
    if importlib.util.find_spec("kaleido") is None:
        return "kaleido is not installed. " + INSTALL_HINT
    env = os.environ.get("BROWSER_PATH")
    if env and Path(env).exists():
        return None
    if any(shutil.which(name) for name in _BROWSERS):
        return None
    return "no Chromium/Chrome browser was found. " + INSTALL_HINT


def _format(path: Path) -> str:
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in ALL_FORMATS:
        raise InvalidParameterError(
            f"Cannot tell the format of {str(path)!r}: its suffix must be one of "
            f"{['.' + f for f in ALL_FORMATS]}."
        )
    return fmt


def _write_text(fig: go.Figure, path: Path, fmt: str) -> None:
    with atomic_path(path, keep_suffix=True) as tmp:
        if fmt == "html":
            # Self-contained: plotly.js is inlined, so the file opens offline.
            # auto_play=False: an animated figure (a slider) waits for the reader.
            fig.write_html(tmp, include_plotlyjs=True, full_html=True, auto_play=False)
        else:
            fig.write_json(tmp)


def _write_static(
    figs: list[go.Figure],
    paths: list[Path],
    width: int | None,
    height: int | None,
    scale: float | int,
) -> None:
    reason = static_export_status()
    if reason is not None:
        raise ExportError(f"Cannot write {[p.name for p in paths]}: {reason}")
    # All files or none: every temporary file is renamed into place only if the export of all
    # of them succeeded.
    with ExitStack() as stack:
        temps = [stack.enter_context(atomic_path(p, keep_suffix=True)) for p in paths]
        try:
            # One browser session for all figures (starting one costs seconds).
            # Kaleido ignores the layout size and falls back to 700 x 500; use each figure's
            # own size unless one is given.
            widths = [width if width is not None else fig.layout.width for fig in figs]
            heights = [height if height is not None else fig.layout.height for fig in figs]
            pio.write_images(
                figs, [str(t) for t in temps], width=widths, height=heights, scale=scale
            )
        except Exception as exc:
            raise ExportError(
                f"Static export of {[p.name for p in paths]} failed: {type(exc).__name__}: "
                f"{exc}. {INSTALL_HINT}"
            ) from exc


def _check_size(width: int | None, height: int | None, scale: float | int) -> None:
    for name, value in (("width", width), ("height", height)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 10
        ):
            raise InvalidParameterError(
                f"`{name}` must be an int number of pixels >= 10, or None; got {value!r}."
            )
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 10:
        raise InvalidParameterError(
            f"`scale` must be a number in (0, 10] (2 doubles the resolution); got {scale!r}."
        )


def save_figure(
    fig: go.Figure,
    path: str | Path,
    *,
    width: int | None = None,
    height: int | None = None,
    scale: float | int = 2.0,
) -> Path:
    """Write one figure; the format comes from the suffix (.html, .json, .png, .svg, .pdf).

    ``width``/``height`` are in CSS pixels (default: the figure's layout size, else 700 x 500)
    and ``scale``
    multiplies the resolution of raster output (2 gives sharp PNGs for print).

    Raises:
        ExportError: a static format without kaleido or a browser (the message says how to
            install them), or kaleido failing.
        InvalidParameterError: an unknown suffix, a missing folder or a bad size.
    """
    if not isinstance(fig, go.Figure):
        raise InvalidParameterError(f"`fig` must be a plotly Figure; got {type(fig).__name__}.")
    target = Path(path)
    fmt = _format(target)
    _check_size(width, height, scale)
    if not target.parent.is_dir():
        raise InvalidParameterError(
            f"The folder {str(target.parent)!r} does not exist; create it first."
        )
    if fmt in STATIC_FORMATS:
        _write_static([fig], [target], width, height, scale)
    else:
        if width is not None or height is not None:
            fig = go.Figure(fig).update_layout(width=width, height=height)
        _write_text(fig, target, fmt)
    return target


def save_figures(
    figs: Mapping[str, go.Figure],
    out_dir: str | Path,
    *,
    formats: Iterable[str] = ("html", "png", "svg", "pdf"),
    width: int | None = None,
    height: int | None = None,
    scale: float | int = 2.0,
    static: str = "auto",
) -> dict[str, list[Path]]:
    """Write several named figures in several formats into ``out_dir`` (created if needed).

    ``static="auto"`` writes PNG/SVG/PDF when export is possible and otherwise warns once and
    writes the rest; ``"require"`` raises :class:`ExportError` instead; ``"skip"`` writes no
    static files. Returns ``{name: [paths written]}``.
    """
    fmts = [str(f).lower().lstrip(".") for f in formats]
    bad = [f for f in fmts if f not in ALL_FORMATS]
    if bad:
        raise InvalidParameterError(f"Unknown formats {bad}; choose from {list(ALL_FORMATS)}.")
    if static not in ("auto", "require", "skip"):
        raise InvalidParameterError(
            f"`static` must be 'auto', 'require' or 'skip'; got {static!r}."
        )
    _check_size(width, height, scale)
    for name in figs:
        if not name or any(ch in name for ch in "/\\") or name.startswith("."):
            raise InvalidParameterError(
                f"Figure name {name!r} is not a plain file name; use letters, digits, '_' or '-'."
            )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {name: [] for name in figs}
    for name, fig in figs.items():
        for fmt in fmts:
            if fmt not in STATIC_FORMATS:
                written[name].append(
                    save_figure(fig, out / f"{name}.{fmt}", width=width, height=height)
                )
    wanted = [f for f in fmts if f in STATIC_FORMATS]
    if wanted and static != "skip":
        reason = static_export_status()
        if reason is not None and static == "auto":
            warnings.warn(
                f"Wrote HTML only; skipped {wanted} export: {reason}", RuntimeWarning, stacklevel=2
            )
        else:
            jobs = [(name, fmt) for name in figs for fmt in wanted]
            paths = [out / f"{name}.{fmt}" for name, fmt in jobs]
            _write_static([figs[name] for name, _ in jobs], paths, width, height, scale)
            for (name, _), path in zip(jobs, paths, strict=True):
                written[name].append(path)
    return written
